/* neardup — physical, sorted directory walk on top of fts(3). */
#include "walk.h"

#include <errno.h>
#include <fts.h>
#include <string.h>

static int by_name(const FTSENT **a, const FTSENT **b)
{
	return strcmp((*a)->fts_name, (*b)->fts_name);
}

static int walk_one(char *root, const struct walk_callbacks *cb, struct walk_stats *st)
{
	char *argv[2] = { root, NULL };
	/* FTS_PHYSICAL: never follow symlinks found inside directories;
	 * FTS_COMFOLLOW: but do follow a root the user named explicitly;
	 * FTS_NOCHDIR: paths stay valid for the callbacks and threads. */
	FTS *fts = fts_open(argv, FTS_PHYSICAL | FTS_COMFOLLOW | FTS_NOCHDIR, by_name);
	if (!fts)
		return -1;

	int rc = 0;
	FTSENT *e;
	for (;;) {
		errno = 0; /* fts_read returns NULL both at the end and on error */
		if (rc != 0 || (e = fts_read(fts)) == NULL)
			break;
		int is_root = e->fts_level == FTS_ROOTLEVEL;
		switch (e->fts_info) {
		case FTS_F:
			st->files++;
			rc = cb->on_file(e->fts_path, e->fts_statp, is_root, cb->ctx);
			break;
		case FTS_D:
		case FTS_DP:
		case FTS_DOT:
			break;
		case FTS_SL:
		case FTS_SLNONE:
			if (is_root) { /* a dangling symlink named on the command line */
				st->skipped++;
				cb->on_skip(e->fts_path, "dangling symbolic link", cb->ctx);
			} else {
				st->ignored[WALK_IGNORED_SYMLINK]++;
			}
			break;
		case FTS_DC:
			st->ignored[WALK_IGNORED_CYCLE]++;
			break;
		case FTS_DNR:
		case FTS_ERR:
		case FTS_NS:
			st->skipped++;
			cb->on_skip(e->fts_path, strerror(e->fts_errno), cb->ctx);
			break;
		default: /* FTS_DEFAULT: FIFO, socket, device */
			if (is_root) {
				st->skipped++;
				cb->on_skip(e->fts_path, "not a regular file or directory", cb->ctx);
			} else {
				st->ignored[WALK_IGNORED_SPECIAL]++;
			}
			break;
		}
	}
	int saved = errno;
	if (rc == 0 && saved != 0) {
		st->skipped++;
		cb->on_skip(root, strerror(saved), cb->ctx);
	}
	fts_close(fts);
	return rc;
}

int walk_paths(char *const *roots, int nroots, const struct walk_callbacks *cb,
	       struct walk_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	for (int i = 0; i < nroots; i++) {
		int rc = walk_one(roots[i], cb, stats);
		if (rc)
			return rc;
	}
	return 0;
}
