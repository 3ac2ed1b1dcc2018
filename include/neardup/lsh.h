/* neardup — random-hyperplane LSH with multi-probe sequences.
 *
 * L tables of K bits each. Table t's bit j is set when the projection of the
 * (L2-normalised) vector on hyperplane t*K+j is > 0; the K bits, bit j at
 * position j, form the table's bucket number. The L*K hyperplanes are drawn
 * from a Gaussian with a seeded generator (splitmix64 + Box-Muller in double)
 * and scaled to unit length, so one (dim, L, K, seed) always gives the same
 * hyperplanes, and a projection's magnitude is the cosine distance of the
 * vector to the hyperplane.
 *
 * Projections are computed in a fixed order (8 interleaved fused
 * multiply-add lanes, then a fixed reduction), with AVX2+FMA where the build
 * has them and an exact scalar emulation otherwise, so a signature does not
 * depend on the build: the index can always re-derive which buckets hold an
 * image from its stored vector.
 *
 * Multi-probe (Lv et al., VLDB 2007, "query-directed probing"): besides the
 * L home buckets, probe the buckets whose signatures differ in the bits with
 * the smallest margins |projection|, in increasing order of the sum of
 * squared margins of the flipped bits, across all tables together. */
#ifndef NEARDUP_LSH_H
#define NEARDUP_LSH_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ND_LSH_MAX_TABLES 256
#define ND_LSH_MAX_BITS 30
#define ND_LSH_MAX_DIM 8192

typedef struct nd_lsh nd_lsh;

/* Creates the hyperplanes for dim-dimensional vectors, L tables of K bits.
 * ND_EINVAL for 0 or out-of-range parameters. Free with nd_lsh_free. */
int nd_lsh_create(nd_lsh **out, uint32_t dim, uint32_t tables, uint32_t bits, uint64_t seed,
		  nd_error *err);
void nd_lsh_free(nd_lsh *lsh);

uint32_t nd_lsh_dim(const nd_lsh *lsh);
uint32_t nd_lsh_tables(const nd_lsh *lsh);
uint32_t nd_lsh_bits(const nd_lsh *lsh);

/* in: vec[dim]; out: proj[tables*bits], proj[t*bits+j] = <plane t*bits+j, vec>. */
void nd_lsh_project(const nd_lsh *lsh, const float *vec, float *proj);

/* in: proj[tables*bits] from nd_lsh_project; out: sig[tables] bucket numbers. */
void nd_lsh_sign_proj(const nd_lsh *lsh, const float *proj, uint32_t *sig);

/* in: vecs[n][dim]; out: sigs[n][tables]. Uses a stack buffer, no allocation. */
void nd_lsh_sign(const nd_lsh *lsh, const float *vecs, size_t n, uint32_t *sigs);

/* Probe sequence for a query: out[0..tables) get the home buckets (table t's
 * at index t, tables[i] = i), then up to `probes` further (table, bucket)
 * pairs in multi-probe order. table_out[i] and bucket_out[i] must have room
 * for tables + probes entries; *n receives how many were written (fewer
 * than tables + probes only when every bucket of every table was listed).
 * Allocates a heap of tables + 2*probes entries (ND_ENOMEM). */
int nd_lsh_probe_seq(const nd_lsh *lsh, const float *proj, uint32_t probes, uint16_t *table_out,
		     uint32_t *bucket_out, size_t *n, nd_error *err);

/* Deterministic dot product used for projections (same fixed order on every
 * build). Exposed for tests. */
float nd_lsh_dot(const float *a, const float *b, size_t n);

#ifdef __cplusplus
}
#endif
#endif
