/* neardup query — the indexed images nearest to each query image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "embed.h"
#include "output.h"
#include "views.h"

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
	nd_index *ix;
	struct embedder e;
	nd_query_params qp;
	int jsonl;
	unsigned views;            /* view mask (VIEW_BIT) */
	nd_hit *hits;              /* [VIEW_COUNT][k] */
	struct view_hit *merged;   /* [VIEW_COUNT * k] */
	int failed;
	int calibrated; /* similarity is the calibrated score */
	int scored;     /* ... and that is the pair score: a byte-identical file scores 1 */
};

/* With the pair score, a stored file with the query's bytes is a copy for
 * certain: its score is 1 whatever the embeddings say, and it comes first. */
static void exact_first(struct query_ctx *q, const uint8_t hash[16], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		nd_record rec;
		char pbuf[ND_PATH_MAX + 1];
		if (!nd_index_get_record(q->ix, q->merged[i].hit.id, &rec, pbuf, sizeof(pbuf), NULL) &&
		    !memcmp(rec.hash, hash, 16))
			q->merged[i].hit.sim = 1.0f;
	}
	for (size_t i = 1; i < n; i++) /* stable: ties keep the index's order */
		for (size_t j = i; j > 0 && q->merged[j - 1].hit.sim < q->merged[j].hit.sim; j--) {
			struct view_hit t = q->merged[j];
			q->merged[j] = q->merged[j - 1];
			q->merged[j - 1] = t;
		}
}

static void run_one(struct query_ctx *q, const char *path)
{
	struct file_data fd;
	nd_error err;
	uint32_t w, h;
	if (file_read(path, 0, &fd, &err)) {
		cli_err_path("cannot read", path, err.msg);
		q->failed = 1;
		return;
	}
	q->e.n = 0;
	enum view slot_view[VIEW_COUNT];
	int rc = embedder_add_views(&q->e, fd.data, fd.len, q->views, slot_view, &w, &h, &err);
	uint8_t qhash[16];
	memcpy(qhash, fd.hash, sizeof(qhash));
	file_data_free(&fd);
	if (rc) {
		cli_err_path("cannot decode", path, err.msg);
		q->failed = 1;
		return;
	}
	if (embedder_run(&q->e, &err)) {
		cli_err_path("cannot embed", path, err.msg);
		q->failed = 1;
		return;
	}
	/* one query per view, each for k results: the merged top k is then
	 * exact over the union of what the views find */
	const nd_hit *lists[VIEW_COUNT];
	size_t counts[VIEW_COUNT];
	for (int v = 0; v < q->e.n; v++) {
		nd_hit *hits = q->hits + (size_t)v * q->qp.k;
		const float *vec = q->e.out + (size_t)v * q->e.info.embed_dim;
		/* the fused score compares the hash of the image as it is (the
		 * identity view); the pair score weighs every view's own hash, so
		 * that a turned view that matches better is not scored as if it
		 * had no hash */
		nd_query_params qp = q->qp;
		qp.has_phash = slot_view[v] == VIEW_IDENTITY || q->scored;
		qp.phash = q->e.phash[v];
		if ((rc = nd_index_query(q->ix, vec, &qp, hits, &counts[v], NULL, &err))) {
			cli_err_path("cannot query the index for", path,
				     err.msg[0] ? err.msg : nd_strerror(rc));
			q->failed = 1;
			return;
		}
		lists[v] = hits;
	}
	size_t n;
	if (q->e.n == 1) { /* identity only: the index's order as it is */
		for (n = 0; n < counts[0]; n++)
			q->merged[n] = (struct view_hit){ q->hits[n], VIEW_IDENTITY };
	} else {
		n = views_merge(lists, counts, slot_view, q->e.n, q->qp.k, q->merged);
	}
	if (q->scored)
		exact_first(q, qhash, n);
	if (q->jsonl) {
		fputs("{\"query\": ", stdout);
		out_json_str(stdout, path);
		fputs(", \"results\": [", stdout);
	}
	int shown = 0;
	for (size_t i = 0; i < n; i++) {
		const nd_hit *hit = &q->merged[i].hit;
		nd_record rec;
		char pbuf[ND_PATH_MAX + 1];
		if (nd_index_get_record(q->ix, hit->id, &rec, pbuf, sizeof(pbuf), NULL))
			continue; /* removed since the query ran: not a result */
		float raw = hit->raw > 1.0f ? 1.0f : hit->raw; /* int8 overshoot */
		float sim = q->calibrated ? hit->sim : raw;
		if (q->jsonl) {
			fputs(shown ? ", {\"path\": " : "{\"path\": ", stdout);
			out_json_str(stdout, pbuf);
			printf(", \"id\": %u, \"similarity\": %.6f, \"raw_similarity\": %.6f", hit->id,
			       sim, raw);
			if (q->views != VIEW_BIT(VIEW_IDENTITY))
				printf(", \"view\": \"%s\"", view_name(q->merged[i].view));
			putchar('}');
		} else {
			out_tsv_str(stdout, path);
			putchar('\t');
			out_tsv_str(stdout, pbuf);
			printf("\t%.6f\n", sim);
		}
		shown++;
	}
	if (q->jsonl)
		fputs("]}\n", stdout);
	fflush(stdout);
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
	nd_query_params_init(&q.qp);
	q.qp.k = 10;
	q.qp.probes = CLI_DEFAULT_PROBES;
	q.qp.min_sim = -INFINITY; /* all: a calibrated similarity can be below -1 */
	q.views = VIEWS_ALL;
	char bad[64];
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
			q.qp.k = (uint32_t)v;
			break;
		case 'S':
			if (cli_parse_float("--min-sim", optarg, -CLI_MAX_MIN_SIM, CLI_MAX_MIN_SIM, &d))
				return EXIT_FATAL;
			q.qp.min_sim = (float)d;
			break;
		case 'P':
			if (cli_parse_int("--probes", optarg, 0, 1000000, &v))
				return EXIT_FATAL;
			q.qp.probes = (uint32_t)v;
			break;
		case 'V':
			if (!(q.views = views_parse(optarg, bad, sizeof(bad)))) {
				cli_msg("invalid word '%s' in --views '%s' (rotations, crops, all, or "
					"none alone)", bad, optarg);
				return EXIT_FATAL;
			}
			break;
		case 'R':
			if ((q.qp.raw = cli_parse_score(optarg)) < 0)
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
	nd_error err;
	if ((status = cli_index_open(&com, 0, m, &q.ix)))
		goto done;
	q.calibrated = nd_index_calibrated(q.ix) && !q.qp.raw;
	q.scored = q.calibrated && nd_index_scored(q.ix);
	q.hits = calloc((size_t)q.qp.k * VIEW_COUNT, sizeof(*q.hits));
	q.merged = calloc((size_t)q.qp.k * VIEW_COUNT, sizeof(*q.merged));
	if (!q.hits || !q.merged) {
		cli_msg("out of memory");
		status = EXIT_FATAL;
		goto done;
	}
	if (embedder_init(&q.e, m, view_count(q.views), &err)) {
		cli_msg("cannot set up the CNN: %s", err.msg);
		status = EXIT_FATAL;
		goto done;
	}
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
	embedder_free(&q.e);
	free(q.hits);
	free(q.merged);
	nd_index_close(q.ix);
	nd_model_free(m);
	return status;
}
