/* Tests of the collection API (include/neardup/neardup.h) on real images
 * from data/ and a real LMDB index in a scratch directory: open and its
 * errors, adding files and buffers (counts, events, progress, cancel),
 * queries by file, buffer and vector with their failure stages, concurrent
 * queries, dedup groups with the keeper and protection, remove, stats,
 * check, read-only handles. */
#include "test.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "neardup/neardup.h"

#define MODEL "models/neardup.ndm"

static char tmp[] = "/tmp/nd_test_collection.XXXXXX";

static const char *in_tmp(const char *name)
{
	static char buf[8][512];
	static int at;
	char *b = buf[at++ % 8];
	snprintf(b, sizeof(buf[0]), "%s/%s", tmp, name);
	return b;
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t w = fwrite(data, 1, len, f);
	return fclose(f) == 0 && w == len ? 0 : -1;
}

static void *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	void *d = malloc(*len);
	if (d && fread(d, 1, *len, f) != *len) {
		free(d);
		d = NULL;
	}
	fclose(f);
	return d;
}

static nd_collection *open_coll(const char *name, int readonly, int create)
{
	nd_collection_options o;
	nd_collection_options_init(&o);
	o.model_path = MODEL;
	o.readonly = readonly;
	o.create = create;
	nd_collection *c = NULL;
	nd_error err;
	int rc = nd_collection_open(&c, in_tmp(name), &o, &err);
	CHECK_MSG(rc == 0, "open %s: %s", name, err.msg);
	return c;
}

struct events {
	int n[ND_ADD_EVENT_COUNT];
	char last[ND_ADD_EVENT_COUNT][300];
	uint64_t done, total;
	int final, calls;
};

static void on_event(void *ctx, const char *path, nd_add_event ev, const char *detail)
{
	struct events *e = ctx;
	e->n[ev]++;
	snprintf(e->last[ev], sizeof(e->last[0]), "%s: %s", path, detail);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total, int final)
{
	struct events *e = ctx;
	e->done = done;
	e->total = total;
	e->final |= final;
	e->calls++;
}

static void test_open_errors(void)
{
	nd_collection_options o;
	nd_collection_options_init(&o);
	o.model_path = MODEL;
	o.create = 0;
	nd_collection *c = (nd_collection *)1;
	nd_error err;
	CHECK_EQ_INT(nd_collection_open(&c, in_tmp("absent.db"), &o, &err), ND_ENOTFOUND);
	CHECK(c == NULL);
	CHECK_MSG(strstr(err.msg, "absent.db") != NULL, "%s", err.msg);
	o.model_path = "tests/no-such-model.ndm";
	o.create = 1;
	CHECK(nd_collection_open(&c, in_tmp("x.db"), &o, &err) != 0);
	CHECK_MSG(strstr(err.msg, "no-such-model.ndm") != NULL, "%s", err.msg);
	CHECK_EQ_INT(nd_collection_open(&c, "", NULL, &err), ND_EINVAL);
	/* $NEARDUP_MODEL comes first */
	char path[4096];
	setenv("NEARDUP_MODEL", MODEL, 1);
	CHECK_MSG(nd_model_find(path, sizeof(path), &err) == 0, "%s", err.msg);
	CHECK(!strcmp(path, MODEL));
	unsetenv("NEARDUP_MODEL");
}

static void test_add_files(void)
{
	nd_collection *c = open_coll("files.db", 0, 1);
	if (!c)
		return;
	struct events ev = { 0 };
	nd_add_options o;
	nd_add_options_init(&o);
	o.threads = 2;
	o.on_event = on_event;
	o.on_progress = on_progress;
	o.ctx = &ev;
	nd_add_counts n;
	nd_error err;
	const char *paths[] = { "data" };
	CHECK_MSG(nd_collection_add_paths(c, paths, 1, &o, &n, &err) == 0, "%s", err.msg);
	CHECK_EQ_INT(n.walked, 26);
	CHECK_EQ_INT(n.embedded, 23);
	CHECK_EQ_INT(n.committed, 23);
	CHECK_EQ_INT(n.not_image, 3);
	CHECK_EQ_INT(n.not_image_kind[ND_KIND_TEXT], 3);
	CHECK_EQ_INT(n.failed, 0);
	CHECK_EQ_INT(ev.n[ND_ADD_IGNORED], 3);
	CHECK(ev.final && ev.done == 26 && ev.total == 26);
	/* again: nothing changed */
	memset(&ev, 0, sizeof(ev));
	CHECK(nd_collection_add_paths(c, paths, 1, &o, &n, &err) == 0);
	CHECK_EQ_INT(n.unchanged, 23);
	CHECK_EQ_INT(n.embedded, 0);
	/* failures are counted and named; the run goes on */
	size_t len;
	char *jpg = read_file("data/coffee.jpg", &len);
	CHECK(jpg && write_file(in_tmp("cut.jpg"), jpg, len / 3) == 0);
	CHECK(write_file(in_tmp("text.jpg"), "hello", 5) == 0);
	CHECK(write_file(in_tmp("copy.jpg"), jpg, len) == 0);
	free(jpg);
	const char *bad[] = { in_tmp("cut.jpg"), in_tmp("text.jpg"), in_tmp("nothing.jpg"),
			      in_tmp("copy.jpg") };
	memset(&ev, 0, sizeof(ev));
	CHECK(nd_collection_add_paths(c, bad, 4, &o, &n, &err) == 0);
	CHECK_EQ_INT(n.failed, 3);
	CHECK_EQ_INT(n.exact, 1); /* copy.jpg: data/coffee.jpg's vector */
	CHECK_EQ_INT(ev.n[ND_ADD_DECODE_FAILED], 2);
	CHECK_EQ_INT(ev.n[ND_ADD_READ_FAILED], 1);
	CHECK_MSG(strstr(ev.last[ND_ADD_READ_FAILED], "nothing.jpg: ") != NULL, "%s",
		  ev.last[ND_ADD_READ_FAILED]);
	CHECK(!strcmp(nd_add_event_text(ND_ADD_DECODE_FAILED), "cannot decode"));
	nd_index_stats st;
	CHECK(nd_collection_stats(c, &st, &err) == 0);
	CHECK_EQ_INT(st.meta.n_images, 24);
	nd_collection_close(c);
}

static void test_cancel(void)
{
	nd_collection *c = open_coll("cancel.db", 0, 1);
	if (!c)
		return;
	volatile int cancel = 1;
	nd_add_options o;
	nd_add_options_init(&o);
	o.cancel = &cancel;
	nd_add_counts n;
	nd_error err;
	const char *paths[] = { "data" };
	CHECK(nd_collection_add_paths(c, paths, 1, &o, &n, &err) == 0);
	CHECK(n.cancelled);
	CHECK_EQ_INT(n.committed, 0);
	nd_collection_close(c);
}

static void test_buffers_and_query(void)
{
	nd_collection *c = open_coll("mem.db", 0, 1);
	if (!c)
		return;
	size_t l1, l2, l3;
	void *a = read_file("data/chelsea.jpg", &l1), *b = read_file("data/brick.jpg", &l2),
	     *q = read_file("data/chelsea_q25.jpg", &l3);
	nd_buffer bufs[] = { { a, l1, "mem/cat", 0 }, { a, l1, "mem/cat2", 0 }, { b, l2, "mem/brick", 0 },
			     { "junk", 4, "mem/junk", 0 } };
	nd_add_counts n;
	nd_error err;
	CHECK_MSG(nd_collection_add_buffers(c, bufs, 4, NULL, &n, &err) == 0, "%s", err.msg);
	CHECK_EQ_INT(n.embedded, 2);
	CHECK_EQ_INT(n.exact, 1);
	CHECK_EQ_INT(n.failed, 1);
	nd_query_options qo;
	nd_query_options_init(&qo);
	qo.k = 2;
	nd_matches m;
	CHECK_MSG(nd_collection_query_buffer(c, q, l3, &qo, &m, &err) == 0, "%s", err.msg);
	CHECK_EQ_INT(m.n, 2);
	if (m.n == 2) {
		CHECK(!strncmp(m.items[0].path, "mem/cat", 7) && !strncmp(m.items[1].path, "mem/cat", 7));
		CHECK(m.items[0].similarity >= m.items[1].similarity);
		CHECK(m.items[0].raw_similarity > 0.95f && m.items[0].raw_similarity <= 1.0f);
	}
	nd_matches_free(&m);
	/* a vector: the identity view only, the same first result */
	size_t dim = nd_collection_dim(c);
	float *v = malloc(dim * sizeof(float));
	CHECK(nd_collection_embed_buffer(c, b, l2, v, dim, &err) == 0);
	double norm = 0;
	for (size_t i = 0; i < dim; i++)
		norm += (double)v[i] * v[i];
	CHECK_NEAR(norm, 1.0, 1e-3);
	CHECK(nd_collection_query_vector(c, v, dim, &qo, &m, &err) == 0);
	CHECK(m.n >= 1 && !strcmp(m.items[0].path, "mem/brick") && m.items[0].view == ND_VIEW_IDENTITY);
	nd_matches_free(&m);
	CHECK_EQ_INT(nd_collection_query_vector(c, v, dim - 1, &qo, &m, &err), ND_EINVAL);
	CHECK(nd_collection_embed_buffer(c, b, l2, v, dim + 1, &err) == ND_EINVAL);
	/* the step that failed */
	CHECK(nd_collection_query_buffer(c, "junk", 4, &qo, &m, &err) != 0);
	CHECK_EQ_INT(m.failed, ND_STAGE_DECODE);
	CHECK(m.items == NULL);
	CHECK(nd_collection_query_file(c, in_tmp("none.jpg"), &qo, &m, &err) != 0);
	CHECK_EQ_INT(m.failed, ND_STAGE_READ);
	/* buffers' names are not files: dedup looks at them only when told */
	nd_dedup_result *r;
	nd_dedup_options dopt;
	nd_dedup_options_init(&dopt);
	CHECK(nd_collection_dedup(c, &dopt, &r, &err) == 0);
	CHECK_EQ_INT(r->n_groups, 0);
	CHECK_EQ_INT(r->missing, 2); /* the images in some pair: the two copies */
	nd_dedup_result_free(r);
	dopt.no_file_check = 1;
	CHECK(nd_collection_dedup(c, &dopt, &r, &err) == 0);
	CHECK_EQ_INT(r->n_groups, 1);
	if (r->n_groups == 1) {
		CHECK_EQ_INT(r->groups[0].n, 2);
		CHECK(r->groups[0].members[1].exact && r->groups[0].members[1].similarity == 1.0f);
	}
	nd_dedup_result_free(r);
	unsigned char unmatched[2];
	size_t removed;
	const char *rm[] = { "mem/cat2", "mem/nothing" };
	CHECK(nd_collection_remove_paths(c, rm, 2, &removed, unmatched, &err) == 0);
	CHECK_EQ_INT(removed, 1);
	CHECK(!unmatched[0] && unmatched[1]);
	free(v);
	free(a);
	free(b);
	free(q);
	nd_collection_close(c);
}

struct qthread {
	nd_collection *c;
	const char *path, *want;
	int ok;
};

static void *query_thread(void *arg)
{
	struct qthread *t = arg;
	nd_query_options qo;
	nd_query_options_init(&qo);
	qo.k = 1;
	t->ok = 1;
	for (int i = 0; i < 3; i++) {
		nd_matches m;
		nd_error err;
		if (nd_collection_query_file(t->c, t->path, &qo, &m, &err) || m.n != 1 ||
		    !strstr(m.items[0].path, t->want))
			t->ok = 0;
		nd_matches_free(&m);
	}
	return NULL;
}

/* data/ as the command line groups it (scripts/demo.sh) */
static const char *const groups[][5] = {
	{ "data/astronaut.jpg", "data/astronaut_half.png", "data/astronaut_crop.jpg" },
	{ "data/camera_contrast.png", "data/camera.png" },
	{ "data/chelsea.jpg", "data/chelsea_phone.heic", "data/chelsea_q25.jpg", "data/chelsea_flip.jpg" },
	{ "data/coffee.jpg", "data/coffee_web.webp", "data/coffee_caption.jpg", "data/coffee_border.jpg" },
	{ "data/rocket.jpg", "data/rocket_exif6.jpg" },
};

/* A fresh checkout writes data/'s files moments apart in any order, and
 * the keep rule's age test would follow that order: one age for all, so
 * that the pictures decide, as in the groups above. */
static void same_age(const char *dir)
{
	DIR *d = opendir(dir);
	ND_ASSERT(d != NULL);
	const struct timespec t[2] = { { 1700000000, 0 }, { 1700000000, 0 } };
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			CHECK(utimensat(dirfd(d), e->d_name, t, 0) == 0);
	closedir(d);
}

static void test_dedup_and_queries(void)
{
	nd_collection *c = open_coll("dedup.db", 0, 1);
	if (!c)
		return;
	nd_error err;
	const char *paths[] = { "data" };
	same_age("data");
	CHECK(nd_collection_add_paths(c, paths, 1, NULL, NULL, &err) == 0);
	nd_collection_close(c);
	c = open_coll("dedup.db", 1, 0); /* read-only from here */
	if (!c)
		return;
	nd_dedup_result *r;
	CHECK_MSG(nd_collection_dedup(c, NULL, &r, &err) == 0, "%s", err.msg);
	CHECK_EQ_INT(r->n_groups, 5);
	for (size_t g = 0; g < r->n_groups && g < 5; g++) {
		const nd_dup_group *gr = &r->groups[g];
		size_t want = 0;
		while (want < 5 && groups[g][want])
			want++;
		CHECK_EQ_INT(gr->n, want);
		for (size_t i = 0; i < gr->n; i++) {
			CHECK(i < 5 && groups[g][i] && !strcmp(r->images[gr->members[i].image].path, groups[g][i]));
			/* on its own pair, or by the weak merge 0.15 below */
			CHECK(gr->members[i].similarity >= nd_collection_default_min_sim(c, 0) - 0.15f);
		}
		CHECK(gr->reason[0] != 0);
		CHECK(gr->members[0].exact && gr->members[0].similarity == 1.0f);
	}
	nd_dedup_result_free(r);
	/* a protected directory's file is kept */
	nd_dedup_options o;
	nd_dedup_options_init(&o);
	CHECK(mkdir(in_tmp("keep"), 0755) == 0);
	const char *prot[] = { in_tmp("keep") };
	o.protect = prot;
	o.nprotect = 1;
	nd_collection_close(c);
	c = open_coll("dedup.db", 0, 0);
	size_t len;
	void *web = read_file("data/coffee_web.webp", &len);
	CHECK(web && write_file(in_tmp("keep/web.webp"), web, len) == 0);
	free(web);
	const char *kp[] = { in_tmp("keep/web.webp") };
	CHECK(nd_collection_add_paths(c, kp, 1, NULL, NULL, &err) == 0);
	CHECK(nd_collection_dedup(c, &o, &r, &err) == 0);
	int found = 0;
	for (size_t g = 0; g < r->n_groups; g++)
		if (strstr(r->images[r->groups[g].members[0].image].path, "keep/web.webp")) {
			found = 1;
			CHECK(r->images[r->groups[g].members[0].image].protect);
			CHECK(!strcmp(r->groups[g].reason, "protected"));
		}
	CHECK(found);
	nd_dedup_result_free(r);
	/* queries from two threads at once */
	struct qthread t[2] = { { c, "data/coffee_web.webp", "data/coffee", 0 },
				{ c, "data/chelsea_phone.heic", "data/chelsea", 0 } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		CHECK(pthread_create(&th[i], NULL, query_thread, &t[i]) == 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		CHECK(t[i].ok);
	}
	/* views: the rotated copy's best view is a rotation */
	nd_query_options qo;
	nd_query_options_init(&qo);
	qo.k = 1;
	unsigned mask;
	CHECK(nd_views_parse("rotations", &mask, &err) == 0 && mask == (ND_VIEWS_NONE | ND_VIEWS_ROTATIONS));
	CHECK(nd_views_parse("rotations,bogus", &mask, &err) == ND_EINVAL && strstr(err.msg, "'bogus'"));
	qo.views = ND_VIEWS_ALL;
	nd_matches m;
	CHECK(nd_collection_query_file(c, "data/chelsea_flip.jpg", &qo, &m, &err) == 0);
	CHECK(m.n == 1 && !strcmp(m.items[0].path, "data/chelsea_flip.jpg"));
	nd_matches_free(&m);
	/* remove a directory's images, then the missing file; check and stats */
	size_t removed;
	const char *rm[] = { in_tmp("keep") };
	CHECK(nd_collection_remove_paths(c, rm, 1, &removed, NULL, &err) == 0);
	CHECK_EQ_INT(removed, 1);
	nd_check_report *rep = calloc(1, sizeof(*rep));
	CHECK(nd_collection_check(c, rep, &err) == 0);
	CHECK_EQ_INT(rep->n_problems, 0);
	CHECK_EQ_INT(rep->records, 23);
	free(rep);
	nd_collection_close(c);
	/* read-only handles refuse writes */
	c = open_coll("dedup.db", 1, 0);
	CHECK_EQ_INT(nd_collection_add_paths(c, paths, 1, NULL, NULL, &err), ND_EINVAL);
	CHECK(strstr(err.msg, "read-only") != NULL);
	CHECK_EQ_INT(nd_collection_remove_missing(c, &removed, &err), ND_EINVAL);
	nd_collection_close(c);
}

int main(void)
{
	if (!mkdtemp(tmp)) {
		printf("FAIL mkdtemp\n");
		return 1;
	}
	RUN(test_open_errors);
	RUN(test_add_files);
	RUN(test_cancel);
	RUN(test_buffers_and_query);
	RUN(test_dedup_and_queries);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		printf("FAIL cleanup %s\n", tmp);
	return test_summary();
}
