/* Tests of the calibrated similarity (issue 8): the background statistic
 * against NumPy golden values and a naive reference, the model file's
 * calibration section, and the index with version-2 vectors: calibrated
 * query and self-join scores, the v1 -> v2 upgrade (also interrupted), the
 * refusal of a read-only open, and a writer without the statistic.
 * Inputs: tests/data/cli/tiny.ndm and tiny.calib.f32 (made by
 * tests/data/cli/make_model.py), and models/neardup.ndm with
 * tests/data/cnn/neardup.{out,calib}.f32 when the shipped model has a
 * calibration. */
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>
#include <xxhash.h>

#include "neardup/calib.h"
#include "neardup/cnn.h"
#include "neardup/index.h"
#include "neardup/store.h"
#include "test.h"

#define TINY "tests/data/cli/tiny.ndm"
#define TINY_GOLD "tests/data/cli/tiny.calib.f32"
#define TINY_D 64
#define TINY_N 16

static char tmproot[64];

static void *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *b = malloc(n > 0 ? (size_t)n : 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void rmdir_index(const char *dir)
{
	const char *files[] = { "data.mdb", "lock.mdb", "neardup.lock" };
	char p[512];
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* Naive reference: b(x) from the model's float16 set, in double, by sorting. */
static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x < y) - (x > y);
}

static double naive_stat(const nd_model *m, const float *x, const nd_model_calib *p)
{
	const uint16_t *h;
	size_t n;
	int d;
	nd_model_background(m, &h, &n, &d);
	double *s = malloc(n * sizeof(double));
	float *row = malloc((size_t)d * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		nd_vec_view v = { .dim = (uint32_t)d, .format = ND_VEC_F16, .scale = 1.0f,
				  .data = (const uint8_t *)(h + i * (size_t)d) };
		nd_vector_dequant(&v, row);
		double acc = 0;
		for (int j = 0; j < d; j++)
			acc += (double)row[j] * x[j];
		s[i] = acc;
	}
	qsort(s, n, sizeof(double), cmp_desc);
	double r = 0;
	if (p->stat == ND_CALIB_KTH) {
		r = s[p->k - 1];
	} else {
		for (int j = 0; j < p->k; j++)
			r += s[j];
		r /= p->k;
	}
	free(s);
	free(row);
	return r;
}

static void test_tiny_golden(void)
{
	nd_model *m = NULL;
	nd_calib *c = NULL;
	nd_error err;
	size_t len;
	float *gold = read_all(TINY_GOLD, &len);
	CHECK(gold && len == sizeof(float) * (TINY_N * TINY_D + TINY_N));
	CHECK_EQ_INT(nd_model_load(TINY, &m, &err), 0);
	if (!gold || !m)
		goto done;
	nd_model_calib p;
	CHECK_EQ_INT(nd_model_calibration(m, &p), 0);
	CHECK_EQ_INT(p.stat, ND_CALIB_MEAN_TOPK);
	CHECK_EQ_INT(p.k, 3);
	CHECK_NEAR(p.beta, 0.5, 0);
	CHECK(p.offset > 0 && p.offset < 1);
	nd_model_info mi;
	nd_model_get_info(m, &mi);
	CHECK_EQ_INT(mi.background_count, 400);
	CHECK_EQ_INT(nd_calib_create(m, &c, &err), 0);
	if (!c)
		goto done;
	CHECK_EQ_INT(nd_calib_count(c), 400);
	CHECK_EQ_INT(nd_calib_dim(c), TINY_D);
	float st[TINY_N], one;
	CHECK_EQ_INT(nd_calib_stat(c, gold, TINY_N, st, &err), 0);
	double maxd = 0;
	for (int i = 0; i < TINY_N; i++) {
		const float *x = gold + i * TINY_D;
		double d = fabs(st[i] - gold[TINY_N * TINY_D + i]);
		maxd = d > maxd ? d : maxd;
		CHECK_NEAR(st[i], gold[TINY_N * TINY_D + i], 1e-5);  /* NumPy, float32 */
		CHECK_NEAR(st[i], naive_stat(m, x, &p), 1e-5);        /* naive, double */
		CHECK_EQ_INT(nd_calib_stat(c, x, 1, &one, &err), 0);  /* alone = batched */
		CHECK_NEAR(one, st[i], 1e-6);
	}
	printf("  tiny model: max |C - NumPy| statistic %.2g over %d embeddings\n", maxd, TINY_N);
	/* the score formula */
	nd_model_calib q;
	nd_calib_params(c, &q);
	CHECK_NEAR(nd_calib_score(&q, 0.9f, st[0], st[1]),
		   0.9 - q.beta * (st[0] + st[1]) / 2 + q.offset, 1e-6);
	/* non-finite input is refused */
	float bad[TINY_D];
	memcpy(bad, gold, sizeof(bad));
	bad[5] = NAN;
	CHECK_EQ_INT(nd_calib_stat(c, bad, 1, &one, &err), ND_EINVAL);
done:
	nd_calib_free(c);
	nd_model_free(m);
	free(gold);
}

/* The shipped model: its calibration against the NumPy values export_ckpt.py
 * wrote with its parity vectors. */
static void test_shipped_golden(void)
{
	nd_model *m = NULL;
	nd_calib *c = NULL;
	nd_error err;
	size_t ne, ng;
	struct stat sb;
	if (stat("models/neardup.ndm", &sb) != 0 || stat("tests/data/cnn/neardup.calib.f32", &sb) != 0) {
		printf("  (no shipped model or golden values: skipped)\n");
		return;
	}
	float *e = read_all("tests/data/cnn/neardup.out.f32", &ne);
	float *g = read_all("tests/data/cnn/neardup.calib.f32", &ng);
	CHECK_EQ_INT(nd_model_load("models/neardup.ndm", &m, &err), 0);
	CHECK(e && g);
	if (!m || !e || !g)
		goto done;
	nd_model_info mi;
	nd_model_get_info(m, &mi);
	size_t n = ng / sizeof(float);
	CHECK_EQ_INT(ne, n * (size_t)mi.embed_dim * sizeof(float));
	CHECK_EQ_INT(nd_calib_create(m, &c, &err), 0);
	if (!c || ne != n * (size_t)mi.embed_dim * sizeof(float))
		goto done;
	float st[64];
	CHECK(n <= 64);
	CHECK_EQ_INT(nd_calib_stat(c, e, n, st, &err), 0);
	nd_model_calib p;
	nd_calib_params(c, &p);
	for (size_t i = 0; i < n; i++) {
		CHECK_NEAR(st[i], g[i], 1e-5);
		CHECK_NEAR(st[i], naive_stat(m, e + i * mi.embed_dim, &p), 1e-5);
	}
	printf("  shipped model: %zu statistics match NumPy (k %d, beta %g, offset %.4f, %zu vectors)\n", n,
	       p.k, (double)p.beta, (double)p.offset, nd_calib_count(c));
done:
	nd_calib_free(c);
	nd_model_free(m);
	free(e);
	free(g);
}

/* Rewrites the CALIB section of a model image (fields at byte offsets) and
 * fixes its section checksum and the file trailer. */
static int patch_calib(uint8_t *b, size_t len, size_t field, const void *val, size_t vlen)
{
	uint32_t nsec;
	uint64_t toff;
	memcpy(&nsec, b + 24, 4);
	memcpy(&toff, b + 32, 8);
	for (uint32_t i = 0; i < nsec; i++) {
		uint8_t *s = b + toff + 32 * (size_t)i;
		uint32_t type;
		uint64_t off, size;
		memcpy(&type, s, 4);
		memcpy(&off, s + 8, 8);
		memcpy(&size, s + 16, 8);
		if (type != 6)
			continue;
		memcpy(b + off + field, val, vlen);
		uint64_t h = XXH3_64bits(b + off, size);
		memcpy(s + 24, &h, 8);
		h = XXH3_64bits(b, len - 8);
		memcpy(b + len - 8, &h, 8);
		return 0;
	}
	return -1;
}

static void test_model_section(void)
{
	size_t len;
	uint8_t *orig = read_all(TINY, &len), *b = malloc(len);
	nd_model *m = NULL;
	nd_error err;
	CHECK(orig && b);
	if (!orig || !b)
		goto done;
	/* valid as written; each bad field refused */
	CHECK_EQ_INT(nd_model_load_mem(orig, len, "tiny", &m, &err), 0);
	nd_model_free(m);
	m = NULL;
	uint32_t zero = 0, big = 401, badstat = 3;
	float nanf_ = NAN, hugebeta = 100.0f;
	struct {
		size_t off;
		const void *v;
	} bad[] = { { 4, &zero }, { 4, &big }, { 0, &badstat }, { 8, &nanf_ }, { 8, &hugebeta }, { 12, &nanf_ } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(b, orig, len);
		CHECK_EQ_INT(patch_calib(b, len, bad[i].off, bad[i].v, 4), 0);
		int rc = nd_model_load_mem(b, len, "tiny", &m, &err);
		CHECK_MSG(rc == ND_ECORRUPT, "field at %zu: rc %d", bad[i].off, rc);
		CHECK(rc != ND_ECORRUPT || strstr(err.msg, "calibration"));
		nd_model_free(m);
		m = NULL;
	}
	/* a model without the section has no calibration */
	CHECK_EQ_INT(nd_model_load("tests/data/cnn/testnet_a.ndm", &m, &err), 0);
	if (m) {
		nd_model_calib p;
		nd_calib *c = NULL;
		CHECK_EQ_INT(nd_model_calibration(m, &p), ND_ENOTFOUND);
		CHECK_EQ_INT(nd_calib_create(m, &c, &err), ND_ENOTFOUND);
		CHECK(c == NULL);
	}
done:
	nd_model_free(m);
	free(orig);
	free(b);
}

/* ---- the index ---- */

#define NV 600

struct fixture {
	nd_model *m;
	nd_calib *c;
	nd_model_calib p;
	float *X;          /* [NV][D] unit vectors: clusters around the golden embeddings */
	nd_index_item it[NV];
	char paths[NV][32];
};

static void unit(float *x, int d)
{
	double n = 0;
	for (int j = 0; j < d; j++)
		n += (double)x[j] * x[j];
	for (int j = 0; j < d; j++)
		x[j] = (float)(x[j] / sqrt(n));
}

static int fixture_init(struct fixture *f)
{
	nd_error err;
	size_t len;
	memset(f, 0, sizeof(*f));
	float *gold = read_all(TINY_GOLD, &len);
	if (!gold || nd_model_load(TINY, &f->m, &err) || nd_calib_create(f->m, &f->c, &err)) {
		free(gold);
		return -1;
	}
	nd_calib_params(f->c, &f->p);
	f->X = malloc(sizeof(float) * NV * TINY_D);
	uint64_t s = 42;
	for (int i = 0; i < NV; i++) {
		float *x = f->X + i * TINY_D;
		/* a golden embedding plus noise: real-looking stats, many close pairs */
		for (int j = 0; j < TINY_D; j++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
			x[j] = gold[(i % TINY_N) * TINY_D + j] + (float)(u * (0.02 + 0.1 * (i % 7)));
		}
		unit(x, TINY_D);
		snprintf(f->paths[i], sizeof(f->paths[i]), "/img/%04d.jpg", i);
		f->it[i].vec = x;
		f->it[i].rec.path = f->paths[i];
		f->it[i].rec.path_len = strlen(f->paths[i]);
		f->it[i].rec.width = f->it[i].rec.height = 100;
		f->it[i].rec.hash[0] = (uint8_t)i;
		f->it[i].rec.hash[1] = (uint8_t)(i >> 8);
	}
	free(gold);
	return 0;
}

static void fixture_free(struct fixture *f)
{
	nd_calib_free(f->c);
	nd_model_free(f->m);
	free(f->X);
}

static nd_index_options opts(struct fixture *f, int calibrated, int readonly)
{
	nd_index_options o;
	nd_index_options_init(&o);
	o.create = !readonly;
	o.readonly = readonly;
	o.dim = TINY_D;
	o.tables = 6;
	o.bits = 8;
	o.nosync = 1;
	o.model_name = "tiny";
	o.model_checksum = 7;
	if (calibrated)
		o.calib = (nd_index_calib){ nd_calib_stat_fn, f->c, TINY_D, f->p.beta, f->p.offset, 0, 0, NULL };
	return o;
}

/* Query results on a calibrated handle: sim is the calibrated score of the
 * stored vectors' statistics (recomputed here), raw the cosine; ranked by
 * sim. */
static void check_queries(struct fixture *f, nd_index *ix)
{
	nd_error err;
	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.k = 20;
	nd_hit hits[20];
	size_t n;
	float fv[TINY_D];
	int bad = 0, checked = 0;
	for (int q = 0; q < NV; q += 37) {
		const float *x = f->X + q * TINY_D;
		float qs, vs;
		CHECK_EQ_INT(nd_index_query(ix, x, &qp, hits, &n, NULL, &err), 0);
		CHECK(n > 0);
		nd_calib_stat(f->c, x, 1, &qs, &err);
		for (size_t i = 0; i < n; i++) {
			CHECK_EQ_INT(nd_index_get_vector(ix, hits[i].id, fv, &err), 0);
			nd_calib_stat(f->c, fv, 1, &vs, &err);
			double cos = 0;
			for (int j = 0; j < TINY_D; j++)
				cos += (double)fv[j] * x[j];
			float want = nd_calib_score(&f->p, hits[i].raw, qs, vs);
			if (fabs(hits[i].raw - cos) > 1e-5 || fabs(hits[i].sim - want) > 1e-6)
				fprintf(stderr, "query %d hit %zu: raw %g (cosine %g), sim %g (want %g)\n", q, i,
					(double)hits[i].raw, cos, (double)hits[i].sim, (double)want);
			bad += fabs(hits[i].raw - cos) > 1e-5;
			bad += fabs(hits[i].sim - want) > 1e-6;
			bad += i > 0 && hits[i].sim > hits[i - 1].sim;
			checked++;
		}
		/* --score raw: plain cosines, ranked by them */
		qp.raw = 1;
		CHECK_EQ_INT(nd_index_query(ix, x, &qp, hits, &n, NULL, &err), 0);
		for (size_t i = 0; i < n; i++)
			bad += hits[i].sim != hits[i].raw || (i > 0 && hits[i].sim > hits[i - 1].sim);
		qp.raw = 0;
	}
	CHECK_MSG(bad == 0, "%d of %d hits wrong", bad, checked);
}

struct pairset {
	uint64_t *v;
	size_t n;
	float *sim;
};

static int collect(void *ctx, uint32_t a, uint32_t b, float sim)
{
	struct pairset *p = ctx;
	p->v[p->n] = (uint64_t)a << 32 | b;
	p->sim[p->n++] = sim;
	return 0;
}

/* A self-join's pairs against every pair scored by brute force with pf
 * (the hash term where both images of f carry a hash and pf has a weight). */
struct join_check {
	size_t want;     /* pairs >= thr */
	size_t found;    /* of those, emitted */
	size_t wrong;    /* emitted below thr, or with another score */
	size_t twice;    /* emitted more than once */
	size_t raw_only; /* pairs on which the cosine and pf's score disagree about thr */
};

static struct join_check check_join(struct fixture *f, nd_index *ix, const nd_model_calib *pf,
				    const struct pairset *ps, float thr)
{
	struct join_check c = { 0 };
	nd_error err;
	float *S = malloc(sizeof(float) * NV), *V = malloc(sizeof(float) * NV * TINY_D);
	for (int i = 0; i < NV; i++) {
		nd_index_get_vector(ix, (uint32_t)i + 1, V + i * TINY_D, &err);
		nd_calib_stat(f->c, V + i * TINY_D, 1, &S[i], &err);
	}
	for (int a = 0; a < NV; a++)
		for (int b = a + 1; b < NV; b++) {
			double cos = 0;
			for (int j = 0; j < TINY_D; j++)
				cos += (double)V[a * TINY_D + j] * V[b * TINY_D + j];
			float sc = nd_calib_score(pf, (float)cos, S[a], S[b]);
			if (f->it[a].has_phash && f->it[b].has_phash)
				sc += nd_calib_phash_bonus(pf, nd_phash_distance(f->it[a].phash, f->it[b].phash));
			uint64_t key = (uint64_t)(a + 1) << 32 | (uint32_t)(b + 1);
			int in = 0;
			for (size_t q = 0; q < ps->n; q++)
				if (ps->v[q] == key) {
					in++;
					c.wrong += fabsf(ps->sim[q] - sc) > 1e-5f;
				}
			c.twice += in > 1;
			if (sc >= thr + 1e-5f) {
				c.want++;
				c.found += in > 0;
			} else if (sc < thr - 1e-5f) {
				c.wrong += in > 0;
			}
			c.raw_only += (cos >= thr) != (sc >= thr);
		}
	free(S);
	free(V);
	return c;
}

static void test_index_calibrated(void)
{
	struct fixture f;
	nd_error err;
	char dir[256];
	CHECK_EQ_INT(fixture_init(&f), 0);
	if (!f.X)
		return;
	snprintf(dir, sizeof(dir), "%s/cal", tmproot);
	rmdir_index(dir);
	nd_index *ix = NULL;
	nd_index_options o = opts(&f, 1, 0);
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	if (!ix)
		goto done;
	CHECK_EQ_INT(nd_index_calibrated(ix), 1);
	CHECK_EQ_INT(nd_index_add(ix, f.it, NV, NULL, &err), 0);
	nd_meta meta;
	CHECK_EQ_INT(nd_index_meta(ix, &meta, &err), 0);
	CHECK(meta.flags & ND_META_VEC_STAT);
	check_queries(&f, ix);
	nd_check_report rep;
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);

	/* self-join on the calibrated score = brute force over all pairs */
	const float thr = 0.9f;
	struct pairset ps = { calloc(NV * NV / 2, 8), 0, calloc(NV * NV / 2, 4) };
	nd_selfjoin_params jp;
	nd_selfjoin_params_init(&jp);
	jp.min_sim = thr;
	jp.threads = 2;
	jp.radius = 3;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect, &ps, NULL, &err), 0);
	struct join_check c = check_join(&f, ix, &f.p, &ps, thr);
	printf("  self-join at calibrated %.2f: %zu of %zu pairs found, %zu wrong (%zu pairs differ "
	       "from raw >= %.2f)\n", (double)thr, c.found, c.want, c.wrong, c.raw_only, (double)thr);
	CHECK(c.want > 50);
	CHECK(c.raw_only > 0); /* the test means something: the scales differ */
	CHECK_EQ_INT(c.wrong, 0);
	CHECK_EQ_INT(c.twice, 0);
	CHECK(c.found >= c.want * 97 / 100);
	/* raw join: plain cosines */
	ps.n = 0;
	jp.raw = 1;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect, &ps, NULL, &err), 0);
	for (size_t q = 0; q < ps.n; q++)
		CHECK(ps.sim[q] >= thr && ps.sim[q] <= 1.001f);
	free(ps.v);
	free(ps.sim);
	nd_index_close(ix);
done:
	rmdir_index(dir);
	fixture_free(&f);
}


/* Score fusion (issue 4): images stored with a perceptual hash score
 * cal + weight * max(0, bits - Hamming) against a query with one; without
 * a hash on either side, the calibrated score alone. Query and self-join. */
static void test_index_phash_fusion(void)
{
	struct fixture f;
	nd_error err;
	char dir[256];
	const float weight = 0.03f, bits = 11.0f;
	CHECK_EQ_INT(fixture_init(&f), 0);
	if (!f.X)
		return;
	snprintf(dir, sizeof(dir), "%s/fused", tmproot);
	rmdir_index(dir);
	/* hashes: one of 4 base patterns, a few bits flipped; every 5th image has none */
	static const uint64_t base[4] = { 0x0123456789abcdefull, 0xfedcba9876543210ull,
					  0x00ff00ff00ff00ffull, 0xaaaaaaaa55555555ull };
	for (int i = 0; i < NV; i++) {
		f.it[i].has_phash = i % 5 != 0;
		f.it[i].phash = base[i % 4] ^ ((1ull << (i % 13)) - 1);
	}
	nd_index *ix = NULL;
	nd_index_options o = opts(&f, 1, 0);
	o.calib.phash_weight = weight;
	o.calib.phash_bits = bits;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	if (!ix)
		goto done;
	CHECK_EQ_INT(nd_index_add(ix, f.it, NV, NULL, &err), 0);
	nd_check_report rep;
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
	nd_model_calib pf = f.p;
	pf.phash_weight = weight;
	pf.phash_bits = bits;

	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.k = 20;
	nd_hit hits[20];
	size_t n;
	float fv[TINY_D];
	int bad = 0, boosted = 0, checked = 0;
	for (int q = 0; q < NV; q += 29)
		for (int with = 0; with <= 1; with++) {
			const float *x = f.X + q * TINY_D;
			float qs, vs;
			qp.has_phash = with;
			qp.phash = base[q % 4];
			CHECK_EQ_INT(nd_index_query(ix, x, &qp, hits, &n, NULL, &err), 0);
			nd_calib_stat(f.c, x, 1, &qs, &err);
			for (size_t i = 0; i < n; i++) {
				int has;
				uint64_t h;
				CHECK_EQ_INT(nd_index_get_vector(ix, hits[i].id, fv, &err), 0);
				CHECK_EQ_INT(nd_index_get_phash(ix, hits[i].id, &has, &h, &err), 0);
				uint32_t idx = hits[i].id - 1;
				bad += has != f.it[idx].has_phash || (has && h != f.it[idx].phash);
				nd_calib_stat(f.c, fv, 1, &vs, &err);
				float want = nd_calib_score(&pf, hits[i].raw, qs, vs);
				if (with && has)
					want += nd_calib_phash_bonus(&pf, nd_phash_distance(qp.phash, h));
				boosted += want > nd_calib_score(&pf, hits[i].raw, qs, vs);
				bad += fabsf(hits[i].sim - want) > 1e-6f;
				bad += i > 0 && hits[i].sim > hits[i - 1].sim;
				checked++;
			}
		}
	CHECK_MSG(bad == 0, "%d of %d hits wrong", bad, checked);
	CHECK(boosted > 10); /* the test means something */

	/* self-join: every emitted pair carries the fused score */
	struct pairset ps = { calloc(NV * NV / 2, 8), 0, calloc(NV * NV / 2, 4) };
	nd_selfjoin_params jp;
	nd_selfjoin_params_init(&jp);
	jp.min_sim = 0.9f;
	jp.threads = 2;
	jp.radius = 3;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect, &ps, NULL, &err), 0);
	int jbad = 0, jboost = 0;
	for (size_t q = 0; q < ps.n; q++) {
		uint32_t a = (uint32_t)(ps.v[q] >> 32), b = (uint32_t)ps.v[q];
		float va[TINY_D], vb[TINY_D], sa, sb;
		nd_index_get_vector(ix, a, va, &err);
		nd_index_get_vector(ix, b, vb, &err);
		nd_calib_stat(f.c, va, 1, &sa, &err);
		nd_calib_stat(f.c, vb, 1, &sb, &err);
		double cos = 0;
		for (int j = 0; j < TINY_D; j++)
			cos += (double)va[j] * vb[j];
		float want = nd_calib_score(&pf, (float)cos, sa, sb);
		const nd_index_item *ia = &f.it[a - 1], *ib = &f.it[b - 1];
		if (ia->has_phash && ib->has_phash) {
			float bonus = nd_calib_phash_bonus(&pf, nd_phash_distance(ia->phash, ib->phash));
			want += bonus;
			jboost += bonus > 0;
		}
		jbad += fabsf(ps.sim[q] - want) > 1e-5f || ps.sim[q] < jp.min_sim;
	}
	printf("  fused self-join: %zu pairs, %d with a pHash term, %d wrong\n", ps.n, jboost, jbad);
	CHECK(jboost > 0);
	CHECK_EQ_INT(jbad, 0);
	free(ps.v);
	free(ps.sim);
	nd_index_close(ix);
done:
	rmdir_index(dir);
	fixture_free(&f);
}

/* 1 when id is among the query's hits. */
/* The originality record (vector version 4) is stored beside a hash on a
 * calibrated index and read back as given; without a hash, without a
 * record or on an uncalibrated index, there is none. */
static void test_index_origin(void)
{
	struct fixture f;
	nd_error err;
	char dir[256];
	CHECK_EQ_INT(fixture_init(&f), 0);
	if (!f.X)
		return;
	static nd_origin recs[NV];
	for (int i = 0; i < NV; i++) {
		nd_origin_init(&recs[i]);
		recs[i].chroma = (float)(i % 200);
		recs[i].margin = (float)(i % 10) / 20.0f;
		recs[i].quality = (uint8_t)(i % 101);
		recs[i].taken = 1000000 + i;
		f.it[i].has_phash = i % 3 != 0;
		f.it[i].phash = (uint64_t)i * 0x9e3779b97f4a7c15ull;
		f.it[i].origin = i % 4 != 0 ? &recs[i] : NULL;
	}
	for (int cal = 1; cal >= 0; cal--) {
		snprintf(dir, sizeof(dir), "%s/origin%d", tmproot, cal);
		rmdir_index(dir);
		nd_index *ix = NULL;
		nd_index_options o = opts(&f, cal, 0);
		CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
		if (!ix)
			break;
		uint32_t *ids = malloc(NV * sizeof(*ids));
		CHECK_EQ_INT(nd_index_add(ix, f.it, NV, ids, &err), 0);
		nd_check_report rep;
		CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
		CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
		int bad = 0, stored = 0;
		for (int i = 0; i < NV; i++) {
			int has;
			nd_origin got;
			CHECK_EQ_INT(nd_index_get_origin(ix, ids[i], &has, &got, &err), 0);
			int want = cal && f.it[i].has_phash && f.it[i].origin;
			bad += has != want;
			if (has && want)
				bad += got.chroma != recs[i].chroma || got.margin != recs[i].margin ||
				       got.quality != recs[i].quality || got.taken != recs[i].taken;
			if (!has)
				bad += got.quality != 0 || got.taken != 0;
			stored += has;
		}
		CHECK_MSG(bad == 0, "%d of %d records wrong (calibrated %d)", bad, NV, cal);
		CHECK(cal ? stored > NV / 3 : stored == 0);
		free(ids);
		nd_index_close(ix);
		rmdir_index(dir);
	}
	for (int i = 0; i < NV; i++)
		f.it[i].origin = NULL;
	fixture_free(&f);
}

static int query_finds(nd_index *ix, const float *x, const nd_query_params *qp, uint32_t id,
		       nd_hit *hit)
{
	nd_error err;
	nd_hit hits[NV];
	size_t n = 0;
	CHECK_EQ_INT(nd_index_query(ix, x, qp, hits, &n, NULL, &err), 0);
	for (size_t i = 0; i < n; i++)
		if (hits[i].id == id) {
			if (hit)
				*hit = hits[i];
			return 1;
		}
	return 0;
}

/* Changes an index behind neardup's back, with LMDB directly. */
enum tamper {
	FORGET_MARK,    /* delete meta's "phash" mark: an older writer's index */
	DROP_PHASH_DB,  /* ... and the phash database: an index from before it */
	DROP_BLOCK      /* delete the phash database's first block, mark kept: damage */
};

static void tamper_phash(const char *dir, enum tamper how)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, ph;
	MDB_cursor *cur;
	MDB_val k = { 5, "phash" }, v;
	CHECK_EQ_INT(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	CHECK_EQ_INT(mdb_env_open(env, dir, 0, 0644), 0);
	CHECK_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_EQ_INT(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	CHECK_EQ_INT(mdb_dbi_open(txn, "phash", 0, &ph), 0);
	if (how == DROP_BLOCK) {
		CHECK_EQ_INT(mdb_cursor_open(txn, ph, &cur), 0);
		CHECK_EQ_INT(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
		CHECK_EQ_INT(mdb_cursor_del(cur, 0), 0);
		mdb_cursor_close(cur);
	} else {
		CHECK_EQ_INT(mdb_del(txn, meta, &k, NULL), 0);
		if (how == DROP_PHASH_DB)
			CHECK_EQ_INT(mdb_drop(txn, ph, 1), 0);
	}
	CHECK_EQ_INT(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* The perceptual-hash postings (issue 4): an image whose CNN vector is far
 * from the query's (outside every LSH bucket the query reads) is still a
 * candidate when its hash is within 3 bits of the query's, and scores the
 * fused similarity; removal, replacement, and a missing or stale phash
 * database (rebuilt by the next writer, ignored by readers until then). */
static void test_index_phash_postings(void)
{
	struct fixture f;
	nd_error err;
	char dir[256];
	CHECK_EQ_INT(fixture_init(&f), 0);
	if (!f.X)
		return;
	snprintf(dir, sizeof(dir), "%s/phpost", tmproot);
	rmdir_index(dir);
	uint64_t s = 7;
	int hashed = 0;
	for (int i = 0; i < NV; i++) { /* random hashes; every 3rd image has none */
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		f.it[i].has_phash = i % 3 != 0;
		f.it[i].phash = s ^ (s >> 29);
		hashed += f.it[i].has_phash;
	}
	const int target = 40, twin = 41 + 3 * 50; /* hashed */
	const uint32_t tid = target + 1;
	const uint64_t th = f.it[target].phash;
	float far[TINY_D];
	for (int j = 0; j < TINY_D; j++) /* antipodal: in none of the target's buckets */
		far[j] = -f.X[target * TINY_D + j];
	/* the twin: a far vector and the target's hash but one bit (a weight
	 * that lifts such a pair over 0.9 whatever its cosine) */
	memcpy(f.X + twin * TINY_D, far, sizeof(far));
	f.it[twin].phash = th ^ 0x10;
	const float weight = 0.2f;

	nd_index *ix = NULL;
	nd_index_options o = opts(&f, 1, 0);
	o.calib.phash_weight = weight;
	o.calib.phash_bits = 11.0f;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	if (!ix)
		goto done;
	CHECK_EQ_INT(nd_index_add(ix, f.it, NV, NULL, &err), 0);
	nd_check_report rep;
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
	CHECK_EQ_INT(rep.phash_valid, 1);
	CHECK_EQ_INT(rep.phash_postings, (uint64_t)hashed * ND_PHASH_QUARTERS);

	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.k = NV;
	qp.probes = 0; /* home buckets only */
	nd_hit hit = { 0 };
	CHECK(!query_finds(ix, far, &qp, tid, NULL)); /* the test means something */
	qp.has_phash = 1;
	qp.phash = th ^ 0x8000000100000001ull; /* 3 bits off: quarter 2 still equal */
	CHECK(query_finds(ix, far, &qp, tid, &hit));
	nd_model_calib pf = f.p;
	pf.phash_weight = weight;
	pf.phash_bits = 11.0f;
	{ /* scored with the fused similarity: cosine about -1 plus 0.2 * (11 - 3) */
		float fv[TINY_D], qs, vs;
		nd_index_get_vector(ix, tid, fv, &err);
		nd_calib_stat(f.c, far, 1, &qs, &err);
		nd_calib_stat(f.c, fv, 1, &vs, &err);
		CHECK(hit.raw < -0.99f);
		CHECK_NEAR(hit.sim, nd_calib_score(&pf, hit.raw, qs, vs) + weight * 8, 1e-5);
	}
	qp.phash = th ^ 0x0001000100010001ull; /* 4 bits off, one per quarter: no quarter equal */
	CHECK(!query_finds(ix, far, &qp, tid, NULL));
	qp.phash = th;
	nd_query_stats qs;
	nd_hit hit1[1];
	size_t n1;
	qp.k = 1;
	CHECK_EQ_INT(nd_index_query(ix, far, &qp, hit1, &n1, &qs, &err), 0);
	CHECK(qs.phash_postings >= 4); /* the target in each of its four buckets */
	qp.k = NV;

	/* self-join: every pair >= 0.9 (brute force), each once, the twins too */
	{
		const float thr = 0.9f;
		struct pairset ps = { calloc(NV * NV / 2, 8), 0, calloc(NV * NV / 2, 4) };
		nd_selfjoin_params jp;
		nd_selfjoin_stats js;
		nd_selfjoin_params_init(&jp);
		jp.min_sim = thr;
		jp.threads = 2;
		jp.radius = 3;
		CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect, &ps, &js, &err), 0);
		struct join_check c = check_join(&f, ix, &pf, &ps, thr);
		int twins = 0;
		for (size_t q = 0; q < ps.n; q++)
			twins += ps.v[q] == ((uint64_t)tid << 32 | (uint32_t)(twin + 1));
		printf("  self-join with hash groups: %zu of %zu pairs found, %zu wrong, %zu twice, "
		       "%llu compared through the hash groups\n", c.found, c.want, c.wrong, c.twice,
		       (unsigned long long)js.phash_compared);
		CHECK_EQ_INT(twins, 1);
		CHECK(js.phash_compared >= 1);
		CHECK_EQ_INT(c.wrong, 0);
		CHECK_EQ_INT(c.twice, 0);
		CHECK(c.found >= c.want * 97 / 100);
		free(ps.v);
		free(ps.sim);
	}
	/* a raw query has no hash term: no hash candidates either */
	qp.raw = 1;
	CHECK(!query_finds(ix, far, &qp, tid, NULL));
	qp.raw = 0;

	/* replacing the image (same path, another hash) moves its postings */
	nd_index_item it = f.it[target];
	it.phash = ~th;
	uint32_t nid;
	CHECK_EQ_INT(nd_index_add(ix, &it, 1, &nid, &err), 0);
	CHECK(!query_finds(ix, far, &qp, tid, NULL) && !query_finds(ix, far, &qp, nid, NULL));
	qp.phash = ~th;
	CHECK(query_finds(ix, far, &qp, nid, NULL));
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
	/* removal takes them away */
	size_t removed;
	CHECK_EQ_INT(nd_index_remove(ix, &nid, 1, &removed, &err), 0);
	CHECK_EQ_INT(removed, 1);
	CHECK(!query_finds(ix, far, &qp, nid, NULL));
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
	CHECK_EQ_INT(rep.phash_postings, (uint64_t)(hashed - 1) * ND_PHASH_QUARTERS);
	nd_index_close(ix);
	ix = NULL;

	/* check finds a hash posting missing */
	tamper_phash(dir, DROP_BLOCK);
	o = opts(&f, 1, 1);
	o.calib.phash_weight = weight;
	o.calib.phash_bits = 11.0f;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	if (!ix)
		goto done;
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK(rep.n_problems >= 1 && strstr(rep.problems[0], "hash posting lists"));
	nd_index_close(ix);
	ix = NULL;

	/* a stale mark (an older writer), then no phash database at all (an
	 * index from before it): readers go on without the hash candidates... */
	const int other = 43; /* hashed, still indexed */
	float far2[TINY_D];
	for (int j = 0; j < TINY_D; j++)
		far2[j] = -f.X[other * TINY_D + j];
	qp.phash = f.it[other].phash;
	for (int drop = 0; drop <= 1; drop++) {
		tamper_phash(dir, drop ? DROP_PHASH_DB : FORGET_MARK);
		o = opts(&f, 1, 1);
		o.calib.phash_weight = weight;
		o.calib.phash_bits = 11.0f;
		CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
		if (!ix)
			goto done;
		CHECK(!query_finds(ix, far2, &qp, other + 1, NULL));
		CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
		CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
		CHECK_EQ_INT(rep.phash_valid, 0);
		nd_index_stats st;
		CHECK_EQ_INT(nd_index_stats_get(ix, &st, &err), 0);
		CHECK(drop ? st.phash_db_bytes == 0 : st.phash_db_bytes > 0);
		nd_index_close(ix);
		ix = NULL;
		/* ... and the next writer lists every hash again */
		o = opts(&f, 1, 0);
		o.calib.phash_weight = weight;
		o.calib.phash_bits = 11.0f;
		CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
		if (!ix)
			goto done;
		CHECK(query_finds(ix, far2, &qp, other + 1, NULL));
		CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
		CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
		CHECK_EQ_INT(rep.phash_valid, 1);
		CHECK_EQ_INT(rep.phash_postings, (uint64_t)(hashed - 1) * ND_PHASH_QUARTERS);
		nd_index_close(ix);
		ix = NULL;
	}
done:
	nd_index_close(ix);
	rmdir_index(dir);
	fixture_free(&f);
}

static int stat_calls;
static int stat_limit;
/* A statistic that dies (SIGKILL) after stat_limit vectors: an interrupted upgrade. */
static int dying_stat(void *ctx, const float *vecs, size_t n, float *out, nd_error *err)
{
	stat_calls += (int)n;
	if (stat_limit && stat_calls > stat_limit)
		raise(SIGKILL);
	return nd_calib_stat(ctx, vecs, n, out, err);
}

static void test_upgrade(void)
{
	struct fixture f;
	nd_error err;
	char dir[256], ref[256];
	CHECK_EQ_INT(fixture_init(&f), 0);
	if (!f.X)
		return;
	snprintf(dir, sizeof(dir), "%s/old", tmproot);
	snprintf(ref, sizeof(ref), "%s/ref", tmproot);
	rmdir_index(dir);
	rmdir_index(ref);
	/* an index as built before issue 8: version-1 vectors, no flag */
	nd_index *ix = NULL;
	nd_index_options o = opts(&f, 0, 0);
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	if (!ix)
		goto done;
	CHECK_EQ_INT(nd_index_calibrated(ix), 0);
	CHECK_EQ_INT(nd_index_add(ix, f.it, NV, NULL, &err), 0);
	nd_meta meta;
	nd_index_meta(ix, &meta, &err);
	CHECK(!(meta.flags & ND_META_VEC_STAT));
	nd_index_close(ix);
	ix = NULL;

	/* read-only with the calibration: refused, naming what to do */
	o = opts(&f, 1, 1);
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), ND_EVERSION);
	CHECK(strstr(err.msg, "no background statistics") != NULL);
	CHECK(ix == NULL);

	/* an upgrade killed half-way leaves the index as it was */
	pid_t pid = fork();
	if (pid == 0) {
		nd_index *w = NULL;
		nd_index_options ow = opts(&f, 1, 0);
		ow.create = 0;
		ow.calib.stat = dying_stat;
		stat_limit = NV / 2;
		nd_index_open(&w, dir, &ow, &err);
		_exit(0); /* not reached: killed inside the upgrade */
	}
	int ws = 0;
	waitpid(pid, &ws, 0);
	CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	o = opts(&f, 0, 1);
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	if (ix) {
		nd_index_meta(ix, &meta, &err);
		CHECK(!(meta.flags & ND_META_VEC_STAT));
		CHECK_EQ_INT(meta.n_images, NV);
		nd_check_report rep;
		CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
		CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
		nd_index_close(ix);
		ix = NULL;
	}

	/* the upgrade: every vector gets its statistic, in one transaction */
	uint64_t up = 0;
	o = opts(&f, 1, 0);
	o.create = 0;
	o.upgraded = &up;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	CHECK_EQ_INT(up, NV);
	if (!ix)
		goto done;
	nd_index_meta(ix, &meta, &err);
	CHECK(meta.flags & ND_META_VEC_STAT);
	nd_check_report rep;
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK_MSG(rep.n_problems == 0, "%s", rep.problems[0]);
	check_queries(&f, ix);
	nd_index_close(ix);
	ix = NULL;
	/* opening again upgrades nothing; read-only now works */
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	CHECK_EQ_INT(up, 0);
	nd_index_close(ix);
	ix = NULL;
	o = opts(&f, 1, 1);
	o.upgraded = NULL;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);

	/* same results as an index built calibrated from the start */
	nd_index *r = NULL;
	nd_index_options orf = opts(&f, 1, 0);
	CHECK_EQ_INT(nd_index_open(&r, ref, &orf, &err), 0);
	if (ix && r) {
		CHECK_EQ_INT(nd_index_add(r, f.it, NV, NULL, &err), 0);
		nd_query_params qp;
		nd_query_params_init(&qp);
		qp.k = 10;
		nd_hit h1[10], h2[10];
		size_t n1, n2;
		int diff = 0;
		for (int q = 0; q < NV; q += 13) {
			nd_index_query(ix, f.X + q * TINY_D, &qp, h1, &n1, NULL, &err);
			nd_index_query(r, f.X + q * TINY_D, &qp, h2, &n2, NULL, &err);
			diff += n1 != n2;
			for (size_t i = 0; i < n1 && i < n2; i++)
				diff += h1[i].id != h2[i].id || h1[i].sim != h2[i].sim;
		}
		CHECK_EQ_INT(diff, 0);
	}
	nd_index_close(r);
	nd_index_close(ix);
	ix = NULL;

	/* a writer without the statistic (an older neardup) clears the flag;
	 * the next calibrated open upgrades just what it wrote */
	o = opts(&f, 0, 0);
	o.create = 0;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	if (ix) {
		nd_index_item extra = f.it[0];
		extra.rec.path = "/img/extra.jpg";
		extra.rec.path_len = strlen(extra.rec.path);
		CHECK_EQ_INT(nd_index_add(ix, &extra, 1, NULL, &err), 0);
		nd_index_meta(ix, &meta, &err);
		CHECK(!(meta.flags & ND_META_VEC_STAT));
		nd_index_close(ix);
		ix = NULL;
	}
	o = opts(&f, 1, 1);
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), ND_EVERSION);
	o = opts(&f, 1, 0);
	o.create = 0;
	o.upgraded = &up;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), 0);
	CHECK_EQ_INT(up, 1);
	nd_index_close(ix);
	ix = NULL;

	/* a different model is refused before anything is upgraded */
	o = opts(&f, 1, 0);
	o.create = 0;
	o.model_checksum = 8;
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), ND_EMISMATCH);
done:
	nd_index_close(ix);
	rmdir_index(dir);
	rmdir_index(ref);
	fixture_free(&f);
}

int main(void)
{
	snprintf(tmproot, sizeof(tmproot), "/tmp/nd_test_calib_XXXXXX");
	if (!mkdtemp(tmproot)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_tiny_golden);
	RUN(test_shipped_golden);
	RUN(test_model_section);
	RUN(test_index_calibrated);
	RUN(test_index_phash_fusion);
	RUN(test_index_origin);
	RUN(test_index_phash_postings);
	RUN(test_upgrade);
	rmdir(tmproot);
	return test_summary();
}
