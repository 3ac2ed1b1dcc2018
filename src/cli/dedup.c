/* neardup dedup — near-duplicate groups (nd_collection_dedup, whose file
 * src/collection_dedup.c says how pairs are grouped) as a report, and the
 * actions on them (dedup_act.c, dedup_html.c). */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "dedup.h"
#include "neardup/keep.h"
#include "output.h"

static const char usage_text[] =
	"usage: neardup dedup [--index DIR] [--min-sim S] [--score normalized|raw]\n"
	"                     [--format jsonl|tsv|html]\n"
	"                     [--output FILE] [--keep RULE] [--protect DIR]...\n"
	"                     [--action report|trash|move|hardlink|delete] [--to DIR]\n"
	"                     [--hardlink-near] [--yes] [PATH...]\n"
	"\n"
	"Finds groups of near-duplicate images in the index (ingesting PATHs first when\n"
	"given) and reports them, one kept image per group. Groups join images that\n"
	"reach --min-sim of each other directly or through other copies, split where\n"
	"one weak pair joins two families.\n"
	"\n"
	"options:\n"
	"      --min-sim S    similarity threshold (default " CLI_DEFAULT_SCORE_MIN_SIM_STR " with the trained model's\n"
	"                     pair score, the probability that two images are copies of one\n"
	"                     source; else " CLI_DEFAULT_MIN_SIM_STR " on the calibrated similarity)\n"
	"      --score M      normalized (default): --min-sim and similarity use the\n"
	"                     calibrated score; raw: the plain cosine\n"
	"      --format F     tsv (default): one line per group, kept file first;\n"
	"                     jsonl: {\"group\", \"keep\", \"members\": [{\"path\", \"similarity\",\n"
	"                     \"raw_similarity\", \"exact\"}]} per group (raw_similarity: the\n"
	"                     cosine); html: a self-contained report\n"
	"  -o, --output FILE  write the report to FILE instead of standard output\n"
	"      --keep RULE    which copy to keep: original (default: the least edited:\n"
	"                     colour, camera EXIF, least compressed, most content and\n"
	"                     detail without added margins or noise, earliest capture,\n"
	"                     oldest file), resolution (most pixels), largest, smallest\n"
	"                     (file size), oldest, newest (mtime), first-path\n"
	"      --protect DIR  files under DIR are always kept and never touched (repeatable)\n"
	"      --action A     report (default), or for every member that is not kept:\n"
	"                     trash (into the desktop trash: recommended, undoable),\n"
	"                     move (into --to DIR, keeping its path; undoable),\n"
	"                     hardlink (replace a byte-identical copy by a hard link\n"
	"                     to the kept file), delete\n"
	"      --to DIR       destination of --action move\n"
	"      --hardlink-near  let hardlink also replace near-duplicates (their own\n"
	"                     content is lost; never across formats)\n"
	"      --yes          carry the action out; without it the action is a dry run\n"
	"                     that prints what it would do. Each action is written to\n"
	"                     the journal in the index directory first; 'neardup undo'\n"
	"                     reverses the last run's moves and trashes\n"
	"  -j, --jobs N       worker threads when ingesting PATHs\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
	fputs(cli_common_help, f);
}

/* the rules of neardup/keep.h */

/* --protect: as typed (trailing '/' stripped), for the library and the actions */
struct protect {
	char **given;
	char **real;   /* realpath, or NULL */
	int n;
};

static void free_result(struct dd_result *r)
{
	for (size_t i = 0; i < r->n_groups; i++) {
		free(r->groups[i].members);
		free(r->groups[i].sims);
		free(r->groups[i].raws);
	}
	free(r->groups);
	free(r->nodes); /* the paths are the library result's */
	memset(r, 0, sizeof(*r));
}

/* The library's groups as the report and the actions read them; the paths
 * are borrowed from lr. Returns 0 or -1 (out of memory). */
static int from_library(const nd_dedup_result *lr, struct dd_result *r)
{
	memset(r, 0, sizeof(*r));
	if (lr->n_images && !(r->nodes = calloc(lr->n_images, sizeof(*r->nodes))))
		return -1;
	r->n_nodes = lr->n_images;
	for (size_t i = 0; i < lr->n_images; i++) {
		const nd_dup_image *im = &lr->images[i];
		struct dd_node *nd = &r->nodes[i];
		nd->id = im->id;
		nd->width = im->width;
		nd->height = im->height;
		nd->size = im->size;
		nd->mtime_ns = im->mtime_ns;
		memcpy(nd->hash, im->hash, 16);
		nd->path = im->path;
		nd->protect = im->protect;
		nd->dev = im->dev;
		nd->ino = im->ino;
		nd->has_origin = im->has_origin;
		nd->origin = im->origin;
	}
	if (lr->n_groups && !(r->groups = calloc(lr->n_groups, sizeof(*r->groups))))
		return -1;
	for (size_t i = 0; i < lr->n_groups; i++) {
		const nd_dup_group *lg = &lr->groups[i];
		struct dd_group *g = &r->groups[i];
		r->n_groups++;
		g->members = malloc(lg->n * sizeof(*g->members));
		g->sims = malloc(lg->n * sizeof(*g->sims));
		g->raws = malloc(lg->n * sizeof(*g->raws));
		if (!g->members || !g->sims || !g->raws)
			return -1;
		g->n = lg->n;
		memcpy(g->reason, lg->reason, sizeof(g->reason));
		for (size_t k = 0; k < lg->n; k++) {
			g->members[k] = lg->members[k].image;
			g->sims[k] = lg->members[k].similarity;
			g->raws[k] = lg->members[k].raw_similarity;
		}
	}
	return 0;
}

/* Runs the grouping, printing its warnings; 0 or EXIT_FATAL (printed). */
static int build_groups(nd_collection *coll, float min_sim, int raw, nd_keep_rule rule,
			const struct protect *pr, nd_dedup_result **lr, struct dd_result *r)
{
	nd_dedup_options o;
	nd_dedup_options_init(&o);
	o.min_sim = min_sim;
	o.raw = raw;
	o.keep = rule;
	o.protect = (const char *const *)pr->given;
	o.nprotect = (size_t)pr->n;
	nd_error err;
	nd_error_clear(&err);
	int rc = nd_collection_dedup(coll, &o, lr, &err);
	if (rc == ND_ENOMEM) {
		cli_msg("out of memory while grouping");
		return EXIT_FATAL;
	}
	if (rc) {
		cli_msg("cannot read the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
		return EXIT_FATAL;
	}
	if ((*lr)->buckets_capped)
		cli_msg("warning: %llu LSH buckets with more than %u images were skipped (%llu pairs "
			"not compared)", (unsigned long long)(*lr)->buckets_capped, (*lr)->max_group,
			(unsigned long long)(*lr)->pairs_skipped);
	if ((*lr)->missing)
		cli_msg("%zu indexed files no longer exist and were left out; 'neardup remove --missing' "
			"drops them from the index", (*lr)->missing);
	if (from_library(*lr, r)) {
		cli_msg("out of memory while grouping");
		return EXIT_FATAL;
	}
	return 0;
}
/* ---- output ---- */

static void write_jsonl(FILE *f, const struct dd_result *r)
{
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct dd_group *g = &r->groups[i];
		fprintf(f, "{\"group\": %zu, \"keep\": ", i + 1);
		out_json_str(f, r->nodes[g->members[0]].path);
		fputs(", \"reason\": ", f);
		out_json_str(f, g->reason);
		fputs(", \"members\": [", f);
		for (size_t k = 0; k < g->n; k++) {
			fputs(k ? ", {\"path\": " : "{\"path\": ", f);
			out_json_str(f, r->nodes[g->members[k]].path);
			fprintf(f, ", \"similarity\": %.6f, \"raw_similarity\": %.6f, \"exact\": %s}",
				g->sims[k], g->raws[k], dd_exact(r, g, k) ? "true" : "false");
		}
		fputs("]}\n", f);
	}
}

static void write_tsv(FILE *f, const struct dd_result *r)
{
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct dd_group *g = &r->groups[i];
		for (size_t k = 0; k < g->n; k++) {
			if (k)
				putc('\t', f);
			out_tsv_str(f, r->nodes[g->members[k]].path);
		}
		putc('\n', f);
	}
}

/* Removes ids from the index, reopening it for writing if needed. */
static int forget(const struct cli_common *com, nd_collection **coll, int writable,
		  const uint32_t *ids, size_t n)
{
	nd_index *ix = writable ? nd_collection_index(*coll) : NULL, *own = NULL;
	if (!writable) {
		nd_collection_close(*coll);
		*coll = NULL;
		if (cli_index_open(com, 1, NULL, &own)) {
			cli_msg("the index still lists the files changed; run 'neardup remove --missing' "
				"and 'neardup ingest' again");
			return EXIT_SKIPPED;
		}
		ix = own;
	}
	nd_error err;
	int rc = nd_index_remove(ix, ids, n, NULL, &err);
	nd_index_close(own);
	if (rc) {
		cli_msg("cannot remove the changed files from the index: %s",
			err.msg[0] ? err.msg : nd_strerror(rc));
		return EXIT_SKIPPED;
	}
	return EXIT_ALL_GOOD;
}

int cmd_dedup(int argc, char **argv)
{
	enum { O_MINSIM = OPT_FIRST_PRIVATE, O_SCORE, O_FORMAT, O_KEEP, O_PROTECT, O_ACTION, O_TO, O_YES,
	       O_NEAR };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "min-sim", required_argument, NULL, O_MINSIM },
		{ "score", required_argument, NULL, O_SCORE },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "output", required_argument, NULL, 'o' },
		{ "keep", required_argument, NULL, O_KEEP },
		{ "protect", required_argument, NULL, O_PROTECT },
		{ "action", required_argument, NULL, O_ACTION },
		{ "to", required_argument, NULL, O_TO },
		{ "yes", no_argument, NULL, O_YES },
		{ "hardlink-near", no_argument, NULL, O_NEAR },
		{ "jobs", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_common com;
	cli_common_init(&com);
	float min_sim = CLI_DEFAULT_MIN_SIM;
	int min_sim_given = 0;
	int format = 0; /* 0 tsv, 1 jsonl, 2 html */
	const char *output = NULL, *to_dir = NULL;
	nd_keep_rule rule = ND_KEEP_ORIGINAL;
	enum dd_action action = DD_REPORT;
	int yes = 0, jobs = cli_default_jobs(), raw = 0, near = 0;
	struct protect pr = { 0 };
	int status = EXIT_FATAL;
	nd_model *m = NULL;
	nd_collection *coll = NULL;
	nd_dedup_result *lres = NULL;
	FILE *out = NULL;
	struct dd_result res = { 0 };
	int opt;
	long v;
	double d;

	pr.given = calloc((size_t)argc, sizeof(char *));
	pr.real = calloc((size_t)argc, sizeof(char *));
	if (!pr.given || !pr.real) {
		cli_msg("out of memory");
		goto done;
	}
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "o:j:", longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg))
			continue;
		switch (opt) {
		case O_MINSIM:
			if (cli_parse_float("--min-sim", optarg, -CLI_MAX_MIN_SIM, CLI_MAX_MIN_SIM, &d))
				goto done;
			min_sim = (float)d;
			min_sim_given = 1;
			break;
		case O_SCORE:
			if ((raw = cli_parse_score(optarg)) < 0)
				goto done;
			break;
		case O_FORMAT:
			if (!strcmp(optarg, "tsv"))
				format = 0;
			else if (!strcmp(optarg, "jsonl"))
				format = 1;
			else if (!strcmp(optarg, "html"))
				format = 2;
			else {
				cli_msg("invalid value '%s' for --format (jsonl, tsv or html)", optarg);
				goto done;
			}
			break;
		case 'o':
			output = optarg;
			break;
		case O_KEEP: {
			nd_keep_rule k;
			if (nd_keep_rule_parse(optarg, &k)) {
				cli_msg("invalid value '%s' for --keep (original, resolution, largest, "
					"smallest, oldest, newest or first-path)", optarg);
				goto done;
			}
			rule = k;
			break;
		}
		case O_PROTECT: {
			size_t l = strlen(optarg);
			while (l > 1 && optarg[l - 1] == '/')
				l--;
			pr.given[pr.n] = strndup(optarg, l);
			pr.real[pr.n] = realpath(optarg, NULL);
			if (!pr.given[pr.n]) {
				cli_msg("out of memory");
				goto done;
			}
			if (!pr.real[pr.n]) {
				char q[1024];
				cli_msg("cannot use --protect '%s': no such directory",
					cli_quote(optarg, q, sizeof(q)));
				pr.n++;
				goto done;
			}
			pr.n++;
			break;
		}
		case O_ACTION:
			if (dd_parse_action(optarg, 1, &action))
				goto done;
			break;
		case O_TO:
			to_dir = optarg;
			break;
		case O_YES:
			yes = 1;
			break;
		case O_NEAR:
			near = 1;
			break;
		case 'j':
			if (cli_parse_int("-j", optarg, 1, 256, &v))
				goto done;
			jobs = (int)v;
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
	if (action == DD_MOVE && !to_dir) {
		cli_msg("--action move needs --to DIR");
		goto done;
	}
	if (to_dir && action != DD_MOVE) {
		cli_msg("--to is only for --action move");
		goto done;
	}
	if (near && action != DD_HARDLINK) {
		cli_msg("--hardlink-near is only for --action hardlink");
		goto done;
	}
	if (yes && action == DD_REPORT) {
		cli_msg("--yes needs an --action other than report");
		goto done;
	}

	int ingest_status = EXIT_ALL_GOOD;
	char **paths = argv + optind;
	int npaths = argc - optind;
	/* the model: for ingesting, and for its calibration of the similarity */
	if ((status = cli_model_load(&com, &m)))
		goto done;
	if (npaths > 0) {
		if ((status = cli_collection_open(&com, 1, m, &coll)))
			goto done;
		cli_install_signals();
		int sig;
		ingest_status = cli_ingest(coll, paths, npaths, jobs, com.quiet, 0, &sig);
		if (sig) {
			status = 128 + sig;
			goto done;
		}
		if (ingest_status == EXIT_FATAL) {
			status = EXIT_FATAL;
			goto done;
		}
	} else if ((status = cli_collection_open(&com, 0, m, &coll))) {
		goto done;
	}
	status = EXIT_FATAL;
	if (!min_sim_given)
		min_sim = nd_collection_default_min_sim(coll, raw);

	if (build_groups(coll, min_sim, raw, rule, &pr, &lres, &res))
		goto done;

	if (output) {
		out = fopen(output, "w");
		if (!out) {
			char q[1024];
			cli_msg("cannot open '%s' for writing: %s", cli_quote(output, q, sizeof(q)),
				strerror(errno));
			goto done;
		}
	}
	/* with an action and no --output, stdout carries the action log */
	FILE *rep = out ? out : (action == DD_REPORT ? stdout : NULL);
	int write_failed = 0;
	if (rep) {
		struct dd_html_opts ho = { min_sim, raw, nd_keep_rule_name(rule), action,
					   com.index_dir, nd_collection_index(coll) };
		if (format == 1)
			write_jsonl(rep, &res);
		else if (format == 2)
			write_failed = dd_write_html(rep, &res, &ho) != 0;
		else
			write_tsv(rep, &res);
		if (fflush(rep) != 0 || ferror(rep))
			write_failed = 1;
	}
	if (out) {
		if (fclose(out) != 0)
			write_failed = 1;
		out = NULL;
	}
	if (write_failed) {
		cli_msg("cannot write the report: write error");
		goto done;
	}
	status = ingest_status;
	struct dd_totals totals = { 0 };
	if (action != DD_REPORT) {
		uint32_t *done_ids = malloc((res.n_nodes + 1) * sizeof(*done_ids));
		size_t n_done = 0;
		if (!done_ids) {
			cli_msg("out of memory");
			status = EXIT_FATAL;
			goto done;
		}
		if (yes)
			cli_install_signals(); /* Ctrl-C stops between two files */
		struct dd_act_opts ao = { action, to_dir, yes, near, paths, npaths, pr.given, pr.n,
					  com.index_dir };
		int s = dd_act(stdout, &res, &ao, done_ids, &n_done, &totals);
		if (s > status)
			status = s;
		if (fflush(stdout) != 0) {
			cli_msg("cannot write to standard output");
			status = EXIT_FATAL;
		}
		/* the files changed are no longer what the index describes: drop
		 * them (ingest adds hard-linked ones back as exact duplicates) */
		if (n_done > 0 && (s = forget(&com, &coll, npaths > 0, done_ids, n_done)) > status)
			status = s;
		free(done_ids);
		if (cli_signal)
			status = 128 + cli_signal;
	}
	if (!com.quiet) {
		size_t members = 0;
		for (size_t i = 0; i < res.n_groups; i++)
			members += res.groups[i].n - 1;
		cli_msg("%zu groups, %zu duplicates of a kept image (min-sim %.3f)", res.n_groups,
			members, min_sim);
		/* the totals line comes last */
		dd_print_totals(action, yes, &totals);
	}
done:
	if (out)
		fclose(out);
	free_result(&res);
	nd_dedup_result_free(lres);
	for (int i = 0; i < pr.n; i++) {
		free(pr.given[i]);
		free(pr.real[i]);
	}
	free(pr.given);
	free(pr.real);
	nd_collection_close(coll);
	nd_model_free(m);
	return status;
}
