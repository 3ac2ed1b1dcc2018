/* neardup — PNG decoding through libpng.
 *
 * Per-call error handling (error/warning callbacks with a per-call context,
 * libpng's own setjmp buffer), no global state. The stored dimensions are
 * checked from the IHDR bytes before libpng starts, and libpng's user limits
 * (width, height, ancillary chunk size and count) back that up; a chunk that
 * hits a limit (e.g. a zTXt that inflates to gigabytes, or millions of text
 * chunks) is an error, not a silently dropped chunk.
 *
 * Transforms: palette and low bit depths expanded, tRNS turned into alpha,
 * 16-bit reduced to 8 by keeping the high byte (as PIL does), grey to RGB.
 * Adam7 images are read pass by pass into the reduced image (read_adam7), so
 * an interlaced file costs little more memory than a non-interlaced one.
 * Alpha is composited onto opts->background with
 * out = (c*a + bg*(255-a) + 127) / 255 on the stored values (no gamma). */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>

#include <png.h>

struct png_ctx {
	nd_src *src;
	int code;            /* ND_E* chosen by a callback, 0 = classify */
	char msg[256];
	uint8_t *row;        /* one transformed row (3 or 4 channels) */
	uint8_t *rgb;        /* one composited RGB row */
	uint8_t *full;       /* interlaced: the stored-size RGB image (factor 1) */
	uint16_t *acc;       /* interlaced: reduced-image sums (factor > 1) */
	uint8_t *exif;       /* "Exif\0\0" + eXIf payload */
	nd_sink sink;
	int sink_live;
};

static void png_read_cb(png_structp png, png_bytep out, size_t n)
{
	struct png_ctx *c = png_get_io_ptr(png);
	nd_src *s = c->src;
	if (s->fp) {
		if (fread(out, 1, n, s->fp) != n) {
			c->code = ferror(s->fp) ? ND_EIO : ND_ECORRUPT;
			png_error(png, ferror(s->fp) ? "read error" : "truncated PNG data");
		}
		return;
	}
	if (n > s->len - s->pos) {
		c->code = ND_ECORRUPT;
		png_error(png, "truncated PNG data");
	}
	memcpy(out, s->data + s->pos, n);
	s->pos += n;
}

static int contains(const char *s, const char *what)
{
	return strstr(s, what) != NULL;
}

/* Messages of libpng that mean one of our limits was hit. */
static int is_limit_message(const char *m)
{
	return contains(m, "chunk cache") || contains(m, "too large") || contains(m, "exceeds") ||
	       contains(m, "limit") || contains(m, "insufficient memory");
}

static void png_error_cb(png_structp png, png_const_charp m)
{
	struct png_ctx *c = png_get_error_ptr(png);
	if (!c->code) {
		if (is_limit_message(m))
			c->code = ND_ELIMIT;
		else if (contains(m, "ut of memory") || contains(m, "ut of Memory"))
			c->code = ND_ENOMEM;
		else
			c->code = ND_ECORRUPT;
	}
	if (!strcmp(m, "truncated PNG data") || !strcmp(m, "read error"))
		snprintf(c->msg, sizeof(c->msg), "%s", m);
	else if (c->code == ND_ELIMIT)
		snprintf(c->msg, sizeof(c->msg), "PNG limit exceeded: %s", m);
	else
		snprintf(c->msg, sizeof(c->msg), "corrupt PNG data: %s", m);
	png_longjmp(png, 1);
}

static void png_warn_cb(png_structp png, png_const_charp m)
{
	/* Ancillary-chunk trouble stays a warning (pixels are unaffected),
	 * except when a limit was hit: that is a bomb and we refuse it. */
	struct png_ctx *c = png_get_error_ptr(png);
	size_t n = strlen(m);
	if (is_limit_message(m)) {
		c->code = ND_ELIMIT;
		snprintf(c->msg, sizeof(c->msg), "PNG limit exceeded: %s", m);
		png_longjmp(png, 1);
	}
	/* libpng inflates a compressed ancillary chunk (zTXt, iTXt, iCCP) only
	 * up to png_chunk_malloc_max and then says "<chunk>: truncated"; the
	 * same words are used for a stream that is cut short. Either way the
	 * file is refused: a compression bomb is the likely reason. */
	if (n > 11 && !strcmp(m + n - 11, ": truncated")) {
		c->code = ND_ELIMIT;
		snprintf(c->msg, sizeof(c->msg),
			 "PNG limit exceeded: %.*s chunk inflates beyond the limit or is cut short",
			 (int)(n - 11), m);
		png_longjmp(png, 1);
	}
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks the IHDR dimensions (bytes 16..23) before libpng allocates
 * anything; libpng validates the rest of the header itself. */
static int precheck_ihdr(nd_src *src, const nd_image_opts *opts, nd_error *err)
{
	uint8_t h[24];
	if (src->fp) {
		size_t n = fread(h, 1, sizeof(h), src->fp);
		if (fseek(src->fp, 0, SEEK_SET) != 0)
			return nd_error_set(err, ND_EIO, "cannot seek");
		if (n < sizeof(h))
			return nd_error_set(err, ND_ECORRUPT, "truncated PNG data");
	} else {
		if (src->len < sizeof(h))
			return nd_error_set(err, ND_ECORRUPT, "truncated PNG data");
		memcpy(h, src->data, sizeof(h));
	}
	if (memcmp(h + 12, "IHDR", 4) != 0)
		return nd_error_set(err, ND_ECORRUPT, "corrupt PNG data: IHDR is not the first chunk");
	return nd__image_check_limits(be32(h + 16), be32(h + 20), opts, "PNG", err);
}

/* The memory bound of this decode: the output image, libpng's rows (two at
 * the stored depth, up to 8 bytes a pixel) and ours, the sink's row sums
 * and, for an interlaced image, the whole-image buffer of read_adam7 (the
 * reduced sums, or the stored-size image at factor 1). */
static int check_memory(png_uint_32 w, png_uint_32 h, int interlaced, nd_image_info *info,
			const nd_image_opts *opts, nd_error *err)
{
	int f = info->scale_denom;
	uint64_t out = nd__image_out_bytes(w, h, f);
	uint64_t rows = (uint64_t)w * (2 * 8 + 4 + 3) + (uint64_t)(w / (uint32_t)f + 1) * 15 + 65536;
	uint64_t whole = !interlaced ? 0 : f > 1 ? out * sizeof(uint16_t) : out;
	info->mem_bytes = (size_t)(out + rows + whole);
	if (out + rows + whole > opts->max_memory) {
		char what[64];
		snprintf(what, sizeof(what), "%sPNG %ux%u", interlaced ? "interlaced " : "", w, h);
		return nd__image_check_memory(out + rows + whole, opts, what, err);
	}
	return 0;
}

/* An Adam7 image read pass by pass: every pixel of a pass sub-image goes to
 * its place (x, y) in the stored image, either into the stored-size buffer
 * (factor 1) or added into its reduced pixel's sums. Sums of at most 8x8
 * 8-bit values fit in 16 bits. The result is identical to the non-interlaced
 * path's: the same pixels, summed exactly, divided with the same rounding. */
static int read_adam7(png_structp png, struct png_ctx *c, png_uint_32 w, png_uint_32 h, int ch,
		      const uint8_t bg[3], nd_error *err)
{
	nd_sink *s = &c->sink;
	const int f = s->factor;
	const size_t rw = (size_t)s->rw, rh = (size_t)s->rh;
	if (f == 1)
		c->full = malloc(rw * rh * 3);
	else
		c->acc = calloc(rw * rh * 3, sizeof(uint16_t));
	if (!c->full && !c->acc)
		return nd_error_set(err, ND_ENOMEM, "out of memory for a %ux%u PNG", w, h);
	for (int pass = 0; pass < 7; pass++) {
		png_uint_32 cols = PNG_PASS_COLS(w, pass), prow = PNG_PASS_ROWS(h, pass);
		if (cols == 0 || prow == 0)
			continue; /* libpng skips empty passes */
		const int xs = PNG_PASS_COL_SHIFT(pass), x0 = PNG_PASS_START_COL(pass);
		const int ys = PNG_PASS_ROW_SHIFT(pass), y0 = PNG_PASS_START_ROW(pass);
		for (png_uint_32 j = 0; j < prow; j++) {
			const uint8_t *px = c->row;
			png_read_row(png, c->row, NULL);
			if (ch == 4) {
				nd__image_composite_rgba(c->row, c->rgb, (int)cols, bg);
				px = c->rgb;
			}
			size_t y = ((size_t)j << ys) + (size_t)y0;
			for (png_uint_32 i = 0; i < cols; i++, px += 3) {
				size_t x = ((size_t)i << xs) + (size_t)x0;
				if (f == 1) {
					memcpy(c->full + (y * rw + x) * 3, px, 3);
				} else {
					uint16_t *a = c->acc + ((y / (size_t)f) * rw + x / (size_t)f) * 3;
					a[0] = (uint16_t)(a[0] + px[0]);
					a[1] = (uint16_t)(a[1] + px[1]);
					a[2] = (uint16_t)(a[2] + px[2]);
				}
			}
		}
	}
	if (f == 1) {
		for (size_t y = 0; y < rh; y++)
			nd__image_sink_put_reduced(s, c->full + y * rw * 3);
		return 0;
	}
	/* averages with the sink's rounding; edge blocks count the pixels they have */
	for (size_t ry = 0; ry < rh; ry++) {
		uint32_t bh = (uint32_t)(h - ry * (size_t)f < (size_t)f ? h - ry * (size_t)f : (size_t)f);
		uint8_t *o = s->row;
		const uint16_t *a = c->acc + ry * rw * 3;
		for (size_t rx = 0; rx < rw; rx++) {
			uint32_t bw = (uint32_t)(w - rx * (size_t)f < (size_t)f ? w - rx * (size_t)f : (size_t)f);
			uint32_t cnt = bw * bh;
			for (int k = 0; k < 3; k++)
				o[rx * 3 + k] = (uint8_t)((a[rx * 3 + k] + cnt / 2) / cnt);
		}
		nd__image_sink_put_reduced(s, o);
	}
	return 0;
}

static int decode_png(nd_src *src, const nd_image_opts *opts, nd_image *out,
		      nd_image_info *info, nd_error *err)
{
	struct png_ctx ctx;
	png_structp png = NULL;
	png_infop pinfo = NULL;
	int rc = 0;

	if (nd__image_decode_png_fast(src, opts, out, info) == 0)
		return 0;
	memset(&ctx, 0, sizeof(ctx));
	ctx.src = src;
	if ((rc = precheck_ihdr(src, opts, err)))
		return rc;
	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_cb, png_warn_cb);
	if (!png)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	pinfo = png_create_info_struct(png);
	if (!pinfo) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if (setjmp(png_jmpbuf(png))) {
		rc = nd_error_set(err, ctx.code ? ctx.code : ND_ECORRUPT, "%s", ctx.msg);
		goto done;
	}
	png_set_read_fn(png, &ctx, png_read_cb);
	png_set_user_limits(png, opts->max_width < PNG_UINT_31_MAX ? opts->max_width : PNG_UINT_31_MAX,
			    opts->max_height < PNG_UINT_31_MAX ? opts->max_height : PNG_UINT_31_MAX);
	png_set_chunk_malloc_max(png, opts->png_chunk_malloc_max);
	png_set_chunk_cache_max(png, opts->png_chunk_cache_max);
	/* zlib with a 32 KiB window whatever the stream's header declares
	 * (libpng's option for encoders that write too small a value), as the
	 * fast path's libdeflate does: both accept the same files */
	png_set_option(png, PNG_MAXIMUM_INFLATE_WINDOW, PNG_OPTION_ON);
	png_read_info(png, pinfo);

	png_uint_32 w = png_get_image_width(png, pinfo), h = png_get_image_height(png, pinfo);
	int depth = png_get_bit_depth(png, pinfo);
	int ctype = png_get_color_type(png, pinfo);
	int interlaced = png_get_interlace_type(png, pinfo) != PNG_INTERLACE_NONE;
	info->width = (int)w;
	info->height = (int)h;
	if ((rc = nd__image_check_limits(w, h, opts, "PNG", err)))
		goto done;

	/* EXIF orientation from an eXIf chunk before IDAT (PNG 1.5 extension). */
	{
		png_uint_32 n = 0;
		png_bytep ex = NULL;
		if (png_get_eXIf_1(png, pinfo, &n, &ex) && ex && n >= 8 && n < 0xffff0000u) {
			ctx.exif = malloc((size_t)n + 6);
			if (ctx.exif) {
				memcpy(ctx.exif, "Exif\0\0", 6);
				memcpy(ctx.exif + 6, ex, n);
				info->orientation = nd__image_exif_orientation(ctx.exif, (size_t)n + 6);
			}
		}
	}
	info->scale_denom = nd__image_pick_scale(w, h, info->orientation, opts);

	png_set_expand(png); /* palette -> RGB, grey < 8 bits -> 8, tRNS -> alpha */
	if (depth == 16)
		png_set_strip_16(png);
	if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
		png_set_gray_to_rgb(png);
	/* No png_set_interlace_handling: an interlaced image comes as the
	 * seven passes' sub-images, scattered here into the reduced output. */
	png_read_update_info(png, pinfo);

	int ch = png_get_channels(png, pinfo);
	size_t rowbytes = png_get_rowbytes(png, pinfo), expect;
	if ((ch != 3 && ch != 4) || nd_mul_size(w, (size_t)ch, &expect) || rowbytes != expect) {
		rc = nd_error_set(err, ND_EINTERNAL, "unexpected PNG row layout (%d channels)", ch);
		goto done;
	}
	if ((rc = check_memory(w, h, interlaced, info, opts, err)))
		goto done;
	if ((rc = nd__image_sink_init(&ctx.sink, (int)w, (int)h, info->scale_denom, info->orientation,
				      out, err)))
		goto done;
	ctx.sink_live = 1;
	if (!(ctx.row = malloc(rowbytes)) || (ch == 4 && !(ctx.rgb = malloc((size_t)w * 3)))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if (interlaced) {
		if ((rc = read_adam7(png, &ctx, w, h, ch, opts->background, err)))
			goto done;
	} else {
		for (png_uint_32 y = 0; y < h; y++) {
			uint8_t *direct = ch == 3 ? nd__image_sink_direct(&ctx.sink, (int)y) : NULL;
			png_read_row(png, direct ? direct : ctx.row, NULL);
			if (direct) {
				nd__image_sink_skip(&ctx.sink);
			} else if (ch == 4) {
				nd__image_composite_rgba(ctx.row, ctx.rgb, (int)w, opts->background);
				nd__image_sink_put(&ctx.sink, ctx.rgb);
			} else {
				nd__image_sink_put(&ctx.sink, ctx.row);
			}
		}
	}
	/* Reads the rest up to IEND: a file cut after the image data is an error. */
	png_read_end(png, NULL);

done:
	png_destroy_read_struct(&png, pinfo ? &pinfo : NULL, NULL);
	if (ctx.sink_live)
		nd__image_sink_release(&ctx.sink);
	free(ctx.row);
	free(ctx.rgb);
	free(ctx.full);
	free(ctx.acc);
	free(ctx.exif);
	if (rc)
		nd_image_free(out);
	return rc;
}

static int sniff_png(const uint8_t *p, size_t len)
{
	static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	if (len < sizeof(sig))
		return !memcmp(p, sig, len) ? ND__SNIFF_SHORT : ND__SNIFF_NO;
	return !memcmp(p, sig, sizeof(sig)) ? ND__SNIFF_YES : ND__SNIFF_NO;
}

const nd__image_codec nd__image_codec_png = {
	ND_FMT_PNG, "png", "PNG", "png", sniff_png, decode_png,
};
