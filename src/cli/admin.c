/* neardup stats | check | remove | backup — looking after the index. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "output.h"

/* Parses the common options only (plus extra for remove). Returns -1 to go
 * on, else an exit status. */
static int parse_simple(int argc, char **argv, struct cli_common *com, const char *usage_text,
			int *missing, int *list)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "missing", no_argument, NULL, 'm' },
		{ "list", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 }
	};
	cli_common_init(com);
	int opt;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (cli_common_opt(com, opt, optarg))
			continue;
		if (opt == 'm' && missing) {
			*missing = 1;
			continue;
		}
		if (opt == 'l' && list) {
			*list = 1;
			continue;
		}
		if (opt == 'h') {
			fputs(usage_text, stdout);
			fputs(cli_common_help, stdout);
			return EXIT_ALL_GOOD;
		}
		fputs(usage_text, stderr);
		fputs(cli_common_help, stderr);
		return EXIT_FATAL;
	}
	return -1;
}

static const char stats_usage[] =
	"usage: neardup stats [--index DIR] [--list]\n"
	"\n"
	"Shows the index's model, parameters, image count and sizes.\n\noptions:\n"
	"      --list         list the images instead: path, content hash and size, one a line\n";

/* stats --list: one line per image (path escaped as in TSV output) */
static int list_image(void *ctx, const nd_record *rec)
{
	out_tsv_str(stdout, rec->path);
	printf("\t");
	for (int i = 0; i < 16; i++)
		printf("%02x", rec->hash[i]);
	printf("\t%llu\n", (unsigned long long)rec->size);
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	struct cli_common com;
	int list = 0;
	int rc = parse_simple(argc, argv, &com, stats_usage, NULL, &list);
	if (rc >= 0)
		return rc;
	if (optind < argc) {
		cli_msg("stats: unexpected argument '%s'", argv[optind]);
		return EXIT_FATAL;
	}
	nd_index *ix;
	if ((rc = cli_index_open(&com, 0, NULL, &ix)))
		return rc;
	nd_index_stats st;
	nd_error err;
	if (list) {
		rc = nd_index_foreach(ix, list_image, NULL, &err);
		if (rc)
			cli_msg("cannot read the index: %s", err.msg);
		nd_index_close(ix);
		return rc ? EXIT_FATAL : EXIT_ALL_GOOD;
	}
	if ((rc = nd_index_stats_get(ix, &st, &err))) {
		if (rc == ND_ECORRUPT)
			cli_index_damaged(com.index_dir, &err);
		else
			cli_msg("cannot read the index's statistics: %s", err.msg);
		nd_index_close(ix);
		return EXIT_FATAL;
	}
	const nd_meta *m = &st.meta;
	printf("images\t%llu\n", (unsigned long long)m->n_images);
	if (nd_index_shards(ix))
		printf("shards\t%u\n", nd_index_shards(ix));
	printf("model\t");
	out_tsv_str(stdout, m->model_name);
	printf("\nmodel_checksum\t%016llx\n", (unsigned long long)m->model_checksum);
	printf("dim\t%u\n", m->dim);
	printf("vector_format\t%s\n", m->vec_format == ND_VEC_I8 ? "int8" : m->vec_format == ND_VEC_F16 ? "float16" : "unknown");
	/* yes: every stored vector carries its background statistic, so
	 * similarity is calibrated; no: the next command that opens the index
	 * with its model upgrades it */
	printf("calibrated\t%s\n", (m->flags & ND_META_VEC_STAT) ? "yes" : "no");
	printf("tables\t%u\nbits\t%u\n", m->tables, m->bits);
	printf("next_id\t%u\n", m->next_id);
	printf("postings\t%llu\nposting_blocks\t%llu\n", (unsigned long long)m->n_postings,
	       (unsigned long long)m->n_blocks);
	printf("bytes_per_posting\t%.2f\n", st.bytes_per_posting);
	printf("phash_postings_bytes\t%llu\n", (unsigned long long)st.phash_db_bytes);
	printf("file_bytes\t%llu\nmap_bytes\t%llu\n", (unsigned long long)st.file_bytes,
	       (unsigned long long)st.map_size);
	nd_index_close(ix);
	return EXIT_ALL_GOOD;
}

static const char check_usage[] =
	"usage: neardup check [--index DIR]\n"
	"\n"
	"Verifies the whole index: first every page of the LMDB file (read\n"
	"directly, so that damage is reported, not crashed on), then records,\n"
	"paths, hashes, vectors, posting lists, perceptual-hash postings and\n"
	"counters. Exit status 0 when it is consistent, 1 when problems were found\n"
	"(listed on standard output), 2 when the file is damaged (\"index 'DIR' is\n"
	"damaged: ...\") or cannot be read.\n\noptions:\n";

int cmd_check(int argc, char **argv)
{
	struct cli_common com;
	int rc = parse_simple(argc, argv, &com, check_usage, NULL, NULL);
	if (rc >= 0)
		return rc;
	if (optind < argc) {
		cli_msg("check: unexpected argument '%s'", argv[optind]);
		return EXIT_FATAL;
	}
	nd_index *ix;
	if ((rc = cli_index_open(&com, 0, NULL, &ix)))
		return rc;
	nd_check_report *rep = calloc(1, sizeof(*rep));
	nd_error err;
	int status;
	if (!rep) {
		cli_msg("out of memory");
		status = EXIT_FATAL;
	} else if ((rc = nd_index_check(ix, rep, &err))) {
		if (rc == ND_ECORRUPT)
			cli_index_damaged(com.index_dir, &err);
		else
			cli_msg("cannot check the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
		status = EXIT_FATAL;
	} else {
		for (uint64_t i = 0; i < rep->n_problems && i < ND_CHECK_MAX_PROBLEMS; i++)
			printf("problem: %s\n", rep->problems[i]);
		if (rep->n_problems > ND_CHECK_MAX_PROBLEMS)
			printf("... and %llu more problems\n",
			       (unsigned long long)(rep->n_problems - ND_CHECK_MAX_PROBLEMS));
		printf("%s: %llu images, %llu vectors, %llu postings in %llu blocks, %llu problems\n",
		       rep->n_problems ? "damaged" : "ok", (unsigned long long)rep->records,
		       (unsigned long long)rep->vectors, (unsigned long long)rep->postings,
		       (unsigned long long)rep->blocks, (unsigned long long)rep->n_problems);
		printf("lmdb: %llu pages sound, data.mdb %llu bytes\n", (unsigned long long)rep->pages,
		       (unsigned long long)rep->file_bytes);
		/* stale: an older writer changed the index; the next writer lists them again */
		printf("perceptual-hash postings: %s\n",
		       rep->phash_valid ? "current" : "stale (rebuilt by the next command that writes to the index)");
		if (rep->inode_valid)
			printf("file identities: current (%llu)\n", (unsigned long long)rep->inode_entries);
		else
			printf("file identities: stale (rebuilt by the next command that writes to the index)\n");
		status = rep->n_problems ? EXIT_SKIPPED : EXIT_ALL_GOOD;
	}
	free(rep);
	nd_index_close(ix);
	return status;
}

static const char remove_usage[] =
	"usage: neardup remove [--index DIR] [--missing] PATH...\n"
	"\n"
	"Removes images from the index (the files are not touched). A PATH that is\n"
	"not itself indexed removes every indexed image under it (a directory, as\n"
	"spelled when it was ingested).\n"
	"\n"
	"options:\n"
	"      --missing      also remove every image whose file no longer exists\n";

int cmd_remove(int argc, char **argv)
{
	struct cli_common com;
	int missing = 0;
	int rc = parse_simple(argc, argv, &com, remove_usage, &missing, NULL);
	if (rc >= 0)
		return rc;
	if (optind >= argc && !missing) {
		cli_msg("remove: no PATH given");
		fputs(remove_usage, stderr);
		return EXIT_FATAL;
	}
	nd_index *ix;
	/* no model: removing needs none, and the index knows its own */
	if ((rc = cli_index_open(&com, 1, NULL, &ix)))
		return rc;
	size_t np = (size_t)(argc - optind);
	const char *const *paths = (const char *const *)argv + optind;
	unsigned char *unmatched = calloc(np + 1, 1);
	int status = EXIT_ALL_GOOD;
	nd_error err;
	size_t removed = 0;
	if (!unmatched) {
		cli_msg("out of memory");
		status = EXIT_FATAL;
	} else if ((rc = nd_index_remove_paths(ix, paths, np, missing, &removed, unmatched, &err))) {
		if (rc == ND_ECORRUPT)
			cli_index_damaged(com.index_dir, &err);
		else
			cli_msg("cannot remove from the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
		status = EXIT_FATAL;
	} else {
		for (size_t i = 0; i < np; i++)
			if (unmatched[i]) {
				cli_err_path("cannot remove", paths[i], "not in the index");
				status = EXIT_SKIPPED;
			}
		if (!com.quiet)
			cli_msg("removed %zu images from the index", removed);
	}
	free(unmatched);
	nd_index_close(ix);
	return status;
}

static const char backup_usage[] =
	"usage: neardup backup [--index DIR] DEST\n"
	"\n"
	"Writes a compacted copy of the index into directory DEST (created when\n"
	"missing; it must not hold an index yet). Other commands may go on reading\n"
	"and writing meanwhile: the copy is one consistent snapshot. The index is\n"
	"verified first and the copy is checked after.\n\noptions:\n";

int cmd_backup(int argc, char **argv)
{
	struct cli_common com;
	int rc = parse_simple(argc, argv, &com, backup_usage, NULL, NULL);
	if (rc >= 0)
		return rc;
	if (optind + 1 != argc) {
		cli_msg(optind >= argc ? "backup: no DEST given" : "backup: unexpected argument '%s'",
			argv[argc - 1]);
		fputs(backup_usage, stderr);
		return EXIT_FATAL;
	}
	const char *dest = argv[optind];
	char q[1024];
	nd_index *ix, *cp = NULL;
	nd_error err;
	nd_error_clear(&err);
	if ((rc = cli_index_open(&com, 0, NULL, &ix)))
		return rc;
	int status = EXIT_FATAL;
	nd_check_report *rep = calloc(1, sizeof(*rep));
	if (!rep) {
		cli_msg("out of memory");
		goto done;
	}
	if ((rc = nd_index_backup(ix, dest, &err))) {
		if (rc == ND_ECORRUPT)
			cli_index_damaged(com.index_dir, &err);
		else
			cli_msg("cannot back up the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
		goto done;
	}
	/* the copy must stand on its own: open and check it like any index */
	cli_quote(dest, q, sizeof(q));
	nd_index_options o;
	nd_index_options_init(&o);
	o.readonly = 1;
	if ((rc = nd_index_open(&cp, dest, &o, &err)) || (rc = nd_index_check(cp, rep, &err))) {
		cli_msg("the copy in '%s' cannot be checked: %s", q, err.msg[0] ? err.msg : nd_strerror(rc));
		goto done;
	}
	if (rep->n_problems) {
		cli_msg("the copy in '%s' has %llu problems (first: %s)", q, (unsigned long long)rep->n_problems,
			rep->problems[0]);
		goto done;
	}
	if (!com.quiet)
		cli_msg("backed up %llu images to '%s' (%llu bytes); the copy checks ok",
			(unsigned long long)rep->records, q, (unsigned long long)rep->file_bytes);
	status = EXIT_ALL_GOOD;
done:
	free(rep);
	nd_index_close(cp);
	nd_index_close(ix);
	return status;
}
