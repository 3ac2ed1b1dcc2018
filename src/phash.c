/* neardup — 64-bit DCT perceptual hash (see neardup/phash.h). */
#include "neardup/phash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S ND_PHASH_SIDE
#define F 8 /* low frequencies kept per axis */

/* Area average of one axis: out[o] = mean of src over [o*n/S, (o+1)*n/S),
 * with fractional coverage at the edges. Coverage weights of output o over
 * source samples [lo[o], hi[o]); w[o][i - lo[o]]. */
struct axis {
	int lo[S], hi[S];
	double *w; /* S * (n/S + 2) weights */
	int stride;
};

static int axis_init(struct axis *a, int n)
{
	a->stride = n / S + 2;
	a->w = calloc((size_t)S * (size_t)a->stride, sizeof(double));
	if (!a->w)
		return -1;
	for (int o = 0; o < S; o++) {
		double x0 = (double)o * n / S, x1 = (double)(o + 1) * n / S;
		int lo = (int)floor(x0), hi = (int)ceil(x1);
		if (hi > n)
			hi = n;
		if (hi <= lo)
			hi = lo + 1;
		a->lo[o] = lo;
		a->hi[o] = hi;
		for (int i = lo; i < hi; i++) {
			double c = fmin(x1, i + 1.0) - fmax(x0, (double)i);
			a->w[o * a->stride + (i - lo)] = c / (x1 - x0);
		}
	}
	return 0;
}

/* The 32-point orthonormal DCT-II basis rows 0..F-1 (eval.py's _dct_matrix). */
static void dct_rows(double m[F][S])
{
	const double pi = 3.14159265358979323846;
	for (int k = 0; k < F; k++)
		for (int i = 0; i < S; i++)
			m[k][i] = cos(pi * (2 * i + 1) * k / (2.0 * S)) * sqrt(2.0 / S) *
				  (k == 0 ? 1.0 / sqrt(2.0) : 1.0);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int nd_phash_plane(const float *lum, int w, int h, uint64_t *out, nd_error *err)
{
	struct axis ax = { 0 }, ay = { 0 };
	double g[S][S], t[F][S], c[F * F], m[F][S], ac[F * F - 1];
	int rc = 0;

	if (w < 1 || h < 1 || w > (1 << 16) || h > (1 << 16))
		return nd_error_set(err, ND_EINVAL, "pHash of a %dx%d plane", w, h);
	if (axis_init(&ax, w) || axis_init(&ay, h)) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for a pHash");
		goto done;
	}
	/* separable box filter: rows first (into g via a row buffer), then columns */
	memset(g, 0, sizeof(g));
	for (int oy = 0; oy < S; oy++)
		for (int y = ay.lo[oy]; y < ay.hi[oy]; y++) {
			double wy = ay.w[oy * ay.stride + (y - ay.lo[oy])];
			const float *row = lum + (size_t)y * (size_t)w;
			for (int ox = 0; ox < S; ox++) {
				double acc = 0;
				for (int x = ax.lo[ox]; x < ax.hi[ox]; x++) {
					if (!isfinite(row[x])) {
						rc = nd_error_set(err, ND_EINVAL, "non-finite luma at (%d, %d)", x, y);
						goto done;
					}
					acc += ax.w[ox * ax.stride + (x - ax.lo[ox])] * row[x];
				}
				g[oy][ox] += wy * acc;
			}
		}
	/* c = M g M^T, the F x F low-frequency block */
	dct_rows(m);
	for (int u = 0; u < F; u++)
		for (int x = 0; x < S; x++) {
			double acc = 0;
			for (int y = 0; y < S; y++)
				acc += m[u][y] * g[y][x];
			t[u][x] = acc;
		}
	for (int u = 0; u < F; u++)
		for (int v = 0; v < F; v++) {
			double acc = 0;
			for (int x = 0; x < S; x++)
				acc += t[u][x] * m[v][x];
			c[u * F + v] = acc;
		}
	memcpy(ac, c + 1, sizeof(ac));
	qsort(ac, F * F - 1, sizeof(double), cmp_double);
	const double med = ac[(F * F - 1) / 2]; /* 63 values: the 32nd */
	uint64_t bits = 0;
	for (int i = 0; i < F * F; i++)
		if (c[i] > med)
			bits |= (uint64_t)1 << i;
	*out = bits;
done:
	free(ax.w);
	free(ay.w);
	return rc;
}

int nd_phash_tensor(const float *chw, int w, int h, const float mean[3], const float std[3],
		    float *lum, uint64_t *out, nd_error *err)
{
	static const float coef[3] = { 0.299f, 0.587f, 0.114f };
	if (w < 1 || h < 1 || w > (1 << 16) || h > (1 << 16))
		return nd_error_set(err, ND_EINVAL, "pHash of a %dx%d tensor", w, h);
	size_t n = (size_t)w * (size_t)h;
	float *own = lum ? NULL : malloc(n * sizeof(float));
	if (!lum && !(lum = own))
		return nd_error_set(err, ND_ENOMEM, "out of memory for a pHash");
	for (size_t i = 0; i < n; i++) {
		float y = 0;
		for (int ch = 0; ch < 3; ch++)
			y += coef[ch] * (chw[ch * n + i] * std[ch] + mean[ch]) * 255.0f;
		lum[i] = y;
	}
	int rc = nd_phash_plane(lum, w, h, out, err);
	free(own);
	return rc;
}

void nd_phash_dihedral(uint64_t h, uint64_t out[ND_PHASH_VARIANTS])
{
	for (unsigned k = 0; k < ND_PHASH_VARIANTS; k++)
		out[k] = nd_phash_variant(h, k);
}

int nd_phash_distance_dihedral(uint64_t a, uint64_t b, unsigned *which)
{
	int best = 65;
	unsigned arg = 0;
	for (unsigned k = 0; k < ND_PHASH_VARIANTS; k++) {
		int d = nd_phash_distance(a, nd_phash_variant(b, k));
		if (d < best) {
			best = d;
			arg = k;
		}
	}
	if (which)
		*which = arg;
	return best;
}
