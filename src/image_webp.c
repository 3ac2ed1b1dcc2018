/* neardup — WebP decoding through libwebp (lossy, lossless, alpha) and
 * libwebpdemux (the container: animation, EXIF).
 *
 * An animated file gives its first frame, placed on the canvas at its
 * offset; the rest of the canvas and transparent pixels are composited onto
 * opts->background as for PNG. The EXIF Orientation is applied. Large
 * images use libwebp's scaled decode (its own area-averaging rescaler) at
 * the reduction nd__image_pick_scale picks, so the RGBA buffer is the
 * reduced frame. libwebp needs the whole file in memory; a stream source is
 * read whole (bounded by max_memory).
 *
 * Memory bound: the output, the reduced RGBA frame, the file when read here,
 * and libwebp's own buffers: row caches for lossy data, but the whole
 * full-size ARGB image (twice, for its transforms) for lossless data and a
 * full-size plane for alpha. */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

static int status_error(VP8StatusCode st, nd_error *err)
{
	switch (st) {
	case VP8_STATUS_NOT_ENOUGH_DATA:
		return nd_error_set(err, ND_ECORRUPT, "truncated WebP data");
	case VP8_STATUS_OUT_OF_MEMORY:
		return nd_error_set(err, ND_ENOMEM, "out of memory decoding WebP");
	case VP8_STATUS_UNSUPPORTED_FEATURE:
		return nd_error_set(err, ND_EUNSUPPORTED, "unsupported WebP feature");
	default:
		return nd_error_set(err, ND_ECORRUPT, "corrupt WebP data (libwebp status %d)", (int)st);
	}
}

/* EXIF orientation from the container's EXIF chunk (a TIFF header, with or
 * without the "Exif\0\0" prefix that some writers add). */
static int webp_orientation(WebPDemuxer *dmx)
{
	WebPChunkIterator ci;
	int o = 1;
	if (!WebPDemuxGetChunk(dmx, "EXIF", 1, &ci))
		return 1;
	const uint8_t *p = ci.chunk.bytes;
	size_t n = ci.chunk.size;
	if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) {
		o = nd__image_exif_orientation(p, n);
	} else if (n >= 8 && n < ((size_t)1 << 24)) {
		uint8_t *e = malloc(n + 6);
		if (e) {
			memcpy(e, "Exif\0\0", 6);
			memcpy(e + 6, p, n);
			o = nd__image_exif_orientation(e, n + 6);
			free(e);
		}
	}
	WebPDemuxReleaseChunkIterator(&ci);
	return o;
}

static int decode_webp(nd_src *src, const nd_image_opts *opts, nd_image *out,
		       nd_image_info *info, nd_error *err)
{
	const uint8_t *data;
	size_t len;
	uint8_t *owned = NULL, *rgba = NULL, *row = NULL, *rgb = NULL;
	WebPDemuxer *dmx = NULL;
	WebPIterator it;
	int have_it = 0, sink_live = 0, rc;
	nd_sink sink;

	if ((rc = nd__image_src_whole(src, opts->max_memory, "WebP", &data, &len, &owned, err)))
		return rc;
	WebPData wd = { data, len };
	WebPDemuxState state;
	dmx = WebPDemuxPartial(&wd, &state);
	if (!dmx) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt WebP data: bad container");
		goto done;
	}
	if (state != WEBP_DEMUX_DONE) {
		rc = nd_error_set(err, ND_ECORRUPT, "truncated WebP data");
		goto done;
	}
	uint32_t cw = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH);
	uint32_t ch = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
	info->width = (int)cw;
	info->height = (int)ch;
	if ((rc = nd__image_check_limits(cw, ch, opts, "WebP", err)))
		goto done;
	if (!WebPDemuxGetFrame(dmx, 1, &it)) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt WebP data: no frame");
		goto done;
	}
	have_it = 1;
	WebPBitstreamFeatures ft;
	VP8StatusCode st = WebPGetFeatures(it.fragment.bytes, it.fragment.size, &ft);
	if (st != VP8_STATUS_OK) {
		rc = status_error(st, err);
		goto done;
	}
	/* the frame as the bitstream declares it must lie on the canvas */
	if (ft.width != it.width || ft.height != it.height || it.width <= 0 || it.height <= 0 ||
	    it.x_offset < 0 || it.y_offset < 0 || (uint64_t)it.x_offset + (uint64_t)it.width > cw ||
	    (uint64_t)it.y_offset + (uint64_t)it.height > ch) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt WebP data: frame outside the canvas");
		goto done;
	}
	info->orientation = webp_orientation(dmx);
	int f = nd__image_pick_scale(cw, ch, info->orientation, opts);
	info->scale_denom = f;
	/* the frame at the reduced scale, and where it lies on the reduced canvas */
	int rw = (int)((cw + (uint32_t)f - 1) / (uint32_t)f), rh = (int)((ch + (uint32_t)f - 1) / (uint32_t)f);
	int fw = (it.width + f - 1) / f, fh = (it.height + f - 1) / f;
	int fx = it.x_offset / f, fy = it.y_offset / f;
	if (fx + fw > rw)
		fw = rw - fx;
	if (fy + fh > rh)
		fh = rh - fy;

	uint64_t full = (uint64_t)it.width * (uint64_t)it.height;
	uint64_t need = nd__image_out_bytes(cw, ch, f) + (uint64_t)fw * (uint64_t)fh * 4 +
			(owned ? len : 0) + (uint64_t)it.width * 64 + 65536 +
			(ft.format == 2 ? full * 8 : 0) + (ft.has_alpha ? full : 0);
	info->mem_bytes = (size_t)need;
	if (need > opts->max_memory) {
		char what[64];
		snprintf(what, sizeof(what), "WebP %ux%u", cw, ch);
		rc = nd__image_check_memory(need, opts, what, err);
		goto done;
	}

	rgba = malloc((size_t)fw * (size_t)fh * 4);
	row = malloc((size_t)rw * 3);
	rgb = malloc((size_t)fw * 3);
	if (!rgba || !row || !rgb) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	WebPDecoderConfig cfg;
	if (!WebPInitDecoderConfig(&cfg)) {
		rc = nd_error_set(err, ND_EINTERNAL, "libwebp version mismatch");
		goto done;
	}
	if (f > 1) {
		cfg.options.use_scaling = 1;
		cfg.options.scaled_width = fw;
		cfg.options.scaled_height = fh;
	}
	cfg.output.colorspace = MODE_RGBA;
	cfg.output.is_external_memory = 1;
	cfg.output.u.RGBA.rgba = rgba;
	cfg.output.u.RGBA.stride = fw * 4;
	cfg.output.u.RGBA.size = (size_t)fw * (size_t)fh * 4;
	st = WebPDecode(it.fragment.bytes, it.fragment.size, &cfg);
	WebPFreeDecBuffer(&cfg.output);
	if (st != VP8_STATUS_OK) {
		rc = status_error(st, err);
		goto done;
	}

	if ((rc = nd__image_sink_init(&sink, rw, rh, 1, info->orientation, out, err)))
		goto done;
	sink_live = 1;
	for (int y = 0; y < rh; y++) {
		for (int x = 0; x < rw; x++)
			memcpy(row + (size_t)x * 3, opts->background, 3);
		if (y >= fy && y < fy + fh) {
			nd__image_composite_rgba(rgba + (size_t)(y - fy) * fw * 4, rgb, fw, opts->background);
			memcpy(row + (size_t)fx * 3, rgb, (size_t)fw * 3);
		}
		nd__image_sink_put(&sink, row);
	}
done:
	if (sink_live)
		nd__image_sink_release(&sink);
	if (have_it)
		WebPDemuxReleaseIterator(&it);
	WebPDemuxDelete(dmx);
	free(rgba);
	free(row);
	free(rgb);
	free(owned);
	return rc;
}

static int sniff_webp(const uint8_t *p, size_t len)
{
	/* "RIFF" <size> "WEBP" */
	if (len < 12) {
		if (memcmp(p, "RIFF", len < 4 ? len : 4) != 0)
			return ND__SNIFF_NO;
		if (len > 8 && memcmp(p + 8, "WEBP", len - 8) != 0)
			return ND__SNIFF_NO;
		return ND__SNIFF_SHORT;
	}
	return !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4) ? ND__SNIFF_YES : ND__SNIFF_NO;
}

const nd__image_codec nd__image_codec_webp = {
	ND_FMT_WEBP, "webp", "WebP", "webp", sniff_webp, decode_webp,
};
