/* neardup — private parts of the image module shared by src/image*.c. */
#ifndef NEARDUP_IMAGE_IMPL_H
#define NEARDUP_IMAGE_IMPL_H

#include <stdio.h>

#include "neardup/image.h"

/* Where the encoded bytes come from: a memory buffer or a stdio stream
 * positioned at the start of the file. */
typedef struct nd_src {
	const uint8_t *data; /* memory source, or NULL */
	size_t len;
	size_t pos;          /* memory source: next byte to read */
	FILE *fp;            /* stream source, or NULL */
} nd_src;

/* ---- limits, row sink, whole input, compositing (image_sink.c) ---- */

/* Checks the stored dimensions against opts before anything image-sized is
 * allocated. fmt names the format in messages ("JPEG", "PNG"). */
int nd__image_check_limits(uint64_t w, uint64_t h, const nd_image_opts *opts,
			   const char *fmt, nd_error *err);

/* Bytes of the RGB output for w x h (checked dimensions) reduced by
 * factor, rounded up as the sink does. */
size_t nd__image_out_bytes(uint64_t w, uint64_t h, int factor);

/* ND_ELIMIT with "<what> needs N MiB to decode, over the M MiB memory
 * limit" when need exceeds opts->max_memory. */
int nd__image_check_memory(uint64_t need, const nd_image_opts *opts, const char *what,
			   nd_error *err);

/* The reduction 1, 2, 4 or 8 to decode w x h (stored orientation) at, given
 * the caller's minimum output size in the displayed orientation. */
int nd__image_pick_scale(uint64_t w, uint64_t h, int orientation,
			 const nd_image_opts *opts);

/* Row sink: takes decoded RGB rows top to bottom in stored orientation,
 * optionally box-averages factor x factor blocks (exact average, partial
 * blocks at the right and bottom edges averaged over the pixels they have),
 * and writes them into the output image in the displayed orientation.
 * Memory: the output image plus, when factor > 1, one accumulator row. */
typedef struct nd_sink {
	int sw, sh;          /* size of the rows fed in */
	int factor;          /* 1, 2, 4, 8 */
	int rw, rh;          /* reduced size, stored orientation */
	int orientation;     /* EXIF 1..8 */
	nd_image *img;       /* output (displayed orientation) */
	uint32_t *acc;       /* rw*3 sums, factor > 1 only */
	uint8_t *row;        /* rw*3 bytes: one reduced row, factor > 1 only */
	int next_y;          /* next input row expected */
} nd_sink;

/* Allocates the output image (out->rgb) and the sink's buffers. */
int nd__image_sink_init(nd_sink *s, int sw, int sh, int factor, int orientation,
			nd_image *out, nd_error *err);
/* Where input row y can be written directly (no reduction, orientation 1),
 * or NULL when rows must go through nd__image_sink_put. */
uint8_t *nd__image_sink_direct(nd_sink *s, int y);
/* Feeds input row y (sw RGB pixels); rows must come in order. */
void nd__image_sink_put(nd_sink *s, const uint8_t *rgb);
/* Feeds reduced row y (rw RGB pixels, stored orientation) made by the
 * caller, for decoders that reduce themselves; rows must come in order and
 * this must not be mixed with nd__image_sink_put. */
void nd__image_sink_put_reduced(nd_sink *s, const uint8_t *row);
/* Notes that row y was written through nd__image_sink_direct. */
void nd__image_sink_skip(nd_sink *s);
/* Frees the sink's buffers (not the output image). */
void nd__image_sink_release(nd_sink *s);

/* ---- EXIF (image_exif.c) ---- */

/* EXIF orientation (1..8; 1 when absent or invalid) from an APP1/eXIf
 * payload that starts with "Exif\0\0". Uses libexif. */
int nd__image_exif_orientation(const uint8_t *data, size_t len);

/* ---- the codec table ----
 * To add a format: write src/image_<fmt>.c defining one nd__image_codec (sniff
 * and decode), add its ND_FMT_ value to image.h and its row to the table
 * in image.c, its extensions here, a fuzz target tests/fuzz/fuzz_<fmt>.c,
 * and tests in tests/test_image.c. */

/* Result of a codec's sniff on the first bytes (at most ND_IMAGE_SNIFF_BYTES,
 * fewer only when the file is that short). */
enum {
	ND__SNIFF_NO = 0,
	ND__SNIFF_YES = 1,
	ND__SNIFF_SHORT = 2 /* the bytes there could start this format: a
			      * file that ends here is a truncated one */
};

typedef struct nd__image_codec {
	nd_image_format format;
	const char *name;  /* "jpeg": nd_image_format_name */
	const char *label; /* "JPEG": in messages */
	const char *exts;  /* file name extensions, space-separated, lowercase */
	int (*sniff)(const uint8_t *p, size_t len);
	/* Decodes src into out (via the sink), filling info (preset: format,
	 * orientation 1, scale 1). Checks limits and max_memory before any
	 * image-sized allocation. On failure leaves out->rgb NULL or for the
	 * caller to free. */
	int (*decode)(nd_src *src, const nd_image_opts *opts, nd_image *out, nd_image_info *info,
		      nd_error *err);
} nd__image_codec;

extern const nd__image_codec nd__image_codec_jpeg, nd__image_codec_png, nd__image_codec_webp, nd__image_codec_gif,
	nd__image_codec_tiff, nd__image_codec_bmp, nd__image_codec_pnm, nd__image_codec_heif, nd__image_codec_avif;

/* ---- shared by the codecs (image_sink.c) ---- */

/* The whole encoded input in memory: src's buffer, or the stream read into
 * *owned (freed by the caller; NULL for a memory source). Files over
 * max_bytes are refused with ND_ELIMIT, named by label. */
int nd__image_src_whole(nd_src *src, size_t max_bytes, const char *label, const uint8_t **data,
			size_t *len, uint8_t **owned, nd_error *err);

/* Composites one RGBA row (straight alpha) onto bg into RGB. */
void nd__image_composite_rgba(const uint8_t *in, uint8_t *out, int w, const uint8_t bg[3]);
/* ---- PNG ---- */
/* The fast path for common 8-bit PNGs in memory (image_png_fast.c): 0 when
 * it decoded the file, 1 when the file must go through libpng (it then
 * leaves out and info as they were). */
int nd__image_decode_png_fast(nd_src *src, const nd_image_opts *opts, nd_image *out,
			      nd_image_info *info);

#endif
