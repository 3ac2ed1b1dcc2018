/* neardup serve — Prometheus metrics: counters and fixed-bucket histograms
 * in atomics, written out in the text exposition format on /metrics. */
#include <stdatomic.h>
#include <string.h>

#include "serve.h"

/* The status codes the service answers with, and 0 for a request that
 * ended without a reply (the client went away: "aborted"); anything else
 * counts as the last slot's "other". */
static const int codes[] = { 200, 201, 400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 500, 503, 0 };
#define N_CODES (sizeof(codes) / sizeof(codes[0]))
static const char *const methods[] = { "GET", "POST", "DELETE", "other" };
#define N_METHODS 4

static _Atomic uint64_t requests[ROUTE_COUNT][N_METHODS][N_CODES + 1];

#define MAX_BUCKETS 16
struct hist_def {
	const char *name, *help;
	int n;
	double le[MAX_BUCKETS];
};
static const struct hist_def hist_defs[HIST_COUNT] = {
	[HIST_DECODE] = { "neardup_decode_seconds", "Decoding and preparing a query image (all its views)", 12,
			  { .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5 } },
	[HIST_EMBED] = { "neardup_embed_seconds", "The CNN's forward pass for one query (all its views)", 12,
			 { .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5 } },
	[HIST_INDEX] = { "neardup_index_seconds", "Index lookup and scoring of one query", 12,
			 { .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1 } },
	[HIST_TOTAL] = { "neardup_request_seconds", "Whole request, from its first byte to its reply", 14,
			 { .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10 } },
	[HIST_BEST_SCORE] = { "neardup_query_best_similarity",
			      "Similarity of each query's best match (queries with a result)", 14,
			      { 0, .1, .2, .3, .4, .5, .6, .7, .8, .85, .9, .95, .99, 1 } },
};
struct hist {
	_Atomic uint64_t bucket[MAX_BUCKETS + 1]; /* the last: above every le */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_micro; /* sum of observations in millionths */
	_Atomic int64_t sum_neg_micro; /* negative observations (scores) */
};
static struct hist hists[HIST_COUNT];
static _Atomic uint64_t counters[CNT_COUNT];

static const struct {
	const char *name, *help;
} counter_defs[CNT_COUNT] = {
	[CNT_DECODE_FAILURES] = { "neardup_decode_failures_total", "Images the decoder refused (422)" },
	[CNT_IMAGES_ADDED] = { "neardup_images_added_total", "Images added to the index" },
	[CNT_IMAGES_EXISTING] = { "neardup_images_existing_total",
				  "Images posted that were indexed already (identical content)" },
	[CNT_IMAGES_REMOVED] = { "neardup_images_removed_total", "Images removed from the index" },
	[CNT_COMMITS] = { "neardup_commits_total", "Write transactions committed (group commits)" },
	[CNT_QUEUE_FULL] = { "neardup_queue_full_total", "Writes refused because the queue was full (429)" },
};

void srv_metrics_request(enum srv_route r, const char *method, int status)
{
	int m = N_METHODS - 1;
	for (int i = 0; i < N_METHODS - 1; i++)
		if (!strcmp(method, methods[i]))
			m = i;
	size_t c = N_CODES;
	for (size_t i = 0; i < N_CODES; i++)
		if (codes[i] == status)
			c = i;
	atomic_fetch_add(&requests[r][m][c], 1);
}

void srv_metrics_observe(enum srv_hist h, double v)
{
	const struct hist_def *d = &hist_defs[h];
	struct hist *s = &hists[h];
	int b = d->n;
	for (int i = 0; i < d->n; i++)
		if (v <= d->le[i]) {
			b = i;
			break;
		}
	atomic_fetch_add(&s->bucket[b], 1);
	atomic_fetch_add(&s->count, 1);
	if (v >= 0)
		atomic_fetch_add(&s->sum_micro, (uint64_t)(v * 1e6 + 0.5));
	else
		atomic_fetch_add(&s->sum_neg_micro, (int64_t)(-v * 1e6 + 0.5));
}

void srv_metrics_count(enum srv_counter c)
{
	atomic_fetch_add(&counters[c], 1);
}

void srv_metrics_write(FILE *f, uint64_t images, int queue_len, long inflight)
{
	fputs("# HELP neardup_http_requests_total HTTP requests by route, method and status\n"
	      "# TYPE neardup_http_requests_total counter\n", f);
	for (int r = 0; r < ROUTE_COUNT; r++)
		for (int m = 0; m < N_METHODS; m++)
			for (size_t c = 0; c <= N_CODES; c++) {
				uint64_t v = atomic_load(&requests[r][m][c]);
				if (!v)
					continue;
				char code[8];
				if (c < N_CODES && codes[c] == 0)
					snprintf(code, sizeof(code), "aborted");
				else if (c < N_CODES)
					snprintf(code, sizeof(code), "%d", codes[c]);
				else
					snprintf(code, sizeof(code), "other");
				fprintf(f, "neardup_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
					srv_route_name((enum srv_route)r), methods[m], code,
					(unsigned long long)v);
			}
	for (int h = 0; h < HIST_COUNT; h++) {
		const struct hist_def *d = &hist_defs[h];
		struct hist *s = &hists[h];
		fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", d->name, d->help, d->name);
		uint64_t cum = 0;
		for (int i = 0; i < d->n; i++) {
			cum += atomic_load(&s->bucket[i]);
			fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", d->name, d->le[i], (unsigned long long)cum);
		}
		cum += atomic_load(&s->bucket[d->n]);
		fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", d->name, (unsigned long long)cum);
		double sum = (double)atomic_load(&s->sum_micro) * 1e-6 -
			     (double)atomic_load(&s->sum_neg_micro) * 1e-6;
		fprintf(f, "%s_sum %.6f\n%s_count %llu\n", d->name, sum, d->name, (unsigned long long)cum);
	}
	for (int c = 0; c < CNT_COUNT; c++)
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counter_defs[c].name,
			counter_defs[c].help, counter_defs[c].name, counter_defs[c].name,
			(unsigned long long)atomic_load(&counters[c]));
	fprintf(f, "# HELP neardup_images Images in the index\n# TYPE neardup_images gauge\n"
		   "neardup_images %llu\n", (unsigned long long)images);
	fprintf(f, "# HELP neardup_write_queue Writes waiting for the writer\n# TYPE neardup_write_queue gauge\n"
		   "neardup_write_queue %d\n", queue_len);
	fprintf(f, "# HELP neardup_requests_in_flight Requests being served\n"
		   "# TYPE neardup_requests_in_flight gauge\nneardup_requests_in_flight %ld\n", inflight);
}
