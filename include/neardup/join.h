/* neardup — the self-join in parts, for a join spread over processes
 * (the MPI front end): each process exports the signature rows of its
 * shards' images, the rows are exchanged so that one process holds every
 * image's row for the parts (LSH tables, perceptual-hash quarters) it
 * owns, each process lists the candidate pairs of its parts, and every
 * candidate is scored from the stored vectors with nd_join_score. Each
 * pair is a candidate of exactly one part (the first in which it is one),
 * and the candidates and scores are those of nd_index_selfjoin on one
 * index holding the same images (neardup/index.h), by construction: the
 * same code decides both.
 *
 * A row is nd_join_row_words(ix) uint64 words:
 *   [0] id (bits 0..31) | has_phash << 32 | has_stat << 33
 *   [1] the background statistic (float bits, bits 0..31)
 *   [2] the perceptual hash
 *   [3..] the L*K signature bits, packed (table t at bits t*K..t*K+K-1) */
#ifndef NEARDUP_JOIN_H
#define NEARDUP_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/index.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ND_JOIN_ROW_HEAD 3

/* Words of a row; parts: the join's tables plus the four hash quarters. */
size_t nd_join_row_words(const nd_index *ix);
uint32_t nd_join_parts(const nd_index *ix, const nd_selfjoin_params *p);

/* The rows of every image of ix (one index or shard; ids its own), in one
 * snapshot, into *rows (malloc'd, [*n][nd_join_row_words]); *min_stat and
 * *max_stat: the lowest and highest background statistic among them (0
 * when none). */
int nd_join_export(nd_index *ix, uint64_t **rows, size_t *n, float *min_stat, float *max_stat, nd_error *err);

/* Calls fn(ctx, a, b, 0) with a < b for every candidate pair of the rows
 * whose first part is one of those with parts[i] != 0 (parts: [nd_join_parts]),
 * min_stat and max_stat the lowest and highest statistic over the whole
 * collection (they bound the signature filter). ix: any handle on
 * the collection (its settings and calibration). stats as nd_index_selfjoin's
 * (pairs_compared stays 0). */
int nd_join_candidates(nd_index *ix, const nd_selfjoin_params *p, const uint64_t *rows, size_t n,
		       float min_stat, float max_stat, const unsigned char *parts, nd_pair_fn fn, void *ctx,
		       nd_selfjoin_stats *stats, nd_error *err);

/* The stored value of id's vector, as stored: *len bytes into buf (cap;
 * nd_vector_encoded_size_max is enough). */
int nd_join_vector_bytes(nd_index *ix, uint32_t id, void *buf, size_t cap, size_t *len, nd_error *err);

/* The similarity of two images from their stored values, as the self-join
 * computes it (the calibrated score unless p->raw); ND_ECORRUPT when a value
 * is malformed. */
int nd_join_score(nd_index *ix, const nd_selfjoin_params *p, const void *a, size_t la, const void *b,
		  size_t lb, float *sim, nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
