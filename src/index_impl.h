/* neardup — private: the index handle and helpers shared by index*.c. */
#ifndef NEARDUP_INDEX_IMPL_H
#define NEARDUP_INDEX_IMPL_H

#include "neardup/index.h"
#include "neardup/lsh.h"
#include "store_impl.h"

struct nd_index {
	nd_store *st;
	nd_lsh *lsh;
	nd_meta meta;            /* parameters as of open (counters: see nd_index_meta) */
	nd_index_calib calib;    /* calibrated similarity; calib.stat NULL: none */
	int calibrated;          /* calib.stat set and every vector carries its statistic */
};

/* The calibrated similarity (the formula of nd_calib_score in neardup/calib.h). */
static inline float nd_ix_score(const nd_index *ix, float cos, float sa, float sb)
{
	return cos - ix->calib.beta * 0.5f * (sa + sb) + ix->calib.offset;
}

/* Runs fn(items + i * size) for i < n (n <= ND_JOIN_MAX_THREADS), on n
 * threads of which the calling thread is the first; a share whose thread
 * cannot start runs on the calling thread. Used by batched adds and the
 * self-join. */
void nd_ix_run_parallel(void *items, size_t size, unsigned n, void *(*fn)(void *));

int nd_ix_read_meta(nd_index *ix, MDB_txn *txn, nd_meta *m, nd_error *err);
/* ND_ENOTFOUND when absent; v points into the map (valid during txn). */
int nd_ix_get_vector(nd_index *ix, MDB_txn *txn, uint32_t id, nd_vec_view *v, nd_error *err);
int nd_ix_get_record(nd_index *ix, MDB_txn *txn, uint32_t id, nd_record *r, nd_error *err);

#endif
