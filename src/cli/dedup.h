/* neardup CLI — what dedup.c, dedup_html.c and dedup_act.c share. */
#ifndef NEARDUP_CLI_DEDUP_H
#define NEARDUP_CLI_DEDUP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "neardup/origin.h"

/* An image that is in some pair above the threshold. */
struct dd_node {
	uint32_t id;
	uint32_t width, height;
	uint64_t size;
	int64_t mtime_ns;
	uint8_t hash[16];
	char *path;
	int protect;      /* under a --protect directory */
	uint64_t dev, ino; /* as indexed; 0 = unknown */
	int has_origin;   /* origin was stored at ingest (neardup/origin.h) */
	nd_origin origin;
};

/* members[0] is the kept image (sims[0] = 1); the others follow by
 * decreasing similarity to it. */
struct dd_group {
	size_t *members;  /* indices into nodes */
	float *sims;      /* similarity to the kept image (calibrated unless --score raw) */
	float *raws;      /* plain cosine to the kept image */
	size_t n;
	char reason[48];  /* why members[0] is kept ("most central, older file") */
};

struct dd_result {
	struct dd_node *nodes;
	size_t n_nodes;
	struct dd_group *groups;
	size_t n_groups;
};

static inline int dd_exact(const struct dd_result *r, const struct dd_group *g, size_t i)
{
	return !__builtin_memcmp(r->nodes[g->members[0]].hash, r->nodes[g->members[i]].hash, 16);
}

enum dd_action { DD_REPORT, DD_HARDLINK, DD_MOVE, DD_DELETE, DD_TRASH };

/* Parses an --action value into *out; report is accepted only when
 * allow_report. Returns 0, or -1 after naming the valid values on stderr. */
int dd_parse_action(const char *s, int allow_report, enum dd_action *out);

/* What the review page states about the run that made it. */
struct dd_html_opts {
	float min_sim;
	int raw;                /* --score raw: similarities are plain cosines */
	const char *keep_rule;  /* --keep's name */
	enum dd_action action;  /* what dedup's settings would do to the members */
	const char *index_dir;
	struct nd_index *ix;    /* the index's identity goes into the decisions */
};

/* Writes the self-contained review page (dedup_html.c). Returns 0 or -1
 * (write error). */
int dd_write_html(FILE *f, const struct dd_result *r, const struct dd_html_opts *o);

struct dd_act_opts {
	enum dd_action action;
	const char *to_dir;        /* --to (move) */
	int yes;                   /* carry out; else a dry run */
	int hardlink_near;         /* --hardlink-near */
	char *const *roots;        /* the PATHs given; only files under them are touched */
	int nroots;
	char *const *protect;      /* --protect directories */
	int nprotect;
	const char *index_dir;     /* where the journal is */
};

/* What an action did (or would do). */
struct dd_totals {
	size_t files;     /* acted on */
	uint64_t bytes;   /* their sizes */
	size_t skipped;   /* members left alone (protected, outside, refused) */
};

/* Carries out (o->yes) or describes (dry run) the action on every group's
 * members other than the kept one (dedup_act.c has the rules). Prints one
 * line per file on out. The ids of the files changed go to done_ids (room
 * for r->n_nodes), their count to *n_done. Returns EXIT_ALL_GOOD or
 * EXIT_SKIPPED (some files could not be handled, each named on stderr), or
 * EXIT_FATAL (message printed). */
int dd_act(FILE *out, const struct dd_result *r, const struct dd_act_opts *o, uint32_t *done_ids,
	   size_t *n_done, struct dd_totals *t);

/* The totals line ("would delete 56 files, 16.2 MB", "deleted ..., skipped
 * 3") on stderr. */
void dd_print_totals(enum dd_action action, int yes, const struct dd_totals *t);
/* "16.2 MB", "512 bytes": decimal units, one decimal. */
void dd_human_size(char *buf, size_t cap, uint64_t bytes);

#endif
