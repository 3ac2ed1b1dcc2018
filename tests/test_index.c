/* Tests for the LMDB index (src/store.c, src/index*.c): add, query, recall
 * against brute force, remove and re-add, map growth, writer lock, readers
 * during writes, crash safety under SIGKILL, self-join, check. */
#include "neardup/index.h"
#include "neardup/lsh.h"
#include "lib_fs.h"
#include "test.h"

#include "lib_synth.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static char tmproot[64];

static void fresh_dir(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", tmproot, name);
	tl_rm_index(out);
}

static nd_index *open_new(const char *dir, uint32_t dim, size_t map_size)
{
	nd_index_options o;
	nd_index *ix = NULL;
	nd_error err;
	nd_index_options_init(&o);
	o.create = 1;
	o.dim = dim;
	o.model_name = "test-model";
	o.model_checksum = 0xABCDEF;
	o.map_size = map_size;
	int rc = nd_index_open(&ix, dir, &o, &err);
	CHECK_MSG(rc == 0, "open '%s': %s", dir, err.msg);
	return ix;
}

static nd_index *open_existing(const char *dir, int readonly)
{
	nd_index_options o;
	nd_index *ix = NULL;
	nd_error err;
	nd_index_options_init(&o);
	o.readonly = readonly;
	int rc = nd_index_open(&ix, dir, &o, &err);
	CHECK_MSG(rc == 0, "open '%s': %s", dir, err.msg);
	return ix;
}

static int check_ok(nd_index *ix, nd_check_report *rep)
{
	nd_error err;
	int rc = nd_index_check(ix, rep, &err);
	CHECK_MSG(rc == 0, "check: %s", err.msg);
	for (uint64_t i = 0; i < rep->n_problems && i < ND_CHECK_MAX_PROBLEMS; i++)
		fprintf(stderr, "  check problem: %s\n", rep->problems[i]);
	return rc == 0 && rep->n_problems == 0;
}

/* items with paths "<prefix>/<i>", hash from i / hash_div */
struct batch {
	nd_index_item *items;
	char (*paths)[64];
	size_t n;
};

static void batch_make(struct batch *b, const char *prefix, size_t n, const float *vecs, uint32_t dim,
		       size_t first, size_t hash_div)
{
	b->n = n;
	b->items = calloc(n, sizeof(*b->items));
	b->paths = calloc(n, sizeof(*b->paths));
	for (size_t i = 0; i < n; i++) {
		size_t g = first + i;
		snprintf(b->paths[i], sizeof(b->paths[i]), "%s/%zu.jpg", prefix, g);
		nd_record *r = &b->items[i].rec;
		r->path = b->paths[i];
		r->path_len = strlen(r->path);
		r->size = 1000 + g;
		r->mtime_ns = 1700000000000000000ll + (int64_t)g;
		r->width = 640 + (uint32_t)(g % 7);
		r->height = 480;
		size_t h = g / hash_div;
		memcpy(r->hash, &h, sizeof(h));
		b->items[i].vec = vecs + i * dim;
	}
}

static void batch_free(struct batch *b)
{
	free(b->items);
	free(b->paths);
}

static void test_basic(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "basic");
	const uint32_t D = 64;
	nd_index *ix = open_new(dir, D, 0);
	if (!ix)
		return;
	synth s;
	synth_init(&s, D, 5, 1);
	synth_rng r = { 77, 0, 0 };
	float *X = malloc(sizeof(float) * D * 100);
	for (int i = 0; i < 100; i++)
		synth_background(&s, &r, X + i * D);
	struct batch b;
	batch_make(&b, "img", 100, X, D, 0, 2); /* pairs share a content hash */
	uint32_t ids[100];
	nd_error err;
	CHECK_EQ_INT(nd_index_add(ix, b.items, 60, ids, &err), 0);
	CHECK_EQ_INT(ids[0], 1);
	CHECK_EQ_INT(ids[59], 60);
	CHECK_EQ_INT(nd_index_add(ix, b.items + 60, 40, ids + 60, &err), 0);
	CHECK_EQ_INT(ids[60], 61);
	nd_record rec;
	char pb[ND_PATH_MAX + 1];
	CHECK_EQ_INT(nd_index_get_record(ix, 17, &rec, pb, sizeof(pb), &err), 0);
	CHECK(strcmp(rec.path, "img/16.jpg") == 0 && rec.size == 1016 && rec.width == 640 + 16 % 7 &&
	      rec.height == 480 && rec.mtime_ns == 1700000000000000016ll);
	CHECK_EQ_INT(nd_index_get_record(ix, 17, &rec, pb, 5, &err), ND_ELIMIT);
	CHECK_EQ_INT(nd_index_get_record(ix, 1000, &rec, pb, sizeof(pb), &err), ND_ENOTFOUND);
	uint32_t id;
	CHECK_EQ_INT(nd_index_lookup_path(ix, "img/42.jpg", &id, &err), 0);
	CHECK_EQ_INT(id, 43);
	CHECK_EQ_INT(nd_index_lookup_path(ix, "img/420.jpg", &id, &err), ND_ENOTFOUND);
	uint32_t hids[4];
	size_t nh;
	CHECK_EQ_INT(nd_index_lookup_hash(ix, b.items[42].rec.hash, hids, 4, &nh, &err), 0);
	CHECK_EQ_INT(nh, 2);
	CHECK(hids[0] == 43 && hids[1] == 44);
	/* a vector finds itself first */
	nd_query_params qp;
	nd_query_params_init(&qp);
	nd_hit hits[10];
	size_t n;
	for (int i = 0; i < 100; i += 9) {
		CHECK_EQ_INT(nd_index_query(ix, X + i * D, &qp, hits, &n, NULL, &err), 0);
		CHECK(n >= 1 && hits[0].id == ids[i]);
		CHECK_NEAR(hits[0].sim, 1.0, 1e-2);
		for (size_t j = 1; j < n; j++)
			CHECK(hits[j].sim <= hits[j - 1].sim);
	}
	qp.min_sim = 0.99f;
	CHECK_EQ_INT(nd_index_query(ix, X, &qp, hits, &n, NULL, &err), 0);
	CHECK_EQ_INT(n, 1);
	float v[64];
	CHECK_EQ_INT(nd_index_get_vector(ix, 5, v, &err), 0);
	for (uint32_t i = 0; i < D; i++)
		CHECK_NEAR(v[i], X[4 * D + i], 2e-3);
	nd_index_stats st;
	CHECK_EQ_INT(nd_index_stats_get(ix, &st, &err), 0);
	CHECK_EQ_INT(st.meta.n_images, 100);
	CHECK_EQ_INT(st.meta.n_postings, 100 * st.meta.tables);
	CHECK(st.bytes_per_posting > 1 && st.map_size > 0 && st.file_bytes > 0);
	nd_check_report rep;
	CHECK(check_ok(ix, &rep));
	CHECK_EQ_INT(rep.records, 100);
	/* invalid input writes nothing */
	float bad[64] = { 0 };
	bad[0] = 2.0f;
	nd_index_item it = b.items[0];
	it.vec = bad;
	CHECK_EQ_INT(nd_index_add(ix, &it, 1, NULL, &err), ND_EINVAL);
	CHECK(strstr(err.msg, "normalised") != NULL);
	bad[0] = NAN;
	CHECK_EQ_INT(nd_index_add(ix, &it, 1, NULL, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_index_stats_get(ix, &st, &err), 0);
	CHECK_EQ_INT(st.meta.n_images, 100);
	/* long paths (keyed by prefix + hash) */
	{
		char lp1[1200], lp2[1200];
		memset(lp1, 'd', sizeof(lp1));
		memcpy(lp2, lp1, sizeof(lp2));
		lp1[1199] = lp2[1199] = 0;
		lp2[1100] = 'e'; /* same 463-byte prefix */
		nd_index_item li[2] = { b.items[0], b.items[1] };
		li[0].rec.path = lp1;
		li[0].rec.path_len = strlen(lp1);
		li[1].rec.path = lp2;
		li[1].rec.path_len = strlen(lp2);
		uint32_t lid[2], got;
		CHECK_EQ_INT(nd_index_add(ix, li, 2, lid, &err), 0);
		CHECK_EQ_INT(nd_index_lookup_path(ix, lp1, &got, &err), 0);
		CHECK_EQ_INT(got, lid[0]);
		CHECK_EQ_INT(nd_index_lookup_path(ix, lp2, &got, &err), 0);
		CHECK_EQ_INT(got, lid[1]);
		CHECK(check_ok(ix, &rep));
		CHECK_EQ_INT(nd_index_remove(ix, lid, 2, NULL, &err), 0);
		CHECK_EQ_INT(nd_index_lookup_path(ix, lp1, &got, &err), ND_ENOTFOUND);
	}
	/* model check */
	CHECK_EQ_INT(nd_index_check_model(ix, "test-model", 0xABCDEF, &err), 0);
	CHECK_EQ_INT(nd_index_check_model(ix, "test-model", 0xABCDEE, &err), ND_EMISMATCH);
	CHECK(strstr(err.msg, "test-model") != NULL);
	nd_index_close(ix);
	/* reopen: read-only, with the wrong model, without create */
	ix = open_existing(dir, 1);
	if (ix) {
		CHECK_EQ_INT(nd_index_lookup_path(ix, "img/99.jpg", &id, &err), 0);
		CHECK_EQ_INT(id, 100);
		CHECK_EQ_INT(nd_index_add(ix, b.items, 1, NULL, &err), ND_EINVAL);
		nd_index_close(ix);
	}
	nd_index_options o;
	nd_index_options_init(&o);
	o.model_name = "other-model";
	CHECK_EQ_INT(nd_index_open(&ix, dir, &o, &err), ND_EMISMATCH);
	CHECK(ix == NULL);
	nd_index_options_init(&o);
	char missing[160];
	snprintf(missing, sizeof(missing), "%s/none", tmproot);
	CHECK_EQ_INT(nd_index_open(&ix, missing, &o, &err), ND_ENOTFOUND);
	batch_free(&b);
	free(X);
	synth_free(&s);
	tl_rm_index(dir);
}

/* Exact top-k (sim >= tau) of q over X[n][d]. */
static size_t exact_topk(const float *X, size_t n, uint32_t d, const float *q, size_t k, float tau,
			 uint32_t *out, float *sims)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		float s = 0;
		for (uint32_t j = 0; j < d; j++)
			s += X[i * d + j] * q[j];
		if (s < tau)
			continue;
		size_t p = m < k ? m++ : k;
		if (p == k) {
			if (s <= sims[k - 1])
				continue;
			p = k - 1;
		}
		while (p > 0 && sims[p - 1] < s) {
			sims[p] = sims[p - 1];
			out[p] = out[p - 1];
			p--;
		}
		sims[p] = s;
		out[p] = (uint32_t)i;
	}
	return m;
}

/* recall@10 against brute force, default parameters, near-duplicates >= 0.8 */
static void test_recall(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "recall");
	const uint32_t D = 128;
	const size_t N = 20000, NQ = 400, B = 2000;
	synth s;
	synth_init(&s, D, 40, 2);
	float *X = malloc(sizeof(float) * D * N), *bases = NULL;
	size_t nc;
	CHECK_EQ_INT(synth_dataset(&s, 5, N, X, NULL, &bases, &nc), 0);
	nd_index *ix = open_new(dir, D, 0);
	if (!ix)
		return;
	nd_error err;
	for (size_t i = 0; i < N; i += B) {
		struct batch b;
		batch_make(&b, "r", B, X + i * D, D, i, 1);
		CHECK_EQ_INT(nd_index_add(ix, b.items, B, NULL, &err), 0);
		batch_free(&b);
	}
	synth_rng r = { 99, 0, 0 };
	float q[128], esim[10];
	uint32_t eid[10];
	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.min_sim = 0.8f;
	size_t want = 0, got = 0;
	double maxdiff = 0;
	for (size_t qi = 0; qi < NQ; qi++) {
		synth_perturb(&s, &r, bases + (synth_u64(&r) % nc) * D, q);
		size_t ne = exact_topk(X, N, D, q, 10, 0.8f, eid, esim), n;
		nd_hit hits[10];
		CHECK_EQ_INT(nd_index_query(ix, q, &qp, hits, &n, NULL, &err), 0);
		want += ne;
		for (size_t i = 0; i < ne; i++)
			for (size_t j = 0; j < n; j++)
				if (hits[j].id == eid[i] + 1) {
					got++;
					if (fabs(hits[j].sim - esim[i]) > maxdiff)
						maxdiff = fabs(hits[j].sim - esim[i]);
				}
	}
	double recall = want ? (double)got / (double)want : 0;
	printf("recall@10 (sim >= 0.8) at N=%zu: %.4f over %zu neighbours, max |sim error| %.4f\n", N,
	       recall, want, maxdiff);
	CHECK(want > NQ);
	CHECK_MSG(recall >= 0.95, "recall@10 %.4f < 0.95", recall);
	CHECK(maxdiff < 0.01);
	nd_check_report rep;
	CHECK(check_ok(ix, &rep));
	nd_index_close(ix);
	free(X);
	free(bases);
	synth_free(&s);
	tl_rm_index(dir);
}

static void test_remove_readd(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "remove");
	const uint32_t D = 32;
	const size_t N = 3000;
	synth s;
	synth_init(&s, D, 10, 3);
	float *X = malloc(sizeof(float) * D * N), *bases = NULL;
	size_t nc;
	synth_dataset(&s, 8, N, X, NULL, &bases, &nc);
	nd_index *ix = open_new(dir, D, 0);
	if (!ix)
		return;
	nd_error err;
	struct batch b;
	batch_make(&b, "x", N, X, D, 0, 1);
	uint32_t *ids = malloc(sizeof(uint32_t) * N);
	CHECK_EQ_INT(nd_index_add(ix, b.items, N, ids, &err), 0);
	/* remove every third image, plus ids that do not exist */
	uint32_t *rm = malloc(sizeof(uint32_t) * (N / 3 + 2));
	size_t nrm = 0, removed;
	for (size_t i = 0; i < N; i += 3)
		rm[nrm++] = ids[i];
	rm[nrm++] = 999999;
	CHECK_EQ_INT(nd_index_remove(ix, rm, nrm, &removed, &err), 0);
	CHECK_EQ_INT(removed, nrm - 1);
	CHECK_EQ_INT(nd_index_remove(ix, rm, 1, &removed, &err), 0);
	CHECK_EQ_INT(removed, 0);
	nd_check_report rep;
	CHECK(check_ok(ix, &rep));
	CHECK_EQ_INT(rep.records, N - (nrm - 1));
	uint32_t id;
	CHECK_EQ_INT(nd_index_lookup_path(ix, b.paths[3], &id, &err), ND_ENOTFOUND);
	CHECK_EQ_INT(nd_index_lookup_path(ix, b.paths[4], &id, &err), 0);
	/* removed images are never returned */
	nd_query_params qp;
	nd_query_params_init(&qp);
	nd_hit hits[10];
	size_t n;
	for (size_t i = 0; i < N; i += 30) {
		CHECK_EQ_INT(nd_index_query(ix, X + i * D, &qp, hits, &n, NULL, &err), 0);
		for (size_t j = 0; j < n; j++)
			CHECK((hits[j].id - 1) % 3 != 0);
		if (i % 3)
			CHECK(n > 0 && hits[0].id == ids[i]);
	}
	/* re-add the removed paths: new ids, beyond all old ones */
	struct batch b2;
	batch_make(&b2, "x", N, X, D, 0, 1);
	size_t k = 0;
	for (size_t i = 0; i < N; i += 3)
		b2.items[k++] = b.items[i];
	uint32_t *nid = malloc(sizeof(uint32_t) * k);
	CHECK_EQ_INT(nd_index_add(ix, b2.items, k, nid, &err), 0);
	CHECK_EQ_INT(nid[0], N + 1);
	CHECK_EQ_INT(nd_index_lookup_path(ix, b.paths[3], &id, &err), 0);
	CHECK_EQ_INT(id, nid[1]);
	CHECK_EQ_INT(nd_index_query(ix, X + 3 * D, &qp, hits, &n, NULL, &err), 0);
	CHECK(n > 0 && hits[0].id == nid[1]);
	/* adding a known path replaces the image; so does a path twice in a batch */
	nd_index_item twice[3] = { b.items[4], b.items[5], b.items[5] };
	twice[2].vec = X + 100 * D;
	uint32_t tid[3];
	CHECK_EQ_INT(nd_index_add(ix, twice, 3, tid, &err), 0);
	CHECK_EQ_INT(nd_index_lookup_path(ix, b.paths[5], &id, &err), 0);
	CHECK_EQ_INT(id, tid[2]);
	CHECK_EQ_INT(nd_index_get_record(ix, ids[4], &(nd_record){ 0 }, (char[ND_PATH_MAX + 1]){ 0 },
					     ND_PATH_MAX + 1, &err), ND_ENOTFOUND);
	CHECK(check_ok(ix, &rep));
	CHECK_EQ_INT(rep.records, N);
	/* remove everything: the posting database ends empty */
	uint32_t *all = malloc(sizeof(uint32_t) * (N + k + 8));
	size_t na = 0;
	for (uint32_t i = 1; i < N + k + 8; i++)
		all[na++] = i;
	CHECK_EQ_INT(nd_index_remove(ix, all, na, &removed, &err), 0);
	CHECK_EQ_INT(removed, N);
	CHECK(check_ok(ix, &rep));
	CHECK(rep.records == 0 && rep.blocks == 0 && rep.postings == 0 && rep.paths == 0);
	nd_index_stats st;
	nd_index_stats_get(ix, &st, &err);
	CHECK(st.meta.posting_bytes == 0 && st.meta.n_blocks == 0);
	nd_index_close(ix);
	batch_free(&b);
	batch_free(&b2);
	free(all);
	free(nid);
	free(rm);
	free(ids);
	free(X);
	free(bases);
	synth_free(&s);
	tl_rm_index(dir);
}

/* growth from a tiny map, with a reader thread querying the same handle */
struct reader_arg {
	nd_index *ix;
	const float *X;
	uint32_t D;
	volatile int stop;
	int errors, queries;
};

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	nd_query_params qp;
	nd_query_params_init(&qp);
	while (!a->stop) {
		nd_hit hits[10];
		size_t n;
		nd_error err;
		nd_meta m;
		if (nd_index_meta(a->ix, &m, &err) ||
		    nd_index_query(a->ix, a->X, &qp, hits, &n, NULL, &err))
			a->errors++;
		else if (m.n_images > 0 && (n == 0 || hits[0].id != 1))
			a->errors++;
		a->queries++;
	}
	return NULL;
}

static void test_map_growth(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "growth");
	const uint32_t D = 128;
	const size_t N = 6000, B = 500;
	synth s;
	synth_init(&s, D, 10, 4);
	float *X = malloc(sizeof(float) * D * N), *bases = NULL;
	size_t nc;
	synth_dataset(&s, 9, N, X, NULL, &bases, &nc);
	nd_index *ix = open_new(dir, D, 64 << 10);
	if (!ix)
		return;
	nd_error err;
	nd_index_stats st0, st;
	nd_index_stats_get(ix, &st0, &err);
	struct reader_arg ra = { ix, X, D, 0, 0, 0 };
	pthread_t th;
	pthread_create(&th, NULL, reader_main, &ra);
	for (size_t i = 0; i < N; i += B) {
		struct batch b;
		batch_make(&b, "g", B, X + i * D, D, i, 1);
		int rc = nd_index_add(ix, b.items, B, NULL, &err);
		CHECK_MSG(rc == 0, "batch %zu: %s", i / B, err.msg);
		batch_free(&b);
	}
	ra.stop = 1;
	pthread_join(th, NULL);
	CHECK_EQ_INT(ra.errors, 0);
	CHECK(ra.queries > 0);
	nd_index_stats_get(ix, &st, &err);
	printf("map grew from %llu to %llu bytes; %d concurrent queries\n",
	       (unsigned long long)st0.map_size, (unsigned long long)st.map_size, ra.queries);
	CHECK(st.map_size >= 8 * st0.map_size);
	CHECK_EQ_INT(st.meta.n_images, N);
	nd_check_report rep;
	CHECK(check_ok(ix, &rep));
	nd_index_close(ix);
	free(X);
	free(bases);
	synth_free(&s);
	tl_rm_index(dir);
}

static void test_second_writer(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "lock");
	nd_index *ix = open_new(dir, 16, 0), *ix2 = NULL;
	if (!ix)
		return;
	nd_index_options o;
	nd_error err;
	nd_index_options_init(&o);
	/* another process: refused at once, told who holds it */
	int pfd[2];
	CHECK(pipe(pfd) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		nd_index *c = NULL;
		nd_error e;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = nd_index_open(&c, dir, &o, &e);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
		char msg[700];
		int len = snprintf(msg, sizeof(msg), "%d %.1f %s", rc, ms, e.msg);
		if (write(pfd[1], msg, (size_t)len) < 0)
			_exit(3);
		/* a reader is fine */
		nd_index_options ro;
		nd_index_options_init(&ro);
		ro.readonly = 1;
		rc = nd_index_open(&c, dir, &ro, &e);
		if (rc == 0)
			nd_index_close(c);
		_exit(rc == 0 ? 0 : 2);
	}
	close(pfd[1]);
	char msg[700] = { 0 };
	ssize_t r = read(pfd[0], msg, sizeof(msg) - 1);
	close(pfd[0]);
	int status;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(r > 0);
	int rc = atoi(msg);
	double ms = atof(strchr(msg, ' ') + 1);
	char expect[64];
	snprintf(expect, sizeof(expect), "process %ld", (long)getpid());
	CHECK_EQ_INT(rc, ND_EBUSY);
	CHECK_MSG(strstr(msg, expect) != NULL, "message: %s", msg);
	CHECK_MSG(ms < 500, "second writer took %.1f ms to fail", ms);
	/* in this process too (the lock is per open) */
	CHECK_EQ_INT(nd_index_open(&ix2, dir, &o, &err), ND_EBUSY);
	nd_index_close(ix);
	/* released on close */
	CHECK_EQ_INT(nd_index_open(&ix2, dir, &o, &err), 0);
	nd_index_close(ix2);
	tl_rm_index(dir);
}

/* another process reads (full check of each snapshot) while we write */
static void test_reader_process_during_writes(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "readers");
	const uint32_t D = 32;
	const size_t N = 4000, B = 200;
	synth s;
	synth_init(&s, D, 10, 5);
	float *X = malloc(sizeof(float) * D * N), *bases = NULL;
	size_t nc;
	synth_dataset(&s, 10, N, X, NULL, &bases, &nc);
	nd_index *ix = open_new(dir, D, 128 << 10);
	if (!ix)
		return;
	nd_error err;
	struct batch b;
	batch_make(&b, "w", B, X, D, 0, 1);
	CHECK_EQ_INT(nd_index_add(ix, b.items, B, NULL, &err), 0);
	batch_free(&b);
	int go[2];
	CHECK(pipe(go) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		/* child: must not use the parent's environment; opens its own */
		close(go[1]);
		nd_index *c = NULL;
		nd_index_options ro;
		nd_error e;
		nd_index_options_init(&ro);
		ro.readonly = 1;
		if (nd_index_open(&c, dir, &ro, &e))
			_exit(10);
		char ch;
		if (read(go[0], &ch, 1) != 1)
			_exit(11);
		uint64_t last = 0;
		int checks = 0, bad = 0;
		for (;;) {
			nd_meta m;
			nd_check_report rep;
			if (nd_index_meta(c, &m, &e) || nd_index_check(c, &rep, &e)) {
				bad = 12;
				break;
			}
			checks++;
			if (rep.n_problems || m.n_images < last || m.n_images % B) {
				bad = 13;
				break;
			}
			last = m.n_images;
			if (m.n_images == N)
				break;
		}
		nd_index_close(c);
		_exit(bad ? bad : checks >= 2 ? 0 : 14);
	}
	close(go[0]);
	CHECK(write(go[1], "x", 1) == 1);
	close(go[1]);
	for (size_t i = B; i < N; i += B) {
		batch_make(&b, "w", B, X + i * D, D, i, 1);
		CHECK_EQ_INT(nd_index_add(ix, b.items, B, NULL, &err), 0);
		batch_free(&b);
	}
	int status;
	waitpid(pid, &status, 0);
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "reader exit %d",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	nd_index_close(ix);
	free(X);
	free(bases);
	synth_free(&s);
	tl_rm_index(dir);
}

/* ---- crash safety ---- */

#define CB 64  /* images per batch */
#define CD 32  /* dimension */

static void crash_vec(uint32_t batch, uint32_t j, float *v)
{
	synth_rng r = { (uint64_t)batch * 1000003u + j, 0, 0 };
	synth_unit_gauss(&r, v, CD);
}

static int crash_child(const char *dir, uint32_t start, int wfd)
{
	nd_index_options o;
	nd_index *ix = NULL;
	nd_error err;
	nd_index_options_init(&o);
	o.create = 1;
	o.dim = CD;
	o.map_size = 256 << 10; /* small: growth happens under the knife too */
	if (nd_index_open(&ix, dir, &o, &err))
		return 20;
	float vecs[CB * CD];
	char paths[CB][32];
	nd_index_item items[CB];
	for (uint32_t b = start; b < start + 100000; b++) {
		for (uint32_t j = 0; j < CB; j++) {
			crash_vec(b, j, vecs + j * CD);
			snprintf(paths[j], sizeof(paths[j]), "b%06u/%03u", b, j);
			memset(&items[j], 0, sizeof(items[j]));
			items[j].vec = vecs + j * CD;
			items[j].rec.path = paths[j];
			items[j].rec.path_len = strlen(paths[j]);
			items[j].rec.size = b;
			items[j].rec.width = j;
		}
		if (nd_index_add(ix, items, CB, NULL, &err))
			return 21;
		/* every tenth batch, re-add (replace: remove + add in one
		 * transaction) an image of the previous batch; every batch adds a
		 * temporary image "t<b>" and removes the previous one, so that
		 * removals happen under the knife too */
		if (b % 10 == 9 && b > start) {
			char p[32];
			snprintf(p, sizeof(p), "b%06u/%03u", b - 1, b % CB);
			crash_vec(b - 1, b % CB, vecs);
			items[0].vec = vecs;
			items[0].rec.path = p;
			items[0].rec.path_len = strlen(p);
			items[0].rec.size = b - 1;
			items[0].rec.width = b % CB;
			if (nd_index_add(ix, items, 1, NULL, &err))
				return 22;
		}
		{
			char p[32];
			uint32_t id;
			snprintf(p, sizeof(p), "t%06u", b);
			crash_vec(b, 999, vecs);
			items[0].vec = vecs;
			items[0].rec.path = p;
			items[0].rec.path_len = strlen(p);
			if (nd_index_add(ix, items, 1, NULL, &err))
				return 23;
			snprintf(p, sizeof(p), "t%06u", b - 1);
			if (b > 0 && nd_index_lookup_path(ix, p, &id, &err) == 0 &&
			    nd_index_remove(ix, &id, 1, NULL, &err))
				return 25;
		}
		if (write(wfd, &b, sizeof(b)) != sizeof(b))
			return 24;
	}
	nd_index_close(ix);
	return 0;
}

/* The child reports each committed batch through a pipe; the parent kills
 * it (SIGKILL) once it has seen a few more commits, after a varying pause,
 * so that kills land anywhere in the write path. Nothing depends on the
 * machine's speed: every round waits for its commits, however long. */
static void test_crash_safety(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "crash");
	int iters = SANITIZED ? 12 : 50;
	uint32_t next = 0;
	uint64_t seed = 0xC0FFEE, waited = 0;
	for (int it = 0; it < iters; it++) {
		int pfd[2];
		CHECK(pipe(pfd) == 0);
		pid_t pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			_exit(crash_child(dir, next, pfd[1]));
		}
		close(pfd[1]);
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t want = 1 + (uint32_t)((seed >> 33) % 4), seen = 0;
		useconds_t us = (useconds_t)((seed >> 40) % 20000);
		int64_t reported = -1;
		uint32_t b;
		while (seen < want && read(pfd[0], &b, sizeof(b)) == sizeof(b)) {
			reported = b;
			seen++;
		}
		CHECK_MSG(seen == want, "child reported %u of %u commits (kill %d)", seen, want, it);
		usleep(us);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		CHECK_MSG(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
			  "child exited with %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		while (read(pfd[0], &b, sizeof(b)) == sizeof(b))
			reported = b;
		close(pfd[0]);
		waited += want;
		/* the index opens, checks clean, and holds whole batches only */
		nd_index *ix = NULL;
		nd_index_options o;
		nd_error err;
		nd_index_options_init(&o);
		if (nd_index_open(&ix, dir, &o, &err)) {
			CHECK_MSG(0, "open after kill %d: %s", it, err.msg);
			break;
		}
		nd_check_report rep;
		CHECK_MSG(check_ok(ix, &rep), "after kill %d (%u us)", it, (unsigned)us);
		uint32_t present = next;
		for (uint32_t bb = 0; bb < next + 1000; bb++) {
			uint32_t have = 0;
			for (uint32_t j = 0; j < CB; j++) {
				char p[32];
				uint32_t id;
				snprintf(p, sizeof(p), "b%06u/%03u", bb, j);
				if (nd_index_lookup_path(ix, p, &id, &err) == 0) {
					have++;
					if (j % 16 == 0) {
						float v[CD], w[CD];
						nd_record rec;
						char pb[64];
						crash_vec(bb, j, w);
						CHECK(nd_index_get_vector(ix, id, v, &err) == 0);
						for (int k = 0; k < CD; k++)
							CHECK_NEAR(v[k], w[k], 0.01);
						CHECK(nd_index_get_record(ix, id, &rec, pb, sizeof(pb), &err) == 0 &&
						      rec.size == bb && rec.width == j);
					}
				}
			}
			CHECK_MSG(have == 0 || have == CB, "batch %u partly present (%u of %d) after kill %d",
				  bb, have, CB, it);
			if (have == 0) {
				present = bb;
				break;
			}
		}
		CHECK_MSG((int64_t)present > reported, "batch %lld reported committed but missing (kill %d)",
			  (long long)reported, it);
		next = present;
		nd_index_close(ix);
	}
	printf("crash safety: %d kills, %u batches committed\n", iters, next);
	/* each round waited for its commits: all of them are there */
	CHECK_MSG(next >= waited, "%u batches present, %llu were reported", next, (unsigned long long)waited);
	tl_rm_index(dir);
}

/* ---- self-join ---- */

struct pairs {
	uint64_t *p;
	size_t n, cap;
	int bad;
	const float *X;
	uint32_t D;
};

static int collect_pair(void *ctx, uint32_t a, uint32_t b, float sim)
{
	struct pairs *ps = ctx;
	if (a >= b || sim < 0.8f)
		ps->bad++;
	float s = 0;
	for (uint32_t j = 0; j < ps->D; j++)
		s += ps->X[(a - 1) * ps->D + j] * ps->X[(b - 1) * ps->D + j];
	if (fabsf(s - sim) > 0.01f)
		ps->bad++;
	if (ps->n == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 1024;
		ps->p = realloc(ps->p, ps->cap * sizeof(uint64_t));
	}
	ps->p[ps->n++] = (uint64_t)a << 32 | b;
	return 0;
}

static int cmp64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static int stop_pair(void *ctx, uint32_t a, uint32_t b, float sim)
{
	return 7;
}

static void test_selfjoin(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "join");
	const uint32_t D = 64;
	const size_t N = SANITIZED ? 2000 : 4000;
	synth s;
	synth_init(&s, D, 10, 6);
	float *X = malloc(sizeof(float) * D * N), *bases = NULL;
	size_t nc;
	synth_dataset(&s, 11, N, X, NULL, &bases, &nc);
	nd_index *ix = open_new(dir, D, 0);
	if (!ix)
		return;
	nd_error err;
	struct batch b;
	batch_make(&b, "j", N, X, D, 0, 1);
	CHECK_EQ_INT(nd_index_add(ix, b.items, N, NULL, &err), 0);
	batch_free(&b);
	/* exact pairs >= 0.8 */
	size_t want = 0, got = 0;
	struct pairs ps = { NULL, 0, 0, 0, X, D };
	nd_selfjoin_params jp;
	nd_selfjoin_params_init(&jp);
	jp.min_sim = 0.8f; /* defaults otherwise (as dedup uses them) */
	jp.threads = 2;
	nd_selfjoin_stats st;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect_pair, &ps, &st, &err), 0);
	CHECK_EQ_INT(ps.bad, 0);
	CHECK_EQ_INT(st.pairs_emitted, ps.n);
	qsort(ps.p, ps.n, sizeof(uint64_t), cmp64);
	for (size_t i = 1; i < ps.n; i++)
		CHECK_MSG(ps.p[i] != ps.p[i - 1], "pair emitted twice");
	for (size_t a = 0; a < N; a++)
		for (size_t c = a + 1; c < N; c++) {
			float sim = 0;
			for (uint32_t j = 0; j < D; j++)
				sim += X[a * D + j] * X[c * D + j];
			if (sim < 0.81f) /* margin for quantisation */
				continue;
			want++;
			uint64_t key = (uint64_t)(a + 1) << 32 | (c + 1);
			if (bsearch(&key, ps.p, ps.n, sizeof(uint64_t), cmp64))
				got++;
		}
	double recall = (double)got / (double)want;
	printf("self-join: %zu pairs >= 0.81 exist, %.4f found; %llu candidates, %llu compared, %llu emitted\n",
	       want, recall, (unsigned long long)st.pairs_candidates, (unsigned long long)st.pairs_compared,
	       (unsigned long long)st.pairs_emitted);
	CHECK(want > 100);
	CHECK_MSG(recall >= 0.95, "self-join recall %.4f", recall);
	CHECK_EQ_INT(st.groups_capped, 0);
	/* one thread (calls in a fixed order) and radius 3 find the same pairs
	 * and more (a superset); radius 0 fewer */
	uint64_t *p2 = ps.p;
	size_t n2 = ps.n;
	ps.p = NULL;
	ps.n = ps.cap = 0;
	jp.threads = 1;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect_pair, &ps, &st, &err), 0);
	CHECK_EQ_INT(ps.n, n2);
	qsort(ps.p, ps.n, sizeof(uint64_t), cmp64);
	CHECK(ps.n == n2 && !memcmp(ps.p, p2, n2 * sizeof(uint64_t)));
	ps.n = 0;
	jp.radius = 3;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect_pair, &ps, &st, &err), 0);
	CHECK(ps.n >= n2);
	qsort(ps.p, ps.n, sizeof(uint64_t), cmp64);
	for (size_t i = 0; i < n2; i++)
		CHECK(bsearch(&p2[i], ps.p, ps.n, sizeof(uint64_t), cmp64) != NULL);
	ps.n = 0;
	jp.radius = 0;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect_pair, &ps, &st, &err), 0);
	CHECK(ps.n < n2);
	CHECK_EQ_INT(ps.bad, 0);
	free(p2);
	/* bad parameters */
	jp.radius = 5;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect_pair, &ps, &st, &err), ND_EINVAL);
	jp.radius = 2;
	jp.bits = 40;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect_pair, &ps, &st, &err), ND_EINVAL);
	/* a cap is reported, not silent (coarse 4-bit buckets are large) */
	jp.bits = 4;
	jp.radius = 1;
	jp.max_group = 20;
	ps.n = 0;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, collect_pair, &ps, &st, &err), 0);
	CHECK(st.groups_capped > 0 && st.pairs_skipped > 0 && st.largest_group > 20);
	CHECK_EQ_INT(ps.bad, 0);
	/* the callback can stop the join: no call after the first non-zero return */
	jp.max_group = 0;
	jp.threads = 2;
	CHECK_EQ_INT(nd_index_selfjoin(ix, &jp, stop_pair, NULL, &st, &err), 7);
	CHECK_EQ_INT(st.pairs_emitted, 1);
	free(ps.p);
	nd_index_close(ix);
	free(X);
	free(bases);
	synth_free(&s);
	tl_rm_index(dir);
}

/* check finds damage done behind the index's back */
static void test_check_detects_corruption(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "corrupt");
	const uint32_t D = 16;
	synth s;
	synth_init(&s, D, 3, 7);
	synth_rng r = { 5, 0, 0 };
	float X[50 * 16];
	for (int i = 0; i < 50; i++)
		synth_background(&s, &r, X + i * D);
	nd_index *ix = open_new(dir, D, 0);
	if (!ix)
		return;
	nd_error err;
	struct batch b;
	batch_make(&b, "c", 50, X, D, 0, 1);
	CHECK_EQ_INT(nd_index_add(ix, b.items, 50, NULL, &err), 0);
	batch_free(&b);
	nd_index_close(ix);

	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi vec, post, rec;
	MDB_cursor *cur;
	CHECK(mdb_env_create(&env) == 0);
	mdb_env_set_maxdbs(env, 8);
	CHECK(mdb_env_open(env, dir, 0, 0644) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	CHECK(mdb_dbi_open(txn, ND_DB_VECTORS, MDB_INTEGERKEY, &vec) == 0);
	CHECK(mdb_dbi_open(txn, ND_DB_POSTINGS, 0, &post) == 0);
	CHECK(mdb_dbi_open(txn, ND_DB_RECORDS, MDB_INTEGERKEY, &rec) == 0);
	uint32_t id = 5;
	MDB_val k = { 4, &id }, v;
	CHECK(mdb_del(txn, vec, &k, NULL) == 0);           /* a vector disappears */
	CHECK(mdb_cursor_open(txn, post, &cur) == 0);
	CHECK(mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0);
	uint8_t bad[64];
	memcpy(bad, v.mv_data, v.mv_size < 64 ? v.mv_size : 64);
	bad[0] = 0x42;                                      /* a block loses its magic */
	MDB_val bv = { v.mv_size < 64 ? v.mv_size : 64, bad };
	CHECK(mdb_cursor_put(cur, &k, &bv, MDB_CURRENT) == 0);
	mdb_cursor_close(cur);
	id = 9;
	k.mv_size = 4;
	k.mv_data = &id;
	CHECK(mdb_get(txn, rec, &k, &v) == 0);
	uint8_t rb[256];
	memcpy(rb, v.mv_data, v.mv_size);
	rb[v.mv_size - 1] = 'z';                            /* a record loses its NUL */
	MDB_val rv = { v.mv_size, rb };
	CHECK(mdb_put(txn, rec, &k, &rv, 0) == 0);
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);

	ix = open_existing(dir, 1);
	if (!ix)
		return;
	nd_check_report rep;
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	CHECK(rep.n_problems >= 3);
	int saw_vec = 0, saw_magic = 0, saw_rec = 0;
	for (uint64_t i = 0; i < rep.n_problems && i < ND_CHECK_MAX_PROBLEMS; i++) {
		saw_vec |= strstr(rep.problems[i], "lists id 5, which has no vector") != NULL;
		saw_magic |= strstr(rep.problems[i], "bad magic") != NULL;
		saw_rec |= strstr(rep.problems[i], "record 9: image record path is not NUL-terminated") != NULL;
	}
	CHECK(saw_vec && saw_magic && saw_rec);
	if (!(saw_vec && saw_magic && saw_rec))
		for (uint64_t i = 0; i < rep.n_problems && i < ND_CHECK_MAX_PROBLEMS; i++)
			fprintf(stderr, "  problem: %s\n", rep.problems[i]);
	/* a query touching the damaged data fails cleanly, never crashes */
	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.probes = 1000;
	nd_hit hits[10];
	size_t n;
	int failures = 0;
	for (int i = 0; i < 50; i++)
		failures += nd_index_query(ix, X + i * D, &qp, hits, &n, NULL, &err) != 0;
	CHECK(failures > 0);
	nd_index_close(ix);
	synth_free(&s);
	tl_rm_index(dir);
}

/* One file is one image: an item whose (device, inode) is indexed under
 * another path replaces that image (the caller chooses the path kept);
 * unknown identities (0, 0) never collide; the inodes database follows
 * add and remove, is rebuilt when missing or stale (an older writer), and
 * check verifies it. */
static void set_identity(struct batch *b, size_t i, uint64_t dev, uint64_t ino)
{
	b->items[i].rec.dev = dev;
	b->items[i].rec.ino = ino;
}

static void test_file_identity(void)
{
	char dir[128];
	fresh_dir(dir, sizeof(dir), "identity");
	const uint32_t D = 16;
	synth s;
	synth_init(&s, D, 3, 11);
	synth_rng rg = { 9, 0, 0 };
	float X[8 * 16];
	for (int i = 0; i < 8; i++)
		synth_background(&s, &rg, X + i * D);
	nd_index *ix = open_new(dir, D, 0);
	if (!ix)
		return;
	nd_error err;
	nd_check_report rep;
	uint32_t ids[8], id;
	struct batch b;
	batch_make(&b, "t", 4, X, D, 0, 1);
	set_identity(&b, 0, 2049, 10);
	set_identity(&b, 1, 2049, 11);
	/* items 2 and 3: identity unknown */
	CHECK_EQ_INT(nd_index_add(ix, b.items, 4, ids, &err), 0);
	CHECK_EQ_INT(nd_index_lookup_file(ix, 2049, 10, &id, &err), 0);
	CHECK_EQ_INT(id, ids[0]);
	CHECK_EQ_INT(nd_index_lookup_file(ix, 2049, 12, &id, &err), ND_ENOTFOUND);
	CHECK_EQ_INT(nd_index_lookup_file(ix, 0, 0, &id, &err), ND_ENOTFOUND);
	nd_record rec;
	char pbuf[ND_PATH_MAX + 1];
	CHECK_EQ_INT(nd_index_get_record(ix, ids[1], &rec, pbuf, sizeof(pbuf), &err), 0);
	CHECK(rec.dev == 2049 && rec.ino == 11);
	CHECK(check_ok(ix, &rep) && rep.inode_valid && rep.inode_entries == 2);

	/* the same file under another spelling, and twice in one batch */
	struct batch b2;
	batch_make(&b2, "./t", 3, X, D, 0, 1);
	set_identity(&b2, 0, 2049, 10);
	set_identity(&b2, 1, 2049, 11);
	set_identity(&b2, 2, 2049, 11);
	uint32_t nid[3];
	CHECK_EQ_INT(nd_index_add(ix, b2.items, 3, nid, &err), 0);
	CHECK_EQ_INT(nd_index_lookup_path(ix, b.paths[0], &id, &err), ND_ENOTFOUND);
	CHECK_EQ_INT(nd_index_lookup_path(ix, b2.paths[0], &id, &err), 0);
	CHECK_EQ_INT(id, nid[0]);
	CHECK_EQ_INT(nd_index_lookup_file(ix, 2049, 11, &id, &err), 0);
	CHECK_EQ_INT(id, nid[2]);
	CHECK(check_ok(ix, &rep) && rep.records == 4 && rep.inode_entries == 2);
	/* remove unlists */
	size_t removed;
	CHECK_EQ_INT(nd_index_remove(ix, &nid[2], 1, &removed, &err), 0);
	CHECK_EQ_INT(nd_index_lookup_file(ix, 2049, 11, &id, &err), ND_ENOTFOUND);
	CHECK(check_ok(ix, &rep) && rep.records == 3 && rep.inode_entries == 1);
	nd_index_close(ix);

	/* an older writer: no inodes database, no mark */
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi ino, meta;
	CHECK(mdb_env_create(&env) == 0);
	mdb_env_set_maxdbs(env, 12);
	CHECK(mdb_env_open(env, dir, 0, 0644) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	CHECK(mdb_dbi_open(txn, ND_DB_INODES, 0, &ino) == 0);
	CHECK(mdb_dbi_open(txn, ND_DB_META, 0, &meta) == 0);
	CHECK(mdb_drop(txn, ino, 1) == 0);
	MDB_val mk = { sizeof(ND_META_KEY_INODES) - 1, ND_META_KEY_INODES };
	CHECK(mdb_del(txn, meta, &mk, NULL) == 0);
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
	ix = open_existing(dir, 1);
	if (!ix)
		return;
	CHECK_EQ_INT(nd_index_lookup_file(ix, 2049, 10, &id, &err), ND_ENOTFOUND);
	CHECK(check_ok(ix, &rep) && !rep.inode_valid);
	nd_index_close(ix);
	ix = open_existing(dir, 0); /* a writer rebuilds it */
	if (!ix)
		return;
	CHECK_EQ_INT(nd_index_lookup_file(ix, 2049, 10, &id, &err), 0);
	CHECK_EQ_INT(id, nid[0]);
	CHECK(check_ok(ix, &rep) && rep.inode_valid && rep.inode_entries == 1);
	nd_index_close(ix);

	/* a wrong entry under a current mark: check names it */
	CHECK(mdb_env_create(&env) == 0);
	mdb_env_set_maxdbs(env, 12);
	CHECK(mdb_env_open(env, dir, 0, 0644) == 0);
	CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
	CHECK(mdb_dbi_open(txn, ND_DB_INODES, 0, &ino) == 0);
	uint8_t key[ND_INODE_KEY_SIZE], val[ND_PATHVAL_SIZE];
	nd_inode_key(2049, 99, key);
	nd_pathval_encode(nid[0], val);
	MDB_val k = { sizeof(key), key }, v = { sizeof(val), val };
	CHECK(mdb_put(txn, ino, &k, &v, 0) == 0);
	CHECK(mdb_txn_commit(txn) == 0);
	mdb_env_close(env);
	ix = open_existing(dir, 1);
	if (!ix)
		return;
	CHECK_EQ_INT(nd_index_check(ix, &rep, &err), 0);
	int saw = 0;
	for (uint64_t i = 0; i < rep.n_problems && i < ND_CHECK_MAX_PROBLEMS; i++)
		saw |= strstr(rep.problems[i], "differs from its record's device and inode") != NULL;
	CHECK_MSG(saw && rep.inode_valid, "%llu problems", (unsigned long long)rep.n_problems);
	nd_index_close(ix);
	batch_free(&b);
	batch_free(&b2);
	synth_free(&s);
	tl_rm_index(dir);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	if (tl_scratch_dir(tmproot, sizeof(tmproot), "test_index"))
		return 1;
	RUN(test_basic);
	RUN(test_recall);
	RUN(test_remove_readd);
	RUN(test_map_growth);
	RUN(test_second_writer);
	RUN(test_reader_process_during_writes);
	RUN(test_crash_safety);
	RUN(test_selfjoin);
	RUN(test_check_detects_corruption);
	RUN(test_file_identity);
	rmdir(tmproot);
	return test_summary();
}
