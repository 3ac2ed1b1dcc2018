/* neardup CLI — what the command files share: common options, messages,
 * model and index lookup. Only src/cli/ includes this. */
#ifndef NEARDUP_CLI_H
#define NEARDUP_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "neardup/cnn.h"
#include "neardup/common.h"
#include "neardup/index.h"
#include "neardup/neardup.h"

#include "term.h"

/* Exit status (DESIGN.md): 0 all good, 1 some inputs were skipped (each
 * named on stderr), 2 usage or fatal error. An interrupted ingest exits with
 * 128 + the signal number (130 for Ctrl-C) after committing its work. */
enum { EXIT_ALL_GOOD = 0, EXIT_SKIPPED = 1, EXIT_FATAL = 2 };

/* The default --min-sim of dedup, on the calibrated similarity (the plain
 * cosine with --score raw or a model without calibration). Chosen on the
 * development set: see models/README.md, "Calibration". */
#define CLI_DEFAULT_MIN_SIM ND_DEFAULT_MIN_SIM
#define CLI_DEFAULT_MIN_SIM_STR "0.85"
/* The same on the pair score (neardup/score.h), a probability, with the
 * weak merge (neardup/group.h) 0.15 below it: the highest threshold at
 * which the quality bench's natural families stay whole (recall 1), see
 * bench/results/quality.md, "Dedup". */
#define CLI_DEFAULT_SCORE_MIN_SIM ND_DEFAULT_SCORE_MIN_SIM
#define CLI_DEFAULT_SCORE_MIN_SIM_STR "0.9"
/* query's multi-probe depth. The index's own default (1280) is tuned for
 * near-exact copies; on the dev set's real embeddings it returned the exact
 * nearest neighbour for 0.911 of queries, 5120 for 0.966 at 1.75 ms p50
 * (bench/results/quality.md, LSH recall), small beside one image's decode
 * and embed (~7 ms). */
#define CLI_DEFAULT_PROBES ND_DEFAULT_PROBES
#define CLI_DEFAULT_PROBES_STR "5120"
/* --min-sim accepts [-CLI_MAX_MIN_SIM, CLI_MAX_MIN_SIM]: a calibrated
 * similarity can leave [-1, 1] a little. */
#define CLI_MAX_MIN_SIM 1.5

/* Options every command takes. */
struct cli_common {
	const char *index_dir;  /* --index, $NEARDUP_INDEX, ./neardup.db */
	const char *model_path; /* --model or NULL (default lookup) */
	int quiet;              /* -q */
	uint32_t shards;        /* ingest --shards: create a collection of N shards */
};

/* getopt_long values of the common options (beside -q and -h). */
enum { OPT_INDEX = 1000, OPT_MODEL, OPT_FIRST_PRIVATE };
#define CLI_COMMON_LONGOPTS                                                \
	{ "index", required_argument, NULL, OPT_INDEX },                   \
	{ "model", required_argument, NULL, OPT_MODEL },                   \
	{ "quiet", no_argument, NULL, 'q' },                               \
	{ "help", no_argument, NULL, 'h' }
#define CLI_COMMON_SHORTOPTS "qh"

/* A command: argv[0] is the command's name. Returns the exit status. */
typedef int (*cli_cmd_fn)(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_dedup(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_undo(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Fills the defaults. */
void cli_common_init(struct cli_common *c);
/* Handles a common option; returns 1 when opt was one. */
int cli_common_opt(struct cli_common *c, int opt, const char *arg);
/* Text describing the common options, for --help. */
extern const char cli_common_help[];

/* Parses a number in [lo, hi]; prints "neardup: invalid value 'ARG' for
 * NAME" and returns -1 when it is not one. */
int cli_parse_int(const char *name, const char *arg, long lo, long hi, long *out);
int cli_parse_float(const char *name, const char *arg, double lo, double hi, double *out);

/* Loads the model (--model, $NEARDUP_MODEL, the source tree's models/,
 * the installed data directory). Prints the error and returns EXIT_FATAL on
 * failure, 0 on success. */
int cli_model_load(const struct cli_common *c, nd_model **m);

/* Opens the index. write: create it if needed (with model m, which must be
 * given) and take the writer lock; otherwise read-only. When m is given the
 * index must have been built with that model. Prints the error and returns
 * EXIT_FATAL on failure. */
int cli_index_open(const struct cli_common *c, int write, const nd_model *m, nd_index **out);
/* Set by neardup-mpi, which runs the commands on the ranks of a distributed
 * run: adjusts the options of every index cli_index_open and
 * cli_collection_open open (nd_collection_options.index_options), and
 * chooses the files cli_ingest takes (nd_add_options.take). */
extern void (*cli_index_options_hook)(nd_index_options *o, int write);
extern int (*cli_take_hook)(void *ctx, const char *path, uint64_t dev, uint64_t ino);

/* Opens the collection (cli_index_open's rules and messages) with model m,
 * which must outlive it. */
int cli_collection_open(const struct cli_common *c, int write, const nd_model *m,
			nd_collection **out);

/* Adds paths to the collection with -j jobs, progress and Ctrl-C, naming
 * every failure on stderr and printing the summary line unless quiet.
 * Returns EXIT_ALL_GOOD, EXIT_SKIPPED or EXIT_FATAL; *signal: the signal
 * that interrupted the run, or 0. */
int cli_ingest(nd_collection *coll, char *const *paths, int npaths, int jobs, int quiet, int verbose,
	       int *signal);

/* Prints "neardup: index 'DIR' is damaged: DETAIL" for an ND_ECORRUPT from
 * the index (whose message may or may not name the index already). */
void cli_index_damaged(const char *index_dir, const nd_error *err);

/* The calibrated similarity of model m (neardup/calib.h): 1 and *p (may be
 * NULL) filled when the model has one, 0 when it has none (similarity is
 * the plain cosine), -1 on error (printed). cli_index_open uses it: an
 * index opened with a calibrated model scores with it (an index built
 * before calibration gets its statistics added once, with a message). */
int cli_calibration(const nd_model *m, nd_model_calib *p);

/* Parses --score: "normalized" (default) -> 0, "raw" -> 1; -1 (printed)
 * otherwise. */
int cli_parse_score(const char *arg);

/* Ctrl-C / SIGTERM: the handler only sets cli_signal (the signal number). The
 * second signal kills the process (SA_RESETHAND). */
extern volatile sig_atomic_t cli_signal;
void cli_install_signals(void);

/* Online CPUs (1..256): the default of -j. */
int cli_default_jobs(void);

#endif
