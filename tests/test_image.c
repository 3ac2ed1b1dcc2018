/* Tests for the image module: decoded pixels against PIL's decodings
 * (golden PPMs made by scripts/make_golden.py), every JPEG/PNG variant, EXIF
 * orientations, scaled decoding, and bad input generated here (empty,
 * non-image, wrong extension, truncation, bit flips, huge dimensions, a
 * progressive scan bomb, PNG chunk bombs).
 *
 * Tolerances (max absolute difference per 8-bit sample unless stated):
 * - JPEG full size and DCT-scaled vs PIL: 1. PIL on Debian decodes through
 *   the same libjpeg-turbo with the same settings (ISLOW IDCT, fancy
 *   upsampling; PIL's draft() asks for the same 1/N scale), so we measure 0;
 *   1 leaves room for another libjpeg-turbo build.
 * - CMYK vs PIL: 1 (PIL's CMYK->RGB rounds its products differently).
 * - DCT-scaled decode vs PIL's reduce(N) of the full decoding: mean 3.0, as
 *   the scaled IDCT is a frequency-domain approximation of a box average,
 *   not the same filter (measured mean 1.5 at 1/2, 1.1 at 1/4, 0.9 at 1/8;
 *   the max, up to 64 at hard edges with 4:2:0 chroma, is not checked).
 * - PNG (PngSuite, composited on grey 128) vs PIL + the documented blend: 0.
 * - PNG box reduction vs PIL's reduce(N): 1 (PIL multiplies by a float
 *   reciprocal, we divide with rounding).
 * - YCCK vs CMYK of the same pixels, both encoded here at quality 95: mean
 *   2.0 (two lossy encodings of the same data). */
#define _GNU_SOURCE
#include "neardup/image.h"

#include <errno.h>
#include <stdio.h>
#include <jpeglib.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <png.h>
#include <zlib.h>

#include "image_impl.h"
#include "lib_fs.h"
#include "test.h"

#define IMG_DIR TEST_DATA_DIR "/image/"
#define SUITE_DIR TEST_DATA_DIR "/pngsuite/"

/* ---- helpers ---- */

/* Binary PPM (P6, maxval 255) as written by make_golden.py. */
static uint8_t *load_ppm(const char *path, int *w, int *h)
{
	size_t len, off;
	uint8_t *buf = tl_read_file(path, &len), *pix = NULL;
	int maxv, n = 0;
	if (!buf)
		return NULL;
	buf[len] = 0;
	if (sscanf((char *)buf, "P6 %d %d %d%n", w, h, &maxv, &n) == 3 && maxv == 255 && n > 0) {
		off = (size_t)n + 1;
		if (off + (size_t)*w * *h * 3 <= len) {
			pix = malloc((size_t)*w * *h * 3);
			memcpy(pix, buf + off, (size_t)*w * *h * 3);
		}
	}
	free(buf);
	return pix;
}

struct diff {
	int max;
	double mean;
	int same_size;
};

static struct diff compare_ppm(const nd_image *img, const char *ppm)
{
	struct diff d = { 255, 255.0, 0 };
	int w, h;
	uint8_t *ref = load_ppm(ppm, &w, &h);
	if (!ref) {
		fprintf(stderr, "cannot load %s\n", ppm);
		return d;
	}
	if (w == img->width && h == img->height) {
		size_t n = (size_t)w * h * 3;
		long sum = 0;
		d.max = 0;
		d.same_size = 1;
		for (size_t i = 0; i < n; i++) {
			int e = abs((int)img->rgb[i] - (int)ref[i]);
			sum += e;
			if (e > d.max)
				d.max = e;
		}
		d.mean = (double)sum / (double)n;
	} else {
		fprintf(stderr, "%s is %dx%d, decoded %dx%d\n", ppm, w, h, img->width, img->height);
	}
	free(ref);
	return d;
}

/* Decodes path both from the file and from memory, checks both agree and
 * compares with the golden PPM. */
static void check_golden(const char *path, const char *ppm, const nd_image_opts *opts,
			 int tol_max, double tol_mean, nd_image_info *info_out)
{
	nd_image a = { 0 }, b = { 0 };
	nd_image_info ia, ib;
	nd_error err;
	size_t len;
	uint8_t *data = tl_read_file(path, &len);
	CHECK_MSG(data != NULL, "%s", path);
	if (!data)
		return;
	int rc = nd_image_decode_file(path, opts, &a, &ia, &err);
	CHECK_MSG(rc == 0, "%s: %s", path, err.msg);
	rc = nd_image_decode_mem(data, len, opts, &b, &ib, &err);
	CHECK_MSG(rc == 0, "%s (mem): %s", path, err.msg);
	free(data);
	if (!a.rgb || !b.rgb)
		goto done;
	CHECK(a.width == b.width && a.height == b.height);
	CHECK(!memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3));
	/* the same info; mem_bytes may differ (a PNG in memory can take the
	 * fast path) but both are within the limit */
	CHECK(ia.format == ib.format && ia.width == ib.width && ia.height == ib.height &&
	      ia.orientation == ib.orientation && ia.scale_denom == ib.scale_denom);
	CHECK(ia.mem_bytes > 0 && ib.mem_bytes > 0);
	CHECK(ia.mem_bytes <= (opts ? opts->max_memory : (size_t)64 << 20));
	struct diff d = compare_ppm(&a, ppm);
	CHECK_MSG(d.same_size, "%s", path);
	CHECK_MSG(d.max <= tol_max && d.mean <= tol_mean, "%s vs %s: max %d mean %.3f (tol %d, %.2f)",
		  path, ppm, d.max, d.mean, tol_max, tol_mean);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "%s: %dx%d scale 1/%d max %d mean %.3f\n", path, a.width, a.height,
			ia.scale_denom, d.max, d.mean);
	if (info_out)
		*info_out = ia;
done:
	nd_image_free(&a);
	nd_image_free(&b);
}


static int decode_buf(const void *p, size_t n, const nd_image_opts *o, nd_error *err,
		      nd_image_info *info)
{
	nd_image img = { 0 };
	int rc = nd_image_decode_mem(p, n, o, &img, info, err);
	if (rc == 0)
		CHECK(img.rgb != NULL && img.width > 0 && img.height > 0);
	else
		CHECK(img.rgb == NULL);
	CHECK_EQ_INT(err->code, rc);
	nd_image_free(&img);
	return rc;
}

/* ---- JPEG against PIL ---- */

static void test_jpeg_variants(void)
{
	static const char *names[] = { "baseline", "baseline444", "baseline422", "progressive", "gray" };
	char p[256], q[256];
	nd_image_info info;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), IMG_DIR "%s.jpg", names[i]);
		snprintf(q, sizeof(q), IMG_DIR "%s.ppm", names[i]);
		check_golden(p, q, NULL, 1, 1.0, &info);
		CHECK_EQ_INT(info.format, ND_FMT_JPEG);
		CHECK_EQ_INT(info.width, 96);
		CHECK_EQ_INT(info.height, 64);
		CHECK_EQ_INT(info.orientation, 1);
		CHECK_EQ_INT(info.scale_denom, 1);
	}
	check_golden(IMG_DIR "cmyk.jpg", IMG_DIR "cmyk.ppm", NULL, 1, 1.0, NULL);
}

static void test_jpeg_orientations(void)
{
	char p[256], q[256];
	for (int o = 1; o <= 8; o++) {
		nd_image_info info;
		snprintf(p, sizeof(p), IMG_DIR "orient%d.jpg", o);
		snprintf(q, sizeof(q), IMG_DIR "orient%d.ppm", o);
		check_golden(p, q, NULL, 1, 1.0, &info);
		CHECK_EQ_INT(info.orientation, o);
		CHECK_EQ_INT(info.width, 48); /* stored size, not rotated */
		CHECK_EQ_INT(info.height, 32);
	}
}

static void test_jpeg_dct_scale(void)
{
	nd_image_opts o;
	nd_image_info info;
	char q[256], r[256];
	static const int W = 203, H = 141;
	for (int n = 2; n <= 8; n *= 2) {
		nd_image_opts_init(&o);
		o.min_width = (W + n - 1) / n;
		o.min_height = (H + n - 1) / n;
		snprintf(q, sizeof(q), IMG_DIR "big_draft%d.ppm", n);
		snprintf(r, sizeof(r), IMG_DIR "big_reduce%d.ppm", n);
		check_golden(IMG_DIR "big.jpg", q, &o, 1, 1.0, &info);
		CHECK_EQ_INT(info.scale_denom, n);
		CHECK_EQ_INT(info.width, W);
		check_golden(IMG_DIR "big.jpg", r, &o, 255, 3.0, NULL);
		/* One pixel more than 1/n gives can offer: the next scale down. */
		o.min_width++;
		snprintf(q, sizeof(q), IMG_DIR "big_draft%d.ppm", n / 2);
		check_golden(IMG_DIR "big.jpg", n == 2 ? IMG_DIR "big.ppm" : q, &o, 1, 1.0, &info);
		CHECK_EQ_INT(info.scale_denom, n / 2);
	}
	/* 0 = full size, whatever the other field says. */
	nd_image_opts_init(&o);
	o.min_width = 10;
	check_golden(IMG_DIR "big.jpg", IMG_DIR "big.ppm", &o, 1, 1.0, &info);
	CHECK_EQ_INT(info.scale_denom, 1);
}

/* The minimum size is in the displayed orientation: for orientation 6 the
 * displayed width is the stored height. */
static void test_jpeg_scale_orientation(void)
{
	nd_image_opts o;
	nd_image img = { 0 };
	nd_image_info info;
	nd_error err;
	nd_image_opts_init(&o);
	o.min_width = 16; /* displayed 32x48 -> 16x24 at 1/2 */
	o.min_height = 24;
	CHECK_EQ_INT(nd_image_decode_file(IMG_DIR "orient6.jpg", &o, &img, &info, &err), 0);
	CHECK_EQ_INT(info.scale_denom, 2);
	CHECK_EQ_INT(img.width, 16);
	CHECK_EQ_INT(img.height, 24);
	nd_image_free(&img);
	o.min_width = 24; /* would fit stored 48x32 at 1/2, not displayed 32x48 */
	o.min_height = 16;
	CHECK_EQ_INT(nd_image_decode_file(IMG_DIR "orient6.jpg", &o, &img, &info, &err), 0);
	CHECK_EQ_INT(info.scale_denom, 1);
	CHECK_EQ_INT(img.width, 32);
	CHECK_EQ_INT(img.height, 48);
	nd_image_free(&img);
}

/* Many large non-EXIF APP1 markers (XMP-like) before the EXIF one: all are
 * skipped without being kept, and the orientation is still found. */
static void test_jpeg_many_app1(void)
{
	size_t len;
	uint8_t *jpg = tl_read_file(IMG_DIR "orient6.jpg", &len);
	const size_t seg = 60000, count = 200;
	size_t big = len + count * (seg + 4);
	uint8_t *buf = malloc(big), *p = buf;
	CHECK(jpg != NULL);
	if (!jpg)
		return;
	memcpy(p, jpg, 2); /* SOI */
	p += 2;
	for (size_t i = 0; i < count; i++) {
		p[0] = 0xff;
		p[1] = 0xe1;
		p[2] = (uint8_t)((seg + 2) >> 8);
		p[3] = (uint8_t)((seg + 2) & 0xff);
		memset(p + 4, 'x', seg);
		memcpy(p + 4, "http://ns.adobe.com/xap/1.0/", 29);
		p += 4 + seg;
	}
	memcpy(p, jpg + 2, len - 2);
	p += len - 2;
	nd_image img = { 0 };
	nd_image_info info;
	nd_error err;
	CHECK_EQ_INT(nd_image_decode_mem(buf, (size_t)(p - buf), NULL, &img, &info, &err), 0);
	CHECK_EQ_INT(info.orientation, 6);
	CHECK_EQ_INT(img.width, 32);
	nd_image_free(&img);
	free(buf);
	free(jpg);
}

/* ---- JPEG encoding helpers (libjpeg) for generated inputs ---- */

struct enc {
	int w, h, comps;
	J_COLOR_SPACE in_cs, jpeg_cs;
	int quality;
	const jpeg_scan_info *scans;
	int nscans;
};

static uint8_t *encode_jpeg(const struct enc *e, const uint8_t *pix, size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned char *mem = NULL;
	unsigned long mlen = 0;
	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &mem, &mlen);
	c.image_width = (JDIMENSION)e->w;
	c.image_height = (JDIMENSION)e->h;
	c.input_components = e->comps;
	c.in_color_space = e->in_cs;
	jpeg_set_defaults(&c);
	jpeg_set_colorspace(&c, e->jpeg_cs);
	jpeg_set_quality(&c, e->quality, TRUE);
	if (e->scans) {
		c.scan_info = e->scans;
		c.num_scans = e->nscans;
	}
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(pix + (size_t)c.next_scanline * e->w * e->comps);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*len = mlen;
	return mem;
}

/* A smooth RGB test pattern. */
static uint8_t *pattern(int w, int h)
{
	uint8_t *p = malloc((size_t)w * h * 3);
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			uint8_t *q = p + ((size_t)y * w + x) * 3;
			q[0] = (uint8_t)(x * 255 / (w - 1));
			q[1] = (uint8_t)(y * 255 / (h - 1));
			q[2] = (uint8_t)(128 + 100 * sin(x / 9.0) * cos(y / 7.0));
		}
	return p;
}

static void test_jpeg_ycck(void)
{
	const int w = 80, h = 56;
	uint8_t *rgb = pattern(w, h), *cmyk = malloc((size_t)w * h * 4);
	/* Adobe-inverted CMYK for these RGB values: k' = max(R,G,B),
	 * c' = R*255/k' (so R = c'*k'/255). */
	for (int i = 0; i < w * h; i++) {
		const uint8_t *p = rgb + i * 3;
		int k = p[0] > p[1] ? p[0] : p[1];
		k = k > p[2] ? k : p[2];
		for (int c = 0; c < 3; c++)
			cmyk[i * 4 + c] = (uint8_t)(k ? (p[c] * 255 + k / 2) / k : 0);
		cmyk[i * 4 + 3] = (uint8_t)k;
	}
	struct enc e = { w, h, 4, JCS_CMYK, JCS_CMYK, 95, NULL, 0 };
	size_t l1, l2;
	uint8_t *j1 = encode_jpeg(&e, cmyk, &l1);
	e.jpeg_cs = JCS_YCCK;
	uint8_t *j2 = encode_jpeg(&e, cmyk, &l2);
	nd_image a = { 0 }, b = { 0 };
	nd_error err;
	CHECK_EQ_INT(nd_image_decode_mem(j1, l1, NULL, &a, NULL, &err), 0);
	CHECK_EQ_INT(nd_image_decode_mem(j2, l2, NULL, &b, NULL, &err), 0);
	if (a.rgb && b.rgb) {
		long s1 = 0, s2 = 0;
		for (int i = 0; i < w * h * 3; i++) {
			s1 += abs(a.rgb[i] - rgb[i]);
			s2 += abs(b.rgb[i] - a.rgb[i]);
		}
		double m1 = (double)s1 / (w * h * 3), m2 = (double)s2 / (w * h * 3);
		CHECK_MSG(m1 < 2.0, "CMYK vs source mean %.3f", m1);
		CHECK_MSG(m2 < 2.0, "YCCK vs CMYK mean %.3f", m2);
	}
	nd_image_free(&a);
	nd_image_free(&b);
	free(j1);
	free(j2);
	free(cmyk);
	free(rgb);
}

/* ---- PNG ---- */

static void test_pngsuite(void)
{
	size_t len;
	char *list = (char *)tl_read_file(SUITE_DIR "LIST", &len);
	int count = 0;
	CHECK(list != NULL);
	if (!list)
		return;
	list[len] = 0;
	for (char *save = NULL, *name = strtok_r(list, "\n", &save); name;
	     name = strtok_r(NULL, "\n", &save)) {
		char p[256], q[256];
		nd_image_info info;
		snprintf(p, sizeof(p), SUITE_DIR "%s.png", name);
		snprintf(q, sizeof(q), SUITE_DIR "%s.ppm", name);
		check_golden(p, q, NULL, 0, 0.0, &info);
		CHECK_EQ_INT(info.format, ND_FMT_PNG);
		count++;
	}
	CHECK_MSG(count >= 50, "only %d PngSuite images", count);
	free(list);
}

static void test_png_reduce(void)
{
	nd_image_opts o;
	nd_image_info info;
	char q[256];
	for (int n = 2; n <= 8; n *= 2) {
		nd_image_opts_init(&o);
		o.min_width = (203 + n - 1) / n;
		o.min_height = (141 + n - 1) / n;
		snprintf(q, sizeof(q), IMG_DIR "bigpng_reduce%d.ppm", n);
		check_golden(IMG_DIR "big.png", q, &o, 1, 0.05, &info);
		CHECK_EQ_INT(info.scale_denom, n);
	}
	/* Interlaced PngSuite image, reduced by 2: same as the non-interlaced one. */
	nd_image a = { 0 }, b = { 0 };
	nd_error err;
	nd_image_opts_init(&o);
	o.min_width = o.min_height = 16;
	CHECK_EQ_INT(nd_image_decode_file(SUITE_DIR "basn2c08.png", &o, &a, &info, &err), 0);
	CHECK_EQ_INT(info.scale_denom, 2);
	CHECK_EQ_INT(nd_image_decode_file(SUITE_DIR "ibasn2c08.png", &o, &b, &info, &err), 0);
	CHECK(a.rgb && b.rgb && a.width == 16 && b.width == 16 &&
	      !memcmp(a.rgb, b.rgb, 16 * 16 * 3));
	nd_image_free(&a);
	nd_image_free(&b);
}

static void test_png_exif_orientation(void)
{
	nd_image_info info;
	check_golden(IMG_DIR "orient6.png", IMG_DIR "orient6_png.ppm", NULL, 0, 0.0, &info);
	CHECK_EQ_INT(info.orientation, 6);
}

static void test_png_background(void)
{
	/* tRNS makes alpha 0 or 255: with two backgrounds, every pixel either
	 * agrees or is exactly the background it was composited on. */
	nd_image_opts o;
	nd_image a = { 0 }, b = { 0 };
	nd_error err;
	nd_image_opts_init(&o);
	o.background[0] = 255, o.background[1] = 0, o.background[2] = 0;
	CHECK_EQ_INT(nd_image_decode_file(SUITE_DIR "ftbrn2c08.png", &o, &a, NULL, &err), 0);
	o.background[0] = 0, o.background[1] = 0, o.background[2] = 255;
	CHECK_EQ_INT(nd_image_decode_file(SUITE_DIR "ftbrn2c08.png", &o, &b, NULL, &err), 0);
	if (a.rgb && b.rgb) {
		int differ = 0, ok = 1;
		for (int i = 0; i < a.width * a.height; i++) {
			const uint8_t *p = a.rgb + i * 3, *q = b.rgb + i * 3;
			if (!memcmp(p, q, 3))
				continue;
			differ++;
			ok &= p[0] == 255 && p[1] == 0 && p[2] == 0 && q[0] == 0 && q[1] == 0 && q[2] == 255;
		}
		CHECK(differ > 0);
		CHECK(ok);
	}
	nd_image_free(&a);
	nd_image_free(&b);
}

/* ---- bad input ---- */

static void test_empty_and_not_image(void)
{
	nd_error err;
	nd_image img = { 0 };
	const char *tmp = "build/test_image_tmp.bin";
	CHECK_EQ_INT(decode_buf("", 0, NULL, &err, NULL), ND_EFORMAT);
	CHECK(!strcmp(err.msg, "empty file"));
	CHECK_EQ_INT(tl_write_file(tmp, "", 0), 0);
	CHECK_EQ_INT(nd_image_decode_file(tmp, NULL, &img, NULL, &err), ND_EFORMAT);
	CHECK(!strcmp(err.msg, "empty file"));
	const char *txt = "this is a text file, not an image\n";
	CHECK_EQ_INT(decode_buf(txt, strlen(txt), NULL, &err, NULL), ND_EFORMAT);
	CHECK(!strcmp(err.msg, "not a supported image format"));
	CHECK_EQ_INT(tl_write_file(tmp, txt, strlen(txt)), 0);
	CHECK_EQ_INT(nd_image_decode_file(tmp, NULL, &img, NULL, &err), ND_EFORMAT);
	CHECK(!strcmp(err.msg, "not a supported image format"));
	/* GIF and WebP magic with nothing behind it: that format, cut short. */
	CHECK_EQ_INT(decode_buf("GIF89a\1\0\1\0\0\0\0", 13, NULL, &err, NULL), ND_ECORRUPT);
	CHECK_MSG(!strcmp(err.msg, "truncated GIF data"), "'%s'", err.msg);
	CHECK_EQ_INT(decode_buf("RIFF\0\0\0\0WEBPVP8 ", 16, NULL, &err, NULL), ND_ECORRUPT);
	CHECK_MSG(strstr(err.msg, "WebP data") != NULL, "'%s'", err.msg);
	/* A RIFF that is not WebP (a WAV file) is not an image. */
	CHECK_EQ_INT(decode_buf("RIFF\0\0\0\0WAVEfmt ", 16, NULL, &err, NULL), ND_EFORMAT);
	/* Missing file, directory. */
	CHECK_EQ_INT(nd_image_decode_file("build/no/such/file.jpg", NULL, &img, NULL, &err), ND_EIO);
	CHECK(strstr(err.msg, "No such file") != NULL);
	CHECK(strstr(err.msg, "build/") == NULL); /* the message never has the path */
	CHECK_EQ_INT(nd_image_decode_file("build", NULL, &img, NULL, &err), ND_EIO);
	CHECK(img.rgb == NULL);
	unlink(tmp);
}

static void test_wrong_extension(void)
{
	size_t len;
	uint8_t *png = tl_read_file(SUITE_DIR "basn2c08.png", &len);
	uint8_t *jpg;
	size_t jlen;
	nd_image img = { 0 };
	nd_image_info info;
	nd_error err;
	CHECK_EQ_INT(tl_write_file("build/test_image_png.jpg", png, len), 0);
	CHECK_EQ_INT(nd_image_decode_file("build/test_image_png.jpg", NULL, &img, &info, &err), 0);
	CHECK_EQ_INT(info.format, ND_FMT_PNG);
	nd_image_free(&img);
	jpg = tl_read_file(IMG_DIR "baseline.jpg", &jlen);
	CHECK_EQ_INT(tl_write_file("build/test_image_jpg.png", jpg, jlen), 0);
	CHECK_EQ_INT(nd_image_decode_file("build/test_image_jpg.png", NULL, &img, &info, &err), 0);
	CHECK_EQ_INT(info.format, ND_FMT_JPEG);
	nd_image_free(&img);
	unlink("build/test_image_png.jpg");
	unlink("build/test_image_jpg.png");
	free(png);
	free(jpg);
}

static void truncate_all(const char *path, const char *what)
{
	size_t len;
	uint8_t *data = tl_read_file(path, &len);
	nd_error err;
	CHECK(data != NULL);
	if (!data)
		return;
	size_t cuts[] = { 1, 2, 5, 8, 20, 60, 200, len / 3, len / 2, len - 100, len - 10, len - 2, len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		size_t n = cuts[i];
		if (n >= len)
			continue;
		int rc = decode_buf(data, n, NULL, &err, NULL);
		CHECK_MSG(rc == ND_ECORRUPT, "%s cut at %zu: rc %d (%s)", path, n, rc, err.msg);
		if (getenv("TEST_VERBOSE"))
			fprintf(stderr, "%s cut at %zu: %s\n", path, n, err.msg);
		/* Cuts inside the image data say what they are. */
		if (n >= len / 3 && n <= len - 100)
			CHECK_MSG(strstr(err.msg, what) != NULL, "%s cut at %zu: '%s'", path, n, err.msg);
		/* Same through the file path. */
		if (n == len / 2) {
			nd_image img = { 0 };
			CHECK_EQ_INT(tl_write_file("build/test_image_cut", data, n), 0);
			CHECK_EQ_INT(nd_image_decode_file("build/test_image_cut", NULL, &img, NULL, &err),
				     ND_ECORRUPT);
			CHECK_MSG(strstr(err.msg, what) != NULL, "'%s'", err.msg);
			unlink("build/test_image_cut");
		}
	}
	free(data);
}

static void test_truncated(void)
{
	truncate_all(IMG_DIR "baseline.jpg", "truncated JPEG data");
	truncate_all(IMG_DIR "progressive.jpg", "truncated JPEG data");
	truncate_all(IMG_DIR "big.png", "truncated PNG data");
	truncate_all(SUITE_DIR "ibasn6a16.png", "truncated PNG data");
}

static uint32_t lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

static void flip_bits(const char *path, size_t from, int expect_all_fail)
{
	size_t len;
	uint8_t *data = tl_read_file(path, &len), *copy;
	uint32_t seed = 12345;
	int errors = 0, trials = 200;
	nd_error err;
	CHECK(data != NULL);
	if (!data)
		return;
	copy = malloc(len);
	for (int t = 0; t < trials; t++) {
		memcpy(copy, data, len);
		int nflips = 1 + (int)(lcg(&seed) % 3);
		for (int k = 0; k < nflips; k++) {
			size_t pos = from + lcg(&seed) % (len - from);
			copy[pos] ^= (uint8_t)(1u << (lcg(&seed) % 8));
		}
		int rc = decode_buf(copy, len, NULL, &err, NULL);
		CHECK_MSG(rc == 0 || rc == ND_ECORRUPT || rc == ND_ELIMIT || rc == ND_EUNSUPPORTED ||
				  rc == ND_EFORMAT,
			  "%s flip %d: rc %d", path, t, rc);
		errors += rc != 0;
	}
	if (expect_all_fail)
		CHECK_MSG(errors == trials, "%s: %d of %d flipped files decoded", path, trials - errors,
			  trials);
	else
		CHECK_MSG(errors > 0, "%s: no flipped file failed", path);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "%s: %d of %d flipped files refused\n", path, errors, trials);
	free(copy);
	free(data);
}

static void test_bit_flips(void)
{
	/* Anywhere in a JPEG: some flips give valid-looking data, many must fail. */
	flip_bits(IMG_DIR "baseline.jpg", 2, 0);
	flip_bits(IMG_DIR "progressive.jpg", 2, 0);
	/* PNG chunks are CRC-protected: a flip in the IHDR/IDAT region (after the
	 * signature, which only says "not a PNG") is always caught. big.png is
	 * one IHDR and IDAT chunks. */
	flip_bits(IMG_DIR "big.png", 8, 1);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Appends a PNG chunk with a correct CRC. */
static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n)
{
	put_be32(out, n);
	memcpy(out + 4, type, 4);
	if (n)
		memcpy(out + 8, data, n);
	put_be32(out + 8 + n, (uint32_t)crc32(0, out + 4, 4 + n));
	return 12 + (size_t)n;
}

/* A valid 1x1 grey PNG with extra chunks placed before IDAT; extra is
 * filled by the callback. Returns malloc'd bytes. */
static uint8_t *png_with(uint32_t w, uint32_t h, const uint8_t *extra, size_t extra_len, size_t *len)
{
	static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	uint8_t ihdr[13] = { 0 }, raw[2] = { 0, 0x80 }, z[64];
	uLongf zl = sizeof(z);
	uint8_t *out = malloc(8 + 25 + extra_len + 12 + sizeof(z) + 12), *p = out;
	put_be32(ihdr, w);
	put_be32(ihdr + 4, h);
	ihdr[8] = 8; /* depth */
	ihdr[9] = 0; /* grey */
	compress(z, &zl, raw, 2);
	memcpy(p, sig, 8);
	p += 8;
	p += png_chunk(p, "IHDR", ihdr, 13);
	if (extra_len)
		memcpy(p, extra, extra_len);
	p += extra_len;
	p += png_chunk(p, "IDAT", z, (uint32_t)zl);
	p += png_chunk(p, "IEND", NULL, 0);
	*len = (size_t)(p - out);
	return out;
}

/* ---- the PNG fast path (src/image_png_fast.c) against libpng ---- */

/* Decodes data with the fast path (1 when it declined) and through libpng
 * (a file source always takes the libpng path); the fast path's image and
 * info must be byte-identical. */
static int fast_vs_libpng(const uint8_t *data, size_t len, const nd_image_opts *o,
			  const char *what)
{
	nd_src src = { .data = data, .len = len };
	nd_image a = { 0 }, b = { 0 };
	nd_image_info ia, ib;
	nd_error err;
	nd_image_opts defaults;
	if (!o) {
		nd_image_opts_init(&defaults);
		o = &defaults;
	}
	memset(&ia, 0, sizeof(ia));
	memset(&ib, 0, sizeof(ib));
	int fast = nd__image_decode_png_fast(&src, o, &a, &ia) == 0;
	if (!fast)
		CHECK_MSG(a.rgb == NULL, "%s: declined but left an image", what);
	char path[] = "/tmp/nd_test_fastXXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return 0;
	close(fd);
	CHECK(tl_write_file(path, data, len) == 0);
	int rc = nd_image_decode_file(path, o, &b, &ib, &err);
	unlink(path);
	if (fast) {
		CHECK_MSG(rc == 0, "%s: fast path decoded, libpng says %s", what, err.msg);
		CHECK_MSG(rc != 0 || (a.width == b.width && a.height == b.height &&
				      !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3)),
			  "%s: fast path pixels differ from libpng's", what);
		CHECK_MSG(ia.width == ib.width && ia.height == ib.height &&
				  ia.scale_denom == ib.scale_denom && ia.orientation == ib.orientation,
			  "%s: info differs", what);
	}
	nd_image_free(&a);
	nd_image_free(&b);
	return fast;
}

/* A PNG of random filtered rows (random filter types 0-4 and bytes), so
 * every filter runs on arbitrary data; IDAT split in pieces of idat_piece
 * bytes; a gAMA chunk when gama. */
static uint8_t *png_random(uint32_t w, uint32_t h, int ctype, uint32_t *seed, size_t idat_piece,
			   int gama, int bad_filter, size_t *len)
{
	static const uint8_t sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	int ch = ctype == 0 ? 1 : ctype == 4 ? 2 : ctype == 2 ? 3 : 4;
	size_t stride = 1 + (size_t)w * ch, rawn = stride * h;
	uint8_t *raw = malloc(rawn), ihdr[13] = { 0 }, g[4] = { 0, 0, 0xb1, 0x8f };
	for (uint32_t y = 0; y < h; y++) {
		raw[y * stride] = (uint8_t)(lcg(seed) % 5);
		/* runs of one value mixed with noise, so predictors tie too */
		uint8_t v = (uint8_t)lcg(seed);
		for (size_t i = 1; i < stride; i++)
			raw[y * stride + i] = (lcg(seed) & 3) ? v : (uint8_t)lcg(seed);
	}
	if (bad_filter)
		raw[(h / 2) * stride] = 5;
	uLongf zl = compressBound(rawn);
	uint8_t *z = malloc(zl);
	compress2(z, &zl, raw, rawn, 6);
	uint8_t *out = malloc(8 + 25 + 16 + zl + 12 * (zl / idat_piece + 2) + 12), *p = out;
	put_be32(ihdr, w);
	put_be32(ihdr + 4, h);
	ihdr[8] = 8;
	ihdr[9] = (uint8_t)ctype;
	memcpy(p, sig, 8);
	p += 8;
	p += png_chunk(p, "IHDR", ihdr, 13);
	if (gama)
		p += png_chunk(p, "gAMA", g, 4);
	for (size_t k = 0; k < zl; k += idat_piece)
		p += png_chunk(p, "IDAT", z + k, (uint32_t)(zl - k < idat_piece ? zl - k : idat_piece));
	p += png_chunk(p, "IEND", NULL, 0);
	*len = (size_t)(p - out);
	free(raw);
	free(z);
	return out;
}

static void test_png_fast_path(void)
{
	/* 1. PngSuite: identical wherever the fast path takes the file */
	size_t len;
	char *list = (char *)tl_read_file(SUITE_DIR "LIST", &len);
	int taken = 0, total = 0;
	CHECK(list != NULL);
	if (!list)
		return;
	list[len] = 0;
	for (char *save = NULL, *name = strtok_r(list, "\n", &save); name;
	     name = strtok_r(NULL, "\n", &save)) {
		char p[256];
		size_t n;
		snprintf(p, sizeof(p), SUITE_DIR "%s.png", name);
		uint8_t *d = tl_read_file(p, &n);
		CHECK_MSG(d != NULL, "%s", p);
		if (d)
			taken += fast_vs_libpng(d, n, NULL, name);
		total++;
		free(d);
	}
	free(list);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "fast path took %d of %d PngSuite files\n", taken, total);
	/* basn0g08 basn2c08 basn4a08 basn6a08 ftp0n0g08 ftp0n2c08: the 8-bit
	 * non-interlaced ones without palette or tRNS */
	CHECK_MSG(taken == 6, "fast path took %d PngSuite files, not 6", taken);

	/* 2. random filtered rows, every colour type, odd widths, split IDATs,
	 * reduced and full size; all must be taken and identical */
	static const int ctypes[4] = { 0, 4, 2, 6 };
	uint32_t seed = 99;
	nd_image_opts o;
	for (int t = 0; t < 4; t++)
		for (int k = 0; k < 4; k++) {
			uint32_t w = 1 + lcg(&seed) % 97, h = 1 + lcg(&seed) % 61;
			uint8_t *png = png_random(w, h, ctypes[t], &seed, k == 0 ? 1 << 20 : 1 + k * 97,
						  k == 2, 0, &len);
			char what[64];
			snprintf(what, sizeof(what), "random %ux%u type %d", w, h, ctypes[t]);
			nd_image_opts_init(&o);
			if (k == 3)
				o.min_width = o.min_height = 8; /* a box reduction */
			o.background[0] = 10, o.background[1] = 200, o.background[2] = 77;
			CHECK_MSG(fast_vs_libpng(png, len, &o, what) == 1, "%s: declined", what);
			free(png);
		}

	/* 3. what it must decline, leaving the error to libpng */
	uint8_t *png = png_random(40, 30, 2, &seed, 1 << 20, 0, 1, &len);
	nd_error err;
	CHECK_EQ_INT(fast_vs_libpng(png, len, NULL, "bad filter byte"), 0);
	CHECK_EQ_INT(decode_buf(png, len, NULL, &err, NULL), ND_ECORRUPT);
	free(png);
	png = png_random(40, 30, 6, &seed, 100, 0, 0, &len);
	png[len - 20] ^= 1; /* in the last IDAT: CRC mismatch */
	CHECK_EQ_INT(fast_vs_libpng(png, len, NULL, "CRC error"), 0);
	CHECK_EQ_INT(decode_buf(png, len, NULL, &err, NULL), ND_ECORRUPT);
	free(png);
}

static void test_huge_dimensions(void)
{
	nd_error err;
	nd_image_opts o;
	size_t len;
	/* PNG declaring 70000x70000 (the IDAT is for 1x1). */
	uint8_t *png = png_with(70000, 70000, NULL, 0, &len);
	CHECK_EQ_INT(decode_buf(png, len, NULL, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "image 70000x70000 exceeds the 100-megapixel limit"), "'%s'", err.msg);
	free(png);
	/* Sanity: the same file at 1x1 decodes. */
	png = png_with(1, 1, NULL, 0, &len);
	CHECK_EQ_INT(decode_buf(png, len, NULL, &err, NULL), 0);
	free(png);
	/* Width alone over the width limit. */
	nd_image_opts_init(&o);
	o.max_width = 1000;
	png = png_with(5000, 1, NULL, 0, &len);
	CHECK_EQ_INT(decode_buf(png, len, &o, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "image width 5000 exceeds the limit of 1000"), "'%s'", err.msg);
	free(png);
	/* Beyond PNG's own 2^31-1 limit. */
	png = png_with(0x80000000u, 1, NULL, 0, &len);
	CHECK(decode_buf(png, len, NULL, &err, NULL) != 0);
	free(png);

	/* JPEG: patch the SOF0 of baseline.jpg to 65500x65500. */
	uint8_t *jpg = tl_read_file(IMG_DIR "baseline.jpg", &len);
	size_t i;
	for (i = 2; i + 9 < len; i++)
		if (jpg[i] == 0xff && jpg[i + 1] == 0xc0)
			break;
	CHECK(i + 9 < len);
	jpg[i + 5] = 0xff; jpg[i + 6] = 0xdc; /* height 65500 */
	jpg[i + 7] = 0xff; jpg[i + 8] = 0xdc; /* width 65500 */
	CHECK_EQ_INT(decode_buf(jpg, len, NULL, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "image 65500x65500 exceeds the 100-megapixel limit"), "'%s'", err.msg);
	/* Under the pixel limit (10000x9000 = 90 MP) but the data is for 96x64:
	 * refused as truncated, without the decoder spending long on it. */
	jpg[i + 5] = 0x23; jpg[i + 6] = 0x28; /* height 9000 */
	jpg[i + 7] = 0x27; jpg[i + 8] = 0x10; /* width 10000 */
	nd_image_opts_init(&o);
	o.min_width = o.min_height = 224; /* 1/8 scale: 1250x1125 */
	CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, NULL), ND_ECORRUPT);
	/* 12-bit precision and a lossless SOF3: valid JPEG, not supported. */
	jpg[i + 5] = 0x00; jpg[i + 6] = 0x40; /* back to 64x96 */
	jpg[i + 7] = 0x00; jpg[i + 8] = 0x60;
	jpg[i + 4] = 12;
	CHECK_EQ_INT(decode_buf(jpg, len, NULL, &err, NULL), ND_EUNSUPPORTED);
	CHECK_MSG(!strcmp(err.msg, "unsupported JPEG data precision 12"), "'%s'", err.msg);
	jpg[i + 4] = 8;
	jpg[i + 1] = 0xc3;
	CHECK_EQ_INT(decode_buf(jpg, len, NULL, &err, NULL), ND_EUNSUPPORTED);
	jpg[i + 1] = 0xc0;
	CHECK_EQ_INT(decode_buf(jpg, len, NULL, &err, NULL), 0); /* restored */
	free(jpg);
}

static void test_scan_bomb(void)
{
	/* A valid progressive JPEG with one scan per AC coefficient and
	 * component: 1 + 3*63 = 190 scans (a real scan bomb has thousands of
	 * tiny scans; the cap works the same way). */
	jpeg_scan_info scans[1 + 3 * 63];
	int n = 0;
	scans[n++] = (jpeg_scan_info){ 3, { 0, 1, 2, 0 }, 0, 0, 0, 0 };
	for (int c = 0; c < 3; c++)
		for (int k = 1; k <= 63; k++)
			scans[n++] = (jpeg_scan_info){ 1, { c, 0, 0, 0 }, k, k, 0, 0 };
	const int w = 64, h = 48;
	uint8_t *rgb = pattern(w, h);
	struct enc e = { w, h, 3, JCS_RGB, JCS_YCbCr, 90, scans, n };
	size_t len;
	uint8_t *jpg = encode_jpeg(&e, rgb, &len);
	nd_error err;
	nd_image_opts o;
	nd_image_opts_init(&o);
	CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "progressive JPEG has more than 100 scans"), "'%s'", err.msg);
	o.max_scans = 190;
	CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, NULL), 0);
	o.max_scans = 189;
	CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, NULL), ND_ELIMIT);
	free(jpg);
	free(rgb);
}

static void test_png_chunk_bombs(void)
{
	nd_error err;
	size_t len, zlen;
	/* 1. A zTXt chunk that inflates to 64 MiB (about 64 KiB compressed). */
	size_t big = (size_t)64 << 20;
	uint8_t *zeros = calloc(1, big);
	uLongf zl = compressBound(big);
	uint8_t *ztxt = malloc(zl + 16), *chunk = malloc(zl + 32);
	memcpy(ztxt, "Comment\0\0", 9); /* keyword, NUL, method 0 */
	compress2(ztxt + 9, &zl, zeros, big, 9);
	zlen = 9 + zl;
	size_t clen = png_chunk(chunk, "zTXt", ztxt, (uint32_t)zlen);
	uint8_t *png = png_with(1, 1, chunk, clen, &len);
	CHECK_EQ_INT(decode_buf(png, len, NULL, &err, NULL), ND_ELIMIT);
	CHECK_MSG(strstr(err.msg, "PNG limit exceeded") != NULL, "'%s'", err.msg);
	free(png);
	free(chunk);
	free(ztxt);
	free(zeros);
	/* 2. 5000 small tEXt chunks (the cache allows 1000). */
	uint8_t one[32];
	size_t olen = png_chunk(one, "tEXt", (const uint8_t *)"Comment\0hello", 13);
	uint8_t *many = malloc(olen * 5000);
	for (int i = 0; i < 5000; i++)
		memcpy(many + i * olen, one, olen);
	png = png_with(1, 1, many, olen * 5000, &len);
	CHECK_EQ_INT(decode_buf(png, len, NULL, &err, NULL), ND_ELIMIT);
	CHECK_MSG(strstr(err.msg, "PNG limit exceeded") != NULL, "'%s'", err.msg);
	free(png);
	/* ... while 500 of them are fine. */
	png = png_with(1, 1, many, olen * 500, &len);
	CHECK_EQ_INT(decode_buf(png, len, NULL, &err, NULL), 0);
	free(png);
	free(many);
	/* 3. A tEXt chunk declaring 2 GiB - 1 with 10 bytes behind it. */
	uint8_t liar[32];
	put_be32(liar, 0x7fffffffu);
	memcpy(liar + 4, "tEXt", 4);
	memcpy(liar + 8, "Comment\0hi", 10);
	png = png_with(1, 1, liar, 18, &len);
	CHECK(decode_buf(png, len, NULL, &err, NULL) != 0);
	free(png);
}

/* ---- memory bombs: the max_memory bound ---- */

struct membuf {
	uint8_t *p;
	size_t len, cap;
};

static void membuf_write(png_structp png, png_bytep data, size_t n)
{
	struct membuf *m = png_get_io_ptr(png);
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->p = realloc(m->p, m->cap);
	}
	memcpy(m->p + m->len, data, n);
	m->len += n;
}

static void membuf_flush(png_structp png)
{
	(void)png;
}

/* A 16-bit RGBA PNG, Adam7 or not, of a pattern with varied alpha, written
 * row by row (the encoder never holds the image). */
static uint8_t *encode_png16(uint32_t w, uint32_t h, int adam7, size_t *len)
{
	struct membuf m = { 0 };
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	uint8_t *row = malloc((size_t)w * 8);
	if (setjmp(png_jmpbuf(png))) {
		free(m.p);
		free(row);
		return NULL;
	}
	png_set_write_fn(png, &m, membuf_write, membuf_flush);
	png_set_IHDR(png, info, w, h, 16, PNG_COLOR_TYPE_RGB_ALPHA,
		     adam7 ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
		     PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, 1);
	png_write_info(png, info);
	int passes = png_set_interlace_handling(png);
	for (int pass = 0; pass < passes; pass++)
		for (uint32_t y = 0; y < h; y++) {
			for (uint32_t x = 0; x < w; x++) {
				uint8_t *q = row + (size_t)x * 8;
				q[0] = (uint8_t)(x * 7 + y);
				q[2] = (uint8_t)(y * 5 - x);
				q[4] = (uint8_t)((x ^ y) * 3);
				q[6] = (uint8_t)(x * 11 + y * 13);
				q[1] = q[3] = q[5] = q[7] = (uint8_t)(x + y);
			}
			png_write_row(png, row);
		}
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(row);
	*len = m.len;
	return m.p;
}

/* A JPEG made as the memory bombs are: progressive or one scan per
 * component (both make libjpeg keep every coefficient), 4:4:4. */
static uint8_t *encode_jpeg_bomb(int w, int h, int progressive, size_t *len)
{
	static const jpeg_scan_info per_comp[3] = {
		{ 1, { 0, 0, 0, 0 }, 0, 63, 0, 0 },
		{ 1, { 1, 0, 0, 0 }, 0, 63, 0, 0 },
		{ 1, { 2, 0, 0, 0 }, 0, 63, 0, 0 },
	};
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned char *mem = NULL;
	unsigned long mlen = 0;
	uint8_t *row = malloc((size_t)w * 3);
	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &mem, &mlen);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 75, TRUE);
	for (int i = 0; i < 3; i++)
		c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
	if (progressive) {
		jpeg_simple_progression(&c);
	} else {
		c.scan_info = per_comp;
		c.num_scans = 3;
	}
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		for (int x = 0; x < w; x++) {
			row[x * 3] = (uint8_t)x;
			row[x * 3 + 1] = (uint8_t)c.next_scanline;
			row[x * 3 + 2] = (uint8_t)(x + (int)c.next_scanline);
		}
		JSAMPROW r = row;
		jpeg_write_scanlines(&c, &r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	*len = mlen;
	return mem;
}

/* The interlaced path gives exactly the non-interlaced path's pixels at every
 * reduction, including sizes where some Adam7 passes are empty. */
static void test_png_adam7_reduce(void)
{
	static const uint32_t sizes[][2] = { { 1, 1 }, { 2, 3 }, { 5, 1 }, { 9, 17 }, { 203, 151 } };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t la, lb;
		uint32_t w = sizes[k][0], h = sizes[k][1];
		uint8_t *pa = encode_png16(w, h, 0, &la), *pb = encode_png16(w, h, 1, &lb);
		for (int n = 1; n <= 8; n *= 2) {
			nd_image a = { 0 }, b = { 0 };
			nd_image_info ia, ib;
			nd_image_opts o;
			nd_error err;
			nd_image_opts_init(&o);
			o.min_width = (int)((w + (uint32_t)n - 1) / (uint32_t)n);
			o.min_height = (int)((h + (uint32_t)n - 1) / (uint32_t)n);
			CHECK_EQ_INT(nd_image_decode_mem(pa, la, &o, &a, &ia, &err), 0);
			CHECK_EQ_INT(nd_image_decode_mem(pb, lb, &o, &b, &ib, &err), 0);
			CHECK_EQ_INT(ia.scale_denom, ib.scale_denom);
			CHECK_MSG(a.rgb && b.rgb && a.width == b.width && a.height == b.height &&
					  !memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3),
				  "%ux%u at 1/%d: interlaced pixels differ", w, h, n);
			nd_image_free(&a);
			nd_image_free(&b);
		}
		free(pa);
		free(pb);
	}
}

#ifndef __SANITIZE_ADDRESS__
/* Address space of this process (VmSize), in bytes. */
static size_t vm_size(void)
{
	char line[256];
	size_t kb = 0;
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb * 1024;
}
#endif

/* The child side of decode_capped: a fresh process (its heap holds no free
 * space inherited from this test) reads the file, then limits its address
 * space (RLIMIT_AS) to what it holds plus max_memory + slack and decodes. A
 * decoder holding more than it claims then fails with ND_ENOMEM. Exits with
 * the negated result code. */
static int capped_child(char **argv)
{
	nd_image_opts o;
	nd_image img = { 0 };
	nd_error err;
	size_t len;
	uint8_t *data = tl_read_file(argv[2], &len);
	if (!data)
		return 100;
	alarm(60); /* a decoder stuck on a failed allocation fails the test */
	nd_image_opts_init(&o);
	o.max_memory = strtoull(argv[3], NULL, 10);
	o.min_width = o.min_height = atoi(argv[5]);
#ifndef __SANITIZE_ADDRESS__ /* ASan maps terabytes of shadow memory */
	struct rlimit rl;
	rl.rlim_cur = rl.rlim_max = vm_size() + o.max_memory + strtoull(argv[4], NULL, 10);
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		return 101;
#endif
	int rc = nd_image_decode_mem(data, len, &o, &img, NULL, &err);
	nd_image_free(&img);
	free(data);
	return -rc;
}

/* Decodes data with max_memory and min_width = min_height = min in a child
 * process (capped_child); returns its result code, or -1000 when it did not
 * give one (a crash, or it could not start). */
static int decode_capped(const uint8_t *data, size_t len, size_t max_memory, int min, size_t slack)
{
	char path[] = "/tmp/nd_test_cappedXXXXXX", a3[32], a4[32], a5[32];
	int fd = mkstemp(path), st, rc = -1000;
	if (fd < 0)
		return rc;
	close(fd);
	if (tl_write_file(path, data, len) != 0)
		goto done;
	snprintf(a3, sizeof(a3), "%zu", max_memory);
	snprintf(a4, sizeof(a4), "%zu", slack);
	snprintf(a5, sizeof(a5), "%d", min);
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", "test_image", "--decode-capped", path, a3, a4, a5, (char *)NULL);
		_exit(127);
	}
	if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) < 100)
		rc = -WEXITSTATUS(st);
done:
	unlink(path);
	return rc;
}

static void test_memory_bombs(void)
{
	nd_image_opts o;
	nd_image_info info;
	nd_error err;
	size_t len;
	char want[160];
	/* 1. Progressive and multi-scan JPEGs, 2048x2048 4:4:4: libjpeg must
	 * keep 3 x 256 x 256 blocks of 128 bytes (24 MiB) whatever the scale.
	 * Over a 4 MiB budget they are refused from the header, and the
	 * refusal holds in a process that could not have allocated them. */
	for (int prog = 0; prog <= 1; prog++) {
		uint8_t *jpg = encode_jpeg_bomb(2048, 2048, prog, &len);
		nd_image_opts_init(&o);
		o.min_width = o.min_height = 224;
		o.max_memory = (size_t)4 << 20;
		CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, &info), ND_ELIMIT);
		snprintf(want, sizeof(want), "%s JPEG 2048x2048 needs %d MiB to decode, over the 4 MiB memory limit",
			 prog ? "progressive" : "multi-scan", 25);
		CHECK_MSG(!strcmp(err.msg, want), "'%s'", err.msg);
		CHECK(info.mem_bytes > (size_t)24 << 20);
		CHECK_EQ_INT(decode_capped(jpg, len, o.max_memory, 224, (size_t)8 << 20), ND_ELIMIT);
		/* The bound is the one enforced: exactly mem_bytes decodes, one
		 * byte less is refused. */
		o.max_memory = info.mem_bytes;
		CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, &info), 0);
		CHECK_EQ_INT(info.mem_bytes, o.max_memory);
		o.max_memory--;
		CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, NULL), ND_ELIMIT);
		/* Within the bound it decodes in a process capped at it. */
		o.max_memory = info.mem_bytes;
		CHECK_EQ_INT(decode_capped(jpg, len, o.max_memory, 224, (size_t)8 << 20), 0);
		free(jpg);
	}
	/* 2. A baseline JPEG of the same size streams: a small bound, and it
	 * decodes under it in the capped process. */
	{
		struct enc e = { 2048, 2048, 3, JCS_RGB, JCS_YCbCr, 75, NULL, 0 };
		uint8_t *rgb = pattern(2048, 2048), *jpg = encode_jpeg(&e, rgb, &len);
		nd_image_opts_init(&o);
		o.min_width = o.min_height = 224;
		o.max_memory = (size_t)4 << 20;
		CHECK_EQ_INT(decode_buf(jpg, len, &o, &err, &info), 0);
		CHECK(info.mem_bytes <= o.max_memory);
		CHECK_EQ_INT(decode_capped(jpg, len, o.max_memory, 224, (size_t)8 << 20), 0);
		free(jpg);
		free(rgb);
	}
	/* 3. An interlaced 16-bit RGBA PNG, 3000x3000: a de-interlacing decoder
	 * would hold the whole image (27 MiB at 8 bits, RGB); ours holds the
	 * reduced sums, so it decodes within 4 MiB, in the capped process too. */
	{
		uint8_t *png = encode_png16(3000, 3000, 1, &len);
		nd_image_opts_init(&o);
		o.min_width = o.min_height = 224;
		o.max_memory = (size_t)4 << 20;
		CHECK_EQ_INT(decode_buf(png, len, &o, &err, &info), 0);
		CHECK_EQ_INT(info.scale_denom, 8);
		CHECK(info.mem_bytes <= o.max_memory);
		CHECK_EQ_INT(decode_capped(png, len, o.max_memory, 224, (size_t)8 << 20), 0);
		/* At full size it needs the image itself twice: refused. */
		o.min_width = o.min_height = 0;
		CHECK_EQ_INT(decode_buf(png, len, &o, &err, &info), ND_ELIMIT);
		CHECK_MSG(!strcmp(err.msg, "interlaced PNG 3000x3000 needs 52 MiB to decode, over the 4 MiB memory limit"),
			  "'%s'", err.msg);
		free(png);
	}
}

/* ---- WebP, GIF, TIFF, BMP, PNM (goldens by scripts/make_golden_formats.py) ---- */

#define FMT_DIR TEST_DATA_DIR "/formats/"

static const struct fmt_case {
	const char *name;
	nd_image_format fmt;
	int orientation;
	int tol; /* max abs difference to PIL per sample */
} fmt_cases[] = {
	{ "lossy.webp", ND_FMT_WEBP, 1, 1 },    { "alpha.webp", ND_FMT_WEBP, 1, 1 },
	{ "orient6.webp", ND_FMT_WEBP, 6, 0 },  { "anim.webp", ND_FMT_WEBP, 1, 1 },
	{ "big.webp", ND_FMT_WEBP, 1, 0 },      { "palette.gif", ND_FMT_GIF, 1, 0 },
	{ "interlaced.gif", ND_FMT_GIF, 1, 0 }, { "transparent.gif", ND_FMT_GIF, 1, 0 },
	{ "anim.gif", ND_FMT_GIF, 1, 0 },       { "big.gif", ND_FMT_GIF, 1, 0 },
	{ "rgb.tif", ND_FMT_TIFF, 1, 0 },       { "lzw.tif", ND_FMT_TIFF, 1, 0 },
	{ "tiled.tif", ND_FMT_TIFF, 1, 0 },     { "grey.tif", ND_FMT_TIFF, 1, 0 },
	{ "grey16.tif", ND_FMT_TIFF, 1, 1 },    { "palette.tif", ND_FMT_TIFF, 1, 0 },
	{ "cmyk.tif", ND_FMT_TIFF, 1, 1 },      { "rgba.tif", ND_FMT_TIFF, 1, 1 },
	{ "orient6.tif", ND_FMT_TIFF, 6, 0 },   { "pages.tif", ND_FMT_TIFF, 1, 0 },
	{ "big.tif", ND_FMT_TIFF, 1, 0 },       { "rgb24.bmp", ND_FMT_BMP, 1, 0 },
	{ "pal8.bmp", ND_FMT_BMP, 1, 0 },       { "mono.bmp", ND_FMT_BMP, 1, 0 },
	{ "p1.pbm", ND_FMT_PNM, 1, 0 },         { "p2.pgm", ND_FMT_PNM, 1, 0 },
	{ "p3.ppm", ND_FMT_PNM, 1, 0 },         { "p4.pbm", ND_FMT_PNM, 1, 0 },
	{ "p5.pgm", ND_FMT_PNM, 1, 0 },         { "p6.ppm", ND_FMT_PNM, 1, 0 },
	{ "rgb.heic", ND_FMT_HEIF, 1, 0 },      { "alpha.heic", ND_FMT_HEIF, 1, 0 },
	{ "rgb.avif", ND_FMT_AVIF, 1, 0 },      { "alpha.avif", ND_FMT_AVIF, 1, 0 },
};
#define NFMT_CASES (sizeof(fmt_cases) / sizeof(fmt_cases[0]))

/* Every sample against PIL's decoding (HEIC and AVIF: heif-convert's), from
 * a file and from memory. */
static void test_formats_golden(void)
{
	char path[256], ppm[256];
	for (size_t i = 0; i < NFMT_CASES; i++) {
		const struct fmt_case *c = &fmt_cases[i];
		nd_image_info info = { 0 };
		snprintf(path, sizeof(path), FMT_DIR "%s", c->name);
		snprintf(ppm, sizeof(ppm), FMT_DIR "%s.ppm", c->name);
		check_golden(path, ppm, NULL, c->tol, c->tol ? 0.5 : 0.0, &info);
		CHECK_MSG(info.format == c->fmt && info.orientation == c->orientation,
			  "%s: format %d orientation %d", c->name, info.format, info.orientation);
		CHECK(strcmp(nd_image_format_name(info.format), "unknown") != 0);
		CHECK_MSG(nd_image_format_from_name(path) == c->fmt, "%s: extension", c->name);
	}
	CHECK_EQ_INT(nd_image_format_from_name("a/b.c/PHOTO.JPEG"), ND_FMT_JPEG);
	CHECK_EQ_INT(nd_image_format_from_name("a.webp/readme"), ND_FMT_UNKNOWN);
	CHECK_EQ_INT(nd_image_format_from_name("notes.txt"), ND_FMT_UNKNOWN);
	CHECK_EQ_INT(nd_image_format_from_name("tif"), ND_FMT_UNKNOWN);
}

/* Reduced decodes of the 64x48 samples at 1/4: the box average of PIL's
 * full decoding (exact for GIF and TIFF, which reduce in the sink; libwebp
 * rescales itself, so WebP is compared by the mean). */
static void test_formats_scaled(void)
{
	static const char *names[] = { "big.gif", "big.tif", "big.webp" };
	for (size_t i = 0; i < 3; i++) {
		char path[256], ppm[256];
		int w, h;
		snprintf(path, sizeof(path), FMT_DIR "%s", names[i]);
		snprintf(ppm, sizeof(ppm), FMT_DIR "%s.ppm", names[i]);
		uint8_t *ref = load_ppm(ppm, &w, &h);
		nd_image_opts o;
		nd_image img = { 0 };
		nd_image_info info;
		nd_error err;
		nd_image_opts_init(&o);
		o.min_width = 16;
		o.min_height = 12;
		CHECK(ref != NULL);
		CHECK_EQ_INT(nd_image_decode_file(path, &o, &img, &info, &err), 0);
		CHECK_EQ_INT(info.scale_denom, 4);
		if (ref && img.rgb && img.width == 16 && img.height == 12) {
			int mx = 0;
			long sum = 0;
			for (int y = 0; y < 12; y++)
				for (int x = 0; x < 16; x++)
					for (int k = 0; k < 3; k++) {
						unsigned acc = 0;
						for (int dy = 0; dy < 4; dy++)
							for (int dx = 0; dx < 4; dx++)
								acc += ref[((size_t)(y * 4 + dy) * w + x * 4 + dx) * 3 + k];
						int d = abs((int)((acc + 8) / 16) - img.rgb[(y * 16 + x) * 3 + k]);
						mx = d > mx ? d : mx;
						sum += d;
					}
			if (strstr(names[i], "webp"))
				CHECK_MSG(sum / (16.0 * 12 * 3) < 3.0, "%s: mean %.2f", names[i], sum / (16.0 * 12 * 3));
			else
				CHECK_MSG(mx == 0, "%s: max %d", names[i], mx);
		} else {
			CHECK_MSG(0, "%s: decoded %dx%d", names[i], img.width, img.height);
		}
		nd_image_free(&img);
		free(ref);
	}
}

/* Truncated and bit-flipped copies of every sample: an error that names the
 * format, or (for a cut that only loses what comes after the first image)
 * the same pixels; never a crash or a different image. Plain (ASCII) PNM
 * is only checked for not crashing: a cut inside its last number leaves a
 * valid smaller number. */
static void test_formats_bad_input(void)
{
	static const char *labels[] = { [ND_FMT_WEBP] = "WebP", [ND_FMT_GIF] = "GIF",
					[ND_FMT_TIFF] = "TIFF", [ND_FMT_BMP] = "BMP",
					[ND_FMT_PNM] = "PNM", [ND_FMT_HEIF] = "HEIF",
					[ND_FMT_AVIF] = "AVIF" };
	uint32_t seed = 12345;
	for (size_t i = 0; i < NFMT_CASES; i++) {
		const struct fmt_case *c = &fmt_cases[i];
		char path[256];
		size_t len;
		snprintf(path, sizeof(path), FMT_DIR "%s", c->name);
		uint8_t *data = tl_read_file(path, &len);
		nd_image full = { 0 };
		nd_error err;
		CHECK(data != NULL);
		if (!data || nd_image_decode_mem(data, len, NULL, &full, NULL, &err) != 0) {
			free(data);
			continue;
		}
		int plain = c->name[0] == 'p' && c->name[1] >= '1' && c->name[1] <= '3';
		for (int k = 1; k <= 33; k++) {
			size_t cut = k == 33 ? len - 1 : len * (size_t)k / 33;
			nd_image img = { 0 };
			int rc = nd_image_decode_mem(data, cut, NULL, &img, NULL, &err);
			if (plain) {
				nd_image_free(&img);
				continue;
			}
			if (rc == 0) {
				CHECK_MSG(img.width == full.width && img.height == full.height &&
						  !memcmp(img.rgb, full.rgb, (size_t)full.width * full.height * 3),
					  "%s cut at %zu/%zu: decoded a different image", c->name, cut, len);
			} else if (cut >= ND_IMAGE_SNIFF_BYTES) {
				CHECK_MSG(strstr(err.msg, labels[c->fmt]) != NULL, "%s cut at %zu: '%s'",
					  c->name, cut, err.msg);
			}
			CHECK(rc == 0 || img.rgb == NULL);
			nd_image_free(&img);
		}
		uint8_t *copy = malloc(len);
		for (int k = 0; k < 300; k++) {
			memcpy(copy, data, len);
			for (int b = 0; b < 1 + k % 4; b++) {
				seed = seed * 1103515245u + 12345u;
				size_t at = (seed >> 8) % len;
				copy[at] ^= (uint8_t)(1u << (seed % 8));
			}
			nd_image img = { 0 };
			int rc = nd_image_decode_mem(copy, len, NULL, &img, NULL, &err);
			CHECK(rc == 0 ? img.rgb != NULL : (img.rgb == NULL && err.msg[0] != 0));
			nd_image_free(&img);
		}
		free(copy);
		nd_image_free(&full);
		free(data);
	}
}

static uint32_t le32_get(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, v);
	put_le16(p + 2, v >> 16);
}

/* A GIF of a sw x sh screen holding one w x h image (interlaced or not) of
 * a single colour: a few bytes that declare as much as we like. */
static size_t make_gif(uint8_t *out, int sw, int sh, int w, int h, int interlace)
{
	uint8_t *p = out;
	memcpy(p, "GIF89a", 6);
	put_le16(p + 6, (uint32_t)sw);
	put_le16(p + 8, (uint32_t)sh);
	p[10] = 0x80; /* global colour table of 2 */
	p[11] = p[12] = 0;
	p += 13;
	static const uint8_t gct[6] = { 10, 200, 30, 0, 0, 0 };
	memcpy(p, gct, 6);
	p += 6;
	*p++ = 0x2c;
	put_le16(p, 0);
	put_le16(p + 2, 0);
	put_le16(p + 4, (uint32_t)w);
	put_le16(p + 6, (uint32_t)h);
	p[8] = interlace ? 0x40 : 0;
	p += 9;
	/* LZW, min code size 2: clear(4), index 0, end(5) */
	static const uint8_t lzw[] = { 2, 2, 0x44, 0x01, 0 };
	memcpy(p, lzw, sizeof(lzw));
	p += sizeof(lzw);
	*p++ = 0x3b;
	return (size_t)(p - out);
}

/* A little-endian TIFF whose one directory declares w x h 8-bit RGB in a
 * single strip, uncompressed (1) or Deflate (8); the strip itself is a few
 * bytes. */
static size_t make_tiff(uint8_t *out, uint32_t w, uint32_t h, uint32_t compression)
{
	static const uint16_t tags[][2] = { { 256, 4 }, { 257, 4 }, { 258, 3 }, { 259, 3 },
					    { 262, 3 }, { 273, 4 }, { 277, 3 }, { 278, 4 },
					    { 279, 4 } };
	uint32_t vals[9] = { w, h, 8, compression, 2, 200, 3, h, (uint32_t)((uint64_t)w * h * 3 > 0xffffffffu ? 0xffffffffu : w * h * 3) };
	memset(out, 0, 256);
	memcpy(out, "II*\0", 4);
	put_le32(out + 4, 8);
	put_le16(out + 8, 9);
	for (int i = 0; i < 9; i++) {
		uint8_t *e = out + 10 + i * 12;
		put_le16(e, tags[i][0]);
		put_le16(e + 2, tags[i][1]);
		put_le32(e + 4, 1);
		if (tags[i][1] == 3)
			put_le16(e + 8, vals[i]);
		else
			put_le32(e + 8, vals[i]);
	}
	put_le32(out + 10 + 9 * 12, 0);
	return 256;
}

/* Declared sizes over the limits are refused from the header; decompression
 * bombs are refused or decoded within the memory bound (a capped process). */
static void test_formats_limits(void)
{
	uint8_t buf[512];
	nd_error err;
	nd_image_info info;
	nd_image_opts o;
	size_t len;
	/* GIF: a 65535x65535 screen */
	len = make_gif(buf, 65535, 65535, 1, 1, 0);
	CHECK_EQ_INT(decode_buf(buf, len, NULL, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "image 65535x65535 exceeds the 100-megapixel limit"), "'%s'", err.msg);
	/* GIF: a 10000x10000 screen with a 1x1 image decodes (reduced), in bounded memory */
	nd_image_opts_init(&o);
	o.min_width = o.min_height = 224;
	len = make_gif(buf, 10000, 10000, 1, 1, 0);
	CHECK_EQ_INT(decode_buf(buf, len, &o, &err, &info), 0);
	CHECK(info.scale_denom == 8 && info.mem_bytes <= o.max_memory);
	CHECK_EQ_INT(decode_capped(buf, len, o.max_memory, 224, (size_t)8 << 20), 0);
	/* GIF: an interlaced 10000x10000 image needs its index plane: refused */
	len = make_gif(buf, 10000, 10000, 10000, 10000, 1);
	CHECK_EQ_INT(decode_buf(buf, len, &o, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "interlaced GIF 10000x10000 needs 100 MiB to decode, over the 64 MiB memory limit"),
		  "'%s'", err.msg);
	/* ... and the same image not interlaced streams: the data runs out */
	len = make_gif(buf, 10000, 10000, 10000, 10000, 0);
	CHECK_EQ_INT(decode_buf(buf, len, &o, &err, NULL), ND_ECORRUPT);
	CHECK_MSG(!strcmp(err.msg, "truncated GIF data"), "'%s'", err.msg);
	/* TIFF: 70000x70000, and a single 8000x8000 strip */
	len = make_tiff(buf, 70000, 70000, 1);
	CHECK_EQ_INT(decode_buf(buf, len, NULL, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "image 70000x70000 exceeds the 100-megapixel limit"), "'%s'", err.msg);
	len = make_tiff(buf, 8000, 8000, 8); /* one compressed strip: libtiff decodes it whole */
	CHECK_EQ_INT(decode_buf(buf, len, &o, &err, NULL), ND_ELIMIT);
	CHECK_MSG(strstr(err.msg, "TIFF 8000x8000 needs") && strstr(err.msg, "over the 64 MiB memory limit"),
		  "'%s'", err.msg);
	/* uncompressed, libtiff reads the strip in pieces: bounded, and here
	 * the data is not there */
	len = make_tiff(buf, 8000, 8000, 1);
	CHECK_EQ_INT(decode_buf(buf, len, &o, &err, &info), ND_ECORRUPT);
	CHECK_MSG(strstr(err.msg, "TIFF") != NULL, "'%s'", err.msg);
	len = make_tiff(buf, 2, 2, 1); /* the sanity case: the same layout small decodes */
	for (int i = 0; i < 12; i++)
		buf[200 + i] = (uint8_t)(i * 20);
	CHECK_EQ_INT(decode_buf(buf, len, NULL, &err, NULL), 0);
	/* BMP: width and height patched to 70000 */
	uint8_t *bmp = tl_read_file(FMT_DIR "rgb24.bmp", &len);
	put_le32(bmp + 18, 70000);
	put_le32(bmp + 22, 70000);
	CHECK_EQ_INT(decode_buf(bmp, len, NULL, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "image 70000x70000 exceeds the 100-megapixel limit"), "'%s'", err.msg);
	put_le32(bmp + 18, 48);
	put_le32(bmp + 22, 3200); /* the rows are not there */
	CHECK_EQ_INT(decode_buf(bmp, len, NULL, &err, NULL), ND_ECORRUPT);
	CHECK_MSG(!strcmp(err.msg, "truncated BMP data"), "'%s'", err.msg);
	free(bmp);
	/* PNM */
	const char *pnm = "P6\n70000 70000\n255\n";
	CHECK_EQ_INT(decode_buf(pnm, strlen(pnm), NULL, &err, NULL), ND_ELIMIT);
	pnm = "P5\n4 4\n255\nab";
	CHECK_EQ_INT(decode_buf(pnm, strlen(pnm), NULL, &err, NULL), ND_ECORRUPT);
	CHECK_MSG(!strcmp(err.msg, "truncated PNM data"), "'%s'", err.msg);
	pnm = "P2\n2 1\n15\n3 16\n";
	CHECK_EQ_INT(decode_buf(pnm, strlen(pnm), NULL, &err, NULL), ND_ECORRUPT);
	CHECK_MSG(!strcmp(err.msg, "corrupt PNM data: sample above maxval"), "'%s'", err.msg);
	/* WebP: a lossless stream declaring 10000x10000 (libwebp would hold the
	 * whole ARGB image twice): refused from the header */
	uint8_t *webp = tl_read_file(FMT_DIR "alpha.webp", &len);
	CHECK(webp && !memcmp(webp + 12, "VP8L", 4) && webp[20] == 0x2f);
	uint32_t bits = le32_get(webp + 21);
	bits = (bits & 0xf0000000u) | 9999u | 9999u << 14;
	put_le32(webp + 21, bits);
	CHECK_EQ_INT(decode_buf(webp, len, &o, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "WebP 10000x10000 needs 870 MiB to decode, over the 64 MiB memory limit"),
		  "'%s'", err.msg);
	free(webp);
	/* HEIC: every ispe (image size) patched to 10000x10000: libheif has no
	 * reduced decode, so the full-size planes are over the bound */
	uint8_t *heic = tl_read_file(FMT_DIR "rgb.heic", &len);
	int patched = 0;
	for (size_t i = 0; heic && i + 16 <= len; i++)
		if (!memcmp(heic + i, "ispe", 4)) {
			for (int k = 0; k < 2; k++) {
				heic[i + 8 + k * 4] = 0;
				heic[i + 9 + k * 4] = 0;
				heic[i + 10 + k * 4] = 0x27;
				heic[i + 11 + k * 4] = 0x10;
			}
			patched++;
		}
	CHECK(patched > 0);
	CHECK_EQ_INT(decode_buf(heic, len, &o, &err, NULL), ND_ELIMIT);
	CHECK_MSG(!strcmp(err.msg, "HEIF 10000x10000 needs 442 MiB to decode, over the 64 MiB memory limit"),
		  "'%s'", err.msg);
	free(heic);
	/* a real HEIC and AVIF decode within their bound in a capped process;
	 * the slack also covers the decoder threads' stacks (libde265 waits
	 * forever when it cannot start one: the child's alarm ends that) */
	static const char *const heifs[] = { FMT_DIR "alpha.heic", FMT_DIR "alpha.avif" };
	for (int i = 0; i < 2; i++) {
		uint8_t *d = tl_read_file(heifs[i], &len);
		CHECK_EQ_INT(decode_buf(d, len, NULL, &err, &info), 0);
		CHECK_EQ_INT(decode_capped(d, len, info.mem_bytes, 0, (size_t)32 << 20), 0);
		free(d);
	}
}

/* Errors are per call: two threads failing differently never mix messages. */
#include <pthread.h>
static void *worker(void *arg)
{
	const char *path = arg;
	size_t len;
	uint8_t *data = tl_read_file(path, &len);
	int bad = 0;
	for (int i = 0; i < 30 && data; i++) {
		nd_error err;
		nd_image img = { 0 };
		int rc = nd_image_decode_mem(data, len / 2, NULL, &img, NULL, &err);
		const char *want = strstr(path, ".png") ? "truncated PNG data" : "truncated JPEG data";
		bad |= rc != ND_ECORRUPT || strcmp(err.msg, want) != 0;
		rc = nd_image_decode_mem(data, len, NULL, &img, NULL, &err);
		bad |= rc != 0;
		nd_image_free(&img);
	}
	free(data);
	return (void *)(intptr_t)(bad || !data);
}

static void test_threads(void)
{
	pthread_t a, b;
	void *ra, *rb;
	pthread_create(&a, NULL, worker, (void *)(IMG_DIR "progressive.jpg"));
	pthread_create(&b, NULL, worker, (void *)(IMG_DIR "big.png"));
	pthread_join(a, &ra);
	pthread_join(b, &rb);
	CHECK(ra == NULL);
	CHECK(rb == NULL);
}

/* LeakSanitizer: libheif's AV1 decoder plugin leaves 40 bytes of dav1d's
 * behind for some corrupt AVIF files it rejects (bit-flip test); that is
 * theirs, not ours, and nothing we can free. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libdav1d.so\n";
}

int main(int argc, char **argv)
{
	if (argc == 6 && !strcmp(argv[1], "--decode-capped"))
		return capped_child(argv);
	test_select(argc, argv);
	RUN(test_jpeg_variants);
	RUN(test_jpeg_orientations);
	RUN(test_jpeg_dct_scale);
	RUN(test_jpeg_scale_orientation);
	RUN(test_jpeg_ycck);
	RUN(test_jpeg_many_app1);
	RUN(test_pngsuite);
	RUN(test_png_reduce);
	RUN(test_png_adam7_reduce);
	RUN(test_png_exif_orientation);
	RUN(test_png_background);
	RUN(test_png_fast_path);
	RUN(test_empty_and_not_image);
	RUN(test_wrong_extension);
	RUN(test_truncated);
	RUN(test_bit_flips);
	RUN(test_huge_dimensions);
	RUN(test_scan_bomb);
	RUN(test_png_chunk_bombs);
	RUN(test_memory_bombs);
	RUN(test_formats_golden);
	RUN(test_formats_scaled);
	RUN(test_formats_bad_input);
	RUN(test_formats_limits);
	RUN(test_threads);
	return test_summary();
}
