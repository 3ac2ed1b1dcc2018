/* neardup — private: the index handle and helpers shared by index*.c. */
#ifndef NEARDUP_INDEX_IMPL_H
#define NEARDUP_INDEX_IMPL_H

#include "neardup/index.h"
#include "neardup/lsh.h"
#include "neardup/phash.h"
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

/* The perceptual-hash term of the fused score (nd_calib_phash_bonus in
 * neardup/calib.h): 0 unless both images carry a hash. */
static inline float nd_ix_phash_bonus(const nd_index *ix, int has_a, uint64_t a, int has_b, uint64_t b)
{
	if (!has_a || !has_b)
		return 0.0f;
	return nd_phash_bonus(ix->calib.phash_weight, ix->calib.phash_bits, nd_phash_distance(a, b));
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
