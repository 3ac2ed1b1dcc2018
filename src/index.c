/* neardup — index open/close, add, remove, query, lookups, stats. */
#include "index_impl.h"

#include "neardup/postings.h"
#include "neardup/shard.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void nd_index_options_init(nd_index_options *o)
{
	memset(o, 0, sizeof(*o));
}

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

int nd_ix_read_meta(nd_index *ix, MDB_txn *txn, nd_meta *m, nd_error *err)
{
	MDB_val k = { 4, "meta" }, v;
	int mrc = mdb_get(txn, ix->st->meta, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return nd_error_set(err, ND_ECORRUPT, "index '%s' has no metadata", ix->st->dir);
	if (mrc)
		return nd_store_err(mrc, err, "reading metadata");
	return nd_meta_decode(v.mv_data, v.mv_size, m, err);
}

static int write_meta(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err)
{
	uint8_t buf[ND_META_HDR_V1 + ND_MODEL_NAME_MAX + 1];
	size_t len;
	int rc = nd_meta_encode(m, buf, sizeof(buf), &len, err);
	if (rc)
		return rc;
	MDB_val k = { 4, "meta" }, v = { len, buf };
	int mrc = mdb_put(txn, ix->st->meta, &k, &v, 0);
	return mrc ? nd_store_err(mrc, err, "writing metadata") : 0;
}

int nd_ix_vector_entry(const MDB_val *k, const MDB_val *v, uint32_t dim, uint32_t *id, nd_vec_view *vv,
		       nd_error *err)
{
	if (k->mv_size != sizeof(*id))
		return nd_error_set(err, ND_ECORRUPT, "vector key of %zu bytes", k->mv_size);
	memcpy(id, k->mv_data, sizeof(*id));
	return nd_vector_decode(v->mv_data, v->mv_size, dim, vv, err);
}

int nd_ix_get_vector(nd_index *ix, MDB_txn *txn, uint32_t id, nd_vec_view *vv, nd_error *err)
{
	MDB_val k = { sizeof(id), &id }, v;
	int mrc = mdb_get(txn, ix->st->vectors, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return nd_error_set(err, ND_ENOTFOUND, "no vector for id %u", id);
	if (mrc)
		return nd_store_err(mrc, err, "reading a vector");
	int rc = nd_vector_decode(v.mv_data, v.mv_size, ix->meta.dim, vv, err);
	if (rc && err) {
		char tmp[ND_ERRMSG_MAX];
		snprintf(tmp, sizeof(tmp), "%s", err->msg);
		nd_error_set(err, rc, "vector of id %u: %s", id, tmp);
	}
	return rc;
}

int nd_ix_get_record(nd_index *ix, MDB_txn *txn, uint32_t id, nd_record *r, nd_error *err)
{
	MDB_val k = { sizeof(id), &id }, v;
	int mrc = mdb_get(txn, ix->st->records, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return nd_error_set(err, ND_ENOTFOUND, "no image with id %u", id);
	if (mrc)
		return nd_store_err(mrc, err, "reading a record");
	int rc = nd_record_decode(v.mv_data, v.mv_size, r, err);
	if (rc && err) {
		char tmp[ND_ERRMSG_MAX];
		snprintf(tmp, sizeof(tmp), "%s", err->msg);
		nd_error_set(err, rc, "record of id %u: %s", id, tmp);
	}
	r->id = id;
	return rc;
}

/* ---- open / close ---- */

struct init_ctx {
	nd_index *ix;
	const nd_index_options *o;
	int created;
	uint64_t upgraded;
};

static int check_calib_dim(const nd_index *ix, const nd_index_calib *cal, nd_error *err)
{
	if (cal->dim == ix->meta.dim)
		return 0;
	return nd_error_set(err, ND_EMISMATCH, "index '%s' holds %u-d vectors, the calibration is for %u-d",
			    ix->st->dir, ix->meta.dim, cal->dim);
}

#define UPGRADE_BATCH 64

/* Rewrites every version-1 vector as version 2 with its statistic, inside
 * the caller's write transaction, UPGRADE_BATCH at a time (the cursor is
 * re-positioned after each batch's writes). */
static int upgrade_vectors(nd_index *ix, MDB_txn *txn, uint64_t *count, nd_error *err)
{
	const uint32_t dim = ix->meta.dim;
	uint32_t ids[UPGRADE_BATCH], next = 0;
	float *vecs = malloc((size_t)UPGRADE_BATCH * dim * sizeof(float)), stats[UPGRADE_BATCH];
	size_t vlen = nd_vector_encoded_size_stat(dim, ND_VEC_F16, 1) + 4 * (size_t)dim;
	uint8_t *buf = malloc(vlen);
	uint32_t fmt[UPGRADE_BATCH];
	MDB_cursor *cur = NULL;
	int rc = 0, mrc, more = 1;
	*count = 0;
	if (!vecs || !buf) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the upgrade");
		goto done;
	}
	while (more) {
		size_t n = 0;
		if ((mrc = mdb_cursor_open(txn, ix->st->vectors, &cur))) {
			rc = nd_store_err(mrc, err, "opening a cursor");
			goto done;
		}
		MDB_val k = { sizeof(next), &next }, v;
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && n < UPGRADE_BATCH;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			uint32_t id = 0;
			nd_vec_view vv;
			if ((rc = nd_ix_vector_entry(&k, &v, dim, &id, &vv, err)))
				goto done;
			next = id + 1;
			if (vv.has_stat)
				continue;
			nd_vector_dequant(&vv, vecs + n * dim);
			fmt[n] = vv.format;
			ids[n++] = id;
		}
		if (mrc && mrc != MDB_NOTFOUND) {
			rc = nd_store_err(mrc, err, "reading the vectors");
			goto done;
		}
		more = mrc == 0 && next != 0;
		mdb_cursor_close(cur);
		cur = NULL;
		if (n && (rc = ix->calib.stat(ix->calib.ctx, vecs, n, stats, err)))
			goto done;
		for (size_t i = 0; i < n; i++) {
			size_t len;
			if ((rc = nd_vector_encode_stat(vecs + i * dim, dim, fmt[i], stats[i], buf, vlen, &len,
							err)))
				goto done;
			MDB_val kk = { sizeof(ids[i]), &ids[i] }, vv2 = { len, buf };
			if ((mrc = mdb_put(txn, ix->st->vectors, &kk, &vv2, 0))) {
				rc = nd_store_err(mrc, err, "writing a vector");
				goto done;
			}
		}
		*count += n;
	}
done:
	if (cur)
		mdb_cursor_close(cur);
	free(vecs);
	free(buf);
	return rc;
}

static int init_txn(MDB_txn *txn, void *vctx, nd_error *err)
{
	struct init_ctx *c = vctx;
	nd_index *ix = c->ix;
	MDB_val k = { 4, "meta" }, v;
	int mrc = mdb_get(txn, ix->st->meta, &k, &v);
	c->created = 0;
	c->upgraded = 0;
	if (mrc == 0) {
		int rc = nd_meta_decode(v.mv_data, v.mv_size, &ix->meta, err);
		if (rc)
			return rc;
		if (c->o->calib.stat && !(ix->meta.flags & ND_META_VEC_STAT)) {
			if ((rc = check_calib_dim(ix, &c->o->calib, err)))
				return rc;
			/* an index without the statistic: add it, all in this transaction
			 * (int8 vectors re-quantise exactly: the scale is the max) */
			ix->calib = c->o->calib;
			if ((rc = upgrade_vectors(ix, txn, &c->upgraded, err)))
				return rc;
			ix->meta.flags |= ND_META_VEC_STAT;
			if ((rc = write_meta(ix, txn, &ix->meta, err)))
				return rc;
		}
		/* hash postings missing (an index from before them) or stale (an
		 * older writer added or removed images since): list them again */
		if (!nd_ix_phash_valid(ix, txn, &ix->meta))
			rc = nd_ix_phash_rebuild(ix, txn, &ix->meta, err);
		/* the same for the file identities */
		if (rc == 0 && !nd_ix_inode_valid(ix, txn, &ix->meta))
			rc = nd_ix_inode_rebuild(ix, txn, &ix->meta, err);
		return rc;
	}
	if (mrc != MDB_NOTFOUND)
		return nd_store_err(mrc, err, "reading metadata");
	const nd_index_options *o = c->o;
	if (!o->create)
		return nd_error_set(err, ND_ENOTFOUND, "no index in '%s'", ix->st->dir);
	if (o->dim == 0 || o->dim > UINT16_MAX)
		return nd_error_set(err, ND_EINVAL, "creating an index needs a dimension (1..65535), got %u",
				    o->dim);
	nd_meta *m = &ix->meta;
	memset(m, 0, sizeof(*m));
	m->format_version = ND_FORMAT_VERSION;
	m->dim = o->dim;
	m->tables = o->tables ? o->tables : ND_INDEX_DEFAULT_TABLES;
	m->bits = o->bits ? o->bits : ND_INDEX_DEFAULT_BITS;
	m->vec_format = o->vec_format ? o->vec_format : ND_INDEX_DEFAULT_VEC_FORMAT;
	m->seed = o->seed ? o->seed : ND_INDEX_DEFAULT_SEED;
	m->model_checksum = o->model_checksum;
	if (o->model_name) {
		if (strlen(o->model_name) > ND_MODEL_NAME_MAX)
			return nd_error_set(err, ND_EINVAL, "model name longer than %d bytes",
					    ND_MODEL_NAME_MAX);
		strcpy(m->model_name, o->model_name);
	}
	m->next_id = 1;
	m->flags = o->calib.stat ? ND_META_VEC_STAT : 0;
	if (m->tables > ND_LSH_MAX_TABLES || m->bits > ND_LSH_MAX_BITS ||
	    (m->vec_format != ND_VEC_F16 && m->vec_format != ND_VEC_I8))
		return nd_error_set(err, ND_EINVAL, "bad index parameters (tables %u, bits %u, format %u)",
				    m->tables, m->bits, m->vec_format);
	c->created = 1;
	int rc = write_meta(ix, txn, m, err);
	if (rc == 0)
		rc = nd_ix_phash_mark(ix, txn, m, err);
	return rc ? rc : nd_ix_inode_mark(ix, txn, m, err);
}

int nd_index_open(nd_index **out, const char *dir, const nd_index_options *o, nd_error *err)
{
	if (o->shards || nd_manifest_exists(dir))
		return nd_ix_un_open(out, dir, o, err);
	nd_index *ix = NULL;
	MDB_txn *txn = NULL;
	int rc;
	*out = NULL;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	rc = nd_store_open(&ix->st, dir, o->create, o->readonly, o->map_size, o->nosync, err);
	if (rc)
		goto fail;
	if (o->upgraded)
		*o->upgraded = 0;
	if (o->readonly) {
		if ((rc = nd_store_read_begin(ix->st, &txn, err)))
			goto fail;
		rc = nd_ix_read_meta(ix, txn, &ix->meta, err);
		nd_store_read_end(ix->st, txn);
		if (rc)
			goto fail;
	} else {
		/* the model is checked before anything is upgraded */
		if (o->model_name && o->calib.stat) {
			MDB_val k = { 4, "meta" }, v;
			if ((rc = nd_store_read_begin(ix->st, &txn, err)))
				goto fail;
			int mrc = mdb_get(txn, ix->st->meta, &k, &v);
			if (mrc == 0)
				rc = nd_meta_decode(v.mv_data, v.mv_size, &ix->meta, err);
			else if (mrc != MDB_NOTFOUND)
				rc = nd_store_err(mrc, err, "reading metadata");
			nd_store_read_end(ix->st, txn);
			txn = NULL;
			if (rc == 0 && mrc == 0)
				rc = nd_index_check_model(ix, o->model_name, o->model_checksum, err);
			if (rc)
				goto fail;
		}
		struct init_ctx c = { ix, o, 0, 0 };
		if ((rc = nd_store_write(ix->st, init_txn, &c, err)))
			goto fail;
		if (o->upgraded)
			*o->upgraded = c.upgraded;
	}
	if (o->model_name && (rc = nd_index_check_model(ix, o->model_name, o->model_checksum, err)))
		goto fail;
	if (o->calib.stat) {
		if ((rc = check_calib_dim(ix, &o->calib, err)))
			goto fail;
		if (!(ix->meta.flags & ND_META_VEC_STAT)) {
			rc = nd_error_set(err, ND_EVERSION,
					  "index '%s' has no background statistics (built before calibrated "
					  "similarity): open it for writing once to add them",
					  ix->st->dir);
			goto fail;
		}
		if (!(isfinite(o->calib.beta) && isfinite(o->calib.offset))) {
			rc = nd_error_set(err, ND_EINVAL, "calibration beta/offset not finite");
			goto fail;
		}
		ix->calib = o->calib;
		ix->calibrated = 1;
	}
	rc = nd_lsh_create(&ix->lsh, ix->meta.dim, ix->meta.tables, ix->meta.bits, ix->meta.seed, err);
	if (rc)
		goto fail;
	*out = ix;
	return 0;
fail:
	nd_index_close(ix);
	return rc;
}

void nd_index_close(nd_index *ix)
{
	if (ix && ix->un)
		nd_ix_un_close(ix);
	if (!ix)
		return;
	nd_lsh_free(ix->lsh);
	nd_store_close(ix->st);
	free(ix);
}

uint32_t nd_index_shards(const nd_index *ix)
{
	return ix->un ? ix->un->n : 0;
}

nd_index *nd_index_shard(nd_index *ix, uint32_t i)
{
	return ix->un && i < ix->un->n ? ix->un->sh[i] : NULL;
}

const char *nd_index_dir(const nd_index *ix)
{
	return ix->un ? ix->un->dir : ix->st->dir;
}

int nd_index_calibrated(const nd_index *ix)
{
	return ix->calibrated;
}

int nd_index_scored(const nd_index *ix)
{
	return ix->calibrated && ix->calib.score;
}

int nd_index_check_model(nd_index *ix, const char *model_name, uint64_t checksum, nd_error *err)
{
	if (ix->un)
		return nd_index_check_model(ix->un->sh[0], model_name, checksum, err);
	if (strcmp(ix->meta.model_name, model_name ? model_name : "") != 0 ||
	    ix->meta.model_checksum != checksum)
		return nd_error_set(err, ND_EMISMATCH,
				    "index '%s' was built with model '%s' (checksum %016llx), not '%s' (checksum %016llx)",
				    ix->st->dir, ix->meta.model_name,
				    (unsigned long long)ix->meta.model_checksum, model_name ? model_name : "",
				    (unsigned long long)checksum);
	return 0;
}

int nd_index_meta(nd_index *ix, nd_meta *meta, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_meta(ix, meta, err);
	MDB_txn *txn;
	int rc = nd_store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd_ix_read_meta(ix, txn, meta, err);
	nd_store_read_end(ix->st, txn);
	return rc;
}

/* ---- posting blocks ---- */

/* Appends ids[0..n) (increasing, all above anything in the bucket) to the
 * bucket (table, bucket): fills its last block, then adds new blocks. */
int nd_ix_postings_append(nd_index *ix, MDB_cursor *cur, uint32_t table, uint32_t bucket,
			  const uint32_t *ids, size_t n, nd_meta *m, nd_error *err)
{
	uint8_t key[ND_POSTING_KEY_SIZE], val[1 + ND_VARINT_MAX * ND_BLOCK_MAX_IDS];
	uint32_t blk[ND_BLOCK_MAX_IDS];
	size_t nb = 0, done = 0, len;
	MDB_val k = { ND_POSTING_KEY_SIZE, key }, v;
	int mrc, rc;

	nd_posting_key(table, bucket, UINT32_MAX, key);
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (mrc == 0)
		mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
	else if (mrc == MDB_NOTFOUND)
		mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (mrc && mrc != MDB_NOTFOUND)
		return nd_store_err(mrc, err, "seeking a posting block");
	if (mrc == 0) {
		uint32_t t, b, first;
		if ((rc = nd_posting_key_decode(k.mv_data, k.mv_size, &t, &b, &first, err)))
			return rc;
		if (t == table && b == bucket) {
			size_t oldlen = v.mv_size;
			if ((rc = nd_block_decode(first, v.mv_data, v.mv_size, blk, ND_BLOCK_MAX_IDS, &nb,
						  err)))
				return rc;
			if (blk[nb - 1] >= ids[0])
				return nd_error_set(err, ND_ECORRUPT,
						    "table %u bucket %u already holds id %u >= new id %u",
						    table, bucket, blk[nb - 1], ids[0]);
			if (nb < ND_BLOCK_MAX_IDS) {
				size_t take = ND_BLOCK_MAX_IDS - nb;
				if (take > n)
					take = n;
				memcpy(blk + nb, ids, take * sizeof(uint32_t));
				nb += take;
				done = take;
				if ((rc = nd_block_encode(blk, nb, val, sizeof(val), &len, err)))
					return rc;
				nd_posting_key(table, bucket, first, key);
				MDB_val k2 = { ND_POSTING_KEY_SIZE, key }, v2 = { len, val };
				if ((mrc = mdb_cursor_put(cur, &k2, &v2, 0)))
					return nd_store_err(mrc, err, "writing a posting block");
				m->posting_bytes += len - oldlen;
			}
		}
	}
	while (done < n) {
		size_t take = n - done > ND_BLOCK_MAX_IDS ? ND_BLOCK_MAX_IDS : n - done;
		if ((rc = nd_block_encode(ids + done, take, val, sizeof(val), &len, err)))
			return rc;
		nd_posting_key(table, bucket, ids[done], key);
		MDB_val k2 = { ND_POSTING_KEY_SIZE, key }, v2 = { len, val };
		if ((mrc = mdb_cursor_put(cur, &k2, &v2, 0)))
			return nd_store_err(mrc, err, "writing a posting block");
		m->n_blocks++;
		m->posting_bytes += ND_POSTING_KEY_SIZE + len;
		done += take;
	}
	m->n_postings += n;
	return 0;
}

/* Removes id from bucket (table, bucket). */
int nd_ix_postings_remove(nd_index *ix, MDB_cursor *cur, uint32_t table, uint32_t bucket, uint32_t id,
			  nd_meta *m, nd_error *err)
{
	uint8_t key[ND_POSTING_KEY_SIZE], val[1 + ND_VARINT_MAX * ND_BLOCK_MAX_IDS];
	uint32_t blk[ND_BLOCK_MAX_IDS], t, b, first;
	size_t nb, len, oldlen;
	MDB_val k = { ND_POSTING_KEY_SIZE, key }, v;
	int mrc, rc, found = 0;

	nd_posting_key(table, bucket, id, key);
	mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (mrc == 0) {
		if ((rc = nd_posting_key_decode(k.mv_data, k.mv_size, &t, &b, &first, err)))
			return rc;
		found = (t == table && b == bucket && first == id);
		if (!found)
			mrc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
	} else if (mrc == MDB_NOTFOUND) {
		mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	}
	if (mrc && mrc != MDB_NOTFOUND)
		return nd_store_err(mrc, err, "seeking a posting block");
	if (!found && mrc == 0) {
		if ((rc = nd_posting_key_decode(k.mv_data, k.mv_size, &t, &b, &first, err)))
			return rc;
		found = (t == table && b == bucket);
	}
	if (!found)
		return nd_error_set(err, ND_ECORRUPT, "id %u missing from table %u bucket %u", id, table,
				    bucket);
	oldlen = v.mv_size;
	if ((rc = nd_block_decode(first, v.mv_data, v.mv_size, blk, ND_BLOCK_MAX_IDS, &nb, err)))
		return rc;
	size_t lo = 0, hi = nb;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (blk[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= nb || blk[lo] != id)
		return nd_error_set(err, ND_ECORRUPT, "id %u missing from table %u bucket %u", id, table,
				    bucket);
	memmove(blk + lo, blk + lo + 1, (nb - lo - 1) * sizeof(uint32_t));
	nb--;
	if (lo == 0) {
		if ((mrc = mdb_cursor_del(cur, 0)))
			return nd_store_err(mrc, err, "deleting a posting block");
		m->posting_bytes -= ND_POSTING_KEY_SIZE + oldlen;
		m->n_blocks--;
		if (nb > 0) {
			if ((rc = nd_block_encode(blk, nb, val, sizeof(val), &len, err)))
				return rc;
			nd_posting_key(table, bucket, blk[0], key);
			MDB_val k2 = { ND_POSTING_KEY_SIZE, key }, v2 = { len, val };
			if ((mrc = mdb_cursor_put(cur, &k2, &v2, 0)))
				return nd_store_err(mrc, err, "writing a posting block");
			m->posting_bytes += ND_POSTING_KEY_SIZE + len;
			m->n_blocks++;
		}
	} else {
		if ((rc = nd_block_encode(blk, nb, val, sizeof(val), &len, err)))
			return rc;
		nd_posting_key(table, bucket, first, key);
		MDB_val k2 = { ND_POSTING_KEY_SIZE, key }, v2 = { len, val };
		if ((mrc = mdb_cursor_put(cur, &k2, &v2, 0)))
			return nd_store_err(mrc, err, "writing a posting block");
		m->posting_bytes += len;
		m->posting_bytes -= oldlen;
	}
	m->n_postings--;
	return 0;
}

/* Removes one image inside a write transaction (pcur, hcur: cursors on the
 * postings and phash databases). Images added earlier in the
 * same batch (id >= batch_first) have no postings yet: they are flagged in
 * dead[id - batch_first] instead. *gone is set when id existed. */
static int remove_one(nd_index *ix, MDB_txn *txn, MDB_cursor *pcur, MDB_cursor *hcur, uint32_t id,
		      nd_meta *m, uint32_t batch_first, uint8_t *dead, float *fbuf, uint32_t *sig,
		      int *gone, nd_error *err)
{
	nd_record r;
	nd_vec_view vv;
	uint8_t pkey[ND_PATH_KEY_MAX], hash[16];
	size_t pklen;
	int rc, mrc;
	*gone = 0;
	rc = nd_ix_get_record(ix, txn, id, &r, err);
	if (rc == ND_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	pklen = nd_path_key(r.path, r.path_len, pkey);
	memcpy(hash, r.hash, 16);
	if ((rc = nd_ix_inode_del(ix, txn, &r, id, err)))
		return rc;
	/* path entry, if it still points at this id */
	{
		MDB_val k = { pklen, pkey }, v;
		uint32_t pid;
		mrc = mdb_get(txn, ix->st->paths, &k, &v);
		if (mrc == 0 && nd_pathval_decode(v.mv_data, v.mv_size, &pid, NULL) == 0 && pid == id) {
			if ((mrc = mdb_del(txn, ix->st->paths, &k, NULL)))
				return nd_store_err(mrc, err, "deleting a path entry");
		} else if (mrc && mrc != MDB_NOTFOUND) {
			return nd_store_err(mrc, err, "reading a path entry");
		}
	}
	{
		MDB_val k = { 16, hash }, v = { sizeof(id), &id };
		mrc = mdb_del(txn, ix->st->hashes, &k, &v);
		if (mrc && mrc != MDB_NOTFOUND)
			return nd_store_err(mrc, err, "deleting a hash entry");
	}
	rc = nd_ix_get_vector(ix, txn, id, &vv, err);
	if (rc && rc != ND_ENOTFOUND)
		return rc;
	if (rc == 0) {
		if (id >= batch_first) {
			dead[id - batch_first] = 1;
		} else {
			nd_vector_dequant(&vv, fbuf);
			nd_lsh_sign(ix->lsh, fbuf, 1, sig);
			for (uint32_t t = 0; t < m->tables; t++)
				if ((rc = nd_ix_postings_remove(ix, pcur, t, sig[t], id, m, err)))
					return rc;
			if (vv.has_phash && (rc = nd_ix_phash_remove(ix, hcur, id, vv.phash, err)))
				return rc;
		}
		MDB_val k = { sizeof(id), &id };
		if ((mrc = mdb_del(txn, ix->st->vectors, &k, NULL)))
			return nd_store_err(mrc, err, "deleting a vector");
	}
	MDB_val k = { sizeof(id), &id };
	if ((mrc = mdb_del(txn, ix->st->records, &k, NULL)))
		return nd_store_err(mrc, err, "deleting a record");
	m->n_images--;
	*gone = 1;
	return 0;
}

/* ---- add ---- */

struct triple {
	uint64_t tb; /* table << 32 | bucket */
	uint32_t id;
};

struct add_ctx {
	nd_index *ix;
	const nd_index_item *items;
	size_t n;
	uint32_t *ids;
	uint32_t *sigs;      /* [n][L], of the stored (quantised) vectors */
	uint8_t *venc;       /* [n][vlen] encoded vectors (item_vlen bytes each) */
	size_t vlen;         /* the stride: the largest encoding */
	uint32_t *osig;      /* [L] scratch: signatures of a replaced image */
	struct triple *tri;  /* [n*L] */
	uint8_t *dead;       /* [n] */
	uint32_t *idbuf;     /* [n] */
	float *fbuf;         /* [dim] */
	uint8_t *vbuf;       /* encoded vector / record */
	size_t vbuf_cap;
	uint32_t first_id;   /* out: the batch's first id (ids are consecutive) */
};

/* Encoding and signing a batch's vectors, outside the transaction and in
 * parallel: they are most of an add's CPU time (bench/results/index.md). */
struct prep {
	const nd_index_item *items;
	nd_index *ix;
	uint8_t *venc;
	uint32_t *sigs;
	size_t vlen, lo, hi;
	float *fbuf;
	int rc;
	nd_error err;
};

/* An item's hash is stored (vector version 3, and listed in the phash
 * database) when it brings one to a calibrated index. */
static int item_stores_phash(const nd_index *ix, const nd_index_item *it)
{
	return ix->calibrated && it->has_phash;
}

/* ... and its originality record when it brings one too (version 4). */
static int item_stores_origin(const nd_index *ix, const nd_index_item *it)
{
	return item_stores_phash(ix, it) && it->origin;
}

/* The stored size of an item's vector: version 1 on an uncalibrated index,
 * else version 4 when the item brings a perceptual hash and an originality
 * record, version 3 with a hash alone, version 2 with neither. */
static size_t item_vlen(const nd_index *ix, const nd_index_item *it)
{
	uint32_t dim = ix->meta.dim, fmt = ix->meta.vec_format;
	if (item_stores_origin(ix, it))
		return nd_vector_encoded_size_max(dim, fmt);
	if (item_stores_phash(ix, it))
		return nd_vector_encoded_size_max(dim, fmt) - ND_ORIGIN_SIZE;
	return nd_vector_encoded_size_stat(dim, fmt, ix->calibrated);
}

static void *prep_worker(void *arg)
{
	struct prep *w = arg;
	uint32_t dim = w->ix->meta.dim, L = w->ix->meta.tables;
	const int cal = w->ix->calibrated;
	for (size_t i = w->lo; i < w->hi && !w->rc; i++) {
		size_t len;
		nd_vec_view vv;
		uint8_t *out = w->venc + i * w->vlen;
		const uint32_t fmt = w->ix->meta.vec_format;
		const nd_index_item *it = &w->items[i];
		if ((w->rc = cal ? nd_vector_encode_stat(it->vec, dim, fmt, 0.0f, out, w->vlen, &len,
							  &w->err)
				 : nd_vector_encode(it->vec, dim, fmt, out, w->vlen, &len, &w->err)) ||
		    (w->rc = nd_vector_decode(out, len, dim, &vv, &w->err)))
			break;
		/* signatures (and the statistic) come from the stored (quantised) vector */
		nd_vector_dequant(&vv, w->fbuf);
		nd_lsh_sign(w->ix->lsh, w->fbuf, 1, w->sigs + i * L);
		if (cal) {
			float st;
			if ((w->rc = w->ix->calib.stat(w->ix->calib.ctx, w->fbuf, 1, &st, &w->err)) ||
			    (w->rc = item_stores_origin(w->ix, it)
					     ? nd_vector_encode_v4(it->vec, dim, fmt, st, it->phash, it->origin,
								   out, w->vlen, &len, &w->err)
				     : item_stores_phash(w->ix, it)
					     ? nd_vector_encode_stat_phash(it->vec, dim, fmt, st, it->phash, out,
									   w->vlen, &len, &w->err)
					     : nd_vector_encode_stat(it->vec, dim, fmt, st, out, w->vlen, &len,
								     &w->err)))
				break;
		}
		ND_ASSERT(len == item_vlen(w->ix, it));
	}
	return NULL;
}

#define ND_ADD_MAX_THREADS 8

void nd_ix_run_parallel(void *items, size_t size, unsigned n, void *(*fn)(void *))
{
	pthread_t th[ND_JOIN_MAX_THREADS];
	unsigned started = 0;
	char *base = items;
	ND_ASSERT(n <= ND_JOIN_MAX_THREADS);
	for (unsigned i = 1; i < n; i++) {
		if (pthread_create(&th[i], NULL, fn, base + i * size))
			break;
		started = i;
	}
	fn(base);
	for (unsigned i = 1; i <= started; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = started + 1; i < n; i++) /* threads that could not start */
		fn(base + i * size);
}

static int prep_batch(struct add_ctx *c, nd_error *err)
{
	struct prep w[ND_ADD_MAX_THREADS];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nth = ncpu > 0 ? (size_t)ncpu : 1;
	int rc = 0;
	if (nth > ND_ADD_MAX_THREADS)
		nth = ND_ADD_MAX_THREADS;
	if (nth > c->n / 256 + 1)
		nth = c->n / 256 + 1;
	memset(w, 0, sizeof(w));
	for (size_t i = 0; i < nth; i++) {
		w[i] = (struct prep){ c->items, c->ix, c->venc, c->sigs, c->vlen, c->n * i / nth,
				      c->n * (i + 1) / nth, malloc(c->ix->meta.dim * sizeof(float)), 0, { 0 } };
		if (!w[i].fbuf) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory for a batch");
			goto done;
		}
	}
	nd_ix_run_parallel(w, sizeof(w[0]), (unsigned)nth, prep_worker);
	for (size_t i = 0; i < nth && !rc; i++)
		if (w[i].rc) {
			*err = w[i].err;
			rc = w[i].rc;
		}
done:
	for (size_t i = 0; i < nth; i++)
		free(w[i].fbuf);
	return rc;
}

static int add_txn(MDB_txn *txn, void *vctx, nd_error *err)
{
	struct add_ctx *c = vctx;
	nd_index *ix = c->ix;
	uint32_t L = ix->meta.tables;
	MDB_cursor *pcur = NULL, *hcur = NULL;
	nd_meta m;
	int rc, mrc;

	if ((rc = nd_ix_read_meta(ix, txn, &m, err)))
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->postings, &pcur)) ||
	    (mrc = mdb_cursor_open(txn, ix->st->phash, &hcur))) {
		rc = nd_store_err(mrc, err, "opening a cursor");
		goto done;
	}
	uint32_t batch_first = m.next_id;
	c->first_id = batch_first;
	if (!ix->calibrated) /* version-1 vectors from now on */
		m.flags &= ~ND_META_VEC_STAT;
	if ((uint64_t)m.next_id + c->n >= UINT32_MAX) {
		rc = nd_error_set(err, ND_ELIMIT, "image ids exhausted");
		goto done;
	}
	memset(c->dead, 0, c->n);
	for (size_t i = 0; i < c->n; i++) {
		const nd_index_item *it = &c->items[i];
		uint8_t pkey[ND_PATH_KEY_MAX], pval[ND_PATHVAL_SIZE];
		size_t pklen = nd_path_key(it->rec.path, it->rec.path_len, pkey), len;
		MDB_val k = { pklen, pkey }, v;
		uint32_t old, id = m.next_id++;
		int gone;
		/* replace an image with the same path */
		mrc = mdb_get(txn, ix->st->paths, &k, &v);
		if (mrc == 0) {
			if ((rc = nd_pathval_decode(v.mv_data, v.mv_size, &old, err)))
				goto done;
			rc = remove_one(ix, txn, pcur, hcur, old, &m, batch_first, c->dead, c->fbuf,
					c->osig, &gone, err);
			if (rc)
				goto done;
		} else if (mrc != MDB_NOTFOUND) {
			rc = nd_store_err(mrc, err, "reading a path entry");
			goto done;
		}
		/* ... and an image of the same file under another path */
		if (nd_record_has_identity(&it->rec)) {
			rc = nd_ix_inode_get(ix, txn, it->rec.dev, it->rec.ino, &old, err);
			if (rc == 0)
				rc = remove_one(ix, txn, pcur, hcur, old, &m, batch_first, c->dead, c->fbuf,
						c->osig, &gone, err);
			if (rc && rc != ND_ENOTFOUND)
				goto done;
			rc = 0;
		}
		/* vector (encoded and signed before the transaction) */
		MDB_val ik = { sizeof(id), &id }, iv = { item_vlen(ix, it), c->venc + i * c->vlen };
		if ((mrc = mdb_put(txn, ix->st->vectors, &ik, &iv, MDB_APPEND))) {
			rc = nd_store_err(mrc, err, "writing a vector");
			goto done;
		}
		if ((rc = nd_record_encode(&it->rec, c->vbuf, c->vbuf_cap, &len, err)))
			goto done;
		iv.mv_size = len;
		iv.mv_data = c->vbuf;
		if ((mrc = mdb_put(txn, ix->st->records, &ik, &iv, MDB_APPEND))) {
			rc = nd_store_err(mrc, err, "writing a record");
			goto done;
		}
		nd_pathval_encode(id, pval);
		v.mv_size = ND_PATHVAL_SIZE;
		v.mv_data = pval;
		if ((mrc = mdb_put(txn, ix->st->paths, &k, &v, 0))) {
			rc = nd_store_err(mrc, err, "writing a path entry");
			goto done;
		}
		MDB_val hk = { 16, (void *)it->rec.hash }, hv = { sizeof(id), &id };
		if ((mrc = mdb_put(txn, ix->st->hashes, &hk, &hv, 0))) {
			rc = nd_store_err(mrc, err, "writing a hash entry");
			goto done;
		}
		if (nd_record_has_identity(&it->rec) && (rc = nd_ix_inode_put(ix, txn, &it->rec, id, 0, err)))
			goto done;
		m.n_images++;
		c->idbuf[i] = id;
	}
	/* postings, grouped by bucket in key order: table-major with ids
	 * increasing, then a stable radix sort on the bucket within each table */
	size_t nt = 0;
	for (uint32_t t = 0; t < L; t++) {
		struct triple *tt = c->tri + nt, *tmp = c->tri + (size_t)L * c->n;
		size_t mt = 0;
		for (size_t i = 0; i < c->n; i++)
			if (!c->dead[c->idbuf[i] - batch_first])
				tt[mt++] = (struct triple){ (uint64_t)t << 32 | c->sigs[i * L + t], c->idbuf[i] };
		for (uint32_t shift = 0; shift < ix->meta.bits; shift += 8) {
			size_t cnt[257] = { 0 };
			for (size_t i = 0; i < mt; i++)
				cnt[((uint32_t)tt[i].tb >> shift & 0xFF) + 1]++;
			for (int k = 0; k < 256; k++)
				cnt[k + 1] += cnt[k];
			for (size_t i = 0; i < mt; i++)
				tmp[cnt[(uint32_t)tt[i].tb >> shift & 0xFF]++] = tt[i];
			memcpy(tt, tmp, mt * sizeof(*tt));
		}
		nt += mt;
	}
	for (size_t s = 0; s < nt;) {
		size_t e = s;
		while (e < nt && c->tri[e].tb == c->tri[s].tb) {
			c->idbuf[e - s] = c->tri[e].id; /* idbuf reused: group ids (<= n) */
			e++;
		}
		rc = nd_ix_postings_append(ix, pcur, (uint32_t)(c->tri[s].tb >> 32), (uint32_t)c->tri[s].tb,
				     c->idbuf, e - s, &m, err);
		if (rc)
			goto done;
		s = e;
	}
	/* hash postings of the items stored with a hash (version 3); the
	 * triples' memory (n * (L + 1) * 16 bytes) holds their n * 4 keys */
	uint64_t *hkeys = (uint64_t *)c->tri;
	size_t nk = 0;
	for (size_t i = 0; i < c->n; i++) {
		const nd_index_item *it = &c->items[i];
		uint32_t id = c->first_id + (uint32_t)i;
		if (!item_stores_phash(ix, it) || c->dead[i])
			continue;
		for (uint32_t q = 0; q < ND_PHASH_QUARTERS; q++)
			hkeys[nk++] = nd_ix_phash_key(q, nd_ix_phash_bucket(it->phash, q), id);
	}
	if ((rc = nd_ix_phash_append(ix, hcur, hkeys, nk, c->idbuf, err)) ||
	    (rc = write_meta(ix, txn, &m, err)) || (rc = nd_ix_phash_mark(ix, txn, &m, err)))
		goto done;
	rc = nd_ix_inode_mark(ix, txn, &m, err);
done:
	if (pcur)
		mdb_cursor_close(pcur);
	if (hcur)
		mdb_cursor_close(hcur);
	return rc;
}

int nd_index_add(nd_index *ix, const nd_index_item *items, size_t n, uint32_t *ids, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_add(ix, items, n, ids, err);
	struct add_ctx c = { 0 };
	uint32_t L = ix->meta.tables, dim = ix->meta.dim;
	size_t sz;
	int rc = 0;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const nd_record *r = &items[i].rec;
		if (!items[i].vec)
			return nd_error_set(err, ND_EINVAL, "item %zu has no vector", i);
		if (!r->path || r->path_len == 0 || r->path_len > ND_PATH_MAX ||
		    strlen(r->path) != r->path_len)
			return nd_error_set(err, ND_EINVAL, "item %zu: bad path (length %zu)", i, r->path_len);
		double nn = 0;
		for (uint32_t j = 0; j < dim; j++) {
			if (!isfinite(items[i].vec[j]))
				return nd_error_set(err, ND_EINVAL, "item %zu ('%s'): vector component %u not finite",
						    i, r->path, j);
			nn += (double)items[i].vec[j] * items[i].vec[j];
		}
		if (fabs(nn - 1.0) > 1e-2)
			return nd_error_set(err, ND_EINVAL,
					    "item %zu ('%s'): vector not L2-normalised (norm^2 %.4f)", i,
					    r->path, nn);
	}
	/* triples: n * L, plus n for the radix sort's scratch */
	if (nd_mul_size(n, (size_t)L + 1, &sz) || nd_mul_size(sz, sizeof(struct triple), &sz))
		return nd_error_set(err, ND_EOVERFLOW, "batch too large");
	c.ix = ix;
	c.items = items;
	c.n = n;
	c.vlen = nd_vector_encoded_size_max(dim, ix->meta.vec_format);
	size_t vsz;
	if (nd_mul_size(n, c.vlen, &vsz))
		return nd_error_set(err, ND_EOVERFLOW, "batch too large");
	c.sigs = malloc(n * L * sizeof(uint32_t));
	c.osig = malloc(L * sizeof(uint32_t));
	c.venc = malloc(vsz);
	c.tri = malloc(sz);
	c.dead = malloc(n);
	c.idbuf = malloc(n * sizeof(uint32_t));
	c.fbuf = malloc(dim * sizeof(float));
	c.vbuf_cap = nd_vector_encoded_size_max(dim, ND_VEC_F16);
	if (c.vbuf_cap < nd_record_encoded_size(ND_PATH_MAX))
		c.vbuf_cap = nd_record_encoded_size(ND_PATH_MAX);
	c.vbuf = malloc(c.vbuf_cap);
	if (!c.sigs || !c.osig || !c.venc || !c.tri || !c.dead || !c.idbuf || !c.fbuf || !c.vbuf) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for a batch of %zu", n);
		goto done;
	}
	if ((rc = prep_batch(&c, err)))
		goto done;
	rc = nd_store_write(ix->st, add_txn, &c, err);
	if (rc == 0 && ids) {
		/* ids are consecutive from the batch's first id */
		for (size_t i = 0; i < n; i++)
			ids[i] = c.first_id + (uint32_t)i;
	}
done:
	free(c.sigs);
	free(c.osig);
	free(c.venc);
	free(c.tri);
	free(c.dead);
	free(c.idbuf);
	free(c.fbuf);
	free(c.vbuf);
	return rc;
}

/* ---- remove ---- */

struct remove_ctx {
	nd_index *ix;
	const uint32_t *ids;
	size_t n, removed;
	float *fbuf;
	uint32_t *sig;
};

static int remove_txn(MDB_txn *txn, void *vctx, nd_error *err)
{
	struct remove_ctx *c = vctx;
	nd_index *ix = c->ix;
	MDB_cursor *pcur = NULL, *hcur = NULL;
	nd_meta m;
	int rc, mrc, gone;
	c->removed = 0;
	if ((rc = nd_ix_read_meta(ix, txn, &m, err)))
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->postings, &pcur)) ||
	    (mrc = mdb_cursor_open(txn, ix->st->phash, &hcur))) {
		rc = nd_store_err(mrc, err, "opening a cursor");
		goto done;
	}
	for (size_t i = 0; i < c->n; i++) {
		rc = remove_one(ix, txn, pcur, hcur, c->ids[i], &m, UINT32_MAX, NULL, c->fbuf, c->sig,
				&gone, err);
		if (rc)
			goto done;
		c->removed += (size_t)gone;
	}
	if ((rc = write_meta(ix, txn, &m, err)) == 0 && (rc = nd_ix_phash_mark(ix, txn, &m, err)) == 0)
		rc = nd_ix_inode_mark(ix, txn, &m, err);
done:
	if (pcur)
		mdb_cursor_close(pcur);
	if (hcur)
		mdb_cursor_close(hcur);
	return rc;
}

int nd_index_remove(nd_index *ix, const uint32_t *ids, size_t n, size_t *removed, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_remove(ix, ids, n, removed, err);
	struct remove_ctx c = { ix, ids, n, 0, NULL, NULL };
	int rc;
	if (removed)
		*removed = 0;
	if (n == 0)
		return 0;
	c.fbuf = malloc(ix->meta.dim * sizeof(float));
	c.sig = malloc(ix->meta.tables * sizeof(uint32_t));
	if (!c.fbuf || !c.sig) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	rc = nd_store_write(ix->st, remove_txn, &c, err);
	if (rc == 0 && removed)
		*removed = c.removed;
done:
	free(c.fbuf);
	free(c.sig);
	return rc;
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
		return nd_store_err(mrc, err, "reading posting blocks");
	return 0;
}

int nd_index_query(nd_index *ix, const float *vec, const nd_query_params *p, nd_hit *hits,
		   size_t *n, nd_query_stats *stats, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_query(ix, vec, p, hits, n, stats, err);
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

	if ((rc = nd_store_read_begin(ix->st, &txn, err)))
		goto done;
	if ((mrc = mdb_cursor_open(txn, ix->st->postings, &cur))) {
		rc = nd_store_err(mrc, err, "opening a cursor");
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
		if ((rc = nd_ix_read_meta(ix, txn, &now, err)))
			goto done;
		if (nd_ix_phash_valid(ix, txn, &now)) {
			if ((mrc = mdb_cursor_open(txn, ix->st->phash, &cur))) {
				rc = nd_store_err(mrc, err, "opening a cursor");
				goto done;
			}
			for (uint32_t q = 0; q < ND_PHASH_QUARTERS && !st.truncated; q++) {
				uint64_t before = st.postings;
				if ((rc = read_bucket(cur, q, nd_ix_phash_bucket(p->phash, q), home_w,
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
		rc = nd_store_err(mrc, err, "opening a cursor");
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
				     : nd_store_err(mrc, err, "reading a vector");
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
			sim = nd_ix_pair_score(ix, raw, qstat, p->has_phash, p->phash, vv.stat, vv.has_phash,
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
		nd_store_read_end(ix->st, txn);
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
		return nd_ix_un_prefault(ix, err);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	volatile uint8_t sink = 0;
	int rc = nd_store_read_begin(ix->st, &txn, err), mrc = 0;
	if (rc)
		return rc;
	MDB_dbi dbs[2] = { ix->st->vectors, ix->st->postings };
	for (int i = 0; i < 2 && rc == 0; i++) {
		if ((mrc = mdb_cursor_open(txn, dbs[i], &cur))) {
			rc = nd_store_err(mrc, err, "opening a cursor");
			break;
		}
		/* one read per value touches every leaf page (LMDB has no
		 * portable way to hand us the map address for madvise) */
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			sink ^= *(const uint8_t *)v.mv_data;
		if (mrc != MDB_NOTFOUND)
			rc = nd_store_err(mrc, err, "reading the index");
		mdb_cursor_close(cur);
	}
	(void)sink;
	nd_store_read_end(ix->st, txn);
	return rc;
}

/* ---- lookups ---- */

int nd_index_get_record(nd_index *ix, uint32_t id, nd_record *rec, char *pathbuf, size_t pathcap,
			nd_error *err)
{
	if (ix->un)
		return nd_ix_un_get_record(ix, id, rec, pathbuf, pathcap, err);
	MDB_txn *txn;
	int rc = nd_store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd_ix_get_record(ix, txn, id, rec, err);
	if (rc == 0) {
		if (rec->path_len + 1 > pathcap) {
			rc = nd_error_set(err, ND_ELIMIT, "path of %zu bytes does not fit %zu", rec->path_len,
					  pathcap);
		} else {
			memcpy(pathbuf, rec->path, rec->path_len + 1);
			rec->path = pathbuf;
		}
	}
	nd_store_read_end(ix->st, txn);
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
		int r = nd_ix_un_locate(ix, id, &sh, &local, err);
		return r ? r : read_vector(sh, local, out, has_phash, phash, err);
	}
	MDB_txn *txn;
	nd_vec_view vv;
	int rc = nd_store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd_ix_get_vector(ix, txn, id, &vv, err);
	if (rc == 0 && out)
		nd_vector_dequant(&vv, out);
	if (has_phash) {
		*has_phash = rc == 0 && vv.has_phash;
		*phash = rc == 0 ? vv.phash : 0;
	}
	nd_store_read_end(ix->st, txn);
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
		int r = nd_ix_un_locate(ix, a, &sa, &a, err);
		if (r || (r = nd_ix_un_locate(ix, b, &sb, &b, err)))
			return r;
	}
	float *fa = malloc((size_t)ix->meta.dim * sizeof(float));
	if (!fa)
		return nd_error_set(err, ND_ENOMEM, "out of memory for a vector");
	int rc = nd_store_read_begin(sa->st, &txn, err);
	if (rc) {
		free(fa);
		return rc;
	}
	if (sb != sa && (rc = nd_store_read_begin(sb->st, &txn_b, err)))
		goto done;
	if ((rc = nd_ix_get_vector(sa, txn, a, &va, err)) ||
	    (rc = nd_ix_get_vector(sb, txn_b ? txn_b : txn, b, &vb, err)))
		goto done;
	/* as a query of a's stored vector scores b */
	nd_vector_dequant(&va, fa);
	float c = nd_vector_dot(&vb, fa);
	*cosine = c > 1.0f ? 1.0f : c;
	*sim = *cosine;
	if (!raw && ix->calibrated)
		*sim = nd_ix_pair_score(ix, c, va.stat, va.has_phash, va.phash, vb.stat, vb.has_phash, vb.phash);
done:
	if (txn_b)
		nd_store_read_end(sb->st, txn_b);
	nd_store_read_end(sa->st, txn);
	free(fa);
	return rc;
}

int nd_index_get_side(nd_index *ix, uint32_t id, nd_score_side *side, nd_error *err)
{
	if (ix->un) {
		nd_index *sh;
		uint32_t local;
		int r = nd_ix_un_locate(ix, id, &sh, &local, err);
		return r ? r : nd_index_get_side(sh, local, side, err);
	}
	MDB_txn *txn;
	nd_vec_view vv;
	int rc = nd_store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	if ((rc = nd_ix_get_vector(ix, txn, id, &vv, err)) == 0)
		*side = (nd_score_side){ vv.has_stat, vv.stat, vv.has_phash, vv.phash };
	nd_store_read_end(ix->st, txn);
	return rc;
}

int nd_index_get_origin(nd_index *ix, uint32_t id, int *has_origin, nd_origin *origin, nd_error *err)
{
	if (ix->un) {
		nd_index *sh;
		uint32_t local;
		int r = nd_ix_un_locate(ix, id, &sh, &local, err);
		return r ? r : nd_index_get_origin(sh, local, has_origin, origin, err);
	}
	MDB_txn *txn;
	nd_vec_view vv;
	int rc = nd_store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd_ix_get_vector(ix, txn, id, &vv, err);
	*has_origin = rc == 0 && vv.has_origin;
	if (*has_origin)
		*origin = vv.origin;
	else
		nd_origin_init(origin);
	nd_store_read_end(ix->st, txn);
	return rc;
}

int nd_index_lookup_path(nd_index *ix, const char *path, uint32_t *id, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_lookup_path(ix, path, id, err);
	uint8_t key[ND_PATH_KEY_MAX];
	size_t len = strlen(path);
	MDB_txn *txn;
	nd_record r;
	if (len == 0 || len > ND_PATH_MAX)
		return nd_error_set(err, ND_ENOTFOUND, "path not indexed");
	MDB_val k = { nd_path_key(path, len, key), key }, v;
	int rc = nd_store_read_begin(ix->st, &txn, err), mrc;
	if (rc)
		return rc;
	mrc = mdb_get(txn, ix->st->paths, &k, &v);
	if (mrc == MDB_NOTFOUND)
		rc = nd_error_set(err, ND_ENOTFOUND, "path not indexed");
	else if (mrc)
		rc = nd_store_err(mrc, err, "reading a path entry");
	else if ((rc = nd_pathval_decode(v.mv_data, v.mv_size, id, err)) == 0 &&
		 (rc = nd_ix_get_record(ix, txn, *id, &r, err)) == 0 &&
		 (r.path_len != len || memcmp(r.path, path, len) != 0))
		rc = nd_error_set(err, ND_ENOTFOUND, "path not indexed (key collision with id %u)", *id);
	nd_store_read_end(ix->st, txn);
	return rc;
}

int nd_index_lookup_hash(nd_index *ix, const uint8_t hash[16], uint32_t *ids, size_t cap,
			 size_t *n, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_lookup_hash(ix, hash, ids, cap, n, err);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k = { 16, (void *)hash }, v;
	size_t cnt = 0;
	int rc = nd_store_read_begin(ix->st, &txn, err), mrc;
	if (rc)
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->hashes, &cur))) {
		rc = nd_store_err(mrc, err, "opening a cursor");
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
		rc = nd_store_err(mrc, err, "reading hash entries");
	*n = cnt;
done:
	if (cur)
		mdb_cursor_close(cur);
	nd_store_read_end(ix->st, txn);
	return rc;
}

int nd_index_foreach(nd_index *ix, nd_record_fn fn, void *ctx, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_foreach(ix, fn, ctx, err);
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc = nd_store_read_begin(ix->st, &txn, err), mrc;
	if (rc)
		return rc;
	if ((mrc = mdb_cursor_open(txn, ix->st->records, &cur))) {
		rc = nd_store_err(mrc, err, "opening a cursor");
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
		rc = nd_store_err(mrc, err, "reading records");
done:
	if (cur)
		mdb_cursor_close(cur);
	nd_store_read_end(ix->st, txn);
	return rc;
}

int nd_index_stats_get(nd_index *ix, nd_index_stats *s, nd_error *err)
{
	if (ix->un)
		return nd_ix_un_stats(ix, s, err);
	MDB_txn *txn;
	MDB_stat ms;
	MDB_envinfo info;
	char path[4200];
	struct stat sb;
	int rc;
	memset(s, 0, sizeof(*s));
	if ((rc = nd_store_read_begin(ix->st, &txn, err)))
		return rc;
	if ((rc = nd_ix_read_meta(ix, txn, &s->meta, err)))
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
	nd_store_read_end(ix->st, txn);
	return rc;
}
