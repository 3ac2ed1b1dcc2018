/* neardup — the pair score: one similarity in [0, 1] for two images, read
 * as the probability that they are copies of one source.
 *
 * Queries and the self-join of dedup both score a pair with this function
 * (through the index, neardup/index.h nd_index_calib.score), so the same
 * pair gets the same score in both. It is a logistic model over features
 * of the pair that the index holds for every image (no record read):
 *   the cosine of the two embeddings, hinges of it at 0.5, 0.7 and 0.9
 *   (the evidence grows faster near 1), the mean background statistic of
 *   the two (neardup/calib.h: a busy photo's cosine means more than a
 *   plain sky's), and, when both carry a perceptual hash, how close the
 *   hashes are as they are and over the 8 rotations and flips
 *   (nd_phash_distance_dihedral).
 * The weights are fitted offline for one embedding model on labelled pairs
 * of the dev set (models/fit_score.py) and compiled in, keyed by the model
 * file's checksum: a weight in the model file would change its checksum,
 * which every index stores and checks, and so force a rebuild of every
 * index for a change that does not touch a single vector.
 *
 *   const nd_score_model *m = nd_score_model_find(model_checksum);
 *   nd_score_side a = { 1, stat_a, 1, hash_a }, b = { 1, stat_b, 1, hash_b };
 *   float p = m ? nd_score_pair(m, cos, &a, &b) : ...;
 */
#ifndef NEARDUP_SCORE_H
#define NEARDUP_SCORE_H

#include <stdint.h>

#include "neardup/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The features, in the order of nd_score_model.w:
 *   0 bias (1)
 *   1 cos
 *   2 max(0, cos - 0.5)
 *   3 max(0, cos - 0.7)
 *   4 max(0, cos - 0.9)
 *   5 (stat_a + stat_b) / 2      (0 unless both carry a statistic)
 *   6 both carry a hash: max(0, 24 - d) / 24, d the Hamming distance
 *   7 both carry a hash: max(0, 24 - dd) / 24, dd the best over the 8 variants
 *   8 both carry a hash: max(0, 8 - dd) / 8    (a near-certain hash match)
 *   9 not both carry a hash (1 or 0) */
#define ND_SCORE_NFEAT 10
#define ND_SCORE_HASH_FAR 24
#define ND_SCORE_HASH_NEAR 8

typedef struct nd_score_model {
	uint64_t model_checksum;   /* the embedding model the weights belong to */
	const char *fitted;        /* how they were fitted (split, pairs), for inspect */
	float w[ND_SCORE_NFEAT];   /* logit = w . features */
} nd_score_model;

/* What the index stores of one image beside its vector. */
typedef struct nd_score_side {
	int has_stat;
	float stat;                /* background statistic b(x) */
	int has_phash;
	uint64_t phash;            /* 64-bit DCT perceptual hash */
} nd_score_side;

/* The feature vector of a pair (cos: the cosine of the two embeddings). */
void nd_score_features(float cos, const nd_score_side *a, const nd_score_side *b,
		       float f[ND_SCORE_NFEAT]);

/* The score of a pair in [0, 1]: 1 / (1 + exp(-w . features)). Symmetric in
 * a and b. A non-finite cosine scores 0. */
float nd_score_pair(const nd_score_model *m, float cos, const nd_score_side *a, const nd_score_side *b);

/* The compiled-in weights for the model with this checksum; NULL when none
 * were fitted for it (the caller then keeps its own similarity). The
 * returned pointer is static. */
const nd_score_model *nd_score_model_find(uint64_t model_checksum);

#ifdef __cplusplus
}
#endif
#endif
