/* neardup — the leaf below the image module's entry points and codecs:
 * the decode limits, the orientation/reduction row sink, whole-input reads
 * and alpha compositing. It calls no codec, so image.c (which dispatches
 * to the codecs) and every image_<format>.c sit above it. */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void nd_image_free(nd_image *img)
{
	if (!img)
		return;
	free(img->rgb);
	img->rgb = NULL;
	img->width = img->height = 0;
}

int nd__image_check_limits(uint64_t w, uint64_t h, const nd_image_opts *o,
			   const char *fmt, nd_error *err)
{
	if (w == 0 || h == 0)
		return nd_error_set(err, ND_ECORRUPT, "%s image has zero size (%llux%llu)",
				    fmt, (unsigned long long)w, (unsigned long long)h);
	/* w, h < 2^32 each, so the product fits in 64 bits. */
	if (w * h > o->max_pixels) {
		if (o->max_pixels % 1000000 == 0)
			return nd_error_set(err, ND_ELIMIT,
					    "image %llux%llu exceeds the %llu-megapixel limit",
					    (unsigned long long)w, (unsigned long long)h,
					    (unsigned long long)(o->max_pixels / 1000000));
		return nd_error_set(err, ND_ELIMIT, "image %llux%llu exceeds the %llu-pixel limit",
				    (unsigned long long)w, (unsigned long long)h,
				    (unsigned long long)o->max_pixels);
	}
	if (w > o->max_width)
		return nd_error_set(err, ND_ELIMIT, "image width %llu exceeds the limit of %u",
				    (unsigned long long)w, o->max_width);
	if (h > o->max_height)
		return nd_error_set(err, ND_ELIMIT, "image height %llu exceeds the limit of %u",
				    (unsigned long long)h, o->max_height);
	if (w > INT32_MAX / 8 || h > INT32_MAX / 8)
		return nd_error_set(err, ND_ELIMIT, "image %llux%llu is too large",
				    (unsigned long long)w, (unsigned long long)h);
	return 0;
}

size_t nd__image_out_bytes(uint64_t w, uint64_t h, int factor)
{
	/* w, h are within the checked limits (< 2^31 / 8 each). */
	return (size_t)((w + (uint64_t)factor - 1) / (uint64_t)factor) *
	       (size_t)((h + (uint64_t)factor - 1) / (uint64_t)factor) * 3;
}

static unsigned long long mib_up(uint64_t n)
{
	return (unsigned long long)((n + (1u << 20) - 1) >> 20);
}

int nd__image_check_memory(uint64_t need, const nd_image_opts *o, const char *what,
			   nd_error *err)
{
	if (need <= o->max_memory)
		return 0;
	return nd_error_set(err, ND_ELIMIT, "%s needs %llu MiB to decode, over the %llu MiB memory limit",
			    what, mib_up(need), (unsigned long long)(o->max_memory >> 20));
}

int nd__image_pick_scale(uint64_t w, uint64_t h, int orientation, const nd_image_opts *o)
{
	uint64_t need_w = o->min_width > 0 ? (uint64_t)o->min_width : 0;
	uint64_t need_h = o->min_height > 0 ? (uint64_t)o->min_height : 0;
	if (need_w == 0 || need_h == 0)
		return 1;
	if (orientation >= 5) { /* displayed width is the stored height */
		uint64_t t = need_w;
		need_w = need_h;
		need_h = t;
	}
	for (int d = 8; d >= 2; d /= 2)
		if ((w + d - 1) / d >= need_w && (h + d - 1) / d >= need_h)
			return d;
	return 1;
}

/* ---- row sink ---- */

int nd__image_sink_init(nd_sink *s, int sw, int sh, int factor, int orientation,
			nd_image *out, nd_error *err)
{
	size_t n, bytes;
	memset(s, 0, sizeof(*s));
	ND_ASSERT(sw > 0 && sh > 0 && factor >= 1 && orientation >= 1 && orientation <= 8);
	s->sw = sw;
	s->sh = sh;
	s->factor = factor;
	s->rw = (sw + factor - 1) / factor;
	s->rh = (sh + factor - 1) / factor;
	s->orientation = orientation;
	s->img = out;
	if (nd_mul_size((size_t)s->rw, (size_t)s->rh, &n) || nd_mul_size(n, 3, &bytes))
		return nd_error_set(err, ND_EOVERFLOW, "image %dx%d is too large", s->rw, s->rh);
	out->rgb = malloc(bytes);
	if (!out->rgb)
		return nd_error_set(err, ND_ENOMEM, "out of memory for a %dx%d image", s->rw, s->rh);
	if (orientation >= 5) {
		out->width = s->rh;
		out->height = s->rw;
	} else {
		out->width = s->rw;
		out->height = s->rh;
	}
	if (factor > 1) {
		s->acc = calloc((size_t)s->rw * 3, sizeof(uint32_t));
		s->row = malloc((size_t)s->rw * 3);
		if (!s->acc || !s->row) {
			nd__image_sink_release(s);
			nd_image_free(out);
			return nd_error_set(err, ND_ENOMEM, "out of memory");
		}
	}
	return 0;
}

void nd__image_sink_release(nd_sink *s)
{
	free(s->acc);
	free(s->row);
	s->acc = NULL;
	s->row = NULL;
}

uint8_t *nd__image_sink_direct(nd_sink *s, int y)
{
	if (s->factor != 1 || s->orientation != 1)
		return NULL;
	return s->img->rgb + (size_t)y * (size_t)s->rw * 3;
}

void nd__image_sink_skip(nd_sink *s)
{
	s->next_y++;
}

/* Writes reduced row y (rw pixels, stored orientation) into the output. */
static void sink_place(nd_sink *s, int y, const uint8_t *row)
{
	const int W = s->rw, H = s->rh, ow = s->img->width;
	uint8_t *o = s->img->rgb;
	int x;
	switch (s->orientation) {
	case 1:
		memcpy(o + (size_t)y * W * 3, row, (size_t)W * 3);
		return;
	case 3: /* rotate 180 */
		y = H - 1 - y;
		/* fall through */
	case 2: { /* mirror horizontally */
		uint8_t *d = o + (size_t)y * W * 3;
		for (x = 0; x < W; x++)
			memcpy(d + (size_t)(W - 1 - x) * 3, row + (size_t)x * 3, 3);
		return;
	}
	case 4: /* mirror vertically */
		memcpy(o + (size_t)(H - 1 - y) * W * 3, row, (size_t)W * 3);
		return;
	}
	/* 5..8: transposed; output is H wide and W high. Stored (x, y) goes to
	 * displayed (dx, dy). */
	{
		int dx = (s->orientation == 5 || s->orientation == 8) ? y : H - 1 - y;
		int flip = (s->orientation == 7 || s->orientation == 8);
		for (x = 0; x < W; x++) {
			int dy = flip ? W - 1 - x : x;
			memcpy(o + ((size_t)dy * ow + dx) * 3, row + (size_t)x * 3, 3);
		}
	}
}

void nd__image_sink_put_reduced(nd_sink *s, const uint8_t *row)
{
	ND_ASSERT(s->next_y < s->rh);
	sink_place(s, s->next_y++, row);
}

void nd__image_sink_put(nd_sink *s, const uint8_t *rgb)
{
	const int f = s->factor;
	int y = s->next_y++;
	ND_ASSERT(y < s->sh);
	if (f == 1) {
		sink_place(s, y, rgb);
		return;
	}
	/* Accumulate this row into the reduced row's sums. */
	uint32_t *acc = s->acc;
	int x = 0, rx = 0;
	for (; x + f <= s->sw; x += f, rx++) {
		uint32_t r = 0, g = 0, b = 0;
		const uint8_t *p = rgb + (size_t)x * 3;
		for (int k = 0; k < f; k++, p += 3) {
			r += p[0];
			g += p[1];
			b += p[2];
		}
		acc[rx * 3] += r;
		acc[rx * 3 + 1] += g;
		acc[rx * 3 + 2] += b;
	}
	for (; x < s->sw; x++) { /* partial block at the right edge */
		const uint8_t *p = rgb + (size_t)x * 3;
		acc[rx * 3] += p[0];
		acc[rx * 3 + 1] += p[1];
		acc[rx * 3 + 2] += p[2];
	}
	if ((y + 1) % f != 0 && y + 1 != s->sh)
		return;
	/* Block row complete: divide by the pixel count, rounding to nearest. */
	uint32_t rows = (uint32_t)(y % f) + 1;
	for (rx = 0; rx < s->rw; rx++) {
		uint32_t cols = (uint32_t)(s->sw - rx * f < f ? s->sw - rx * f : f);
		uint32_t cnt = rows * cols;
		for (int c = 0; c < 3; c++) {
			s->row[rx * 3 + c] = (uint8_t)((acc[rx * 3 + c] + cnt / 2) / cnt);
			acc[rx * 3 + c] = 0;
		}
	}
	sink_place(s, y / f, s->row);
}


int nd__image_src_whole(nd_src *src, size_t max_bytes, const char *label, const uint8_t **data,
			size_t *len, uint8_t **owned, nd_error *err)
{
	struct stat st;
	*owned = NULL;
	if (!src->fp) {
		*data = src->data;
		*len = src->len;
		return 0;
	}
	if (fstat(fileno(src->fp), &st) != 0 || st.st_size < 0)
		return nd_error_set(err, ND_EIO, "cannot stat the %s file", label);
	if ((uint64_t)st.st_size > max_bytes)
		return nd_error_set(err, ND_ELIMIT, "%s file of %lld bytes exceeds the %zu MiB limit",
				    label, (long long)st.st_size, max_bytes >> 20);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	size_t n = fread(buf, 1, (size_t)st.st_size + 1, src->fp);
	if (ferror(src->fp)) {
		free(buf);
		return nd_error_set(err, ND_EIO, "read error");
	}
	*owned = buf;
	*data = buf;
	*len = n;
	return 0;
}

void nd__image_composite_rgba(const uint8_t *in, uint8_t *out, int w, const uint8_t bg[3])
{
	for (int x = 0; x < w; x++, in += 4, out += 3) {
		unsigned a = in[3], na = 255u - a;
		out[0] = (uint8_t)((in[0] * a + bg[0] * na + 127) / 255);
		out[1] = (uint8_t)((in[1] * a + bg[1] * na + 127) / 255);
		out[2] = (uint8_t)((in[2] * a + bg[2] * na + 127) / 255);
	}
}
