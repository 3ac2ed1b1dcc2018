/* neardup CLI — the ingest pipeline, shared by `ingest` and `dedup PATH...`.
 *
 *   walk (calling thread) -> job queue -> N workers -> result queue -> writer
 *
 * The walk (walk.c: physical, sorted) skips files whose path, size and mtime
 * are already indexed, and files (device, inode) seen before in this run or
 * indexed unchanged under another name: one file is one image, under the
 * name it was first indexed by (a changed one is read here and stored
 * there). Each worker reads a file once into memory (at most
 * CLI_MAX_FILE_BYTES), hashes it (XXH3-128), and either copies the vector of
 * a byte-identical file (already indexed, or being embedded right now by
 * some worker: then it waits for that one's result, without blocking) or
 * decodes it from memory at the smallest size the model needs, prepares it
 * and runs the CNN in batches of 16 with its own workspace. One writer
 * thread adds the results to the index in transactions of up to 256 images
 * (at least every 2 seconds), so an interrupted run keeps what it did.
 *
 * Inside directories, files that are not images by their first bytes are
 * ignored (counted) unless their name has an image extension
 * (nd_image_format_from_name); files named on the command line must be
 * images. Every other failure
 * is named on stderr ("neardup: cannot decode 'PATH': truncated JPEG data")
 * and the run goes on.
 *
 * SIGINT / SIGTERM (see cli_install_signals) stop the walk; queued files are
 * dropped, batches being embedded are finished and committed. */
#ifndef NEARDUP_CLI_PIPELINE_H
#define NEARDUP_CLI_PIPELINE_H

#include "neardup/cnn.h"
#include "neardup/image.h"
#include "neardup/index.h"

struct ingest_opts {
	int jobs;   /* worker threads, >= 1 */
	int quiet;  /* no progress, no summary */
	int verbose; /* name every file ignored as not an image, with its kind */
};

struct ingest_counts {
	unsigned long walked;     /* regular files found */
	unsigned long unchanged;  /* same path, size and mtime (and inode) as indexed: skipped */
	unsigned long same_file;  /* a file (device, inode) indexed or queued under another name,
				   * unchanged: skipped (the first name is kept) */
	unsigned long embedded;   /* run through the CNN, and committed */
	unsigned long exact;      /* byte-identical to an indexed file: vector copied, and committed */
	unsigned long not_image;  /* ignored: not an image inside a directory */
	unsigned long not_image_kind[ND_KIND_COUNT]; /* the same by nd_file_kind */
	unsigned long ignored;    /* ignored by the walk: symlinks, FIFOs, devices, loops */
	unsigned long failed;     /* named on stderr */
	unsigned long committed;  /* records written */
	unsigned long uncommitted; /* read, embedded or copied, but lost with the index's write */
	int signal;               /* the signal that stopped the run, or 0 */
	double seconds;
};

/* Runs the pipeline over paths into ix (opened for writing with model m).
 * Returns EXIT_ALL_GOOD, EXIT_SKIPPED (some files failed) or EXIT_FATAL
 * (the index could not be written); c->signal tells of an interruption.
 * Prints the summary line on stderr unless quiet. */
/* When set, the walk passes over the files for which it returns 0: how
 * the ranks of a distributed ingest share the files out. */
struct stat;
extern int (*pipeline_take_hook)(const char *path, const struct stat *st);

int pipeline_ingest(nd_index *ix, const char *index_dir, const nd_model *m, char *const *paths,
		    int npaths, const struct ingest_opts *o, struct ingest_counts *c);

#endif
