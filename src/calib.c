/* neardup — calibrated similarity: background statistic (see neardup/calib.h). */
#include "neardup/calib.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "neardup/store.h"


struct nd_calib {
	nd_model_calib p;
	size_t count;
	int dim;
	float *bg; /* [count][dim] */
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
	if ((rc = nd_blas_init(err)))
		return rc;
	if (nd_mul_size(count, (size_t)dim * sizeof(float), &sz))
		return nd_error_set(err, ND_EOVERFLOW, "background set too large");
	c = calloc(1, sizeof(*c));
	if (!c || !(c->bg = malloc(sz))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the background set (%zu bytes)", sz);
		goto fail;
	}
	c->p = p;
	c->count = count;
	c->dim = dim;
	/* float16 -> float32 through the vector codec's own conversion */
	for (size_t i = 0; i < count; i++) {
		nd_vec_view v = { (uint32_t)dim, ND_VEC_F16, 1.0f, (const uint8_t *)(h + i * (size_t)dim), 0, 0 };
		nd_vector_dequant(&v, c->bg + i * (size_t)dim);
	}
	for (size_t i = 0; i < count * (size_t)dim; i++)
		if (!isfinite(c->bg[i])) {
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
	int rc = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n * D; i++)
		if (!isfinite(vecs[i]))
			return nd_error_set(err, ND_EINVAL, "embedding %zu has a non-finite component", i / D);
	if (!(s = malloc(N * sizeof(float))))
		return nd_error_set(err, ND_ENOMEM, "out of memory for the background statistic");
	for (size_t i = 0; i < n; i++) {
		/* one image at a time, so that b(x) does not depend on the batch
		 * (BLAS kernels for several rows may round differently): the
		 * statistic stored at ingest, after an upgrade and computed for a
		 * query are the same float. s[N] = bg[N][D] * x[D] */
		nd_blas_sgemm_t(0, 1, 1, (int)N, (int)D, 1.0f, vecs + i * D, (int)D, c->bg, (int)D, 0.0f, s,
				(int)N);
		select_top(s, N, k);
		if (c->p.stat == ND_CALIB_KTH) {
			out[i] = s[0];
		} else {
			double sum = 0;
			for (size_t j = 0; j < k; j++)
				sum += s[j];
			out[i] = (float)(sum / (double)k);
		}
	}
	free(s);
	return rc;
}

int nd_calib_stat_fn(void *c, const float *vecs, size_t n, float *out, nd_error *err)
{
	return nd_calib_stat(c, vecs, n, out, err);
}
