/* neardup — nd_index_selfjoin: all pairs above a similarity.
 *
 * Method (chosen by measurement, see bench/results/index.md):
 * 1. One pass over the stored vectors (one read snapshot): every image's
 *    L signatures, recomputed from its stored vector (in parallel), packed
 *    into L*K bits; the vectors stay in the map (pointers, no copies).
 * 2. Table by table: the images sorted by bucket (a counting sort), then
 *    every pair of images whose buckets differ in at most `radius` bits is a
 *    candidate: the pairs within a bucket and the pairs of bucket B with
 *    each bucket B ^ m, m a mask of 1..radius bits, B ^ m > B (each
 *    unordered pair of buckets once). Buckets are split among threads.
 * 3. A candidate pair is dropped when it was a candidate in an earlier
 *    table (so each pair is considered, and emitted, once), or when its
 *    signatures over all L*K hyperplanes differ in more bits than a pair at
 *    min_sim would with probability ~3e-5 (each hyperplane separates two
 *    vectors at angle theta with probability theta/pi, independently: a
 *    binomial; threshold = mean + 4 standard deviations). The rest are
 *    compared exactly with the stored vectors.
 * 4. Pairs >= min_sim are buffered per thread and handed to the callback
 *    under a lock, a < b.
 * 5. With the perceptual-hash term (nd_index_calib), a greyscale or blurred
 *    copy can score above min_sim with a cosine far below what steps 2-3
 *    let through. So the images are also grouped by each 16-bit quarter of
 *    their hash, and a pair sharing a quarter (the first one it shares)
 *    whose hash term is non-zero is compared exactly unless steps 2-3
 *    already compared it. One thread: the groups are small. */
#include "index_impl.h"

#include "neardup/join.h"
#include "neardup/shard.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__F16C__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define JOIN_SIMD 1
#endif

void nd_selfjoin_params_init(nd_selfjoin_params *p)
{
	memset(p, 0, sizeof(*p));
	p->min_sim = 0.8f;
	p->bits = 0;
	p->tables = 0;
	p->max_group = 20000;
	p->radius = ND_INDEX_DEFAULT_JOIN_RADIUS;
	p->threads = 0;
}

#define PAIRBUF 4096
#define CHUNK 4096 /* buckets per work item */
#define Z_FILTER 4.0
/* bins of the pair's mean statistic for the signature filter: a pair of
 * busy images needs a higher cosine than the index's least busy image
 * would, and a low-statistic outlier must not loosen the filter for all */
#define THR_BINS 32

struct jshared {
	nd_index *ix;
	const nd_selfjoin_params *p;
	nd_pair_fn fn;
	void *ctx;
	uint32_t L, K, T, bits, shift, radius, dim, W;
	uint32_t nmask;
	uint32_t *masks;          /* bucket masks of 1..radius bits */
	uint32_t thr;             /* signature filter: max differing bits over L*K */
	/* the same by the pair's mean statistic (calibrated; a distributed
	 * join's rows carry the statistic too, so both filter alike):
	 * bin i covers means from stat_lo + i / stat_scale up */
	uint32_t thr_stat[THR_BINS];
	float stat_lo, stat_scale;
	int per_pair;
	int max_dd;               /* pair score: the hash distance (best variant) above
				   * which a pair under the filter's cosine cannot pass */
	int cal;                  /* calibrated similarity (the statistic is in vv[].stat) */
	size_t n;                 /* images */
	nd_vec_view *vv;          /* [n] stored vectors */
	uint32_t *ids;            /* [n] ids */
	uint64_t *sig;            /* [n][W] packed signatures */
	/* current table */
	uint32_t t;
	uint32_t *off;            /* [2^bits + 1] */
	uint64_t *rows;           /* [n][1 + W]: id, packed signature, in bucket order */
	atomic_uint_fast64_t next;
	atomic_int stop;
	pthread_mutex_t lock;
	int defer;                /* hand candidates (sim 0) to fn instead of comparing them */
	const unsigned char *parts; /* [T + 4]: tables, then hash quarters, to run (NULL: all) */
	int rc;                   /* first non-zero callback return or error */
	nd_error err;
	nd_selfjoin_stats st;     /* totals (under lock) */
};

struct jpair {
	uint32_t a, b;
	float sim;
};

struct jworker {
	struct jshared *s;
	float *fa;
	struct jpair buf[PAIRBUF];
	size_t nbuf;
	nd_selfjoin_stats st;
	/* signing pass */
	size_t lo, hi;
};

static inline uint32_t sig_field(const uint64_t *w, uint32_t u, uint32_t K)
{
	uint32_t o = u * K, wi = o >> 6, sh = o & 63;
	uint64_t v = w[wi] >> sh;
	if (sh + K > 64)
		v |= w[wi + 1] << (64 - sh);
	return (uint32_t)(v & ((1ull << K) - 1));
}

/* Bits in which two packed signatures (W words) differ. */
static inline uint32_t sig_distance(const uint64_t *sa, const uint64_t *sb, uint32_t W)
{
	uint32_t d = 0;
	for (uint32_t q = 0; q < W; q++)
		d += (uint32_t)__builtin_popcountll(sa[q] ^ sb[q]);
	return d;
}

/* The first table u < below in which two images are a candidate pair (their
 * top bits, K >> sh of them, differ in at most r), or below if none. */
static inline uint32_t first_candidate_table(const uint64_t *sa, const uint64_t *sb, uint32_t below,
					     uint32_t K, uint32_t sh, uint32_t r)
{
	uint32_t u = 0;
	while (u < below && (uint32_t)__builtin_popcount((sig_field(sa, u, K) ^ sig_field(sb, u, K)) >> sh) > r)
		u++;
	return u;
}

/* <a, b> of two stored vectors; fa: a's components once dequantised. */
static float pair_dot(const nd_vec_view *a, const nd_vec_view *b, float *fa, int *have_a)
{
#ifdef JOIN_SIMD
	if (a->format == ND_VEC_F16 && b->format == ND_VEC_F16 && a->dim % 16 == 0) {
		__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
		for (uint32_t i = 0; i < a->dim; i += 16) {
			__m128i xa = _mm_loadu_si128((const __m128i *)(a->data + 2 * i));
			__m128i ya = _mm_loadu_si128((const __m128i *)(a->data + 2 * i + 16));
			__m128i xb = _mm_loadu_si128((const __m128i *)(b->data + 2 * i));
			__m128i yb = _mm_loadu_si128((const __m128i *)(b->data + 2 * i + 16));
			s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(xa), _mm256_cvtph_ps(xb), s0);
			s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(ya), _mm256_cvtph_ps(yb), s1);
		}
		s0 = _mm256_add_ps(s0, s1);
		__m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
		h = _mm_add_ps(h, _mm_movehl_ps(h, h));
		h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
		return _mm_cvtss_f32(h);
	}
#endif
	if (!*have_a) {
		nd_vector_dequant(a, fa);
		*have_a = 1;
	}
	return nd_vector_dot(b, fa);
}

/* The similarity of two stored vectors: the cosine, or on a calibrated
 * handle (cal) the calibrated score with the hash term. The one scorer of
 * the self-join, wherever its pairs are compared (nd_join_score). */
static float pair_sim(const nd_index *ix, int cal, const nd_vec_view *a, const nd_vec_view *b, float *fa,
		      int *have_a)
{
	float sim = pair_dot(a, b, fa, have_a);
	if (cal)
		sim = nd__index_pair_score(ix, sim, a->stat, a->has_phash, a->phash, b->stat, b->has_phash, b->phash);
	return sim;
}

/* Hands the buffered pairs to the callback; non-zero once the join stops. */
static int flush_pairs(struct jworker *w)
{
	struct jshared *s = w->s;
	int stop = 0;
	pthread_mutex_lock(&s->lock);
	if (s->rc)
		stop = 1;
	for (size_t i = 0; i < w->nbuf && !stop; i++) {
		s->st.pairs_emitted++;
		int r = s->fn(s->ctx, w->buf[i].a, w->buf[i].b, w->buf[i].sim);
		if (r) {
			s->rc = r;
			atomic_store(&s->stop, 1);
			stop = 1;
		}
	}
	pthread_mutex_unlock(&s->lock);
	w->nbuf = 0;
	return stop;
}

/* Compares images a and b (indexes into vv) exactly and buffers the pair
 * when it reaches min_sim; 1 once the join stops. */
static int compare_pair(struct jworker *w, size_t a, size_t b, int *have_a)
{
	struct jshared *s = w->s;
	float sim = 0;
	if (!s->defer) {
		w->st.pairs_compared++;
		sim = pair_sim(s->ix, s->cal, &s->vv[a], &s->vv[b], w->fa, have_a);
		if (sim < s->p->min_sim)
			return 0;
	}
	/* ids are mapped at emission */
	w->buf[w->nbuf].a = s->ids[a] < s->ids[b] ? s->ids[a] : s->ids[b];
	w->buf[w->nbuf].b = s->ids[a] < s->ids[b] ? s->ids[b] : s->ids[a];
	w->buf[w->nbuf].sim = sim;
	return ++w->nbuf == PAIRBUF && flush_pairs(w);
}

/* The pairs of row i (bucket B) with rows [j0, j1). */
/* 1 when the signatures of a and b (indexes into vv), d bits apart, pass
 * the filter at the cosine this pair needs. */
static inline int sig_pass(const struct jshared *s, size_t a, size_t b, uint32_t d)
{
	if (d > s->thr)
		return 0;
	if (!s->per_pair)
		return 1;
	float m = 0.5f * (s->vv[a].stat + s->vv[b].stat);
	int i = (int)((m - s->stat_lo) * s->stat_scale);
	i = i < 0 ? 0 : i >= THR_BINS ? THR_BINS - 1 : i;
	return d <= s->thr_stat[i];
}

static int join_rows(struct jworker *w, const uint64_t *ra, const uint64_t *rows, size_t j0, size_t j1,
		     int *have_a)
{
	struct jshared *s = w->s;
	const uint32_t W = s->W, S = 1 + W, t = s->t, K = s->K, sh = s->shift, r = s->radius;
	const uint64_t *sa = ra + 1;
	uint32_t a = (uint32_t)ra[0];
	w->st.pairs_candidates += j1 - j0;
	for (size_t j = j0; j < j1; j++) {
		const uint64_t *rb = rows + j * S, *sb = rb + 1;
		if (!sig_pass(s, a, (size_t)rb[0], sig_distance(sa, sb, W)))
			continue;
		/* a candidate in an earlier table already */
		if (first_candidate_table(sa, sb, t, K, sh, r) < t)
			continue;
		/* rows hold indexes into vv */
		if (compare_pair(w, a, (uint32_t)rb[0], have_a))
			return 1;
	}
	return 0;
}

/* Work item: buckets [b0, b1), mask by mask (the within-bucket pairs
 * first), so that both sides of each bucket pair are read in increasing
 * address order (the rows of B ^ m for a fixed m lie in a few runs). */
static int join_chunk(struct jworker *w, size_t b0, size_t b1)
{
	struct jshared *s = w->s;
	const uint32_t S = 1 + s->W;
	const uint64_t cap = s->p->max_group;
	const size_t nb = (size_t)1 << s->bits;
	for (size_t B = b0; B < b1; B++) {
		uint64_t n = s->off[B + 1] - s->off[B];
		if (!n)
			continue;
		if (n > w->st.largest_group)
			w->st.largest_group = n;
		if (n >= 2)
			w->st.groups++;
		int capped = cap && n > cap;
		if (capped) {
			w->st.groups_capped++;
			w->st.pairs_skipped += n * (n - 1) / 2;
		}
		for (size_t i = s->off[B]; i < s->off[B + 1] && !capped; i++) {
			int have_a = 0;
			if (join_rows(w, s->rows + i * S, s->rows, i + 1, s->off[B + 1], &have_a))
				return 1;
		}
	}
	for (uint32_t mi = 0; mi < s->nmask; mi++) {
		const uint32_t mk = s->masks[mi];
		for (size_t B = b0; B < b1; B++) {
			size_t B2 = B ^ mk;
			if (B2 < B || B2 >= nb)
				continue;
			uint64_t n = s->off[B + 1] - s->off[B], n2 = s->off[B2 + 1] - s->off[B2];
			if (!n || !n2)
				continue;
			if (cap && (n > cap || n2 > cap)) {
				w->st.pairs_skipped += n * n2;
				continue;
			}
			for (size_t i = s->off[B]; i < s->off[B + 1]; i++) {
				int have_a = 0;
				if (join_rows(w, s->rows + i * S, s->rows, s->off[B2], s->off[B2 + 1], &have_a))
					return 1;
			}
		}
	}
	return 0;
}

static void *join_worker(void *arg)
{
	struct jworker *w = arg;
	struct jshared *s = w->s;
	const size_t nb = (size_t)1 << s->bits;
	for (;;) {
		if (atomic_load(&s->stop))
			break;
		size_t b0 = (size_t)atomic_fetch_add(&s->next, CHUNK);
		if (b0 >= nb)
			break;
		if (join_chunk(w, b0, b0 + CHUNK < nb ? b0 + CHUNK : nb))
			return NULL;
	}
	if (w->nbuf)
		flush_pairs(w);
	return NULL;
}

/* Signatures of images [lo, hi), packed. */
static void *sign_worker(void *arg)
{
	struct jworker *w = arg;
	struct jshared *s = w->s;
	uint32_t sig[ND_LSH_MAX_TABLES];
	for (size_t i = w->lo; i < w->hi; i++) {
		uint64_t *pk = s->sig + i * s->W;
		nd_vector_dequant(&s->vv[i], w->fa);
		nd_lsh_sign(s->ix->lsh, w->fa, 1, sig);
		memset(pk, 0, s->W * sizeof(uint64_t));
		for (uint32_t u = 0; u < s->L; u++) {
			uint32_t o = u * s->K, wi = o >> 6, sh = o & 63;
			pk[wi] |= (uint64_t)sig[u] << sh;
			if (sh + s->K > 64)
				pk[wi + 1] |= (uint64_t)sig[u] >> (64 - sh);
		}
	}
	return NULL;
}

/* 1 when steps 2-3 compared the pair (a, b): a candidate in some table
 * and through the signature filter. */
static int lsh_compared(const struct jshared *s, size_t a, size_t b)
{
	const uint64_t *sa = s->sig + a * s->W, *sb = s->sig + b * s->W;
	return sig_pass(s, a, b, sig_distance(sa, sb, s->W)) &&
	       first_candidate_table(sa, sb, s->T, s->K, s->shift, s->radius) < s->T;
}

/* With the pair score: the lowest cosine at which a pair can reach min_sim
 * without help from its hashes (those pairs step 5 finds), at the most
 * favourable statistic of the index (bisection; the score grows with the
 * cosine). */
static double score_floor(const nd_score_model *m, float min_sim, float lo_stat, float hi_stat)
{
	double best = 1.0;
	const float st[2] = { lo_stat, hi_stat };
	for (int k = 0; k < 2; k++) {
		nd_score_side a = { 1, st[k], 0, 0 }, b = a;
		if (nd_score_pair(m, 1.0f, &a, &b) < min_sim)
			continue;
		double lo = -1.0, hi = 1.0;
		for (int it = 0; it < 40; it++) {
			double mid = 0.5 * (lo + hi);
			if (nd_score_pair(m, (float)mid, &a, &b) >= min_sim)
				hi = mid;
			else
				lo = mid;
		}
		if (lo < best)
			best = lo;
	}
	return best;
}

/* The first (quarter q, variant k, direction) at which the pair x < y
 * shares a quarter: x's hash with variant k of y's (direction 0) or y's
 * with variant k of x's (1; for k = 0 the same test as 0), as one number,
 * so that the pair is compared at that point of step 5 only, once. */
static unsigned first_quarter_match(uint64_t hx, uint64_t hy)
{
	for (unsigned q = 0; q < ND_PHASH_QUARTERS; q++)
		for (unsigned k = 0; k < ND_PHASH_VARIANTS; k++) {
			if (nd__index_phash_bucket(hx, q) == nd__index_phash_bucket(nd_phash_variant(hy, k), q))
				return (q * ND_PHASH_VARIANTS + k) * 2;
			if (nd__index_phash_bucket(hy, q) == nd__index_phash_bucket(nd_phash_variant(hx, k), q))
				return (q * ND_PHASH_VARIANTS + k) * 2 + 1;
		}
	return UINT32_MAX;
}

/* Step 5 with the pair score on worker w: the pairs where the quarter of
 * one image's hash equals that quarter of a rotation or flip of the
 * other's (the score reads the hash distance over the 8 variants), each
 * compared once, unless steps 2-3 did. */
static int join_phash_dihedral(struct jshared *s, struct jworker *w, nd_error *err)
{
	const size_t nbk = (size_t)1 << 16, V = ND_PHASH_VARIANTS;
	const uint64_t cap = s->p->max_group;
	size_t ne;
	uint32_t *off = calloc(nbk + 1, sizeof(uint32_t)), *order = NULL;
	int rc = 0;
	if (nd_mul_size(s->n, V, &ne) || ne >= UINT32_MAX || !off ||
	    !(order = malloc(ne * sizeof(uint32_t)))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join");
		goto done;
	}
	/* entries e = i * V + k: image i under variant k of its hash */
	for (uint32_t q = 0; q < ND_PHASH_QUARTERS && !rc; q++) {
		if (s->parts && !s->parts[s->T + q])
			continue;
		memset(off, 0, (nbk + 1) * sizeof(uint32_t));
		for (size_t i = 0; i < s->n; i++)
			if (s->vv[i].has_phash)
				for (size_t k = 0; k < V; k++)
					off[nd__index_phash_bucket(nd_phash_variant(s->vv[i].phash, (unsigned)k), q) + 1]++;
		for (size_t b = 1; b <= nbk; b++)
			off[b] += off[b - 1];
		for (size_t i = 0; i < s->n; i++)
			if (s->vv[i].has_phash)
				for (size_t k = 0; k < V; k++)
					order[off[nd__index_phash_bucket(nd_phash_variant(s->vv[i].phash, (unsigned)k), q)]++] =
						(uint32_t)(i * V + k);
		memmove(off + 1, off, nbk * sizeof(uint32_t));
		off[0] = 0;
		for (size_t B = 0; B < nbk; B++) {
			uint64_t n = off[B + 1] - off[B];
			if (n < 2)
				continue;
			if (cap && n > (uint64_t)cap * V) {
				w->st.groups_capped++;
				w->st.pairs_skipped += n * (n - 1) / 2;
				continue;
			}
			/* base: an image under its own hash (k = 0); probe: any entry */
			for (size_t i = off[B]; i < off[B + 1]; i++) {
				if (order[i] % V)
					continue;
				const size_t a = order[i] / V;
				int have_a = 0;
				for (size_t j = off[B]; j < off[B + 1]; j++) {
					const size_t b = order[j] / V, k = order[j] % V;
					if (b == a)
						continue;
					/* found here: a's hash with variant k of b's */
					size_t x = a < b ? a : b, y = a < b ? b : a;
					if (nd_phash_distance_dihedral(s->vv[x].phash, s->vv[y].phash, NULL) > s->max_dd)
						continue;
					unsigned here = (q * (unsigned)V + (unsigned)k) * 2 + (a == x ? 0 : 1);
					if (first_quarter_match(s->vv[x].phash, s->vv[y].phash) != here)
						continue;
					if (lsh_compared(s, x, y))
						continue;
					w->st.pairs_candidates++;
					w->st.phash_compared++;
					int have_x = 0;
					if (compare_pair(w, x, y, x == a ? &have_a : &have_x))
						goto done;
				}
			}
		}
	}
	if (w->nbuf)
		flush_pairs(w);
done:
	free(off);
	free(order);
	return rc;
}

/* Step 5 on worker w: the pairs that share a quarter of their hashes. */
static int join_phash(struct jshared *s, struct jworker *w, nd_error *err)
{
	if (s->ix->calib.score)
		return join_phash_dihedral(s, w, err);
	const size_t nbk = (size_t)1 << 16;
	const uint64_t cap = s->p->max_group;
	uint32_t *off = calloc(nbk + 1, sizeof(uint32_t));
	uint32_t *order = malloc(s->n * sizeof(uint32_t));
	int rc = 0;
	if (!off || !order) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join");
		goto done;
	}
	for (uint32_t q = 0; q < ND_PHASH_QUARTERS && !rc; q++) {
		if (s->parts && !s->parts[s->T + q])
			continue;
		memset(off, 0, (nbk + 1) * sizeof(uint32_t));
		for (size_t i = 0; i < s->n; i++)
			if (s->vv[i].has_phash)
				off[nd__index_phash_bucket(s->vv[i].phash, q) + 1]++;
		for (size_t b = 1; b <= nbk; b++)
			off[b] += off[b - 1];
		for (size_t i = 0; i < s->n; i++)
			if (s->vv[i].has_phash)
				order[off[nd__index_phash_bucket(s->vv[i].phash, q)]++] = (uint32_t)i;
		memmove(off + 1, off, nbk * sizeof(uint32_t));
		off[0] = 0;
		for (size_t B = 0; B < nbk; B++) {
			uint64_t n = off[B + 1] - off[B];
			if (n < 2)
				continue;
			if (cap && n > cap) {
				w->st.groups_capped++;
				w->st.pairs_skipped += n * (n - 1) / 2;
				continue;
			}
			for (size_t i = off[B]; i < off[B + 1]; i++) {
				const size_t a = order[i];
				const uint64_t ha = s->vv[a].phash;
				int have_a = 0;
				for (size_t j = i + 1; j < off[B + 1]; j++) {
					const size_t b = order[j];
					const uint64_t hb = s->vv[b].phash;
					uint32_t q0 = 0;
					if (nd__index_phash_bonus(s->ix, 1, ha, 1, hb) <= 0.0f)
						continue;
					while (nd__index_phash_bucket(ha, q0) != nd__index_phash_bucket(hb, q0))
						q0++;
					if (q0 < q || lsh_compared(s, a, b))
						continue;
					w->st.pairs_candidates++;
					w->st.phash_compared++;
					if (compare_pair(w, a, b, &have_a))
						goto done;
				}
			}
		}
	}
	if (w->nbuf)
		flush_pairs(w);
done:
	free(off);
	free(order);
	return rc;
}

static void add_stats(nd_selfjoin_stats *to, const nd_selfjoin_stats *f)
{
	to->groups += f->groups;
	to->pairs_compared += f->pairs_compared;
	to->groups_capped += f->groups_capped;
	to->pairs_skipped += f->pairs_skipped;
	to->pairs_candidates += f->pairs_candidates;
	to->phash_compared += f->phash_compared;
	if (f->largest_group > to->largest_group)
		to->largest_group = f->largest_group;
}

/* The join's settings from p; fn gets the pairs. On success the lock is
 * initialised (join_free releases it). */
static int join_setup(struct jshared *s, nd_index *ix, const nd_selfjoin_params *p, nd_pair_fn fn, void *ctx,
		      unsigned *nth, nd_error *err)
{
	memset(s, 0, sizeof(*s));
	s->K = ix->meta.bits;
	s->L = ix->meta.tables;
	s->bits = p->bits ? p->bits : s->K;
	if (s->bits > s->K)
		return nd_error_set(err, ND_EINVAL, "self-join bits %u exceed the index's %u", p->bits, s->K);
	if (p->radius > 4 || p->radius > s->bits)
		return nd_error_set(err, ND_EINVAL, "self-join radius %u: at most 4 and at most the bits (%u)",
				    p->radius, s->bits);
	s->cal = ix->calibrated && !p->raw;
	const float lim = s->cal ? 4.0f : 1.0f;
	if (!(p->min_sim >= -lim && p->min_sim <= lim))
		return nd_error_set(err, ND_EINVAL, "self-join min_sim %g outside [%g, %g]", (double)p->min_sim,
				    -(double)lim, (double)lim);
	s->ix = ix;
	s->p = p;
	s->fn = fn;
	s->ctx = ctx;
	s->dim = ix->meta.dim;
	s->T = p->tables && p->tables < s->L ? p->tables : s->L;
	s->shift = s->K - s->bits;
	s->radius = p->radius;
	s->W = (s->L * s->K + 63) / 64;
	atomic_init(&s->next, 0);
	atomic_init(&s->stop, 0);
	/* masks of 1..radius bits among the bits used, fewest bits first */
	{
		size_t nm = 0, cm = 0;
		for (uint32_t rr = 1; rr <= s->radius; rr++)
			for (uint64_t mk = 1; mk < ((uint64_t)1 << s->bits); mk++)
				if ((uint32_t)__builtin_popcountll(mk) == rr)
					cm++;
		s->masks = malloc((cm ? cm : 1) * sizeof(uint32_t));
		if (!s->masks)
			return nd_error_set(err, ND_ENOMEM, "out of memory for the self-join");
		/* radius <= 4 of <= 30 bits: at most ~31k masks; built by enumeration */
		for (uint32_t rr = 1; rr <= s->radius; rr++) {
			uint32_t idx[4];
			for (uint32_t q = 0; q < rr; q++)
				idx[q] = q;
			for (;;) {
				uint32_t mk = 0;
				for (uint32_t q = 0; q < rr; q++)
					mk |= 1u << idx[q];
				s->masks[nm++] = mk;
				int q = (int)rr - 1;
				while (q >= 0 && idx[q] == s->bits - rr + (uint32_t)q)
					q--;
				if (q < 0)
					break;
				idx[q]++;
				for (uint32_t q2 = (uint32_t)q + 1; q2 < rr; q2++)
					idx[q2] = idx[q2 - 1] + 1;
			}
		}
		s->nmask = (uint32_t)nm;
	}
	unsigned n = p->threads;
	if (n == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);
		n = c > 0 ? (unsigned)c : 1;
	}
	*nth = n > ND_JOIN_MAX_THREADS ? ND_JOIN_MAX_THREADS : n;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s->masks);
		s->masks = NULL;
		return nd_error_set(err, ND_ENOMEM, "cannot create a mutex");
	}
	return 0;
}

static void join_free(struct jshared *s)
{
	free(s->masks);
	free(s->vv);
	free(s->ids);
	free(s->sig);
	free(s->rows);
	free(s->off);
	pthread_mutex_destroy(&s->lock);
}

/* The most signature bits (of L*K) two vectors with cosine c0 differ in,
 * but for a 4-sigma tail. */
static uint32_t sig_threshold(const struct jshared *s, double c0)
{
	c0 = c0 < -1 ? -1 : c0 > 1 ? 1 : c0;
	double n = (double)s->L * s->K, p0 = acos(c0) / M_PI;
	double thr = n * p0 + Z_FILTER * sqrt(n * p0 * (1 - p0));
	return thr >= n ? (uint32_t)n : (uint32_t)thr;
}

/* Steps 1 (unless the signatures are given) to 5 over s->n images in
 * s->vv / s->ids, min_stat and max_stat the lowest and highest statistic
 * of every image of the collection (calibrated). */
static int join_exec(struct jshared *s, unsigned nth, float min_stat, float max_stat, int have_sig,
		     nd_error *err)
{
	struct jworker *ws = NULL;
	const nd_selfjoin_params *p = s->p;
	int rc = 0;
	size_t sz;
	if (s->n < 2)
		return 0;
	/* signature filter (see the top of the file), at the lowest cosine a
	 * pair may need: calibrated, cos >= min_sim - offset + beta * (sa + sb) / 2 */
	{
		double c0 = p->min_sim;
		if (s->cal && s->ix->calib.score) {
			c0 = score_floor(s->ix->calib.score, p->min_sim, min_stat, max_stat);
			s->max_dd = -1;
			for (int dd = 0; dd <= 64; dd++)
				if (nd_score_bound(s->ix->calib.score, (float)c0, min_stat, dd) >= p->min_sim ||
				    nd_score_bound(s->ix->calib.score, (float)c0, max_stat, dd) >= p->min_sim)
					s->max_dd = dd;
		} else if (s->cal) {
			c0 = (double)p->min_sim - s->ix->calib.offset + (double)s->ix->calib.beta * min_stat;
		}
		s->thr = sig_threshold(s, c0);
		/* per pair: the floor at the lower edge of each bin of the mean
		 * statistic (at either edge for the score, which need not fall
		 * with the statistic) */
		s->per_pair = s->cal && max_stat > min_stat;
		if (s->per_pair) {
			s->stat_lo = min_stat;
			s->stat_scale = THR_BINS / (max_stat - min_stat);
			for (int i = 0; i < THR_BINS; i++) {
				float lo = min_stat + (float)i / s->stat_scale, hi = lo + 1.0f / s->stat_scale;
				double c = s->ix->calib.score
						   ? score_floor(s->ix->calib.score, p->min_sim, lo, hi)
						   : (double)p->min_sim - s->ix->calib.offset + (double)s->ix->calib.beta * lo;
				s->thr_stat[i] = sig_threshold(s, c);
			}
		}
	}
	if (nth > s->n / 64 + 1)
		nth = (unsigned)(s->n / 64 + 1);
	size_t srow, nbk = ((size_t)1 << s->bits) + 1;
	if (nd_mul_size(s->n, (size_t)s->W * 8, &sz) || nd_mul_size(s->n, (size_t)(1 + s->W) * 8, &srow))
		return nd_error_set(err, ND_EOVERFLOW, "index too large");
	if (!have_sig)
		s->sig = malloc(sz);
	s->rows = malloc(srow);
	s->off = calloc(nbk, sizeof(uint32_t));
	ws = calloc(nth, sizeof(*ws));
	if (!s->sig || !s->rows || !s->off || !ws) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join (%zu images)", s->n);
		goto done;
	}
	for (unsigned i = 0; i < nth; i++) {
		ws[i].s = s;
		ws[i].fa = malloc(s->dim * sizeof(float));
		ws[i].lo = s->n * i / nth;
		ws[i].hi = s->n * (i + 1) / nth;
		if (!ws[i].fa) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join");
			goto done;
		}
	}
	if (!have_sig)
		nd__index_run_parallel(ws, sizeof(ws[0]), nth, sign_worker);

	const uint32_t S = 1 + s->W;
	for (s->t = 0; s->t < s->T && !s->rc; s->t++) {
		if (s->parts && !s->parts[s->t])
			continue;
		/* counting sort of the images by bucket in table t */
		memset(s->off, 0, nbk * sizeof(uint32_t));
		for (size_t i = 0; i < s->n; i++)
			s->off[(sig_field(s->sig + i * s->W, s->t, s->K) >> s->shift) + 1]++;
		for (size_t b = 1; b < nbk; b++)
			s->off[b] += s->off[b - 1];
		for (size_t i = 0; i < s->n; i++) {
			uint32_t b = sig_field(s->sig + i * s->W, s->t, s->K) >> s->shift;
			uint64_t *row = s->rows + (size_t)s->off[b]++ * S;
			row[0] = i;
			memcpy(row + 1, s->sig + i * s->W, s->W * 8);
		}
		memmove(s->off + 1, s->off, (nbk - 1) * sizeof(uint32_t));
		s->off[0] = 0;
		atomic_store(&s->next, 0);
		nd__index_run_parallel(ws, sizeof(ws[0]), nth, join_worker);
	}
	if (s->cal && (s->ix->calib.phash_weight > 0 || s->ix->calib.score) && !s->rc &&
	    (rc = join_phash(s, &ws[0], err)))
		goto done;
	for (unsigned i = 0; i < nth; i++)
		add_stats(&s->st, &ws[i].st);
	rc = s->rc;
done:
	if (ws)
		for (unsigned i = 0; i < nth; i++)
			free(ws[i].fa);
	free(ws);
	return rc;
}

/* The stored vectors of ix (every shard's, ids global, for a sharded
 * collection) into s->vv / s->ids, each source in one read snapshot held
 * in txns[] until the join is done; *min_stat, *max_stat: the lowest and
 * highest statistic. */
static int join_load(struct jshared *s, nd_index *ix, MDB_txn **txns, uint32_t nsrc, float *min_stat,
		     float *max_stat, nd_error *err)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	nd_meta m;
	int rc = 0, mrc;
	float min_stat_ = 0, max_stat_ = 0;
	size_t capn = 1, sz;
	for (uint32_t si = 0; si < nsrc; si++) {
		nd_index *src = ix->un ? ix->un->sh[si] : ix;
		if ((rc = nd__store_read_begin(src->st, &txns[si], err)))
			goto done;
		if ((rc = nd__index_read_meta(src, txns[si], &m, err)))
			goto done;
		capn += m.n_images;
	}
	if (nd_mul_size(capn, sizeof(nd_vec_view), &sz)) {
		rc = nd_error_set(err, ND_EOVERFLOW, "index too large");
		goto done;
	}
	s->vv = malloc(sz);
	s->ids = malloc(capn * sizeof(uint32_t));
	if (!s->vv || !s->ids) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join (%zu images)", capn);
		goto done;
	}
	for (uint32_t si = 0; si < nsrc; si++) {
		nd_index *src = ix->un ? ix->un->sh[si] : ix;
		txn = txns[si];
		if ((rc = nd__index_read_meta(src, txn, &m, err)))
			goto done;
		if ((mrc = mdb_cursor_open(txn, src->st->vectors, &cur))) {
			rc = nd__store_err(mrc, err, "opening a cursor");
			goto done;
		}
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			uint32_t id;
			if (s->n == capn) {
				rc = nd_error_set(err, ND_ECORRUPT, "more vectors than the %llu images counted",
						  (unsigned long long)m.n_images);
				goto done;
			}
			if ((rc = nd__index_vector_entry(&k, &v, s->dim, &id, &s->vv[s->n], err)))
				goto done;
			if (id >= m.next_id) {
				rc = nd_error_set(err, ND_ECORRUPT, "vector id %u beyond next id %u", id, m.next_id);
				goto done;
			}
			if (s->cal && !s->vv[s->n].has_stat) {
				rc = nd_error_set(err, ND_ECORRUPT, "vector of id %u has no background statistic", id);
				goto done;
			}
			if (s->cal && (s->n == 0 || s->vv[s->n].stat < min_stat_))
				min_stat_ = s->vv[s->n].stat;
			if (s->cal && (s->n == 0 || s->vv[s->n].stat > max_stat_))
				max_stat_ = s->vv[s->n].stat;
			if (ix->un && (rc = nd_shard_gid(id, si, nsrc, &id, err)))
				goto done;
			s->ids[s->n++] = id;
		}
		if (mrc != MDB_NOTFOUND) {
			rc = nd__store_err(mrc, err, "reading the vectors");
			goto done;
		}
		mdb_cursor_close(cur);
		cur = NULL;
	}
	*min_stat = min_stat_;
	*max_stat = max_stat_;
done:
	if (cur)
		mdb_cursor_close(cur);
	return rc;
}

int nd_index_selfjoin(nd_index *ix, const nd_selfjoin_params *p, nd_pair_fn fn, void *ctx,
		      nd_selfjoin_stats *stats, nd_error *err)
{
	struct jshared s;
	MDB_txn **txns = NULL;
	uint32_t nsrc = ix->un ? ix->un->n : 1;
	unsigned nth = 1;
	float min_stat = 0, max_stat = 0;
	if (stats)
		memset(stats, 0, sizeof(*stats));
	if (ix->un && ix->un->remote_join)
		return ix->un->remote_join(ix->un->ctx, ix, p, fn, ctx, stats, err);
	int rc = join_setup(&s, ix, p, fn, ctx, &nth, err);
	if (rc)
		return rc;
	if (!(txns = calloc(nsrc, sizeof(*txns))))
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join");
	if (!rc && !(rc = join_load(&s, ix, txns, nsrc, &min_stat, &max_stat, err)))
		rc = join_exec(&s, nth, min_stat, max_stat, 0, err);
	for (uint32_t si = 0; txns && si < nsrc; si++)
		if (txns[si])
			nd__store_read_end((ix->un ? ix->un->sh[si] : ix)->st, txns[si]);
	free(txns);
	if (stats)
		*stats = s.st;
	join_free(&s);
	return rc;
}

/* ---- the join in parts (neardup/join.h) ---- */

size_t nd_join_row_words(const nd_index *ix)
{
	return ND_JOIN_ROW_HEAD + ((size_t)ix->meta.tables * ix->meta.bits + 63) / 64;
}

uint32_t nd_join_parts(const nd_index *ix, const nd_selfjoin_params *p)
{
	uint32_t L = ix->meta.tables;
	return (p->tables && p->tables < L ? p->tables : L) + ND_PHASH_QUARTERS;
}

int nd_join_export(nd_index *ix, uint64_t **rows, size_t *n, float *min_stat, float *max_stat, nd_error *err)
{
	struct jshared s;
	nd_selfjoin_params p;
	MDB_txn *txn = NULL;
	unsigned nth = 1;
	*rows = NULL;
	*n = 0;
	*min_stat = 0;
	*max_stat = 0;
	if (ix->un)
		return nd_error_set(err, ND_EINVAL, "export the rows of each shard");
	nd_selfjoin_params_init(&p);
	p.min_sim = 0;
	int rc = join_setup(&s, ix, &p, NULL, NULL, &nth, err);
	if (rc)
		return rc;
	s.cal = ix->calibrated;
	if ((rc = join_load(&s, ix, &txn, 1, min_stat, max_stat, err)))
		goto done;
	size_t R = nd_join_row_words(ix), sz;
	if (nd_mul_size(s.n ? s.n : 1, R * 8, &sz) || nd_mul_size(s.n ? s.n : 1, (size_t)s.W * 8, &sz)) {
		rc = nd_error_set(err, ND_EOVERFLOW, "index too large");
		goto done;
	}
	s.sig = malloc((s.n ? s.n : 1) * (size_t)s.W * 8);
	*rows = malloc((s.n ? s.n : 1) * R * 8);
	struct jworker *ws = calloc(nth, sizeof(*ws));
	if (!s.sig || !*rows || !ws) {
		free(ws);
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join (%zu images)", s.n);
		goto done;
	}
	if (nth > s.n / 64 + 1)
		nth = (unsigned)(s.n / 64 + 1);
	for (unsigned i = 0; i < nth && !rc; i++) {
		ws[i].s = &s;
		ws[i].lo = s.n * i / nth;
		ws[i].hi = s.n * (i + 1) / nth;
		if (!(ws[i].fa = malloc(s.dim * sizeof(float))))
			rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join");
	}
	if (!rc)
		nd__index_run_parallel(ws, sizeof(ws[0]), nth, sign_worker);
	for (unsigned i = 0; i < nth; i++)
		free(ws[i].fa);
	free(ws);
	if (rc)
		goto done;
	for (size_t i = 0; i < s.n; i++) {
		uint64_t *r = *rows + i * R;
		uint32_t fb;
		memcpy(&fb, &s.vv[i].stat, 4);
		r[0] = s.ids[i] | (uint64_t)(s.vv[i].has_phash != 0) << 32 | (uint64_t)(s.vv[i].has_stat != 0) << 33;
		r[1] = fb;
		r[2] = s.vv[i].phash;
		memcpy(r + ND_JOIN_ROW_HEAD, s.sig + i * s.W, s.W * 8);
	}
	*n = s.n;
done:
	if (txn)
		nd__store_read_end(ix->st, txn);
	if (rc) {
		free(*rows);
		*rows = NULL;
	}
	join_free(&s);
	return rc;
}

int nd_join_candidates(nd_index *ix, const nd_selfjoin_params *p, const uint64_t *rows, size_t n,
		       float min_stat, float max_stat, const unsigned char *parts, nd_pair_fn fn, void *ctx,
		       nd_selfjoin_stats *stats, nd_error *err)
{
	struct jshared s;
	unsigned nth = 1;
	if (stats)
		memset(stats, 0, sizeof(*stats));
	int rc = join_setup(&s, ix, p, fn, ctx, &nth, err);
	if (rc)
		return rc;
	s.defer = 1;
	s.parts = parts;
	size_t R = nd_join_row_words(ix);
	s.vv = calloc(n ? n : 1, sizeof(*s.vv));
	s.ids = malloc((n ? n : 1) * sizeof(*s.ids));
	s.sig = malloc((n ? n : 1) * (size_t)s.W * 8);
	if (!s.vv || !s.ids || !s.sig) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join (%zu images)", n);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const uint64_t *r = rows + i * R;
		uint32_t fb = (uint32_t)r[1];
		s.ids[i] = (uint32_t)r[0];
		s.vv[i].has_phash = (int)(r[0] >> 32 & 1);
		s.vv[i].has_stat = (int)(r[0] >> 33 & 1);
		memcpy(&s.vv[i].stat, &fb, 4);
		s.vv[i].phash = r[2];
		s.vv[i].dim = s.dim;
		memcpy(s.sig + i * s.W, r + ND_JOIN_ROW_HEAD, s.W * 8);
	}
	s.n = n;
	rc = join_exec(&s, nth, min_stat, max_stat, 1, err);
done:
	if (stats)
		*stats = s.st;
	join_free(&s);
	return rc;
}

int nd_join_vector_bytes(nd_index *ix, uint32_t id, void *buf, size_t cap, size_t *len, nd_error *err)
{
	if (ix->un) {
		nd_index *sh;
		uint32_t local;
		int r = ix->un->ops->locate(ix, id, &sh, &local, err);
		return r ? r : nd_join_vector_bytes(sh, local, buf, cap, len, err);
	}
	MDB_txn *txn;
	MDB_val k = { sizeof(id), &id }, v;
	int rc = nd__store_read_begin(ix->st, &txn, err), mrc;
	if (rc)
		return rc;
	mrc = mdb_get(txn, ix->st->vectors, &k, &v);
	if (mrc == MDB_NOTFOUND)
		rc = nd_error_set(err, ND_ENOTFOUND, "no vector for id %u", id);
	else if (mrc)
		rc = nd__store_err(mrc, err, "reading a vector");
	else if (v.mv_size > cap)
		rc = nd_error_set(err, ND_ECORRUPT, "vector of id %u has %zu bytes", id, v.mv_size);
	else {
		memcpy(buf, v.mv_data, v.mv_size);
		*len = v.mv_size;
	}
	nd__store_read_end(ix->st, txn);
	return rc;
}

int nd_join_score(nd_index *ix, const nd_selfjoin_params *p, const void *a, size_t la, const void *b,
		  size_t lb, float *sim, nd_error *err)
{
	nd_vec_view va, vb;
	int have_a = 0, rc;
	const int cal = ix->calibrated && !p->raw;
	if ((rc = nd_vector_decode(a, la, ix->meta.dim, &va, err)) || (rc = nd_vector_decode(b, lb, ix->meta.dim, &vb, err)))
		return rc;
	if (cal && (!va.has_stat || !vb.has_stat))
		return nd_error_set(err, ND_ECORRUPT, "a vector has no background statistic");
	float small[1024], *fa = ix->meta.dim <= 1024 ? small : malloc(ix->meta.dim * sizeof(float));
	if (!fa)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	*sim = pair_sim(ix, cal, &va, &vb, fa, &have_a);
	if (fa != small)
		free(fa);
	return 0;
}
