/* neardup CLI — one image file to an embedding: read the file once into
 * memory, hash it (XXH3-128), decode it from memory at the smallest size the
 * model needs, preprocess it into a batch slot, run the batch. Used by the
 * ingest workers and by query; one struct embedder per thread. */
#ifndef NEARDUP_CLI_EMBED_H
#define NEARDUP_CLI_EMBED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "neardup/cnn.h"
#include "neardup/image.h"
#include "neardup/prep.h"

struct embedder {
	const nd_model *model;
	nd_model_info info;
	nd_prep_params prep;
	nd_image_opts iopts;
	nd_workspace *ws;
	void *scratch;    /* nd_prep_scratch_size bytes */
	float *in;        /* [cap][3][H][W] */
	float *out;       /* [cap][D] */
	int cap, n;       /* batch capacity, images in the batch now */
};

int embedder_init(struct embedder *e, const nd_model *m, int batch, nd_error *err);
void embedder_free(struct embedder *e);

/* A whole file in memory. */
struct file_data {
	uint8_t *data;
	size_t len;
	struct stat st;   /* fstat of the opened file */
	uint8_t hash[16]; /* XXH3-128 of the bytes, canonical (big-endian) */
};

/* Reads path (at most CLI_MAX_FILE_BYTES). nofollow: refuse a symlink (the
 * walk saw a regular file; it must not have been swapped since). Fails with
 * a message in err for anything but a regular file. fd->data is freed with
 * file_data_free. */
int file_read(const char *path, int nofollow, struct file_data *fd, nd_error *err);
void file_data_free(struct file_data *fd);

/* Decodes data into the next batch slot (e->n must be < e->cap) and
 * increments e->n. *w, *h: the image's full size as displayed (EXIF
 * orientation applied). */
int embedder_add(struct embedder *e, const void *data, size_t len, uint32_t *w, uint32_t *h,
		 nd_error *err);
/* Runs the e->n images of the batch; embeddings in e->out[i * D]. Does not
 * reset e->n. */
int embedder_run(struct embedder *e, nd_error *err);

#endif
