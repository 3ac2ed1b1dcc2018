/* neardup serve — the engine behind the routes: the collection (the index
 * and its model, neardup/neardup.h) and a cache of dedup groups. Every call
 * into the library goes through here, so the HTTP layer holds no pipeline.
 * Queries are nd_collection_query_buffer / _vector, the calls `neardup
 * query` makes, and print the object it prints: the scores are equal. */
#ifndef NEARDUP_CLI_SERVE_ENGINE_H
#define NEARDUP_CLI_SERVE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "neardup/neardup.h"

struct srv_engine;

struct srv_query {
	uint32_t k;
	float min_sim;
	unsigned views;      /* ND_VIEW_BIT mask */
	uint32_t probes;     /* LSH probes (query's --probes) */
	const char *label;   /* the "query" field of the result */
};

/* Seconds spent per stage of one query. */
struct srv_timing {
	double decode, embed, index;
};

/* One new image for srv_engine_add. */
struct srv_add {
	const void *data;
	size_t len;
	const char *name;    /* stored under this name (a path, or a client's name) */
	int64_t mtime_ns;
	uint8_t hash[16];    /* srv_engine_hash of data */
	/* results */
	uint32_t id;
	int existed;         /* identical to an indexed image (or an earlier one of the batch): its id */
	int rc;              /* 0 or ND_E* with msg */
	int decode_failed;   /* rc is the decoder's refusal (422) */
	char msg[ND_ERRMSG_MAX];
};

/* Loads the model and opens the collection for writing (created when
 * missing). threads: decode and embed threads of each add. Prints the
 * error and returns EXIT_FATAL on failure. */
int srv_engine_open(struct srv_engine **out, const struct cli_common *com, int threads);
void srv_engine_close(struct srv_engine *e);
uint32_t srv_engine_dim(const struct srv_engine *e);

/* Queries with image bytes. *json receives the result object (malloc'd),
 * *best the best result's similarity (*nbest: results shown). On failure
 * *decode_failed tells the decoder's refusal (422) from the server's (500). */
int srv_engine_query(struct srv_engine *e, const void *data, size_t len, const struct srv_query *q,
		     char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
		     int *decode_failed, nd_error *err);
/* The same with a vector [dim] (normalised here); views do not apply. */
int srv_engine_query_vec(struct srv_engine *e, const float *vec, const struct srv_query *q,
			 char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
			 nd_error *err);

/* Content hash (XXH3-128, the index's canonical form) of bytes. */
void srv_engine_hash(const void *data, size_t len, uint8_t out[16]);
/* The id of an indexed image with this content hash: 1 and *id, or 0. */
int srv_engine_lookup_hash(struct srv_engine *e, const uint8_t hash[16], uint32_t *id);

/* Writer thread only. Adds n images in one call of the collection (its
 * threads decode and embed them; committed and synced on return); each
 * gets its id, or its rc. Returns 0, or ND_E* when the call itself failed
 * (every add then carries it). */
int srv_engine_add(struct srv_engine *e, struct srv_add *const *adds, size_t n, nd_error *err);
/* Writer thread only. Removes ids in one transaction; found[i] (room for
 * n): 1 when ids[i] was indexed. */
int srv_engine_remove(struct srv_engine *e, const uint32_t *ids, size_t n, unsigned char *found,
		      nd_error *err);

/* The record of id as a JSON object: ND_ENOTFOUND when there is none. */
int srv_engine_record_json(struct srv_engine *e, uint32_t id, char **json, size_t *jlen,
			   nd_error *err);

/* Page page (from 1) of per_page dedup groups at min_sim (NAN: the
 * collection's default), as a JSON object. The groups are computed once
 * per (min_sim, generation): generation changes with every commit. */
int srv_engine_duplicates(struct srv_engine *e, float min_sim, uint64_t generation, size_t page,
			  size_t per_page, char **json, size_t *jlen, nd_error *err);

/* Model, index counts and settings as a JSON object; extra (may be NULL):
 * more members ("\"server\": {...}") put at its end. */
int srv_engine_info_json(struct srv_engine *e, const char *extra, char **json, size_t *jlen,
			 nd_error *err);
/* Images in the index (last commit). */
uint64_t srv_engine_images(struct srv_engine *e);

#endif
