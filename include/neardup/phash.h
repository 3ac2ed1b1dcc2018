/* neardup — the 64-bit DCT perceptual hash (pHash) of an image, used beside
 * the CNN embedding (the score fusion in neardup/calib.h).
 *
 * The hash is the one the benchmarks compare against (models/train/eval.py,
 * phash_bits): luma area-averaged to 32x32, its 2-D DCT-II, the 8x8 lowest
 * frequencies; bit 8*u + v (u the vertical, v the horizontal frequency) is set
 * when coefficient (u, v) is above the median of the 63 AC coefficients.
 * Two hashes are compared by their Hamming distance (0..64).
 *
 * neardup takes the luma from the prepared model input (neardup/prep.h)
 * rather than from the decoded image: for an image at least as large as the
 * input, an area average of the input's area average is the area average of
 * the image, so the hash is the same up to rounding, and it costs nothing
 * beyond the model input that is computed anyway.
 *
 *   uint64_t hash;
 *   nd_phash_tensor(chw, w, h, prep.mean, prep.std, NULL, &hash, &err);  // [3][h][w]
 *   int d = nd_phash_distance(hash, other);
 */
#ifndef NEARDUP_PHASH_H
#define NEARDUP_PHASH_H

#include <stdint.h>

#include "neardup/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ND_PHASH_SIDE 32  /* the luma thumbnail is 32x32 */

/* Hash of a luma plane lum [h][w] (any scale; w, h >= 1): area-averaged to
 * 32x32 (exact box filter with fractional coverage; nearest when smaller),
 * then DCT and median. ND_EINVAL for a bad size or a non-finite sample. */
int nd_phash_plane(const float *lum, int w, int h, uint64_t *out, nd_error *err);

/* Hash of a prepared model input chw [3][h][w] (RGB, normalised as
 * (pixel/255 - mean[c]) / std[c], as nd_prep_image writes it): the luma is
 * 0.299 R + 0.587 G + 0.114 B (ITU-R 601, as PIL's "L") of the pixels
 * recovered from the tensor. lum: NULL (allocated inside) or the caller's
 * w*h floats of scratch. ND_EINVAL, ND_ENOMEM. */
int nd_phash_tensor(const float *chw, int w, int h, const float mean[3], const float std[3],
		    float *lum, uint64_t *out, nd_error *err);

/* Hamming distance of two hashes, 0..64. */
static inline int nd_phash_distance(uint64_t a, uint64_t b)
{
	return __builtin_popcountll(a ^ b);
}

/* The fusion term of two images whose hashes differ in hamming bits:
 * weight * max(0, bits - hamming) (0 when weight is 0). The calibrated
 * similarity adds it (nd_calib_phash_bonus in neardup/calib.h). */
static inline float nd_phash_bonus(float weight, float bits, int hamming)
{
	float d = bits - (float)hamming;
	return weight > 0.0f && d > 0.0f ? weight * d : 0.0f;
}

#ifdef __cplusplus
}
#endif
#endif
