/* neardup — preprocessing: stretch an RGB image to the model's size with a
 * separable resize (exact area average when shrinking an axis, bilinear when
 * enlarging it) and normalise into a [3][H][W] float tensor.
 *
 * Order of work: every output row is a weighted sum of a few source rows,
 * each of which is first resampled horizontally (into a [3][W] float row).
 * Source rows are visited in increasing order and a two-slot cache keeps the
 * last two resampled rows, so each source row is resampled once (a row on
 * the boundary of two output rows, or a bilinear pair, is reused). The
 * output tensor itself is the vertical accumulator. */
#include "neardup/prep.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PREP_MAX_DIM 8192

/* Source span of one output pixel along one axis: weights wf (first), wm
 * (each middle one) and wl (last, when n > 1). Weights sum to 1. */
struct span {
	int32_t start, n;
	float wf, wm, wl;
};
_Static_assert(sizeof(struct span) == 20, "span size is part of the scratch formula");

static int params_ok(const nd_prep_params *p)
{
	if (!p || p->width < 1 || p->height < 1 || p->width > PREP_MAX_DIM || p->height > PREP_MAX_DIM)
		return 0;
	for (int c = 0; c < 3; c++)
		if (!(p->std[c] > 0.0f) || !isfinite(p->mean[c]) || !isfinite(p->std[c]))
			return 0;
	return 1;
}

size_t nd_prep_scratch_size(const nd_prep_params *p)
{
	if (!params_ok(p))
		return 0;
	return (size_t)2 * 3 * (size_t)p->width * sizeof(float) +
	       ((size_t)p->width + (size_t)p->height) * sizeof(struct span) + 64;
}

/* Weights for resampling src samples to dst samples along one axis. */
static void make_spans(struct span *t, int src, int dst)
{
	const int64_t S = src, D = dst;
	for (int64_t o = 0; o < D; o++) {
		struct span *sp = &t[o];
		if (src >= dst) {
			/* Area: output o covers [o*S/D, (o+1)*S/D) in source pixels.
			 * All boundaries scaled by D are integers, so coverage is
			 * exact; each weight is coverage/(S/D) = (coverage*D)/S. */
			int64_t a = o * S, b = (o + 1) * S;  /* interval times D */
			int64_t i0 = a / D, i1 = (b + D - 1) / D;
			int64_t first_end = (i0 + 1) * D < b ? (i0 + 1) * D : b;
			sp->start = (int32_t)i0;
			sp->n = (int32_t)(i1 - i0);
			sp->wf = (float)((double)(first_end - a) / (double)S);
			sp->wm = (float)((double)D / (double)S);
			sp->wl = sp->n > 1 ? (float)((double)(b - (i1 - 1) * D) / (double)S) : 0.0f;
		} else {
			/* Bilinear: centre of output o maps to (o+0.5)*S/D - 0.5. */
			double x = ((double)o + 0.5) * (double)S / (double)D - 0.5;
			int64_t i0 = (int64_t)floor(x);
			double f = x - (double)i0;
			if (i0 < 0) {
				i0 = 0;
				f = 0.0;
			}
			if (i0 >= S - 1) {
				i0 = S - 1;
				f = 0.0;
			}
			sp->start = (int32_t)i0;
			sp->n = f > 0.0 ? 2 : 1;
			sp->wf = (float)(1.0 - f);
			sp->wm = 0.0f;
			sp->wl = (float)f;
		}
	}
}

/* One source row (interleaved RGB) resampled to W outputs: out is [3][W]. */
static void hpass(const uint8_t *row, const struct span *hs, int W, float *out)
{
	float *r = out, *g = out + W, *b = out + 2 * W;
	for (int x = 0; x < W; x++) {
		const struct span *sp = &hs[x];
		const uint8_t *p = row + (size_t)sp->start * 3;
		float ar = sp->wf * p[0], ag = sp->wf * p[1], ab = sp->wf * p[2];
		if (sp->n > 1) {
			int32_t mid = sp->n - 2;
			if (mid > 0) {
				uint32_t sr = 0, sg = 0, sb = 0;
				const uint8_t *q = p + 3;
				for (int32_t k = 0; k < mid; k++, q += 3) {
					sr += q[0];
					sg += q[1];
					sb += q[2];
				}
				ar += sp->wm * (float)sr;
				ag += sp->wm * (float)sg;
				ab += sp->wm * (float)sb;
			}
			const uint8_t *l = p + (size_t)(sp->n - 1) * 3;
			ar += sp->wl * l[0];
			ag += sp->wl * l[1];
			ab += sp->wl * l[2];
		}
		r[x] = ar;
		g[x] = ag;
		b[x] = ab;
	}
}

int nd_prep_image(const nd_image *img, const nd_prep_params *p, float *out,
		  void *scratch, nd_error *err)
{
	void *own = NULL;
	int rc = 0;
	if (!params_ok(p))
		return nd_error_set(err, ND_EINVAL, "invalid preprocessing parameters");
	if (!img || !img->rgb || img->width < 1 || img->height < 1 || !out)
		return nd_error_set(err, ND_EINVAL, "empty image");
	const int W = p->width, H = p->height, sw = img->width, sh = img->height;
	if (!scratch) {
		own = malloc(nd_prep_scratch_size(p));
		if (!own)
			return nd_error_set(err, ND_ENOMEM, "out of memory");
		scratch = own;
	}
	/* Scratch layout: slot rows [2][3][W] floats, then spans [W + H]. */
	float *slot[2] = { scratch, (float *)scratch + 3 * (size_t)W };
	int slot_y[2] = { -1, -1 };
	struct span *hs = (struct span *)((float *)scratch + 6 * (size_t)W);
	struct span *vs = hs + W;
	const size_t plane = (size_t)W * (size_t)H;

	make_spans(hs, sw, W);
	make_spans(vs, sh, H);

	for (int oy = 0; oy < H; oy++) {
		const struct span *sp = &vs[oy];
		float *dst[3] = { out + (size_t)oy * W, out + plane + (size_t)oy * W,
				  out + 2 * plane + (size_t)oy * W };
		for (int32_t k = 0; k < sp->n; k++) {
			int y = sp->start + k;
			float w = k == 0 ? sp->wf : (k == sp->n - 1 ? sp->wl : sp->wm);
			const float *hr;
			if (slot_y[0] == y) {
				hr = slot[0];
			} else if (slot_y[1] == y) {
				hr = slot[1];
			} else {
				/* Rows arrive in increasing order: evict the older. */
				int s = slot_y[0] < slot_y[1] ? 0 : 1;
				hpass(img->rgb + (size_t)y * (size_t)sw * 3, hs, W, slot[s]);
				slot_y[s] = y;
				hr = slot[s];
			}
			for (int c = 0; c < 3; c++) {
				const float *h = hr + (size_t)c * W;
				float *d = dst[c];
				if (k == 0)
					for (int x = 0; x < W; x++)
						d[x] = w * h[x];
				else
					for (int x = 0; x < W; x++)
						d[x] += w * h[x];
			}
		}
	}
	/* (v/255 - mean) / std = v * (1/(255 std)) - mean/std */
	for (int c = 0; c < 3; c++) {
		const float a = 1.0f / (255.0f * p->std[c]), b = p->mean[c] / p->std[c];
		float *d = out + (size_t)c * plane;
		for (size_t i = 0; i < plane; i++)
			d[i] = d[i] * a - b;
	}
	free(own);
	return rc;
}

/* ---- the content box ---- */

static inline const uint8_t *box_px(const nd_image *img, int x, int y)
{
	return img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
}

static inline int box_near(const uint8_t *a, const uint8_t *b)
{
	return abs(a[0] - b[0]) <= ND_PREP_BAND_TOL && abs(a[1] - b[1]) <= ND_PREP_BAND_TOL &&
	       abs(a[2] - b[2]) <= ND_PREP_BAND_TOL;
}

/* 1 when the n pixels from p, step apart (in pixels), are a band: some
 * colour among five sampled along it holds ND_PREP_BAND_SHARE of them. */
static int is_band(const nd_image *img, int x, int y, int dx, int dy, int n)
{
	int need = (int)ceil(ND_PREP_BAND_SHARE * n);
	for (int s = 0; s < 5; s++) {
		int k = (int)((int64_t)(n - 1) * s / 4);
		const uint8_t *ref = box_px(img, x + k * dx, y + k * dy);
		int miss = 0;
		for (int i = 0; i < n && miss <= n - need; i++)
			miss += !box_near(box_px(img, x + i * dx, y + i * dy), ref);
		if (miss <= n - need)
			return 1;
	}
	return 0;
}

int nd_prep_content_box(const nd_image *img, int *bx0, int *by0, int *bx1, int *by1)
{
	int w = img->width, h = img->height, x0 = 0, y0 = 0, x1 = w, y1 = h;
	while (y1 - y0 > h / 8 && is_band(img, 0, y0, 1, 0, w))
		y0++;
	while (y1 - y0 > h / 8 && is_band(img, 0, y1 - 1, 1, 0, w))
		y1--;
	while (x1 - x0 > w / 8 && is_band(img, x0, y0, 0, 1, y1 - y0))
		x0++;
	while (x1 - x0 > w / 8 && is_band(img, x1 - 1, y0, 0, 1, y1 - y0))
		x1--;
	double kept = (double)(x1 - x0) * (y1 - y0) / ((double)w * h);
	int use = x1 - x0 >= 16 && y1 - y0 >= 16 && x1 - x0 > w / 8 && y1 - y0 > h / 8 &&
		  kept <= 1.0 - ND_PREP_BOX_MIN_CUT;
	if (!use) {
		x0 = y0 = 0;
		x1 = w;
		y1 = h;
	}
	*bx0 = x0;
	*by0 = y0;
	*bx1 = x1;
	*by1 = y1;
	return use;
}
