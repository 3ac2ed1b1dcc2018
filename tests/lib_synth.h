/* neardup tests — synthetic embeddings with planted near-duplicate clusters,
 * shared by tests/test_index.c, test_lsh.c, test_store.c and
 * bench/bench_index.c (header-only, deterministic).
 *
 * Model of a CNN embedding space (L2-normalised, dimension D):
 *  - every image has a common component (weight 0.35) along one global
 *    direction, as post-ReLU embeddings do, so unrelated images are not
 *    orthogonal: their cosine is about 0.1;
 *  - each image belongs to one of T topics (weight U[0.40, 0.70] along the
 *    topic's direction), so images of one topic have cosine 0.25-0.6;
 *  - the rest is isotropic noise.
 *  - A fraction of images are bases of near-duplicate clusters. A member m of
 *    a cluster with base b is m = c b + sqrt(1 - c^2) u with u a random unit
 *    vector orthogonal to b and c ~ U[cmin, cmax] (0.85..0.99 by default), so
 *    two members of a cluster have cosine about c1 c2 (0.72..0.98). Cluster
 *    sizes: 2-10 mostly, 1% of clusters 50-200 (photo bursts).
 *  - Vectors are written in a random order (cluster members get scattered ids).
 */
#ifndef NEARDUP_TESTS_LIB_SYNTH_H
#define NEARDUP_TESTS_LIB_SYNTH_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct synth_rng {
	uint64_t s;
	int have;
	double spare;
} synth_rng;

static inline uint64_t synth_u64(synth_rng *r)
{
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static inline double synth_unif(synth_rng *r)
{
	return ((double)(synth_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static inline double synth_gauss(synth_rng *r)
{
	if (r->have) {
		r->have = 0;
		return r->spare;
	}
	double u1 = synth_unif(r), u2 = synth_unif(r), rad = sqrt(-2.0 * log(u1));
	r->spare = rad * sin(6.283185307179586 * u2);
	r->have = 1;
	return rad * cos(6.283185307179586 * u2);
}

static inline void synth_normalize(float *x, uint32_t d)
{
	double n = 0;
	for (uint32_t i = 0; i < d; i++)
		n += (double)x[i] * x[i];
	n = n > 0 ? 1.0 / sqrt(n) : 0;
	for (uint32_t i = 0; i < d; i++)
		x[i] = (float)(x[i] * n);
}

static inline void synth_unit_gauss(synth_rng *r, float *x, uint32_t d)
{
	for (uint32_t i = 0; i < d; i++)
		x[i] = (float)synth_gauss(r);
	synth_normalize(x, d);
}

typedef struct synth {
	uint32_t d, topics;
	float *global;   /* [d] */
	float *topic;    /* [topics][d] */
	float cmin, cmax;
	float *tmp;      /* [d] */
} synth;

static inline int synth_init(synth *s, uint32_t d, uint32_t topics, uint64_t seed)
{
	synth_rng r = { seed * 7919 + 17, 0, 0 };
	s->d = d;
	s->topics = topics;
	s->cmin = 0.85f;
	s->cmax = 0.99f;
	s->global = malloc(sizeof(float) * d);
	s->topic = malloc(sizeof(float) * d * topics);
	s->tmp = malloc(sizeof(float) * d);
	if (!s->global || !s->topic || !s->tmp)
		return -1;
	synth_unit_gauss(&r, s->global, d);
	for (uint32_t t = 0; t < topics; t++)
		synth_unit_gauss(&r, s->topic + (size_t)t * d, d);
	return 0;
}

static inline void synth_free(synth *s)
{
	free(s->global);
	free(s->topic);
	free(s->tmp);
}

/* An unrelated image: global + topic + noise. */
static inline void synth_background(synth *s, synth_rng *r, float *x)
{
	uint32_t t = (uint32_t)(synth_u64(r) % s->topics);
	double a = 0.40 + 0.30 * synth_unif(r), g = 0.35;
	double rest = sqrt(1.0 - a * a - g * g);
	synth_unit_gauss(r, s->tmp, s->d);
	const float *tv = s->topic + (size_t)t * s->d;
	for (uint32_t i = 0; i < s->d; i++)
		x[i] = (float)(g * s->global[i] + a * tv[i] + rest * s->tmp[i]);
	synth_normalize(x, s->d);
}

/* A near duplicate of base (unit) at cosine c ~ U[cmin, cmax]. */
static inline void synth_perturb(synth *s, synth_rng *r, const float *base, float *x)
{
	double c = s->cmin + (s->cmax - s->cmin) * synth_unif(r), dot = 0;
	synth_unit_gauss(r, s->tmp, s->d);
	for (uint32_t i = 0; i < s->d; i++)
		dot += (double)s->tmp[i] * base[i];
	for (uint32_t i = 0; i < s->d; i++)
		s->tmp[i] = (float)(s->tmp[i] - dot * base[i]);
	synth_normalize(s->tmp, s->d);
	double q = sqrt(1.0 - c * c);
	for (uint32_t i = 0; i < s->d; i++)
		x[i] = (float)(c * base[i] + q * s->tmp[i]);
	synth_normalize(x, s->d);
}

/* Fills X[n][d] in random order; cluster[i] = cluster number + 1 or 0 for
 * background (may be NULL). bases[nc][d] (may be NULL) receives the cluster
 * bases (not in X) for making held-out queries; *nclusters their count.
 * About 6% of n become clusters (about a third of all vectors). */
static inline int synth_dataset(synth *s, uint64_t seed, size_t n, float *X, uint32_t *cluster,
				float **bases_out, size_t *nclusters)
{
	synth_rng r = { seed, 0, 0 };
	uint32_t d = s->d;
	size_t cap = n / 16 + 1, nc = 0, i = 0;
	uint32_t *lab = malloc(sizeof(uint32_t) * n);
	float *bases = malloc(sizeof(float) * d * cap);
	size_t *perm = malloc(sizeof(size_t) * n);
	if (!lab || !bases || !perm)
		return -1;
	/* item i goes to row perm[i] */
	for (i = 0; i < n; i++)
		perm[i] = i;
	for (i = n; i > 1; i--) {
		size_t j = (size_t)(synth_u64(&r) % i), t = perm[i - 1];
		perm[i - 1] = perm[j];
		perm[j] = t;
	}
	i = 0;
#define Y_ROW(k) (X + perm[k] * d)
	/* clusters until about a third of n is used */
	while (i < n / 3 && nc < cap) {
		size_t sz = synth_unif(&r) < 0.01 ? 50 + (size_t)(synth_u64(&r) % 151)
						   : 2 + (size_t)(synth_u64(&r) % 9);
		if (i + sz > n)
			sz = n - i;
		float *b = bases + nc * d;
		synth_background(s, &r, b);
		for (size_t k = 0; k < sz; k++, i++) {
			synth_perturb(s, &r, b, Y_ROW(i));
			lab[i] = (uint32_t)nc + 1;
		}
		nc++;
	}
	for (; i < n; i++) {
		synth_background(s, &r, Y_ROW(i));
		lab[i] = 0;
	}
#undef Y_ROW
	if (cluster)
		for (i = 0; i < n; i++)
			cluster[perm[i]] = lab[i];
	free(lab);
	free(perm);
	if (bases_out)
		*bases_out = bases;
	else
		free(bases);
	*nclusters = nc;
	return 0;
}

#endif
