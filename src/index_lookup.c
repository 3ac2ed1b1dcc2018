/* neardup — reading one image's record, vector, hash and originality; lookups by path and hash; the records' walk and the stats. */
#include "index_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- lookups ---- */

int nd_index_get_record(nd_index *ix, uint32_t id, nd_record *rec, char *pathbuf, size_t pathcap,
			nd_error *err)
{
	if (ix->un)
		return ix->un->ops->get_record(ix, id, rec, pathbuf, pathcap, err);
	MDB_txn *txn;
	int rc = nd__store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd__index_get_record(ix, txn, id, rec, err);
	if (rc == 0) {
		if (rec->path_len + 1 > pathcap) {
			rc = nd_error_set(err, ND_ELIMIT, "path of %zu bytes does not fit %zu", rec->path_len,
					  pathcap);
		} else {
			memcpy(pathbuf, rec->path, rec->path_len + 1);
			rec->path = pathbuf;
		}
	}
	nd__store_read_end(ix->st, txn);
	return rc;
}

/* The stored vector of id, dequantised into out (if not NULL), and its
 * perceptual hash (if has_phash is not NULL), in one read transaction. */
static int read_vector(nd_index *ix, uint32_t id, float *out, int *has_phash, uint64_t *phash,
		       nd_error *err)
{
	if (ix->un) {
		nd_index *sh;
		uint32_t local;
		int r = ix->un->ops->locate(ix, id, &sh, &local, err);
		return r ? r : read_vector(sh, local, out, has_phash, phash, err);
	}
	MDB_txn *txn;
	nd_vec_view vv;
	int rc = nd__store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd__index_get_vector(ix, txn, id, &vv, err);
	if (rc == 0 && out)
		nd_vector_dequant(&vv, out);
	if (has_phash) {
		*has_phash = rc == 0 && vv.has_phash;
		*phash = rc == 0 ? vv.phash : 0;
	}
	nd__store_read_end(ix->st, txn);
	return rc;
}

int nd_index_get_vector(nd_index *ix, uint32_t id, float *out, nd_error *err)
{
	return read_vector(ix, id, out, NULL, NULL, err);
}

int nd_index_get_phash(nd_index *ix, uint32_t id, int *has_phash, uint64_t *phash, nd_error *err)
{
	return read_vector(ix, id, NULL, has_phash, phash, err);
}

int nd_index_score_pair(nd_index *ix, uint32_t a, uint32_t b, int raw, float *sim, float *cosine,
			nd_error *err)
{
	MDB_txn *txn, *txn_b = NULL;
	nd_vec_view va, vb;
	/* a sharded collection: a and b may live in two shards */
	nd_index *sa = ix, *sb = ix;
	if (ix->un) {
		int r = ix->un->ops->locate(ix, a, &sa, &a, err);
		if (r || (r = ix->un->ops->locate(ix, b, &sb, &b, err)))
			return r;
	}
	float *fa = malloc((size_t)ix->meta.dim * sizeof(float));
	if (!fa)
		return nd_error_set(err, ND_ENOMEM, "out of memory for a vector");
	int rc = nd__store_read_begin(sa->st, &txn, err);
	if (rc) {
		free(fa);
		return rc;
	}
	if (sb != sa && (rc = nd__store_read_begin(sb->st, &txn_b, err)))
		goto done;
	if ((rc = nd__index_get_vector(sa, txn, a, &va, err)) ||
	    (rc = nd__index_get_vector(sb, txn_b ? txn_b : txn, b, &vb, err)))
		goto done;
	/* as a query of a's stored vector scores b */
	nd_vector_dequant(&va, fa);
	float c = nd_vector_dot(&vb, fa);
	*cosine = c > 1.0f ? 1.0f : c;
	*sim = *cosine;
	if (!raw && ix->calibrated)
		*sim = nd__index_pair_score(ix, c, va.stat, va.has_phash, va.phash, vb.stat, vb.has_phash, vb.phash);
done:
	if (txn_b)
		nd__store_read_end(sb->st, txn_b);
	nd__store_read_end(sa->st, txn);
	free(fa);
	return rc;
}

int nd_index_get_side(nd_index *ix, uint32_t id, nd_score_side *side, nd_error *err)
{
	if (ix->un) {
		nd_index *sh;
		uint32_t local;
		int r = ix->un->ops->locate(ix, id, &sh, &local, err);
		return r ? r : nd_index_get_side(sh, local, side, err);
	}
	MDB_txn *txn;
	nd_vec_view vv;
	int rc = nd__store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	if ((rc = nd__index_get_vector(ix, txn, id, &vv, err)) == 0)
		*side = (nd_score_side){ vv.has_stat, vv.stat, vv.has_phash, vv.phash };
	nd__store_read_end(ix->st, txn);
	return rc;
}

int nd_index_get_origin(nd_index *ix, uint32_t id, int *has_origin, nd_origin *origin, nd_error *err)
{
	if (ix->un) {
		nd_index *sh;
		uint32_t local;
		int r = ix->un->ops->locate(ix, id, &sh, &local, err);
		return r ? r : nd_index_get_origin(sh, local, has_origin, origin, err);
	}
	MDB_txn *txn;
	nd_vec_view vv;
	int rc = nd__store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd__index_get_vector(ix, txn, id, &vv, err);
	*has_origin = rc == 0 && vv.has_origin;
	if (*has_origin)
		*origin = vv.origin;
	else
		nd_origin_init(origin);
	nd__store_read_end(ix->st, txn);
	return rc;
}

int nd_index_lookup_path(nd_index *ix, const char *path, uint32_t *id, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->lookup_path(ix, path, id, err);
	uint8_t key[ND_PATH_KEY_MAX];
	size_t len = strlen(path);
	MDB_txn *txn;
	nd_record r;
	if (len == 0 || len > ND_PATH_MAX)
		return nd_error_set(err, ND_ENOTFOUND, "path not indexed");
	MDB_val k = { nd_path_key(path, len, key), key }, v;
	int rc = nd__store_read_begin(ix->st, &txn, err), mrc;
	if (rc)
		return rc;
	mrc = mdb_get(txn, ix->st->paths, &k, &v);
	if (mrc == MDB_NOTFOUND)
		rc = nd_error_set(err, ND_ENOTFOUND, "path not indexed");
	else if (mrc)
		rc = nd__store_err(mrc, err, "reading a path entry");
	else if ((rc = nd_pathval_decode(v.mv_data, v.mv_size, id, err)) == 0 &&
		 (rc = nd__index_get_record(ix, txn, *id, &r, err)) == 0 &&
		 (r.path_len != len || memcmp(r.path, path, len) != 0))
		rc = nd_error_set(err, ND_ENOTFOUND, "path not indexed (key collision with id %u)", *id);
	nd__store_read_end(ix->st, txn);
	return rc;
}

int nd_index_lookup_hash(nd_index *ix, const uint8_t hash[16], uint32_t *ids, size_t cap,
			 size_t *n, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->lookup_hash(ix, hash, ids, cap, n, err);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k = { 16, (void *)hash }, v;
	size_t cnt = 0;
	int rc = nd__store_read_begin(ix->st, &txn, err), mrc;
	if (rc)
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->hashes, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
		if (v.mv_size != sizeof(uint32_t)) {
			rc = nd_error_set(err, ND_ECORRUPT, "hash entry of %zu bytes", v.mv_size);
			goto done;
		}
		if (cnt < cap)
			memcpy(&ids[cnt], v.mv_data, sizeof(uint32_t));
		cnt++;
	}
	if (mrc != MDB_NOTFOUND)
		rc = nd__store_err(mrc, err, "reading hash entries");
	*n = cnt;
done:
	if (cur)
		mdb_cursor_close(cur);
	nd__store_read_end(ix->st, txn);
	return rc;
}

int nd_index_foreach(nd_index *ix, nd_record_fn fn, void *ctx, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->foreach(ix, fn, ctx, err);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc = nd__store_read_begin(ix->st, &txn, err), mrc;
	if (rc)
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->records, &cur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		nd_record r;
		if (k.mv_size != sizeof(uint32_t)) {
			rc = nd_error_set(err, ND_ECORRUPT, "record key of %zu bytes", k.mv_size);
			goto done;
		}
		memcpy(&r.id, k.mv_data, sizeof(uint32_t));
		if ((rc = nd_record_decode(v.mv_data, v.mv_size, &r, err)))
			goto done;
		if ((rc = fn(ctx, &r)))
			goto done;
	}
	if (mrc != MDB_NOTFOUND)
		rc = nd__store_err(mrc, err, "reading records");
done:
	if (cur)
		mdb_cursor_close(cur);
	nd__store_read_end(ix->st, txn);
	return rc;
}

int nd_index_stats_get(nd_index *ix, nd_index_stats *s, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->stats(ix, s, err);
	MDB_txn *txn;
	MDB_stat ms;
	MDB_envinfo info;
	char path[4200];
	struct stat sb;
	int rc;
	memset(s, 0, sizeof(*s));
	if ((rc = nd__store_read_begin(ix->st, &txn, err)))
		return rc;
	if ((rc = nd__index_read_meta(ix, txn, &s->meta, err)))
		goto done;
	struct {
		MDB_dbi dbi;
		uint64_t *out;
	} dbs[] = { { ix->st->postings, &s->postings_db_bytes }, { ix->st->vectors, &s->vectors_db_bytes },
		    { ix->st->records, &s->records_db_bytes }, { ix->st->paths, &s->paths_db_bytes },
		    { ix->st->hashes, &s->hashes_db_bytes }, { ix->st->phash, &s->phash_db_bytes } };
	/* the last, phash, is absent from an index from before it opened read-only */
	const size_t ndb = sizeof(dbs) / sizeof(dbs[0]) - !ix->st->has_phash_db;
	for (size_t i = 0; i < ndb; i++) {
		if (mdb_stat(txn, dbs[i].dbi, &ms) == 0)
			*dbs[i].out = (uint64_t)ms.ms_psize *
				      (ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages);
	}
	if (s->meta.n_postings) {
		s->bytes_per_posting = (double)s->meta.posting_bytes / (double)s->meta.n_postings;
		s->disk_bytes_per_posting = (double)s->postings_db_bytes / (double)s->meta.n_postings;
	}
	mdb_env_info(ix->st->env, &info);
	s->map_size = info.me_mapsize;
	snprintf(path, sizeof(path), "%s/data.mdb", ix->st->dir);
	if (stat(path, &sb) == 0)
		s->file_bytes = (uint64_t)sb.st_size;
done:
	nd__store_read_end(ix->st, txn);
	return rc;
}
