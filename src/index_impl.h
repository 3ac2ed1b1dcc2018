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
	struct nd__index_union *un; /* a sharded collection (index_shard.c): st is NULL, every
				     * public function dispatches to the shards */
};

/* ---- sharded collections (index_shard.c) ---- */
struct nd__index_union {
	uint32_t n;              /* shards */
	nd_index **sh;           /* [n] */
	unsigned char *own;      /* [n]: opened for writing by this handle */
	unsigned char *local;    /* [n]: queried here (else through remote_query) */
	int (*remote_query)(void *ctx, const float *vec, const nd_query_params *p, nd_hit *hits, size_t *n,
			    nd_error *err);
	int (*remote_join)(void *ctx, nd_index *ix, const struct nd_selfjoin_params *p,
			   int (*fn)(void *, uint32_t, uint32_t, float), void *fn_ctx, struct nd_selfjoin_stats *stats,
			   nd_error *err);
	int (*remote_add)(void *ctx, uint32_t shard, const struct nd_index_item *items, size_t n, nd_error *err);
	void *ctx;
	char *dir;
	const struct nd__index_un_ops *ops;
};
/* What a sharded collection does in place of one index, reached through
 * the handle (ix->un->ops) so that the single-index files do not depend on
 * index_shard.c, which builds on them. locate: the shard and local id of
 * global id gid (ND_ENOTFOUND when it names no shard's id). */
struct nd__index_un_ops {
	void (*close)(nd_index *ix);
	int (*meta)(nd_index *ix, nd_meta *meta, nd_error *err);
	int (*add)(nd_index *ix, const nd_index_item *items, size_t n, uint32_t *ids, nd_error *err);
	int (*remove)(nd_index *ix, const uint32_t *ids, size_t n, size_t *removed, nd_error *err);
	int (*query)(nd_index *ix, const float *vec, const nd_query_params *p, nd_hit *hits, size_t *n,
		     nd_query_stats *stats, nd_error *err);
	int (*prefault)(nd_index *ix, nd_error *err);
	int (*locate)(nd_index *ix, uint32_t gid, nd_index **sh, uint32_t *local, nd_error *err);
	int (*get_record)(nd_index *ix, uint32_t id, nd_record *rec, char *pathbuf, size_t pathcap, nd_error *err);
	int (*lookup_path)(nd_index *ix, const char *path, uint32_t *id, nd_error *err);
	int (*lookup_file)(nd_index *ix, uint64_t dev, uint64_t ino, uint32_t *id, nd_error *err);
	int (*lookup_hash)(nd_index *ix, const uint8_t hash[16], uint32_t *ids, size_t cap, size_t *n,
			   nd_error *err);
	int (*foreach)(nd_index *ix, nd_record_fn fn, void *ctx, nd_error *err);
	int (*stats)(nd_index *ix, nd_index_stats *st, nd_error *err);
	int (*verify)(nd_index *ix, uint64_t *pages, nd_error *err);
	int (*check)(nd_index *ix, nd_check_report *rep, nd_error *err);
	int (*backup)(nd_index *ix, const char *dest_dir, nd_error *err);
};
/* The public nd_index_open (index_shard.c) opens a sharded collection, or
 * one index with this (index_open.c). */
int nd__index_open_one(nd_index **out, const char *dir, const nd_index_options *o, nd_error *err);

/* The calibrated similarity (the formula of nd_calib_score in neardup/calib.h). */
static inline float nd__index_score(const nd_index *ix, float cos, float sa, float sb)
{
	return cos - ix->calib.beta * 0.5f * (sa + sb) + ix->calib.offset;
}

/* The perceptual-hash term of the fused score (nd_calib_phash_bonus in
 * neardup/calib.h): 0 unless both images carry a hash. */
static inline float nd__index_phash_bonus(const nd_index *ix, int has_a, uint64_t a, int has_b, uint64_t b)
{
	if (!has_a || !has_b)
		return 0.0f;
	return nd_phash_bonus(ix->calib.phash_weight, ix->calib.phash_bits, nd_phash_distance(a, b));
}

/* The similarity of a calibrated pair: the pair score (neardup/score.h)
 * when the handle has one, else the calibrated cosine plus the hash term.
 * The one formula queries and the self-join share. */
static inline float nd__index_pair_score(const nd_index *ix, float cos, float sa, int has_a, uint64_t a, float sb,
				     int has_b, uint64_t b)
{
	if (ix->calib.score) {
		nd_score_side x = { 1, sa, has_a, a }, y = { 1, sb, has_b, b };
		return nd_score_pair(ix->calib.score, cos, &x, &y);
	}
	return nd__index_score(ix, cos, sa, sb) + nd__index_phash_bonus(ix, has_a, a, has_b, b);
}

/* Runs fn(items + i * size) for i < n (n <= ND_JOIN_MAX_THREADS), on n
 * threads of which the calling thread is the first; a share whose thread
 * cannot start runs on the calling thread. Used by batched adds and the
 * self-join (index_add.c). */
void nd__index_run_parallel(void *items, size_t size, unsigned n, void *(*fn)(void *));

/* ---- the perceptual-hash postings (index_phash.c) ---- */
/* Quarter q (0..3) of a hash: its bucket in "table" q of the phash database. */
static inline uint32_t nd__index_phash_bucket(uint64_t phash, uint32_t q)
{
	return (uint32_t)(phash >> (16 * q)) & 0xFFFFu;
}
/* A posting as one sortable key: quarter, bucket, id. */
static inline uint64_t nd__index_phash_key(uint32_t q, uint32_t bucket, uint32_t id)
{
	return (uint64_t)q << 48 | (uint64_t)bucket << 32 | id;
}
/* 1 when the phash database lists every hashed image of m's snapshot. */
int nd__index_phash_valid(nd_index *ix, MDB_txn *txn, const nd_meta *m);
/* Marks the phash database valid for m (every write transaction's last step). */
int nd__index_phash_mark(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err);
/* Appends the postings keys[0..n) (nd__index_phash_key; sorted here); idbuf has room for n. */
int nd__index_phash_append(nd_index *ix, MDB_cursor *hcur, uint64_t *keys, size_t n, uint32_t *idbuf,
			   nd_error *err);
/* Removes id's four postings. */
int nd__index_phash_remove(nd_index *ix, MDB_cursor *hcur, uint32_t id, uint64_t phash, nd_error *err);
/* Empties the phash database, lists every stored hash again and marks it
 * valid for m. */
int nd__index_phash_rebuild(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err);

/* ---- file identities (index_inode.c) ---- */
/* 1 when the inodes database lists every identity of m's snapshot. */
int nd__index_inode_valid(nd_index *ix, MDB_txn *txn, const nd_meta *m);
/* Marks it valid for m (every write transaction's last step). */
int nd__index_inode_mark(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err);
/* The id listed for (dev, ino); ND_ENOTFOUND (no message) when none. */
int nd__index_inode_get(nd_index *ix, MDB_txn *txn, uint64_t dev, uint64_t ino, uint32_t *id, nd_error *err);
/* Lists r's identity (known) for id; flags as mdb_put's (MDB_NOOVERWRITE:
 * ND_EBUSY, no message, when it is listed already). */
int nd__index_inode_put(nd_index *ix, MDB_txn *txn, const nd_record *r, uint32_t id, unsigned flags,
			nd_error *err);
/* Unlists r's identity when it names id (nothing when unknown). */
int nd__index_inode_del(nd_index *ix, MDB_txn *txn, const nd_record *r, uint32_t id, nd_error *err);
/* Empties the inodes database, lists every record's identity again and
 * marks it valid for m. */
int nd__index_inode_rebuild(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err);
/* Part of nd_index_check (when valid): entries and records agree. */
typedef void (*nd__index_problem_fn)(nd_check_report *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int nd__index_inode_check(nd_index *ix, MDB_txn *txn, nd_check_report *rep, nd__index_problem_fn problem,
			  nd_error *err);

/* ---- inside a transaction (index_txn.c) ---- */

/* The metadata record as of txn. */
int nd__index_read_meta(nd_index *ix, MDB_txn *txn, nd_meta *m, nd_error *err);
int nd__index_write_meta(nd_index *ix, MDB_txn *txn, const nd_meta *m, nd_error *err);
/* ND_ENOTFOUND when absent; v points into the map (valid during txn). */
int nd__index_get_vector(nd_index *ix, MDB_txn *txn, uint32_t id, nd_vec_view *v, nd_error *err);
int nd__index_get_record(nd_index *ix, MDB_txn *txn, uint32_t id, nd_record *r, nd_error *err);
/* Decodes one entry of the vectors database (key = id, value = vector of
 * dim components); vv points into the map (valid during the transaction). */
int nd__index_vector_entry(const MDB_val *k, const MDB_val *v, uint32_t dim, uint32_t *id, nd_vec_view *vv,
			   nd_error *err);

#endif
