/* neardup CLI — common options, model and index lookup, signals. */
#include "cli.h"
#include "neardup/calib.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "output.h"

const char cli_common_help[] =
	"      --index DIR    the index directory (default $NEARDUP_INDEX, else ./neardup.db)\n"
	"      --model FILE   the embedding model (default $NEARDUP_MODEL, else the shipped model)\n"
	"  -q, --quiet        no progress output\n"
	"  -h, --help         show this help\n";

void cli_common_init(struct cli_common *c)
{
	const char *env = getenv("NEARDUP_INDEX");
	c->index_dir = env && *env ? env : "neardup.db";
	c->model_path = NULL;
	c->quiet = 0;
	c->shards = 0;
}

int cli_common_opt(struct cli_common *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_INDEX:
		c->index_dir = arg;
		return 1;
	case OPT_MODEL:
		c->model_path = arg;
		return 1;
	case 'q':
		c->quiet = 1;
		return 1;
	}
	return 0;
}

int cli_parse_int(const char *name, const char *arg, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < lo || v > hi) {
		cli_msg("invalid value '%s' for %s (an integer from %ld to %ld)", arg, name, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

int cli_parse_float(const char *name, const char *arg, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(v) || v < lo || v > hi) {
		cli_msg("invalid value '%s' for %s (a number from %g to %g)", arg, name, lo, hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* ---- model lookup ---- */

int cli_model_load(const struct cli_common *c, nd_model **m)
{
	char found[PATH_MAX + 64];
	nd_error err;
	const char *path = c->model_path;
	if (!path) {
		if (nd_model_find(found, sizeof(found), &err)) {
			cli_msg("%s; give one with --model FILE or $NEARDUP_MODEL", err.msg);
			return EXIT_FATAL;
		}
		path = found;
	}
	int rc = nd_model_load(path, m, &err);
	if (rc) {
		/* the loader's message names the file */
		cli_msg("cannot load model: %s", err.msg[0] ? err.msg : nd_strerror(rc));
		return EXIT_FATAL;
	}
	return 0;
}

/* The calibration of the process's model (one model per process), made on
 * the first cli_index_open with a calibrated model; it must outlive every
 * index handle using it, so it lives until the process ends. */
static nd_calib *cli_calib;

int cli_calibration(const nd_model *m, nd_model_calib *p)
{
	if (!cli_calib) {
		nd_error err;
		nd_error_clear(&err);
		int rc = nd_calib_create(m, &cli_calib, &err);
		if (rc == ND_ENOTFOUND) {
			if (p)
				memset(p, 0, sizeof(*p));
			return 0;
		}
		if (rc) {
			cli_msg("cannot set up the calibrated similarity: %s", err.msg[0] ? err.msg : nd_strerror(rc));
			return -1;
		}
	}
	if (p)
		nd_calib_params(cli_calib, p);
	return 1;
}

void (*cli_index_options_hook)(nd_index_options *o, int write);
int (*cli_take_hook)(void *ctx, const char *path, uint64_t dev, uint64_t ino);

int cli_index_open(const struct cli_common *c, int write, const nd_model *m, nd_index **out)
{
	nd_index_options o;
	nd_index_options_init(&o);
	nd_model_info mi;
	uint64_t upgraded = 0;
	char q[1024];
	cli_quote(c->index_dir, q, sizeof(q));
	if (m) {
		nd_model_get_info(m, &mi);
		o.model_name = mi.name;
		o.model_checksum = mi.checksum;
		o.dim = (uint32_t)mi.embed_dim;
		nd_model_calib cp;
		int cal = cli_calibration(m, &cp);
		if (cal < 0)
			return EXIT_FATAL;
		if (cal)
			o.calib = (nd_index_calib){ nd_calib_stat_fn, cli_calib, (uint32_t)nd_calib_dim(cli_calib),
						    cp.beta, cp.offset, cp.phash_weight, cp.phash_bits,
						    nd_score_model_find(mi.checksum) };
	}
	o.create = write && m; /* only ingest creates: it knows the dimension */
	o.readonly = !write;
	o.upgraded = &upgraded;
	if (cli_index_options_hook)
		cli_index_options_hook(&o, write);
	nd_error err;
	nd_error_clear(&err);
	int rc = nd_index_open(out, c->index_dir, &o, &err);
	if (rc == ND_EVERSION && !write && o.calib.stat) {
		/* an index from before calibrated similarity: add the statistic
		 * once (one write transaction), then open it for reading */
		nd_index *w = NULL;
		nd_index_options ow = o;
		uint64_t up_w = 0;
		ow.readonly = 0;
		ow.create = 0;
		ow.upgraded = &up_w;
		nd_error_clear(&err);
		rc = nd_index_open(&w, c->index_dir, &ow, &err);
		nd_index_close(w);
		if (rc == 0) {
			nd_error_clear(&err);
			rc = nd_index_open(out, c->index_dir, &o, &err);
			upgraded = up_w;
		} else if (rc == ND_EBUSY) {
			cli_msg("index '%s' predates calibrated similarity and must be updated once, but "
				"another process is writing to it (%s); run this command again when it is done",
				q, err.msg);
			return EXIT_FATAL;
		}
	}
	if (rc == 0) {
		if (upgraded)
			cli_msg("index '%s' predates calibrated similarity: added the background statistic "
				"to its %llu images", q, (unsigned long long)upgraded);
		return 0;
	}
	if (rc == ND_ENOTFOUND)
		cli_msg("no index in '%s' (create one with 'neardup ingest PATH...')", q);
	else if (rc == ND_ECORRUPT)
		cli_index_damaged(c->index_dir, &err);
	else if (rc == ND_EMISMATCH)
		cli_msg("index '%s' was built with another model: %s", q, err.msg);
	else
		cli_msg("cannot open index '%s': %s", q, err.msg[0] ? err.msg : nd_strerror(rc));
	return EXIT_FATAL;
}

void cli_index_damaged(const char *index_dir, const nd_error *err)
{
	static const char lib_prefix[] = "the index is damaged: ";
	const char *m = err->msg[0] ? err->msg : nd_strerror(ND_ECORRUPT);
	char q[1024];
	if (!strncmp(m, "index '", 7)) {
		cli_msg("%s", m);
		return;
	}
	if (!strncmp(m, lib_prefix, sizeof(lib_prefix) - 1))
		m += sizeof(lib_prefix) - 1;
	cli_msg("index '%s' is damaged: %s", cli_quote(index_dir, q, sizeof(q)), m);
}

int cli_parse_score(const char *arg)
{
	if (!strcmp(arg, "normalized") || !strcmp(arg, "normalised"))
		return 0;
	if (!strcmp(arg, "raw"))
		return 1;
	cli_msg("invalid value '%s' for --score (normalized or raw)", arg);
	return -1;
}

/* ---- signals, time ---- */

volatile sig_atomic_t cli_signal;

static void on_signal(int sig)
{
	cli_signal = sig;
}

void cli_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}
