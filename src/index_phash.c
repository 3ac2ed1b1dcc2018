/* neardup — the perceptual-hash postings: candidates that the CNN
 * vector's LSH buckets miss.
 *
 * Why: the fused score (neardup/index.h, nd_index_calib) lifts a greyscale,
 * blurred or recompressed copy whose hash is within a few bits of the
 * original's, but a query only re-ranks what its LSH buckets hold, and such
 * a copy's raw cosine can be 0.5-0.6, far outside them. So every hashed
 * image is also listed under the four 16-bit quarters of its hash
 * (neardup/store.h, database "phash"): two hashes within 3 bits share a
 * quarter (pigeonhole), and a query reads its own four buckets. */
#include "index_impl.h"

#include <stdlib.h>
#include <string.h>

static int read_mark(nd_index *ix, MDB_txn *txn, uint32_t *next_id, uint64_t *n_images, nd_error *err)
{
	MDB_val k = ND__STORE_KEY(ND_META_KEY_PHASH), v;
	int mrc = mdb_get(txn, ix->st->meta, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return ND_ENOTFOUND;
	if (mrc)
		return nd__store_err(mrc, err, "reading the phash mark");
	return nd_phash_mark_decode(v.mv_data, v.mv_size, next_id, n_images, err);
}

int nd__index_phash_valid(nd_index *ix, MDB_txn *txn, const nd_meta *m)
{
	uint32_t next_id;
	uint64_t n_images;
	if (!ix->st->has_phash_db || read_mark(ix, txn, &next_id, &n_images, NULL))
		return 0;
	return next_id == m->next_id && n_images == m->n_images;
}

int nd__index_phash_mark(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err)
{
	uint8_t buf[ND_PHASH_MARK_SIZE];
	nd_phash_mark_encode(m->next_id, m->n_images, buf);
	MDB_val k = ND__STORE_KEY(ND_META_KEY_PHASH), v = { sizeof(buf), buf };
	int mrc = mdb_put(txn, ix->st->meta, &k, &v, 0);
	return mrc ? nd__store_err(mrc, err, "writing the phash mark") : 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int nd__index_phash_append(nd_index *ix, MDB_cursor *hcur, uint64_t *keys, size_t n, uint32_t *idbuf,
			   nd_error *err)
{
	nd_meta tally = { 0 }; /* the phash database's counts are not kept (check recounts) */
	qsort(keys, n, sizeof(uint64_t), cmp_u64);
	for (size_t s = 0; s < n;) {
		size_t e = s;
		while (e < n && keys[e] >> 32 == keys[s] >> 32) {
			idbuf[e - s] = (uint32_t)keys[e];
			e++;
		}
		int rc = nd__store_postings_append(hcur, (uint32_t)(keys[s] >> 48),
						   (uint32_t)(keys[s] >> 32) & 0xFFFF, idbuf, e - s, &tally, err);
		if (rc)
			return rc;
		s = e;
	}
	return 0;
}

int nd__index_phash_remove(nd_index *ix, MDB_cursor *hcur, uint32_t id, uint64_t phash, nd_error *err)
{
	nd_meta tally = { 0 };
	for (uint32_t q = 0; q < ND_PHASH_QUARTERS; q++) {
		int rc = nd__store_postings_remove(hcur, q, nd__index_phash_bucket(phash, q), id, &tally, err);
		if (rc)
			return rc;
	}
	return 0;
}

int nd__index_phash_rebuild(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err)
{
	MDB_cursor *cur = NULL, *hcur = NULL;
	MDB_val k, v;
	uint64_t *keys = NULL;
	uint32_t *idbuf = NULL;
	size_t n = 0, cap = 0;
	int rc = 0, mrc;
	if ((mrc = mdb_drop(txn, ix->st->phash, 0)))
		return nd__store_err(mrc, err, "emptying the phash database");
	if ((mrc = mdb_cursor_open(txn, ix->st->vectors, &cur)))
		return nd__store_err(mrc, err, "opening a cursor");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id = 0;
		nd_vec_view vv;
		if ((rc = nd__index_vector_entry(&k, &v, m->dim, &id, &vv, err)))
			goto done;
		if (!vv.has_phash)
			continue;
		if (n + ND_PHASH_QUARTERS > cap) {
			size_t nc = cap ? 2 * cap : 4096;
			uint64_t *nk = realloc(keys, nc * sizeof(uint64_t));
			if (!nk) {
				rc = nd_error_set(err, ND_ENOMEM, "out of memory for the phash postings");
				goto done;
			}
			keys = nk;
			cap = nc;
		}
		for (uint32_t q = 0; q < ND_PHASH_QUARTERS; q++)
			keys[n++] = nd__index_phash_key(q, nd__index_phash_bucket(vv.phash, q), id);
	}
	if (mrc != MDB_NOTFOUND) {
		rc = nd__store_err(mrc, err, "reading the vectors");
		goto done;
	}
	if (n && !(idbuf = malloc(n * sizeof(uint32_t)))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for the phash postings");
		goto done;
	}
	if ((mrc = mdb_cursor_open(txn, ix->st->phash, &hcur))) {
		rc = nd__store_err(mrc, err, "opening a cursor");
		goto done;
	}
	if ((rc = nd__index_phash_append(ix, hcur, keys, n, idbuf, err)))
		goto done;
	rc = nd__index_phash_mark(ix, txn, m, err);
done:
	if (cur)
		mdb_cursor_close(cur);
	if (hcur)
		mdb_cursor_close(hcur);
	free(keys);
	free(idbuf);
	return rc;
}
