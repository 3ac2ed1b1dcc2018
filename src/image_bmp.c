/* neardup — BMP decoding: a small validating parser of our own.
 *
 * Reads the BITMAPCOREHEADER (OS/2 1.x) and the BITMAPINFOHEADER family
 * (Windows 3 to V5, OS/2 2.x's 64-byte header), bottom-up and top-down rows,
 * 1/4/8-bit palettes, 16-bit (5-5-5 or bit fields), 24-bit and 32-bit (BGRX
 * or bit fields; an alpha channel is ignored, as Windows shows such files).
 * RLE and embedded JPEG/PNG compression are refused as unsupported. Every
 * field is checked before use: the palette lies inside the header area, the
 * pixel array lies inside the file (else "truncated"), and row sizes are
 * computed in 64 bits against the limits. Rows are read one at a time, by
 * offset, so memory is one file row plus the output (and the sink's rows). */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint32_t le16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int src_size(nd_src *s, uint64_t *size)
{
	struct stat st;
	if (!s->fp) {
		*size = s->len;
		return 0;
	}
	if (fstat(fileno(s->fp), &st) != 0 || st.st_size < 0)
		return -1;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* n bytes at off, all of them, or -1 */
static int read_at(nd_src *s, uint64_t off, void *buf, size_t n)
{
	if (!s->fp) {
		if (off > s->len || n > s->len - off)
			return -1;
		memcpy(buf, s->data + off, n);
		return 0;
	}
	if (off > (uint64_t)INT64_MAX || fseeko(s->fp, (off_t)off, SEEK_SET) != 0)
		return -1;
	return fread(buf, 1, n, s->fp) == n ? 0 : -1;
}

struct field {
	uint32_t mask;
	int shift, bits;
};

/* a bit-field mask: contiguous, at most 16 bits wide */
static int field_init(struct field *f, uint32_t mask)
{
	f->mask = mask;
	f->shift = f->bits = 0;
	if (!mask)
		return -1;
	while (!(mask & 1)) {
		mask >>= 1;
		f->shift++;
	}
	while (mask & 1) {
		mask >>= 1;
		f->bits++;
	}
	return mask || f->bits > 16 ? -1 : 0;
}

static uint8_t field_get(const struct field *f, uint32_t px)
{
	uint32_t v = (px & f->mask) >> f->shift, max = (1u << f->bits) - 1;
	return (uint8_t)((v * 255 + max / 2) / max);
}

static int decode_bmp(nd_src *src, const nd_image_opts *opts, nd_image *out,
		      nd_image_info *info, nd_error *err)
{
	uint8_t h[14 + 124 + 12], pal[256][3];
	uint8_t *raw = NULL, *rgb = NULL;
	uint64_t fsize;
	int rc = 0, sink_live = 0;
	nd_sink sink;

	if (src_size(src, &fsize) != 0)
		return nd_error_set(err, ND_EIO, "cannot stat the BMP file");
	if (read_at(src, 0, h, 18) != 0)
		return nd_error_set(err, ND_ECORRUPT, "truncated BMP data");
	uint32_t dib = le32(h + 14), offset = le32(h + 10);
	uint32_t w, ht, bpp, comp = 0, ncolors = 0, entry;
	int top_down = 0;
	if (dib == 12) {
		if (read_at(src, 14, h + 14, 12) != 0)
			return nd_error_set(err, ND_ECORRUPT, "truncated BMP data");
		w = le16(h + 18);
		ht = le16(h + 20);
		if (le16(h + 22) != 1)
			return nd_error_set(err, ND_ECORRUPT, "corrupt BMP data: %u planes", le16(h + 22));
		bpp = le16(h + 24);
		entry = 3;
	} else if (dib == 40 || dib == 52 || dib == 56 || dib == 64 || dib == 108 || dib == 124) {
		if (read_at(src, 14, h + 14, dib) != 0)
			return nd_error_set(err, ND_ECORRUPT, "truncated BMP data");
		int32_t sw = (int32_t)le32(h + 18), sh = (int32_t)le32(h + 22);
		if (sw <= 0 || sh == 0 || sh == INT32_MIN)
			return nd_error_set(err, ND_ECORRUPT, "corrupt BMP data: size %dx%d", sw, sh);
		w = (uint32_t)sw;
		top_down = sh < 0;
		ht = (uint32_t)(sh < 0 ? -sh : sh);
		if (le16(h + 26) != 1)
			return nd_error_set(err, ND_ECORRUPT, "corrupt BMP data: %u planes", le16(h + 26));
		bpp = le16(h + 28);
		comp = le32(h + 30);
		ncolors = le32(h + 46);
		entry = 4;
	} else {
		return nd_error_set(err, ND_EUNSUPPORTED, "unsupported BMP header (%u bytes)", dib);
	}
	info->width = (int)w;
	info->height = (int)ht;
	if ((rc = nd__image_check_limits(w, ht, opts, "BMP", err)))
		return rc;

	/* bit fields: after a 40-byte header, or inside a longer one */
	struct field fr, fg, fb;
	uint32_t pal_at = 14 + dib;
	if (comp == 3 || comp == 6) {
		if (bpp != 16 && bpp != 32)
			return nd_error_set(err, ND_ECORRUPT, "corrupt BMP data: bit fields at %u bits", bpp);
		if (dib == 40) {
			if (read_at(src, 54, h + 54, 12) != 0)
				return nd_error_set(err, ND_ECORRUPT, "truncated BMP data");
			pal_at += 12;
		}
		if (field_init(&fr, le32(h + 54)) || field_init(&fg, le32(h + 58)) ||
		    field_init(&fb, le32(h + 62)))
			return nd_error_set(err, ND_ECORRUPT, "corrupt BMP data: bad colour masks");
	} else if (comp == 0) {
		if (bpp == 16) { /* x1r5g5b5 */
			field_init(&fr, 0x7c00);
			field_init(&fg, 0x03e0);
			field_init(&fb, 0x001f);
		} else if (bpp == 32) {
			field_init(&fr, 0xff0000);
			field_init(&fg, 0xff00);
			field_init(&fb, 0xff);
		} else if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 24) {
			return nd_error_set(err, ND_ECORRUPT, "corrupt BMP data: %u bits per pixel", bpp);
		}
	} else if (comp == 1 || comp == 2) {
		return nd_error_set(err, ND_EUNSUPPORTED, "RLE-compressed BMP not supported");
	} else {
		return nd_error_set(err, ND_EUNSUPPORTED, "unsupported BMP compression %u", comp);
	}

	if (bpp <= 8) {
		uint32_t max = 1u << bpp;
		if (ncolors == 0 || ncolors > max)
			ncolors = max;
		/* the palette lies between the header and the pixels */
		if (offset < pal_at || (offset - pal_at) / entry < ncolors)
			ncolors = offset >= pal_at ? (offset - pal_at) / entry : 0;
		if (ncolors == 0)
			return nd_error_set(err, ND_ECORRUPT, "corrupt BMP data: no palette");
		memset(pal, 0, sizeof(pal));
		for (uint32_t i = 0; i < ncolors; i++) {
			uint8_t e[4];
			if (read_at(src, pal_at + (uint64_t)i * entry, e, entry) != 0)
				return nd_error_set(err, ND_ECORRUPT, "truncated BMP data");
			pal[i][0] = e[2];
			pal[i][1] = e[1];
			pal[i][2] = e[0];
		}
	}
	uint64_t stride = ((uint64_t)w * bpp + 31) / 32 * 4;
	if (offset < 14 + dib || offset > fsize || stride * ht > fsize - offset)
		return nd_error_set(err, ND_ECORRUPT, "truncated BMP data");

	int f = nd__image_pick_scale(w, ht, 1, opts);
	info->scale_denom = f;
	uint64_t need = nd__image_out_bytes(w, ht, f) + stride + (uint64_t)w * 3 +
			(uint64_t)w / (uint64_t)f * 15 + 65536;
	info->mem_bytes = (size_t)need;
	if (need > opts->max_memory) {
		char what[64];
		snprintf(what, sizeof(what), "BMP %ux%u", w, ht);
		return nd__image_check_memory(need, opts, what, err);
	}
	raw = malloc((size_t)stride);
	rgb = malloc((size_t)w * 3);
	if (!raw || !rgb) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = nd__image_sink_init(&sink, (int)w, (int)ht, f, 1, out, err)))
		goto done;
	sink_live = 1;
	for (uint32_t y = 0; y < ht; y++) {
		uint32_t sy = top_down ? y : ht - 1 - y;
		if (read_at(src, offset + (uint64_t)sy * stride, raw, (size_t)stride) != 0) {
			rc = nd_error_set(err, ND_ECORRUPT, "truncated BMP data");
			goto done;
		}
		for (uint32_t x = 0; x < w; x++) {
			uint8_t *o = rgb + (size_t)x * 3;
			if (bpp <= 8) {
				uint32_t bit = x * bpp, i = (raw[bit / 8] >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1);
				memcpy(o, i < ncolors ? pal[i] : (const uint8_t[3]){ 0, 0, 0 }, 3);
			} else if (bpp == 24) {
				o[0] = raw[x * 3 + 2];
				o[1] = raw[x * 3 + 1];
				o[2] = raw[x * 3];
			} else {
				uint32_t px = bpp == 16 ? le16(raw + x * 2) : le32(raw + (size_t)x * 4);
				o[0] = field_get(&fr, px);
				o[1] = field_get(&fg, px);
				o[2] = field_get(&fb, px);
			}
		}
		nd__image_sink_put(&sink, rgb);
	}
done:
	if (sink_live)
		nd__image_sink_release(&sink);
	free(raw);
	free(rgb);
	return rc;
}

static int sniff_bmp(const uint8_t *p, size_t len)
{
	/* "BM" and a known header size: two letters alone are too common */
	if (len < 18) {
		if (memcmp(p, "BM", len < 2 ? len : 2) != 0)
			return ND__SNIFF_NO;
		return len <= 14 || p[14] == 12 || p[14] == 40 || p[14] == 52 || p[14] == 56 ||
				       p[14] == 64 || p[14] == 108 || p[14] == 124
			       ? ND__SNIFF_SHORT
			       : ND__SNIFF_NO;
	}
	if (memcmp(p, "BM", 2) != 0)
		return ND__SNIFF_NO;
	uint32_t dib = le32(p + 14);
	return dib == 12 || dib == 40 || dib == 52 || dib == 56 || dib == 64 || dib == 108 || dib == 124
		       ? ND__SNIFF_YES
		       : ND__SNIFF_NO;
}

const nd__image_codec nd__image_codec_bmp = {
	ND_FMT_BMP, "bmp", "BMP", "bmp dib", sniff_bmp, decode_bmp,
};
