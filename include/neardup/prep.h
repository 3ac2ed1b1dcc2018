/* neardup — preprocessing: an RGB image into the model's input tensor.
 *
 * The whole image is stretched to width x height (no crop, no letterbox: the
 * model is trained on stretched inputs). Per axis: when shrinking, an exact
 * area average (box filter: every output pixel is the mean of the source
 * area it covers, with fractional coverage at its edges); when enlarging,
 * bilinear interpolation with pixel centres at +0.5 and edges clamped.
 * Then out = (pixel/255 - mean[c]) / std[c].
 *
 * This one function serves both ingest and query, so both see identical
 * tensors for identical pixels. */
#ifndef NEARDUP_PREP_H
#define NEARDUP_PREP_H

#include <stddef.h>

#include "neardup/common.h"
#include "neardup/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the model expects (the cnn module provides these). */
typedef struct nd_prep_params {
	int width, height;  /* model input size, 1..8192 each */
	float mean[3];      /* per channel R, G, B, on the 0..1 scale */
	float std[3];       /* per channel, > 0 */
} nd_prep_params;

/* Bytes of scratch nd_prep_image needs for these params: two horizontally
 * resampled rows (2 * 3*width floats) plus one 20-byte weight entry per output
 * column and row, 24*width + 20*(width + height) + 64 bytes. It depends on the
 * model size only, never on the image (224x224: about 14 KiB). Returns 0 for
 * invalid params. */
size_t nd_prep_scratch_size(const nd_prep_params *p);

/* in:  img, 8-bit RGB interleaved [H][W][3] (any size >= 1x1)
 * out: caller's buffer of 3*p->height*p->width floats, layout [3][H][W] (CHW)
 * scratch: NULL (then the scratch is allocated and freed inside the call) or
 *          a caller buffer of nd_prep_scratch_size(p) bytes, reusable across
 *          calls (one per thread).
 * Returns 0, or ND_EINVAL (bad params or image) / ND_ENOMEM with err filled. */
int nd_prep_image(const nd_image *img, const nd_prep_params *p, float *out,
		  void *scratch, nd_error *err);

/* The content box: the part of img inside flat bands along its sides
 * (borders, padding, a canvas around a pasted picture, a title bar with a
 * few words on it). A band is a row (top, bottom; the whole width) or a
 * column (left, right; the rows between the top and bottom bands) of which
 * at least ND_PREP_BAND_SHARE of the pixels lie within ND_PREP_BAND_TOL per
 * channel of one colour. Writes the box [x0, x1) x [y0, y1) and returns 1
 * when it is worth embedding instead of the whole image: it leaves out at
 * least ND_PREP_BOX_MIN_CUT of the area and keeps at least 16 pixels and an
 * eighth of each side; otherwise returns 0 (the box is then the whole
 * image). Ingest and query both embed the box, so a framed copy and its
 * source, or a screenshot and the picture in it, see the same pixels. */
#define ND_PREP_BAND_TOL 10
#define ND_PREP_BAND_SHARE 0.9
#define ND_PREP_BOX_MIN_CUT 0.08
int nd_prep_content_box(const nd_image *img, int *x0, int *y0, int *x1, int *y1);

#ifdef __cplusplus
}
#endif
#endif
