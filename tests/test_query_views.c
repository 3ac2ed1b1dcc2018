/* Tests of query's views (src/embed.c's embedder_add_views and
 * src/views.c, compiled in here for their static helpers):
 * the identity view is exactly ingest's tensor, rotations of the prepared
 * tensor equal the prep of rotated pixels (square input) and the rotated
 * pixels path (non-square input) is right, centre crops come from a decode
 * large enough for a 50% crop, --views parsing, and the per-image merge. */
#include "test.h"

#include "embed.c"
#include "readfile.c"
#include "views.c"

#define MODEL "models/neardup.ndm"

static nd_model *model;

/* out(x, y) of a clockwise quarter-turn rotation, written independently of
 * embed.c's rotate_grid: by turning q times by 90 degrees. */
static nd_image rotate_ref(const nd_image *src, int q)
{
	nd_image cur = { src->width, src->height, malloc((size_t)3 * src->width * src->height) };
	memcpy(cur.rgb, src->rgb, (size_t)3 * src->width * src->height);
	for (int t = 0; t < q; t++) {
		nd_image nx = { cur.height, cur.width, malloc((size_t)3 * cur.width * cur.height) };
		/* clockwise: the left column, read bottom to top, becomes the top row */
		for (int y = 0; y < nx.height; y++)
			for (int x = 0; x < nx.width; x++)
				memcpy(nx.rgb + 3 * ((size_t)y * nx.width + x),
				       cur.rgb + 3 * ((size_t)(cur.height - 1 - x) * cur.width + y), 3);
		nd_image_free(&cur);
		cur = nx;
	}
	return cur;
}

static nd_image crop_ref(const nd_image *src, double s)
{
	double a = (1 - s) / 2; /* the offline experiment's int(a*W) .. int((a+s)*W) */
	int x0 = (int)(a * src->width), x1 = (int)((a + s) * src->width);
	int y0 = (int)(a * src->height), y1 = (int)((a + s) * src->height);
	nd_image c = { x1 - x0, y1 - y0, malloc((size_t)3 * (x1 - x0) * (y1 - y0)) };
	for (int y = y0; y < y1; y++)
		for (int x = x0; x < x1; x++)
			memcpy(c.rgb + 3 * ((size_t)(y - y0) * c.width + (x - x0)),
			       src->rgb + 3 * ((size_t)y * src->width + x), 3);
	return c;
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
	float m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmaxf(m, fabsf(a[i] - b[i]));
	return m;
}

/* Checks every view of one file against references built here. */
static void check_file(const char *path, struct embedder *e)
{
	struct file_data fd;
	nd_error err;
	uint32_t w, h, w2, h2;
	CHECK_MSG(file_read(path, 0, &fd, &err) == 0, "%s: %s", path, err.msg);
	if (!fd.data)
		return;
	size_t per = (size_t)3 * e->prep.width * e->prep.height;
	float *ref = malloc(per * sizeof(float));
	/* ingest's tensor */
	e->n = 0;
	CHECK(embedder_add(e, fd.data, fd.len, &w, &h, &err) == 0);
	memcpy(ref, e->in, per * sizeof(float));
	enum view sv[VIEW_COUNT];
	e->n = 0;
	CHECK(embedder_add_views(e, fd.data, fd.len, VIEWS_ALL, sv, &w2, &h2, &err) == 0);
	CHECK_EQ_INT(e->n, VIEW_COUNT);
	for (int v = 0; v < VIEW_COUNT; v++)
		CHECK_EQ_INT(sv[v], v);
	CHECK(w == w2 && h == h2);
	CHECK_MSG(memcmp(ref, e->in, per * sizeof(float)) == 0, "%s: identity != ingest", path);
	/* rotations: prep of the rotated decoded pixels */
	nd_image img = { 0 };
	nd_image_info ii;
	CHECK(nd_image_decode_mem(fd.data, fd.len, &e->iopts, &img, &ii, &err) == 0);
	for (int q = 1; q <= 3; q++) {
		nd_image r = rotate_ref(&img, q);
		CHECK(nd_prep_image(&r, &e->prep, ref, NULL, &err) == 0);
		float d = max_abs_diff(ref, e->in + per * (size_t)q, per);
		CHECK_MSG(d <= 1e-4f, "%s: rotation %d differs by %g", path, 90 * q, d);
		nd_image_free(&r);
	}
	/* crops: from a decode with both sides >= twice the input */
	nd_image_opts o = e->iopts;
	o.min_width = 2 * e->prep.width;
	o.min_height = 2 * e->prep.height;
	nd_image big = { 0 };
	CHECK(nd_image_decode_mem(fd.data, fd.len, &o, &big, NULL, &err) == 0);
	const double frac[2] = { 0.75, 0.5 };
	for (int i = 0; i < 2; i++) {
		nd_image c = crop_ref(&big, frac[i]);
		CHECK(nd_prep_image(&c, &e->prep, ref, NULL, &err) == 0);
		float d = max_abs_diff(ref, e->in + per * (size_t)(VIEW_CROP75 + i), per);
		CHECK_MSG(d == 0, "%s: crop %g differs by %g", path, frac[i], d);
		nd_image_free(&c);
		if (ii.scale_denom > 1 && big.width > img.width) {
			/* the crop of the first, smaller decode is a different (blurrier) tensor */
			c = crop_ref(&img, frac[i]);
			CHECK(nd_prep_image(&c, &e->prep, ref, NULL, &err) == 0);
			CHECK_MSG(max_abs_diff(ref, e->in + per * (size_t)(VIEW_CROP75 + i), per) > 1e-3f,
				  "%s: crop %g not from the larger decode", path, frac[i]);
			nd_image_free(&c);
		}
	}
	/* a subset fills consecutive slots in enum order */
	e->n = 0;
	CHECK(embedder_add_views(e, fd.data, fd.len, VIEW_BIT(VIEW_IDENTITY) | VIEW_BIT(VIEW_CROP50),
				 sv, &w2, &h2, &err) == 0);
	CHECK_EQ_INT(e->n, 2);
	CHECK(sv[0] == VIEW_IDENTITY && sv[1] == VIEW_CROP50);
	nd_image c = crop_ref(&big, 0.5);
	CHECK(nd_prep_image(&c, &e->prep, ref, NULL, &err) == 0);
	CHECK(memcmp(ref, e->in + per, per * sizeof(float)) == 0);
	nd_image_free(&c);
	nd_image_free(&big);
	nd_image_free(&img);
	free(ref);
	file_data_free(&fd);
}

static void test_views_square(void)
{
	struct embedder e;
	nd_error err;
	CHECK_MSG(embedder_init(&e, model, VIEW_COUNT, &err) == 0, "%s", err.msg);
	CHECK(e.prep.width == e.prep.height); /* the tensor-rotation path */
	check_file("data/astronaut.jpg", &e);   /* 512x512 JPEG: DCT-scaled, re-decoded */
	check_file("data/chelsea.jpg", &e);     /* 451x300: not reduced, no second decode */
	check_file("data/camera.png", &e);      /* 512x512 PNG: box-reduced, re-decoded */
	check_file("data/rocket_exif6.jpg", &e); /* EXIF-rotated */
	embedder_free(&e);
}

/* A non-square input rotates the decoded pixels instead: run the same checks
 * with the embedder's input narrowed (its buffers are large enough). */
static void test_views_non_square(void)
{
	struct embedder e;
	nd_error err;
	CHECK_MSG(embedder_init(&e, model, VIEW_COUNT, &err) == 0, "%s", err.msg);
	e.prep.width = e.prep.height * 3 / 4;
	e.iopts.min_width = e.prep.width;
	check_file("data/astronaut.jpg", &e);
	check_file("data/chelsea.jpg", &e);
	embedder_free(&e);
}

static void test_views_parse(void)
{
	char bad[64];
	const unsigned id = VIEW_BIT(VIEW_IDENTITY);
	CHECK_EQ_INT(views_parse("none", bad, sizeof(bad)), id);
	CHECK_EQ_INT(views_parse("all", bad, sizeof(bad)), VIEWS_ALL);
	CHECK_EQ_INT(views_parse("rotations", bad, sizeof(bad)), id | VIEWS_ROTATIONS);
	CHECK_EQ_INT(views_parse("crops", bad, sizeof(bad)), id | VIEWS_CROPS);
	CHECK_EQ_INT(views_parse("crops,rotations", bad, sizeof(bad)), VIEWS_ALL);
	CHECK_EQ_INT(views_parse("rotations,all,crops", bad, sizeof(bad)), VIEWS_ALL);
	CHECK_EQ_INT(views_parse("rotation", bad, sizeof(bad)), 0);
	CHECK(!strcmp(bad, "rotation"));
	CHECK_EQ_INT(views_parse("crops,bogus,all", bad, sizeof(bad)), 0);
	CHECK(!strcmp(bad, "bogus"));
	CHECK_EQ_INT(views_parse("crops,", bad, sizeof(bad)), 0);
	CHECK(!strcmp(bad, ""));
	CHECK_EQ_INT(views_parse("", bad, sizeof(bad)), 0);
	CHECK_EQ_INT(views_parse("none,crops", bad, sizeof(bad)), 0);
	CHECK(!strcmp(bad, "none"));
	CHECK_EQ_INT(views_parse("ALL", bad, sizeof(bad)), 0);
	CHECK_EQ_INT(view_count(VIEWS_ALL), VIEW_COUNT);
	CHECK_EQ_INT(view_count(id | VIEWS_CROPS), 3);
	CHECK(!strcmp(view_name(VIEW_ROT270), "rot270"));
}

static void test_views_merge(void)
{
	const nd_hit a[] = { { 7, 0.9f, 0.91f }, { 3, 0.5f, 0.5f }, { 4, 0.4f, 0.4f } };
	const nd_hit b[] = { { 3, 0.95f, 0.8f }, { 9, 0.5f, 0.6f }, { 7, 0.2f, 0.2f } };
	const nd_hit c[] = { { 7, 0.9f, 0.7f }, { 1, 0.4f, 0.1f } };
	const nd_hit *lists[] = { a, b, c };
	size_t counts[] = { 3, 3, 2 };
	enum view views[] = { VIEW_IDENTITY, VIEW_ROT90, VIEW_CROP50 };
	struct view_hit out[8];
	size_t n = views_merge(lists, counts, views, 3, 10, out);
	/* best per id; equal scores: lower id first; equal score for one id: earlier view */
	const uint32_t ids[] = { 3, 7, 9, 1, 4 };
	const enum view vs[] = { VIEW_ROT90, VIEW_IDENTITY, VIEW_ROT90, VIEW_CROP50, VIEW_IDENTITY };
	CHECK_EQ_INT(n, 5);
	for (size_t i = 0; i < n && i < 5; i++) {
		CHECK_EQ_INT(out[i].hit.id, ids[i]);
		CHECK_EQ_INT(out[i].view, vs[i]);
	}
	CHECK_NEAR(out[1].hit.raw, 0.91, 1e-6); /* the whole hit of the best view */
	CHECK_EQ_INT(views_merge(lists, counts, views, 3, 2, out), 2);
	CHECK_EQ_INT(out[1].hit.id, 7);
	counts[0] = counts[1] = counts[2] = 0;
	CHECK_EQ_INT(views_merge(lists, counts, views, 3, 10, out), 0);
}

int main(void)
{
	nd_error err;
	if (nd_model_load(MODEL, &model, &err)) {
		printf("FAIL load %s: %s\n", MODEL, err.msg);
		return 1;
	}
	RUN(test_views_square);
	RUN(test_views_non_square);
	RUN(test_views_parse);
	RUN(test_views_merge);
	nd_model_free(model);
	return test_summary();
}
