/* neardup — nd_index_selfjoin: all pairs above a similarity, bucket by bucket. */
#include "index_impl.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void nd_selfjoin_params_init(nd_selfjoin_params *p)
{
	p->min_sim = 0.8f;
	p->bits = 0;
	p->tables = 0;
	p->max_group = 20000;
}

#define TILE 256

struct join {
	nd_index *ix;
	MDB_txn *txn;
	MDB_cursor *vcur;
	const nd_selfjoin_params *p;
	nd_pair_fn fn;
	void *ctx;
	nd_selfjoin_stats st;
	uint32_t T, shift, dim;
	uint32_t *grp;            /* [next_id][T] group numbers, for "first table wins" */
	uint32_t *mem;            /* group members */
	size_t nmem, capmem;
	float *X, *G;             /* [cap][dim], [TILE][cap] */
	size_t capx;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Compares all pairs of the current group of table t. */
static int join_group(struct join *j, uint32_t t, nd_error *err)
{
	size_t n = j->nmem, D = j->dim;
	int rc = 0;
	if (n < 2)
		return 0;
	j->st.groups++;
	if (n > j->st.largest_group)
		j->st.largest_group = n;
	uint64_t pairs = (uint64_t)n * (n - 1) / 2;
	if (j->p->max_group && n > j->p->max_group) {
		j->st.groups_capped++;
		j->st.pairs_skipped += pairs;
		return 0;
	}
	if (n > j->capx) {
		size_t c = n * 2, sx, sg;
		if (nd_mul_size(c, D * sizeof(float), &sx) || nd_mul_size(c, TILE * sizeof(float), &sg))
			return nd_error_set(err, ND_EOVERFLOW, "group too large");
		float *X = realloc(j->X, sx), *G;
		if (!X)
			return nd_error_set(err, ND_ENOMEM, "out of memory for a group of %zu", n);
		j->X = X;
		G = realloc(j->G, sg);
		if (!G)
			return nd_error_set(err, ND_ENOMEM, "out of memory for a group of %zu", n);
		j->G = G;
		j->capx = c;
	}
	qsort(j->mem, n, sizeof(uint32_t), cmp_u32);
	for (size_t i = 0; i < n; i++) {
		uint32_t id = j->mem[i];
		MDB_val k = { sizeof(id), &id }, v;
		nd_vec_view vv;
		int mrc = mdb_cursor_get(j->vcur, &k, &v, MDB_SET_KEY);
		if (mrc)
			return mrc == MDB_NOTFOUND
				       ? nd_error_set(err, ND_ECORRUPT, "posting id %u has no vector", id)
				       : nd_store_err(mrc, err, "reading a vector");
		if ((rc = nd_vector_decode(v.mv_data, v.mv_size, j->dim, &vv, err)))
			return rc;
		nd_vector_dequant(&vv, j->X + i * D);
	}
	j->st.pairs_compared += pairs;
	for (size_t i0 = 0; i0 + 1 < n; i0 += TILE) {
		size_t rows = n - i0 < TILE ? n - i0 : TILE, cols = n - i0;
		/* G[r][c] = <X[i0+r], X[i0+c]> */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)D, 1.0f,
			    j->X + i0 * D, (int)D, j->X + i0 * D, (int)D, 0.0f, j->G, (int)cols);
		for (size_t r = 0; r < rows; r++) {
			const float *g = j->G + r * cols;
			uint32_t a = j->mem[i0 + r];
			for (size_t c = r + 1; c < cols; c++) {
				if (g[c] < j->p->min_sim)
					continue;
				uint32_t b = j->mem[i0 + c];
				/* emitted already if the pair shares a group in an earlier table */
				const uint32_t *ga = j->grp + (size_t)a * j->T, *gb = j->grp + (size_t)b * j->T;
				uint32_t u = 0;
				while (u < t && ga[u] != gb[u])
					u++;
				if (u < t)
					continue;
				j->st.pairs_emitted++;
				if ((rc = j->fn(j->ctx, a, b, g[c])))
					return rc;
			}
		}
	}
	return 0;
}

int nd_index_selfjoin(nd_index *ix, const nd_selfjoin_params *p, nd_pair_fn fn, void *ctx,
		      nd_selfjoin_stats *stats, nd_error *err)
{
	struct join j = { 0 };
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	nd_meta m;
	float *fbuf = NULL;
	uint32_t *sig = NULL;
	int rc, mrc;

	if (p->bits > ix->meta.bits)
		return nd_error_set(err, ND_EINVAL, "self-join bits %u exceed the index's %u", p->bits,
				    ix->meta.bits);
	j.ix = ix;
	j.p = p;
	j.fn = fn;
	j.ctx = ctx;
	j.dim = ix->meta.dim;
	j.T = p->tables && p->tables < ix->meta.tables ? p->tables : ix->meta.tables;
	uint32_t jb = p->bits;
	if (jb == 0)
		jb = ix->meta.bits > ND_INDEX_DEFAULT_JOIN_BITS_LESS ? ix->meta.bits - ND_INDEX_DEFAULT_JOIN_BITS_LESS : 1;
	j.shift = ix->meta.bits - jb;
	if ((rc = nd_store_read_begin(ix->st, &j.txn, err)))
		return rc;
	if ((rc = nd_ix_read_meta(ix, j.txn, &m, err)))
		goto done;
	size_t ng;
	if (nd_mul_size(m.next_id, j.T, &ng) || nd_mul_size(ng, sizeof(uint32_t), &ng)) {
		rc = nd_error_set(err, ND_EOVERFLOW, "index too large");
		goto done;
	}
	j.grp = malloc(ng);
	fbuf = malloc(j.dim * sizeof(float));
	sig = malloc(ix->meta.tables * sizeof(uint32_t));
	j.capmem = 1024;
	j.mem = malloc(j.capmem * sizeof(uint32_t));
	if (!j.grp || !fbuf || !sig || !j.mem) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the self-join");
		goto done;
	}
	/* group numbers of every image in every table used */
	if ((mrc = mdb_cursor_open(j.txn, ix->st->vectors, &j.vcur))) {
		rc = nd_store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(j.vcur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(j.vcur, &k, &v, MDB_NEXT)) {
		uint32_t id;
		nd_vec_view vv;
		if (k.mv_size != 4) {
			rc = nd_error_set(err, ND_ECORRUPT, "vector key of %zu bytes", k.mv_size);
			goto done;
		}
		memcpy(&id, k.mv_data, 4);
		if (id >= m.next_id) {
			rc = nd_error_set(err, ND_ECORRUPT, "vector id %u beyond next id %u", id, m.next_id);
			goto done;
		}
		if ((rc = nd_vector_decode(v.mv_data, v.mv_size, j.dim, &vv, err)))
			goto done;
		nd_vector_dequant(&vv, fbuf);
		nd_lsh_sign(ix->lsh, fbuf, 1, sig);
		for (uint32_t t = 0; t < j.T; t++)
			j.grp[(size_t)id * j.T + t] = sig[t] >> j.shift;
	}
	if ((mrc = mdb_cursor_open(j.txn, ix->st->postings, &cur))) {
		rc = nd_store_err(mrc, err, "opening a cursor");
		goto done;
	}
	uint32_t ct = UINT32_MAX, cg = 0;
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t t = UINT32_MAX, b = 0, first = 0, ids[ND_BLOCK_MAX_IDS];
		size_t nb = 0;
		if (mrc && mrc != MDB_NOTFOUND) {
			rc = nd_store_err(mrc, err, "reading posting blocks");
			goto done;
		}
		if (mrc == 0) {
			if ((rc = nd_posting_key_decode(k.mv_data, k.mv_size, &t, &b, &first, err)) ||
			    (rc = nd_block_decode(first, v.mv_data, v.mv_size, ids, ND_BLOCK_MAX_IDS, &nb,
						  err)))
				goto done;
		}
		if (mrc || t != ct || (b >> j.shift) != cg) {
			if (ct < j.T && (rc = join_group(&j, ct, err)))
				goto done;
			j.nmem = 0;
			ct = t;
			cg = b >> j.shift;
		}
		if (mrc || t >= j.T)
			break;
		if (j.nmem + nb > j.capmem) {
			size_t c = (j.nmem + nb) * 2;
			uint32_t *nm = realloc(j.mem, c * sizeof(uint32_t));
			if (!nm) {
				rc = nd_error_set(err, ND_ENOMEM, "out of memory for a group");
				goto done;
			}
			j.mem = nm;
			j.capmem = c;
		}
		memcpy(j.mem + j.nmem, ids, nb * sizeof(uint32_t));
		j.nmem += nb;
	}
done:
	if (cur)
		mdb_cursor_close(cur);
	if (j.vcur)
		mdb_cursor_close(j.vcur);
	nd_store_read_end(ix->st, j.txn);
	if (stats)
		*stats = j.st;
	free(j.grp);
	free(j.mem);
	free(j.X);
	free(j.G);
	free(fbuf);
	free(sig);
	return rc;
}
