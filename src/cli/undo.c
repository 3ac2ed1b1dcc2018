/* neardup undo — reverses the moves and trashes of the last dedup run, from
 * the journal (journal.h).
 *
 * The last run is the newest run of dedup actions in the journal. Each of
 * its moves and trashes is put back: the file at the destination must still
 * hash to the journaled hash; it is moved back with RENAME_NOREPLACE (never
 * over a file that took its place) by the same walks that follow no
 * symbolic link; a trashed file's .trashinfo is removed. Deletes and hard
 * links cannot be undone: each is named with the reason. Every undo is
 * journaled too (undo-move, undo-trash, naming the entry undone), so an
 * entry is never undone twice: running undo again retries only what failed.
 * Without --yes it is a dry run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dedup.h"
#include "journal.h"
#include "output.h"
#include "safe_fs.h"

static const char usage_text[] =
	"usage: neardup undo [--index DIR] [--yes]\n"
	"\n"
	"Reverses the moves and trashes of the last 'neardup dedup --action ... --yes'\n"
	"run, from the journal in the index directory: each file goes back to its path\n"
	"if its content is unchanged and nothing took its place. Says what cannot be\n"
	"undone (deletes, hard links) and why. Without --yes, a dry run.\n"
	"\n"
	"options:\n"
	"      --yes          carry it out; without it, print what would be done\n";

static int is_undo(const struct jentry *e)
{
	return !strncmp(e->action, "undo-", 5);
}

/* 1 when entry e of the journal has been undone (a done undo entry names it). */
static int undone(const struct jentry *v, size_t n, const struct jentry *e)
{
	for (size_t i = 0; i < n; i++)
		if (is_undo(&v[i]) && !strcmp(v[i].state, "done") && v[i].undoes_seq == e->seq &&
		    !strcmp(v[i].undoes, e->run))
			return 1;
	return 0;
}

static void log_line(const char *action, const char *path, const char *target)
{
	fputs(action, stdout);
	putc('\t', stdout);
	out_tsv_str(stdout, path);
	putc('\t', stdout);
	out_tsv_str(stdout, target);
	putc('\n', stdout);
}

static void cant(const struct jentry *e, const char *why)
{
	char what[48];
	snprintf(what, sizeof(what), "cannot undo the %s of", e->action);
	cli_err_path(what, e->source ? e->source : "?", why);
}

/* Puts e's file back (or checks that it could be, dry run). 0 when done,
 * 1 when there was nothing to undo, -1 when refused (reported). */
static int undo_one(const struct jentry *e, int yes, struct journal *j, int *journal_ok,
		    const char *index_dir, int *fatal)
{
	char why[SFS_WHY], w[SFS_WHY];
	struct sfs_file from, dir;
	int rc = -1;
	memset(&dir, 0, sizeof(dir));
	dir.fd = dir.dirfd = -1;
	if (!e->source || !e->dest || !e->has_hash || (!strcmp(e->action, "trash") && !e->info)) {
		cant(e, "the journal entry is incomplete");
		return -1;
	}
	if (sfs_open(e->dest, &from, why)) {
		char q[1024];
		struct stat st;
		if (!strcmp(e->state, "begin") && lstat(e->source, &st) == 0) {
			/* interrupted before the file was moved: nothing to undo */
			cli_err_path("nothing to undo for", e->source,
				     "the interrupted action left it in place");
			return 1;
		}
		snprintf(w, sizeof(w), "'%s' %.300s", cli_quote(e->dest, q, sizeof(q)), why);
		cant(e, w);
		return -1;
	}
	uint8_t h[16];
	uint64_t len;
	if (sfs_hash_fd(from.fd, h, &len, why))
		goto refused;
	if (memcmp(h, e->hash, 16)) {
		char q[1024];
		snprintf(why, sizeof(why), "'%s' has changed since it was %s (content differs)",
			 cli_quote(e->dest, q, sizeof(q)), !strcmp(e->action, "trash") ? "trashed" : "moved");
		goto refused;
	}
	const char *slash = strrchr(e->source, '/');
	char *parent = slash ? strndup(e->source, slash == e->source ? 1 : (size_t)(slash - e->source)) : NULL;
	if (!parent) {
		snprintf(why, sizeof(why), "not an absolute path");
		goto refused;
	}
	int prc = sfs_open_dir(parent, &dir, why);
	free(parent);
	if (prc)
		goto refused;
	struct stat st;
	if (fstatat(dir.dirfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		snprintf(why, sizeof(why), "another file now has its name (not overwritten)");
		goto refused;
	}
	if (!yes) {
		log_line("would restore", e->source, e->dest);
		rc = 0;
		goto done;
	}
	if (!*journal_ok) {
		if (journal_open(j, index_dir, why)) {
			cli_msg("%s; nothing is undone", why);
			*fatal = 1;
			goto done;
		}
		*journal_ok = 1;
	}
	struct jentry u;
	memset(&u, 0, sizeof(u));
	snprintf(u.action, sizeof(u.action), "undo-%.18s", e->action);
	u.source = e->dest;
	u.dest = e->source;
	u.info = e->info;
	u.size = len;
	memcpy(u.hash, e->hash, 16);
	u.has_hash = 1;
	snprintf(u.undoes, sizeof(u.undoes), "%s", e->run);
	u.undoes_seq = e->seq;
	if (journal_begin(j, &u, why)) {
		cli_msg("%s; nothing more is undone", why);
		*fatal = 1;
		goto done;
	}
	int r = sfs_move(&from, dir.dirfd, slash + 1, e->hash, why);
	if (journal_end(j, u.seq, r == 0, r ? why : NULL, w)) {
		cli_msg("%s; nothing more is undone", w);
		*fatal = 1;
	}
	if (r)
		goto refused;
	log_line("restored", e->source, e->dest);
	rc = 0;
	if (e->info) {
		struct sfs_file inf;
		if (sfs_open(e->info, &inf, why) == 0) {
			if (sfs_unlink(&inf, why))
				cli_err_path("cannot remove the trash's information file", e->info, why);
			sfs_close(&inf);
		} else {
			cli_err_path("cannot remove the trash's information file", e->info, why);
		}
	}
	goto done;
refused:
	cant(e, why);
done:
	sfs_close(&from);
	sfs_close(&dir);
	return rc;
}

int cmd_undo(int argc, char **argv)
{
	enum { O_YES = OPT_FIRST_PRIVATE };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "yes", no_argument, NULL, O_YES },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_common com;
	cli_common_init(&com);
	int yes = 0, opt;
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg))
			continue;
		if (opt == O_YES) {
			yes = 1;
		} else if (opt == 'h') {
			fputs(usage_text, stdout);
			fputs(cli_common_help, stdout);
			return EXIT_ALL_GOOD;
		} else {
			fputs(usage_text, stderr);
			return EXIT_FATAL;
		}
	}
	if (optind < argc) {
		cli_msg("undo takes no arguments");
		fputs(usage_text, stderr);
		return EXIT_FATAL;
	}
	struct jentry *v;
	size_t n, bad;
	char why[SFS_WHY], q[1024];
	if (journal_read(com.index_dir, &v, &n, &bad, why)) {
		cli_msg("%s in '%s'", why, cli_quote(com.index_dir, q, sizeof(q)));
		return EXIT_FATAL;
	}
	if (bad)
		cli_msg("warning: %zu lines of the journal could not be read (ignored)", bad);
	const char *run = NULL;
	for (size_t i = n; i-- > 0;)
		if (!is_undo(&v[i])) {
			run = v[i].run;
			break;
		}
	if (!run) {
		cli_msg("nothing to undo: no dedup action in the journal of '%s'",
			cli_quote(com.index_dir, q, sizeof(q)));
		journal_free(v, n);
		return EXIT_ALL_GOOD;
	}
	cli_install_signals();
	struct journal j = { .fd = -1 };
	int journal_ok = 0, fatal = 0, status = EXIT_ALL_GOOD;
	size_t restored = 0, left = 0, already = 0;
	uint64_t bytes = 0;
	/* newest first: a file moved twice goes back in reverse order */
	for (size_t i = n; i-- > 0 && !fatal && !cli_signal;) {
		const struct jentry *e = &v[i];
		if (strcmp(e->run, run) != 0)
			continue;
		if (!strcmp(e->state, "failed"))
			continue; /* nothing was done */
		if (undone(v, n, e)) {
			already++;
			continue;
		}
		if (!strcmp(e->action, "delete")) {
			cant(e, "deleted files cannot be restored (use --action trash to be able to)");
		} else if (!strcmp(e->action, "hardlink")) {
			char msg[1200];
			snprintf(msg, sizeof(msg), "it is now a hard link to '%s'%s",
				 cli_quote(e->keep ? e->keep : "?", q, sizeof(q)),
				 " (its own content was replaced)");
			cant(e, msg);
		} else if (!strcmp(e->action, "move") || !strcmp(e->action, "trash")) {
			int u = undo_one(e, yes, &j, &journal_ok, com.index_dir, &fatal);
			if (u == 0) {
				restored++;
				bytes += e->size;
			}
			if (u >= 0)
				continue;
		} else {
			cant(e, "unknown action in the journal");
		}
		left++;
		status = EXIT_SKIPPED;
	}
	if (journal_ok)
		journal_close(&j);
	if (fflush(stdout) != 0) {
		cli_msg("cannot write to standard output");
		fatal = 1;
	}
	if (!com.quiet) {
		if (already && !restored && !left)
			cli_msg("the last run (%s) is already undone", run);
		if (yes && restored)
			cli_msg("the restored files are not in the index: run 'neardup ingest' to add "
				"them again");
		char skipped[48] = "", size[32];
		if (left)
			snprintf(skipped, sizeof(skipped), ", skipped %zu", left);
		dd_human_size(size, sizeof(size), bytes);
		cli_msg("%s %zu file%s, %s%s", yes ? "restored" : "would restore", restored,
			restored == 1 ? "" : "s", size, skipped);
	}
	journal_free(v, n);
	if (cli_signal)
		return 128 + cli_signal;
	return fatal ? EXIT_FATAL : status;
}
