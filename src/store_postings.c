/* neardup — posting-block maintenance: appending ids to a bucket's blocks
 * and removing one, inside the caller's write transaction. */
#include "store_impl.h"

#include "neardup/postings.h"

#include <stdint.h>
#include <string.h>

/* Appends ids[0..n) (increasing, all above anything in the bucket) to the
 * bucket (table, bucket): fills its last block, then adds new blocks. */
int nd__store_postings_append(MDB_cursor *cur, uint32_t table, uint32_t bucket, const uint32_t *ids, size_t n,
			      nd_meta *m, nd_error *err)
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
		return nd__store_err(mrc, err, "seeking a posting block");
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
					return nd__store_err(mrc, err, "writing a posting block");
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
			return nd__store_err(mrc, err, "writing a posting block");
		m->n_blocks++;
		m->posting_bytes += ND_POSTING_KEY_SIZE + len;
		done += take;
	}
	m->n_postings += n;
	return 0;
}

/* Removes id from bucket (table, bucket). */
int nd__store_postings_remove(MDB_cursor *cur, uint32_t table, uint32_t bucket, uint32_t id, nd_meta *m,
			      nd_error *err)
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
		return nd__store_err(mrc, err, "seeking a posting block");
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
			return nd__store_err(mrc, err, "deleting a posting block");
		m->posting_bytes -= ND_POSTING_KEY_SIZE + oldlen;
		m->n_blocks--;
		if (nb > 0) {
			if ((rc = nd_block_encode(blk, nb, val, sizeof(val), &len, err)))
				return rc;
			nd_posting_key(table, bucket, blk[0], key);
			MDB_val k2 = { ND_POSTING_KEY_SIZE, key }, v2 = { len, val };
			if ((mrc = mdb_cursor_put(cur, &k2, &v2, 0)))
				return nd__store_err(mrc, err, "writing a posting block");
			m->posting_bytes += ND_POSTING_KEY_SIZE + len;
			m->n_blocks++;
		}
	} else {
		if ((rc = nd_block_encode(blk, nb, val, sizeof(val), &len, err)))
			return rc;
		nd_posting_key(table, bucket, first, key);
		MDB_val k2 = { ND_POSTING_KEY_SIZE, key }, v2 = { len, val };
		if ((mrc = mdb_cursor_put(cur, &k2, &v2, 0)))
			return nd__store_err(mrc, err, "writing a posting block");
		m->posting_bytes += len;
		m->posting_bytes -= oldlen;
	}
	m->n_postings--;
	return 0;
}
