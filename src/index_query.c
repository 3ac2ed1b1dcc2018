/* neardup — the query: LSH buckets and multi-probes, candidates, the re-ranking. */
#include "index_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nd_query_params_init(nd_query_params *p)
{
	memset(p, 0, sizeof(*p));
	p->k = 10;
	p->min_sim = -1.0f;
	p->probes = ND_INDEX_DEFAULT_PROBES;
	p->min_hits = ND_INDEX_DEFAULT_MIN_HITS;
	p->rerank_all = ND_INDEX_DEFAULT_RERANK_ALL;
	p->max_candidates = 0;
}

/* ---- query ---- */

/* Open-addressing set of ids (0 = empty slot; ids start at 1). */
struct idset {
	uint32_t *slot;
	uint8_t *cnt;  /* times each id was added (saturating) */
	size_t cap, n; /* cap: power of two */
};

static int idset_init(struct idset *s, size_t cap)
{
	s->cap = cap;
	s->n = 0;
	s->slot = calloc(cap, sizeof(uint32_t));
	s->cnt = malloc(cap);
	if (!s->slot || !s->cnt) {
		free(s->slot);
		free(s->cnt);
		s->slot = NULL;
		s->cnt = NULL;
		return ND_ENOMEM;
	}
	return 0;
}

static inline size_t idset_hash(uint32_t id, size_t cap)
{
	return (size_t)((id * 0x9E3779B1u) ^ (id >> 16)) & (cap - 1);
}

static int idset_add(struct idset *s, uint32_t id, uint8_t w)
{
	if (2 * (s->n + 1) > s->cap) {
		struct idset g;
		if (idset_init(&g, s->cap * 2))
			return ND_ENOMEM;
		for (size_t i = 0; i < s->cap; i++) {
			uint32_t x = s->slot[i];
			if (x) {
				size_t h = idset_hash(x, g.cap);
				while (g.slot[h])
					h = (h + 1) & (g.cap - 1);
				g.slot[h] = x;
				g.cnt[h] = s->cnt[i];
				g.n++;
			}
		}
		free(s->slot);
		free(s->cnt);
		*s = g;
	}
	size_t h = idset_hash(id, s->cap);
	while (s->slot[h]) {
		if (s->slot[h] == id) {
			s->cnt[h] = (uint8_t)(s->cnt[h] + w < 255 ? s->cnt[h] + w : 255);
			return 0;
		}
		h = (h + 1) & (s->cap - 1);
	}
	s->slot[h] = id;
	s->cnt[h] = w;
	s->n++;
	return 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Keeps the k best hits, best first, in hits[0..*n). */
static void topk_insert(nd_hit *hits, size_t *n, size_t k, uint32_t id, float sim, float raw)
{
	size_t i = *n;
	if (i == k) {
		if (sim <= hits[k - 1].sim)
			return;
		i = k - 1;
	} else {
		(*n)++;
	}
	while (i > 0 && (hits[i - 1].sim < sim || (hits[i - 1].sim == sim && hits[i - 1].id > id))) {
		hits[i] = hits[i - 1];
		i--;
	}
	hits[i] = (nd_hit){ id, sim, raw };
}

/* Adds the ids of bucket (t, b) of the cursor's database to the candidate
 * set with weight w, reading at most cap ids (0: all); stops early when
 * p->max_candidates is reached. */
static int read_bucket(MDB_cursor *cur, uint32_t t, uint32_t b, uint8_t w, size_t cap,
		       const nd_query_params *p, struct idset *set, nd_query_stats *st, nd_error *err)
{
	uint8_t key[ND_POSTING_KEY_SIZE];
	uint32_t blk[ND_BLOCK_MAX_IDS];
	size_t read = 0;
	MDB_val k = { ND_POSTING_KEY_SIZE, key }, v;
	int rc, mrc;
	nd_posting_key(t, b, 0, key);
	st->buckets++;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t kt, kb, first;
		size_t nb;
		if ((rc = nd_posting_key_decode(k.mv_data, k.mv_size, &kt, &kb, &first, err)))
			return rc;
		if (kt != t || kb != b)
			break;
		if ((rc = nd_block_decode(first, v.mv_data, v.mv_size, blk, ND_BLOCK_MAX_IDS, &nb, err)))
			return rc;
		st->postings += nb;
		for (size_t j = 0; j < nb; j++)
			if (idset_add(set, blk[j], w) < 0)
				return nd_error_set(err, ND_ENOMEM, "out of memory for candidates");
		if (p->max_candidates && set->n >= p->max_candidates) {
			st->truncated = 1;
			return 0;
		}
		read += nb;
		if (cap && read >= cap)
			return 0;
	}
	if (mrc && mrc != MDB_NOTFOUND)
		return nd__store_err(mrc, err, "reading posting blocks");
	return 0;
}

int nd_index_query(nd_index *ix, const float *vec, const nd_query_params *p, nd_hit *hits,
		   size_t *n, nd_query_stats *stats, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->query(ix, vec, p, hits, n, stats, err);
	uint32_t L = ix->meta.tables, K = ix->meta.bits;
	size_t np = 0, nprobe_cap = (size_t)L + p->probes, nh = 0;
	float *proj = NULL;
	uint16_t *ptab = NULL;
	uint32_t *pbkt = NULL, *cand = NULL;
	uint64_t *pkeys = NULL;
	struct idset set = { 0 };
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	nd_query_stats st = { 0 };
	int rc = 0, mrc;

	*n = 0;
	if (p->k == 0)
		return 0;
	const int cal = ix->calibrated && !p->raw;
	float qstat = 0;
	if (cal && (rc = ix->calib.stat(ix->calib.ctx, vec, 1, &qstat, err)))
		return rc;
	proj = malloc((size_t)L * K * sizeof(float));
	ptab = malloc(nprobe_cap * sizeof(uint16_t));
	pbkt = malloc(nprobe_cap * sizeof(uint32_t));
	pkeys = malloc(nprobe_cap * sizeof(uint64_t));
	if (!proj || !ptab || !pbkt || !pkeys || idset_init(&set, 16384)) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for a query");
		goto done;
	}
	nd_lsh_project(ix->lsh, vec, proj);
	if ((rc = nd_lsh_probe_seq(ix->lsh, proj, p->probes, ptab, pbkt, &np, err)))
		goto done;
	/* visit buckets in key order: neighbouring keys share LMDB pages.
	 * Bit 40 marks home buckets (the query's own signature): an id found
	 * there is always re-ranked, ids found only in perturbed buckets need
	 * min_hits sightings. */
	for (size_t i = 0; i < np; i++)
		pkeys[i] = (uint64_t)ptab[i] << 32 | pbkt[i] | (i < L ? (uint64_t)1 << 40 : 0);
	qsort(pkeys, np, sizeof(uint64_t), cmp_u64);

	if ((rc = nd__store_read_begin(ix->st, &txn, err)))
		goto done;
	if ((mrc = mdb_cursor_open(txn, ix->st->postings, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	const uint32_t mh = p->min_hits ? p->min_hits : 1;
	const uint8_t home_w = (uint8_t)(mh < 255 ? mh : 255);
	for (size_t i = 0; i < np && !st.truncated; i++) {
		uint32_t t = (uint32_t)(pkeys[i] >> 32) & 0xFF, b = (uint32_t)pkeys[i];
		uint8_t w = (pkeys[i] >> 40) & 1 ? home_w : 1;
		if ((rc = read_bucket(cur, t, b, w, 0, p, &set, &st, err)))
			goto done;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	/* the query's four hash buckets, when the hash term can score: their
	 * ids are re-ranked like those of a home bucket */
	if (cal && p->has_phash && ix->calib.phash_weight > 0 && !st.truncated) {
		nd_meta now;
		if ((rc = nd__index_read_meta(ix, txn, &now, err)))
			goto done;
		if (nd__index_phash_valid(ix, txn, &now)) {
			if ((mrc = mdb_cursor_open(txn, ix->st->phash, &cur))) {
				rc = nd__store_err(mrc, err, "opening a cursor");
				goto done;
			}
			for (uint32_t q = 0; q < ND_PHASH_QUARTERS && !st.truncated; q++) {
				uint64_t before = st.postings;
				if ((rc = read_bucket(cur, q, nd__index_phash_bucket(p->phash, q), home_w,
						      ND_INDEX_PHASH_BUCKET_CAP, p, &set, &st, err)))
					goto done;
				st.phash_postings += st.postings - before;
			}
			mdb_cursor_close(cur);
			cur = NULL;
		}
	}
	/* re-rank: candidates in id order (vectors are keyed by id) */
	cand = malloc((set.n ? set.n : 1) * sizeof(uint32_t));
	if (!cand) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for candidates");
		goto done;
	}
	size_t nc = 0;
	uint32_t need = set.n <= p->rerank_all ? 1 : p->min_hits;
	for (size_t i = 0; i < set.cap; i++)
		if (set.slot[i] && set.cnt[i] >= need)
			cand[nc++] = set.slot[i];
	qsort(cand, nc, sizeof(uint32_t), cmp_u32);
	st.candidates = (uint32_t)set.n;
	st.reranked = (uint32_t)nc;
	if ((mrc = mdb_cursor_open(txn, ix->st->vectors, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (size_t i = 0; i < nc; i++) {
		uint32_t id = cand[i];
		MDB_val k = { sizeof(id), &id }, v;
		nd_vec_view vv;
		mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
		if (mrc) {
			rc = mrc == MDB_NOTFOUND
				     ? nd_error_set(err, ND_ECORRUPT, "posting id %u has no vector", id)
				     : nd__store_err(mrc, err, "reading a vector");
			goto done;
		}
		if ((rc = nd_vector_decode(v.mv_data, v.mv_size, ix->meta.dim, &vv, err)))
			goto done;
		float raw = nd_vector_dot(&vv, vec), sim = raw;
		if (cal) {
			if (!vv.has_stat) {
				rc = nd_error_set(err, ND_ECORRUPT,
						  "vector of id %u has no background statistic", id);
				goto done;
			}
			sim = nd__index_pair_score(ix, raw, qstat, p->has_phash, p->phash, vv.stat, vv.has_phash,
						    vv.phash);
		}
		if (sim >= p->min_sim)
			topk_insert(hits, &nh, p->k, id, sim, raw);
	}
	*n = nh;
done:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		nd__store_read_end(ix->st, txn);
	if (stats)
		*stats = st;
	free(proj);
	free(ptab);
	free(pbkt);
	free(pkeys);
	free(cand);
	free(set.slot);
	free(set.cnt);
	return rc;
}

int nd_index_prefault(nd_index *ix, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->prefault(ix, err);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	volatile uint8_t sink = 0;
	int rc = nd__store_read_begin(ix->st, &txn, err), mrc = 0;
	if (rc)
		return rc;
	MDB_dbi dbs[2] = { ix->st->vectors, ix->st->postings };
	for (int i = 0; i < 2 && rc == 0; i++) {
		if ((mrc = mdb_cursor_open(txn, dbs[i], &cur))) {
			rc = nd__store_err(mrc, err, "opening a cursor");
			break;
		}
		/* one read per value touches every leaf page (LMDB has no
		 * portable way to hand us the map address for madvise) */
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			sink ^= *(const uint8_t *)v.mv_data;
		if (mrc != MDB_NOTFOUND)
			rc = nd__store_err(mrc, err, "reading the index");
		mdb_cursor_close(cur);
	}
	(void)sink;
	nd__store_read_end(ix->st, txn);
	return rc;
}
