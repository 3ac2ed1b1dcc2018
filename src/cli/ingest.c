/* neardup ingest — add image files and directories to the index. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "neardup/shard.h"
#include "pipeline.h"

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

static uint32_t ingest_shards;

static void shards_hook(nd_index_options *o, int write)
{
	if (write)
		o->shards = ingest_shards;
}

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
	struct ingest_opts o = { cli_default_jobs(), 0, 0 };
	int opt;
	long v;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "j:v", longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg))
			continue;
		switch (opt) {
		case 'j':
			if (cli_parse_int("-j", optarg, 1, 256, &v))
				return EXIT_FATAL;
			o.jobs = (int)v;
			break;
		case 'v':
			o.verbose = 1;
			break;
		case OPT_FIRST_PRIVATE:
			if (cli_parse_int("--shards", optarg, 1, ND_SHARDS_MAX, &v))
				return EXIT_FATAL;
			ingest_shards = (uint32_t)v;
			if (!cli_index_options_hook)
				cli_index_options_hook = shards_hook;
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
	o.quiet = com.quiet;
	nd_model *m = NULL;
	nd_index *ix = NULL;
	int status = cli_model_load(&com, &m);
	if (status)
		return status;
	status = cli_index_open(&com, 1, m, &ix);
	if (status)
		goto done;
	cli_install_signals();
	struct ingest_counts c;
	status = pipeline_ingest(ix, com.index_dir, m, argv + optind, argc - optind, &o, &c);
	if (c.signal)
		status = 128 + c.signal;
done:
	nd_index_close(ix);
	nd_model_free(m);
	return status;
}
