/* neardup — calibrated similarity: background statistic (see neardup/calib.h). */
#include "neardup/calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "neardup/store.h"


#define BLOCK 8 /* images per pass over the background set */

struct nd_calib {
	nd_model_calib p;
	size_t count;
	int dim;
	uint16_t *bg; /* [count][dim] IEEE half, a copy of the model's */
};

int nd_calib_create(const nd_model *m, nd_calib **out, nd_error *err)
{
	const uint16_t *h;
	size_t count, sz;
	int dim, rc;
	nd_calib *c = NULL;
	*out = NULL;
	nd_model_calib p;
	if (nd_model_calibration(m, &p) != 0)
		return nd_error_set(err, ND_ENOTFOUND, "the model has no calibration");
	if ((rc = nd_model_background(m, &h, &count, &dim)))
		return nd_error_set(err, ND_ENOTFOUND, "the model has no background set");
	ND_ASSERT(count >= (size_t)p.k && dim > 0);
	if (nd_mul_size(count, (size_t)dim * sizeof(uint16_t), &sz))
		return nd_error_set(err, ND_EOVERFLOW, "background set too large");
	c = calloc(1, sizeof(*c));
	if (!c || !(c->bg = malloc(sz))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the background set (%zu bytes)", sz);
		goto fail;
	}
	memcpy(c->bg, h, sz);
	c->p = p;
	c->count = count;
	c->dim = dim;
	/* inf / NaN halves: exponent all ones */
	for (size_t i = 0; i < count * (size_t)dim; i++)
		if ((c->bg[i] & 0x7C00) == 0x7C00) {
			rc = nd_error_set(err, ND_ECORRUPT, "background vector %zu has a non-finite component",
					  i / (size_t)dim);
			goto fail;
		}
	*out = c;
	return 0;
fail:
	nd_calib_free(c);
	return rc;
}

/* s[i][j] = <x[i], bg[j]> for i < m (<= BLOCK), j < N, with the store's
 * float16 dot product. Every dot product is computed the same way whatever m
 * and the other rows, so b(x) does not depend on how images are batched: the
 * statistic stored at ingest, after an upgrade and computed for a query is
 * the same float. Each background row is read once per block of images (it
 * stays in L1 meanwhile). */
static void dots(const nd_calib *c, const float *x, int m, float *s)
{
	const size_t N = c->count, D = (size_t)c->dim;
	for (size_t j = 0; j < N; j++) {
		nd_vec_view v = { .dim = (uint32_t)D, .format = ND_VEC_F16, .scale = 1.0f,
				  .data = (const uint8_t *)(c->bg + j * D) };
		for (int i = 0; i < m; i++)
			s[(size_t)i * N + j] = nd_vector_dot(&v, x + (size_t)i * D);
	}
}

void nd_calib_free(nd_calib *c)
{
	if (!c)
		return;
	free(c->bg);
	free(c);
}

void nd_calib_params(const nd_calib *c, nd_model_calib *p)
{
	*p = c->p;
}

size_t nd_calib_count(const nd_calib *c)
{
	return c->count;
}

int nd_calib_dim(const nd_calib *c)
{
	return c->dim;
}

static void sift_down(float *h, size_t k, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < k && h[l] < h[m])
			m = l;
		if (r < k && h[r] < h[m])
			m = r;
		if (m == i)
			return;
		float t = h[i];
		h[i] = h[m];
		h[m] = t;
		i = m;
	}
}

/* Moves the k largest of a[0..n) into a[0..k) as a min-heap: a[0] is the
 * k-th largest. 1 <= k <= n. */
static void select_top(float *a, size_t n, size_t k)
{
	for (size_t i = k / 2; i-- > 0;)
		sift_down(a, k, i);
	for (size_t j = k; j < n; j++)
		if (a[j] > a[0]) {
			a[0] = a[j];
			sift_down(a, k, 0);
		}
}

int nd_calib_stat(const nd_calib *c, const float *vecs, size_t n, float *out, nd_error *err)
{
	const size_t D = (size_t)c->dim, N = c->count, k = (size_t)c->p.k;
	float *s = NULL;
	size_t sz;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n * D; i++)
		if (!isfinite(vecs[i]))
			return nd_error_set(err, ND_EINVAL, "embedding %zu has a non-finite component", i / D);
	if (nd_mul_size(N, BLOCK, &sz) || nd_mul_size(sz, sizeof(float), &sz))
		return nd_error_set(err, ND_EOVERFLOW, "background set too large");
	if (!(s = malloc(sz)))
		return nd_error_set(err, ND_ENOMEM, "out of memory for the background statistic");
	for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
		int m = n - i0 < BLOCK ? (int)(n - i0) : BLOCK;
		dots(c, vecs + i0 * D, m, s);
		for (int i = 0; i < m; i++) {
			float *r = s + (size_t)i * N;
			select_top(r, N, k);
			if (c->p.stat == ND_CALIB_KTH) {
				out[i0 + (size_t)i] = r[0];
			} else {
				double sum = 0;
				for (size_t j = 0; j < k; j++)
					sum += r[j];
				out[i0 + (size_t)i] = (float)(sum / (double)k);
			}
		}
	}
	free(s);
	return 0;
}

int nd_calib_stat_fn(void *c, const float *vecs, size_t n, float *out, nd_error *err)
{
	return nd_calib_stat(c, vecs, n, out, err);
}
