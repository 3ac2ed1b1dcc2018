/* neardup — calibrated similarity: an image's background
 * statistic and the normalised score.
 *
 * A raw cosine does not mean the same for every image: a plain sky or a
 * texture is close to many unrelated images, a busy photo to almost none.
 * The model file carries a background set (a few thousand embeddings of
 * images that are in no benchmark set) and a calibration (k, beta, offset;
 * see nd_model_calibration in neardup/cnn.h). For an embedding x,
 *   b(x) = mean of the k highest cosines of x to the background vectors
 *          (or the k-th highest, as the model says),
 * and the calibrated similarity of two images is
 *   sim(a, b) = cos(a, b) - beta * (b(a) + b(b)) / 2 + offset.
 * The offset is beta times the median statistic of the background set
 * itself, so an image of typical background similarity keeps its cosine.
 *
 *   nd_calib *c; nd_calib_create(model, &c, &err);      // once
 *   nd_calib_stat(c, vecs, n, stats, &err);             // any thread
 *   float s = nd_calib_score(&p, cos, stat_a, stat_b);
 *   nd_calib_free(c);
 *
 * Cost: per image, count dot products of D (0.77 M multiply-adds at
 * 3000 x 256; AVX2/F16C on the float16 set, images in blocks of 8 per pass
 * over it) and a selection of the k largest (bench/bench_calib.c measures
 * it). Every dot product is computed the same way
 * whatever the batch, so b(x) is the same float at ingest, after an index
 * upgrade and at query time. Memory: a copy of the background set, count x
 * D halves (1.5 MB at 3000 x 256). */
#ifndef NEARDUP_CALIB_H
#define NEARDUP_CALIB_H

#include <stddef.h>

#include "neardup/cnn.h"
#include "neardup/common.h"
#include "neardup/phash.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nd_calib nd_calib;

/* Prepares the calibration of model m (which may be freed afterwards).
 * ND_ENOTFOUND when the model file has no calibration section (then the
 * similarity is the plain cosine); ND_ENOMEM; ND_ECORRUPT for a non-finite
 * background component. */
int nd_calib_create(const nd_model *m, nd_calib **out, nd_error *err);
void nd_calib_free(nd_calib *c);

/* The calibration's parameters (k, statistic, beta, offset). */
void nd_calib_params(const nd_calib *c, nd_model_calib *p);
/* Background vectors and dimension. */
size_t nd_calib_count(const nd_calib *c);
int nd_calib_dim(const nd_calib *c);

/* b(x) for n embeddings: vecs [n][D] float (D = the model's dimension),
 * out [n]. Thread-safe (c is read-only); allocates 8 x count floats of
 * scratch per call. ND_EINVAL for non-finite input. */
int nd_calib_stat(const nd_calib *c, const float *vecs, size_t n, float *out, nd_error *err);

/* The same with c as a void pointer: the shape of nd_index_calib.stat
 * (neardup/index.h), so an index can compute the statistic itself. */
int nd_calib_stat_fn(void *c, const float *vecs, size_t n, float *out, nd_error *err);

/* The calibrated similarity of two images with cosine cos and statistics
 * sa, sb. */
static inline float nd_calib_score(const nd_model_calib *p, float cos, float sa, float sb)
{
	return cos - p->beta * 0.5f * (sa + sb) + p->offset;
}

/* Score fusion with the 64-bit perceptual hash: two images whose
 * hashes differ in d bits add phash_weight * max(0, phash_bits - d) to
 * their calibrated similarity. The CNN is weaker than the hash exactly
 * where the hash is near-perfect (greyscale, blur, recompression, plain
 * rescaling: the copy keeps the image's low frequencies), and a small
 * Hamming distance is then strong evidence; a large one adds nothing, so
 * crops and edits the hash cannot see are scored by the CNN alone.
 * Measured in models/README.md ("Score fusion"). */
static inline float nd_calib_phash_bonus(const nd_model_calib *p, int hamming)
{
	return nd_phash_bonus(p->phash_weight, p->phash_bits, hamming);
}

#ifdef __cplusplus
}
#endif
#endif
