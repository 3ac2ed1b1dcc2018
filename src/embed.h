/* neardup — one image file to an embedding: read the file once into
 * memory, hash it (XXH3-128), decode it from memory at the smallest size the
 * model needs, preprocess it into a batch slot, run the batch. Used by the
 * ingest workers and by query; one struct embedder per thread. */
#ifndef NEARDUP_EMBED_H
#define NEARDUP_EMBED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "neardup/cnn.h"
#include "neardup/image.h"
#include "neardup/origin.h"
#include "neardup/prep.h"
#include "readfile.h"

struct embedder {
	const nd_model *model;
	nd_model_info info;
	nd_prep_params prep;
	nd_image_opts iopts;
	nd_workspace *ws;
	void *scratch;    /* nd_prep_scratch_size bytes */
	float *in;        /* [cap][3][H][W] */
	float *out;       /* [cap][D] */
	uint64_t *phash;  /* [cap] perceptual hash of each slot's image, from its prepared input
			   * (neardup/phash.h; for a view slot, of the view) */
	float *lum;       /* [H][W] scratch for the hash */
	nd_origin *origin; /* [cap] originality record of each slot's image (embedder_add) */
	int cap, n;       /* batch capacity, images in the batch now */
};

int embedder_init(struct embedder *e, const nd_model *m, int batch, nd_error *err);
void embedder_free(struct embedder *e);


/* Decodes data into the next batch slot (e->n must be < e->cap), measures
 * its originality record into e->origin[slot] and increments e->n. *w, *h:
 * the image's full size as displayed (EXIF orientation applied). */
int embedder_add(struct embedder *e, const void *data, size_t len, uint32_t *w, uint32_t *h,
		 nd_error *err);
/* Query-side views of one image (see embedder_add_views). */
enum view {
	VIEW_IDENTITY, /* the image as ingest embeds it */
	VIEW_ROT90,    /* rotated 90 degrees clockwise */
	VIEW_ROT180,
	VIEW_ROT270,
	VIEW_CROP75,   /* centre crop keeping 75% of each side */
	VIEW_CROP50,   /* centre crop keeping 50% of each side */
	VIEW_COUNT
};
#define VIEW_BIT(v) (1u << (v))
#define VIEWS_ROTATIONS (VIEW_BIT(VIEW_ROT90) | VIEW_BIT(VIEW_ROT180) | VIEW_BIT(VIEW_ROT270))
#define VIEWS_CROPS (VIEW_BIT(VIEW_CROP75) | VIEW_BIT(VIEW_CROP50))
#define VIEWS_ALL (VIEW_BIT(VIEW_IDENTITY) | VIEWS_ROTATIONS | VIEWS_CROPS)

/* "identity", "rot90", ... (the names in query's JSONL). */
const char *view_name(enum view v);
/* Number of views in a mask. */
int view_count(unsigned mask);

/* Decodes data once and fills one batch slot per view in mask (which must
 * hold VIEW_IDENTITY; e->n + view_count(mask) <= e->cap), in enum order;
 * slot_view[i] receives the view of the i-th slot filled. The identity slot
 * is exactly what embedder_add gives (same decode options, same prep). The
 * crops come from a second, larger decode when the first one was reduced
 * below twice the model input. *w, *h as for embedder_add. On failure no
 * slot is added. */
int embedder_add_views(struct embedder *e, const void *data, size_t len, unsigned mask,
		       enum view *slot_view, uint32_t *w, uint32_t *h, nd_error *err);
/* Runs the e->n images of the batch; embeddings in e->out[i * D]. Does not
 * reset e->n. */
int embedder_run(struct embedder *e, nd_error *err);

#endif
