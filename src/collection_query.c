/* neardup — querying a collection by file, buffer or vector, with views. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "collection_impl.h"
#include "readfile.h"
#include "views.h"

_Static_assert((int)ND_VIEW_COUNT == (int)VIEW_COUNT && (int)ND_VIEW_ROT90 == (int)VIEW_ROT90 &&
		       (int)ND_VIEW_CROP50 == (int)VIEW_CROP50,
	       "the public views are embed.h's");

const char *nd_view_name(nd_view v)
{
	return (unsigned)v < ND_VIEW_COUNT ? nd__views_name((enum view)v) : "?";
}

int nd_views_parse(const char *list, unsigned *mask, nd_error *err)
{
	char bad[64];
	unsigned m = nd__views_parse(list, bad, sizeof(bad));
	if (!m)
		return nd_error_set(err, ND_EINVAL, "invalid word '%s'", bad);
	*mask = m;
	return 0;
}

void nd_query_options_init(nd_query_options *o)
{
	memset(o, 0, sizeof(*o));
	o->k = 10;
	o->min_sim = -INFINITY; /* all: a calibrated similarity can be below -1 */
	o->probes = ND_DEFAULT_PROBES;
	o->views = ND_VIEWS_ALL;
}

void nd_matches_free(nd_matches *m)
{
	if (!m)
		return;
	for (size_t i = 0; m->items && i < m->n; i++)
		free(m->items[i].path);
	free(m->items);
	memset(m, 0, sizeof(*m));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(nd_matches *out, nd_stage stage, int rc)
{
	out->items = NULL;
	out->n = 0;
	out->failed = stage;
	return rc;
}

/* With the pair score, a stored file with the query's bytes is a copy for
 * certain: its score is 1 whatever the embeddings say, and it comes first. */
static void exact_first(nd_collection *c, struct view_hit *merged, const uint8_t hash[16], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		nd_record rec;
		char pbuf[ND_PATH_MAX + 1];
		if (!nd_index_get_record(c->ix, merged[i].hit.id, &rec, pbuf, sizeof(pbuf), NULL) &&
		    !memcmp(rec.hash, hash, 16))
			merged[i].hit.sim = 1.0f;
	}
	for (size_t i = 1; i < n; i++) /* stable: ties keep the index's order */
		for (size_t j = i; j > 0 && merged[j - 1].hit.sim < merged[j].hit.sim; j--) {
			struct view_hit t = merged[j];
			merged[j] = merged[j - 1];
			merged[j - 1] = t;
		}
}

/* Runs n vectors (vecs[v * dim], from views[v]; phash[v] their perceptual
 * hashes when not NULL; hash: the query's content hash, or NULL) through the
 * index and merges their results into out. */
static int search(nd_collection *c, const float *vecs, const enum view *views, int n,
		  const uint64_t *phash, const uint8_t *hash, const nd_query_options *o,
		  nd_matches *out, nd_error *err)
{
	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.k = o->k;
	qp.min_sim = o->min_sim;
	qp.probes = o->probes;
	qp.raw = o->raw;
	int calibrated = nd_index_calibrated(c->ix) && !o->raw;
	int scored = calibrated && nd_index_scored(c->ix); /* the pair score */
	int rc = 0;
	nd_hit *hits = calloc((size_t)o->k * (size_t)n, sizeof(*hits));
	struct view_hit *merged = calloc((size_t)o->k * (size_t)n, sizeof(*merged));
	if (!hits || !merged) {
		rc = fail(out, ND_STAGE_QUERY, nd_error_set(err, ND_ENOMEM, "out of memory"));
		goto done;
	}
	/* one query per view, each for k results: the merged top k is then
	 * exact over the union of what the views find */
	const nd_hit *lists[VIEW_COUNT];
	size_t counts[VIEW_COUNT];
	for (int v = 0; v < n; v++) {
		nd_hit *h = hits + (size_t)v * o->k;
		/* the fused score compares the hash of the image as it is (the
		 * identity view); the pair score weighs every view's own hash, so
		 * that a turned view that matches better is not scored as if it
		 * had no hash */
		qp.has_phash = phash && (views[v] == VIEW_IDENTITY || scored);
		qp.phash = phash ? phash[v] : 0;
		if ((rc = nd_index_query(c->ix, vecs + (size_t)v * c->dim, &qp, h, &counts[v], NULL, err))) {
			if (!err || !err->msg[0])
				nd_error_set(err, rc, "%s", nd_strerror(rc));
			fail(out, ND_STAGE_QUERY, rc);
			goto done;
		}
		lists[v] = h;
	}
	size_t m;
	if (n == 1) { /* identity only: the index's order as it is */
		for (m = 0; m < counts[0]; m++)
			merged[m] = (struct view_hit){ hits[m], VIEW_IDENTITY };
	} else {
		m = nd__views_merge(lists, counts, views, n, o->k, merged);
	}
	if (scored && hash)
		exact_first(c, merged, hash, m);
	out->items = calloc(m ? m : 1, sizeof(*out->items));
	out->n = 0;
	out->failed = ND_STAGE_NONE;
	if (!out->items) {
		rc = fail(out, ND_STAGE_QUERY, nd_error_set(err, ND_ENOMEM, "out of memory"));
		goto done;
	}
	for (size_t i = 0; i < m; i++) {
		const nd_hit *hit = &merged[i].hit;
		nd_record rec;
		char pbuf[ND_PATH_MAX + 1];
		if (nd_index_get_record(c->ix, hit->id, &rec, pbuf, sizeof(pbuf), NULL))
			continue; /* removed since the query ran: not a result */
		nd_match *mt = &out->items[out->n];
		if (!(mt->path = strdup(pbuf))) {
			nd_matches_free(out);
			rc = fail(out, ND_STAGE_QUERY, nd_error_set(err, ND_ENOMEM, "out of memory"));
			goto done;
		}
		float raw = hit->raw > 1.0f ? 1.0f : hit->raw; /* int8 overshoot */
		mt->id = hit->id;
		mt->raw_similarity = raw;
		mt->similarity = calibrated ? hit->sim : raw;
		mt->view = (nd_view)merged[i].view;
		out->n++;
	}
done:
	free(hits);
	free(merged);
	return rc;
}

static int check_options(const nd_query_options *o, nd_matches *out, nd_error *err)
{
	if (o->k == 0 || o->k > 1000000)
		return fail(out, ND_STAGE_QUERY, nd_error_set(err, ND_EINVAL, "k must be 1 to 1000000"));
	if (!(o->views & ND_VIEW_BIT(ND_VIEW_IDENTITY)) || (o->views & ~ND_VIEWS_ALL))
		return fail(out, ND_STAGE_QUERY,
			    nd_error_set(err, ND_EINVAL, "views must hold the identity view"));
	return 0;
}

int nd_collection_query_buffer(nd_collection *c, const void *data, size_t len,
			       const nd_query_options *o, nd_matches *out, nd_error *err)
{
	nd_query_options def;
	if (!o) {
		nd_query_options_init(&def);
		o = &def;
	}
	memset(out, 0, sizeof(*out));
	int rc = check_options(o, out, err);
	if (rc)
		return rc;
	struct coll_embedder *ce;
	if ((rc = nd__collection_embedder_get(c, &ce, err)))
		return fail(out, ND_STAGE_EMBED, rc);
	enum view slot_view[VIEW_COUNT];
	uint32_t w, h;
	double t0 = now(), t1 = 0, t2 = 0;
	if ((rc = nd__embed_add_views(&ce->e, data, len, o->views, slot_view, &w, &h, err)))
		rc = fail(out, ND_STAGE_DECODE, rc);
	else if (t1 = now(), (rc = nd__embed_run(&ce->e, err)))
		rc = fail(out, ND_STAGE_EMBED, rc);
	else {
		XXH128_canonical_t canon;
		t2 = now();
		XXH128_canonicalFromHash(&canon, XXH3_128bits(data, len));
		rc = search(c, ce->e.out, slot_view, ce->e.n, ce->e.phash, canon.digest, o, out, err);
		out->index_seconds = now() - t2;
	}
	out->decode_seconds = (t1 ? t1 : now()) - t0;
	if (t1)
		out->embed_seconds = (t2 ? t2 : now()) - t1;
	nd__collection_embedder_put(c, ce);
	return rc;
}

int nd_collection_query_file(nd_collection *c, const char *path, const nd_query_options *o,
			     nd_matches *out, nd_error *err)
{
	struct file_data fd;
	memset(out, 0, sizeof(*out));
	int rc = nd__readfile_read(path, 0, &fd, err);
	if (rc)
		return fail(out, ND_STAGE_READ, rc);
	rc = nd_collection_query_buffer(c, fd.data, fd.len, o, out, err);
	nd__readfile_free(&fd);
	return rc;
}

int nd_collection_query_vector(nd_collection *c, const float *vec, size_t dim,
			       const nd_query_options *o, nd_matches *out, nd_error *err)
{
	nd_query_options def;
	if (!o) {
		nd_query_options_init(&def);
		o = &def;
	}
	memset(out, 0, sizeof(*out));
	int rc = check_options(o, out, err);
	if (rc)
		return rc;
	if (dim != c->dim)
		return fail(out, ND_STAGE_QUERY,
			    nd_error_set(err, ND_EINVAL, "vector of dimension %zu, the collection's is %zu",
					 dim, c->dim));
	enum view v = VIEW_IDENTITY;
	double t0 = now();
	rc = search(c, vec, &v, 1, NULL, NULL, o, out, err);
	out->index_seconds = now() - t0;
	return rc;
}
