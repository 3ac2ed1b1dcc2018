/* neardup — GIF decoding through giflib: the first image of the file.
 *
 * Records are read one at a time (never DGifSlurp, which would hold every
 * frame of an animation); reading stops after the first image. The image is
 * placed on the logical screen at its offset; the rest of the screen and
 * the transparent colour (from the graphics control extension before it)
 * are opts->background, as transparent PNG pixels are. Indices beyond the
 * colour map are black. Rows go to the sink, which box-reduces them.
 *
 * Memory bound: the output and the sink's rows, one screen row, one image
 * row, and for an interlaced image its whole index plane (one byte a
 * pixel), since interlaced rows come in four passes. */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>

#include <gif_lib.h>

static int gif_read(GifFileType *g, GifByteType *buf, int n)
{
	nd_src *s = g->UserData;
	if (n <= 0)
		return 0;
	if (s->fp)
		return (int)fread(buf, 1, (size_t)n, s->fp);
	size_t k = s->len - s->pos < (size_t)n ? s->len - s->pos : (size_t)n;
	memcpy(buf, s->data + s->pos, k);
	s->pos += k;
	return (int)k;
}

static int gif_error(int code, nd_error *err)
{
	switch (code) {
	case D_GIF_ERR_READ_FAILED:
	case D_GIF_ERR_EOF_TOO_SOON:
		return nd_error_set(err, ND_ECORRUPT, "truncated GIF data");
	case D_GIF_ERR_NOT_ENOUGH_MEM:
		return nd_error_set(err, ND_ENOMEM, "out of memory decoding GIF");
	default: {
		const char *m = GifErrorString(code);
		return nd_error_set(err, ND_ECORRUPT, "corrupt GIF data: %s", m ? m : "unknown error");
	}
	}
}

static int decode_gif(nd_src *src, const nd_image_opts *opts, nd_image *out,
		      nd_image_info *info, nd_error *err)
{
	int gerr = 0, rc = 0, sink_live = 0, transparent = -1, rows_read = 0;
	uint8_t *plane = NULL, *line = NULL, *row = NULL;
	nd_sink sink;
	GifFileType *g = DGifOpen(src, gif_read, &gerr);
	if (!g)
		return gif_error(gerr, err);
	uint32_t sw = (uint32_t)(g->SWidth > 0 ? g->SWidth : 0);
	uint32_t sh = (uint32_t)(g->SHeight > 0 ? g->SHeight : 0);
	info->width = (int)sw;
	info->height = (int)sh;
	if ((rc = nd__image_check_limits(sw, sh, opts, "GIF", err)))
		goto done;

	for (;;) {
		GifRecordType type;
		if (DGifGetRecordType(g, &type) == GIF_ERROR) {
			rc = gif_error(g->Error, err);
			goto done;
		}
		if (type == TERMINATE_RECORD_TYPE) {
			rc = nd_error_set(err, ND_ECORRUPT, "corrupt GIF data: no image");
			goto done;
		}
		if (type == EXTENSION_RECORD_TYPE) {
			int code;
			GifByteType *ext;
			if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) {
				rc = gif_error(g->Error, err);
				goto done;
			}
			if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4)
				transparent = (ext[1] & 1) ? ext[4] : -1;
			while (ext) {
				if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) {
					rc = gif_error(g->Error, err);
					goto done;
				}
			}
			continue;
		}
		if (type == IMAGE_DESC_RECORD_TYPE)
			break;
	}
	if (DGifGetImageDesc(g) == GIF_ERROR) {
		rc = gif_error(g->Error, err);
		goto done;
	}
	const GifImageDesc *d = &g->Image;
	const ColorMapObject *cm = d->ColorMap ? d->ColorMap : g->SColorMap;
	if (!cm || !cm->Colors || cm->ColorCount <= 0) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt GIF data: no colour map");
		goto done;
	}
	if (d->Width <= 0 || d->Height <= 0 || d->Left < 0 || d->Top < 0) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt GIF data: bad image size %dx%d", d->Width,
				  d->Height);
		goto done;
	}
	if ((rc = nd__image_check_limits((uint64_t)d->Width, (uint64_t)d->Height, opts, "GIF", err)))
		goto done;
	int f = nd__image_pick_scale(sw, sh, 1, opts);
	info->scale_denom = f;
	uint64_t need = nd__image_out_bytes(sw, sh, f) + (uint64_t)sw * 3 + (uint64_t)sw / (uint64_t)f * 15 +
			(uint64_t)d->Width + 65536 +
			(d->Interlace ? (uint64_t)d->Width * (uint64_t)d->Height : 0);
	info->mem_bytes = (size_t)need;
	if (need > opts->max_memory) {
		char what[64];
		snprintf(what, sizeof(what), "%sGIF %ux%u", d->Interlace ? "interlaced " : "", sw, sh);
		rc = nd__image_check_memory(need, opts, what, err);
		goto done;
	}
	if ((rc = nd__image_sink_init(&sink, (int)sw, (int)sh, f, 1, out, err)))
		goto done;
	sink_live = 1;
	row = malloc((size_t)sw * 3);
	line = malloc((size_t)d->Width);
	if (d->Interlace)
		plane = malloc((size_t)d->Width * (size_t)d->Height);
	if (!row || !line || (d->Interlace && !plane)) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if (d->Interlace) {
		static const int start[4] = { 0, 4, 2, 1 }, step[4] = { 8, 8, 4, 2 };
		for (int p = 0; p < 4; p++)
			for (int y = start[p]; y < d->Height; y += step[p])
				if (DGifGetLine(g, plane + (size_t)y * (size_t)d->Width, d->Width) == GIF_ERROR) {
					rc = gif_error(g->Error, err);
					goto done;
				}
	}
	/* the screen, top to bottom; the image's rows are read as they come */
	for (uint32_t y = 0; y < sh; y++) {
		for (uint32_t x = 0; x < sw; x++)
			memcpy(row + (size_t)x * 3, opts->background, 3);
		if (y >= (uint32_t)d->Top && y - (uint32_t)d->Top < (uint32_t)d->Height) {
			const uint8_t *idx;
			size_t iy = y - (uint32_t)d->Top;
			if (d->Interlace) {
				idx = plane + iy * (size_t)d->Width;
			} else {
				if (DGifGetLine(g, line, d->Width) == GIF_ERROR) {
					rc = gif_error(g->Error, err);
					goto done;
				}
				rows_read++;
				idx = line;
			}
			for (int x = 0; x < d->Width && (uint32_t)d->Left + (uint32_t)x < sw; x++) {
				uint8_t *o = row + ((size_t)d->Left + (size_t)x) * 3;
				int i = idx[x];
				if (i == transparent)
					continue;
				if (i < cm->ColorCount) {
					o[0] = cm->Colors[i].Red;
					o[1] = cm->Colors[i].Green;
					o[2] = cm->Colors[i].Blue;
				} else {
					o[0] = o[1] = o[2] = 0;
				}
			}
		}
		nd__image_sink_put(&sink, row);
	}
	/* image rows below the screen are still read: a file cut inside the
	 * image is truncated wherever the cut is */
	if (!d->Interlace)
		for (; rows_read < d->Height; rows_read++)
			if (DGifGetLine(g, line, d->Width) == GIF_ERROR) {
				rc = gif_error(g->Error, err);
				goto done;
			}
done:
	if (sink_live)
		nd__image_sink_release(&sink);
	free(plane);
	free(line);
	free(row);
	DGifCloseFile(g, &gerr);
	return rc;
}

static int sniff_gif(const uint8_t *p, size_t len)
{
	if (len < 6) {
		static const char sig[6] = { 'G', 'I', 'F', '8', '7', 'a' };
		if (len <= 4)
			return !memcmp(p, sig, len) ? ND__SNIFF_SHORT : ND__SNIFF_NO;
		return !memcmp(p, sig, 4) && (p[4] == '7' || p[4] == '9') ? ND__SNIFF_SHORT
									   : ND__SNIFF_NO;
	}
	return !memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6) ? ND__SNIFF_YES : ND__SNIFF_NO;
}

const nd__image_codec nd__image_codec_gif = {
	ND_FMT_GIF, "gif", "GIF", "gif", sniff_gif, decode_gif,
};
