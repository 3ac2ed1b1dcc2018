/* neardup serve — the engine behind the routes: the model, the index and a
 * pool of embedders. Every call into the pipeline (decode, embed, query,
 * records, groups) goes through here, so that the HTTP layer holds none of
 * it. Queries take the same steps as `neardup query` (embedder_add_views,
 * embedder_run, nd_index_query per view, views_merge, the records) and
 * print the same JSON object, so scores are equal. */
#ifndef NEARDUP_CLI_SERVE_ENGINE_H
#define NEARDUP_CLI_SERVE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "neardup/index.h"
#include "neardup/origin.h"

struct srv_engine;

/* A new image, embedded and ready for the writer. */
struct srv_item {
	float *vec;          /* [dim], owned */
	char *path;          /* owned; rec.path points here */
	nd_record rec;
	int has_phash;
	uint64_t phash;
	int has_origin;
	nd_origin origin;
};
void srv_item_free(struct srv_item *it);

struct srv_query {
	uint32_t k;
	float min_sim;
	unsigned views;      /* view mask (embed.h) */
	uint32_t probes;     /* LSH probes (query's --probes) */
	const char *label;   /* the "query" field of the result */
};

/* Seconds spent per stage of one request. */
struct srv_timing {
	double decode, embed, index;
};

/* Loads the model and opens the index for writing (created when missing),
 * with threads embedders. Prints the error and returns EXIT_FATAL on
 * failure. */
int srv_engine_open(struct srv_engine **out, const struct cli_common *com, int threads);
void srv_engine_close(struct srv_engine *e);
nd_index *srv_engine_index(struct srv_engine *e);
uint32_t srv_engine_dim(const struct srv_engine *e);

/* 1 when rc from an engine call means the image could not be decoded (422),
 * 0 when it is the server's failure (500). */
int srv_engine_is_decode_error(int rc);

/* Queries with image bytes. *json receives the result object (malloc'd),
 * *best the best result's similarity (*nbest: results shown). */
int srv_engine_query(struct srv_engine *e, const void *data, size_t len, const struct srv_query *q,
		     char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
		     nd_error *err);
/* The same with a vector [dim] (normalised here); views do not apply. */
int srv_engine_query_vec(struct srv_engine *e, const float *vec, const struct srv_query *q,
			 char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
			 nd_error *err);

/* Content hash (XXH3-128, the index's canonical form) of bytes. */
void srv_engine_hash(const void *data, size_t len, uint8_t out[16]);
/* The id of an indexed image with this content hash: 1 and *id, or 0. */
int srv_engine_lookup_hash(struct srv_engine *e, const uint8_t hash[16], uint32_t *id);

/* Decodes and embeds bytes as ingest does into it (vector, hash, size,
 * dimensions, perceptual hash, originality record); it->rec.path is path
 * (copied). The caller sets mtime, dev and ino. */
int srv_engine_embed(struct srv_engine *e, const void *data, size_t len, const char *path,
		     struct srv_item *it, struct srv_timing *t, nd_error *err);

/* The record of id as a JSON object: ND_ENOTFOUND when there is none. */
int srv_engine_record_json(struct srv_engine *e, uint32_t id, char **json, size_t *jlen,
			   nd_error *err);

/* Page page (from 1) of per_page dedup groups at min_sim, as a JSON object.
 * The groups are computed once per (min_sim, generation): generation
 * changes with every commit. */
int srv_engine_duplicates(struct srv_engine *e, float min_sim, uint64_t generation, size_t page,
			  size_t per_page, char **json, size_t *jlen, nd_error *err);

/* Model, index counts and settings as a JSON object; extra (may be NULL):
 * more members ("\"server\": {...}") put at its end. */
int srv_engine_info_json(struct srv_engine *e, const char *extra, char **json, size_t *jlen,
			 nd_error *err);
/* Images in the index (last commit). */
uint64_t srv_engine_images(struct srv_engine *e);

#endif
