/* neardup ingest — add image files and directories to the index; and the
 * collection opening and ingest run that ingest, query and dedup share. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "neardup/shard.h"
#include "term.h"

static const char usage_text[] =
	"usage: neardup ingest [--index DIR] [-j N] [options] PATH...\n"
	"\n"
	"Adds images (JPEG, PNG, WebP, HEIC, AVIF, GIF, TIFF, BMP, PNM) to the index:\n"
	"files named, and directories walked recursively (symbolic links inside them\n"
	"are not followed); other files inside directories are ignored. Files whose path,\n"
	"size and modification time are already indexed are skipped; byte-identical\n"
	"copies reuse the first one's embedding. Ctrl-C commits what is done; run the\n"
	"same command again to resume.\n"
	"\n"
	"options:\n"
	"  -j, --jobs N       worker threads (default: the number of online CPUs)\n"
	"  -v, --verbose      name every file ignored as not an image, and what it is\n"
	"      --shards N     create DIR as a collection of N shards (see neardup(1),\n"
	"                     SHARDED COLLECTIONS); under mpirun, neardup-mpi\n";

int cli_default_jobs(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static void usage(FILE *f)
{
	fputs(usage_text, f);
	fputs(cli_common_help, f);
}

static void index_options_hook(void *ctx, nd_index_options *o)
{
	cli_index_options_hook(o, *(const int *)ctx);
}

int cli_collection_open(const struct cli_common *c, int write, const nd_model *m, nd_collection **out)
{
	nd_collection_options o;
	nd_collection_options_init(&o);
	uint64_t upgraded = 0;
	char q[1024];
	cli_quote(c->index_dir, q, sizeof(q));
	o.model = m;
	o.create = write; /* only ingest creates: it knows the dimension */
	o.readonly = !write;
	o.upgraded = &upgraded;
	o.shards = write ? c->shards : 0;
	if (cli_index_options_hook) {
		o.index_options = index_options_hook;
		o.index_options_ctx = &write;
	}
	nd_error err;
	nd_error_clear(&err);
	int rc = nd_collection_open(out, c->index_dir, &o, &err);
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
	else if (rc == ND_EBUSY && !write)
		cli_msg("index '%s' %s; run this command again when it is done", q, err.msg);
	else if (!strncmp(err.msg, "cannot set up", 13))
		cli_msg("%s", err.msg);
	else
		cli_msg("cannot open index '%s': %s", q, err.msg[0] ? err.msg : nd_strerror(rc));
	return EXIT_FATAL;
}

/* ": 2 text, 1 video, 1 link or special file" for the summary line, or "" */
static void ignored_kinds(const nd_add_counts *c, char *buf, size_t n)
{
	size_t at = 0;
	buf[0] = 0;
	for (int k = 0; k <= ND_KIND_COUNT; k++) {
		unsigned long v = (unsigned long)(k < ND_KIND_COUNT ? c->not_image_kind[k] : c->ignored);
		const char *name = k < ND_KIND_COUNT ? nd_file_kind_name((nd_file_kind)k)
						     : "link or special file";
		if (v == 0 || at >= n)
			continue;
		int w = snprintf(buf + at, n - at, "%s %lu %s", at ? "," : ":", v, name);
		at += w > 0 ? (size_t)w : 0;
	}
}

static void on_event(void *ctx, const char *path, nd_add_event ev, const char *detail)
{
	const int *verbose = ctx;
	if (ev != ND_ADD_IGNORED || *verbose)
		cli_err_path(nd_add_event_text(ev), path, detail);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total, int total_final)
{
	progress_update((unsigned long)done, (unsigned long)total, total_final);
}

int cli_ingest(nd_collection *coll, char *const *paths, int npaths, int jobs, int quiet, int verbose,
	       int *signal)
{
	nd_add_options o;
	nd_add_options_init(&o);
	o.threads = jobs;
	o.on_event = on_event;
	o.on_progress = on_progress;
	o.ctx = &verbose;
	o.cancel = &cli_signal;
	o.take = cli_take_hook;
	nd_add_counts c;
	nd_error err;
	progress_start(quiet);
	int rc = nd_collection_add_paths(coll, (const char *const *)paths, (size_t)npaths, &o, &c, &err);
	progress_end();
	*signal = c.cancelled ? cli_signal : 0;
	if (rc)
		cli_msg("%s", err.msg[0] ? err.msg : nd_strerror(rc));
	if (!quiet && (rc == 0 || c.seconds > 0)) {
		double rate = c.seconds > 0 ? (c.embedded + c.exact) / c.seconds : 0;
		char same[96] = "", lost[96] = "", why[256];
		if (c.same_file)
			snprintf(same, sizeof(same), ", %llu already indexed under another name",
				 (unsigned long long)c.same_file);
		if (c.uncommitted)
			snprintf(lost, sizeof(lost), "; %llu read but not added: the index could not be written",
				 (unsigned long long)c.uncommitted);
		ignored_kinds(&c, why, sizeof(why));
		cli_msg("%llu files: %llu embedded, %llu exact duplicates, %llu unchanged%s, %llu failed, "
			"%llu ignored%s in %.1f s (%.1f images/s)%s%s",
			(unsigned long long)c.walked, (unsigned long long)c.embedded,
			(unsigned long long)c.exact, (unsigned long long)c.unchanged, same,
			(unsigned long long)c.failed, (unsigned long long)(c.not_image + c.ignored), why,
			c.seconds, rate, lost, c.cancelled ? "; interrupted, run again to resume" : "");
	}
	if (rc)
		return EXIT_FATAL;
	return c.failed ? EXIT_SKIPPED : EXIT_ALL_GOOD;
}

int cmd_ingest(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "jobs", required_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "shards", required_argument, NULL, OPT_FIRST_PRIVATE },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_common com;
	cli_common_init(&com);
	int jobs = cli_default_jobs(), verbose = 0;
	int opt;
	long v;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "j:v", longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg))
			continue;
		switch (opt) {
		case 'j':
			if (cli_parse_int("-j", optarg, 1, 256, &v))
				return EXIT_FATAL;
			jobs = (int)v;
			break;
		case 'v':
			verbose = 1;
			break;
		case OPT_FIRST_PRIVATE:
			if (cli_parse_int("--shards", optarg, 1, ND_SHARDS_MAX, &v))
				return EXIT_FATAL;
			com.shards = (uint32_t)v;
			break;
		case 'h':
			usage(stdout);
			return EXIT_ALL_GOOD;
		default:
			usage(stderr);
			return EXIT_FATAL;
		}
	}
	if (optind >= argc) {
		cli_msg("ingest: no PATH given");
		usage(stderr);
		return EXIT_FATAL;
	}
	nd_model *m = NULL;
	nd_collection *coll = NULL;
	int status = cli_model_load(&com, &m);
	if (status)
		return status;
	status = cli_collection_open(&com, 1, m, &coll);
	if (status)
		goto done;
	cli_install_signals();
	int sig;
	status = cli_ingest(coll, argv + optind, argc - optind, jobs, com.quiet, verbose, &sig);
	if (sig)
		status = 128 + sig;
done:
	nd_collection_close(coll);
	nd_model_free(m);
	return status;
}
