/* neardup — opening an index: creating it, upgrading its vectors, checking the model; its metadata. */
#include "index_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nd_index_options_init(nd_index_options *o)
{
	memset(o, 0, sizeof(*o));
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
			rc = nd__store_err(mrc, err, "opening a cursor");
			goto done;
		}
		MDB_val k = { sizeof(next), &next }, v;
		for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == 0 && n < UPGRADE_BATCH;
		     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			uint32_t id = 0;
			nd_vec_view vv;
			if ((rc = nd__index_vector_entry(&k, &v, dim, &id, &vv, err)))
				goto done;
			next = id + 1;
			if (vv.has_stat)
				continue;
			nd_vector_dequant(&vv, vecs + n * dim);
			fmt[n] = vv.format;
			ids[n++] = id;
		}
		if (mrc && mrc != MDB_NOTFOUND) {
			rc = nd__store_err(mrc, err, "reading the vectors");
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
				rc = nd__store_err(mrc, err, "writing a vector");
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
	MDB_val k = ND__STORE_KEY(ND_META_KEY), v;
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
			if ((rc = nd__index_write_meta(ix, txn, &ix->meta, err)))
				return rc;
		}
		/* hash postings missing (an index from before them) or stale (an
		 * older writer added or removed images since): list them again */
		if (!nd__index_phash_valid(ix, txn, &ix->meta))
			rc = nd__index_phash_rebuild(ix, txn, &ix->meta, err);
		/* the same for the file identities */
		if (rc == 0 && !nd__index_inode_valid(ix, txn, &ix->meta))
			rc = nd__index_inode_rebuild(ix, txn, &ix->meta, err);
		return rc;
	}
	if (mrc != MDB_NOTFOUND)
		return nd__store_err(mrc, err, "reading metadata");
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
		snprintf(m->model_name, sizeof(m->model_name), "%s", o->model_name);
	}
	m->next_id = 1;
	m->flags = o->calib.stat ? ND_META_VEC_STAT : 0;
	if (m->tables > ND_LSH_MAX_TABLES || m->bits > ND_LSH_MAX_BITS ||
	    (m->vec_format != ND_VEC_F16 && m->vec_format != ND_VEC_I8))
		return nd_error_set(err, ND_EINVAL, "bad index parameters (tables %u, bits %u, format %u)",
				    m->tables, m->bits, m->vec_format);
	c->created = 1;
	int rc = nd__index_write_meta(ix, txn, m, err);
	if (rc == 0)
		rc = nd__index_phash_mark(ix, txn, m, err);
	return rc ? rc : nd__index_inode_mark(ix, txn, m, err);
}

int nd__index_open_one(nd_index **out, const char *dir, const nd_index_options *o, nd_error *err)
{
	nd_index *ix = NULL;
	MDB_txn *txn = NULL;
	int rc;
	*out = NULL;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	rc = nd__store_open(&ix->st, dir, o->create, o->readonly, o->map_size, o->nosync, err);
	if (rc)
		goto fail;
	if (o->upgraded)
		*o->upgraded = 0;
	if (o->readonly) {
		if ((rc = nd__store_read_begin(ix->st, &txn, err)))
			goto fail;
		rc = nd__index_read_meta(ix, txn, &ix->meta, err);
		nd__store_read_end(ix->st, txn);
		if (rc)
			goto fail;
	} else {
		/* the model is checked before anything is upgraded */
		if (o->model_name && o->calib.stat) {
			MDB_val k = ND__STORE_KEY(ND_META_KEY), v;
			if ((rc = nd__store_read_begin(ix->st, &txn, err)))
				goto fail;
			int mrc = mdb_get(txn, ix->st->meta, &k, &v);
			if (mrc == 0)
				rc = nd_meta_decode(v.mv_data, v.mv_size, &ix->meta, err);
			else if (mrc != MDB_NOTFOUND)
				rc = nd__store_err(mrc, err, "reading metadata");
			nd__store_read_end(ix->st, txn);
			txn = NULL;
			if (rc == 0 && mrc == 0)
				rc = nd_index_check_model(ix, o->model_name, o->model_checksum, err);
			if (rc)
				goto fail;
		}
		struct init_ctx c = { ix, o, 0, 0 };
		if ((rc = nd__store_write(ix->st, init_txn, &c, err)))
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
		ix->un->ops->close(ix);
	if (!ix)
		return;
	nd_lsh_free(ix->lsh);
	nd__store_close(ix->st);
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
		return ix->un->ops->meta(ix, meta, err);
	MDB_txn *txn;
	int rc = nd__store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	rc = nd__index_read_meta(ix, txn, meta, err);
	nd__store_read_end(ix->st, txn);
	return rc;
}
