/* neardup — image decoding: the codec table and format detection, limits,
 * the orientation/reduction row sink, and the file/memory entry points.
 * Each codec lives in image_<format>.c (see image_impl.h for how to add
 * one), EXIF parsing in image_exif.c. */
#include "image_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void nd_image_opts_init(nd_image_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_width = 65535;
	o->max_height = 65535;
	o->max_pixels = 100000000u;
	o->max_scans = 100;
	o->max_memory = (size_t)64 << 20;
	o->png_chunk_malloc_max = (size_t)8 << 20;
	o->png_chunk_cache_max = 1000;
	o->min_width = 0;
	o->min_height = 0;
	o->background[0] = o->background[1] = o->background[2] = 128;
}

/* The codec table: one row per format, in sniffing order. */
static const nd__codec *const codecs[] = {
	&nd__codec_jpeg,
	&nd__codec_png,
	&nd__codec_webp,
	&nd__codec_gif,
	&nd__codec_tiff,
	&nd__codec_bmp,
	&nd__codec_pnm,
	&nd__codec_heif,
	&nd__codec_avif,
};
#define NCODECS (sizeof(codecs) / sizeof(codecs[0]))

static const nd__codec *codec_of(nd_image_format fmt)
{
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i]->format == fmt)
			return codecs[i];
	return NULL;
}

nd_image_format nd_image_sniff(const void *data, size_t len)
{
	if (!data)
		return ND_FMT_UNKNOWN;
	if (len > ND_IMAGE_SNIFF_BYTES)
		len = ND_IMAGE_SNIFF_BYTES;
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i]->sniff(data, len) == ND__SNIFF_YES)
			return codecs[i]->format;
	return ND_FMT_UNKNOWN;
}

const char *nd_image_format_name(nd_image_format fmt)
{
	const nd__codec *c = codec_of(fmt);
	return c ? c->name : "unknown";
}

nd_image_format nd_image_format_from_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash + 1 : path, '.');
	size_t n;
	if (!dot || !dot[1])
		return ND_FMT_UNKNOWN;
	dot++;
	n = strlen(dot);
	for (size_t i = 0; i < NCODECS; i++) {
		const char *e = codecs[i]->exts;
		while (*e) {
			size_t k = strcspn(e, " ");
			if (k == n && !strncasecmp(e, dot, n))
				return codecs[i]->format;
			e += k;
			e += strspn(e, " ");
		}
	}
	return ND_FMT_UNKNOWN;
}

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

int nd__sink_init(nd_sink *s, int sw, int sh, int factor, int orientation,
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
			nd__sink_release(s);
			nd_image_free(out);
			return nd_error_set(err, ND_ENOMEM, "out of memory");
		}
	}
	return 0;
}

void nd__sink_release(nd_sink *s)
{
	free(s->acc);
	free(s->row);
	s->acc = NULL;
	s->row = NULL;
}

uint8_t *nd__sink_direct(nd_sink *s, int y)
{
	if (s->factor != 1 || s->orientation != 1)
		return NULL;
	return s->img->rgb + (size_t)y * (size_t)s->rw * 3;
}

void nd__sink_skip(nd_sink *s)
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

void nd__sink_put_reduced(nd_sink *s, const uint8_t *row)
{
	ND_ASSERT(s->next_y < s->rh);
	sink_place(s, s->next_y++, row);
}

void nd__sink_put(nd_sink *s, const uint8_t *rgb)
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

/* ---- entry points ---- */

/* errno text without the non-thread-safe strerror (XSI strerror_r). */
static const char *errtext(int e, char *buf, size_t n)
{
	if (strerror_r(e, buf, n) != 0)
		snprintf(buf, n, "error %d", e);
	return buf;
}

int nd__src_whole(nd_src *src, size_t max_bytes, const char *label, const uint8_t **data,
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

void nd__composite_rgba(const uint8_t *in, uint8_t *out, int w, const uint8_t bg[3])
{
	for (int x = 0; x < w; x++, in += 4, out += 3) {
		unsigned a = in[3], na = 255u - a;
		out[0] = (uint8_t)((in[0] * a + bg[0] * na + 127) / 255);
		out[1] = (uint8_t)((in[1] * a + bg[1] * na + 127) / 255);
		out[2] = (uint8_t)((in[2] * a + bg[2] * na + 127) / 255);
	}
}

static int decode_src(nd_src *src, nd_image_format fmt, const nd_image_opts *opts,
		      nd_image *out, nd_image_info *info, nd_error *err)
{
	nd_image_opts defaults;
	nd_image_info dummy;
	const nd__codec *c = codec_of(fmt);
	int rc;
	if (!opts) {
		nd_image_opts_init(&defaults);
		opts = &defaults;
	}
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	info->format = fmt;
	info->orientation = 1;
	info->scale_denom = 1;
	if (c)
		rc = c->decode(src, opts, out, info, err);
	else
		rc = nd_error_set(err, ND_EFORMAT, "not a supported image format");
	if (rc)
		nd_image_free(out);
	return rc;
}

/* A file that ends inside a format's signature is a truncated file of that
 * format, not an unknown one. */
static int short_input(const uint8_t *p, size_t len, nd_error *err)
{
	if (len == 0)
		return nd_error_set(err, ND_EFORMAT, "empty file");
	if (len > ND_IMAGE_SNIFF_BYTES)
		len = ND_IMAGE_SNIFF_BYTES;
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i]->sniff(p, len) == ND__SNIFF_SHORT)
			return nd_error_set(err, ND_ECORRUPT, "truncated %s data", codecs[i]->label);
	return nd_error_set(err, ND_EFORMAT, "not a supported image format");
}

int nd_image_decode_mem(const void *data, size_t len, const nd_image_opts *opts,
			nd_image *out, nd_image_info *info, nd_error *err)
{
	nd_src src = { .data = data, .len = len };
	nd_image_format fmt;
	ND_ASSERT(out != NULL);
	memset(out, 0, sizeof(*out));
	nd_error_clear(err);
	if (!data && len)
		return nd_error_set(err, ND_EINVAL, "no data");
	fmt = nd_image_sniff(data, len);
	if (fmt == ND_FMT_UNKNOWN)
		return short_input(data, len, err);
	return decode_src(&src, fmt, opts, out, info, err);
}

int nd_image_decode_file(const char *path, const nd_image_opts *opts,
			 nd_image *out, nd_image_info *info, nd_error *err)
{
	uint8_t head[ND_IMAGE_SNIFF_BYTES];
	size_t n;
	struct stat st;
	nd_src src = { 0 };
	nd_image_format fmt;
	char ebuf[128];
	int rc;
	ND_ASSERT(out != NULL && path != NULL);
	memset(out, 0, sizeof(*out));
	nd_error_clear(err);
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return nd_error_set(err, ND_EIO, "%s", errtext(errno, ebuf, sizeof(ebuf)));
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = nd_error_set(err, ND_EIO, "is a directory");
		goto done;
	}
	n = fread(head, 1, sizeof(head), fp);
	if (n < sizeof(head) && ferror(fp)) {
		rc = nd_error_set(err, ND_EIO, "%s", errtext(errno, ebuf, sizeof(ebuf)));
		goto done;
	}
	fmt = nd_image_sniff(head, n);
	if (fmt == ND_FMT_UNKNOWN) {
		rc = short_input(head, n, err);
		goto done;
	}
	if (fseek(fp, 0, SEEK_SET) != 0) {
		rc = nd_error_set(err, ND_EIO, "cannot seek: %s", errtext(errno, ebuf, sizeof(ebuf)));
		goto done;
	}
	src.fp = fp;
	rc = decode_src(&src, fmt, opts, out, info, err);
done:
	fclose(fp);
	return rc;
}
