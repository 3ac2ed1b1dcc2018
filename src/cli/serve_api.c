/* neardup serve — the /v1 routes (doc/openapi.yaml describes them), /healthz
 * and /metrics. Each handler reads its request, calls the engine or the
 * writer, and queues one reply. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output.h"
#include "serve.h"
#include "serve_engine.h"

#define MAX_K 1000
#define DEFAULT_PER_PAGE 50
#define MAX_PER_PAGE 1000

static int reply_json(struct srv_req *r, int status, char *json, size_t len)
{
	return srv_reply(r, status, "application/json", json, len);
}

/* The body as a JSON object, or a 400 reply (-1). */
static json_t *body_json(struct srv_req *r)
{
	size_t len;
	const uint8_t *b = srv_req_body(r, &len);
	json_error_t je;
	json_t *j = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		srv_reply_error(r, 400, "malformed JSON at line %d, column %d: %s", je.line, je.column,
				je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		srv_reply_error(r, 400, "the JSON body must be an object");
		return NULL;
	}
	return j;
}

/* A parameter from the JSON body (numbers or strings) or the query string /
 * form fields, as text in buf. NULL when absent. */
static const char *param(struct srv_req *r, json_t *j, const char *key, char *buf, size_t cap)
{
	json_t *v = j ? json_object_get(j, key) : NULL;
	if (v) {
		if (json_is_string(v))
			return json_string_value(v);
		if (json_is_integer(v))
			snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
		else if (json_is_real(v))
			snprintf(buf, cap, "%.17g", json_real_value(v));
		else
			snprintf(buf, cap, "?");
		return buf;
	}
	return srv_req_arg(r, key);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

/* A path or name to store or show: not empty, no control characters. */
static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > ND_PATH_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* The image bytes of a request: the body, or the server-side file named by
 * "path" in the JSON body. *owned is set when the bytes must be freed.
 * Returns 0, or -1 after a reply. */
static int image_bytes(struct srv_req *r, json_t *j, const uint8_t **data, size_t *len,
		       uint8_t **owned, char **abs, struct stat *st)
{
	struct srv *s = srv_req_srv(r);
	*owned = NULL;
	*abs = NULL;
	if (!j) {
		*data = srv_req_body(r, len);
		if (*len == 0)
			return srv_reply_error(r, 400, "the request has no image"), -1;
		return 0;
	}
	json_t *p = json_object_get(j, "path");
	if (!p)
		return srv_reply_error(r, 400, "the JSON body needs \"path\" (or send the image bytes)"),
		       -1;
	if (!json_is_string(p) || !name_ok(json_string_value(p)))
		return srv_reply_error(r, 400, "\"path\" must be a non-empty string"), -1;
	if (!s->root_real)
		return srv_reply_error(r, 403, "server-side paths are disabled: start the server with "
					       "--allow-root DIR"), -1;
	char why[600];
	int rc = srv_fs_read(s->root_real, json_string_value(p), ND_MAX_FILE_BYTES, owned, len, abs,
			     st, why, sizeof(why));
	if (rc == -1)
		return srv_reply_error(r, 403, "cannot read '%s': %s", json_string_value(p), why), -1;
	if (rc)
		return srv_reply_error(r, 404, "cannot read '%s': %s", json_string_value(p), why), -1;
	*data = *owned;
	return 0;
}

static void observe(const struct srv_timing *t)
{
	srv_metrics_observe(HIST_DECODE, t->decode);
	srv_metrics_observe(HIST_EMBED, t->embed);
}

/* POST /v1/query */
static int h_query(struct srv_req *r)
{
	struct srv *s = srv_req_srv(r);
	json_t *j = NULL;
	uint8_t *owned = NULL;
	char *abs = NULL, *json = NULL;
	size_t jlen = 0;
	int ret = -1;
	if (srv_req_is_json(r) && !(j = body_json(r)))
		return 0;
	struct srv_query q = { 10, -INFINITY, ND_VIEWS_ALL, ND_DEFAULT_PROBES, "-" };
	char buf[64];
	const char *v;
	long l;
	double d;
	if ((v = param(r, j, "k", buf, sizeof(buf))) && parse_long(v, 1, MAX_K, &l)) {
		ret = srv_reply_error(r, 400, "invalid k '%s' (1 to %d)", v, MAX_K);
		goto done;
	} else if (v)
		q.k = (uint32_t)l;
	if ((v = param(r, j, "min_sim", buf, sizeof(buf))) &&
	    parse_double(v, -CLI_MAX_MIN_SIM, CLI_MAX_MIN_SIM, &d)) {
		ret = srv_reply_error(r, 400, "invalid min_sim '%s'", v);
		goto done;
	} else if (v)
		q.min_sim = (float)d;
	if ((v = param(r, j, "views", buf, sizeof(buf)))) {
		nd_error verr;
		if (nd_views_parse(v, &q.views, &verr)) {
			ret = srv_reply_error(r, 400, "%s in views '%s' (rotations, crops, all, or none "
						      "alone)", verr.msg, v);
			goto done;
		}
	}
	if ((v = param(r, j, "probes", buf, sizeof(buf))) && parse_long(v, 0, 1000000, &l)) {
		ret = srv_reply_error(r, 400, "invalid probes '%s' (0 to 1000000)", v);
		goto done;
	} else if (v)
		q.probes = (uint32_t)l;
	if ((v = param(r, j, "name", buf, sizeof(buf))) && name_ok(v))
		q.label = v;
	struct srv_timing t = { 0 };
	float best = 0;
	size_t nbest = 0;
	nd_error err;
	nd_error_clear(&err);
	int rc;
	json_t *vec = j ? json_object_get(j, "vector") : NULL;
	if (vec) {
		uint32_t dim = srv_engine_dim(s->eng);
		if (!json_is_array(vec) || json_array_size(vec) != dim) {
			ret = srv_reply_error(r, 400, "\"vector\" must be an array of %u numbers", dim);
			goto done;
		}
		float *fv = malloc(sizeof(float) * dim);
		if (!fv) {
			ret = srv_reply_error(r, 500, "out of memory");
			goto done;
		}
		for (uint32_t i = 0; i < dim; i++)
			fv[i] = (float)json_number_value(json_array_get(vec, i));
		rc = srv_engine_query_vec(s->eng, fv, &q, &json, &jlen, &best, &nbest, &t, &err);
		free(fv);
		if (rc == ND_EINVAL) {
			ret = srv_reply_error(r, 400, "%s", err.msg);
			goto done;
		}
	} else {
		const uint8_t *data;
		size_t len;
		struct stat st;
		if (image_bytes(r, j, &data, &len, &owned, &abs, &st)) {
			ret = 0;
			goto done;
		}
		if (abs)
			q.label = abs;
		int decode_failed = 0;
		rc = srv_engine_query(s->eng, data, len, &q, &json, &jlen, &best, &nbest, &t,
				      &decode_failed, &err);
		observe(&t);
		if (rc && decode_failed) {
			srv_metrics_count(CNT_DECODE_FAILURES);
			ret = srv_reply_error(r, 422, "cannot decode the image: %s",
					      err.msg[0] ? err.msg : nd_strerror(rc));
			goto done;
		}
	}
	if (rc) {
		ret = srv_reply_error(r, 500, "cannot query the index: %s",
				      err.msg[0] ? err.msg : nd_strerror(rc));
		goto done;
	}
	srv_metrics_observe(HIST_INDEX, t.index);
	if (nbest)
		srv_metrics_observe(HIST_BEST_SCORE, best);
	ret = reply_json(r, 200, json, jlen);
	json = NULL;
done:
	free(json);
	free(owned);
	free(abs);
	json_decref(j);
	return ret;
}

static int reply_id(struct srv_req *r, int status, uint32_t id, int existing, const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return srv_reply_error(r, 500, "out of memory");
	fprintf(f, "{\"id\": %u, \"existing\": %s", id, existing ? "true" : "false");
	if (path) {
		fputs(", \"path\": ", f);
		out_json_str(f, path);
	}
	fputs("}\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return srv_reply_error(r, 500, "out of memory");
	}
	return reply_json(r, status, buf, len);
}

/* The reply to a write the writer refused or failed (1), or 0. */
static int write_refused(struct srv_req *r, struct srv_wop *op)
{
	struct srv *s = srv_req_srv(r);
	if (op->refused == -1) {
		srv_metrics_count(CNT_QUEUE_FULL);
		srv_req_add_header(r, "Retry-After", "1");
		srv_reply_error(r, 429, "the write queue is full (%d waiting); retry later", s->o.queue);
		return 1;
	}
	if (op->refused) {
		srv_reply_error(r, 503, "the server is shutting down");
		return 1;
	}
	if (op->rc) {
		srv_reply_error(r, 500, "cannot write to the index: %s", op->msg);
		return 1;
	}
	return 0;
}

/* A POST /v1/images waiting for the writer. */
struct pending_add {
	struct srv_wop op;
	struct srv_add add;
	uint8_t *owned;
	char *abs;
	char name[64];
};

static void pending_add_free(void *state)
{
	struct pending_add *p = state;
	free(p->owned);
	free(p->abs);
	free(p);
}

static int finish_add(struct srv_req *r, void *state)
{
	struct pending_add *p = state;
	struct srv_add *add = &p->add;
	if (write_refused(r, &p->op))
		return 0;
	if (add->rc && add->decode_failed) {
		srv_metrics_count(CNT_DECODE_FAILURES);
		return srv_reply_error(r, 422, "cannot decode the image: %s", add->msg);
	}
	if (add->rc)
		return srv_reply_error(r, 500, "cannot add the image: %s", add->msg);
	return reply_id(r, add->existed ? 200 : 201, add->id, add->existed,
			add->existed ? NULL : add->name);
}

/* POST /v1/images */
static int h_images_post(struct srv_req *r)
{
	struct srv *s = srv_req_srv(r);
	json_t *j = NULL;
	int ret = -1;
	if (srv_req_is_json(r) && !(j = body_json(r)))
		return 0;
	struct pending_add *p = calloc(1, sizeof(*p));
	if (!p) {
		json_decref(j);
		return srv_reply_error(r, 500, "out of memory");
	}
	struct srv_add *add = &p->add;
	struct stat st;
	if (image_bytes(r, j, (const uint8_t **)&add->data, &add->len, &p->owned, &p->abs, &st)) {
		ret = 0;
		goto fail;
	}
	srv_engine_hash(add->data, add->len, add->hash);
	add->name = p->abs;
	if (!add->name) {
		add->name = srv_req_arg(r, "name");
		if (add->name && !name_ok(add->name)) {
			ret = srv_reply_error(r, 400, "invalid name (1 to %d bytes, no control characters)",
					      ND_PATH_MAX);
			goto fail;
		}
		if (!add->name) {
			size_t o = (size_t)snprintf(p->name, sizeof(p->name), "upload/");
			for (int i = 0; i < 16 && o + 2 < sizeof(p->name); i++, o += 2)
				snprintf(p->name + o, sizeof(p->name) - o, "%02x", add->hash[i]);
			add->name = p->name;
		}
	}
	uint32_t id;
	if (srv_engine_lookup_hash(s->eng, add->hash, &id)) { /* identical: nothing to embed */
		srv_metrics_count(CNT_IMAGES_EXISTING);
		ret = reply_id(r, 200, id, 1, NULL);
		goto fail;
	}
	if (p->abs) {
		add->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		add->mtime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	json_decref(j);
	p->op.kind = WOP_ADD;
	p->op.add = add;
	return srv_req_defer(r, &p->op, finish_add, p, pending_add_free);
fail:
	pending_add_free(p);
	json_decref(j);
	return ret;
}

static int parse_id(struct srv_req *r, uint32_t *id)
{
	long v;
	if (parse_long(srv_req_path_param(r), 1, UINT32_MAX, &v))
		return srv_reply_error(r, 404, "no image with id '%s'", srv_req_path_param(r)), -1;
	*id = (uint32_t)v;
	return 0;
}

static int finish_remove(struct srv_req *r, void *state)
{
	struct srv_wop *op = state;
	if (write_refused(r, op))
		return 0;
	if (!op->found)
		return srv_reply_error(r, 404, "no image with id %u", op->id);
	char *buf = malloc(64);
	if (!buf)
		return srv_reply_error(r, 500, "out of memory");
	int n = snprintf(buf, 64, "{\"id\": %u, \"removed\": true}\n", op->id);
	return reply_json(r, 200, buf, (size_t)n);
}

/* GET, DELETE /v1/images/{id} */
static int h_image(struct srv_req *r, const char *method)
{
	struct srv *s = srv_req_srv(r);
	uint32_t id;
	if (parse_id(r, &id))
		return 0;
	if (!strcmp(method, "DELETE")) {
		struct srv_wop *op = calloc(1, sizeof(*op));
		if (!op)
			return srv_reply_error(r, 500, "out of memory");
		op->kind = WOP_REMOVE;
		op->id = id;
		return srv_req_defer(r, op, finish_remove, op, free);
	}
	char *json;
	size_t len;
	nd_error err;
	nd_error_clear(&err);
	int rc = srv_engine_record_json(s->eng, id, &json, &len, &err);
	if (rc == ND_ENOTFOUND)
		return srv_reply_error(r, 404, "no image with id %u", id);
	if (rc)
		return srv_reply_error(r, 500, "%s", err.msg[0] ? err.msg : nd_strerror(rc));
	return reply_json(r, 200, json, len);
}

/* GET /v1/duplicates */
static int h_duplicates(struct srv_req *r)
{
	struct srv *s = srv_req_srv(r);
	double min_sim = NAN; /* the collection's default */
	long page = 1, per = DEFAULT_PER_PAGE;
	const char *v;
	if ((v = srv_req_arg(r, "min_sim")) && parse_double(v, -CLI_MAX_MIN_SIM, CLI_MAX_MIN_SIM, &min_sim))
		return srv_reply_error(r, 400, "invalid min_sim '%s'", v);
	if ((v = srv_req_arg(r, "page")) && parse_long(v, 1, 1000000000, &page))
		return srv_reply_error(r, 400, "invalid page '%s' (from 1)", v);
	if ((v = srv_req_arg(r, "per_page")) && parse_long(v, 1, MAX_PER_PAGE, &per))
		return srv_reply_error(r, 400, "invalid per_page '%s' (1 to %d)", v, MAX_PER_PAGE);
	char *json;
	size_t len;
	nd_error err;
	nd_error_clear(&err);
	int rc = srv_engine_duplicates(s->eng, (float)min_sim, srv_writer_generation(s->w), (size_t)page,
				       (size_t)per, &json, &len, &err);
	if (rc)
		return srv_reply_error(r, 500, "%s", err.msg[0] ? err.msg : nd_strerror(rc));
	return reply_json(r, 200, json, len);
}

static int h_info(struct srv_req *r)
{
	struct srv *s = srv_req_srv(r);
	char extra[512];
	snprintf(extra, sizeof(extra),
		 "\"server\": {\"threads\": %d, \"max_body\": %zu, \"queue\": %d, \"timeout\": %g, "
		 "\"writes\": %s, \"allow_root\": %s}",
		 s->o.threads, s->o.max_body, s->o.queue, s->o.timeout, s->token ? "true" : "false",
		 s->root_real ? "true" : "false");
	char *json;
	size_t len;
	nd_error err;
	nd_error_clear(&err);
	int rc = srv_engine_info_json(s->eng, extra, &json, &len, &err);
	if (rc)
		return srv_reply_error(r, 500, "%s", err.msg[0] ? err.msg : nd_strerror(rc));
	return reply_json(r, 200, json, len);
}

static int h_healthz(struct srv_req *r)
{
	struct srv *s = srv_req_srv(r);
	char *buf = malloc(96);
	if (!buf)
		return srv_reply_error(r, 500, "out of memory");
	int n = snprintf(buf, 96, "{\"status\": \"ok\", \"images\": %llu}\n",
			 (unsigned long long)srv_engine_images(s->eng));
	return reply_json(r, 200, buf, (size_t)n);
}

static int h_metrics(struct srv_req *r)
{
	struct srv *s = srv_req_srv(r);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return srv_reply_error(r, 500, "out of memory");
	srv_metrics_write(f, srv_engine_images(s->eng), srv_writer_queued(s->w), atomic_load(&s->inflight));
	if (fclose(f) != 0) {
		free(buf);
		return srv_reply_error(r, 500, "out of memory");
	}
	return srv_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
}

int srv_api_handle(struct srv_req *r, enum srv_route route, const char *method)
{
	switch (route) {
	case ROUTE_QUERY: return h_query(r);
	case ROUTE_IMAGES: return h_images_post(r);
	case ROUTE_IMAGE: return h_image(r, method);
	case ROUTE_DUPLICATES: return h_duplicates(r);
	case ROUTE_INFO: return h_info(r);
	case ROUTE_HEALTHZ: return h_healthz(r);
	case ROUTE_METRICS: return h_metrics(r);
	default: return srv_reply_error(r, 404, "no such route");
	}
}
