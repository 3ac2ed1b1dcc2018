/* neardup serve — the engine behind the routes, on the collection API
 * (see serve_engine.h). */
#include "serve_engine.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "output.h"

struct srv_engine {
	nd_model *model;
	nd_collection *c;
	nd_index *ix;
	const char *index_dir;
	int threads;

	/* the dedup groups of the last (min_sim, generation) asked for */
	pthread_mutex_t dmu;
	float groups_min_sim;
	uint64_t groups_gen;
	nd_dedup_result *groups;
};

int srv_engine_open(struct srv_engine **out, const struct cli_common *com, int threads)
{
	struct srv_engine *e = calloc(1, sizeof(*e));
	*out = NULL;
	if (!e) {
		cli_msg("out of memory");
		return EXIT_FATAL;
	}
	pthread_mutex_init(&e->dmu, NULL);
	e->index_dir = com->index_dir;
	e->threads = threads;
	int status = cli_model_load(com, &e->model);
	if (status || (status = cli_collection_open(com, 1, e->model, &e->c))) {
		srv_engine_close(e);
		return status;
	}
	e->ix = nd_collection_index(e->c);
	*out = e;
	return 0;
}

void srv_engine_close(struct srv_engine *e)
{
	if (!e)
		return;
	nd_dedup_result_free(e->groups);
	nd_collection_close(e->c);
	nd_model_free(e->model);
	pthread_mutex_destroy(&e->dmu);
	free(e);
}

uint32_t srv_engine_dim(const struct srv_engine *e)
{
	return (uint32_t)nd_collection_dim(e->c);
}

/* ---- queries ---- */

/* query's JSONL object for ms, as src/cli/query.c prints it. */
static int matches_json(const nd_matches *ms, const struct srv_query *q, char **json, size_t *jlen,
			float *best, size_t *nbest, nd_error *err)
{
	FILE *f = open_memstream(json, jlen);
	if (!f)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	fputs("{\"query\": ", f);
	out_json_str(f, q->label);
	fputs(", \"results\": [", f);
	for (size_t i = 0; i < ms->n; i++) {
		const nd_match *mt = &ms->items[i];
		fputs(i ? ", {\"path\": " : "{\"path\": ", f);
		out_json_str(f, mt->path);
		fprintf(f, ", \"id\": %u, \"similarity\": %.6f, \"raw_similarity\": %.6f", mt->id,
			mt->similarity, mt->raw_similarity);
		if (q->views != ND_VIEWS_NONE)
			fprintf(f, ", \"view\": \"%s\"", nd_view_name(mt->view));
		fputc('}', f);
	}
	fputs("]}\n", f);
	*nbest = ms->n;
	if (ms->n)
		*best = ms->items[0].similarity;
	if (fclose(f) != 0) {
		free(*json);
		*json = NULL;
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	}
	return 0;
}

static void query_options(const struct srv_query *q, nd_query_options *o)
{
	nd_query_options_init(o);
	o->k = q->k;
	o->min_sim = q->min_sim;
	o->views = q->views;
	o->probes = q->probes;
}

int srv_engine_query(struct srv_engine *e, const void *data, size_t len, const struct srv_query *q,
		     char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
		     int *decode_failed, nd_error *err)
{
	nd_query_options o;
	nd_matches ms;
	query_options(q, &o);
	*json = NULL;
	int rc = nd_collection_query_buffer(e->c, data, len, &o, &ms, err);
	t->decode += ms.decode_seconds;
	t->embed += ms.embed_seconds;
	t->index += ms.index_seconds;
	*decode_failed = rc && ms.failed == ND_STAGE_DECODE;
	if (rc)
		return rc;
	rc = matches_json(&ms, q, json, jlen, best, nbest, err);
	nd_matches_free(&ms);
	return rc;
}

int srv_engine_query_vec(struct srv_engine *e, const float *vec, const struct srv_query *q,
			 char **json, size_t *jlen, float *best, size_t *nbest, struct srv_timing *t,
			 nd_error *err)
{
	size_t d = nd_collection_dim(e->c);
	double s = 0;
	for (size_t i = 0; i < d; i++)
		s += (double)vec[i] * vec[i];
	if (!(s > 0) || !isfinite(s))
		return nd_error_set(err, ND_EINVAL, "the vector is zero or not finite");
	float *v = malloc(d * sizeof(*v));
	if (!v)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	for (size_t i = 0; i < d; i++)
		v[i] = (float)(vec[i] / sqrt(s));
	nd_query_options o;
	nd_matches ms;
	query_options(q, &o);
	o.views = ND_VIEWS_NONE;
	*json = NULL;
	int rc = nd_collection_query_vector(e->c, v, d, &o, &ms, err);
	free(v);
	t->index += ms.index_seconds;
	if (rc)
		return rc;
	struct srv_query qq = *q;
	qq.views = ND_VIEWS_NONE;
	rc = matches_json(&ms, &qq, json, jlen, best, nbest, err);
	nd_matches_free(&ms);
	return rc;
}

/* ---- changes (the writer thread) ---- */

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

struct add_events {
	struct srv_add *const *adds;
	size_t n;
};

/* A buffer that failed: the add of that name (the first without a result). */
static void on_event(void *ctx, const char *name, nd_add_event ev, const char *detail)
{
	struct add_events *ae = ctx;
	if (ev == ND_ADD_IGNORED)
		return;
	for (size_t i = 0; i < ae->n; i++) {
		struct srv_add *a = ae->adds[i];
		if (a->rc == 0 && !a->existed && !strcmp(a->name, name)) {
			a->rc = ev == ND_ADD_DECODE_FAILED ? ND_EFORMAT : ND_EINTERNAL;
			a->decode_failed = ev == ND_ADD_DECODE_FAILED;
			snprintf(a->msg, sizeof(a->msg), "%s", detail ? detail : nd_add_event_text(ev));
			return;
		}
	}
}

int srv_engine_add(struct srv_engine *e, struct srv_add *const *adds, size_t n, nd_error *err)
{
	nd_buffer *bufs = calloc(n ? n : 1, sizeof(*bufs));
	size_t nb = 0;
	if (!bufs)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct srv_add *a = adds[i];
		a->rc = 0;
		a->existed = 0;
		if (srv_engine_lookup_hash(e, a->hash, &a->id)) {
			a->existed = 1;
			continue;
		}
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			dup = !adds[j]->existed && !memcmp(adds[j]->hash, a->hash, 16);
		if (dup)
			continue; /* gets the id of the first below */
		bufs[nb++] = (nd_buffer){ a->data, a->len, a->name, a->mtime_ns };
	}
	int rc = 0;
	if (nb) {
		struct add_events ae = { adds, n };
		nd_add_options o;
		nd_add_options_init(&o);
		o.threads = e->threads;
		o.on_event = on_event;
		o.ctx = &ae;
		nd_add_counts counts;
		rc = nd_collection_add_buffers(e->c, bufs, nb, &o, &counts, err);
	}
	free(bufs);
	for (size_t i = 0; i < n; i++) {
		struct srv_add *a = adds[i];
		if (rc) {
			a->rc = rc;
			snprintf(a->msg, sizeof(a->msg), "%s", err->msg[0] ? err->msg : nd_strerror(rc));
			continue;
		}
		if (a->existed || a->rc)
			continue;
		size_t nid = 0;
		/* a copy of an earlier add in this batch: that one's id */
		int dup = 0;
		for (size_t j = 0; j < i && !dup; j++)
			if (!adds[j]->existed && !memcmp(adds[j]->hash, a->hash, 16)) {
				dup = 1;
				a->existed = 1;
				a->id = adds[j]->id;
				a->rc = adds[j]->rc;
				a->decode_failed = adds[j]->decode_failed;
				memcpy(a->msg, adds[j]->msg, sizeof(a->msg));
			}
		if (dup)
			continue;
		if (nd_index_lookup_path(e->ix, a->name, &a->id, NULL) != 0 &&
		    !(nd_index_lookup_hash(e->ix, a->hash, &a->id, 1, &nid, NULL) == 0 && nid > 0)) {
			a->rc = ND_EINTERNAL;
			snprintf(a->msg, sizeof(a->msg), "the image is not in the index after adding it");
		}
	}
	return rc;
}

int srv_engine_remove(struct srv_engine *e, const uint32_t *ids, size_t n, unsigned char *found,
		      nd_error *err)
{
	uint32_t *some = malloc((n ? n : 1) * sizeof(*some));
	size_t ns = 0;
	if (!some)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		nd_record rec;
		char pbuf[ND_PATH_MAX + 1];
		found[i] = nd_index_get_record(e->ix, ids[i], &rec, pbuf, sizeof(pbuf), NULL) == 0;
		if (found[i])
			some[ns++] = ids[i];
	}
	int rc = ns ? nd_collection_remove_ids(e->c, some, ns, NULL, err) : 0;
	free(some);
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
	if (isnan(min_sim))
		min_sim = nd_collection_default_min_sim(e->c, 0);
	pthread_mutex_lock(&e->dmu);
	if (!e->groups || e->groups_min_sim != min_sim || e->groups_gen != generation) {
		nd_dedup_result_free(e->groups);
		e->groups = NULL;
		nd_dedup_options o;
		nd_dedup_options_init(&o);
		o.min_sim = min_sim;
		o.no_file_check = 1; /* uploaded images are names, not files */
		if ((rc = nd_collection_dedup(e->c, &o, &e->groups, err)))
			goto done;
		e->groups_min_sim = min_sim;
		e->groups_gen = generation;
	}
	const nd_dedup_result *r = e->groups;
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
		const nd_dup_group *g = &r->groups[i];
		const nd_dup_image *keep = &r->images[g->members[0].image];
		fprintf(f, "%s{\"group\": %zu, \"keep\": ", i > first ? ", " : "", i + 1);
		out_json_str(f, keep->path);
		fprintf(f, ", \"keep_id\": %u, \"reason\": ", keep->id);
		out_json_str(f, g->reason);
		fputs(", \"members\": [", f);
		for (size_t k = 0; k < g->n; k++) {
			const nd_dup_member *m = &g->members[k];
			const nd_dup_image *im = &r->images[m->image];
			fputs(k ? ", {\"path\": " : "{\"path\": ", f);
			out_json_str(f, im->path);
			fprintf(f, ", \"id\": %u, \"similarity\": %.6f, \"raw_similarity\": %.6f, \"exact\": %s}",
				im->id, m->similarity, m->raw_similarity, m->exact ? "true" : "false");
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
	nd_model_info mi;
	int rc = nd_index_meta(e->ix, &m, err);
	if (rc)
		return rc;
	nd_model_get_info(nd_collection_model(e->c), &mi);
	FILE *f = open_memstream(json, jlen);
	if (!f)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	fputs("{\"version\": ", f);
	out_json_str(f, nd_version());
	fputs(", \"model\": {\"name\": ", f);
	out_json_str(f, mi.name);
	fprintf(f, ", \"checksum\": \"%016llx\", \"dim\": %d, \"input\": [%d, %d]}",
		(unsigned long long)mi.checksum, mi.embed_dim, mi.input_w, mi.input_h);
	fputs(", \"index\": {\"path\": ", f);
	out_json_str(f, e->index_dir);
	fprintf(f, ", \"images\": %llu, \"next_id\": %u, \"tables\": %u, \"bits\": %u, \"dim\": %u, "
		"\"calibrated\": %s, \"pair_score\": %s, \"default_min_sim\": %.6g, \"probes\": %d}%s%s}\n",
		(unsigned long long)m.n_images, m.next_id, m.tables, m.bits, m.dim,
		nd_collection_calibrated(e->c) ? "true" : "false",
		nd_index_scored(e->ix) ? "true" : "false", nd_collection_default_min_sim(e->c, 0),
		ND_DEFAULT_PROBES, extra ? ", " : "", extra ? extra : "");
	if (fclose(f) != 0) {
		free(*json);
		*json = NULL;
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	}
	return 0;
}
