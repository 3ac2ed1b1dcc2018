/* neardup — the near-duplicate index: LSH posting lists, stored vectors and
 * image records in one LMDB environment (a directory).
 *
 * Concurrency: one writer process at a time (nd_index_open for writing takes
 * DIR/neardup.lock with flock and writes its pid into it; a second writer
 * fails at once with ND_EBUSY naming the holder). Any number of readers, in
 * this or other processes, work while the writer writes: each read call sees
 * the last committed batch. One nd_index handle may be used from several
 * threads for reads; writes (add, remove) must come from one thread at a time.
 *
 * Durability: each nd_index_add / nd_index_remove call is one LMDB write
 * transaction: all of it is committed or none of it (also when the process
 * is killed). Commits are synced to disk unless opts.nosync is set.
 *
 * Ids: uint32, assigned by the index from 1 upwards, never reused. */
#ifndef NEARDUP_INDEX_H
#define NEARDUP_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"
#include "neardup/origin.h"
#include "neardup/store.h"
#include "neardup/score.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults chosen with bench/bench_index.c (see bench/results/index.md). */
#define ND_INDEX_DEFAULT_TABLES 12
#define ND_INDEX_DEFAULT_BITS 18
#define ND_INDEX_DEFAULT_PROBES 1280
#define ND_INDEX_DEFAULT_MIN_HITS 2
#define ND_INDEX_DEFAULT_RERANK_ALL 1024   /* re-rank every candidate when there are this few */
#define ND_INDEX_DEFAULT_JOIN_RADIUS 2     /* self-join: buckets within 2 bits of each other */
#define ND_INDEX_PHASH_BUCKET_CAP 4096     /* ids a query reads from one perceptual-hash bucket */
#define ND_JOIN_MAX_THREADS 64
#define ND_INDEX_DEFAULT_SEED 0x6E65617264757021ull
#define ND_INDEX_DEFAULT_VEC_FORMAT ND_VEC_F16
#define ND_INDEX_DEFAULT_MAP_SIZE ((size_t)256 << 20)

typedef struct nd_index nd_index;
struct nd_index_item;
struct nd_query_params;
struct nd_hit;
struct nd_selfjoin_params;
struct nd_selfjoin_stats;

/* Calibrated similarity (neardup/calib.h computes the statistic).
 * With stat set, the index stores with every vector its background
 * statistic b(x) = stat(x) (vector value version 2; computed by the index
 * from the stored, quantised vector, so that an upgrade gives the same
 * value), and the similarity of two images is
 *   sim = cos - beta * 0.5f * (b(a) + b(b)) + offset
 * for queries (unless nd_query_params.raw) and the self-join (unless
 * nd_selfjoin_params.raw). stat must be thread-safe: out[i] = b(vecs[i]),
 * vecs [n][dim]. ctx is the caller's and must outlive the index handle.
 *
 * Opening an index whose vectors lack the statistic (built before calibrated similarity,
 * or written by a writer without stat) with stat set: for writing, every
 * vector is rewritten as version 2 in one write transaction (nothing is
 * lost if it is interrupted; the next open does it again); read-only, the
 * open fails with ND_EVERSION ("... has no background statistics ...").
 * Scales are never mixed: a calibrated handle refuses to score a vector
 * without a statistic (ND_ECORRUPT). */
typedef struct nd_index_calib {
	int (*stat)(void *ctx, const float *vecs, size_t n, float *out, nd_error *err);
	void *ctx;
	uint32_t dim;             /* the dimension stat expects: must be the index's (ND_EMISMATCH) */
	float beta, offset;
	/* score fusion: images that both carry a perceptual hash
	 * (nd_index_item.phash, nd_query_params.phash) add
	 * phash_weight * max(0, phash_bits - Hamming distance); 0: none */
	float phash_weight, phash_bits;
	/* the pair score (neardup/score.h) that replaces the two terms above
	 * as the similarity of queries and the self-join; NULL: none. Must
	 * outlive the handle (nd_score_model_find's are static). */
	const nd_score_model *score;
} nd_index_calib;

typedef struct nd_index_options {
	int create;               /* create the index when DIR holds none (needs dim) */
	int readonly;             /* open for reading only (no writer lock) */
	/* used when creating; 0 = default */
	uint32_t dim;
	uint32_t tables;          /* L */
	uint32_t bits;            /* K */
	uint32_t vec_format;      /* enum nd_vec_format */
	uint64_t seed;
	/* stored when creating; when model_name is not NULL on opening an
	 * existing index, name and checksum must match (ND_EMISMATCH) */
	const char *model_name;
	uint64_t model_checksum;
	size_t map_size;          /* initial LMDB map size; grows by itself */
	int nosync;               /* MDB_NOSYNC: faster commits, last commits lost on power failure */
	nd_index_calib calib;     /* calibrated similarity (see above); stat NULL: plain cosine */
	uint64_t *upgraded;       /* if not NULL: receives how many vectors the open upgraded */
	/* Sharded collections (neardup/shard.h). shards: with create, a directory
	 * holding no index becomes a collection of this many shards (0: one
	 * index). Opened for writing, shards for which shard_own returns 0 (NULL:
	 * own all) are opened read-only, and what an add routes to them goes to
	 * remote_add (NULL: ND_EUNSUPPORTED): how ranks of a distributed ingest
	 * hand records to the rank that owns the shard. */
	uint32_t shards;
	int (*shard_own)(void *ctx, uint32_t shard);
	/* Opened for reading with remote_query set, a query searches here only
	 * the shards shard_own returns 1 for, and merges the hits (ids global)
	 * remote_query returns for the others (at most p->k). */
	int (*remote_query)(void *ctx, const float *vec, const struct nd_query_params *p, struct nd_hit *hits,
			    size_t *n, nd_error *err);
	/* Opened for reading with remote_join set, nd_index_selfjoin calls it
	 * instead of joining here (a join spread over processes, neardup/join.h),
	 * with ix the handle and the other arguments as given. */
	int (*remote_join)(void *ctx, nd_index *ix, const struct nd_selfjoin_params *p,
			   int (*fn)(void *, uint32_t, uint32_t, float), void *fn_ctx, struct nd_selfjoin_stats *stats,
			   nd_error *err);
	int (*remote_add)(void *ctx, uint32_t shard, const struct nd_index_item *items, size_t n, nd_error *err);
	void *shard_ctx;
} nd_index_options;

void nd_index_options_init(nd_index_options *o);

/* Opens (or creates) the index in directory dir. On failure *out is NULL and
 * err says why (ND_EBUSY: another live writer; ND_ENOTFOUND: no index and
 * create not set; ND_EMISMATCH: other model; ND_EVERSION / ND_ECORRUPT). */
int nd_index_open(nd_index **out, const char *dir, const nd_index_options *opts, nd_error *err);
void nd_index_close(nd_index *ix);

/* The shards of a handle opened on a sharded collection, 0 for one index. */
uint32_t nd_index_shards(const nd_index *ix);
/* Shard i of such a handle (owned by it, valid until it is closed), or NULL. */
nd_index *nd_index_shard(nd_index *ix, uint32_t i);
/* The directory the handle was opened on. */
const char *nd_index_dir(const nd_index *ix);

/* 1 when the handle scores with the calibrated similarity (calib.stat was
 * given and every stored vector carries its statistic). */
int nd_index_calibrated(const nd_index *ix);
/* 1 when the calibrated similarity is the pair score (nd_index_calib.score):
 * a probability in [0, 1]. */
int nd_index_scored(const nd_index *ix);

/* ND_EMISMATCH unless the index was built with this model name and checksum. */
int nd_index_check_model(nd_index *ix, const char *model_name, uint64_t checksum, nd_error *err);

/* A copy of the metadata (parameters and counters) as of the last commit. */
int nd_index_meta(nd_index *ix, nd_meta *meta, nd_error *err);

/* ---- writing ---- */
typedef struct nd_index_item {
	const float *vec;         /* [dim], L2-normalised (|norm^2 - 1| <= 0.01, else ND_EINVAL) */
	nd_record rec;            /* path, size, mtime, hash, width, height; id ignored */
	int has_phash;            /* phash is the image's perceptual hash (neardup/phash.h); stored
				   * with the vector on a calibrated index (vector version 3) */
	uint64_t phash;
	const nd_origin *origin;  /* the image's originality record (neardup/origin.h), or NULL;
				   * stored with a hash on a calibrated index (vector version 4) */
} nd_index_item;

/* Adds n images in one transaction; ids[i] (if ids is not NULL) receives the
 * id given to items[i]. An item whose path is already indexed replaces that
 * image (the old id is removed), and so does an item whose file identity
 * (rec.dev, rec.ino; both 0 = unknown) is: one file is one image, whatever
 * the path it is reached by (the caller picks the path kept). ND_EINVAL
 * (nothing written) if a vector has the wrong dimension or non-finite
 * values, or a record is invalid. */
int nd_index_add(nd_index *ix, const nd_index_item *items, size_t n, uint32_t *ids, nd_error *err);

/* Removes the given ids (record, path, hash entry, vector, postings) in one
 * transaction. Ids not in the index are skipped; *removed (may be NULL)
 * receives how many were removed. */
int nd_index_remove(nd_index *ix, const uint32_t *ids, size_t n, size_t *removed, nd_error *err);

/* Removes, in one transaction, the images stored under these paths, a file
 * under the name it was indexed by (device and inode), and for a path that
 * is not itself indexed every image under it (a directory, as spelled when
 * added); with missing, also every image whose file no longer exists
 * (lstat: no such file). The files are not touched. *removed (may be NULL):
 * how many were removed; *unmatched (may be NULL, else room for n): 1 for
 * each path that matched nothing. */
int nd_index_remove_paths(nd_index *ix, const char *const *paths, size_t n, int missing,
			  size_t *removed, unsigned char *unmatched, nd_error *err);

/* ---- reading ---- */
typedef struct nd_query_params {
	uint32_t k;               /* results wanted (default 10) */
	float min_sim;            /* only results with similarity >= min_sim (default -1: all) */
	uint32_t probes;          /* extra multi-probe buckets over all tables (default ND_INDEX_DEFAULT_PROBES) */
	uint32_t min_hits;        /* re-rank ids found in a home bucket (the query's own signature in
				   * some table), or in at least min_hits probed buckets (default
				   * ND_INDEX_DEFAULT_MIN_HITS; 1: every id found) */
	uint32_t max_candidates;  /* stop collecting after this many distinct candidates (0: no limit) */
	uint32_t rerank_all;      /* when there are at most this many candidates, re-rank them all
				   * whatever min_hits says (small indexes; default
				   * ND_INDEX_DEFAULT_RERANK_ALL; 0: never) */
	int raw;                  /* 1: rank and filter by the plain cosine even on a calibrated
				   * handle (default 0: the calibrated similarity) */
	int has_phash;            /* phash is the query's perceptual hash: stored images with one
				   * get the fusion term (nd_index_calib; default 0), and those
				   * whose hash shares a 16-bit quarter with it (all within 3
				   * bits) are candidates whatever their LSH buckets, up to
				   * ND_INDEX_PHASH_BUCKET_CAP per quarter */
	uint64_t phash;
} nd_query_params;
void nd_query_params_init(nd_query_params *p);

typedef struct nd_hit {
	uint32_t id;
	float sim;                /* the similarity results are ranked by: calibrated on a
				   * calibrated handle (unless p->raw), else the cosine */
	float raw;                /* cosine of the query and the stored vector */
} nd_hit;

typedef struct nd_query_stats {
	uint32_t buckets;         /* buckets probed */
	uint64_t postings;        /* posting entries read */
	uint32_t candidates;      /* distinct ids found in the probed buckets */
	uint32_t reranked;        /* of those, ids re-ranked (found >= min_hits times) */
	int truncated;            /* max_candidates was reached */
	uint64_t phash_postings;  /* of postings, those read from the query's hash buckets */
} nd_query_stats;

/* Finds up to p->k indexed images most similar to vec[dim], best first.
 * hits has room for p->k entries; *n receives the count. stats may be NULL. */
int nd_index_query(nd_index *ix, const float *vec, const nd_query_params *p, nd_hit *hits,
		   size_t *n, nd_query_stats *stats, nd_error *err);

/* Reads every vector and posting block once, so that the first queries of a
 * long run (dedup) do not each pay page faults on the map. Optional. */
int nd_index_prefault(nd_index *ix, nd_error *err);

/* Record of an id; rec->path is copied into pathbuf (pathcap bytes;
 * ND_PATH_MAX + 1 is always enough). ND_ENOTFOUND if no such id. */
int nd_index_get_record(nd_index *ix, uint32_t id, nd_record *rec, char *pathbuf, size_t pathcap,
			nd_error *err);
/* The stored (dequantised) vector of an id into out[dim]. */
int nd_index_get_vector(nd_index *ix, uint32_t id, float *out, nd_error *err);
/* The stored perceptual hash of id: *has_phash 0 when its vector has none
 * (stored before the perceptual hash, or on an uncalibrated index). */
int nd_index_get_phash(nd_index *ix, uint32_t id, int *has_phash, uint64_t *phash, nd_error *err);
/* The similarity of stored images a and b as a query of a's stored vector
 * would score b (the calibrated score unless raw or the handle is not
 * calibrated), and their cosine (at most 1). ND_ENOTFOUND, ND_ECORRUPT. */
int nd_index_score_pair(nd_index *ix, uint32_t a, uint32_t b, int raw, float *sim, float *cosine,
			nd_error *err);
/* What the pair score reads of id beside its vector (neardup/score.h). */
int nd_index_get_side(nd_index *ix, uint32_t id, nd_score_side *side, nd_error *err);
/* The stored originality record of id: *has_origin = 0 (and *origin from
 * nd_origin_init) for an image stored without one. */
int nd_index_get_origin(nd_index *ix, uint32_t id, int *has_origin, nd_origin *origin, nd_error *err);
/* Id of a path (ND_ENOTFOUND if none). */
int nd_index_lookup_path(nd_index *ix, const char *path, uint32_t *id, nd_error *err);
/* Id of the image of the file with this identity (st_dev, st_ino): ND_ENOTFOUND
 * if none, or when the identities are not current (only on a read-only
 * handle of an index last written by a version from before them). */
int nd_index_lookup_file(nd_index *ix, uint64_t dev, uint64_t ino, uint32_t *id, nd_error *err);
/* Ids with this content hash: the first cap go to ids, *n receives the total. */
int nd_index_lookup_hash(nd_index *ix, const uint8_t hash[16], uint32_t *ids, size_t cap,
			 size_t *n, nd_error *err);

/* Calls fn for every record in id order, in one consistent snapshot. rec and
 * rec->path are valid only during the call. A non-zero return from fn stops
 * the walk and is returned. fn must not write to this index. */
typedef int (*nd_record_fn)(void *ctx, const nd_record *rec);
int nd_index_foreach(nd_index *ix, nd_record_fn fn, void *ctx, nd_error *err);

typedef struct nd_index_stats {
	nd_meta meta;             /* parameters and counters */
	double bytes_per_posting; /* (block keys + values) / posting entries */
	double disk_bytes_per_posting; /* LMDB pages of the postings database / entries */
	uint64_t postings_db_bytes, vectors_db_bytes, records_db_bytes, paths_db_bytes, hashes_db_bytes;
	uint64_t phash_db_bytes;  /* the perceptual-hash postings (0 on an index from before them) */
	uint64_t map_size;        /* current LMDB map size */
	uint64_t file_bytes;      /* size of data.mdb */
} nd_index_stats;
int nd_index_stats_get(nd_index *ix, nd_index_stats *st, nd_error *err);

/* ---- self-join ---- */
typedef struct nd_selfjoin_params {
	float min_sim;            /* emit pairs with similarity >= min_sim (in [-1, 1]) */
	uint32_t bits;            /* bucket by the top `bits` bits of each table's K (0 = all K) */
	uint32_t tables;          /* use the first `tables` tables as candidate sources (0 = all) */
	uint32_t max_group;       /* buckets with more ids are skipped and counted (0 = no cap) */
	uint32_t radius;          /* candidates: pairs whose buckets differ in <= radius bits in some
				   * table (0..4; default ND_INDEX_DEFAULT_JOIN_RADIUS): higher, more
				   * recall and more time */
	uint32_t threads;         /* worker threads (0 = online CPUs, at most ND_JOIN_MAX_THREADS) */
	int raw;                  /* 1: min_sim and the similarity passed to fn are the plain cosine
				   * even on a calibrated handle (default 0: calibrated) */
} nd_selfjoin_params;
void nd_selfjoin_params_init(nd_selfjoin_params *p);

typedef struct nd_selfjoin_stats {
	uint64_t groups;          /* buckets with two or more ids, over all tables */
	uint64_t pairs_compared;  /* exact cosines computed */
	uint64_t pairs_emitted;   /* pairs handed to fn */
	uint64_t groups_capped;   /* buckets over max_group, skipped */
	uint64_t pairs_skipped;   /* pairs within or touching those buckets (not examined) */
	uint64_t largest_group;   /* largest bucket */
	uint64_t pairs_candidates; /* candidate pairs examined by signature */
	uint64_t phash_compared;  /* of pairs_compared, those only the perceptual-hash
				   * groups brought (step 5 in index_join.c) */
} nd_selfjoin_stats;

/* Calls fn(ctx, a, b, sim) with a < b for every pair of indexed images with
 * similarity >= min_sim (calibrated on a calibrated handle unless p->raw:
 * then the signature filter below uses the lowest cosine any pair could
 * need, min_sim - offset + beta * (lowest statistic), and the exact test
 * the calibrated score) whose buckets (in some table) differ in at most
 * p->radius bits, each pair once, in one snapshot. Candidates whose full
 * L*K-bit signatures differ far more than a pair at min_sim would are
 * dropped before the exact comparison (a pair at exactly min_sim is dropped
 * with probability ~3e-5). With the perceptual-hash term, pairs whose
 * hashes share a 16-bit quarter and add a non-zero term are compared too,
 * whatever their signatures. Runs p->threads threads; fn is called from them,
 * one call at a time (serialised by a lock), in no particular order. A
 * non-zero return from fn stops the join and is returned; no call follows
 * it. stats may be NULL. Memory: 36 + 16 * ceil(L*K / 64) bytes per image
 * (100 MB at 1M images, L=12, K=18) and 4 * 2^bits; the vectors are read
 * in place from the map. Time at 1M (bench/results/index.md): radius 2,
 * 2 threads, about 100 s; radius 1 about 25 s (lower recall). */
typedef int (*nd_pair_fn)(void *ctx, uint32_t a, uint32_t b, float sim);
int nd_index_selfjoin(nd_index *ix, const nd_selfjoin_params *p, nd_pair_fn fn, void *ctx,
		      nd_selfjoin_stats *stats, nd_error *err);

/* ---- check ---- */
#define ND_CHECK_MAX_PROBLEMS 32
#define ND_CHECK_PROBLEM_LEN 200
typedef struct nd_check_report {
	uint64_t records, paths, hash_entries, vectors, blocks, postings;
	int phash_valid;          /* the perceptual-hash postings are current (else the next
				   * writer rebuilds them, and they are not checked) */
	uint64_t phash_postings;  /* entries in them */
	uint64_t pages;           /* LMDB pages walked and found sound */
	uint64_t file_bytes;      /* data.mdb's size */
	uint64_t n_problems;      /* all problems found; the first ND_CHECK_MAX_PROBLEMS are described */
	char problems[ND_CHECK_MAX_PROBLEMS][ND_CHECK_PROBLEM_LEN];
	int inode_valid;          /* the file identities (device, inode -> id) are current (else the
				   * next writer rebuilds them, and they are not checked) */
	uint64_t inode_entries;   /* entries in them */
} nd_check_report;

/* Walks the LMDB file itself (read with pread, not through LMDB's map):
 * every page of every tree is inside the file, reached once, with sound
 * headers, node bounds and key order, and the databases' counters agree.
 * LMDB keeps no checksums and trusts its pages, so a damaged page would
 * crash it; every open checks only the file size and the pages the open
 * reads, and an open for writing walks everything (nd_index_open fails
 * with ND_ECORRUPT). Returns ND_ECORRUPT with "index 'DIR' is damaged:
 * ..." when the file is damaged; *pages (may be NULL): pages walked. */
int nd_index_verify(nd_index *ix, uint64_t *pages, nd_error *err);

/* Writes a copy of the index into dest_dir (created when missing; ND_EINVAL
 * when it already holds a data.mdb) with LMDB's compacting copy
 * (mdb_env_copy2, MDB_CP_COMPACT): one read transaction, so the copy is a
 * consistent snapshot while other processes go on reading and writing.
 * The index is verified first (nd_index_verify: ND_ECORRUPT when damaged).
 * Check the copy with nd_index_check on an index opened on dest_dir. */
int nd_index_backup(nd_index *ix, const char *dest_dir, nd_error *err);

/* Verifies the whole index: first nd_index_verify's walk (damage returns
 * ND_ECORRUPT, and nothing else is checked), then metadata, every record, path and hash entry,
 * vector and posting block decodes; the maps agree with the records; every
 * posting id has a record and a vector; lists are increasing; every image is
 * in exactly the buckets its stored vector hashes to; the counters agree;
 * when current, every image stored with a perceptual hash is in exactly the
 * four hash buckets of it, and no other; when current, every record that
 * knows its file identity is listed under it, alone.
 * Returns 0 when the check ran (rep->n_problems says whether it passed). */
int nd_index_check(nd_index *ix, nd_check_report *rep, nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
