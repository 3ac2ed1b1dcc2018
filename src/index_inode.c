/* neardup — file identities: (device, inode) -> id (database "inodes").
 *
 * Why: paths are stored as given, so one file reached as 'tree/a.jpg',
 * './tree/a.jpg', '/home/u/tree/a.jpg', through a symlinked directory or a
 * hard link would otherwise become several images, which dedup then pairs
 * as exact duplicates of each other: deleting "the copy" deletes the file.
 * Every record that knows its file's identity (record version 2) is listed
 * here, at most one per identity; nd_index_add replaces the image holding
 * an item's identity as it replaces the one holding its path.
 *
 * Like the phash database, it is valid only while meta's "inodes" mark
 * matches the metadata's next id and image count: a writer from before it
 * adds and removes images without touching either, and the next writer that
 * knows it rebuilds it from the records (the first id of an identity wins). */
#include "index_impl.h"

#include <string.h>


static int read_mark(nd_index *ix, MDB_txn *txn, uint32_t *next_id, uint64_t *n_images, nd_error *err)
{
	MDB_val k = ND__STORE_KEY(ND_META_KEY_INODES), v;
	int mrc = mdb_get(txn, ix->st->meta, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return ND_ENOTFOUND;
	if (mrc)
		return nd__store_err(mrc, err, "reading the inodes mark");
	return nd_phash_mark_decode(v.mv_data, v.mv_size, next_id, n_images, err);
}

int nd__index_inode_valid(nd_index *ix, MDB_txn *txn, const nd_meta *m)
{
	uint32_t next_id;
	uint64_t n_images;
	if (!ix->st->has_inode_db || read_mark(ix, txn, &next_id, &n_images, NULL))
		return 0;
	return next_id == m->next_id && n_images == m->n_images;
}

int nd__index_inode_mark(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err)
{
	uint8_t buf[ND_PHASH_MARK_SIZE];
	nd_phash_mark_encode(m->next_id, m->n_images, buf);
	MDB_val k = ND__STORE_KEY(ND_META_KEY_INODES), v = { sizeof(buf), buf };
	int mrc = mdb_put(txn, ix->st->meta, &k, &v, 0);
	return mrc ? nd__store_err(mrc, err, "writing the inodes mark") : 0;
}

int nd__index_inode_get(nd_index *ix, MDB_txn *txn, uint64_t dev, uint64_t ino, uint32_t *id, nd_error *err)
{
	uint8_t key[ND_INODE_KEY_SIZE];
	nd_inode_key(dev, ino, key);
	MDB_val k = { sizeof(key), key }, v;
	int mrc = mdb_get(txn, ix->st->inodes, &k, &v);
	if (mrc == MDB_NOTFOUND)
		return ND_ENOTFOUND;
	if (mrc)
		return nd__store_err(mrc, err, "reading an inode entry");
	return nd_pathval_decode(v.mv_data, v.mv_size, id, err);
}

int nd__index_inode_put(nd_index *ix, MDB_txn *txn, const nd_record *r, uint32_t id, unsigned flags,
			nd_error *err)
{
	uint8_t key[ND_INODE_KEY_SIZE], val[ND_PATHVAL_SIZE];
	nd_inode_key(r->dev, r->ino, key);
	nd_pathval_encode(id, val);
	MDB_val k = { sizeof(key), key }, v = { sizeof(val), val };
	int mrc = mdb_put(txn, ix->st->inodes, &k, &v, flags);
	if (mrc == MDB_KEYEXIST)
		return ND_EBUSY;
	return mrc ? nd__store_err(mrc, err, "writing an inode entry") : 0;
}

int nd__index_inode_del(nd_index *ix, MDB_txn *txn, const nd_record *r, uint32_t id, nd_error *err)
{
	uint32_t cur;
	if (!nd_record_has_identity(r))
		return 0;
	/* only when it names this image: a stale entry may name another */
	int rc = nd__index_inode_get(ix, txn, r->dev, r->ino, &cur, NULL);
	if (rc == ND_ENOTFOUND || (rc == 0 && cur != id))
		return 0;
	uint8_t key[ND_INODE_KEY_SIZE];
	nd_inode_key(r->dev, r->ino, key);
	MDB_val k = { sizeof(key), key };
	int mrc = mdb_del(txn, ix->st->inodes, &k, NULL);
	return mrc && mrc != MDB_NOTFOUND ? nd__store_err(mrc, err, "deleting an inode entry") : 0;
}

int nd__index_inode_rebuild(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc = 0, mrc;
	if ((mrc = mdb_drop(txn, ix->st->inodes, 0)))
		return nd__store_err(mrc, err, "emptying the inodes database");
	if ((mrc = mdb_cursor_open(txn, ix->st->records, &cur)))
		return nd__store_err(mrc, err, "opening a cursor");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		nd_record r;
		uint32_t id;
		if (k.mv_size != sizeof(id)) {
			rc = nd_error_set(err, ND_ECORRUPT, "record key of %zu bytes", k.mv_size);
			goto done;
		}
		memcpy(&id, k.mv_data, sizeof(id));
		if ((rc = nd_record_decode(v.mv_data, v.mv_size, &r, err)))
			goto done;
		if (!nd_record_has_identity(&r))
			continue;
		/* records come in id order: the first-indexed image of a file keeps it */
		rc = nd__index_inode_put(ix, txn, &r, id, MDB_NOOVERWRITE, err);
		if (rc == ND_EBUSY)
			rc = 0;
		if (rc)
			goto done;
	}
	if (mrc != MDB_NOTFOUND) {
		rc = nd__store_err(mrc, err, "reading the records");
		goto done;
	}
	rc = nd__index_inode_mark(ix, txn, m, err);
done:
	mdb_cursor_close(cur);
	return rc;
}

int nd__index_inode_check(nd_index *ix, MDB_txn *txn, nd_check_report *rep, nd__index_problem_fn problem,
			  nd_error *err)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	nd_error e2;
	uint64_t known = 0;
	int rc = 0, mrc;
	/* every entry names a record of that identity */
	if ((mrc = mdb_cursor_open(txn, ix->st->inodes, &cur)))
		return nd__store_err(mrc, err, "opening a cursor");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id;
		nd_record r;
		uint8_t want[ND_INODE_KEY_SIZE];
		rep->inode_entries++;
		if (k.mv_size != ND_INODE_KEY_SIZE) {
			problem(rep, "inode entry with a %zu-byte key", k.mv_size);
			continue;
		}
		if (nd_pathval_decode(v.mv_data, v.mv_size, &id, &e2)) {
			problem(rep, "inode entry: %s", e2.msg);
			continue;
		}
		if (nd__index_get_record(ix, txn, id, &r, &e2)) {
			problem(rep, "inode entry points at id %u, which has no readable record", id);
			continue;
		}
		nd_inode_key(r.dev, r.ino, want);
		if (memcmp(want, k.mv_data, ND_INODE_KEY_SIZE) != 0)
			problem(rep, "inode entry of id %u differs from its record's device and inode", id);
	}
	if (mrc != MDB_NOTFOUND) {
		rc = nd__store_err(mrc, err, "reading the inodes database");
		goto done;
	}
	mdb_cursor_close(cur);
	cur = NULL;
	/* every record that knows its identity is the one listed for it */
	if ((mrc = mdb_cursor_open(txn, ix->st->records, &cur)))
		return nd__store_err(mrc, err, "opening a cursor");
	for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint32_t id, other;
		nd_record r;
		if (k.mv_size != sizeof(id) || nd_record_decode(v.mv_data, v.mv_size, &r, NULL))
			continue; /* reported by the records' own check */
		memcpy(&id, k.mv_data, sizeof(id));
		if (!nd_record_has_identity(&r))
			continue;
		known++;
		int g = nd__index_inode_get(ix, txn, r.dev, r.ino, &other, &e2);
		if (g == ND_ENOTFOUND)
			problem(rep, "record %u ('%.80s'): no inode entry", id, r.path);
		else if (g == 0 && other != id)
			problem(rep, "records %u and %u are one file (device %llu, inode %llu)", other, id,
				(unsigned long long)r.dev, (unsigned long long)r.ino);
	}
	if (mrc != MDB_NOTFOUND) {
		rc = nd__store_err(mrc, err, "reading the records");
		goto done;
	}
	if (known != rep->inode_entries)
		problem(rep, "%llu inode entries for %llu records with a file identity",
			(unsigned long long)rep->inode_entries, (unsigned long long)known);
done:
	if (cur)
		mdb_cursor_close(cur);
	return rc;
}

int nd_index_lookup_file(nd_index *ix, uint64_t dev, uint64_t ino, uint32_t *id, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->lookup_file(ix, dev, ino, id, err);
	MDB_txn *txn;
	nd_meta m;
	nd_record r;
	if (dev == 0 && ino == 0)
		return nd_error_set(err, ND_ENOTFOUND, "file identity unknown");
	int rc = nd__store_read_begin(ix->st, &txn, err);
	if (rc)
		return rc;
	if ((rc = nd__index_read_meta(ix, txn, &m, err)))
		goto done;
	if (!nd__index_inode_valid(ix, txn, &m)) {
		rc = nd_error_set(err, ND_ENOTFOUND, "file identities not current");
		goto done;
	}
	rc = nd__index_inode_get(ix, txn, dev, ino, id, err);
	if (rc == ND_ENOTFOUND)
		rc = nd_error_set(err, ND_ENOTFOUND, "file not indexed");
	else if (rc == 0 && (rc = nd__index_get_record(ix, txn, *id, &r, err)) == 0 &&
		 (r.dev != dev || r.ino != ino))
		rc = nd_error_set(err, ND_ECORRUPT, "inode entry of id %u differs from its record", *id);
done:
	nd__store_read_end(ix->st, txn);
	return rc;
}
