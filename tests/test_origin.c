/* Tests of the originality record (neardup/origin.h) and the keep rules
 * (neardup/keep.h), on images generated here: a textured colour "photo"
 * and the edits that dedup must tell from it. */
#include "neardup/keep.h"
#include "neardup/origin.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>
#include <libexif/exif-data.h>

/* A textured colour image: smooth shading, fine texture, a few edges. */
static nd_image photo(int w, int h, uint32_t seed)
{
	nd_image im = { w, h, malloc((size_t)w * h * 3) };
	uint32_t s = seed;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			s = s * 1664525u + 1013904223u;
			int t = (int)(s >> 28) - 8; /* fine texture, -8..7 */
			uint8_t *p = im.rgb + ((size_t)y * w + x) * 3;
			double v = 110 + 60 * sin(x / 11.0) * cos(y / 13.0) + ((x / 23 + y / 17) % 2) * 30;
			p[0] = (uint8_t)fmin(255, fmax(0, v + 40 + t));
			p[1] = (uint8_t)fmin(255, fmax(0, v + t));
			p[2] = (uint8_t)fmin(255, fmax(0, 0.6 * v + t));
		}
	return im;
}

static nd_image copy_image(const nd_image *a)
{
	nd_image b = { a->width, a->height, malloc((size_t)a->width * a->height * 3) };
	memcpy(b.rgb, a->rgb, (size_t)a->width * a->height * 3);
	return b;
}

static nd_origin measure(const nd_image *im)
{
	nd_origin o;
	nd_error err;
	nd_origin_init(&o);
	CHECK_EQ_INT(nd_origin_from_pixels(im, 1, &o, &err), 0);
	return o;
}

static void test_grey(void)
{
	nd_image c = photo(96, 80, 1), g = copy_image(&c);
	for (size_t i = 0; i < (size_t)g.width * g.height; i++) {
		uint8_t *p = g.rgb + 3 * i;
		p[0] = p[1] = p[2] = (uint8_t)((77 * p[0] + 150 * p[1] + 29 * p[2]) >> 8);
	}
	nd_origin oc = measure(&c), og = measure(&g);
	CHECK(!nd_origin_is_grey(&oc));
	CHECK(nd_origin_is_grey(&og));
	/* a colour original beats its greyscale copy even when that one is larger */
	nd_keep_item a = { 1, 96, 80, 1000, 0, "a", &oc }, b = { 2, 960, 800, 99999, 0, "b", &og };
	const char *why = NULL;
	CHECK(nd_keep_cmp(ND_KEEP_ORIGINAL, &a, &b, &why) < 0);
	CHECK(why && !strcmp(why, "colour"));
	CHECK(nd_keep_cmp(ND_KEEP_RESOLUTION, &a, &b, NULL) > 0);
	free(c.rgb);
	free(g.rgb);
}

/* The photo inside a solid frame of width f on every side. */
static nd_image framed(const nd_image *in, int f, const uint8_t col[3])
{
	int w = in->width + 2 * f, h = in->height + 2 * f;
	nd_image o = { w, h, malloc((size_t)w * h * 3) };
	for (int i = 0; i < w * h; i++)
		memcpy(o.rgb + 3 * i, col, 3);
	for (int y = 0; y < in->height; y++)
		memcpy(o.rgb + ((size_t)(y + f) * w + f) * 3, in->rgb + (size_t)y * in->width * 3,
		       (size_t)in->width * 3);
	return o;
}

static void test_margin(void)
{
	static const uint8_t red[3] = { 200, 30, 40 };
	nd_image c = photo(100, 100, 2), b = framed(&c, 12, red);
	nd_origin oc = measure(&c), ob = measure(&b);
	CHECK_NEAR(oc.margin, 0.0, 0.02);
	CHECK_NEAR(ob.margin, 1.0 - (100.0 * 100.0) / (124.0 * 124.0), 0.02);
	/* the framed copy has more pixels but not more content: the scores
	 * are close (or the copy's lower), and the source is the older file */
	CHECK(nd_origin_score(&ob, 124, 124) < nd_origin_score(&oc, 100, 100));
	nd_keep_item ka = { 1, 100, 100, 500, 1, "a", &oc }, kb = { 2, 124, 124, 900, 2, "b", &ob };
	const char *why;
	CHECK(nd_keep_cmp(ND_KEEP_ORIGINAL, &ka, &kb, &why) < 0);
	CHECK(nd_keep_cmp(ND_KEEP_RESOLUTION, &ka, &kb, NULL) > 0);
	free(c.rgb);
	free(b.rgb);
}

/* A caption bar: a solid band under the picture with text in its middle. */
static void test_caption_bar(void)
{
	nd_image c = photo(120, 90, 3);
	int bar = 24, w = 120, h = 90 + bar;
	nd_image o = { w, h, calloc((size_t)w * h * 3, 1) };
	memcpy(o.rgb, c.rgb, (size_t)w * 90 * 3);
	for (int y = 90 + 9; y < 90 + 15; y++) /* "text": white strokes */
		for (int x = 10; x < 110; x += 3)
			memset(o.rgb + ((size_t)y * w + x) * 3, 255, 3);
	nd_origin oc = measure(&c), oo = measure(&o);
	CHECK(oo.margin >= 8.0 * w / ((double)w * h)); /* the 9 rows under the text at least */
	CHECK(oo.margin > oc.margin + 0.05);
	free(c.rgb);
	free(o.rgb);
}

static uint8_t *encode_jpeg(const nd_image *im, int quality, const uint8_t *app1, size_t app1_len,
			    size_t *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	unsigned char *mem = NULL;
	unsigned long mlen = 0;
	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_mem_dest(&c, &mem, &mlen);
	c.image_width = (JDIMENSION)im->width;
	c.image_height = (JDIMENSION)im->height;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, quality, TRUE);
	jpeg_start_compress(&c, TRUE);
	if (app1)
		jpeg_write_marker(&c, JPEG_APP0 + 1, app1, (unsigned int)app1_len);
	while (c.next_scanline < c.image_height) {
		JSAMPROW row = (JSAMPROW)(im->rgb + (size_t)c.next_scanline * im->width * 3);
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	*len = mlen;
	return mem;
}

static void test_jpeg_quality(void)
{
	nd_image c = photo(64, 48, 4);
	static const int qs[] = { 5, 22, 30, 50, 75, 90, 95, 100 };
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		size_t len;
		uint8_t *j = encode_jpeg(&c, qs[i], NULL, 0, &len);
		nd_origin o;
		nd_origin_init(&o);
		nd_origin_from_bytes(j, len, &o);
		CHECK_MSG(abs((int)o.quality - qs[i]) <= 1, "quality %d estimated %d", qs[i], o.quality);
		CHECK_EQ_INT(nd_origin_lossy(&o), qs[i] < 50 ? 2 : qs[i] < 80 ? 1 : 0);
		/* every truncation: no crash, at most what the whole file tells */
		for (size_t cut = 0; cut < len && cut < 700; cut += 7) {
			nd_origin t;
			nd_origin_init(&t);
			nd_origin_from_bytes(j, cut, &t);
			CHECK(t.quality == 0 || t.quality == o.quality);
		}
		free(j);
	}
	/* not a JPEG: nothing */
	nd_origin o;
	nd_origin_init(&o);
	nd_origin_from_bytes("\x89PNG\r\n\x1a\n\0\0\0\0", 12, &o);
	CHECK_EQ_INT(o.quality, 0);
	uint16_t t[64] = { 0 };
	CHECK_EQ_INT(nd_origin_jpeg_quality(t), 0);
	free(c.rgb);
}

/* A JPEG at low quality, decoded back to pixels (what a PNG saved from it
 * holds), shows its 8x8 blocks; the clean image does not. */
static void test_blockiness(void)
{
	nd_image c = photo(128, 128, 5);
	size_t len;
	uint8_t *j = encode_jpeg(&c, 10, NULL, 0, &len);
	nd_image d = { 0 };
	nd_error err;
	CHECK_EQ_INT(nd_image_decode_mem(j, len, NULL, &d, NULL, &err), 0);
	nd_origin oc = measure(&c), od = measure(&d);
	CHECK_MSG(oc.blockiness < 1.2f, "clean %.2f", oc.blockiness);
	CHECK_MSG(od.blockiness > 1.5f, "decoded JPEG %.2f", od.blockiness);
	CHECK_EQ_INT(nd_origin_lossy(&oc), 0);
	CHECK_EQ_INT(nd_origin_lossy(&od), 1); /* a lossless file that was a JPEG */
	free(j);
	free(c.rgb);
	nd_image_free(&d);
}

static void test_noise_and_detail(void)
{
	nd_image c = photo(128, 128, 6), n = copy_image(&c), b = copy_image(&c);
	/* a smooth image (no texture) and the same with Gaussian noise */
	for (int y = 0; y < 128; y++)
		for (int x = 0; x < 128; x++) {
			uint8_t *p = c.rgb + ((size_t)y * 128 + x) * 3;
			p[0] = p[1] = p[2] = (uint8_t)(60 + x + (y > 64) * 40);
			p[1] = (uint8_t)(p[1] / 2);
		}
	memcpy(n.rgb, c.rgb, 128 * 128 * 3);
	uint32_t s = 7;
	for (size_t i = 0; i < 128 * 128 * 3; i += 3) {
		double g = 0; /* sum of 12 uniforms - 6: about N(0, 1) */
		for (int k = 0; k < 12; k++) {
			s = s * 1664525u + 1013904223u;
			g += (s >> 8) / 16777216.0;
		}
		int d = (int)lround((g - 6) * 15);
		for (int ch = 0; ch < 3; ch++)
			n.rgb[i + ch] = (uint8_t)fmin(255, fmax(0, n.rgb[i + ch] + d));
	}
	nd_origin oc = measure(&c), on = measure(&n);
	CHECK_MSG(oc.noise < 3.0f, "clean %.1f", oc.noise);
	CHECK_MSG(on.noise > 8.0f, "noisy %.1f", on.noise);
	/* on a textured picture, added noise lowers the score */
	nd_image tp = photo(128, 128, 13), tn = copy_image(&tp);
	for (size_t i = 0; i < 128 * 128 * 3; i++)
		tn.rgb[i] = (uint8_t)fmin(255, fmax(0, tn.rgb[i] + (int)n.rgb[i] - (int)c.rgb[i]));
	nd_origin otp = measure(&tp), otn = measure(&tn);
	CHECK_MSG(nd_origin_score(&otn, 128, 128) < nd_origin_score(&otp, 128, 128), "%.2f %.2f",
		  nd_origin_score(&otn, 128, 128), nd_origin_score(&otp, 128, 128));
	free(tp.rgb);
	free(tn.rgb);
	/* a 5x5 box blur of a finely textured image has less detail (the score
	 * need not say so: fine texture also looks like noise) */
	nd_image t = photo(128, 128, 8);
	for (int y = 0; y < 128; y++)
		for (int x = 0; x < 128; x++)
			for (int ch = 0; ch < 3; ch++) {
				int sum = 0, k = 0;
				for (int dy = -2; dy <= 2; dy++)
					for (int dx = -2; dx <= 2; dx++) {
						int xx = x + dx, yy = y + dy;
						if (xx >= 0 && xx < 128 && yy >= 0 && yy < 128) {
							sum += t.rgb[((size_t)yy * 128 + xx) * 3 + ch];
							k++;
						}
					}
				b.rgb[((size_t)y * 128 + x) * 3 + ch] = (uint8_t)(sum / k);
			}
	nd_origin ot = measure(&t), ob = measure(&b);
	CHECK_MSG(ob.detail < 0.6f * ot.detail, "detail %.3f blurred %.3f", ot.detail, ob.detail);
	free(c.rgb);
	free(n.rgb);
	free(b.rgb);
	free(t.rgb);
}

/* Stretched twice as wide (each column doubled): far from isotropic. */
static void test_aniso(void)
{
	nd_image c = photo(80, 80, 9);
	nd_image s = { 160, 80, malloc(160 * 80 * 3) };
	for (int y = 0; y < 80; y++)
		for (int x = 0; x < 160; x++)
			memcpy(s.rgb + ((size_t)y * 160 + x) * 3, c.rgb + ((size_t)y * 80 + x / 2) * 3, 3);
	nd_origin oc = measure(&c), os = measure(&s);
	CHECK_MSG(fabsf(os.aniso) > fabsf(oc.aniso) + 0.5f, "aniso %.2f stretched %.2f", oc.aniso, os.aniso);
	free(c.rgb);
	free(s.rgb);
}

static void test_exif(void)
{
	ExifData *ed = exif_data_new();
	exif_data_set_byte_order(ed, EXIF_BYTE_ORDER_INTEL);
	ExifEntry *e = exif_entry_new();
	exif_content_add_entry(ed->ifd[EXIF_IFD_0], e);
	exif_entry_initialize(e, EXIF_TAG_MAKE);
	e->format = EXIF_FORMAT_ASCII;
	e->components = e->size = 8;
	free(e->data);
	e->data = (unsigned char *)strdup("Camera1");
	exif_entry_unref(e);
	e = exif_entry_new();
	exif_content_add_entry(ed->ifd[EXIF_IFD_EXIF], e);
	exif_entry_initialize(e, EXIF_TAG_DATE_TIME_ORIGINAL);
	free(e->data);
	e->data = (unsigned char *)strdup("2020:01:02 03:04:05");
	e->components = e->size = 20;
	exif_entry_unref(e);
	unsigned char *blob = NULL;
	unsigned int blen = 0;
	exif_data_save_data(ed, &blob, &blen);
	exif_data_unref(ed);
	CHECK(blob && blen > 6);

	nd_image c = photo(32, 32, 10);
	size_t len;
	uint8_t *j = encode_jpeg(&c, 90, blob, blen, &len);
	nd_origin o;
	nd_origin_init(&o);
	nd_origin_from_bytes(j, len, &o);
	CHECK_EQ_INT(o.camera, 1);
	CHECK_EQ_INT(o.taken, 1577934245); /* 2020-01-02 03:04:05 */
	/* the camera original beats a larger copy without EXIF */
	nd_origin plain;
	nd_origin_init(&plain);
	CHECK_EQ_INT(nd_origin_from_pixels(&c, 1, &o, NULL), 0);
	CHECK_EQ_INT(nd_origin_from_pixels(&c, 1, &plain, NULL), 0);
	nd_keep_item a = { 1, 32, 32, len, 5, "a", &o }, b = { 2, 64, 64, len, 1, "b", &plain };
	const char *why;
	CHECK(nd_keep_cmp(ND_KEEP_ORIGINAL, &a, &b, &why) < 0 && !strcmp(why, "camera EXIF"));
	free(j);
	free(blob);
	free(c.rgb);
}

static void test_codec(void)
{
	nd_image c = photo(40, 30, 11);
	nd_origin o = measure(&c), back;
	o.quality = 77;
	o.camera = 1;
	o.taken = 1234567890;
	uint8_t buf[ND_ORIGIN_SIZE];
	nd_error err;
	nd_origin_encode(&o, buf);
	CHECK_EQ_INT(nd_origin_decode(buf, &back, &err), 0);
	CHECK(!memcmp(&o, &back, sizeof(o)) || (o.chroma == back.chroma && o.taken == back.taken &&
						o.quality == back.quality && o.margin == back.margin));
	/* a NaN and an out-of-range field are refused */
	float nan = NAN;
	memcpy(buf + 4, &nan, 4);
	CHECK_EQ_INT(nd_origin_decode(buf, &back, &err), ND_ECORRUPT);
	nd_origin_encode(&o, buf);
	buf[32] = 101; /* quality */
	CHECK_EQ_INT(nd_origin_decode(buf, &back, &err), ND_ECORRUPT);
	free(c.rgb);
}

static void test_keep_rules(void)
{
	nd_keep_rule r;
	CHECK_EQ_INT(nd_keep_rule_parse("original", &r), 0);
	CHECK_EQ_INT(r, ND_KEEP_ORIGINAL);
	CHECK_EQ_INT(nd_keep_rule_parse("first-path", &r), 0);
	CHECK_EQ_INT(r, ND_KEEP_FIRST_PATH);
	CHECK_EQ_INT(nd_keep_rule_parse("biggest", &r), ND_EINVAL);
	for (int i = 0; i < ND_KEEP_RULE_COUNT; i++) {
		CHECK_EQ_INT(nd_keep_rule_parse(nd_keep_rule_name((nd_keep_rule)i), &r), 0);
		CHECK_EQ_INT(r, i);
	}
	/* the same picture (flipped): the older file is the source */
	nd_image c = photo(64, 64, 12);
	nd_origin o = measure(&c);
	nd_keep_item a = { 1, 64, 64, 100, 200, "z", &o }, b = { 2, 64, 64, 300, 100, "a", &o };
	const char *why;
	CHECK(nd_keep_cmp(ND_KEEP_ORIGINAL, &a, &b, &why) > 0 && !strcmp(why, "older file"));
	CHECK(nd_keep_cmp(ND_KEEP_LARGEST, &a, &b, NULL) > 0);
	CHECK(nd_keep_cmp(ND_KEEP_SMALLEST, &a, &b, NULL) < 0);
	CHECK(nd_keep_cmp(ND_KEEP_NEWEST, &a, &b, NULL) < 0);
	CHECK(nd_keep_cmp(ND_KEEP_FIRST_PATH, &a, &b, NULL) > 0);
	/* without records, "original" falls back to the tie-breakers */
	a.origin = NULL;
	a.width = 65;
	CHECK(nd_keep_cmp(ND_KEEP_ORIGINAL, &a, &b, &why) < 0 && !strcmp(why, "more pixels"));
	CHECK_EQ_INT(nd_keep_cmp(ND_KEEP_ORIGINAL, &a, &a, &why), 0);
	/* equal scores and ages: a thin frame adds pixels, not content */
	nd_origin fa, fb;
	nd_origin_init(&fa);
	nd_origin_init(&fb);
	fa.colour = fb.colour = 0.5f;
	fa.detail = fb.detail = 0.05f;
	fb.margin = 0.05f;
	nd_keep_item kf = { 1, 100, 100, 100, 7, "a", &fa }, kg = { 2, 102, 102, 100, 7, "b", &fb };
	CHECK(nd_keep_cmp(ND_KEEP_ORIGINAL, &kf, &kg, &why) < 0 && !strcmp(why, "more content pixels"));
	CHECK(nd_keep_cmp(ND_KEEP_RESOLUTION, &kf, &kg, NULL) > 0);
	/* a much smaller copy (a sixteenth of the pixels) loses, even when older */
	nd_image s = { 16, 16, malloc(16 * 16 * 3) };
	for (int y = 0; y < 16; y++)
		for (int x = 0; x < 16; x++)
			memcpy(s.rgb + ((size_t)y * 16 + x) * 3, c.rgb + ((size_t)(4 * y) * 64 + 4 * x) * 3, 3);
	nd_origin os = measure(&s);
	nd_keep_item ka = { 1, 64, 64, 100, 300, "a", &o }, ks = { 2, 16, 16, 100, 100, "b", &os };
	CHECK(nd_keep_cmp(ND_KEEP_ORIGINAL, &ka, &ks, &why) < 0 && !strcmp(why, "less edited"));
	free(c.rgb);
	free(s.rgb);
}

static void test_bad_input(void)
{
	nd_origin o;
	nd_error err;
	nd_image empty = { 0, 0, NULL };
	CHECK_EQ_INT(nd_origin_from_pixels(&empty, 1, &o, &err), ND_EINVAL);
	nd_image one = { 1, 1, (uint8_t[3]){ 1, 2, 3 } };
	CHECK_EQ_INT(nd_origin_from_pixels(&one, 3, &o, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_origin_from_pixels(&one, 1, &o, &err), 0);
	CHECK(isfinite(nd_origin_score(&o, 1, 1)));
	/* a uniform picture (even sides: the bands meet in the middle) */
	nd_image u = { 64, 40, malloc(64 * 40 * 3) };
	memset(u.rgb, 77, 64 * 40 * 3);
	nd_origin_init(&o);
	CHECK_EQ_INT(nd_origin_from_pixels(&u, 2, &o, &err), 0);
	uint8_t enc[ND_ORIGIN_SIZE];
	nd_origin back;
	nd_origin_encode(&o, enc);
	CHECK_EQ_INT(nd_origin_decode(enc, &back, &err), 0);
	CHECK(o.margin == 0 && isfinite(nd_origin_score(&o, 64, 40)));
	free(u.rgb);
	nd_origin_from_bytes("\xff\xd8\xff\xdb\x00\x02", 6, &o); /* an empty table segment */
	nd_origin_from_bytes("\xff\xd8\xff\xdb\xff\xff", 6, &o); /* a segment past the end */
	nd_origin_from_bytes(NULL, 0, &o);
}

/* A family: member 0 the original, 1 a rescale of it (same picture, fewer
 * pixels), 2.. edited copies, one edit from the original and two from each
 * other. Copy 2 has the most pixels, so the pair rule alone keeps it. All
 * have one shape. */
static void family(nd_keep_member *m, float *sim, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		m[i] = (nd_keep_member){ { (uint32_t)i + 1, 100, 100, 5000, 0, "p", NULL }, 1 };
		for (size_t j = 0; j < n; j++)
			sim[i * n + j] = i == j ? 1.0f : (i < 2 && j < 2) ? 0.999f : (i < 2 || j < 2) ? 0.90f : 0.80f;
	}
	m[1].item.width = m[1].item.height = 50;
	m[2].item.width = m[2].item.height = 200;
}

static void test_keep_choose(void)
{
	enum { N = 8 };
	nd_keep_member m[N];
	float sim[N * N];
	nd_keep_choice c;
	char buf[64];
	family(m, sim, N);
	/* the centre is kept; the rescale, as central, loses by the pair rule */
	CHECK_EQ_INT(nd_keep_choose(m, N, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 0);
	CHECK(c.central);
	CHECK(!strcmp(nd_keep_reason(&c, buf, sizeof(buf)), "most central, more pixels"));
	/* the other rules, and no similarities: the pair rule */
	CHECK_EQ_INT(nd_keep_choose(m, N, sim, ND_KEEP_RESOLUTION, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 2);
	CHECK(!c.central);
	CHECK(!strcmp(nd_keep_reason(&c, buf, sizeof(buf)), "more pixels"));
	CHECK_EQ_INT(nd_keep_choose(m, N, NULL, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 2);
	/* a margin wider than the gap makes every member a candidate */
	CHECK_EQ_INT(nd_keep_choose(m, N, sim, ND_KEEP_ORIGINAL, 0.5f, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 2);
	/* a member that may not be kept is not, however central */
	m[0].can_keep = 0;
	CHECK_EQ_INT(nd_keep_choose(m, N, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 1);
	CHECK(c.central);
	CHECK(!strcmp(nd_keep_reason(&c, buf, sizeof(buf)), "most central"));
	for (size_t i = 0; i < N; i++)
		m[i].can_keep = 0;
	CHECK_EQ_INT(nd_keep_choose(m, N, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), ND_EINVAL);
	CHECK_EQ_INT(nd_keep_choose(m, 0, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), ND_EINVAL);
	/* a stretched copy as central as the original (as to a model that sees
	 * a square), larger, but of a shape no other member has */
	family(m, sim, N);
	m[3].item.width = 150;
	for (size_t j = 0; j < N; j++)
		if (j != 3)
			sim[3 * N + j] = sim[j * N + 3] = sim[j] + 0.001f;
	CHECK_EQ_INT(nd_keep_choose(m, N, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 0);
	family(m, sim, N);
	/* ties: all equally central, the pair rule decides */
	family(m, sim, N);
	for (size_t i = 0; i < N * N; i++)
		sim[i] = 0.9f;
	CHECK_EQ_INT(nd_keep_choose(m, N, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 2);
	CHECK(!c.central);
	/* one member; two members (symmetric: the pair rule) */
	family(m, sim, 2);
	CHECK_EQ_INT(nd_keep_choose(m, 1, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 0);
	CHECK(!strcmp(nd_keep_reason(&c, buf, sizeof(buf)), "only one"));
	m[1].item.width = 400;
	sim[1] = sim[2] = 0.5f;
	CHECK_EQ_INT(nd_keep_choose(m, 2, sim, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 1);
	CHECK(!c.central);
	/* above the cap the pair rule alone decides */
	size_t big = ND_KEEP_CENTRAL_MAX + 1;
	nd_keep_member *bm = malloc(big * sizeof(*bm));
	float *bs = malloc(big * big * sizeof(*bs));
	family(bm, bs, big);
	CHECK_EQ_INT(nd_keep_choose(bm, big, bs, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 2);
	family(bm, bs, big - 1);
	CHECK_EQ_INT(nd_keep_choose(bm, big - 1, bs, ND_KEEP_ORIGINAL, ND_KEEP_CENTRAL_MARGIN, &c), 0);
	CHECK_EQ_INT((int)c.keeper, 0);
	free(bm);
	free(bs);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_grey);
	RUN(test_margin);
	RUN(test_caption_bar);
	RUN(test_jpeg_quality);
	RUN(test_blockiness);
	RUN(test_noise_and_detail);
	RUN(test_aniso);
	RUN(test_exif);
	RUN(test_codec);
	RUN(test_keep_rules);
	RUN(test_keep_choose);
	RUN(test_bad_input);
	return test_summary();
}
