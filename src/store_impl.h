/* neardup — private: the LMDB environment behind an index. */
#ifndef NEARDUP_STORE_IMPL_H
#define NEARDUP_STORE_IMPL_H

#include <lmdb.h>
#include <pthread.h>

#include "neardup/store.h"

/* An MDB_val naming a string constant's bytes without its terminating 0
 * (the meta database's keys: ND_META_KEY...). */
#define ND__STORE_KEY(s) { sizeof(s) - 1, (void *)(s) }

typedef struct nd_store {
	MDB_env *env;
	MDB_dbi meta, records, paths, hashes, vectors, postings;
	MDB_dbi phash;                /* perceptual-hash postings */
	int has_phash_db;             /* 0: an index from before it, opened read-only */
	MDB_dbi inodes;               /* (device, inode) -> id */
	int has_inode_db;             /* 0: an index from before it, opened read-only */
	int readonly;
	int nolock;                   /* read-only without lock.mdb: readers not coordinated */
	int lock_fd;                  /* writer lock (flock), -1 for readers */
	char *dir;
	pthread_rwlock_t resize_lock; /* read: a transaction is open; write: resizing the map */
	uint64_t grows;               /* times the map was grown (for tests and stats) */
} nd_store;

/* Opens the environment in dir (creating dir and the databases when create
 * is set and we are not read-only). */
int nd__store_open(nd_store **out, const char *dir, int create, int readonly, size_t map_size,
		   int nosync, nd_error *err);
void nd__store_close(nd_store *s);

/* Read transactions: begin takes the resize lock for reading. */
int nd__store_read_begin(nd_store *s, MDB_txn **txn, nd_error *err);
void nd__store_read_end(nd_store *s, MDB_txn *txn);

/* Runs fn in one write transaction and commits it. When LMDB reports the map
 * full (fn returns ND_STORE_MAPFULL, or commit does), the transaction is
 * aborted, the map doubled and fn run again from the start: fn must keep no
 * state outside the transaction between runs. */
#define ND_STORE_MAPFULL 1
typedef int (*nd__store_write_fn)(MDB_txn *txn, void *ctx, nd_error *err);
int nd__store_write(nd_store *s, nd__store_write_fn fn, void *ctx, nd_error *err);

/* ---- posting blocks (store_postings.c) ---- */

/* Posting lists, of the postings or the phash database by the cursor's:
 * append ids[0..n) (increasing, above all in the bucket) to (table,
 * bucket); remove id from it (ND_ECORRUPT when it is not there). m's
 * posting counters follow the change. */
int nd__store_postings_append(MDB_cursor *cur, uint32_t table, uint32_t bucket, const uint32_t *ids, size_t n,
			      nd_meta *m, nd_error *err);
int nd__store_postings_remove(MDB_cursor *cur, uint32_t table, uint32_t bucket, uint32_t id, nd_meta *m,
			      nd_error *err);

/* ---- the validating walker (store_verify.c) ---- */

/* What a walk of data.mdb saw. */
typedef struct nd__store_walk_info {
	uint64_t file_bytes;  /* data.mdb's size */
	uint32_t psize;       /* LMDB page size */
	uint64_t last_pg;     /* the walked meta's last page */
	uint64_t txnid;       /* ... and its transaction */
	uint64_t pages;       /* tree pages read (branch, leaf, overflow) */
	uint64_t free_pages;  /* pages the free list names */
} nd__store_walk_info;

/* Reads DIR/data.mdb with pread (never LMDB's map): the two meta pages (the
 * one LMDB would use, or the one of transaction want_txnid when not 0), the
 * file size against its last page, then the main database and the "meta"
 * database (full == 0: what every open reads) or every tree and the free
 * list (full == 1): page numbers inside the file, each page reached once,
 * page headers, node bounds, key order, sub-databases, overflow pages, the
 * databases' counters. Damage: ND_ECORRUPT, "index 'DIR' is damaged: ...".
 * ND_EBUSY when no meta page holds want_txnid (a writer moved on: retry);
 * ND_ENOTFOUND, ND_EIO, ND_ENOMEM. The walk sees a consistent snapshot only
 * while no writer can reuse its pages: under the writer lock, or inside a
 * read transaction of that txnid (nd__store_verify). */
int nd__store_walk(const char *dir, int full, uint64_t want_txnid, nd__store_walk_info *out, nd_error *err);

/* nd__store_read_begin, then the full walk of that transaction's snapshot;
 * on success the transaction stays open (end it with nd__store_read_end). */
int nd__store_read_begin_verified(nd_store *s, MDB_txn **txn, nd__store_walk_info *out, nd_error *err);

/* Copies the environment, compacted, into dest_dir (which must hold no
 * data.mdb) inside one read transaction: writers go on meanwhile. */
int nd__store_copy(nd_store *s, const char *dest_dir, nd_error *err);

/* Translates an LMDB return code: MDB_MAP_FULL -> ND_STORE_MAPFULL (not an
 * error: the write is retried); LMDB's damage codes (MDB_CORRUPTED,
 * MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH) -> ND_ECORRUPT with
 * "the index is damaged: what: message"; others -> ND_ESTORE with
 * "what: message". */
int nd__store_err(int mrc, nd_error *err, const char *what);

#endif
