/* Tests for prep: the separable resize + normalisation against a naive
 * reference that computes every output pixel directly from its definition
 * (exact area coverage in double precision when shrinking an axis, the
 * bilinear tent when enlarging it).
 *
 * Tolerance: max |out - ref| <= 1e-5 in normalised units (values span about
 * 4.5 for ImageNet mean/std; one 8-bit step is about 0.017); measured at most
 * 7.5e-7. The implementation accumulates in float, the reference in double. */
#include "neardup/prep.h"

#include <stdint.h>

#include "test.h"

static const nd_prep_params imagenet = {
	224, 224, { 0.485f, 0.456f, 0.406f }, { 0.229f, 0.224f, 0.225f }
};

static uint32_t rng_state = 1;
static uint8_t rnd8(void)
{
	rng_state = rng_state * 1664525u + 1013904223u;
	return (uint8_t)(rng_state >> 24);
}

static nd_image random_image(int w, int h)
{
	nd_image img = { w, h, malloc((size_t)w * h * 3) };
	for (size_t i = 0; i < (size_t)w * h * 3; i++)
		img.rgb[i] = rnd8();
	return img;
}

/* Weight of source sample i for output o along one axis, from the
 * definition. */
static double ref_weight(int o, int i, int S, int D)
{
	if (S >= D) {
		double a = (double)o * S / D, b = (double)(o + 1) * S / D;
		double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
		return hi > lo ? (hi - lo) / (b - a) : 0.0;
	}
	double x = (o + 0.5) * S / D - 0.5;
	if (x < 0)
		x = 0;
	if (x > S - 1)
		x = S - 1;
	double t = 1.0 - fabs(i - x);
	return t > 0 ? t : 0.0;
}

static double max_error(const nd_image *img, const nd_prep_params *p, const float *out)
{
	const int W = p->width, H = p->height;
	double worst = 0;
	double *wx = malloc(sizeof(double) * (size_t)img->width);
	for (int oy = 0; oy < H; oy++)
		for (int ox = 0; ox < W; ox++) {
			double acc[3] = { 0, 0, 0 };
			for (int i = 0; i < img->width; i++)
				wx[i] = ref_weight(ox, i, img->width, W);
			for (int j = 0; j < img->height; j++) {
				double wy = ref_weight(oy, j, img->height, H);
				if (wy == 0)
					continue;
				for (int i = 0; i < img->width; i++) {
					if (wx[i] == 0)
						continue;
					const uint8_t *px = img->rgb + ((size_t)j * img->width + i) * 3;
					for (int c = 0; c < 3; c++)
						acc[c] += wy * wx[i] * px[c];
				}
			}
			for (int c = 0; c < 3; c++) {
				double ref = (acc[c] / 255.0 - p->mean[c]) / p->std[c];
				double got = out[(size_t)c * W * H + (size_t)oy * W + ox];
				double e = fabs(got - ref);
				if (e > worst)
					worst = e;
			}
		}
	free(wx);
	return worst;
}

static void check_case(int sw, int sh, int W, int H)
{
	nd_prep_params p = imagenet;
	nd_image img = random_image(sw, sh);
	nd_error err;
	p.width = W;
	p.height = H;
	float *out = malloc(sizeof(float) * 3 * (size_t)W * H);
	CHECK_EQ_INT(nd_prep_image(&img, &p, out, NULL, &err), 0);
	double e = max_error(&img, &p, out);
	CHECK_MSG(e <= 1e-5, "%dx%d -> %dx%d: max error %g", sw, sh, W, H, e);
	if (getenv("TEST_VERBOSE"))
		fprintf(stderr, "%dx%d -> %dx%d: max error %g\n", sw, sh, W, H, e);
	free(out);
	free(img.rgb);
}

static void test_downsample(void)
{
	check_case(500, 375, 224, 224);   /* fractional ratios both ways */
	check_case(448, 448, 224, 224);   /* exact 2x: plain 2x2 means */
	check_case(1000, 7, 13, 5);       /* very wide */
	check_case(225, 224, 224, 224);   /* just above the model size */
	check_case(97, 61, 1, 1);         /* everything into one pixel */
}

static void test_upsample(void)
{
	check_case(37, 23, 224, 224);
	check_case(1, 1, 4, 3);
	check_case(2, 2, 9, 9);
}

static void test_mixed_axes(void)
{
	check_case(300, 100, 224, 224); /* shrink x, enlarge y */
	check_case(50, 700, 64, 32);    /* enlarge x, shrink y */
}

static void test_identity_and_layout(void)
{
	nd_prep_params p = imagenet;
	nd_error err;
	p.width = 7;
	p.height = 5;
	nd_image img = random_image(7, 5);
	float out[3 * 7 * 5];
	CHECK_EQ_INT(nd_prep_image(&img, &p, out, NULL, &err), 0);
	/* Same size: exactly the normalised pixels, planar [c][y][x]. */
	for (int c = 0; c < 3; c++)
		for (int y = 0; y < 5; y++)
			for (int x = 0; x < 7; x++) {
				double want = (img.rgb[(y * 7 + x) * 3 + c] / 255.0 - p.mean[c]) / p.std[c];
				CHECK_NEAR(out[c * 35 + y * 7 + x], want, 1e-5);
			}
	free(img.rgb);
}

static void test_constant_image(void)
{
	/* Weights sum to one: a flat image stays flat through any resize. */
	static const int sizes[][4] = { { 333, 211, 224, 224 }, { 10, 13, 224, 224 }, { 300, 5, 17, 9 } };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		nd_prep_params p = imagenet;
		nd_error err;
		int sw = sizes[k][0], sh = sizes[k][1];
		p.width = sizes[k][2];
		p.height = sizes[k][3];
		nd_image img = { sw, sh, malloc((size_t)sw * sh * 3) };
		for (int i = 0; i < sw * sh; i++) {
			img.rgb[i * 3] = 200;
			img.rgb[i * 3 + 1] = 100;
			img.rgb[i * 3 + 2] = 3;
		}
		size_t n = (size_t)p.width * p.height;
		float *out = malloc(sizeof(float) * 3 * n);
		CHECK_EQ_INT(nd_prep_image(&img, &p, out, NULL, &err), 0);
		const double v[3] = { 200, 100, 3 };
		for (int c = 0; c < 3; c++) {
			double want = (v[c] / 255.0 - p.mean[c]) / p.std[c];
			double worst = 0;
			for (size_t i = 0; i < n; i++)
				worst = fmax(worst, fabs(out[c * n + i] - want));
			CHECK_MSG(worst < 2e-5, "case %zu channel %d: %g", k, c, worst);
		}
		free(out);
		free(img.rgb);
	}
}

static void test_scratch(void)
{
	nd_prep_params p = imagenet;
	nd_error err;
	size_t need = nd_prep_scratch_size(&p);
	CHECK(need > 0 && need < 16384); /* 224x224: about 14 KiB, image-independent */
	nd_image img = random_image(640, 480);
	float *a = malloc(sizeof(float) * 3 * 224 * 224), *b = malloc(sizeof(float) * 3 * 224 * 224);
	void *scratch = malloc(need);
	memset(scratch, 0xab, need); /* no reliance on zeroed scratch */
	CHECK_EQ_INT(nd_prep_image(&img, &p, a, NULL, &err), 0);
	CHECK_EQ_INT(nd_prep_image(&img, &p, b, scratch, &err), 0);
	CHECK(!memcmp(a, b, sizeof(float) * 3 * 224 * 224));
	/* Reused for another image size. */
	nd_image small = random_image(31, 17);
	CHECK_EQ_INT(nd_prep_image(&small, &p, a, NULL, &err), 0);
	CHECK_EQ_INT(nd_prep_image(&small, &p, b, scratch, &err), 0);
	CHECK(!memcmp(a, b, sizeof(float) * 3 * 224 * 224));
	free(small.rgb);
	free(scratch);
	free(a);
	free(b);
	free(img.rgb);
}

static void test_invalid(void)
{
	nd_prep_params p = imagenet;
	nd_error err;
	float out[3];
	nd_image img = random_image(4, 4), empty = { 0, 0, NULL };
	p.width = p.height = 1;
	CHECK_EQ_INT(nd_prep_image(&empty, &p, out, NULL, &err), ND_EINVAL);
	p.std[1] = 0;
	CHECK_EQ_INT(nd_prep_image(&img, &p, out, NULL, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_prep_scratch_size(&p), 0);
	p = imagenet;
	p.width = 0;
	CHECK_EQ_INT(nd_prep_image(&img, &p, out, NULL, &err), ND_EINVAL);
	p.width = 100000;
	CHECK_EQ_INT(nd_prep_image(&img, &p, out, NULL, &err), ND_EINVAL);
	CHECK(strlen(err.msg) > 0);
	free(img.rgb);
}

/* A random picture of pw x ph at (px, py) on a flat canvas of w x h, with
 * a title bar of bar rows carrying a few "letters" of another colour. */
static nd_image framed(int w, int h, int px, int py, int pw, int ph, int bar)
{
	nd_image img = { w, h, malloc((size_t)w * h * 3) };
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			uint8_t *p = img.rgb + ((size_t)y * w + x) * 3;
			int in = x >= px && x < px + pw && y >= py && y < py + ph;
			if (in) {
				p[0] = rnd8();
				p[1] = rnd8();
				p[2] = rnd8();
			} else if (y < bar) {
				int letter = x > 4 && x < w / 20 + 5 && (x + y) % 3 == 0;
				p[0] = letter ? 255 : 40;
				p[1] = letter ? 255 : 60;
				p[2] = letter ? 255 : 120;
			} else {
				p[0] = (uint8_t)(235 + (x + y) % 3); /* flat within the tolerance */
				p[1] = p[2] = 235;
			}
		}
	return img;
}

static void test_content_box(void)
{
	int x0, y0, x1, y1;
	/* a border on all sides */
	nd_image a = framed(200, 150, 20, 15, 160, 120, 0);
	CHECK_EQ_INT(nd_prep_content_box(&a, &x0, &y0, &x1, &y1), 1);
	CHECK_EQ_INT(x0, 20);
	CHECK_EQ_INT(y0, 15);
	CHECK_EQ_INT(x1, 180);
	CHECK_EQ_INT(y1, 135);
	free(a.rgb);
	/* a screenshot: canvas, a title bar with text, the picture off centre */
	nd_image b = framed(400, 260, 150, 60, 180, 120, 20);
	CHECK_EQ_INT(nd_prep_content_box(&b, &x0, &y0, &x1, &y1), 1);
	CHECK_EQ_INT(x0, 150);
	CHECK_EQ_INT(y0, 60);
	CHECK_EQ_INT(x1, 330);
	CHECK_EQ_INT(y1, 180);
	free(b.rgb);
	/* a thin frame (less than the minimum cut) and no frame: the whole image */
	nd_image c = framed(200, 200, 2, 2, 196, 196, 0), d = random_image(64, 48);
	CHECK_EQ_INT(nd_prep_content_box(&c, &x0, &y0, &x1, &y1), 0);
	CHECK(x0 == 0 && y0 == 0 && x1 == 200 && y1 == 200);
	CHECK_EQ_INT(nd_prep_content_box(&d, &x0, &y0, &x1, &y1), 0);
	CHECK(x0 == 0 && y0 == 0 && x1 == 64 && y1 == 48);
	free(c.rgb);
	free(d.rgb);
	/* flat all over, and a picture too small to stand for the image */
	nd_image e = framed(300, 300, 0, 0, 0, 0, 0), f = framed(300, 300, 140, 140, 10, 10, 0);
	CHECK_EQ_INT(nd_prep_content_box(&e, &x0, &y0, &x1, &y1), 0);
	CHECK_EQ_INT(nd_prep_content_box(&f, &x0, &y0, &x1, &y1), 0);
	CHECK(x0 == 0 && y0 == 0 && x1 == 300 && y1 == 300);
	free(e.rgb);
	free(f.rgb);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_downsample);
	RUN(test_upsample);
	RUN(test_mixed_axes);
	RUN(test_identity_and_layout);
	RUN(test_constant_image);
	RUN(test_scratch);
	RUN(test_invalid);
	RUN(test_content_box);
	return test_summary();
}
