/* neardup serve — what the service's files share.
 *
 *   serve.c          options, start, signals, drain
 *   serve_http.c     libmicrohttpd: requests, bodies and their limits, auth,
 *                    routing, responses, the access log
 *   serve_api.c      one function per route
 *   serve_engine.c   the collection behind the routes (query, add, remove,
 *                    records, duplicates): the one place that calls the library
 *   serve_writer.c   the writer thread: every change to the index, group commit
 *   serve_metrics.c  Prometheus counters and histograms
 *   serve_fs.c       reading a server-side file under --allow-root
 *
 * Threads: libmicrohttpd's pool (--threads) runs the requests; queries run
 * there in parallel. Only the writer thread writes to the index: it takes
 * every change queued, and adds the new images in one call of the
 * collection (decoded and embedded on --threads threads). */
#ifndef NEARDUP_CLI_SERVE_H
#define NEARDUP_CLI_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cli.h"
#include "neardup/index.h"

struct srv_engine;
struct srv_writer;

struct srv_opts {
	const char *listen;     /* ADDR:PORT (default 127.0.0.1:8080; port 0: any free one) */
	const char *token_file; /* bearer token for writes (all requests off loopback) */
	int token_all;          /* every request needs the token, also on loopback */
	const char *allow_root; /* server-side paths must lie under it; NULL: none allowed */
	const char *access_log; /* JSON lines; NULL: stderr; "-": stdout */
	int threads;            /* request threads (queries run in parallel on them) */
	size_t max_body;        /* bytes; a larger body is refused (413) */
	int queue;              /* writes waiting for the writer; more: 429 */
	double timeout;         /* seconds to receive a request's body (408) */
};

/* The running service. */
/* ---- serve_route.c: the routes ---- */
enum srv_route {
	ROUTE_QUERY,
	ROUTE_IMAGES,       /* POST /v1/images */
	ROUTE_IMAGE,        /* GET, DELETE /v1/images/{id} */
	ROUTE_DUPLICATES,
	ROUTE_INFO,
	ROUTE_HEALTHZ,
	ROUTE_METRICS,
	ROUTE_UNKNOWN,
	ROUTE_COUNT
};
/* The route template of a URL path ("/v1/images/{id}"), and its name. */
enum srv_route srv_route_of(const char *url, const char **param);
const char *srv_route_name(enum srv_route r);
/* 1 when the method changes the index (needs the token). */
int srv_route_writes(enum srv_route r, const char *method);
/* 1 when the method is one the route serves. */
int srv_route_allows(enum srv_route r, const char *method);

struct srv_req; /* one request: its body, fields and reply */

struct srv {
	struct srv_opts o;
	char *token;            /* NULL: no --token-file (writes refused) */
	size_t token_len;
	int loopback;           /* bound to a loopback address */
	char *root_real;        /* realpath of --allow-root, or NULL */
	struct srv_engine *eng;
	struct srv_writer *w;
	FILE *alog;
	_Atomic int draining;   /* SIGTERM received */
	_Atomic long inflight;  /* requests begun and not completed */
	/* the route handler the HTTP layer calls (serve.c sets srv_api_handle:
	 * the HTTP layer stays below the handlers that reply through it) */
	int (*handle)(struct srv_req *r, enum srv_route route, const char *method);
};

/* ---- serve_http.c ---- */
struct srv_req; /* one request: its body, fields and reply */
struct srv_wop;

/* Starts libmicrohttpd on s->o.listen; *port receives the bound port.
 * Returns 0, or -1 with a message in why. */
int srv_http_start(struct srv *s, void **daemon, unsigned *port, char *why, size_t whycap);
/* Stops accepting connections (the ones open go on). */
void srv_http_quiesce(void *daemon);
void srv_http_stop(void *daemon);

/* What a route handler reads of its request. */
const char *srv_req_arg(struct srv_req *r, const char *key);   /* query string or form field */
const char *srv_req_header(struct srv_req *r, const char *key);
const uint8_t *srv_req_body(struct srv_req *r, size_t *len);    /* the image bytes or JSON */
int srv_req_is_json(struct srv_req *r);    /* Content-Type application/json */
int srv_req_is_binary(struct srv_req *r);  /* image/..., application/octet-stream or a
					    * multipart file field */
const char *srv_req_path_param(struct srv_req *r); /* {id} of /v1/images/{id} */
struct srv *srv_req_srv(struct srv_req *r);

/* A write: suspends the request (freeing its thread), queues op for the
 * writer, and when the writer is done (or refused it: op->refused) calls
 * finish(r, state) on a request thread to reply. free_state(state) runs when
 * the request ends. Returns 0. */
typedef int (*srv_finish_fn)(struct srv_req *r, void *state);
int srv_req_defer(struct srv_req *r, struct srv_wop *op, srv_finish_fn finish, void *state,
		  void (*free_state)(void *state));

/* Replies: body is taken over (malloc'd, freed by the library). */
int srv_reply(struct srv_req *r, int status, const char *ctype, char *body, size_t len);
/* {"error": {"code": status, "message": msg}} */
int srv_reply_error(struct srv_req *r, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Adds a header to the reply queued next. */
void srv_req_add_header(struct srv_req *r, const char *name, const char *value);
/* Seconds since the request began. */
double srv_req_elapsed(struct srv_req *r);

/* ---- serve_api.c: the handlers ---- */
int srv_api_handle(struct srv_req *r, enum srv_route route, const char *method);

/* ---- serve_writer.c ---- */
struct srv_add;
enum srv_wop_kind { WOP_ADD, WOP_REMOVE };
/* One change for the writer. The submitter owns it and waits for done. */
struct srv_wop {
	enum srv_wop_kind kind;
	struct srv_add *add;    /* WOP_ADD: the image and, once done, its result (serve_engine.h) */
	uint32_t id;            /* WOP_REMOVE: the id */
	/* set by the writer */
	int done;
	int rc;                 /* WOP_REMOVE: 0 or ND_E* (msg says why) */
	int found;              /* WOP_REMOVE: the id was indexed (and is removed) */
	char msg[ND_ERRMSG_MAX];
	int refused;            /* srv_writer_submit's refusal (-1 full, -2 stopping), or 0 */
	/* called by the writer once done is set (the op may be freed right
	 * after): resumes the suspended request */
	void (*notify)(void *ctx);
	void *notify_ctx;
	struct srv_wop *next;
};
/* Starts the writer thread over the engine's index, with room for queue
 * waiting changes. Returns 0 or ND_ENOMEM. */
int srv_writer_start(struct srv_writer **out, struct srv_engine *e, int queue);
/* Queues op: 0, -1 when the queue is full (429), -2 when stopping (503). */
int srv_writer_submit(struct srv_writer *w, struct srv_wop *op);
int srv_writer_queued(struct srv_writer *w);
/* Changes with every commit. */
uint64_t srv_writer_generation(struct srv_writer *w);
/* Commits what is queued, then ends the thread. */
void srv_writer_stop(struct srv_writer *w);

/* ---- serve_metrics.c ---- */
enum srv_hist { HIST_DECODE, HIST_EMBED, HIST_INDEX, HIST_TOTAL, HIST_BEST_SCORE, HIST_COUNT };
enum srv_counter { CNT_DECODE_FAILURES, CNT_IMAGES_ADDED, CNT_IMAGES_EXISTING, CNT_IMAGES_REMOVED,
		   CNT_COMMITS, CNT_QUEUE_FULL, CNT_COUNT };
void srv_metrics_request(enum srv_route r, const char *method, int status);
void srv_metrics_observe(enum srv_hist h, double v);
void srv_metrics_count(enum srv_counter c);
/* The exposition text (Prometheus 0.0.4) into f; images: the index's count. */
void srv_metrics_write(FILE *f, uint64_t images, int queue_len, long inflight);

/* ---- serve_fs.c ---- */
/* Reads the regular file at path (absolute, or relative to root_real) into
 * memory if it lies under root_real: no '..' component, no symbolic link
 * anywhere on the way (an openat walk with O_NOFOLLOW), at most max bytes.
 * *abs receives the absolute path (malloc'd), *st its fstat. Returns 0; -1
 * with why (403-worthy: outside the root or a link), -2 with why (no such
 * file, not a regular file, too large, a read error). */
int srv_fs_read(const char *root_real, const char *path, size_t max, uint8_t **data, size_t *len,
		char **abs, struct stat *st, char *why, size_t whycap);

#endif
