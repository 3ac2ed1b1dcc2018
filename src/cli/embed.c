/* neardup CLI — file -> hash -> decode -> prep -> batched forward. */
#include "embed.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "neardup/phash.h"

int embedder_init(struct embedder *e, const nd_model *m, int batch, nd_error *err)
{
	memset(e, 0, sizeof(*e));
	e->model = m;
	e->cap = batch;
	nd_model_get_info(m, &e->info);
	e->prep.width = e->info.input_w;
	e->prep.height = e->info.input_h;
	memcpy(e->prep.mean, e->info.mean, sizeof(e->prep.mean));
	memcpy(e->prep.std, e->info.std, sizeof(e->prep.std));
	nd_image_opts_init(&e->iopts);
	e->iopts.min_width = e->info.input_w;
	e->iopts.min_height = e->info.input_h;
	size_t per_in = (size_t)3 * e->info.input_w * e->info.input_h, nin, nout;
	if (nd_mul_size(per_in, (size_t)batch, &nin) || nd_mul_size(nin, sizeof(float), &nin) ||
	    nd_mul_size((size_t)e->info.embed_dim * sizeof(float), (size_t)batch, &nout))
		return nd_error_set(err, ND_EOVERFLOW, "batch too large");
	int rc = nd_workspace_create(m, batch, &e->ws, err);
	if (rc)
		goto fail;
	e->scratch = malloc(nd_prep_scratch_size(&e->prep));
	e->in = malloc(nin);
	e->out = malloc(nout);
	e->phash = malloc(sizeof(uint64_t) * (size_t)batch);
	e->lum = malloc(sizeof(float) * (size_t)e->info.input_w * (size_t)e->info.input_h);
	e->origin = malloc(sizeof(nd_origin) * (size_t)batch);
	if (!e->scratch || !e->in || !e->out || !e->phash || !e->lum || !e->origin) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for a batch of %d images", batch);
		goto fail;
	}
	return 0;
fail:
	embedder_free(e);
	return rc;
}

void embedder_free(struct embedder *e)
{
	nd_workspace_free(e->ws);
	free(e->scratch);
	free(e->in);
	free(e->out);
	free(e->phash);
	free(e->lum);
	free(e->origin);
	memset(e, 0, sizeof(*e));
}

/* Slot i of the batch input: [3][H][W] floats. */
static float *slot(struct embedder *e, int i)
{
	return e->in + (size_t)3 * e->prep.width * e->prep.height * (size_t)i;
}

/* The perceptual hash of slot i's prepared input into e->phash[i]. */
static int slot_phash(struct embedder *e, int i, nd_error *err)
{
	return nd_phash_tensor(slot(e, i), e->prep.width, e->prep.height, e->prep.mean, e->prep.std,
			       e->lum, &e->phash[i], err);
}

/* Most images decode within the default per-decode memory bound. One that
 * needs more (a 24-megapixel progressive JPEG, a large HEIC) is decoded
 * again in the one wide lane, with a larger bound: with N workers the
 * decoders then hold at most (N - 1) x the default plus the wide bound,
 * however large the images are, and such photos are still read. */
#define WIDE_DECODE_BYTES ((size_t)112 << 20)
static pthread_mutex_t wide_lane = PTHREAD_MUTEX_INITIALIZER;

/* nd_image_decode_mem with the ingest options, or in the wide lane (*o's
 * bound raised, *wide set: the caller leaves the lane with wide_leave once
 * it has freed the images). */
static int decode_bounded(struct embedder *e, const void *data, size_t len, nd_image_opts *o,
			  nd_image *img, nd_image_info *ii, int *wide, nd_error *err)
{
	int rc = nd_image_decode_mem(data, len, o, img, ii, err);
	if (rc != ND_ELIMIT || *wide || o->max_memory >= WIDE_DECODE_BYTES)
		return rc;
	pthread_mutex_lock(&wide_lane);
	*wide = 1;
	e->iopts.max_memory = WIDE_DECODE_BYTES;
	o->max_memory = WIDE_DECODE_BYTES;
	nd_error_clear(err);
	return nd_image_decode_mem(data, len, o, img, ii, err);
}

static void wide_leave(struct embedder *e, int *wide)
{
	if (!*wide)
		return;
	nd_image_opts d;
	nd_image_opts_init(&d);
	e->iopts.max_memory = d.max_memory;
	*wide = 0;
	pthread_mutex_unlock(&wide_lane);
}

/* Decodes data with the ingest options into *img and preps it into the next
 * slot (not yet counted in e->n). img is kept for further views. */
static int decode_identity(struct embedder *e, const void *data, size_t len, nd_image *img,
			   nd_image_info *ii, uint32_t *w, uint32_t *h, int *wide, nd_error *err)
{
	ND_ASSERT(e->n < e->cap);
	int rc = decode_bounded(e, data, len, &e->iopts, img, ii, wide, err);
	if (rc)
		return rc;
	rc = nd_prep_image(img, &e->prep, slot(e, e->n), e->scratch, err);
	if (rc == 0)
		rc = slot_phash(e, e->n, err);
	if (rc) {
		nd_image_free(img);
		return rc;
	}
	int swap = ii->orientation >= 5 && ii->orientation <= 8;
	*w = (uint32_t)(swap ? ii->height : ii->width);
	*h = (uint32_t)(swap ? ii->width : ii->height);
	return 0;
}

int embedder_add(struct embedder *e, const void *data, size_t len, uint32_t *w, uint32_t *h,
		 nd_error *err)
{
	nd_image img = { 0 };
	nd_image_info ii;
	int wide = 0;
	int rc = decode_identity(e, data, len, &img, &ii, w, h, &wide, err);
	if (rc == 0) {
		nd_origin *o = &e->origin[e->n];
		nd_origin_init(o);
		nd_origin_from_bytes(data, len, o);
		rc = nd_origin_from_pixels(&img, ii.scale_denom, o, err);
	}
	if (rc == 0)
		e->n++;
	nd_image_free(&img);
	wide_leave(e, &wide);
	return rc;
}

static const char *const view_names[VIEW_COUNT] = {
	[VIEW_IDENTITY] = "identity", [VIEW_ROT90] = "rot90",   [VIEW_ROT180] = "rot180",
	[VIEW_ROT270] = "rot270",     [VIEW_CROP75] = "crop75", [VIEW_CROP50] = "crop50",
};

const char *view_name(enum view v)
{
	ND_ASSERT(v >= 0 && v < VIEW_COUNT);
	return view_names[v];
}

int view_count(unsigned mask)
{
	int n = 0;
	for (int v = 0; v < VIEW_COUNT; v++)
		n += (mask & VIEW_BIT(v)) != 0;
	return n;
}

/* Rotates a grid of w x h elements of elem bytes (row-major, rows packed)
 * clockwise by quarter * 90 degrees into dst (h x w for odd quarters).
 * in: [h][w][elem], out: [h'][w'][elem]. */
static void rotate_grid(const uint8_t *src, int w, int h, size_t elem, int quarter, uint8_t *dst)
{
	int ow = quarter & 1 ? h : w, oh = quarter & 1 ? w : h;
	for (int y = 0; y < oh; y++) {
		for (int x = 0; x < ow; x++) {
			int sx, sy;
			switch (quarter) {
			case 1: sx = y; sy = h - 1 - x; break;
			case 2: sx = w - 1 - x; sy = h - 1 - y; break;
			default: sx = w - 1 - y; sy = x; break;
			}
			memcpy(dst + ((size_t)y * ow + x) * elem, src + ((size_t)sy * w + sx) * elem, elem);
		}
	}
}

/* The centre pct% of each side of src into *dst (allocated; the caller frees
 * it), with the same bounds as the offline experiment: [floor(W(1-f)/2),
 * floor(W(1+f)/2)) per axis, at least one pixel. */
static int crop_centre(const nd_image *src, int pct, nd_image *dst, nd_error *err)
{
	int x0 = (int)((int64_t)src->width * (100 - pct) / 200);
	int x1 = (int)((int64_t)src->width * (100 + pct) / 200);
	int y0 = (int)((int64_t)src->height * (100 - pct) / 200);
	int y1 = (int)((int64_t)src->height * (100 + pct) / 200);
	dst->width = x1 > x0 ? x1 - x0 : 1;
	dst->height = y1 > y0 ? y1 - y0 : 1;
	size_t row = (size_t)3 * dst->width;
	dst->rgb = malloc(row * (size_t)dst->height); /* <= the decoded image's size */
	if (!dst->rgb)
		return nd_error_set(err, ND_ENOMEM, "out of memory for a crop");
	for (int y = 0; y < dst->height; y++)
		memcpy(dst->rgb + row * (size_t)y,
		       src->rgb + ((size_t)(y0 + y) * src->width + (size_t)x0) * 3, row);
	return 0;
}

int embedder_add_views(struct embedder *e, const void *data, size_t len, unsigned mask,
		       enum view *slot_view, uint32_t *w, uint32_t *h, nd_error *err)
{
	ND_ASSERT(mask & VIEW_BIT(VIEW_IDENTITY));
	ND_ASSERT(e->n + view_count(mask) <= e->cap);
	nd_image img = { 0 }, big = { 0 }, tmp = { 0 };
	nd_image_info ii;
	int n0 = e->n, n = 0, wide = 0;
	int rc = decode_identity(e, data, len, &img, &ii, w, h, &wide, err);
	if (rc)
		return rc;
	slot_view[n++] = VIEW_IDENTITY;
	int iw = e->prep.width, ih = e->prep.height;
	size_t plane = (size_t)iw * ih;
	for (int q = 1; q <= 3; q++) {
		if (!(mask & VIEW_BIT(VIEW_IDENTITY + q)))
			continue;
		if (iw == ih) {
			/* On the prepared tensor: exact and cheap, because per-axis
			 * area averaging (and bilinear enlarging) commutes with a
			 * 90-degree rotation when the input is square, and the
			 * normalisation is per pixel. */
			for (int c = 0; c < 3; c++)
				rotate_grid((const uint8_t *)(slot(e, n0) + plane * c), iw, ih,
					    sizeof(float), q, (uint8_t *)(slot(e, n0 + n) + plane * c));
		} else {
			/* a non-square input: rotate the pixels, then stretch */
			tmp.width = q & 1 ? img.height : img.width;
			tmp.height = q & 1 ? img.width : img.height;
			tmp.rgb = malloc((size_t)3 * img.width * img.height);
			if (!tmp.rgb) {
				rc = nd_error_set(err, ND_ENOMEM, "out of memory for a rotation");
				goto done;
			}
			rotate_grid(img.rgb, img.width, img.height, 3, q, tmp.rgb);
			rc = nd_prep_image(&tmp, &e->prep, slot(e, n0 + n), e->scratch, err);
			nd_image_free(&tmp);
			if (rc)
				goto done;
		}
		if ((rc = slot_phash(e, n0 + n, err)))
			goto done;
		slot_view[n++] = (enum view)(VIEW_IDENTITY + q);
	}
	if (!(mask & VIEWS_CROPS))
		goto done;
	/* A 50% crop needs twice the model input to avoid upsampling: decode
	 * again larger when the first decode was reduced below that. */
	const nd_image *src = &img;
	if (ii.scale_denom > 1 && (img.width < 2 * iw || img.height < 2 * ih)) {
		nd_image_opts o = e->iopts;
		o.min_width = 2 * iw;
		o.min_height = 2 * ih;
		if ((rc = decode_bounded(e, data, len, &o, &big, NULL, &wide, err)))
			goto done;
		src = &big;
	}
	static const struct { enum view v; int pct; } crops[] = {
		{ VIEW_CROP75, 75 }, { VIEW_CROP50, 50 },
	};
	for (size_t i = 0; i < sizeof(crops) / sizeof(crops[0]); i++) {
		if (!(mask & VIEW_BIT(crops[i].v)))
			continue;
		if ((rc = crop_centre(src, crops[i].pct, &tmp, err)))
			goto done;
		rc = nd_prep_image(&tmp, &e->prep, slot(e, n0 + n), e->scratch, err);
		nd_image_free(&tmp);
		if (rc == 0)
			rc = slot_phash(e, n0 + n, err);
		if (rc)
			goto done;
		slot_view[n++] = crops[i].v;
	}
done:
	if (rc == 0)
		e->n = n0 + n;
	nd_image_free(&img);
	nd_image_free(&big);
	wide_leave(e, &wide);
	return rc;
}

int embedder_run(struct embedder *e, nd_error *err)
{
	if (e->n == 0)
		return 0;
	return nd_model_forward(e->model, e->ws, e->in, e->n, e->out, err);
}
