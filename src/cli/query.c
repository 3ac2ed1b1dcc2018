/* neardup query — the indexed images nearest to each query image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "output.h"

static const char usage_text[] =
	"usage: neardup query [--index DIR] [-k N] [--min-sim S] [--score normalized|raw]\n"
	"                     [--probes N] [--views LIST] [--format jsonl|tsv] IMAGE...\n"
	"\n"
	"Prints the indexed images most similar to each IMAGE, best first.\n"
	"IMAGE '-' reads query paths from standard input, one per line.\n"
	"similarity is the calibrated score: the cosine of the two embeddings minus\n"
	"how close each image is to the model's background set of unrelated images,\n"
	"so that one threshold means the same for plain and busy images.\n"
	"\n"
	"options:\n"
	"  -k N               results per query (default 10)\n"
	"      --min-sim S    only results with similarity >= S (default: no limit)\n"
	"      --score M      normalized (default): similarity is the calibrated score;\n"
	"                     raw: the plain cosine (ranking, --min-sim and output)\n"
	"      --probes N     LSH buckets probed beyond each table's own (default "
	CLI_DEFAULT_PROBES_STR ");\n"
	"                     more finds weaker matches (heavy crops, screenshots), slower\n"
	"      --views LIST   also search with these views of each IMAGE, comma-separated:\n"
	"                     rotations (90, 180, 270 degrees), crops (centre 75%, 50%),\n"
	"                     all (default: both) or none (the image as ingested only);\n"
	"                     each indexed image scores its best view\n"
	"      --format F     tsv (default): query<TAB>result<TAB>similarity per result;\n"
	"                     jsonl: {\"query\": P, \"results\": [{\"path\", \"id\", \"similarity\",\n"
	"                     \"raw_similarity\", \"view\"}]} per query (raw_similarity: the\n"
	"                     cosine; view: identity, rot90, rot180, rot270, crop75 or\n"
	"                     crop50, the view of IMAGE that matched; not with --views none)\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
	fputs(cli_common_help, f);
}

struct query_ctx {
	nd_collection *coll;
	nd_query_options qo;
	int jsonl;
	int failed;
};

static void run_one(struct query_ctx *q, const char *path)
{
	static const char *const what[] = {
		[ND_STAGE_NONE] = "cannot query", [ND_STAGE_READ] = "cannot read",
		[ND_STAGE_DECODE] = "cannot decode", [ND_STAGE_EMBED] = "cannot embed",
		[ND_STAGE_QUERY] = "cannot query the index for",
	};
	nd_matches ms;
	nd_error err;
	nd_error_clear(&err);
	int rc = nd_collection_query_file(q->coll, path, &q->qo, &ms, &err);
	if (rc) {
		cli_err_path(what[ms.failed], path, err.msg[0] ? err.msg : nd_strerror(rc));
		q->failed = 1;
		return;
	}
	if (q->jsonl) {
		fputs("{\"query\": ", stdout);
		out_json_str(stdout, path);
		fputs(", \"results\": [", stdout);
	}
	for (size_t i = 0; i < ms.n; i++) {
		const nd_match *mt = &ms.items[i];
		if (q->jsonl) {
			fputs(i ? ", {\"path\": " : "{\"path\": ", stdout);
			out_json_str(stdout, mt->path);
			printf(", \"id\": %u, \"similarity\": %.6f, \"raw_similarity\": %.6f", mt->id,
			       mt->similarity, mt->raw_similarity);
			if (q->qo.views != ND_VIEWS_NONE)
				printf(", \"view\": \"%s\"", nd_view_name(mt->view));
			putchar('}');
		} else {
			out_tsv_str(stdout, path);
			putchar('\t');
			out_tsv_str(stdout, mt->path);
			printf("\t%.6f\n", mt->similarity);
		}
	}
	if (q->jsonl)
		fputs("]}\n", stdout);
	fflush(stdout);
	nd_matches_free(&ms);
}

int cmd_query(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "min-sim", required_argument, NULL, 'S' },
		{ "format", required_argument, NULL, 'F' },
		{ "score", required_argument, NULL, 'R' },
		{ "probes", required_argument, NULL, 'P' },
		{ "views", required_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_common com;
	cli_common_init(&com);
	struct query_ctx q;
	memset(&q, 0, sizeof(q));
	nd_query_options_init(&q.qo);
	nd_error err;
	int opt;
	long v;
	double d;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "k:", longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg))
			continue;
		switch (opt) {
		case 'k':
			if (cli_parse_int("-k", optarg, 1, 100000, &v))
				return EXIT_FATAL;
			q.qo.k = (uint32_t)v;
			break;
		case 'S':
			if (cli_parse_float("--min-sim", optarg, -CLI_MAX_MIN_SIM, CLI_MAX_MIN_SIM, &d))
				return EXIT_FATAL;
			q.qo.min_sim = (float)d;
			break;
		case 'P':
			if (cli_parse_int("--probes", optarg, 0, 1000000, &v))
				return EXIT_FATAL;
			q.qo.probes = (uint32_t)v;
			break;
		case 'V':
			if (nd_views_parse(optarg, &q.qo.views, &err)) {
				cli_msg("%s in --views '%s' (rotations, crops, all, or none alone)", err.msg,
					optarg);
				return EXIT_FATAL;
			}
			break;
		case 'R':
			if ((q.qo.raw = cli_parse_score(optarg)) < 0)
				return EXIT_FATAL;
			break;
		case 'F':
			if (!strcmp(optarg, "jsonl"))
				q.jsonl = 1;
			else if (!strcmp(optarg, "tsv"))
				q.jsonl = 0;
			else {
				cli_msg("invalid value '%s' for --format (jsonl or tsv)", optarg);
				return EXIT_FATAL;
			}
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
		cli_msg("query: no IMAGE given");
		usage(stderr);
		return EXIT_FATAL;
	}
	nd_model *m = NULL;
	int status = cli_model_load(&com, &m);
	if (status)
		return status;
	if ((status = cli_collection_open(&com, 0, m, &q.coll)))
		goto done;
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "-") != 0) {
			run_one(&q, argv[i]);
			continue;
		}
		char *line = NULL;
		size_t cap = 0;
		ssize_t len;
		while ((len = getline(&line, &cap, stdin)) > 0) {
			if (line[len - 1] == '\n')
				line[--len] = 0;
			if (len > 0 && line[len - 1] == '\r')
				line[--len] = 0;
			if (len > 0)
				run_one(&q, line);
		}
		free(line);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_msg("cannot write the results: write error");
		status = EXIT_FATAL;
	} else {
		status = q.failed ? EXIT_SKIPPED : EXIT_ALL_GOOD;
	}
done:
	nd_collection_close(q.coll);
	nd_model_free(m);
	return status;
}
