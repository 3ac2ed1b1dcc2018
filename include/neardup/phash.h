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

/* ---- the 8 rotations and flips (the dihedral group of the square) ----
 * A mirror of the image negates the DCT coefficients of odd frequency along
 * its axis (cos(pi (2(S-1-x)+1) v / 2S) = (-1)^v cos(pi (2x+1) v / 2S)), and
 * a transposition transposes the coefficient block, so a stored hash gives
 * the hashes of the 8 variants without another decode: transposing swaps bit
 * 8u+v with bit 8v+u, and a negated coefficient inverts its bit. The last
 * step is exact only when the median of the AC terms is 0; the median of the
 * mirrored block moves by as much as the median of |c| of the negated
 * coefficients, so bits whose coefficient lies between the two medians can
 * differ from a hash of the really mirrored image (tests/test_phash.c
 * measures how many). Transpositions are exact.
 *
 * Variant k (0..7) is the hash of the image transposed when k & 4, then
 * mirrored left-right when k & 1 and top-bottom when k & 2:
 *   0 identity, 1 mirror, 2 vertical mirror, 3 rotation by 180,
 *   4 transpose, 5 rotation by 90 clockwise, 6 rotation by 90 counter-clockwise,
 *   7 anti-transpose. */
#define ND_PHASH_MIRROR_X 1u
#define ND_PHASH_MIRROR_Y 2u
#define ND_PHASH_TRANSPOSE 4u
#define ND_PHASH_VARIANTS 8

/* Bits of odd horizontal frequency v (bit 8u+v): inverted by a left-right mirror. */
#define ND_PHASH_ODD_V 0xAAAAAAAAAAAAAAAAull
/* Bits of odd vertical frequency u: inverted by a top-bottom mirror. */
#define ND_PHASH_ODD_U 0xFF00FF00FF00FF00ull

/* The hash with bit 8u+v moved to 8v+u (a transposed image). */
static inline uint64_t nd_phash_transpose(uint64_t x)
{
	uint64_t t;
	t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAull;
	x ^= t ^ (t << 7);
	t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCull;
	x ^= t ^ (t << 14);
	t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ull;
	x ^= t ^ (t << 28);
	return x;
}

/* Variant k (see above) of hash h. */
static inline uint64_t nd_phash_variant(uint64_t h, unsigned k)
{
	if (k & ND_PHASH_TRANSPOSE)
		h = nd_phash_transpose(h);
	if (k & ND_PHASH_MIRROR_X)
		h ^= ND_PHASH_ODD_V;
	if (k & ND_PHASH_MIRROR_Y)
		h ^= ND_PHASH_ODD_U;
	return h;
}

/* All 8 variants: out[k] = nd_phash_variant(h, k). */
void nd_phash_dihedral(uint64_t h, uint64_t out[ND_PHASH_VARIANTS]);

/* The smallest Hamming distance between a and the 8 variants of b (0..64;
 * symmetric, as the variants form a group); *which (may be NULL) receives
 * the first variant k of b that reaches it. */
int nd_phash_distance_dihedral(uint64_t a, uint64_t b, unsigned *which);

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
