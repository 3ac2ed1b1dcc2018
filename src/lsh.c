/* neardup — random-hyperplane LSH: hyperplanes, signatures, multi-probe. */
#include "neardup/lsh.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ND_LSH_AVX2 1
#endif

struct nd_lsh {
	uint32_t dim, tables, bits;
	uint64_t seed;
	float *planes; /* [tables*bits][dim], unit rows */
};

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* uniform in (0, 1] with 53 bits */
static double unit_open(uint64_t *s)
{
	return ((double)(splitmix64(s) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

int nd_lsh_create(nd_lsh **out, uint32_t dim, uint32_t tables, uint32_t bits, uint64_t seed,
		  nd_error *err)
{
	nd_lsh *l = NULL;
	size_t rows = (size_t)tables * bits, nfl;
	*out = NULL;
	if (dim == 0 || dim > ND_LSH_MAX_DIM || tables == 0 || tables > ND_LSH_MAX_TABLES ||
	    bits == 0 || bits > ND_LSH_MAX_BITS)
		return nd_error_set(err, ND_EINVAL,
				    "bad LSH parameters (dim %u, tables %u, bits %u): limits 1..%d, 1..%d, 1..%d",
				    dim, tables, bits, ND_LSH_MAX_DIM, ND_LSH_MAX_TABLES, ND_LSH_MAX_BITS);
	if (nd_mul_size(rows, dim, &nfl) || nd_mul_size(nfl, sizeof(float), &nfl))
		return nd_error_set(err, ND_EOVERFLOW, "hyperplane size overflows");
	l = calloc(1, sizeof(*l));
	if (!l)
		return nd_error_set(err, ND_ENOMEM, "out of memory for LSH");
	l->planes = malloc(nfl);
	if (!l->planes) {
		free(l);
		return nd_error_set(err, ND_ENOMEM, "out of memory for %zu bytes of hyperplanes", nfl);
	}
	l->dim = dim;
	l->tables = tables;
	l->bits = bits;
	l->seed = seed;
	uint64_t s = seed;
	for (size_t r = 0; r < rows; r++) {
		float *p = l->planes + r * dim;
		double norm = 0;
		for (uint32_t i = 0; i < dim; i += 2) {
			double u1 = unit_open(&s), u2 = unit_open(&s);
			double rad = sqrt(-2.0 * log(u1)), ang = 6.283185307179586 * u2;
			double g0 = rad * cos(ang), g1 = rad * sin(ang);
			p[i] = (float)g0;
			norm += (double)p[i] * p[i];
			if (i + 1 < dim) {
				p[i + 1] = (float)g1;
				norm += (double)p[i + 1] * p[i + 1];
			}
		}
		double inv = norm > 0 ? 1.0 / sqrt(norm) : 0;
		for (uint32_t i = 0; i < dim; i++)
			p[i] = (float)(p[i] * inv);
	}
	*out = l;
	return 0;
}

void nd_lsh_free(nd_lsh *lsh)
{
	if (!lsh)
		return;
	free(lsh->planes);
	free(lsh);
}

uint32_t nd_lsh_dim(const nd_lsh *lsh) { return lsh->dim; }
uint32_t nd_lsh_tables(const nd_lsh *lsh) { return lsh->tables; }
uint32_t nd_lsh_bits(const nd_lsh *lsh) { return lsh->bits; }

/* Fixed-order dot product: lane i accumulates elements i, i+8, i+16, ... with
 * fused multiply-adds; the tail (n % 8) goes to lanes 0.. in order; the eight
 * lanes are then summed as ((0+4)+(2+6))+((1+5)+(3+7)). */
static inline float reduce8(const float l[8])
{
	float a = l[0] + l[4], b = l[2] + l[6], c = l[1] + l[5], d = l[3] + l[7];
	return (a + b) + (c + d);
}

float nd_lsh_dot(const float *a, const float *b, size_t n)
{
	float lanes[8];
	size_t i = 0, n8 = n & ~(size_t)7;
#ifdef ND_LSH_AVX2
	__m256 acc = _mm256_setzero_ps();
	for (; i < n8; i += 8)
		acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
	_mm256_storeu_ps(lanes, acc);
#else
	for (int k = 0; k < 8; k++)
		lanes[k] = 0.0f;
	for (; i < n8; i += 8)
		for (int k = 0; k < 8; k++)
			lanes[k] = fmaf(a[i + k], b[i + k], lanes[k]);
#endif
	for (int k = 0; i < n; i++, k++)
		lanes[k] = fmaf(a[i], b[i], lanes[k]);
	return reduce8(lanes);
}

void nd_lsh_project(const nd_lsh *lsh, const float *vec, float *proj)
{
	size_t rows = (size_t)lsh->tables * lsh->bits;
	for (size_t r = 0; r < rows; r++)
		proj[r] = nd_lsh_dot(lsh->planes + r * lsh->dim, vec, lsh->dim);
}

void nd_lsh_sign_proj(const nd_lsh *lsh, const float *proj, uint32_t *sig)
{
	for (uint32_t t = 0; t < lsh->tables; t++) {
		uint32_t b = 0;
		const float *p = proj + (size_t)t * lsh->bits;
		for (uint32_t j = 0; j < lsh->bits; j++)
			b |= (uint32_t)(p[j] > 0.0f) << j;
		sig[t] = b;
	}
}

/* Four rows at once (independent accumulators hide the FMA latency), each
 * row with exactly the arithmetic of nd_lsh_dot, so results are identical. */
static void dot4(const float *p, size_t stride, const float *x, size_t n, float out[4])
{
	float lanes[4][8];
	size_t i = 0, n8 = n & ~(size_t)7;
#ifdef ND_LSH_AVX2
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	for (; i < n8; i += 8) {
		__m256 xv = _mm256_loadu_ps(x + i);
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i), xv, a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + stride + i), xv, a1);
		a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p + 2 * stride + i), xv, a2);
		a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p + 3 * stride + i), xv, a3);
	}
	_mm256_storeu_ps(lanes[0], a0);
	_mm256_storeu_ps(lanes[1], a1);
	_mm256_storeu_ps(lanes[2], a2);
	_mm256_storeu_ps(lanes[3], a3);
#else
	for (int r = 0; r < 4; r++)
		for (int k = 0; k < 8; k++)
			lanes[r][k] = 0.0f;
	for (; i < n8; i += 8)
		for (int r = 0; r < 4; r++)
			for (int k = 0; k < 8; k++)
				lanes[r][k] = fmaf(p[r * stride + i + k], x[i + k], lanes[r][k]);
#endif
	for (int k = 0; i + (size_t)k < n; k++)
		for (int r = 0; r < 4; r++)
			lanes[r][k] = fmaf(p[r * stride + i + k], x[i + k], lanes[r][k]);
	for (int r = 0; r < 4; r++)
		out[r] = reduce8(lanes[r]);
}

void nd_lsh_sign(const nd_lsh *lsh, const float *vecs, size_t n, uint32_t *sigs)
{
	size_t rows = (size_t)lsh->tables * lsh->bits, D = lsh->dim;
	for (size_t v = 0; v < n; v++) {
		const float *x = vecs + v * D;
		uint32_t *sg = sigs + v * lsh->tables;
		size_t r = 0;
		for (uint32_t t = 0; t < lsh->tables; t++)
			sg[t] = 0;
		for (; r + 4 <= rows; r += 4) {
			float o[4];
			dot4(lsh->planes + r * D, D, x, D, o);
			for (int k = 0; k < 4; k++)
				sg[(r + k) / lsh->bits] |= (uint32_t)(o[k] > 0.0f) << ((r + k) % lsh->bits);
		}
		for (; r < rows; r++)
			sg[r / lsh->bits] |= (uint32_t)(nd_lsh_dot(lsh->planes + r * D, x, D) > 0.0f)
					     << (r % lsh->bits);
	}
}

/* ---- multi-probe ---- */

struct probe {
	float score;   /* sum of squared margins of the flipped bits */
	uint16_t table;
	uint8_t last;  /* highest sorted position in mask */
	uint32_t mask; /* flipped bits, as positions in the table's margin order */
};

static void heap_push(struct probe *h, size_t *n, struct probe p)
{
	size_t i = (*n)++;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (h[up].score <= p.score)
			break;
		h[i] = h[up];
		i = up;
	}
	h[i] = p;
}

static struct probe heap_pop(struct probe *h, size_t *n)
{
	struct probe top = h[0], x = h[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1].score < h[c].score)
			c++;
		if (h[c].score >= x.score)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = x;
	return top;
}

int nd_lsh_probe_seq(const nd_lsh *lsh, const float *proj, uint32_t probes, uint16_t *table_out,
		     uint32_t *bucket_out, size_t *n, nd_error *err)
{
	uint32_t L = lsh->tables, K = lsh->bits;
	size_t cap = (size_t)L + 2 * (size_t)probes + 2, hn = 0, o = 0;
	struct probe *heap = NULL;
	uint8_t *order = NULL;  /* [L][K] bit indices by increasing margin */
	float *z = NULL;        /* [L][K] squared margins in that order */
	uint32_t *home = NULL;
	int rc = 0;

	heap = malloc(cap * sizeof(*heap));
	order = malloc((size_t)L * K);
	z = malloc((size_t)L * K * sizeof(float));
	home = malloc((size_t)L * sizeof(uint32_t));
	if (!heap || !order || !z || !home) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for probe sequence");
		goto done;
	}
	nd_lsh_sign_proj(lsh, proj, home);
	for (uint32_t t = 0; t < L; t++) {
		const float *p = proj + (size_t)t * K;
		uint8_t *ord = order + (size_t)t * K;
		float *zt = z + (size_t)t * K;
		/* insertion sort of K <= 30 margins */
		for (uint32_t j = 0; j < K; j++) {
			float m = p[j] * p[j];
			uint32_t i = j;
			while (i > 0 && zt[i - 1] > m) {
				zt[i] = zt[i - 1];
				ord[i] = ord[i - 1];
				i--;
			}
			zt[i] = m;
			ord[i] = (uint8_t)j;
		}
		table_out[o] = (uint16_t)t;
		bucket_out[o] = home[t];
		o++;
		if (probes)
			heap_push(heap, &hn, (struct probe){ zt[0], (uint16_t)t, 0, 1u });
	}
	for (uint32_t k = 0; k < probes && hn > 0; k++) {
		struct probe p = heap_pop(heap, &hn);
		const uint8_t *ord = order + (size_t)p.table * K;
		const float *zt = z + (size_t)p.table * K;
		uint32_t flip = 0;
		for (uint32_t m = p.mask, pos = 0; m; m >>= 1, pos++)
			if (m & 1)
				flip |= 1u << ord[pos];
		table_out[o] = p.table;
		bucket_out[o] = home[p.table] ^ flip;
		o++;
		if (p.last + 1u < K) {
			uint32_t nx = p.last + 1u;
			/* shift: replace the highest position by the next one */
			heap_push(heap, &hn, (struct probe){ p.score - zt[p.last] + zt[nx], p.table,
							     (uint8_t)nx,
							     (p.mask & ~(1u << p.last)) | (1u << nx) });
			/* expand: add the next position */
			heap_push(heap, &hn, (struct probe){ p.score + zt[nx], p.table, (uint8_t)nx,
							     p.mask | (1u << nx) });
		}
	}
	*n = o;
done:
	free(heap);
	free(order);
	free(z);
	free(home);
	return rc;
}
