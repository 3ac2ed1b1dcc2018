/* neardup — JPEG decoding through libjpeg-turbo.
 *
 * Everything is per call: the error manager lives in the call's frame and
 * leaves through longjmp, so there is no global state. Every libjpeg warning
 * that can change pixels ("premature end of JPEG file", "corrupt JPEG data:
 * bad Huffman code", ...) is an error: libjpeg would otherwise pad the image
 * with grey and we would embed garbage. A progress monitor caps the number of
 * progressive scans (libjpeg-turbo's own advice against scan bombs, as in
 * djpeg -maxscans). CMYK and YCCK come out of libjpeg as CMYK and are turned
 * into RGB here, with Adobe's inverted convention when the Adobe marker is
 * present. */
#include "image_impl.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

struct jpeg_ctx {
	struct jpeg_error_mgr pub;  /* first: libjpeg casts cinfo->err to this */
	struct jpeg_progress_mgr progress;
	jmp_buf jb;
	int code;                   /* ND_E* for the failure */
	char msg[JMSG_LENGTH_MAX];
	int max_scans;
	/* Released on every exit path, so kept here rather than in locals that
	 * longjmp could leave indeterminate. */
	uint8_t *tmp;               /* one decoded row when not written directly */
	uint8_t *rgb_row;           /* CMYK -> RGB conversion row */
	nd_sink sink;
	int sink_live;
	uint8_t *exif;              /* the first "Exif\0\0" APP1 payload */
	size_t exif_len;
};

static void jpeg_fail(j_common_ptr cinfo, int code)
{
	struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
	char buf[JMSG_LENGTH_MAX];
	c->code = code;
	switch (cinfo->err->msg_code) {
	case JWRN_JPEG_EOF:
	case JERR_INPUT_EOF:
	case JERR_INPUT_EMPTY:
		snprintf(c->msg, sizeof(c->msg), "truncated JPEG data");
		break;
	case JERR_NO_BACKING_STORE: /* max_memory_to_use was reached */
		snprintf(c->msg, sizeof(c->msg), "JPEG needs more than the memory limit to decode");
		break;
	default:
		cinfo->err->format_message(cinfo, buf);
		/* libjpeg's messages start with a capital ("Corrupt JPEG data:
		 * ..."); ours are lowercase sentence fragments. */
		if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
			buf[0] = (char)(buf[0] - 'A' + 'a');
		if (strncmp(buf, "corrupt JPEG", 12) == 0 || code != ND_ECORRUPT)
			snprintf(c->msg, sizeof(c->msg), "%s", buf);
		else
			snprintf(c->msg, sizeof(c->msg), "corrupt JPEG data: %s", buf);
	}
	longjmp(c->jb, 1);
}

static void on_error_exit(j_common_ptr cinfo)
{
	int code = ND_ECORRUPT;
	switch (cinfo->err->msg_code) {
	case JERR_OUT_OF_MEMORY:
		code = ND_ENOMEM;
		break;
	case JERR_NO_BACKING_STORE:
	case JERR_IMAGE_TOO_BIG:
	case JERR_WIDTH_OVERFLOW:
		code = ND_ELIMIT;
		break;
	case JERR_BAD_PRECISION:      /* 12-bit JPEG */
	case JERR_SOF_UNSUPPORTED:    /* lossless, hierarchical */
	case JERR_ARITH_NOTIMPL:
	case JERR_CONVERSION_NOTIMPL:
	case JERR_NOT_COMPILED:
		code = ND_EUNSUPPORTED;
		break;
	}
	jpeg_fail(cinfo, code);
}

static void on_emit_message(j_common_ptr cinfo, int level)
{
	if (level >= 0)
		return; /* trace messages */
	switch (cinfo->err->msg_code) {
	case JWRN_JFIF_MAJOR: /* metadata only */
		return;
	case JWRN_EXTRANEOUS_DATA:
		/* Junk bytes before the EOI marker: every scan is complete,
		 * the pixels are not affected (common in camera files). */
		if (cinfo->err->msg_parm.i[1] == JPEG_EOI)
			return;
		break;
	}
	jpeg_fail(cinfo, ND_ECORRUPT);
}

static void on_progress(j_common_ptr cinfo)
{
	struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
	j_decompress_ptr d = (j_decompress_ptr)cinfo;
	if (d->input_scan_number > c->max_scans) {
		c->code = ND_ELIMIT;
		snprintf(c->msg, sizeof(c->msg),
			 "progressive JPEG has more than %d scans", c->max_scans);
		longjmp(c->jb, 1);
	}
}

/* APP1 marker processor. libjpeg's jpeg_save_markers would keep every APP1
 * (up to 64 KiB each, any number of them: memory proportional to the file),
 * so instead the first EXIF block is kept and every other APP1 skipped.
 * Our sources never suspend (at EOF they insert an EOI and warn, which is an
 * error here), so fill_input_buffer always returns TRUE. */
static int next_byte(j_decompress_ptr cinfo)
{
	struct jpeg_source_mgr *src = cinfo->src;
	if (src->bytes_in_buffer == 0)
		src->fill_input_buffer(cinfo);
	src->bytes_in_buffer--;
	return *src->next_input_byte++;
}

static boolean read_app1(j_decompress_ptr cinfo)
{
	struct jpeg_ctx *c = (struct jpeg_ctx *)cinfo->err;
	struct jpeg_source_mgr *src = cinfo->src;
	long len = (long)next_byte(cinfo) << 8;
	len += next_byte(cinfo);
	len -= 2;
	if (len <= 0)
		return TRUE;
	if (c->exif || len < 6) {
		src->skip_input_data(cinfo, len);
		return TRUE;
	}
	c->exif = malloc((size_t)len);
	if (!c->exif) {
		src->skip_input_data(cinfo, len);
		return TRUE;
	}
	for (long i = 0; i < len; i++)
		c->exif[i] = (uint8_t)next_byte(cinfo);
	if (memcmp(c->exif, "Exif\0\0", 6) != 0) { /* e.g. XMP: not ours */
		free(c->exif);
		c->exif = NULL;
		return TRUE;
	}
	c->exif_len = (size_t)len;
	return TRUE;
}

/* Adobe-inverted CMYK (as Photoshop writes it, with the Adobe marker) stores
 * 255-C etc., so R = c*k/255 on the stored values; plain CMYK is inverted
 * first. Rounded to nearest. */
static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, int w, int inverted)
{
	for (int x = 0; x < w; x++, in += 4, out += 3) {
		unsigned k = inverted ? in[3] : 255u - in[3];
		for (int ch = 0; ch < 3; ch++) {
			unsigned v = inverted ? in[ch] : 255u - in[ch];
			unsigned t = v * k + 128;
			out[ch] = (uint8_t)((t + (t >> 8)) >> 8);
		}
	}
}

/* The memory bound of this decode, from the header (after
 * jpeg_calc_output_dimensions): the output image, our rows, libjpeg's row
 * buffers (a generous per-output-row estimate) and, for a progressive or
 * multi-scan file, the whole-image coefficient arrays libjpeg must keep
 * (one 128-byte block per 8x8 block of every component, at full size
 * whatever the scale: the reason such files are the memory bombs). A file
 * over opts->max_memory is refused here, before libjpeg allocates; libjpeg's
 * own max_memory_to_use backs this up. */
static int check_memory(j_decompress_ptr cinfo, const nd_image_opts *opts, nd_image_info *info,
			nd_error *err)
{
	uint64_t out = nd__image_out_bytes(cinfo->output_width, cinfo->output_height, 1);
	uint64_t rows = (uint64_t)cinfo->output_width * (uint64_t)cinfo->num_components *
				(uint64_t)cinfo->max_v_samp_factor *
				(uint64_t)cinfo->min_DCT_scaled_size * 4 +
			(uint64_t)cinfo->output_width * 7 + 65536;
	uint64_t coef = 0;
	int multi = cinfo->progressive_mode || cinfo->comps_in_scan < cinfo->num_components;
	if (multi) {
		for (int ci = 0; ci < cinfo->num_components; ci++) {
			const jpeg_component_info *c = &cinfo->comp_info[ci];
			uint64_t bw = ((uint64_t)c->width_in_blocks + (uint64_t)c->h_samp_factor - 1) /
				      (uint64_t)c->h_samp_factor * (uint64_t)c->h_samp_factor;
			uint64_t bh = ((uint64_t)c->height_in_blocks + (uint64_t)c->v_samp_factor - 1) /
				      (uint64_t)c->v_samp_factor * (uint64_t)c->v_samp_factor;
			coef += bw * bh * sizeof(JBLOCK);
		}
	}
	info->mem_bytes = (size_t)(out + rows + coef);
	if (out + rows + coef > opts->max_memory) {
		char what[96];
		snprintf(what, sizeof(what), "%s JPEG %ux%u",
			 cinfo->progressive_mode ? "progressive" : multi ? "multi-scan" : "",
			 cinfo->image_width, cinfo->image_height);
		return nd__image_check_memory(out + rows + coef, opts, what[0] == ' ' ? what + 1 : what,
					      err);
	}
	/* libjpeg's share of the budget, checked when it sets up its arrays */
	cinfo->mem->max_memory_to_use = (long)(opts->max_memory - out);
	return 0;
}

static int decode_jpeg(nd_src *src, const nd_image_opts *opts, nd_image *out,
		       nd_image_info *info, nd_error *err)
{
	struct jpeg_decompress_struct cinfo;
	struct jpeg_ctx ctx;
	int rc = 0, cmyk, scale;
	size_t rowbytes;

	memset(&ctx, 0, sizeof(ctx));
	cinfo.err = jpeg_std_error(&ctx.pub);
	ctx.pub.error_exit = on_error_exit;
	ctx.pub.emit_message = on_emit_message;
	ctx.max_scans = opts->max_scans > 0 ? opts->max_scans : 1;
	ctx.progress.progress_monitor = on_progress;
	if (setjmp(ctx.jb)) {
		rc = nd_error_set(err, ctx.code ? ctx.code : ND_ECORRUPT, "%s", ctx.msg);
		goto done;
	}
	jpeg_create_decompress(&cinfo);
	cinfo.progress = &ctx.progress;
	if (src->fp) {
		jpeg_stdio_src(&cinfo, src->fp);
	} else {
		_Static_assert(sizeof(unsigned long) >= sizeof(size_t), "jpeg_mem_src length");
		jpeg_mem_src(&cinfo, src->data, (unsigned long)src->len);
	}
	jpeg_set_marker_processor(&cinfo, JPEG_APP0 + 1, read_app1);
	jpeg_read_header(&cinfo, TRUE);

	info->width = (int)cinfo.image_width;
	info->height = (int)cinfo.image_height;
	if ((rc = nd__image_check_limits(cinfo.image_width, cinfo.image_height, opts, "JPEG", err)))
		goto done;

	if (ctx.exif)
		info->orientation = nd__image_exif_orientation(ctx.exif, ctx.exif_len);

	cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
	cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
	cinfo.dct_method = JDCT_ISLOW;
	scale = nd__image_pick_scale(cinfo.image_width, cinfo.image_height, info->orientation, opts);
	cinfo.scale_num = 1;
	cinfo.scale_denom = (unsigned)scale;
	info->scale_denom = scale;
	jpeg_calc_output_dimensions(&cinfo);
	if (cinfo.output_components != (cmyk ? 4 : 3)) {
		rc = nd_error_set(err, ND_EUNSUPPORTED, "JPEG colour conversion not supported");
		goto done;
	}
	if ((rc = check_memory(&cinfo, opts, info, err)))
		goto done;
	if ((rc = nd__image_sink_init(&ctx.sink, (int)cinfo.output_width, (int)cinfo.output_height, 1,
				      info->orientation, out, err)))
		goto done;
	ctx.sink_live = 1;
	rowbytes = (size_t)cinfo.output_width * (size_t)cinfo.output_components;
	ctx.tmp = malloc(rowbytes);
	if (cmyk)
		ctx.rgb_row = malloc((size_t)cinfo.output_width * 3);
	if (!ctx.tmp || (cmyk && !ctx.rgb_row)) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}

	jpeg_start_decompress(&cinfo);
	while (cinfo.output_scanline < cinfo.output_height) {
		uint8_t *direct = cmyk ? NULL : nd__image_sink_direct(&ctx.sink, (int)cinfo.output_scanline);
		JSAMPROW row = direct ? direct : ctx.tmp;
		if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
			/* Suspension cannot happen with our sources; treat as truncation. */
			rc = nd_error_set(err, ND_ECORRUPT, "truncated JPEG data");
			goto done;
		}
		if (direct) {
			nd__image_sink_skip(&ctx.sink);
		} else if (cmyk) {
			cmyk_to_rgb(ctx.tmp, ctx.rgb_row, (int)cinfo.output_width,
				    cinfo.saw_Adobe_marker);
			nd__image_sink_put(&ctx.sink, ctx.rgb_row);
		} else {
			nd__image_sink_put(&ctx.sink, ctx.tmp);
		}
	}
	/* Reads up to EOI, so a file cut after the last scan is still an error. */
	jpeg_finish_decompress(&cinfo);

done:
	jpeg_destroy_decompress(&cinfo);
	if (ctx.sink_live)
		nd__image_sink_release(&ctx.sink);
	free(ctx.tmp);
	free(ctx.rgb_row);
	free(ctx.exif);
	if (rc)
		nd_image_free(out);
	return rc;
}

static int sniff_jpeg(const uint8_t *p, size_t len)
{
	static const uint8_t sig[3] = { 0xff, 0xd8, 0xff };
	if (len < sizeof(sig))
		return !memcmp(p, sig, len) ? ND__SNIFF_SHORT : ND__SNIFF_NO;
	return !memcmp(p, sig, sizeof(sig)) ? ND__SNIFF_YES : ND__SNIFF_NO;
}

const nd__image_codec nd__image_codec_jpeg = {
	ND_FMT_JPEG, "jpeg", "JPEG", "jpg jpeg jpe jfif", sniff_jpeg, decode_jpeg,
};
