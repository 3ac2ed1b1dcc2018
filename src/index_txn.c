/* neardup — the index's records inside a caller's transaction: the
 * metadata, one record, one vector. A leaf below the rest of index_*.c. */
#include "index_impl.h"

#include <stdio.h>
#include <string.h>

int nd__index_read_meta(nd_index *ix, MDB_txn *txn, nd_meta *m, nd_error *err)
{
	MDB_val k = ND__STORE_KEY(ND_META_KEY), v;
	int mrc = mdb_get(txn, ix->st->meta, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return nd_error_set(err, ND_ECORRUPT, "index '%s' has no metadata", ix->st->dir);
	if (mrc)
		return nd__store_err(mrc, err, "reading metadata");
	return nd_meta_decode(v.mv_data, v.mv_size, m, err);
}

int nd__index_write_meta(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err)
{
	uint8_t buf[ND_META_HDR_V1 + ND_MODEL_NAME_MAX + 1];
	size_t len;
	int rc = nd_meta_encode(m, buf, sizeof(buf), &len, err);
	if (rc)
		return rc;
	MDB_val k = ND__STORE_KEY(ND_META_KEY), v = { len, buf };
	int mrc = mdb_put(txn, ix->st->meta, &k, &v, 0);
	return mrc ? nd__store_err(mrc, err, "writing metadata") : 0;
}

int nd__index_vector_entry(const MDB_val *k, const MDB_val *v, uint32_t dim, uint32_t *id, nd_vec_view *vv,
			   nd_error *err)
{
	if (k->mv_size != sizeof(*id))
		return nd_error_set(err, ND_ECORRUPT, "vector key of %zu bytes", k->mv_size);
	memcpy(id, k->mv_data, sizeof(*id));
	return nd_vector_decode(v->mv_data, v->mv_size, dim, vv, err);
}

int nd__index_get_vector(nd_index *ix, MDB_txn *txn, uint32_t id, nd_vec_view *vv, nd_error *err)
{
	MDB_val k = { sizeof(id), &id }, v;
	int mrc = mdb_get(txn, ix->st->vectors, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return nd_error_set(err, ND_ENOTFOUND, "no vector for id %u", id);
	if (mrc)
		return nd__store_err(mrc, err, "reading a vector");
	int rc = nd_vector_decode(v.mv_data, v.mv_size, ix->meta.dim, vv, err);
	if (rc && err) {
		char tmp[ND_ERRMSG_MAX];
		snprintf(tmp, sizeof(tmp), "%s", err->msg);
		nd_error_set(err, rc, "vector of id %u: %s", id, tmp);
	}
	return rc;
}

int nd__index_get_record(nd_index *ix, MDB_txn *txn, uint32_t id, nd_record *r, nd_error *err)
{
	MDB_val k = { sizeof(id), &id }, v;
	int mrc = mdb_get(txn, ix->st->records, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return nd_error_set(err, ND_ENOTFOUND, "no image with id %u", id);
	if (mrc)
		return nd__store_err(mrc, err, "reading a record");
	int rc = nd_record_decode(v.mv_data, v.mv_size, r, err);
	if (rc && err) {
		char tmp[ND_ERRMSG_MAX];
		snprintf(tmp, sizeof(tmp), "%s", err->msg);
		nd_error_set(err, rc, "record of id %u: %s", id, tmp);
	}
	r->id = id;
	return rc;
}
