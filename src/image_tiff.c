/* neardup — TIFF decoding through libtiff: the first page (directory).
 *
 * libtiff's RGBA interface (TIFFRGBAImageGet) does the photometric work:
 * strips and tiles, contiguous and separate planes, 1-16 bits, grey,
 * palette, RGB, CMYK, YCbCr, JPEG/LZW/Deflate/PackBits compression. It is
 * asked for one band of rows at a time (a strip's or a tile row's height) so
 * that memory is the band, not the image, and the rows go to the sink,
 * which box-reduces them and applies the Orientation tag (TIFF's values are
 * EXIF's). libtiff is told to keep the stored row order (req_orientation =
 * the file's own, so it flips nothing) since it would otherwise apply only
 * the flips and not the transpositions of orientations 5-8. Its RGBA output
 * has premultiplied alpha, composited here onto opts->background.
 *
 * Errors and warnings go to per-file handlers (TIFFOpenOptions), never to
 * libtiff's process-wide ones; libtiff's own allocation cap is set to
 * max_memory. Memory bound: the output and sink rows, the band (4 bytes a
 * pixel), and libtiff's strip or tile buffers (decoded and raw, four planes
 * for separate-plane data). */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

struct tiff_ctx {
	nd_src *src;
	uint64_t size;
	char msg[256];
};

static tmsize_t t_read(thandle_t h, void *buf, tmsize_t n)
{
	struct tiff_ctx *c = h;
	nd_src *s = c->src;
	if (n <= 0)
		return 0;
	if (s->fp)
		return (tmsize_t)fread(buf, 1, (size_t)n, s->fp);
	size_t k = s->pos < s->len ? s->len - s->pos : 0;
	if (k > (size_t)n)
		k = (size_t)n;
	memcpy(buf, s->data + s->pos, k);
	s->pos += k;
	return (tmsize_t)k;
}

static tmsize_t t_write(thandle_t h, void *buf, tmsize_t n)
{
	(void)h;
	(void)buf;
	(void)n;
	return 0;
}

static toff_t t_seek(thandle_t h, toff_t off, int whence)
{
	struct tiff_ctx *c = h;
	nd_src *s = c->src;
	uint64_t base = 0;
	if (whence == SEEK_CUR)
		base = s->fp ? (uint64_t)ftello(s->fp) : s->pos;
	else if (whence == SEEK_END)
		base = c->size;
	uint64_t to = base + off;
	if (s->fp) {
		if (to > (uint64_t)INT64_MAX || fseeko(s->fp, (off_t)to, SEEK_SET) != 0)
			return (toff_t)-1;
		return to;
	}
	if (to > s->len)
		to = s->len; /* reads there return nothing: a truncated file */
	s->pos = (size_t)to;
	return to;
}

static int t_close(thandle_t h)
{
	(void)h;
	return 0;
}

static toff_t t_size(thandle_t h)
{
	return ((struct tiff_ctx *)h)->size;
}

static int t_map(thandle_t h, void **base, toff_t *size)
{
	(void)h;
	(void)base;
	(void)size;
	return 0;
}

static void t_unmap(thandle_t h, void *base, toff_t size)
{
	(void)h;
	(void)base;
	(void)size;
}

static int t_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	struct tiff_ctx *c = user;
	(void)tif;
	(void)module;
	if (!c->msg[0]) {
		vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
		/* libtiff names the file first: ours is always "tiff" */
		if (!strncmp(c->msg, "tiff: ", 6))
			memmove(c->msg, c->msg + 6, strlen(c->msg + 6) + 1);
	}
	return 1; /* handled: nothing reaches libtiff's global handler */
}

static int t_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
	(void)tif;
	(void)user;
	(void)module;
	(void)fmt;
	(void)ap;
	return 1;
}

/* premultiplied ABGR (TIFFGet*) onto bg */
static void rgba_row(const uint32_t *in, uint8_t *out, uint32_t w, const uint8_t bg[3])
{
	for (uint32_t x = 0; x < w; x++, out += 3) {
		uint32_t p = in[x], a = TIFFGetA(p), na = 255 - a;
		uint32_t r = TIFFGetR(p) + (bg[0] * na + 127) / 255;
		uint32_t g = TIFFGetG(p) + (bg[1] * na + 127) / 255;
		uint32_t b = TIFFGetB(p) + (bg[2] * na + 127) / 255;
		out[0] = (uint8_t)(r > 255 ? 255 : r);
		out[1] = (uint8_t)(g > 255 ? 255 : g);
		out[2] = (uint8_t)(b > 255 ? 255 : b);
	}
}

static int decode_tiff(nd_src *src, const nd_image_opts *opts, nd_image *out,
		       nd_image_info *info, nd_error *err)
{
	struct tiff_ctx ctx;
	TIFFRGBAImage img;
	int img_live = 0, sink_live = 0, rc = 0;
	uint32_t *band = NULL;
	uint8_t *rgb = NULL;
	nd_sink sink;
	TIFF *tif = NULL;
	char emsg[1024] = "";

	memset(&ctx, 0, sizeof(ctx));
	ctx.src = src;
	if (src->fp) {
		if (fseeko(src->fp, 0, SEEK_END) != 0)
			return nd_error_set(err, ND_EIO, "cannot seek");
		ctx.size = (uint64_t)ftello(src->fp);
		if (fseeko(src->fp, 0, SEEK_SET) != 0)
			return nd_error_set(err, ND_EIO, "cannot seek");
	} else {
		ctx.size = src->len;
	}
	TIFFOpenOptions *to = TIFFOpenOptionsAlloc();
	if (!to)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	TIFFOpenOptionsSetMaxSingleMemAlloc(to, (tmsize_t)opts->max_memory);
	TIFFOpenOptionsSetErrorHandlerExtR(to, t_error, &ctx);
	TIFFOpenOptionsSetWarningHandlerExtR(to, t_warning, &ctx);
	tif = TIFFClientOpenExt("tiff", "rm", &ctx, t_read, t_write, t_seek, t_close, t_size, t_map,
				t_unmap, to);
	TIFFOpenOptionsFree(to);
	if (!tif) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt TIFF data: %s",
				  ctx.msg[0] ? ctx.msg : "cannot read the header");
		goto done;
	}
	uint32_t w = 0, h = 0;
	uint16_t orient = ORIENTATION_TOPLEFT;
	TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
	TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
	TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orient);
	info->width = (int)w;
	info->height = (int)h;
	if ((rc = nd__image_check_limits(w, h, opts, "TIFF", err)))
		goto done;
	info->orientation = orient >= 1 && orient <= 8 ? orient : 1;
	if (!TIFFRGBAImageOK(tif, emsg)) {
		rc = nd_error_set(err, ND_EUNSUPPORTED, "unsupported TIFF: %s", emsg);
		goto done;
	}
	uint32_t rows;
	uint64_t chunk;
	uint16_t planar = PLANARCONFIG_CONTIG;
	TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
	if (TIFFIsTiled(tif)) {
		uint32_t tl = 0;
		TIFFGetField(tif, TIFFTAG_TILELENGTH, &tl);
		rows = tl;
		chunk = (uint64_t)TIFFTileSize64(tif);
	} else {
		uint32_t rps = h;
		TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
		rows = rps;
		chunk = (uint64_t)TIFFStripSize64(tif);
	}
	if (rows == 0 || rows > h)
		rows = h;
	int f = nd__image_pick_scale(w, h, info->orientation, opts);
	info->scale_denom = f;
	uint64_t need = nd__image_out_bytes(w, h, f) + (uint64_t)w / (uint64_t)f * 15 +
			(uint64_t)w * 3 + (uint64_t)w * rows * 4 +
			chunk * (planar == PLANARCONFIG_SEPARATE ? 5 : 2) + 65536;
	info->mem_bytes = (size_t)need;
	if (need > opts->max_memory) {
		char what[64];
		snprintf(what, sizeof(what), "TIFF %ux%u", w, h);
		rc = nd__image_check_memory(need, opts, what, err);
		goto done;
	}
	if (!TIFFRGBAImageBegin(&img, tif, 1, emsg)) {
		rc = nd_error_set(err, ND_EUNSUPPORTED, "unsupported TIFF: %s", emsg);
		goto done;
	}
	img_live = 1;
	/* the group representative of the file's orientation: no flips */
	static const uint16_t keep[9] = { 1, 1, 2, 3, 4, 1, 2, 3, 4 };
	img.req_orientation = keep[img.orientation <= 8 ? img.orientation : 1];
	band = malloc((size_t)w * rows * 4);
	rgb = malloc((size_t)w * 3);
	if (!band || !rgb) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = nd__image_sink_init(&sink, (int)w, (int)h, f, info->orientation, out, err)))
		goto done;
	sink_live = 1;
	for (uint32_t y = 0; y < h; y += rows) {
		uint32_t n = h - y < rows ? h - y : rows;
		img.row_offset = (int)y;
		img.col_offset = 0;
		if (!TIFFRGBAImageGet(&img, band, w, n)) {
			rc = nd_error_set(err, ND_ECORRUPT, "corrupt TIFF data: %s",
					  ctx.msg[0] ? ctx.msg : "cannot read the image data");
			goto done;
		}
		for (uint32_t k = 0; k < n; k++) {
			rgba_row(band + (size_t)k * w, rgb, w, opts->background);
			nd__image_sink_put(&sink, rgb);
		}
	}
done:
	if (sink_live)
		nd__image_sink_release(&sink);
	if (img_live)
		TIFFRGBAImageEnd(&img);
	if (tif)
		TIFFClose(tif);
	free(band);
	free(rgb);
	return rc;
}

static int sniff_tiff(const uint8_t *p, size_t len)
{
	static const uint8_t ii[4] = { 'I', 'I', 42, 0 }, mm[4] = { 'M', 'M', 0, 42 };
	static const uint8_t ii8[4] = { 'I', 'I', 43, 0 }, mm8[4] = { 'M', 'M', 0, 43 };
	if (len < 4)
		return !memcmp(p, ii, len) || !memcmp(p, mm, len) || !memcmp(p, ii8, len) ||
				       !memcmp(p, mm8, len)
			       ? ND__SNIFF_SHORT
			       : ND__SNIFF_NO;
	return !memcmp(p, ii, 4) || !memcmp(p, mm, 4) || !memcmp(p, ii8, 4) || !memcmp(p, mm8, 4)
		       ? ND__SNIFF_YES
		       : ND__SNIFF_NO;
}

const nd__image_codec nd__image_codec_tiff = {
	ND_FMT_TIFF, "tiff", "TIFF", "tif tiff", sniff_tiff, decode_tiff,
};
