/* neardup — private: the LMDB environment behind an index. */
#ifndef NEARDUP_STORE_IMPL_H
#define NEARDUP_STORE_IMPL_H

#include <lmdb.h>
#include <pthread.h>

#include "neardup/store.h"

typedef struct nd_store {
	MDB_env *env;
	MDB_dbi meta, records, paths, hashes, vectors, postings;
	MDB_dbi phash;                /* perceptual-hash postings (issue 4) */
	int has_phash_db;             /* 0: an index from before it, opened read-only */
	MDB_dbi inodes;               /* (device, inode) -> id */
	int has_inode_db;             /* 0: an index from before it, opened read-only */
	int readonly;
	int lock_fd;                  /* writer lock (flock), -1 for readers */
	char *dir;
	pthread_rwlock_t resize_lock; /* read: a transaction is open; write: resizing the map */
	uint64_t grows;               /* times the map was grown (for tests and stats) */
} nd_store;

/* Opens the environment in dir (creating dir and the databases when create
 * is set and we are not read-only). */
int nd_store_open(nd_store **out, const char *dir, int create, int readonly, size_t map_size,
		  int nosync, nd_error *err);
void nd_store_close(nd_store *s);

/* Read transactions: begin takes the resize lock for reading. */
int nd_store_read_begin(nd_store *s, MDB_txn **txn, nd_error *err);
void nd_store_read_end(nd_store *s, MDB_txn *txn);

/* Runs fn in one write transaction and commits it. When LMDB reports the map
 * full (fn returns ND_STORE_MAPFULL, or commit does), the transaction is
 * aborted, the map doubled and fn run again from the start: fn must keep no
 * state outside the transaction between runs. */
#define ND_STORE_MAPFULL 1
typedef int (*nd_store_write_fn)(MDB_txn *txn, void *ctx, nd_error *err);
int nd_store_write(nd_store *s, nd_store_write_fn fn, void *ctx, nd_error *err);

/* Translates an LMDB return code: MDB_MAP_FULL -> ND_STORE_MAPFULL (not an
 * error: the write is retried), others -> ND_ESTORE with "what: message". */
int nd_store_err(int mrc, nd_error *err, const char *what);

#endif
