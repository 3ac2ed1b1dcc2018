/* neardup — image decoding into 8-bit RGB with the orientation applied:
 * JPEG (libjpeg-turbo), PNG (libpng), and the formats listed in
 * nd_image_format, one codec each.
 *
 * The format is detected from the first bytes, never from the file name.
 * Untrusted input is the normal case: declared dimensions are checked against
 * configurable limits before anything image-sized is allocated, the memory
 * one decode may hold is capped (max_memory: checked from the header, so a
 * progressive JPEG whose coefficients would not fit is refused before any
 * allocation), progressive JPEG scans are capped, libpng's chunk limits are
 * set, and every library
 * warning that could change pixels (e.g. "premature end of JPEG file") is an
 * error, because a grey-padded image would give a wrong embedding.
 *
 * All state is per call: the functions are thread-safe as long as each thread
 * passes its own nd_image and nd_error. Nothing is printed. */
#ifndef NEARDUP_IMAGE_H
#define NEARDUP_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nd_image_format {
	ND_FMT_UNKNOWN = 0,
	ND_FMT_JPEG = 1,
	ND_FMT_PNG = 2,
	ND_FMT_WEBP = 3,
	ND_FMT_GIF = 4,
	ND_FMT_TIFF = 5,
	ND_FMT_BMP = 6,
	ND_FMT_PNM = 7,
	ND_FMT_HEIF = 8,
	ND_FMT_AVIF = 9
} nd_image_format;

/* How many leading bytes nd_image_sniff looks at (WebP and HEIF need 12;
 * HEIF's compatible brands a few more). */
#define ND_IMAGE_SNIFF_BYTES 32

/* A decoded image: 8-bit RGB, interleaved (R,G,B per pixel), row-major,
 * rows packed (stride = 3 * width), orientation already applied.
 * rgb is owned by the image and released by nd_image_free. */
typedef struct nd_image {
	int width, height;
	uint8_t *rgb;
} nd_image;

/* Decoding options. Always start from nd_image_opts_init() and change the
 * fields you care about, so that new fields get their defaults. */
typedef struct nd_image_opts {
	/* Limits on the image as stored in the file (full size, before any
	 * scaled decoding), checked before any pixel memory is allocated. */
	uint32_t max_width;      /* default 65535 */
	uint32_t max_height;     /* default 65535 */
	uint64_t max_pixels;     /* default 100000000 (100 megapixels) */
	int max_scans;           /* progressive JPEG scans, default 100 */
	/* The most memory one decode may hold, in bytes: the output image
	 * plus the decoder's working buffers (e.g. the whole-image DCT
	 * coefficients of a progressive or multi-scan JPEG, the reduced
	 * accumulators of an interlaced PNG). Computed from the header and
	 * checked before any image-sized allocation; default 64 MiB, so that
	 * a few decodes in parallel stay within a small memory budget
	 * whatever the input. Full-size decodes of large images need more. */
	size_t max_memory;
	size_t png_chunk_malloc_max;  /* largest ancillary PNG chunk, default 8 MiB */
	uint32_t png_chunk_cache_max; /* most ancillary PNG chunks, default 1000 */
	/* The smallest size the caller needs (the model's input size), in the
	 * displayed orientation. The decoder picks the largest reduction
	 * 1/2, 1/4 or 1/8 that keeps both output dimensions >= these: a DCT
	 * scaled decode for JPEG, an exact box average for non-interlaced PNG.
	 * 0 in either field = decode at full size (the default). */
	int min_width, min_height;
	/* Colour that transparent PNG pixels are composited onto (alpha
	 * blending in the stored sRGB values). Default mid grey 128,128,128. */
	uint8_t background[3];
} nd_image_opts;

void nd_image_opts_init(nd_image_opts *opts);

/* What the decoder found. width/height are the stored (full, un-rotated)
 * dimensions from the file header; orientation is the EXIF value 1..8 that
 * was applied (1 when absent); scale_denom is the reduction used (1, 2, 4
 * or 8): out->width is about width/scale_denom (height for orientations
 * 5..8), rounded up. mem_bytes is the memory bound described below. */
typedef struct nd_image_info {
	nd_image_format format;
	int width, height;
	int orientation;
	int scale_denom;
	/* The decoder's bound on the memory this decode held (output image
	 * plus working buffers, not counting the encoded input): the figure
	 * checked against max_memory. */
	size_t mem_bytes;
} nd_image_info;

/* Decodes a file (read as a stream: the file is never loaded whole).
 * opts may be NULL (defaults); info may be NULL. On success returns 0 and
 * fills *out, which the caller releases with nd_image_free. On failure
 * returns ND_EIO (cannot open/read, errno text in err), ND_EFORMAT (empty,
 * or not a supported image format), ND_ECORRUPT (truncated or corrupt data),
 * ND_ELIMIT (a limit in opts was exceeded), ND_EUNSUPPORTED, ND_ENOMEM or
 * ND_EOVERFLOW, leaves out->rgb NULL, and fills err (which may be NULL)
 * with a message that does not contain the path. */
int nd_image_decode_file(const char *path, const nd_image_opts *opts,
			 nd_image *out, nd_image_info *info, nd_error *err);

/* Same as nd_image_decode_file, from len bytes at data (not retained). */
int nd_image_decode_mem(const void *data, size_t len, const nd_image_opts *opts,
			nd_image *out, nd_image_info *info, nd_error *err);

/* Format detected from the first bytes: pass ND_IMAGE_SNIFF_BYTES of them,
 * or the whole file when it is shorter. Only formats this build decodes. */
nd_image_format nd_image_sniff(const void *data, size_t len);

/* Short name: "jpeg", "png", "webp", ... or "unknown". */
const char *nd_image_format_name(nd_image_format fmt);

/* The format a file name's extension claims (case-insensitive), or
 * ND_FMT_UNKNOWN. Only for telling "an image that cannot be decoded" from
 * "not an image": decoding always goes by content. */
nd_image_format nd_image_format_from_name(const char *path);

/* What a file is, from its first bytes (up to 4096 are looked at): a
 * decodable image, or for anything else a coarse kind, so that callers can
 * say what they skipped. */
typedef enum nd_file_kind {
	ND_KIND_IMAGE = 0,       /* nd_image_sniff recognises it */
	ND_KIND_EMPTY,
	ND_KIND_TEXT,            /* UTF-8 text without control characters */
	ND_KIND_VIDEO,
	ND_KIND_AUDIO,
	ND_KIND_DOCUMENT,        /* PDF, PostScript, RTF, MS Office (OLE) */
	ND_KIND_ARCHIVE,         /* zip (and zip-based documents), gzip, xz, ... */
	ND_KIND_IMAGE_OTHER,     /* an image format not decoded here (PSD, ICO, JPEG XL, ...) */
	ND_KIND_PROGRAM,
	ND_KIND_OTHER,
	ND_KIND_COUNT
} nd_file_kind;

nd_file_kind nd_file_kind_of(const void *data, size_t len);

/* "image", "empty", "text", "video", "audio", "document", "archive",
 * "unsupported image", "program" or "other". */
const char *nd_file_kind_name(nd_file_kind kind);

/* Releases img->rgb and zeroes the struct. Safe on a zeroed struct and on
 * NULL. */
void nd_image_free(nd_image *img);

#ifdef __cplusplus
}
#endif
#endif
