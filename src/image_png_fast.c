/* neardup — a fast path for the common PNG: 8-bit grey, grey+alpha, RGB or
 * RGBA, not interlaced, no palette or tRNS, in memory.
 *
 * Why: on ~2 MP photo PNGs libpng spends about half its time in zlib's
 * inflate and a quarter in its scalar Paeth unfilter (perf, see
 * bench/results/cli.md). Here the IDAT stream is inflated in one call with
 * libdeflate (2.2-2.8x zlib's speed on those files) and the rows are
 * unfiltered with SSE2 for 3- and 4-byte pixels.
 *
 * The contract is all-or-nothing: this path returns 0 only when the file is
 * one it fully understands and fully checked (every chunk's CRC, the zlib
 * header, adler32, exactly the expected amount of image data, IEND reached).
 * Anything else -- an unknown or unusual chunk, a CRC error, a short stream,
 * too much data, a bad filter byte, a large image, no memory -- returns 1
 * and the caller decodes the file with libpng, which then gives its own
 * result and its own error messages. So the pixels and every error are those
 * of the libpng path (tests/test_image.c checks the pixels are identical).
 *
 * Memory: the inflated image (h x (1 + w x channels)) plus a copy of the IDAT
 * data when it spans several chunks. Images whose inflated size exceeds
 * FAST_MAX_RAW, or whose total is over the caller's max_memory, go to
 * libpng, which streams rows in bounded memory. */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>

#include <emmintrin.h>
#include <libdeflate.h>

#define FAST_MAX_RAW ((size_t)48 << 20) /* 16 MP RGB */

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Ancillary chunks that libpng reads without storing anything that could
 * hit a limit, and whose content does not change the decoded pixels (we
 * apply no gamma or colour management on either path). */
static int harmless(const uint8_t *t)
{
	return !memcmp(t, "gAMA", 4) || !memcmp(t, "cHRM", 4) || !memcmp(t, "sRGB", 4) ||
	       !memcmp(t, "pHYs", 4) || !memcmp(t, "tIME", 4);
}

static inline int paeth_pred(int a, int b, int c)
{
	int p = b - c, q = a - c;
	int pa = p < 0 ? -p : p, pb = q < 0 ? -q : q, pc = p + q < 0 ? -(p + q) : p + q;
	if (pa <= pb && pa <= pc)
		return a;
	return pb <= pc ? b : c;
}

/* Paeth for BPP = 3 or 4 byte pixels, one pixel per step in 16-bit lanes.
 * The predictor's choice is made with compares on |p|, |q|, |p+q| exactly
 * as paeth_pred (ties prefer a, then b). BPP is a constant at each call, so
 * the loads and stores are single moves; the 3-byte case loads 4 bytes
 * except at the end of the row (the buffer may end there). */
static inline __attribute__((always_inline)) void paeth_sse2(uint8_t *row, const uint8_t *prev,
							     size_t n, const int BPP)
{
	const __m128i zero = _mm_setzero_si128(), mask = _mm_set1_epi16(0xff);
	__m128i a = zero, c = zero;
	for (size_t i = 0; i < n; i += BPP) {
		uint32_t bv = 0, xv = 0;
		if (BPP == 4 || i + 4 <= n) {
			memcpy(&bv, prev + i, 4);
			memcpy(&xv, row + i, 4);
		} else {
			memcpy(&bv, prev + i, 3);
			memcpy(&xv, row + i, 3);
		}
		__m128i b = _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)bv), zero);
		__m128i x = _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)xv), zero);
		__m128i p = _mm_sub_epi16(b, c), q = _mm_sub_epi16(a, c);
		__m128i pq = _mm_add_epi16(p, q);
		__m128i pa = _mm_max_epi16(p, _mm_sub_epi16(zero, p));
		__m128i pb = _mm_max_epi16(q, _mm_sub_epi16(zero, q));
		__m128i pc = _mm_max_epi16(pq, _mm_sub_epi16(zero, pq));
		/* a where pa <= pb && pa <= pc; else b where pb <= pc; else c */
		__m128i not_a = _mm_or_si128(_mm_cmpgt_epi16(pa, pb), _mm_cmpgt_epi16(pa, pc));
		__m128i not_b = _mm_cmpgt_epi16(pb, pc);
		__m128i bc = _mm_or_si128(_mm_and_si128(not_b, c), _mm_andnot_si128(not_b, b));
		__m128i pred = _mm_or_si128(_mm_and_si128(not_a, bc), _mm_andnot_si128(not_a, a));
		__m128i v = _mm_and_si128(_mm_add_epi16(x, pred), mask);
		uint32_t out = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(v, zero));
		memcpy(row + i, &out, BPP);
		a = v;
		c = b;
	}
}

/* Undoes filter type f on row (n bytes) given the previous unfiltered row
 * (NULL for the first). Returns -1 for an unknown filter type. */
static int unfilter(int f, uint8_t *row, const uint8_t *prev, size_t n, int bpp)
{
	size_t i;
	switch (f) {
	case 0:
		return 0;
	case 1:
		for (i = (size_t)bpp; i < n; i++)
			row[i] = (uint8_t)(row[i] + row[i - (size_t)bpp]);
		return 0;
	case 2:
		if (prev)
			for (i = 0; i < n; i++)
				row[i] = (uint8_t)(row[i] + prev[i]);
		return 0;
	case 3:
		for (i = 0; i < (size_t)bpp; i++)
			row[i] = (uint8_t)(row[i] + (prev ? prev[i] >> 1 : 0));
		for (; i < n; i++)
			row[i] = (uint8_t)(row[i] + ((row[i - (size_t)bpp] + (prev ? prev[i] : 0)) >> 1));
		return 0;
	case 4:
		if (!prev) { /* b = c = 0: Paeth picks a, i.e. Sub */
			for (i = (size_t)bpp; i < n; i++)
				row[i] = (uint8_t)(row[i] + row[i - (size_t)bpp]);
			return 0;
		}
		if (bpp == 3) {
			paeth_sse2(row, prev, n, 3);
			return 0;
		}
		if (bpp == 4) {
			paeth_sse2(row, prev, n, 4);
			return 0;
		}
		for (i = 0; i < (size_t)bpp; i++)
			row[i] = (uint8_t)(row[i] + prev[i]);
		for (; i < n; i++)
			row[i] = (uint8_t)(row[i] + paeth_pred(row[i - (size_t)bpp], prev[i],
							       prev[i - (size_t)bpp]));
		return 0;
	}
	return -1;
}

/* One unfiltered row of w pixels with ch channels -> RGB, alpha composited
 * on bg exactly as the libpng path does (image_png.c). */
static void to_rgb(const uint8_t *in, int ch, int w, const uint8_t bg[3], uint8_t *out)
{
	for (int x = 0; x < w; x++, out += 3) {
		const uint8_t *p = in + (size_t)x * ch;
		unsigned r, g, b, a;
		if (ch <= 2)
			r = g = b = p[0];
		else
			r = p[0], g = p[1], b = p[2];
		if (ch == 2 || ch == 4) {
			a = p[ch - 1];
			unsigned na = 255u - a;
			r = (r * a + bg[0] * na + 127) / 255;
			g = (g * a + bg[1] * na + 127) / 255;
			b = (b * a + bg[2] * na + 127) / 255;
		}
		out[0] = (uint8_t)r;
		out[1] = (uint8_t)g;
		out[2] = (uint8_t)b;
	}
}

int nd__image_decode_png_fast(nd_src *src, const nd_image_opts *opts, nd_image *out,
			      nd_image_info *info)
{
	const uint8_t *d = src->data;
	size_t len = src->len, pos = 8, zn = 0, nidat = 0, first_idat = 0, raw_size, stride;
	uint32_t w, h;
	int ch, rc = 1, seen_idat = 0, idat_done = 0, sink_live = 0;
	uint8_t *z = NULL, *raw = NULL, *rgb = NULL;
	struct libdeflate_decompressor *dec = NULL;
	nd_sink sink;
	nd_error err;

	if (src->fp || !d || len < 8 + 25 + 12)
		return 1;
	if (be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4))
		return 1;
	w = be32(d + 16);
	h = be32(d + 20);
	if (d[24] != 8 || d[26] != 0 || d[27] != 0 || d[28] != 0)
		return 1; /* depth, compression, filter method, interlace */
	switch (d[25]) {
	case 0: ch = 1; break;
	case 4: ch = 2; break;
	case 2: ch = 3; break;
	case 6: ch = 4; break;
	default: return 1;
	}
	if (nd__image_check_limits(w, h, opts, "PNG", &err))
		return 1;
	stride = 1 + (size_t)w * (size_t)ch;
	if (nd_mul_size(stride, h, &raw_size) || raw_size > FAST_MAX_RAW)
		return 1;

	/* the chunk walk: CRCs, allowed chunks, IDAT extent */
	for (;;) {
		if (len - pos < 12)
			return 1;
		uint32_t n = be32(d + pos);
		const uint8_t *t = d + pos + 4;
		if (n > 0x7fffffffu || (size_t)n > len - pos - 12)
			return 1;
#ifndef ND_FUZZING /* let the fuzzer past the CRCs into the rest of this path */
		if (libdeflate_crc32(0, t, (size_t)n + 4) != be32(t + 4 + n))
			return 1;
#endif
		if (!memcmp(t, "IDAT", 4)) {
			if (idat_done)
				return 1;
			if (!seen_idat)
				first_idat = pos;
			seen_idat = 1;
			zn += n;
			nidat++;
		} else {
			if (seen_idat)
				idat_done = 1;
			if (!memcmp(t, "IEND", 4)) {
				if (n != 0 || !seen_idat)
					return 1;
				break;
			}
			if (pos != 8 && !harmless(t))
				return 1;
		}
		pos += 12 + (size_t)n;
	}
	if (zn < 2)
		return 1;
	/* over the caller's memory budget: libpng streams rows instead */
	uint64_t need = (uint64_t)raw_size + (nidat > 1 ? zn : 0) + (uint64_t)w * 3 +
			nd__image_out_bytes(w, h, nd__image_pick_scale(w, h, 1, opts)) +
			(uint64_t)w * 15 + 65536;
	if (need > opts->max_memory)
		return 1;

	/* the zlib stream, contiguous */
	if (nidat == 1) {
		z = (uint8_t *)d + first_idat + 8;
	} else {
		if (!(z = malloc(zn)))
			goto done;
		size_t k = 0;
		for (pos = first_idat; !memcmp(d + pos + 4, "IDAT", 4); pos += 12 + be32(d + pos)) {
			memcpy(z + k, d + pos + 8, be32(d + pos));
			k += be32(d + pos);
		}
	}
	/* deflate with a window of at most 32 KiB. libdeflate always allows
	 * 32 KiB back-references whatever the header declares; the libpng
	 * path is set to do the same (PNG_MAXIMUM_INFLATE_WINDOW), so both
	 * accept the same streams */
	if ((z[0] & 0x0f) != 8 || (z[0] >> 4) > 7)
		goto done;
	raw = malloc(raw_size);
	dec = libdeflate_alloc_decompressor();
	if (!raw || !dec)
		goto done;
	size_t in_used = 0, out_got = 0;
	if (libdeflate_zlib_decompress_ex(dec, z, zn, raw, raw_size, &in_used, &out_got) !=
		    LIBDEFLATE_SUCCESS ||
	    in_used != zn || out_got != raw_size)
		goto done;

	/* unfilter every row first (a bad filter byte must give libpng's
	 * error, not a partial image), then convert */
	for (uint32_t y = 0; y < h; y++) {
		uint8_t *row = raw + (size_t)y * stride;
		if (unfilter(row[0], row + 1, y ? row + 1 - stride : NULL, stride - 1, ch))
			goto done;
	}
	info->width = (int)w;
	info->height = (int)h;
	info->orientation = 1;
	info->scale_denom = nd__image_pick_scale(w, h, 1, opts);
	info->mem_bytes = (size_t)need;
	if (nd__image_sink_init(&sink, (int)w, (int)h, info->scale_denom, 1, out, &err))
		goto done;
	sink_live = 1;
	if (ch != 3 && !(rgb = malloc((size_t)w * 3)))
		goto done;
	for (uint32_t y = 0; y < h; y++) {
		const uint8_t *row = raw + (size_t)y * stride + 1;
		if (ch == 3) {
			nd__image_sink_put(&sink, row);
		} else {
			to_rgb(row, ch, (int)w, opts->background, rgb);
			nd__image_sink_put(&sink, rgb);
		}
	}
	rc = 0;
done:
	if (sink_live)
		nd__image_sink_release(&sink);
	if (rc && sink_live)
		nd_image_free(out);
	if (nidat != 1)
		free(z);
	free(raw);
	free(rgb);
	libdeflate_free_decompressor(dec);
	return rc;
}
