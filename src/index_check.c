/* neardup — nd_index_check: verify the whole index. */
#include "index_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 2, 3)))
static void problem(nd_check_report *rep, const char *fmt, ...)
{
	if (rep->n_problems < ND_CHECK_MAX_PROBLEMS) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rep->problems[rep->n_problems], ND_CHECK_PROBLEM_LEN, fmt, ap);
		va_end(ap);
	}
	rep->n_problems++;
}

#define BIT_SET(a, i) ((a)[(i) >> 3] |= (uint8_t)(1u << ((i)&7)))
#define BIT_GET(a, i) (((a)[(i) >> 3] >> ((i)&7)) & 1u)

/* One walk over a database of posting blocks (postings, phash): every key
 * and block decodes, lies within `tables` tables of `bits` bits, and the
 * blocks of a bucket do not overlap; fn checks each listed id. */
struct walk {
	const char *what;        /* "table", "hash quarter": names a table in problems */
	uint32_t tables, bits;
	uint64_t blocks, bytes, postings; /* out */
};
typedef void (*posting_fn)(void *ctx, nd_check_report *rep, uint32_t t, uint32_t b, uint32_t id);

static int walk_postings(MDB_txn *txn, MDB_dbi dbi, struct walk *w, nd_check_report *rep, posting_fn fn,
			 void *ctx, nd_error *err)
{
	MDB_cursor *cur;
	MDB_val k, v;
	nd_error e2;
	uint32_t pt = UINT32_MAX, pb = 0, plast = 0;
	int mrc;
	if ((mrc = mdb_cursor_open(txn, dbi, &cur)))
		return nd__store_err(mrc, err, "opening a cursor");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t t, b, first, ids[ND_BLOCK_MAX_IDS];
		size_t nb;
		w->blocks++;
		w->bytes += k.mv_size + v.mv_size;
		if (nd_posting_key_decode(k.mv_data, k.mv_size, &t, &b, &first, &e2)) {
			problem(rep, "%s posting block: %s", w->what, e2.msg);
			continue;
		}
		if (t >= w->tables || (w->bits < 32 && b >> w->bits)) {
			problem(rep, "posting block for %s %u bucket %u outside %u tables of %u bits", w->what,
				t, b, w->tables, w->bits);
			continue;
		}
		if (nd_block_decode(first, v.mv_data, v.mv_size, ids, ND_BLOCK_MAX_IDS, &nb, &e2)) {
			problem(rep, "posting block %s %u bucket %u first id %u: %s", w->what, t, b, first,
				e2.msg);
			continue;
		}
		if (t == pt && b == pb && first <= plast)
			problem(rep, "%s %u bucket %u: block starting at id %u overlaps the previous block (last id %u)",
				w->what, t, b, first, plast);
		pt = t;
		pb = b;
		plast = ids[nb - 1];
		w->postings += nb;
		for (size_t j = 0; j < nb; j++)
			fn(ctx, rep, t, b, ids[j]);
	}
	mdb_cursor_close(cur);
	return mrc == MDB_NOTFOUND ? 0 : nd__store_err(mrc, err, "reading posting blocks");
}

/* LSH postings: every id has a record and a vector, whose signature puts
 * it in this bucket. */
struct lsh_ctx {
	uint32_t N, L;
	const uint8_t *has_rec, *has_vec;
	const uint32_t *sigs;    /* [N][L] */
	uint16_t *npost;         /* [N] out: lists holding each id */
};

static void lsh_posting(void *ctx, nd_check_report *rep, uint32_t t, uint32_t b, uint32_t id)
{
	struct lsh_ctx *c = ctx;
	if (id >= c->N || !BIT_GET(c->has_rec, id) || !BIT_GET(c->has_vec, id)) {
		problem(rep, "table %u bucket %u lists id %u, which has no %s", t, b, id,
			id < c->N && BIT_GET(c->has_rec, id) ? "vector" : "record");
		return;
	}
	if (c->sigs[(size_t)id * c->L + t] != b)
		problem(rep, "table %u: id %u is in bucket %u but its vector hashes to bucket %u", t, id, b,
			c->sigs[(size_t)id * c->L + t]);
	if (c->npost[id] < UINT16_MAX)
		c->npost[id]++;
}

/* Hash postings: every id has a stored hash whose quarter t is b. */
struct phash_ctx {
	uint32_t N;
	const uint8_t *has_ph;
	const uint64_t *phs;     /* [N] */
	uint8_t *nph;            /* [N] out */
};

static void phash_posting(void *ctx, nd_check_report *rep, uint32_t q, uint32_t b, uint32_t id)
{
	struct phash_ctx *c = ctx;
	if (id >= c->N || !BIT_GET(c->has_ph, id)) {
		problem(rep, "hash quarter %u bucket %u lists id %u, which has no stored hash", q, b, id);
		return;
	}
	if (nd__index_phash_bucket(c->phs[id], q) != b)
		problem(rep, "hash quarter %u: id %u is in bucket %u but its hash gives %u", q, id, b,
			nd__index_phash_bucket(c->phs[id], q));
	if (c->nph[id] < UINT8_MAX)
		c->nph[id]++;
}

int nd_index_verify(nd_index *ix, uint64_t *pages, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->verify(ix, pages, err);
	MDB_txn *txn;
	nd__store_walk_info wi;
	int rc = nd__store_read_begin_verified(ix->st, &txn, &wi, err);
	if (rc)
		return rc;
	nd__store_read_end(ix->st, txn);
	if (pages)
		*pages = wi.pages;
	return 0;
}

int nd_index_check(nd_index *ix, nd_check_report *rep, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->check(ix, rep, err);
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	nd_meta m;
	nd_error e2;
	uint8_t *has_rec = NULL, *has_vec = NULL, *has_ph = NULL, *nph = NULL;
	uint64_t *phs = NULL;
	uint16_t *npost = NULL;
	uint32_t *sigs = NULL;
	float *fbuf = NULL;
	int rc, mrc;

	memset(rep, 0, sizeof(*rep));
	/* LMDB trusts its pages: walk the file first, then read through LMDB */
	nd__store_walk_info wi;
	if ((rc = nd__store_read_begin_verified(ix->st, &txn, &wi, err)))
		return rc;
	rep->pages = wi.pages;
	rep->file_bytes = wi.file_bytes;
	if (nd__index_read_meta(ix, txn, &m, &e2)) {
		problem(rep, "metadata: %s", e2.msg);
		goto done;
	}
	if (m.dim != ix->meta.dim || m.tables != ix->meta.tables || m.bits != ix->meta.bits ||
	    m.seed != ix->meta.seed || m.vec_format != ix->meta.vec_format)
		problem(rep, "metadata: parameters changed since open");
	uint32_t L = m.tables, N = m.next_id;
	size_t nbits = (size_t)N / 8 + 1, nsig;
	if (nd_mul_size(N, L, &nsig) || nd_mul_size(nsig, sizeof(uint32_t), &nsig)) {
		rc = nd_error_set(err, ND_EOVERFLOW, "index too large to check");
		goto done;
	}
	has_rec = calloc(nbits, 1);
	has_vec = calloc(nbits, 1);
	npost = calloc(N, sizeof(uint16_t));
	sigs = malloc(nsig);
	fbuf = malloc(m.dim * sizeof(float));
	has_ph = calloc(nbits, 1);
	nph = calloc(N, 1);
	phs = malloc((size_t)N * sizeof(uint64_t));
	if (!has_rec || !has_vec || !npost || !sigs || !fbuf || !has_ph || !nph || !phs) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for checking %u ids", N);
		goto done;
	}

	/* records, and their path and hash entries */
	if ((mrc = mdb_cursor_open(txn, ix->st->records, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id;
		nd_record r;
		rep->records++;
		if (k.mv_size != 4) {
			problem(rep, "records: key of %zu bytes", k.mv_size);
			continue;
		}
		memcpy(&id, k.mv_data, 4);
		if (id == 0 || id >= N) {
			problem(rep, "records: id %u outside 1..%u", id, N - 1);
			continue;
		}
		if (nd_record_decode(v.mv_data, v.mv_size, &r, &e2)) {
			problem(rep, "record %u: %s", id, e2.msg);
			continue;
		}
		BIT_SET(has_rec, id);
		uint8_t pkey[ND_PATH_KEY_MAX];
		MDB_val pk = { nd_path_key(r.path, r.path_len, pkey), pkey }, pv;
		uint32_t pid;
		mrc = mdb_get(txn, ix->st->paths, &pk, &pv);
		if (mrc)
			problem(rep, "record %u ('%.80s'): no path entry", id, r.path);
		else if (nd_pathval_decode(pv.mv_data, pv.mv_size, &pid, &e2))
			problem(rep, "path entry of record %u: %s", id, e2.msg);
		else if (pid != id)
			problem(rep, "record %u ('%.80s'): path entry points at id %u", id, r.path, pid);
		MDB_cursor *hc;
		MDB_val hk = { 16, r.hash }, hv = { 4, &id };
		if (mdb_cursor_open(txn, ix->st->hashes, &hc) == 0) {
			if (mdb_cursor_get(hc, &hk, &hv, MDB_GET_BOTH))
				problem(rep, "record %u: no content-hash entry", id);
			mdb_cursor_close(hc);
		}
	}
	mdb_cursor_close(cur);
	cur = NULL;

	/* path entries */
	if ((mrc = mdb_cursor_open(txn, ix->st->paths, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id;
		nd_record r;
		rep->paths++;
		if (nd_pathval_decode(v.mv_data, v.mv_size, &id, &e2)) {
			problem(rep, "path entry '%.*s': %s", (int)(k.mv_size > 80 ? 80 : k.mv_size),
				(const char *)k.mv_data, e2.msg);
			continue;
		}
		if (id >= N || !BIT_GET(has_rec, id)) {
			problem(rep, "path entry '%.*s' points at id %u, which has no record",
				(int)(k.mv_size > 80 ? 80 : k.mv_size), (const char *)k.mv_data, id);
			continue;
		}
		if (nd__index_get_record(ix, txn, id, &r, &e2) == 0) {
			uint8_t pkey[ND_PATH_KEY_MAX];
			size_t kl = nd_path_key(r.path, r.path_len, pkey);
			if (kl != k.mv_size || memcmp(pkey, k.mv_data, kl) != 0)
				problem(rep, "path entry of id %u does not match its record's path '%.80s'", id,
					r.path);
		}
	}
	mdb_cursor_close(cur);
	cur = NULL;

	/* content-hash entries */
	if ((mrc = mdb_cursor_open(txn, ix->st->hashes, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id;
		nd_record r;
		rep->hash_entries++;
		if (k.mv_size != 16 || v.mv_size != 4) {
			problem(rep, "hash entry with a %zu-byte key and %zu-byte value", k.mv_size, v.mv_size);
			continue;
		}
		memcpy(&id, v.mv_data, 4);
		if (id >= N || !BIT_GET(has_rec, id)) {
			problem(rep, "hash entry points at id %u, which has no record", id);
			continue;
		}
		if (nd__index_get_record(ix, txn, id, &r, &e2) == 0 && memcmp(r.hash, k.mv_data, 16) != 0)
			problem(rep, "hash entry of id %u differs from its record's hash", id);
	}
	mdb_cursor_close(cur);
	cur = NULL;

	/* vectors; signatures for the posting check */
	if ((mrc = mdb_cursor_open(txn, ix->st->vectors, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id;
		nd_vec_view vv;
		rep->vectors++;
		if (k.mv_size != 4) {
			problem(rep, "vectors: key of %zu bytes", k.mv_size);
			continue;
		}
		memcpy(&id, k.mv_data, 4);
		if (id == 0 || id >= N || !BIT_GET(has_rec, id)) {
			problem(rep, "vector of id %u has no record", id);
			continue;
		}
		if (nd_vector_decode(v.mv_data, v.mv_size, m.dim, &vv, &e2)) {
			problem(rep, "vector of id %u: %s", id, e2.msg);
			continue;
		}
		BIT_SET(has_vec, id);
		if (vv.has_phash) {
			BIT_SET(has_ph, id);
			phs[id] = vv.phash;
		}
		nd_vector_dequant(&vv, fbuf);
		nd_lsh_sign(ix->lsh, fbuf, 1, sigs + (size_t)id * L);
		if ((m.flags & ND_META_VEC_STAT) && !vv.has_stat)
			problem(rep, "vector of id %u has no background statistic (the index says all have)",
				id);
		if (ix->calibrated && vv.has_stat) {
			/* the statistic is recomputed from the stored vector, as at ingest */
			float st;
			if (ix->calib.stat(ix->calib.ctx, fbuf, 1, &st, &e2) == 0 &&
			    !(fabsf(st - vv.stat) <= 1e-4f))
				problem(rep, "vector of id %u: background statistic %.6f, recomputed %.6f", id,
					(double)vv.stat, (double)st);
		}
	}
	mdb_cursor_close(cur);
	cur = NULL;

	/* posting blocks */
	struct lsh_ctx lc = { N, L, has_rec, has_vec, sigs, npost };
	struct walk lw = { "table", L, m.bits, 0, 0, 0 };
	if ((rc = walk_postings(txn, ix->st->postings, &lw, rep, lsh_posting, &lc, err)))
		goto done;
	uint64_t nblocks = lw.blocks, pbytes = lw.bytes, npostings = lw.postings;
	rep->blocks = nblocks;
	rep->postings = npostings;
	for (uint32_t id = 1; id < N; id++) {
		if (BIT_GET(has_rec, id) && !BIT_GET(has_vec, id))
			problem(rep, "record %u has no vector", id);
		if (BIT_GET(has_vec, id) && npost[id] != L)
			problem(rep, "id %u appears in %u posting lists, expected %u (one per table)", id,
				npost[id], L);
	}
	if (m.n_images != rep->records)
		problem(rep, "metadata counts %llu images, found %llu records",
			(unsigned long long)m.n_images, (unsigned long long)rep->records);
	if (rep->paths != rep->records)
		problem(rep, "%llu path entries for %llu records", (unsigned long long)rep->paths,
			(unsigned long long)rep->records);
	if (rep->hash_entries != rep->records)
		problem(rep, "%llu hash entries for %llu records", (unsigned long long)rep->hash_entries,
			(unsigned long long)rep->records);
	if (m.n_postings != npostings)
		problem(rep, "metadata counts %llu postings, found %llu", (unsigned long long)m.n_postings,
			(unsigned long long)npostings);
	if (m.n_blocks != nblocks)
		problem(rep, "metadata counts %llu posting blocks, found %llu",
			(unsigned long long)m.n_blocks, (unsigned long long)nblocks);
	if (m.posting_bytes != pbytes)
		problem(rep, "metadata counts %llu posting bytes, found %llu",
			(unsigned long long)m.posting_bytes, (unsigned long long)pbytes);
	if (npostings != rep->records * L)
		problem(rep, "%llu postings for %llu images in %u tables", (unsigned long long)npostings,
			(unsigned long long)rep->records, L);

	/* file identities, when current */
	rep->inode_valid = nd__index_inode_valid(ix, txn, &m);
	if (rep->inode_valid && (rc = nd__index_inode_check(ix, txn, rep, problem, err)))
		goto done;

	/* perceptual-hash postings, when current */
	rep->phash_valid = nd__index_phash_valid(ix, txn, &m);
	if (!rep->phash_valid)
		goto done;
	struct phash_ctx hc = { N, has_ph, phs, nph };
	struct walk hw = { "hash quarter", ND_PHASH_QUARTERS, 16, 0, 0, 0 };
	if ((rc = walk_postings(txn, ix->st->phash, &hw, rep, phash_posting, &hc, err)))
		goto done;
	rep->phash_postings = hw.postings;
	for (uint32_t id = 1; id < N; id++)
		if (BIT_GET(has_ph, id) && nph[id] != ND_PHASH_QUARTERS)
			problem(rep, "id %u appears in %u hash posting lists, expected %d", id, nph[id],
				ND_PHASH_QUARTERS);
done:
	if (cur)
		mdb_cursor_close(cur);
	nd__store_read_end(ix->st, txn);
	free(has_rec);
	free(has_vec);
	free(npost);
	free(sigs);
	free(fbuf);
	free(has_ph);
	free(nph);
	free(phs);
	return rc;
}
