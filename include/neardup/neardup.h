/* neardup — the high-level API: a collection is an index directory plus the
 * model it was built with. Open one, add files or in-memory images to it,
 * ask what in it looks like an image, find its near-duplicate groups.
 * The command line, the HTTP service and the Python binding are thin layers
 * over these calls; the lower layers (neardup/index.h, cnn.h, image.h, ...)
 * stay available for programs that need them.
 *
 *   nd_collection *c;
 *   nd_error err;
 *   if (nd_collection_open(&c, "photos.db", NULL, &err))
 *           fail(err.msg);
 *   nd_collection_add_paths(c, (const char *[]){ "photos/" }, 1, NULL, NULL, &err);
 *   nd_dedup_result *r;
 *   nd_collection_dedup(c, NULL, &r, &err);   ...   nd_dedup_result_free(r);
 *   nd_collection_close(c);
 *
 * Errors: every function that can fail returns int, 0 on success or a
 * negative ND_E* code (neardup/common.h; nd_strerror names it), and fills
 * the caller's nd_error (may be NULL) with a message such as "truncated JPEG
 * data" or "no index in 'photos.db'". Messages about one input do not name
 * it (the caller that knows the input does); messages about the collection
 * name its directory. Out-parameters are set only on success unless stated.
 * Nothing here prints, exits, or installs signal handlers.
 *
 * Threads: one nd_collection may be used from several threads at once for
 * queries, embeds, dedup, stats and check. Writes (add, remove) must come
 * from one thread at a time, and only one process may write an index (the
 * second gets ND_EBUSY naming the holder); readers in other processes see
 * each committed batch. Callbacks are called from the library's threads,
 * one call at a time.
 *
 * Lifetimes: the collection owns what it opens and frees it in
 * nd_collection_close. Results (nd_matches, nd_dedup_result) are owned by
 * the caller, freed with their _free function, and stay valid after the
 * collection is closed. Paths given to the library are copied as needed. */
#ifndef NEARDUP_NEARDUP_H
#define NEARDUP_NEARDUP_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/cnn.h"
#include "neardup/common.h"
#include "neardup/image.h"
#include "neardup/index.h"
#include "neardup/keep.h"
#include "neardup/origin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded (ND_VERSION_STRING is the one
 * compiled against). */
const char *nd_version(void);

/* The default dedup threshold, on the calibrated similarity (the plain
 * cosine with raw scores or a model without calibration). Chosen on the
 * development set: see models/README.md, "Calibration". */
#define ND_DEFAULT_MIN_SIM 0.85f
/* The same on the pair score (neardup/score.h), a probability: chosen on
 * the training half of the dev set (models/fit_score.py's split). */
#define ND_DEFAULT_SCORE_MIN_SIM 0.9f
/* The default multi-probe depth of queries (the index's own default,
 * ND_INDEX_DEFAULT_PROBES, is tuned for near-exact copies). */
#define ND_DEFAULT_PROBES 5120
/* Files larger than this are not read. */
#define ND_MAX_FILE_BYTES ((size_t)256 << 20)

typedef struct nd_collection nd_collection;

/* ---- opening ---- */

typedef struct nd_collection_options {
	/* The model: model (borrowed: it must outlive the collection) if not
	 * NULL, else model_path if not NULL, else nd_model_find's lookup. */
	const nd_model *model;
	const char *model_path;
	int create;      /* create the index when the directory holds none (default 1) */
	int readonly;    /* no writer lock; add and remove fail with ND_EINVAL (default 0) */
	int nosync;      /* faster commits; the last ones may be lost on power failure (default 0) */
	/* if not NULL: receives how many stored vectors the open upgraded
	 * (an index from before calibrated similarity gets its background
	 * statistic once, in one write transaction, also when opened read-only) */
	uint64_t *upgraded;
	/* with create: a directory holding no index becomes a sharded collection
	 * of this many shards (neardup/shard.h); 0: one index (default) */
	uint32_t shards;
	/* if not NULL: called with the index options just before the index is
	 * opened, to set their sharded-collection fields (shard_own, remote_add,
	 * remote_query, remote_join, shard_ctx in neardup/index.h): how the ranks
	 * of a distributed run share one collection */
	void (*index_options)(void *ctx, nd_index_options *o);
	void *index_options_ctx;
} nd_collection_options;

void nd_collection_options_init(nd_collection_options *o);

/* Finds the default model file into buf (cap bytes): $NEARDUP_MODEL, then
 * models/neardup.ndm beside the source tree or the installed tree of the
 * running program or of this library, then the installed data directory.
 * ND_ENOTFOUND (the message lists the places tried) when there is none. */
int nd_model_find(char *buf, size_t cap, nd_error *err);

/* Opens the collection in index_dir with options o (NULL: the defaults).
 * An existing index must have been built with the same model (ND_EMISMATCH).
 * On failure *out is NULL; err says why: ND_ENOTFOUND (no index and create
 * is 0, or no model file), ND_EBUSY (another process writes the index),
 * ND_EMISMATCH, ND_ECORRUPT (the index is damaged), ND_EVERSION, and the
 * model loader's codes. */
int nd_collection_open(nd_collection **out, const char *index_dir, const nd_collection_options *o,
		       nd_error *err);
/* Closes the collection (NULL is fine). Nothing may use it afterwards. */
void nd_collection_close(nd_collection *c);

/* The parts, borrowed until nd_collection_close, for the lower-level calls
 * of neardup/index.h and neardup/cnn.h. */
nd_index *nd_collection_index(nd_collection *c);
const nd_model *nd_collection_model(const nd_collection *c);
/* The embedding dimension. */
size_t nd_collection_dim(const nd_collection *c);
/* 1 when similarities are calibrated (the model has a calibration). */
int nd_collection_calibrated(const nd_collection *c);
/* The default dedup threshold of this collection: ND_DEFAULT_SCORE_MIN_SIM
 * when its similarity is the pair score (and not raw), else
 * ND_DEFAULT_MIN_SIM. */
float nd_collection_default_min_sim(const nd_collection *c, int raw);

/* ---- adding ---- */

/* What happened to one input that is not in the collection after add. */
typedef enum nd_add_event {
	ND_ADD_READ_FAILED,   /* could not be read (or walked) */
	ND_ADD_DECODE_FAILED, /* not a supported image, or a damaged one */
	ND_ADD_EMBED_FAILED,  /* the CNN failed on it */
	ND_ADD_ADD_FAILED,    /* could not be queued or stored (path too long, out of memory) */
	ND_ADD_IGNORED,       /* inside a directory and not an image: skipped, not an error;
			       * detail names the kind ("text", "video") */
	ND_ADD_EVENT_COUNT
} nd_add_event;

/* "cannot read", "cannot decode", "cannot embed", "cannot add", "ignored". */
const char *nd_add_event_text(nd_add_event ev);

typedef struct nd_add_options {
	int threads;      /* decode and embed threads (default 0: the online CPUs, at most 256) */
	/* Called for every input with an event (may be NULL): the path (or
	 * buffer name) and a detail such as "truncated JPEG data". */
	void (*on_event)(void *ctx, const char *path, nd_add_event ev, const char *detail);
	/* Called now and then with the inputs done so far and the inputs found
	 * so far; total_final is 1 once the walk is over and total is final. */
	void (*on_progress)(void *ctx, uint64_t done, uint64_t total, int total_final);
	void *ctx;
	/* Cancellation: when *cancel becomes non-zero (from any thread or a
	 * signal handler), the walk stops, queued inputs are dropped, images
	 * being embedded are finished and committed, and the call returns 0
	 * with counts.cancelled set. NULL: never. */
	const volatile int *cancel;
	/* if not NULL: the walk passes over the files for which it returns 0
	 * (dev and ino of the file): how the ranks of a distributed ingest
	 * share the files out */
	int (*take)(void *take_ctx, const char *path, uint64_t dev, uint64_t ino);
	void *take_ctx;
} nd_add_options;

void nd_add_options_init(nd_add_options *o);

typedef struct nd_add_counts {
	uint64_t walked;      /* regular files found (buffers given) */
	uint64_t unchanged;   /* same path, size and mtime (and inode) as indexed: skipped */
	uint64_t same_file;   /* one file (device, inode) indexed or queued under another name,
			       * unchanged: skipped (the first name is kept) */
	uint64_t embedded;    /* run through the CNN, and committed */
	uint64_t exact;       /* byte-identical to an indexed image: its vector copied, committed */
	uint64_t not_image;   /* ignored: not an image inside a directory */
	uint64_t not_image_kind[ND_KIND_COUNT]; /* the same by nd_file_kind (neardup/image.h) */
	uint64_t ignored;     /* ignored by the walk: symlinks, FIFOs, devices, directory loops */
	uint64_t failed;      /* reported through on_event as failures */
	uint64_t committed;   /* records written */
	uint64_t uncommitted; /* read and embedded, but lost because the index could not be written */
	int cancelled;        /* *cancel stopped the run */
	double seconds;       /* wall time of the call */
} nd_add_counts;

/* Adds image files and directories (walked recursively and physically:
 * symbolic links inside them are not followed; entries in name order).
 * Files whose path, size and mtime are indexed are skipped; a file reached
 * under two names is one image, under its first-indexed name; a
 * byte-identical copy of an indexed image reuses its vector. Inside
 * directories, files that are not images by content or name are ignored;
 * paths named here must be images. Commits every few hundred images, so an
 * interrupted or cancelled run keeps what it did. Failures of single
 * inputs are counted and reported through on_event, and the call goes on;
 * it returns an error only when the run itself fails (the index cannot be
 * written, no threads, no memory): what was committed stays. counts (may
 * be NULL) are filled in both cases. */
int nd_collection_add_paths(nd_collection *c, const char *const *paths, size_t n,
			    const nd_add_options *o, nd_add_counts *counts, nd_error *err);

/* An image in memory. name is what the image is stored (and found, and
 * removed) under, like a file's path: unique within the collection, at
 * most ND_PATH_MAX bytes, for example a URL or "upload/1234". */
typedef struct nd_buffer {
	const void *data;
	size_t len;
	const char *name;
	int64_t mtime_ns; /* stored as the record's mtime (0: unknown) */
} nd_buffer;

/* Adds n images from memory, as nd_collection_add_paths does files (same
 * threads, events, progress, cancellation, exact-copy reuse). An image
 * already stored under its name is replaced. The buffers are only read,
 * and only during the call. */
int nd_collection_add_buffers(nd_collection *c, const nd_buffer *bufs, size_t n,
			      const nd_add_options *o, nd_add_counts *counts, nd_error *err);

/* ---- embedding ---- */

/* The embedding of one image (the identity view, as add stores it) into
 * vec[dim] (dim: nd_collection_dim; ND_EINVAL otherwise), L2-normalised. */
int nd_collection_embed_file(nd_collection *c, const char *path, float *vec, size_t dim,
			     nd_error *err);
int nd_collection_embed_buffer(nd_collection *c, const void *data, size_t len, float *vec,
			       size_t dim, nd_error *err);

/* ---- querying ---- */

/* Query-side views of an image: each indexed image scores its best view. */
typedef enum nd_view {
	ND_VIEW_IDENTITY, /* the image as add embeds it */
	ND_VIEW_ROT90,    /* rotated 90 degrees clockwise */
	ND_VIEW_ROT180,
	ND_VIEW_ROT270,
	ND_VIEW_CROP75,   /* centre crop keeping 75% of each side */
	ND_VIEW_CROP50,   /* centre crop keeping 50% of each side */
	ND_VIEW_COUNT
} nd_view;
#define ND_VIEW_BIT(v) (1u << (v))
#define ND_VIEWS_NONE ND_VIEW_BIT(ND_VIEW_IDENTITY)
#define ND_VIEWS_ROTATIONS (ND_VIEW_BIT(ND_VIEW_ROT90) | ND_VIEW_BIT(ND_VIEW_ROT180) | \
			    ND_VIEW_BIT(ND_VIEW_ROT270))
#define ND_VIEWS_CROPS (ND_VIEW_BIT(ND_VIEW_CROP75) | ND_VIEW_BIT(ND_VIEW_CROP50))
#define ND_VIEWS_ALL (ND_VIEWS_NONE | ND_VIEWS_ROTATIONS | ND_VIEWS_CROPS)

/* "identity", "rot90", "rot180", "rot270", "crop75", "crop50". */
const char *nd_view_name(nd_view v);
/* Parses a comma-separated list of "rotations", "crops", "all" (both) or
 * "none" (alone): the mask, always with the identity. ND_EINVAL naming the
 * offending word otherwise. */
int nd_views_parse(const char *list, unsigned *mask, nd_error *err);

typedef struct nd_query_options {
	uint32_t k;       /* results wanted (default 10) */
	float min_sim;    /* only results with similarity >= min_sim (default -INFINITY: all) */
	uint32_t probes;  /* LSH buckets probed beyond each table's own (default ND_DEFAULT_PROBES) */
	unsigned views;   /* ND_VIEW_BIT mask (default ND_VIEWS_ALL); vectors: identity only */
	int raw;          /* 1: rank, filter and report by the plain cosine (default 0: calibrated) */
} nd_query_options;

void nd_query_options_init(nd_query_options *o);

typedef struct nd_match {
	uint32_t id;
	float similarity;     /* calibrated unless raw (then the cosine) */
	float raw_similarity; /* the cosine of the two embeddings, at most 1 */
	nd_view view;         /* the view of the query that matched */
	char *path;           /* the stored path (or buffer name) */
} nd_match;

/* What a query step that failed was doing (for "cannot decode 'x': ..."). */
typedef enum nd_stage {
	ND_STAGE_NONE,
	ND_STAGE_READ,
	ND_STAGE_DECODE,
	ND_STAGE_EMBED,
	ND_STAGE_QUERY
} nd_stage;

typedef struct nd_matches {
	nd_match *items;  /* best first */
	size_t n;
	nd_stage failed;  /* on failure: the step that failed */
	/* seconds spent decoding (all views), in the CNN, and in the index
	 * (search and scoring); 0 for a step not run */
	double decode_seconds, embed_seconds, index_seconds;
} nd_matches;

/* The indexed images most similar to an image file, a buffer or a vector
 * (identity view only; dim must be the collection's), best first. out is
 * the caller's; on success out->items holds out->n matches (images
 * removed while the query ran are left out), to be freed with
 * nd_matches_free. On failure out->items is NULL and out->failed says
 * which step failed. */
int nd_collection_query_file(nd_collection *c, const char *path, const nd_query_options *o,
			     nd_matches *out, nd_error *err);
int nd_collection_query_buffer(nd_collection *c, const void *data, size_t len,
			       const nd_query_options *o, nd_matches *out, nd_error *err);
int nd_collection_query_vector(nd_collection *c, const float *vec, size_t dim,
			       const nd_query_options *o, nd_matches *out, nd_error *err);
/* Frees out->items (and their paths) and zeroes *out. */
void nd_matches_free(nd_matches *m);

/* ---- near-duplicate groups ---- */

typedef struct nd_dedup_options {
	float min_sim;             /* pair threshold (default NAN: nd_collection_default_min_sim) */
	int raw;                   /* 1: min_sim and similarities are plain cosines (default 0) */
	nd_keep_rule keep;         /* which copy to keep (default ND_KEEP_ORIGINAL; neardup/keep.h) */
	const char *const *protect; /* directories whose files are always kept, first */
	size_t nprotect;
	/* 1: do not look at the files: for images added from memory, whose
	 * names are not files, or an index of files on another machine. No image
	 * is then left out as missing, and second names of one file are not
	 * found. (default 0) */
	int no_file_check;
} nd_dedup_options;

void nd_dedup_options_init(nd_dedup_options *o);

/* An image that is in some group. */
typedef struct nd_dup_image {
	uint32_t id;
	char *path;
	uint32_t width, height;
	uint64_t size;
	int64_t mtime_ns;
	uint8_t hash[16];     /* content hash (XXH3-128, canonical) */
	uint64_t dev, ino;    /* the file's identity when indexed; 0 = unknown */
	int protect;          /* under a protected directory */
	int has_origin;       /* origin was measured at ingest (neardup/origin.h) */
	nd_origin origin;
} nd_dup_image;

typedef struct nd_dup_member {
	size_t image;          /* index into nd_dedup_result.images */
	float similarity;      /* to the kept image (calibrated unless raw); 1 for the kept one */
	float raw_similarity;  /* the cosine to the kept image */
	int exact;             /* byte-identical to the kept image */
} nd_dup_member;

/* members[0] is the kept image; the others follow by decreasing similarity
 * to it (below min_sim for a member that joined through another copy). */
typedef struct nd_dup_group {
	nd_dup_member *members;
	size_t n;
	char reason[48];       /* why members[0] is kept ("most central, older file") */
} nd_dup_group;

typedef struct nd_dedup_result {
	nd_dup_image *images;
	size_t n_images;
	nd_dup_group *groups;  /* sorted by the kept image's path */
	size_t n_groups;
	size_t missing;        /* indexed files gone since ingest: left out */
	uint64_t buckets_capped; /* LSH buckets over the self-join's cap: skipped */
	uint64_t pairs_skipped;  /* pairs in them, not compared */
	uint32_t max_group;      /* that cap */
} nd_dedup_result;

/* Groups the collection's near-duplicates: every pair the self-join finds
 * at or above min_sim and every pair of byte-identical files, as connected
 * components cut where one weak pair bridges two families (neardup/group.h),
 * each around a kept image chosen by the keep rule (protected files first). Files gone since they were added, and second names of one
 * file, are in no group. *out is freed with nd_dedup_result_free. */
int nd_collection_dedup(nd_collection *c, const nd_dedup_options *o, nd_dedup_result **out,
			nd_error *err);
void nd_dedup_result_free(nd_dedup_result *r);

/* ---- removing, stats, check ---- */

/* Removes the images stored under these paths (or buffer names), a file
 * under the name it was indexed by, and for a path that is not itself
 * indexed every image under it (a directory, as spelled when added); the
 * files are not touched. One transaction. *removed (may be NULL): how many
 * were removed; *unmatched (may be NULL, else room for n): 1 for each path
 * that matched nothing. */
int nd_collection_remove_paths(nd_collection *c, const char *const *paths, size_t n,
			       size_t *removed, unsigned char *unmatched, nd_error *err);
/* The same by id (nd_match.id, nd_dup_image.id). */
int nd_collection_remove_ids(nd_collection *c, const uint32_t *ids, size_t n, size_t *removed,
			     nd_error *err);
/* Removes every image whose file no longer exists (lstat: no such file). */
int nd_collection_remove_missing(nd_collection *c, size_t *removed, nd_error *err);

/* Counters and sizes (neardup/index.h). */
int nd_collection_stats(nd_collection *c, nd_index_stats *st, nd_error *err);
/* Verifies the whole index (nd_index_check): 0 when the check ran, with
 * rep->n_problems saying whether it passed; ND_ECORRUPT when the file is
 * damaged. */
int nd_collection_check(nd_collection *c, nd_check_report *rep, nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
