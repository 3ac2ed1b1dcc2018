/* Tests for sharded collections (src/shard.c, src/index_shard.c) and the
 * self-join in parts (neardup/join.h): the manifest's validation, a
 * collection that answers queries and self-joins exactly as one index
 * holding the same images, the join spread over simulated ranks giving
 * the same pairs, and shards that disagree with their manifest. */
#include "neardup/index.h"
#include "neardup/join.h"
#include "neardup/score.h"
#include "neardup/shard.h"
#include "test.h"

#include "lib_synth.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmproot[48];

static void rm_rf(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

#define D 64

/* the background statistic of the calibrated similarity: any function of
 * the vector serves the test */
static int stat_fn(void *ctx, const float *vecs, size_t n, float *out, nd_error *err)
{
	for (size_t i = 0; i < n; i++)
		out[i] = fabsf(vecs[i * D]) + 0.1f * fabsf(vecs[i * D + 1]);
	return 0;
}

/* a pair score model (neardup/score.h) in place of the calibrated cosine
 * plus hash term, when set */
static const nd_score_model test_score = { 0, "test", { -9.0f, 10.0f, 2.0f, 2.0f, 2.0f, -1.0f, 3.0f, 2.0f, 1.0f, 0.0f } };
/* one whose score grows with the statistic: the signature filter's floor
 * then rests on the highest statistic, which the join in parts is given */
static const nd_score_model stat_score = { 0, "test-stat", { -9.0f, 10.0f, 2.0f, 2.0f, 2.0f, 6.0f, 3.0f, 2.0f, 1.0f, 0.0f } };
static const nd_score_model *use_score;

static void options(nd_index_options *o, uint32_t shards, uint64_t seed)
{
	nd_index_options_init(o);
	o->create = 1;
	o->dim = D;
	o->model_name = "test-model";
	o->model_checksum = 0x1234;
	o->seed = seed;
	o->shards = shards;
	o->calib = (nd_index_calib){ .stat = stat_fn, .dim = D, .beta = 0.3f, .offset = 0.05f,
				     .phash_weight = 0.02f, .phash_bits = 6.0f, .score = use_score };
}

static nd_index *open_dir(const char *dir, uint32_t shards, uint64_t seed, nd_error *err)
{
	nd_index_options o;
	nd_index *ix = NULL;
	options(&o, shards, seed);
	int rc = nd_index_open(&ix, dir, &o, err);
	return rc ? NULL : ix;
}

struct data {
	size_t n;
	float *X;
	nd_index_item *items;
	char (*paths)[32];
};

/* n images, a tenth of them byte-identical copies of an earlier one (same
 * hash, same vector), all with perceptual hashes, some of them close */
static void make_data(struct data *d, size_t n)
{
	synth s;
	synth_rng r = { 99, 0, 0 };
	synth_init(&s, D, 8, 3);
	d->n = n;
	d->X = malloc(sizeof(float) * D * n);
	d->items = calloc(n, sizeof(*d->items));
	d->paths = calloc(n, sizeof(*d->paths));
	size_t nc;
	synth_dataset(&s, 5, n, d->X, NULL, NULL, &nc);
	for (size_t i = 0; i < n; i++) {
		nd_index_item *it = &d->items[i];
		size_t h = i;
		snprintf(d->paths[i], sizeof(d->paths[i]), "img/%zu.jpg", i);
		it->rec.path = d->paths[i];
		it->rec.path_len = strlen(d->paths[i]);
		it->rec.size = 100 + i;
		it->rec.mtime_ns = 1700000000000000000ll + (int64_t)i;
		it->rec.width = 64;
		it->rec.height = 48;
		it->has_phash = 1;
		it->phash = synth_u64(&r);
		if (i > 10 && i % 10 == 0) { /* a copy of an earlier image */
			size_t j = synth_u64(&r) % i;
			memcpy(d->X + i * D, d->X + j * D, sizeof(float) * D);
			h = j;
			it->phash = d->items[j].phash;
		} else if (i > 10 && i % 7 == 0) { /* a hash close to an earlier one's */
			it->phash = d->items[i - 7].phash ^ (1ull << (i % 64));
		}
		uint64_t hv[2] = { h * 0x9E3779B97F4A7C15ull, h };
		memcpy(it->rec.hash, hv, 16);
		it->vec = d->X + i * D;
	}
	synth_free(&s);
}

static void free_data(struct data *d)
{
	free(d->X);
	free(d->items);
	free(d->paths);
}

static int add_all(nd_index *ix, const struct data *d)
{
	nd_error err;
	for (size_t i = 0; i < d->n; i += 500) {
		size_t m = d->n - i < 500 ? d->n - i : 500;
		int rc = nd_index_add(ix, d->items + i, m, NULL, &err);
		CHECK_MSG(rc == 0, "add: %s", err.msg);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- manifest ---- */

static void test_manifest(void)
{
	char dir[128], p[256];
	nd_manifest m, got;
	nd_error err;
	snprintf(dir, sizeof(dir), "%s/man", tmproot);
	mkdir(dir, 0777);
	memset(&m, 0, sizeof(m));
	m.h.shards = 3;
	m.h.dim = 64;
	m.h.tables = 12;
	m.h.bits = 18;
	m.h.vec_format = ND_VEC_F16;
	m.h.seed = 42;
	snprintf(m.h.model_name, sizeof(m.h.model_name), "m");
	m.names = calloc(3, ND_SHARD_NAME_MAX);
	for (int i = 0; i < 3; i++)
		snprintf(m.names[i], ND_SHARD_NAME_MAX, "s%d", i);
	CHECK_EQ_INT(nd_manifest_read(dir, &got, &err), ND_ENOTFOUND);
	CHECK_EQ_INT(nd_manifest_write(dir, &m, &err), 0);
	CHECK(nd_manifest_exists(dir));
	CHECK_EQ_INT(nd_manifest_read(dir, &got, &err), 0);
	CHECK_EQ_INT(got.h.shards, 3);
	CHECK_EQ_INT(got.h.seed, 42);
	CHECK(!strcmp(got.names[2], "s2"));
	CHECK_EQ_INT(nd_manifest_shard_path(dir, &got, 1, p, sizeof(p), &err), 0);
	CHECK(strstr(p, "/man/s1") != NULL);
	nd_manifest_free(&got);
	/* one byte changed: the checksum says so, naming the file */
	snprintf(p, sizeof(p), "%s/manifest", dir);
	FILE *f = fopen(p, "r+b");
	CHECK(f != NULL);
	fseek(f, 40, SEEK_SET);
	fputc(0x7F, f);
	fclose(f);
	CHECK_EQ_INT(nd_manifest_read(dir, &got, &err), ND_ECORRUPT);
	CHECK(strstr(err.msg, "damaged") && strstr(err.msg, p));
	/* truncated */
	CHECK_EQ_INT(nd_manifest_write(dir, &m, &err), 0);
	CHECK_EQ_INT(truncate(p, 100), 0);
	CHECK_EQ_INT(nd_manifest_read(dir, &got, &err), ND_ECORRUPT);
	/* not a manifest */
	f = fopen(p, "wb");
	for (int i = 0; i < 400; i++)
		fputc('x', f);
	fclose(f);
	CHECK_EQ_INT(nd_manifest_read(dir, &got, &err), ND_EFORMAT);
	/* shard paths that leave the directory are refused */
	snprintf(m.names[1], ND_SHARD_NAME_MAX, "../x");
	CHECK_EQ_INT(nd_manifest_write(dir, &m, &err), ND_EINVAL);
	nd_manifest_free(&m);
	/* global ids */
	uint32_t g;
	CHECK_EQ_INT(nd_shard_gid(5, 2, 4, &g, &err), 0);
	CHECK_EQ_INT(g, 22);
	CHECK_EQ_INT(nd_shard_gid_shard(g, 4), 2);
	CHECK_EQ_INT(nd_shard_gid_local(g, 4), 5);
	CHECK_EQ_INT(nd_shard_gid(UINT32_MAX / 2, 3, 4, &g, &err), ND_EOVERFLOW);
	rm_rf(dir);
}

/* ---- a collection answers as one index ---- */

struct pair {
	char a[64], b[64];
	float sim;
};

struct plist {
	nd_index *ix;
	struct pair *v;
	size_t n, cap;
};

static int cmp_pair(const void *x, const void *y)
{
	const struct pair *a = x, *b = y;
	int c = strcmp(a->a, b->a);
	return c ? c : strcmp(a->b, b->b);
}

/* pairs by path, a's path before b's */
static int collect(void *ctx, uint32_t a, uint32_t b, float sim)
{
	struct plist *l = ctx;
	nd_record ra, rb;
	char pa[64], pb[64];
	if (nd_index_get_record(l->ix, a, &ra, pa, sizeof(pa), NULL) ||
	    nd_index_get_record(l->ix, b, &rb, pb, sizeof(pb), NULL))
		return 1;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 1024;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
	}
	struct pair *p = &l->v[l->n++];
	int swap = strcmp(pa, pb) > 0;
	snprintf(p->a, sizeof(p->a), "%s", swap ? pb : pa);
	snprintf(p->b, sizeof(p->b), "%s", swap ? pa : pb);
	p->sim = sim;
	return 0;
}

static int same_pairs(struct plist *x, struct plist *y)
{
	qsort(x->v, x->n, sizeof(*x->v), cmp_pair);
	qsort(y->v, y->n, sizeof(*y->v), cmp_pair);
	if (x->n != y->n) {
		fprintf(stderr, "  %zu pairs against %zu\n", x->n, y->n);
		return 0;
	}
	for (size_t i = 0; i < x->n; i++)
		if (cmp_pair(&x->v[i], &y->v[i]) || x->v[i].sim != y->v[i].sim) {
			fprintf(stderr, "  pair %zu: %s %s %.9g against %s %s %.9g\n", i, x->v[i].a, x->v[i].b,
				(double)x->v[i].sim, y->v[i].a, y->v[i].b, (double)y->v[i].sim);
			return 0;
		}
	return 1;
}

static void equal_single(void)
{
	char one[128], sh[128];
	struct data d;
	nd_error err;
	snprintf(one, sizeof(one), "%s/one", tmproot);
	snprintf(sh, sizeof(sh), "%s/sh", tmproot);
	make_data(&d, 3000);
	nd_index *a = open_dir(one, 0, 7, &err), *b = a ? open_dir(sh, 5, 7, &err) : NULL;
	CHECK_MSG(a && b, "open: %s", err.msg);
	if (!a || !b)
		goto done;
	CHECK_EQ_INT(nd_index_shards(b), 5);
	CHECK(nd_index_calibrated(a) && nd_index_calibrated(b));
	if (add_all(a, &d) || add_all(b, &d))
		goto done;
	nd_meta ma, mb;
	CHECK_EQ_INT(nd_index_meta(a, &ma, &err), 0);
	CHECK_EQ_INT(nd_index_meta(b, &mb, &err), 0);
	CHECK_EQ_INT(ma.n_images, mb.n_images);
	CHECK_EQ_INT(ma.n_postings, mb.n_postings);
	/* every shard holds the images of its content, and passes check */
	nd_check_report *rep = malloc(sizeof(*rep));
	CHECK_EQ_INT(nd_index_check(b, rep, &err), 0);
	CHECK_EQ_INT(rep->n_problems, 0);
	CHECK_EQ_INT(rep->records, d.n);
	/* copies share a shard: a hash lookup finds both */
	uint32_t ids[4];
	size_t nh = 0;
	CHECK_EQ_INT(nd_index_lookup_hash(b, d.items[20].rec.hash, ids, 4, &nh, &err), 0);
	CHECK(nh >= 2);
	/* queries: the same hits, the same scores, in the same order */
	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.k = 10;
	qp.min_hits = 1; /* every candidate re-ranked: one index and a shard decide alike */
	for (size_t q = 0; q < 60; q++) {
		const nd_index_item *it = &d.items[q * 47 % d.n];
		nd_hit ha[10], hb[10];
		size_t na = 0, nb = 0;
		qp.has_phash = 1;
		qp.phash = it->phash;
		CHECK_EQ_INT(nd_index_query(a, it->vec, &qp, ha, &na, NULL, &err), 0);
		CHECK_EQ_INT(nd_index_query(b, it->vec, &qp, hb, &nb, NULL, &err), 0);
		CHECK_EQ_INT(na, nb);
		for (size_t i = 0; i < na && i < nb; i++) {
			nd_record ra, rb;
			char pa[64], pb[64];
			CHECK_EQ_INT(nd_index_get_record(a, ha[i].id, &ra, pa, sizeof(pa), &err), 0);
			CHECK_EQ_INT(nd_index_get_record(b, hb[i].id, &rb, pb, sizeof(pb), &err), 0);
			/* copies tie: their order follows ids, which differ */
			CHECK_MSG(ha[i].sim == hb[i].sim && (!strcmp(pa, pb) || ha[i].sim == ha[i ? i - 1 : 1].sim ||
							     (i + 1 < na && ha[i].sim == ha[i + 1].sim)),
				  "query %zu hit %zu: %s %.9g against %s %.9g", q, i, pa, (double)ha[i].sim, pb,
				  (double)hb[i].sim);
		}
	}
	/* the self-join: the same pairs with the same similarities */
	nd_selfjoin_params jp;
	nd_selfjoin_params_init(&jp);
	jp.min_sim = 0.75f;
	jp.threads = 2;
	struct plist pa = { a, NULL, 0, 0 }, pb = { b, NULL, 0, 0 };
	CHECK_EQ_INT(nd_index_selfjoin(a, &jp, collect, &pa, NULL, &err), 0);
	CHECK_EQ_INT(nd_index_selfjoin(b, &jp, collect, &pb, NULL, &err), 0);
	CHECK(pa.n > 500);
	CHECK(same_pairs(&pa, &pb));
	/* the join in parts, spread over three simulated ranks: the rows of
	 * every shard, the candidates of each rank's parts, each scored */
	const uint32_t P = 3, N = nd_index_shards(b), parts = nd_join_parts(b, &jp);
	const size_t R = nd_join_row_words(b);
	uint64_t *all = NULL;
	size_t nall = 0;
	float gmin = 1e30f, gmax = -1e30f;
	for (uint32_t s = 0; s < N; s++) {
		uint64_t *rows;
		size_t n;
		float ms, xs;
		CHECK_EQ_INT(nd_join_export(nd_index_shard(b, s), &rows, &n, &ms, &xs, &err), 0);
		all = realloc(all, (nall + n) * R * 8);
		for (size_t i = 0; i < n; i++) {
			uint32_t g;
			CHECK_EQ_INT(nd_shard_gid((uint32_t)rows[i * R], s, N, &g, &err), 0);
			rows[i * R] = (rows[i * R] & ~(uint64_t)0xFFFFFFFFu) | g;
		}
		memcpy(all + nall * R, rows, n * R * 8);
		nall += n;
		if (n && ms < gmin)
			gmin = ms;
		if (n && xs > gmax)
			gmax = xs;
		free(rows);
	}
	CHECK_EQ_INT(nall, d.n);
	struct plist cand = { b, NULL, 0, 0 }, pc = { b, NULL, 0, 0 };
	unsigned char *mine = calloc(parts, 1);
	for (uint32_t r = 0; r < P; r++) {
		for (uint32_t i = 0; i < parts; i++)
			mine[i] = i % P == r;
		CHECK_EQ_INT(nd_join_candidates(b, &jp, all, nall, gmin, gmax, mine, collect, &cand, NULL, &err), 0);
	}
	free(mine);
	/* each candidate once over all ranks */
	qsort(cand.v, cand.n, sizeof(*cand.v), cmp_pair);
	for (size_t i = 1; i < cand.n; i++)
		CHECK_MSG(cmp_pair(&cand.v[i], &cand.v[i - 1]) != 0, "candidate %s %s twice", cand.v[i].a, cand.v[i].b);
	for (size_t i = 0; i < cand.n; i++) {
		uint32_t ia, ib;
		uint8_t va[1024], vb[1024];
		size_t la, lb;
		float sim;
		CHECK_EQ_INT(nd_index_lookup_path(b, cand.v[i].a, &ia, &err), 0);
		CHECK_EQ_INT(nd_index_lookup_path(b, cand.v[i].b, &ib, &err), 0);
		CHECK_EQ_INT(nd_join_vector_bytes(b, ia, va, sizeof(va), &la, &err), 0);
		CHECK_EQ_INT(nd_join_vector_bytes(b, ib, vb, sizeof(vb), &lb, &err), 0);
		CHECK_EQ_INT(nd_join_score(b, &jp, va, la, vb, lb, &sim, &err), 0);
		if (sim >= jp.min_sim)
			collect(&pc, ia, ib, sim);
	}
	CHECK(same_pairs(&pa, &pc));
	free(all);
	free(cand.v);
	free(pc.v);
	free(pa.v);
	free(pb.v);
	/* remove through the collection: by path, from the shard holding it */
	uint32_t id;
	size_t removed = 0;
	CHECK_EQ_INT(nd_index_lookup_path(b, "img/123.jpg", &id, &err), 0);
	CHECK_EQ_INT(nd_index_remove(b, &id, 1, &removed, &err), 0);
	CHECK_EQ_INT(removed, 1);
	CHECK_EQ_INT(nd_index_lookup_path(b, "img/123.jpg", &id, &err), ND_ENOTFOUND);
	CHECK_EQ_INT(nd_index_check(b, rep, &err), 0);
	CHECK_EQ_INT(rep->n_problems, 0);
	free(rep);
done:
	nd_index_close(a);
	nd_index_close(b);
	free_data(&d);
	rm_rf(one);
	rm_rf(sh);
}

static void test_equal_single(void)
{
	use_score = NULL;
	equal_single();
}

static void test_equal_single_pair_score(void)
{
	use_score = &test_score;
	equal_single();
	use_score = NULL;
}

static void test_equal_single_stat_score(void)
{
	use_score = &stat_score;
	equal_single();
	use_score = NULL;
}

/* ---- a manifest and shards that disagree ---- */

static void test_disagree(void)
{
	char sh[128], p[160], p2[160], cmd[1400];
	struct data d;
	nd_error err;
	snprintf(sh, sizeof(sh), "%s/dis", tmproot);
	make_data(&d, 200);
	nd_index *b = open_dir(sh, 3, 7, &err);
	CHECK_MSG(b != NULL, "open: %s", err.msg);
	if (!b)
		goto done;
	add_all(b, &d);
	nd_index_close(b);
	/* the shard count asked for is not the manifest's */
	CHECK(open_dir(sh, 4, 7, &err) == NULL);
	CHECK_EQ_INT(err.code, ND_EMISMATCH);
	CHECK(strstr(err.msg, "manifest") && strstr(err.msg, "3 shards"));
	/* a shard built with another LSH seed */
	snprintf(p, sizeof(p), "%s/shard-0001", sh);
	snprintf(p2, sizeof(p2), "%s/other", tmproot);
	nd_index *o = open_dir(p2, 0, 8, &err);
	CHECK(o != NULL);
	nd_index_close(o);
	snprintf(cmd, sizeof(cmd), "mv '%s' '%s.keep' && mv '%s' '%s'", p, p, p2, p);
	CHECK(system(cmd) == 0);
	CHECK(open_dir(sh, 0, 7, &err) == NULL);
	CHECK_EQ_INT(err.code, ND_EMISMATCH);
	CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "manifest") && strstr(err.msg, "seed"), "%s", err.msg);
	/* a missing shard */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	CHECK(system(cmd) == 0);
	CHECK(open_dir(sh, 0, 7, &err) == NULL);
	CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "missing"), "%s", err.msg);
	/* shards swapped: every image is in the wrong one, and check says so */
	snprintf(cmd, sizeof(cmd), "mv '%s.keep' '%s' && mv '%s/shard-0000' '%s/tmp' && mv '%s' '%s/shard-0000' && mv '%s/tmp' '%s'",
		 p, p, sh, sh, p, sh, sh, p);
	CHECK(system(cmd) == 0);
	b = open_dir(sh, 0, 7, &err);
	CHECK(b != NULL);
	if (b) {
		nd_check_report *rep = malloc(sizeof(*rep));
		CHECK_EQ_INT(nd_index_check(b, rep, &err), 0);
		CHECK(rep->n_problems > 0);
		CHECK_MSG(strstr(rep->problems[0], "belongs in shard"), "%s", rep->problems[0]);
		free(rep);
		nd_index_close(b);
	}
done:
	free_data(&d);
	rm_rf(sh);
	rm_rf(p2);
}

int main(void)
{
	snprintf(tmproot, sizeof(tmproot), "/tmp/nd_test_shard_XXXXXX");
	if (!mkdtemp(tmproot)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_manifest);
	RUN(test_equal_single);
	RUN(test_equal_single_pair_score);
	RUN(test_equal_single_stat_score);
	RUN(test_disagree);
	rm_rf(tmproot);
	return test_summary();
}
