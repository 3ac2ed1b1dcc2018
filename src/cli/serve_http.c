/* neardup serve — the HTTP layer on libmicrohttpd: one struct srv_req per
 * request, its body gathered within --max-body and --timeout, the bearer
 * token checked before any body is read, multipart forms taken apart, the
 * reply queued, and one access-log line when the request is done.
 *
 * Nothing of a request's headers or body is logged: the access log has the
 * method, the route's template, status, sizes and time. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "output.h"
#include "serve.h"

#define MAX_FIELDS 8
#define MAX_FIELD_BYTES 4096
#define MAX_HEADERS 4

struct field {
	char *key;
	char *val;
	size_t len;
};

struct srv_req {
	struct srv *s;
	struct MHD_Connection *c;
	double start;
	enum srv_route route;
	char method[8];
	char param[32];           /* {id} */
	uint8_t *body;
	size_t len, cap;
	uint64_t bytes_in;
	int too_big, timed_out;
	int json, binary, multipart;
	struct MHD_PostProcessor *pp;
	struct field fields[MAX_FIELDS];
	int nfields;
	int replied;
	int status;
	size_t bytes_out;
	struct {
		char name[32];
		char value[64];
	} hdr[MAX_HEADERS];
	int nhdr;	/* a write waiting for the writer (srv_req_defer) */
	struct srv_wop *wop;
	srv_finish_fn finish;
	void *state;
	void (*free_state)(void *state);
};

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double srv_req_elapsed(struct srv_req *r)
{
	return mono() - r->start;
}

struct srv *srv_req_srv(struct srv_req *r)
{
	return r->s;
}

const char *srv_req_path_param(struct srv_req *r)
{
	return r->param;
}

const char *srv_req_header(struct srv_req *r, const char *key)
{
	return MHD_lookup_connection_value(r->c, MHD_HEADER_KIND, key);
}

const char *srv_req_arg(struct srv_req *r, const char *key)
{
	for (int i = 0; i < r->nfields; i++)
		if (!strcmp(r->fields[i].key, key))
			return r->fields[i].val;
	return MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, key);
}

const uint8_t *srv_req_body(struct srv_req *r, size_t *len)
{
	*len = r->len;
	return r->body;
}

int srv_req_is_json(struct srv_req *r)
{
	return r->json;
}

int srv_req_is_binary(struct srv_req *r)
{
	return r->binary;
}

void srv_req_add_header(struct srv_req *r, const char *name, const char *value)
{
	if (r->nhdr == MAX_HEADERS)
		return;
	snprintf(r->hdr[r->nhdr].name, sizeof(r->hdr[0].name), "%s", name);
	snprintf(r->hdr[r->nhdr].value, sizeof(r->hdr[0].value), "%s", value);
	r->nhdr++;
}

int srv_reply(struct srv_req *r, int status, const char *ctype, char *body, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return -1;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	for (int i = 0; i < r->nhdr; i++)
		MHD_add_response_header(resp, r->hdr[i].name, r->hdr[i].value);
	if (atomic_load(&r->s->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ok = MHD_queue_response(r->c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	r->replied = 1;
	r->status = status;
	r->bytes_out = len;
	return ok == MHD_YES ? 0 : -1;
}

int srv_reply_error(struct srv_req *r, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return -1;
	fprintf(f, "{\"error\": {\"code\": %d, \"message\": ", status);
	out_json_str(f, msg);
	fputs("}}\n", f);
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	return srv_reply(r, status, "application/json", buf, len);
}

static void resume(void *ctx)
{
	MHD_resume_connection(ctx);
}

int srv_req_defer(struct srv_req *r, struct srv_wop *op, srv_finish_fn finish, void *state,
		  void (*free_state)(void *state))
{
	r->wop = op;
	r->finish = finish;
	r->state = state;
	r->free_state = free_state;
	op->notify = resume;
	op->notify_ctx = r->c;
	/* suspended before the op is queued: the writer's resume never comes
	 * before the suspension */
	MHD_suspend_connection(r->c);
	op->refused = srv_writer_submit(r->s->w, op);
	if (op->refused)
		MHD_resume_connection(r->c);
	return 0;
}

/* ---- the access log ---- */

static void access_log(struct srv_req *r)
{
	struct srv *s = r->s;
	char remote[INET6_ADDRSTRLEN] = "-";
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, remote,
				  sizeof(remote));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
				  remote, sizeof(remote));
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	pthread_mutex_lock(&log_mu);
	fprintf(s->alog,
		"{\"time\": \"%s.%03ldZ\", \"remote\": \"%s\", \"method\": \"%s\", \"route\": \"%s\", "
		"\"status\": %d, \"bytes_in\": %llu, \"bytes_out\": %zu, \"ms\": %.3f}\n",
		when, ts.tv_nsec / 1000000, remote, r->method, srv_route_name(r->route), r->status,
		(unsigned long long)r->bytes_in, r->bytes_out, srv_req_elapsed(r) * 1e3);
	fflush(s->alog);
	pthread_mutex_unlock(&log_mu);
}

static void req_free(struct srv_req *r)
{
	if (r->free_state)
		r->free_state(r->state);
	if (r->pp)
		MHD_destroy_post_processor(r->pp);
	for (int i = 0; i < r->nfields; i++) {
		free(r->fields[i].key);
		free(r->fields[i].val);
	}
	free(r->body);
	free(r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct srv *s = cls;
	struct srv_req *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	srv_metrics_request(r->route, r->method, r->status);
	srv_metrics_observe(HIST_TOTAL, srv_req_elapsed(r));
	access_log(r);
	req_free(r);
	atomic_fetch_sub(&s->inflight, 1);
}

/* ---- bodies ---- */

static int body_append(struct srv_req *r, const void *data, size_t n)
{
	if (n > r->s->o.max_body - r->len) {
		r->too_big = 1;
		return -1;
	}
	if (r->len + n > r->cap) {
		size_t nc = r->cap ? r->cap : 64 * 1024;
		while (nc < r->len + n)
			nc *= 2;
		if (nc > r->s->o.max_body)
			nc = r->s->o.max_body;
		uint8_t *nb = realloc(r->body, nc);
		if (!nb) {
			r->too_big = 1;
			return -1;
		}
		r->body = nb;
		r->cap = nc;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return 0;
}

/* Multipart fields: a part with a file name (or named "image") is the
 * image; the others are small text fields. */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *filename, const char *content_type,
			       const char *transfer_encoding, const char *data, uint64_t off,
			       size_t size)
{
	struct srv_req *r = cls;
	if (filename || !strcmp(key, "image")) {
		r->binary = 1;
		return body_append(r, data, size) ? MHD_NO : MHD_YES;
	}
	struct field *f = NULL;
	for (int i = 0; i < r->nfields; i++)
		if (!strcmp(r->fields[i].key, key))
			f = &r->fields[i];
	if (!f) {
		if (r->nfields == MAX_FIELDS)
			return MHD_YES; /* ignored */
		f = &r->fields[r->nfields];
		if (!(f->key = strdup(key)) || !(f->val = calloc(1, 1))) {
			free(f->key);
			return MHD_NO;
		}
		f->len = 0;
		r->nfields++;
	}
	if (f->len + size > MAX_FIELD_BYTES)
		return MHD_NO;
	char *nv = realloc(f->val, f->len + size + 1);
	if (!nv)
		return MHD_NO;
	memcpy(nv + f->len, data, size);
	f->len += size;
	nv[f->len] = 0;
	f->val = nv;
	return MHD_YES;
}

/* The media type of a Content-Type value, without parameters, compared
 * case-insensitively. */
static int ctype_is(const char *ct, const char *want)
{
	size_t n = strlen(want);
	return ct && !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

/* Constant time in the token's length. */
static int token_ok(const struct srv *s, const char *auth)
{
	static const char pre[] = "Bearer ";
	if (!auth || strncasecmp(auth, pre, sizeof(pre) - 1))
		return 0;
	auth += sizeof(pre) - 1;
	size_t n = strlen(auth);
	unsigned diff = n != s->token_len;
	for (size_t i = 0; i < s->token_len; i++)
		diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < n ? auth[i] : 0);
	return diff == 0;
}

/* The checks made before any body is read; 0 when the request may go on
 * (else a reply is queued). */
static int admit(struct srv_req *r, const char *url)
{
	struct srv *s = r->s;
	const char *param = NULL;
	r->route = srv_route_of(url, &param);
	if (param)
		snprintf(r->param, sizeof(r->param), "%s", param);
	if (atomic_load(&s->draining))
		return srv_reply_error(r, 503, "the server is shutting down"), -1;
	int writes = srv_route_writes(r->route, r->method);
	if (!s->loopback || s->o.token_all || writes) {
		if (!s->token) /* only on loopback: a non-loopback address needs a token to start */
			return srv_reply_error(r, 403, "writes are disabled: start the server with "
						       "--token-file"), -1;
		if (!token_ok(s, srv_req_header(r, MHD_HTTP_HEADER_AUTHORIZATION))) {
			srv_req_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
			return srv_reply_error(r, 401, "missing or wrong bearer token"), -1;
		}
	}
	if (r->route == ROUTE_UNKNOWN)
		return srv_reply_error(r, 404, "no such route"), -1;
	if (!srv_route_allows(r->route, r->method)) {
		srv_req_add_header(r, MHD_HTTP_HEADER_ALLOW,
				   r->route == ROUTE_IMAGE ? "GET, DELETE"
				   : r->route == ROUTE_QUERY || r->route == ROUTE_IMAGES ? "POST"
											   : "GET");
		return srv_reply_error(r, 405, "method %s not allowed here", r->method), -1;
	}
	const char *cl = srv_req_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(cl, &end, 10);
		if (errno || *end || n > s->o.max_body)
			return srv_reply_error(r, 413, "the body is larger than %zu bytes", s->o.max_body),
			       -1;
	}
	if (strcmp(r->method, "POST") != 0)
		return 0;
	const char *ct = srv_req_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ctype_is(ct, "application/json")) {
		r->json = 1;
	} else if (ctype_is(ct, "multipart/form-data")) {
		r->multipart = 1;
		if (!(r->pp = MHD_create_post_processor(r->c, 64 * 1024, on_part, r)))
			return srv_reply_error(r, 400, "malformed multipart Content-Type"), -1;
	} else if (ct && (!strncasecmp(ct, "image/", 6) || ctype_is(ct, "application/octet-stream"))) {
		r->binary = 1;
	} else {
		return srv_reply_error(r, 415, "Content-Type must be image/*, application/octet-stream, "
					       "multipart/form-data or application/json"), -1;
	}
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct srv *s = cls;
	struct srv_req *r = *con_cls;
	if (!r) {
		if (!(r = calloc(1, sizeof(*r))))
			return MHD_NO;
		atomic_fetch_add(&s->inflight, 1);
		r->s = s;
		r->c = c;
		r->start = mono();
		r->route = ROUTE_UNKNOWN;
		snprintf(r->method, sizeof(r->method), "%s", method);
		*con_cls = r;
		admit(r, url);
		return MHD_YES;
	}
	if (r->finish && !r->replied) { /* resumed: the writer is done */
		srv_finish_fn fn = r->finish;
		r->finish = NULL;
		return fn(r, r->state) ? MHD_NO : MHD_YES;
	}
	if (r->replied) { /* refused before the body: drop what comes */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		r->bytes_in += n;
		*upload_data_size = 0;
		if (srv_req_elapsed(r) > s->o.timeout)
			r->timed_out = 1;
		if (r->timed_out || r->too_big)
			return MHD_YES; /* read and dropped; answered at the end */
		if (r->pp) {
			if (MHD_post_process(r->pp, upload_data, n) != MHD_YES && !r->too_big)
				return srv_reply_error(r, 400, "malformed multipart body"), MHD_YES;
		} else {
			body_append(r, upload_data, n);
		}
		return MHD_YES;
	}
	if (r->timed_out)
		return srv_reply_error(r, 408, "the request took longer than %g seconds to arrive",
				       s->o.timeout) ? MHD_NO : MHD_YES;
	if (r->too_big)
		return srv_reply_error(r, 413, "the body is larger than %zu bytes", s->o.max_body)
			       ? MHD_NO : MHD_YES;
	return r->s->handle(r, r->route, r->method) ? MHD_NO : MHD_YES;
}

/* ---- the daemon ---- */

/* Parses ADDR:PORT (IPv4, or [IPv6]:PORT) into ss. */
static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sl, int *loopback)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	size_t hl = strlen(host);
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		host[hl - 1] = 0;
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -1;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a);
		*loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return -1;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*sl = sizeof(*a);
	*loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

int srv_http_start(struct srv *s, void **daemon, unsigned *port, char *why, size_t whycap)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	*daemon = NULL;
	if (parse_listen(s->o.listen, &ss, &sl, &s->loopback)) {
		snprintf(why, whycap, "invalid --listen '%s' (ADDR:PORT, e.g. 127.0.0.1:8080)", s->o.listen);
		return -1;
	}
	if (!s->loopback && !s->token) {
		snprintf(why, whycap, "listening on '%s', which is not a loopback address, needs "
				      "--token-file", s->o.listen);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 256)) {
		snprintf(why, whycap, "cannot listen on '%s': %s", s->o.listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct sockaddr_storage got;
	socklen_t gl = sizeof(got);
	getsockname(fd, (struct sockaddr *)&got, &gl);
	*port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
						: ((struct sockaddr_in *)&got)->sin_port);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	unsigned idle = s->o.timeout < 1 ? 1 : (unsigned)(s->o.timeout + 0.999);
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, s, MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(s->o.threads > 1 ? s->o.threads : 0),
		MHD_OPTION_CONNECTION_TIMEOUT, idle, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_END);
	if (!d) {
		snprintf(why, whycap, "cannot start the HTTP server on '%s'", s->o.listen);
		close(fd);
		return -1;
	}
	*daemon = d;
	return 0;
}

void srv_http_quiesce(void *daemon)
{
	MHD_socket fd = MHD_quiesce_daemon(daemon);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

void srv_http_stop(void *daemon)
{
	if (daemon)
		MHD_stop_daemon(daemon);
}
