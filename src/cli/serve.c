/* neardup serve — an HTTP service over one index: options, start, and the
 * drain on SIGTERM (see serve.h for the files). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"
#include "serve_engine.h"

#define DEFAULT_LISTEN "127.0.0.1:8080"
#define DEFAULT_MAX_BODY ((size_t)32 << 20)
#define DEFAULT_QUEUE 256
#define DEFAULT_TIMEOUT 30.0
#define DRAIN_SECONDS 30.0 /* in-flight requests get this long after SIGTERM */

static const char usage_text[] =
	"usage: neardup serve [--index DIR] [--listen ADDR:PORT] [--token-file F]\n"
	"                     [--allow-root DIR] [--threads N] [--max-body B] [--queue N]\n"
	"                     [--timeout S] [--access-log FILE] [--token-all]\n"
	"\n"
	"Serves the index over HTTP/1.1: POST /v1/query, POST /v1/images,\n"
	"GET and DELETE /v1/images/{id}, GET /v1/duplicates, GET /v1/info,\n"
	"GET /healthz, GET /metrics (doc/openapi.yaml). SIGTERM finishes the\n"
	"requests in flight, commits, and exits 0.\n"
	"\n"
	"options:\n"
	"      --listen A:P   address and port (default " DEFAULT_LISTEN "; port 0: any free\n"
	"                     port, printed at start); an address that is not loopback\n"
	"                     needs --token-file, and then every request needs the token\n"
	"      --token-file F the bearer token (the file's first line); without it,\n"
	"                     writes (POST /v1/images, DELETE) are refused\n"
	"      --token-all    every request needs the token, also on loopback (behind\n"
	"                     a reverse proxy)\n"
	"      --allow-root D clients may name server-side files under D (no symbolic\n"
	"                     links, no '..'); without it, none\n"
	"      --threads N    request threads; queries run in parallel (default: CPUs)\n"
	"      --max-body B   largest request body in bytes (default 32 MiB; suffix k, M)\n"
	"      --queue N      writes waiting for the writer before 429 (default 256)\n"
	"      --timeout S    seconds to receive a request (default 30; then 408)\n"
	"      --access-log F JSON lines, one per request (default: standard error)\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
	fputs(cli_common_help, f);
}

static int parse_size(const char *arg, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(arg, &end, 10);
	if (errno || end == arg)
		return -1;
	unsigned long long mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1024 * 1024, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1024ull * 1024 * 1024, end++;
	if (*end || v == 0 || v > (1ull << 40) / mul)
		return -1;
	*out = (size_t)(v * mul);
	return 0;
}

/* The token: the file's first line, without its newline. */
static int read_token(const char *path, char **tok, size_t *len)
{
	char q[1024];
	FILE *f = fopen(path, "r");
	if (!f) {
		cli_msg("cannot read --token-file '%s': %s", cli_quote(path, q, sizeof(q)), strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	if (n < 16) {
		free(line);
		cli_msg("--token-file '%s' holds no token of 16 or more characters on its first line",
			cli_quote(path, q, sizeof(q)));
		return -1;
	}
	*tok = line;
	*len = (size_t)n;
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	enum { O_LISTEN = OPT_FIRST_PRIVATE, O_TOKEN, O_ROOT, O_THREADS, O_BODY, O_QUEUE, O_TIMEOUT,
	       O_LOG, O_TOKEN_ALL };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "token-file", required_argument, NULL, O_TOKEN },
		{ "allow-root", required_argument, NULL, O_ROOT },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "max-body", required_argument, NULL, O_BODY },
		{ "queue", required_argument, NULL, O_QUEUE },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "access-log", required_argument, NULL, O_LOG },
		{ "token-all", no_argument, NULL, O_TOKEN_ALL },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_common com;
	cli_common_init(&com);
	struct srv *s = calloc(1, sizeof(*s));
	if (!s) {
		cli_msg("out of memory");
		return EXIT_FATAL;
	}
	s->o = (struct srv_opts){ .listen = DEFAULT_LISTEN, .threads = cli_default_jobs(),
				  .max_body = DEFAULT_MAX_BODY, .queue = DEFAULT_QUEUE,
				  .timeout = DEFAULT_TIMEOUT };
	int status = EXIT_FATAL, opt;
	long v;
	double d;
	void *daemon = NULL;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg))
			continue;
		switch (opt) {
		case O_LISTEN: s->o.listen = optarg; break;
		case O_TOKEN: s->o.token_file = optarg; break;
		case O_ROOT: s->o.allow_root = optarg; break;
		case O_LOG: s->o.access_log = optarg; break;
		case O_TOKEN_ALL: s->o.token_all = 1; break;
		case O_THREADS:
			if (cli_parse_int("--threads", optarg, 1, 256, &v))
				goto done;
			s->o.threads = (int)v;
			break;
		case O_QUEUE:
			if (cli_parse_int("--queue", optarg, 1, 1000000, &v))
				goto done;
			s->o.queue = (int)v;
			break;
		case O_TIMEOUT:
			if (cli_parse_float("--timeout", optarg, 0.1, 86400, &d))
				goto done;
			s->o.timeout = d;
			break;
		case O_BODY:
			if (parse_size(optarg, &s->o.max_body)) {
				cli_msg("invalid value '%s' for --max-body (bytes, with k, M or G)", optarg);
				goto done;
			}
			break;
		case 'h':
			usage(stdout);
			status = EXIT_ALL_GOOD;
			goto done;
		default:
			usage(stderr);
			goto done;
		}
	}
	if (optind < argc) {
		cli_msg("serve: unexpected argument '%s'", argv[optind]);
		usage(stderr);
		goto done;
	}
	if (s->o.token_all && !s->o.token_file) {
		cli_msg("--token-all needs --token-file");
		goto done;
	}
	if (s->o.token_file && read_token(s->o.token_file, &s->token, &s->token_len))
		goto done;
	if (s->o.allow_root) {
		char q[1024];
		if (!(s->root_real = realpath(s->o.allow_root, NULL))) {
			cli_msg("cannot use --allow-root '%s': %s", cli_quote(s->o.allow_root, q, sizeof(q)),
				strerror(errno));
			goto done;
		}
	}
	if (!s->o.access_log) {
		s->alog = stderr;
	} else if (!strcmp(s->o.access_log, "-")) {
		s->alog = stdout;
	} else if (!(s->alog = fopen(s->o.access_log, "a"))) {
		char q[1024];
		cli_msg("cannot open --access-log '%s': %s", cli_quote(s->o.access_log, q, sizeof(q)),
			strerror(errno));
		goto done;
	}

	/* the signals are taken by sigwait below: block them in every thread */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if ((status = srv_engine_open(&s->eng, &com, s->o.threads)))
		goto done;
	status = EXIT_FATAL;
	if (srv_writer_start(&s->w, s->eng, s->o.queue)) {
		cli_msg("cannot start the writer thread");
		goto done;
	}
	char why[512];
	unsigned port = 0;
	s->handle = srv_api_handle;
	if (srv_http_start(s, &daemon, &port, why, sizeof(why))) {
		cli_msg("%s", why);
		goto done;
	}
	{
		char q[1024], host[80];
		const char *colon = strrchr(s->o.listen, ':');
		snprintf(host, sizeof(host), "%.*s", (int)(colon - s->o.listen), s->o.listen);
		cli_msg("serving index '%s' on http://%s:%u/ (%d threads%s%s)",
			cli_quote(com.index_dir, q, sizeof(q)), host, port, s->o.threads,
			s->token ? ", writes with the token" : ", read-only: no --token-file",
			s->loopback && !s->o.token_all ? "" : ", every request needs the token");
	}

	int sig = 0;
	sigdelset(&set, SIGPIPE);
	while (sigwait(&set, &sig) != 0)
		;
	/* drain: no new connections; requests in flight finish; then commit */
	atomic_store(&s->draining, 1);
	srv_http_quiesce(daemon);
	struct timespec ts = { 0, 10 * 1000000 };
	for (int i = 0; atomic_load(&s->inflight) > 0 && i < (int)(DRAIN_SECONDS * 100); i++)
		nanosleep(&ts, NULL);
	srv_http_stop(daemon);
	daemon = NULL;
	srv_writer_stop(s->w);
	s->w = NULL;
	cli_msg("stopped by signal %d after the requests in flight; index committed", sig);
	status = EXIT_ALL_GOOD;
done:
	srv_http_stop(daemon);
	srv_writer_stop(s->w);
	srv_engine_close(s->eng);
	if (s->alog && s->alog != stderr && s->alog != stdout)
		fclose(s->alog);
	free(s->root_real);
	free(s->token);
	free(s);
	return status;
}
