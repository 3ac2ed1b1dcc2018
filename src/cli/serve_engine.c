/* neardup serve — the engine behind the routes (see serve_engine.h). */
#include "serve_engine.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "dedup.h"
#include "embed.h"
#include "output.h"
#include "views.h"

struct srv_engine {
	nd_model *model;
	nd_model_info info;
	nd_index *ix;
	const char *index_dir;
	int calibrated;

	/* the embedders: one per request thread, handed out from a stack */
	pthread_mutex_t mu;
	pthread_cond_t freed;
	struct embedder *emb;
	struct embedder **idle;
	int n_emb, n_idle;

	/* the dedup groups of the last (min_sim, generation) asked for */
	pthread_mutex_t dmu;
	int have_groups;
	float groups_min_sim;
	uint64_t groups_gen;
	struct dd_result groups;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void srv_item_free(struct srv_item *it)
{
	free(it->vec);
	free(it->path);
	memset(it, 0, sizeof(*it));
}

int srv_engine_open(struct srv_engine **out, const struct cli_common *com, int threads)
{
	struct srv_engine *e = calloc(1, sizeof(*e));
	*out = NULL;
	if (!e) {
		cli_msg("out of memory");
		return EXIT_FATAL;
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->freed, NULL);
	pthread_mutex_init(&e->dmu, NULL);
	e->index_dir = com->index_dir;
	int status = cli_model_load(com, &e->model);
	if (status)
		goto fail;
	nd_model_get_info(e->model, &e->info);
	if ((status = cli_index_open(com, 1, e->model, &e->ix)))
		goto fail;
	e->calibrated = nd_index_calibrated(e->ix);
	status = EXIT_FATAL;
	e->emb = calloc((size_t)threads, sizeof(*e->emb));
	e->idle = calloc((size_t)threads, sizeof(*e->idle));
	if (!e->emb || !e->idle) {
		cli_msg("out of memory");
		goto fail;
	}
	for (int i = 0; i < threads; i++) {
		nd_error err;
		if (embedder_init(&e->emb[i], e->model, VIEW_COUNT, &err)) {
			cli_msg("cannot set up the CNN: %s", err.msg);
			goto fail;
		}
		e->n_emb++;
		e->idle[e->n_idle++] = &e->emb[i];
	}
	*out = e;
	return 0;
fail:
	srv_engine_close(e);
	return status;
}

void srv_engine_close(struct srv_engine *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->n_emb; i++)
		embedder_free(&e->emb[i]);
	free(e->emb);
	free(e->idle);
	if (e->have_groups)
		dd_result_free(&e->groups);
	nd_index_close(e->ix);
	nd_model_free(e->model);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->freed);
	pthread_mutex_destroy(&e->dmu);
	free(e);
}

nd_index *srv_engine_index(struct srv_engine *e)
{
	return e->ix;
}

uint32_t srv_engine_dim(const struct srv_engine *e)
{
	return (uint32_t)e->info.embed_dim;
}

int srv_engine_is_decode_error(int rc)
{
	return rc != ND_ENOMEM && rc != ND_EINTERNAL && rc != ND_ESTORE && rc != ND_EOVERFLOW;
}

static struct embedder *emb_take(struct srv_engine *e)
{
	pthread_mutex_lock(&e->mu);
	while (e->n_idle == 0)
		pthread_cond_wait(&e->freed, &e->mu);
	struct embedder *m = e->idle[--e->n_idle];
	pthread_mutex_unlock(&e->mu);
	m->n = 0;
	return m;
}

static void emb_give(struct srv_engine *e, struct embedder *m)
{
	pthread_mutex_lock(&e->mu);
	e->idle[e->n_idle++] = m;
	pthread_cond_signal(&e->freed);
	pthread_mutex_unlock(&e->mu);
}

/* ---- queries ---- */

/* Runs one nd_index_query per vector (vecs[n][dim], views slot_view) and
 * prints query's JSONL object into a memory stream, as query.c does. */
static int query_vecs(struct srv_engine *e, const float *vecs, const uint64_t *phash,
		      const enum view *slot_view, int n, const struct srv_query *q, char **json,
		      size_t *jlen, float *best, size_t *nbest, struct srv_timing *t, nd_error *err)
{
	double t0 = now();
	int rc = 0;
	size_t k = q->k;
	nd_hit *hits = calloc(k * (size_t)n, sizeof(*hits));
	struct view_hit *merged = calloc(k * (size_t)n, sizeof(*merged));
	FILE *f = NULL;
	*json = NULL;
	*nbest = 0;
	if (!hits || !merged) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	nd_query_params qp;
	nd_query_params_init(&qp);
	qp.k = q->k;
	qp.probes = q->probes;
	qp.min_sim = q->min_sim;
	const nd_hit *lists[VIEW_COUNT];
	size_t counts[VIEW_COUNT];
	for (int v = 0; v < n; v++) {
		nd_query_params p = qp;
		/* the perceptual hash compares the image as it is: the identity view */
		p.has_phash = phash && slot_view[v] == VIEW_IDENTITY;
		p.phash = phash ? phash[v] : 0;
		if ((rc = nd_index_query(e->ix, vecs + (size_t)v * e->info.embed_dim, &p,
					 hits + (size_t)v * k, &counts[v], NULL, err)))
			goto done;
		lists[v] = hits + (size_t)v * k;
	}
	size_t nm;
	if (n == 1) { /* identity only: the index's order as it is */
		for (nm = 0; nm < counts[0]; nm++)
			merged[nm] = (struct view_hit){ hits[nm], VIEW_IDENTITY };
	} else {
		nm = views_merge(lists, counts, slot_view, n, k, merged);
	}
	f = open_memstream(json, jlen);
	if (!f) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	fputs("{\"query\": ", f);
	out_json_str(f, q->label);
	fputs(", \"results\": [", f);
	for (size_t i = 0; i < nm; i++) {
		const nd_hit *hit = &merged[i].hit;
		nd_record rec;
		char pbuf[ND_PATH_MAX + 1];
		if (nd_index_get_record(e->ix, hit->id, &rec, pbuf, sizeof(pbuf), NULL))
			continue; /* removed since the query ran: not a result */
		float raw = hit->raw > 1.0f ? 1.0f : hit->raw; /* int8 overshoot */
		float sim = e->calibrated ? hit->sim : raw;
		if (*nbest == 0)
			*best = sim;
		fputs(*nbest ? ", {\"path\": " : "{\"path\": ", f);
		out_json_str(f, pbuf);
		fprintf(f, ", \"id\": %u, \"similarity\": %.6f, \"raw_similarity\": %.6f", hit->id, sim, raw);
		if (q->views != VIEW_BIT(VIEW_IDENTITY))
			fprintf(f, ", \"view\": \"%s\"", view_name(merged[i].view));
		fputc('}', f);
		(*nbest)++;
	}
	fputs("]}\n", f);
	if (fclose(f) != 0)
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
	f = NULL;
done:
	if (f)
		fclose(f);
	if (rc) {
		free(*json);
		*json = NULL;
	}
	free(hits);
	free(merged);
	t->index += now() - t0;
	return rc;
}

int srv_engine_query(struct srv_engine *e, const void *data, size_t len, const struct srv_query *q,
		     char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
		     nd_error *err)
{
	struct embedder *m = emb_take(e);
	enum view slot_view[VIEW_COUNT];
	uint32_t w, h;
	double t0 = now();
	int rc = embedder_add_views(m, data, len, q->views, slot_view, &w, &h, err);
	double t1 = now();
	t->decode += t1 - t0;
	if (rc)
		goto done;
	rc = embedder_run(m, err);
	t->embed += now() - t1;
	if (rc) {
		if (rc != ND_ENOMEM)
			rc = ND_EINTERNAL; /* the image decoded: a failure here is ours */
		goto done;
	}
	rc = query_vecs(e, m->out, m->phash, slot_view, m->n, q, json, jlen, best, nbest, t, err);
done:
	m->n = 0;
	emb_give(e, m);
	return rc;
}

int srv_engine_query_vec(struct srv_engine *e, const float *vec, const struct srv_query *q,
			 char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
			 nd_error *err)
{
	size_t d = e->info.embed_dim;
	float *v = malloc(d * sizeof(*v));
	if (!v)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	double s = 0;
	for (size_t i = 0; i < d; i++)
		s += (double)vec[i] * vec[i];
	if (!(s > 0) || !isfinite(s)) {
		free(v);
		return nd_error_set(err, ND_EINVAL, "the vector is zero or not finite");
	}
	for (size_t i = 0; i < d; i++)
		v[i] = (float)(vec[i] / sqrt(s));
	enum view id = VIEW_IDENTITY;
	struct srv_query qq = *q;
	qq.views = VIEW_BIT(VIEW_IDENTITY);
	int rc = query_vecs(e, v, NULL, &id, 1, &qq, json, jlen, best, nbest, t, err);
	free(v);
	return rc;
}

/* ---- new images ---- */

void srv_engine_hash(const void *data, size_t len, uint8_t out[16])
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
	memcpy(out, c.digest, 16);
}

int srv_engine_lookup_hash(struct srv_engine *e, const uint8_t hash[16], uint32_t *id)
{
	size_t n = 0;
	return nd_index_lookup_hash(e->ix, hash, id, 1, &n, NULL) == 0 && n > 0;
}

int srv_engine_embed(struct srv_engine *e, const void *data, size_t len, const char *path,
		     struct srv_item *it, struct srv_timing *t, nd_error *err)
{
	memset(it, 0, sizeof(*it));
	size_t d = e->info.embed_dim;
	it->vec = malloc(d * sizeof(float));
	it->path = strdup(path);
	if (!it->vec || !it->path) {
		srv_item_free(it);
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	}
	struct embedder *m = emb_take(e);
	uint32_t w, h;
	double t0 = now();
	int rc = embedder_add(m, data, len, &w, &h, err);
	double t1 = now();
	t->decode += t1 - t0;
	if (rc)
		goto done;
	rc = embedder_run(m, err);
	t->embed += now() - t1;
	if (rc) {
		if (rc != ND_ENOMEM)
			rc = ND_EINTERNAL;
		goto done;
	}
	memcpy(it->vec, m->out, d * sizeof(float));
	it->has_phash = 1;
	it->phash = m->phash[0];
	it->has_origin = 1;
	it->origin = m->origin[0];
	it->rec.path = it->path;
	it->rec.path_len = strlen(it->path);
	it->rec.size = len;
	it->rec.width = w;
	it->rec.height = h;
	srv_engine_hash(data, len, it->rec.hash);
done:
	m->n = 0;
	emb_give(e, m);
	if (rc)
		srv_item_free(it);
	return rc;
}

/* ---- records, groups, info ---- */

static void hex(FILE *f, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

int srv_engine_record_json(struct srv_engine *e, uint32_t id, char **json, size_t *jlen,
			   nd_error *err)
{
	nd_record rec;
	char pbuf[ND_PATH_MAX + 1];
	int rc = nd_index_get_record(e->ix, id, &rec, pbuf, sizeof(pbuf), err);
	if (rc)
		return rc;
	FILE *f = open_memstream(json, jlen);
	if (!f)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	fprintf(f, "{\"id\": %u, \"path\": ", id);
	out_json_str(f, pbuf);
	fprintf(f, ", \"size\": %llu, \"width\": %u, \"height\": %u, \"mtime_ns\": %lld, \"hash\": \"",
		(unsigned long long)rec.size, rec.width, rec.height, (long long)rec.mtime_ns);
	hex(f, rec.hash, 16);
	fputs("\"}\n", f);
	if (fclose(f) != 0) {
		free(*json);
		*json = NULL;
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	}
	return 0;
}

int srv_engine_duplicates(struct srv_engine *e, float min_sim, uint64_t generation, size_t page,
			  size_t per_page, char **json, size_t *jlen, nd_error *err)
{
	int rc = 0;
	pthread_mutex_lock(&e->dmu);
	if (!e->have_groups || e->groups_min_sim != min_sim || e->groups_gen != generation) {
		if (e->have_groups)
			dd_result_free(&e->groups);
		e->have_groups = 0;
		if (dd_build(e->ix, min_sim, 0, 1, &e->groups)) {
			rc = nd_error_set(err, ND_EINTERNAL, "cannot group the index (see the server's log)");
			goto done;
		}
		e->have_groups = 1;
		e->groups_min_sim = min_sim;
		e->groups_gen = generation;
	}
	const struct dd_result *r = &e->groups;
	FILE *f = open_memstream(json, jlen);
	if (!f) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	size_t pages = (r->n_groups + per_page - 1) / per_page;
	fprintf(f, "{\"min_sim\": %.6f, \"page\": %zu, \"per_page\": %zu, \"pages\": %zu, "
		"\"total\": %zu, \"groups\": [", min_sim, page, per_page, pages, r->n_groups);
	size_t first = (page - 1) * per_page;
	for (size_t i = first; i < r->n_groups && i < first + per_page; i++) {
		const struct dd_group *g = &r->groups[i];
		fprintf(f, "%s{\"group\": %zu, \"keep\": ", i > first ? ", " : "", i + 1);
		out_json_str(f, r->nodes[g->members[0]].path);
		fprintf(f, ", \"keep_id\": %u, \"reason\": ", r->nodes[g->members[0]].id);
		out_json_str(f, g->reason);
		fputs(", \"members\": [", f);
		for (size_t k = 0; k < g->n; k++) {
			const struct dd_node *nd = &r->nodes[g->members[k]];
			fputs(k ? ", {\"path\": " : "{\"path\": ", f);
			out_json_str(f, nd->path);
			fprintf(f, ", \"id\": %u, \"similarity\": %.6f, \"raw_similarity\": %.6f, \"exact\": %s}",
				nd->id, g->sims[k], g->raws[k], dd_exact(r, g, k) ? "true" : "false");
		}
		fputs("]}", f);
	}
	fputs("]}\n", f);
	if (fclose(f) != 0) {
		free(*json);
		*json = NULL;
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
	}
done:
	pthread_mutex_unlock(&e->dmu);
	return rc;
}

uint64_t srv_engine_images(struct srv_engine *e)
{
	nd_meta m;
	return nd_index_meta(e->ix, &m, NULL) == 0 ? m.n_images : 0;
}

int srv_engine_info_json(struct srv_engine *e, const char *extra, char **json, size_t *jlen,
			 nd_error *err)
{
	nd_meta m;
	int rc = nd_index_meta(e->ix, &m, err);
	if (rc)
		return rc;
	FILE *f = open_memstream(json, jlen);
	if (!f)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	fputs("{\"version\": ", f);
	out_json_str(f, ND_VERSION_STRING);
	fputs(", \"model\": {\"name\": ", f);
	out_json_str(f, e->info.name);
	fprintf(f, ", \"checksum\": \"%016llx\", \"dim\": %d, \"input\": [%d, %d]}",
		(unsigned long long)e->info.checksum, e->info.embed_dim, e->info.input_w, e->info.input_h);
	fputs(", \"index\": {\"path\": ", f);
	out_json_str(f, e->index_dir);
	fprintf(f, ", \"images\": %llu, \"next_id\": %u, \"tables\": %u, \"bits\": %u, \"dim\": %u, "
		"\"calibrated\": %s, \"probes\": %d}%s%s}\n",
		(unsigned long long)m.n_images, m.next_id, m.tables, m.bits, m.dim,
		e->calibrated ? "true" : "false", CLI_DEFAULT_PROBES, extra ? ", " : "", extra ? extra : "");
	if (fclose(f) != 0) {
		free(*json);
		*json = NULL;
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	}
	return 0;
}
