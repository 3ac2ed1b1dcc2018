/* neardup — what tells an original image from a copy derived from it.
 *
 * An "originality" record is measured once per image at ingest, from the
 * decoded pixels (at whatever reduced scale the decoder used) and from the
 * file's bytes, and stored with the image (vector version 4, neardup/store.h).
 * The keep rule "original" (neardup/keep.h) compares two records of images
 * of one group: edits add things an original lacks (flat margins, frames,
 * canvas, rotation corners), take away colour, detail or resolution,
 * stretch the content, add noise, or recompress it. chroma and aniso are
 * measured and stored but not used by the rule (on the development set
 * they did not help); EXIF is read from JPEG files only.
 *
 *   nd_origin o;
 *   nd_origin_init(&o);
 *   nd_origin_from_bytes(data, len, &o);                 // JPEG tables, EXIF
 *   nd_origin_from_pixels(&img, info.scale_denom, &o, &err);
 *
 * All functions are pure and thread-safe; nothing is allocated. */
#ifndef NEARDUP_ORIGIN_H
#define NEARDUP_ORIGIN_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"
#include "neardup/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nd_origin {
	/* from the pixels */
	float chroma;     /* mean over pixels of the largest channel difference, 0..255
			   * (0: greyscale) */
	float colour;     /* fraction of 2x2 blocks whose mean colour has channels more
			   * than 16 apart, 0..1: low for greyscale pictures, also with
			   * a coloured caption, icon or noise on them */
	float margin;     /* fraction of the area in uniform bands along the four sides
			   * (frames, padding, caption bars), 0..1 */
	float flat;       /* fraction of the area, inside the margins, whose 3x3
			   * neighbourhood is uniform (canvas, rotation corners), 0..1 */
	float aniso;      /* log2(mean |dY/dx| / mean |dY/dy|) inside the margins:
			   * a stretched or squeezed copy is far from 0 */
	float detail;     /* mean |gradient| of the luma over its standard deviation,
			   * over the square root of the decoder's reduction (blurred
			   * copies have less) */
	float noise;      /* noise sigma of the luma (0..255) estimated in its smoothest
			   * tenth, at the decoded scale (added noise raises it) */
	float blockiness; /* luma steps on an 8x8 grid over steps elsewhere (1: none;
			   * JPEG blocks seen in pixels give more) */
	/* from the file's bytes */
	uint8_t quality;  /* JPEG: IJG quality 1..100 estimated from the luminance
			   * quantisation table; 0: not a JPEG (lossless) */
	uint8_t camera;   /* 1: EXIF names a camera (Make or Model) */
	int64_t taken;    /* EXIF DateTimeOriginal, seconds since 1970 read as UTC; 0: none */
} nd_origin;

/* All zero, blockiness 1: "nothing known". */
void nd_origin_init(nd_origin *o);

/* The pixel measures of img (8-bit RGB, as decoded) into o. scale_denom
 * (1, 2, 4, 8) is the decoder's reduction, for the measures tied to the
 * pixel size (detail, the 8x8 grid).
 * ND_EINVAL for an empty image or a bad scale. */
int nd_origin_from_pixels(const nd_image *img, int scale_denom, nd_origin *o, nd_error *err);

/* The byte measures of a whole image file (JPEG quantisation tables, EXIF
 * camera and capture date) into o. Never fails: what cannot be read is left
 * unknown. */
void nd_origin_from_bytes(const void *data, size_t len, nd_origin *o);

/* IJG quality 1..100 whose scaled standard luminance table is closest to
 * the 64 entries of table (in the file's zigzag order), or 0 for an
 * all-zero table. */
int nd_origin_jpeg_quality(const uint16_t table[64]);

/* The image's "originality" score for its displayed size w x h: log2 of
 * its content pixels (without margins), less its flat fraction (margins and
 * uniform areas), plus log2 of its detail per pixel, less added noise. Higher is more likely the original.
 * Finite for any record. */
float nd_origin_score(const nd_origin *o, uint32_t w, uint32_t h);

/* How lossy its compression: 0 lossless or JPEG quality >= 80, 1 JPEG
 * quality 50..79 or a lossless file showing JPEG blocks, 2 JPEG quality
 * below 50. */
int nd_origin_lossy(const nd_origin *o);

/* Greyscale: (almost) no colourful area. */
int nd_origin_is_grey(const nd_origin *o);

/* ---- the stored form (little-endian, ND_ORIGIN_SIZE bytes) ---- */
#define ND_ORIGIN_SIZE 48
void nd_origin_encode(const nd_origin *o, uint8_t out[ND_ORIGIN_SIZE]);
/* ND_ECORRUPT for non-finite or out-of-range fields. */
int nd_origin_decode(const uint8_t in[ND_ORIGIN_SIZE], nd_origin *o, nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
