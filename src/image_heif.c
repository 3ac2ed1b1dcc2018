/* neardup — HEIF/HEIC and AVIF decoding through libheif (HEVC by libde265,
 * AV1 by dav1d or aom, as Debian's libheif1 brings them).
 *
 * The primary image, with its irot/imir transformations applied by libheif
 * (so info->orientation stays 1 and info->width/height are the displayed
 * size), converted by libheif to 8-bit interleaved RGB or RGBA (HDR data
 * reduced to 8 bits), alpha composited onto opts->background. libheif has
 * no reduced-size decoding: the image is decoded whole and box-reduced by
 * the sink, so the memory bound counts the full-size planes (the decoded
 * YCbCr and the RGB(A) image) plus a fixed allowance for the decoder's
 * contexts; at the default 64 MiB bound that admits 12-megapixel photos.
 * libheif needs the file in memory: a stream source is read whole. */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>

#include <libheif/heif.h>

#define HEIF_DECODER_ALLOWANCE ((uint64_t)8 << 20)

static int heif_fail(struct heif_error e, const char *label, nd_error *err)
{
	const char *m = e.message && e.message[0] ? e.message : "unknown error";
	if (e.subcode == heif_suberror_End_of_data)
		return nd_error_set(err, ND_ECORRUPT, "truncated %s data", label);
	switch (e.code) {
	case heif_error_Memory_allocation_error:
		return nd_error_set(err, ND_ENOMEM, "out of memory decoding %s", label);
	case heif_error_Unsupported_feature:
	case heif_error_Unsupported_filetype:
		return nd_error_set(err, ND_EUNSUPPORTED, "unsupported %s: %s", label, m);
	default:
		return nd_error_set(err, ND_ECORRUPT, "corrupt %s data: %s", label, m);
	}
}

static int decode_heif_common(nd_src *src, const nd_image_opts *opts, nd_image *out,
			      nd_image_info *info, nd_error *err, const char *label,
			      enum heif_compression_format cfmt)
{
	const uint8_t *data;
	size_t len;
	uint8_t *owned = NULL, *rgb = NULL;
	struct heif_context *ctx = NULL;
	struct heif_image_handle *h = NULL;
	struct heif_image *img = NULL;
	struct heif_decoding_options *dopt = NULL;
	int rc, sink_live = 0;
	nd_sink sink;
	struct heif_error e;

	if ((rc = nd__image_src_whole(src, opts->max_memory, label, &data, &len, &owned, err)))
		return rc;
	e = heif_init(NULL);
	if (e.code != heif_error_Ok) {
		free(owned);
		return heif_fail(e, label, err);
	}
	if (!heif_have_decoder_for_format(cfmt)) {
		rc = nd_error_set(err, ND_EUNSUPPORTED, "no %s decoder in this libheif",
				  cfmt == heif_compression_AV1 ? "AV1" : "HEVC");
		goto done;
	}
	ctx = heif_context_alloc();
	if (!ctx) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	heif_context_set_maximum_image_size_limit(
		ctx, (int)(opts->max_width > opts->max_height ? opts->max_width : opts->max_height));
	e = heif_context_read_from_memory_without_copy(ctx, data, len, NULL);
	if (e.code == heif_error_Ok)
		e = heif_context_get_primary_image_handle(ctx, &h);
	if (e.code != heif_error_Ok) {
		rc = heif_fail(e, label, err);
		goto done;
	}
	int w = heif_image_handle_get_width(h), ht = heif_image_handle_get_height(h);
	int alpha = heif_image_handle_has_alpha_channel(h);
	int deep = heif_image_handle_get_luma_bits_per_pixel(h) > 8;
	info->width = w;
	info->height = ht;
	if (w <= 0 || ht <= 0) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt %s data: size %dx%d", label, w, ht);
		goto done;
	}
	if ((rc = nd__image_check_limits((uint64_t)w, (uint64_t)ht, opts, label, err)))
		goto done;
	int f = nd__image_pick_scale((uint64_t)w, (uint64_t)ht, 1, opts);
	info->scale_denom = f;
	uint64_t px = (uint64_t)w * (uint64_t)ht;
	uint64_t need = nd__image_out_bytes((uint64_t)w, (uint64_t)ht, f) + px * (alpha ? 4 : 3) +
			px * (deep ? 3 : 1) * (alpha ? 5 : 3) / 2 + (uint64_t)w * 3 +
			(uint64_t)w / (uint64_t)f * 15 + (owned ? len : 0) + HEIF_DECODER_ALLOWANCE;
	info->mem_bytes = (size_t)need;
	if (need > opts->max_memory) {
		char what[64];
		snprintf(what, sizeof(what), "%s %dx%d", label, w, ht);
		rc = nd__image_check_memory(need, opts, what, err);
		goto done;
	}
	dopt = heif_decoding_options_alloc();
	if (!dopt) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	dopt->convert_hdr_to_8bit = 1;
	e = heif_decode_image(h, &img, heif_colorspace_RGB,
			      alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, dopt);
	if (e.code != heif_error_Ok) {
		rc = heif_fail(e, label, err);
		goto done;
	}
	int stride = 0;
	const uint8_t *pix = heif_image_get_plane_readonly(img, heif_channel_interleaved, &stride);
	int iw = heif_image_get_width(img, heif_channel_interleaved);
	int ih = heif_image_get_height(img, heif_channel_interleaved);
	if (!pix || iw != w || ih != ht || stride < w * (alpha ? 4 : 3)) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt %s data: decoded image of an unexpected size",
				  label);
		goto done;
	}
	if (alpha && !(rgb = malloc((size_t)w * 3))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = nd__image_sink_init(&sink, w, ht, f, 1, out, err)))
		goto done;
	sink_live = 1;
	for (int y = 0; y < ht; y++) {
		const uint8_t *row = pix + (size_t)y * (size_t)stride;
		if (alpha) {
			nd__image_composite_rgba(row, rgb, w, opts->background);
			row = rgb;
		}
		nd__image_sink_put(&sink, row);
	}
done:
	if (sink_live)
		nd__image_sink_release(&sink);
	if (img)
		heif_image_release(img);
	if (h)
		heif_image_handle_release(h);
	if (ctx)
		heif_context_free(ctx);
	heif_decoding_options_free(dopt);
	heif_deinit();
	free(rgb);
	free(owned);
	return rc;
}

/* The ftyp box: its major brand, or for the generic 'mif1'/'msf1'/'miaf'
 * the compatible brands (within the bytes sniffed) decide HEIC or AVIF. */
static nd_image_format ftyp_format(const uint8_t *p, size_t len)
{
	static const char *const heic[] = { "heic", "heix", "hevc", "hevx", "heim", "heis" };
	static const char *const avif[] = { "avif", "avis" };
	if (len < 12 || memcmp(p + 4, "ftyp", 4) != 0)
		return ND_FMT_UNKNOWN;
	uint32_t box = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	size_t end = box < len ? box : len;
	for (size_t at = 8; at + 4 <= end; at += at == 8 ? 8 : 4) { /* brand, then compatibles */
		for (size_t i = 0; i < sizeof(heic) / sizeof(heic[0]); i++)
			if (!memcmp(p + at, heic[i], 4))
				return ND_FMT_HEIF;
		for (size_t i = 0; i < sizeof(avif) / sizeof(avif[0]); i++)
			if (!memcmp(p + at, avif[i], 4))
				return ND_FMT_AVIF;
	}
	return ND_FMT_UNKNOWN;
}

static int sniff_ftyp(const uint8_t *p, size_t len, nd_image_format want)
{
	if (len < 12) /* "ftyp" at 4 is all a short file can show */
		return len > 4 && !memcmp(p + 4, "ftyp", len - 4 < 4 ? len - 4 : 4) ? ND__SNIFF_SHORT
										 : ND__SNIFF_NO;
	return ftyp_format(p, len) == want ? ND__SNIFF_YES : ND__SNIFF_NO;
}

static int sniff_heif(const uint8_t *p, size_t len)
{
	return sniff_ftyp(p, len, ND_FMT_HEIF);
}

static int sniff_avif(const uint8_t *p, size_t len)
{
	int r = sniff_ftyp(p, len, ND_FMT_AVIF);
	return r == ND__SNIFF_SHORT ? ND__SNIFF_NO : r; /* one of the two reports a short file */
}

static int decode_heic(nd_src *src, const nd_image_opts *opts, nd_image *out,
		       nd_image_info *info, nd_error *err)
{
	return decode_heif_common(src, opts, out, info, err, "HEIF", heif_compression_HEVC);
}

static int decode_avif(nd_src *src, const nd_image_opts *opts, nd_image *out,
		       nd_image_info *info, nd_error *err)
{
	return decode_heif_common(src, opts, out, info, err, "AVIF", heif_compression_AV1);
}

const nd__image_codec nd__image_codec_heif = {
	ND_FMT_HEIF, "heif", "HEIF", "heic heif hif", sniff_heif, decode_heic,
};

const nd__image_codec nd__image_codec_avif = {
	ND_FMT_AVIF, "avif", "AVIF", "avif", sniff_avif, decode_avif,
};
