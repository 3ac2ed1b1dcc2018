/* neardup dedup --action hardlink|move|trash|delete — what happens to the
 * members of each group that are not kept.
 *
 * Rules, checked for every member just before acting (dry runs included):
 * - protected files (--protect) and kept files are never touched;
 * - with PATHs given, only files under them are touched, decided on the
 *   identity (device and inode) of the directories walked, not on strings;
 * - the member and the kept file are reached by a walk that follows no
 *   symbolic link (safe_fs.h), are regular files, are not one directory
 *   entry (one file under two spellings is one file; a second hard link to
 *   the kept inode may go, the kept name keeps the content), have the device and inode the
 *   index recorded (when it did), and still hash (XXH3-128 of the whole
 *   content) to their stored hashes: the kept file too, so that a copy is
 *   never removed when the kept file no longer holds that picture;
 * - hardlink links only byte-identical files unless --hardlink-near, and
 *   never files of different formats (by content: a .png name never ends up
 *   holding JPEG bytes);
 * - nothing is ever overwritten; every action goes into the journal
 *   (journal.h), fsync-ed, before it is done.
 * A member that fails a check is left alone and named on stderr with the
 * reason (exit status 1); a member left alone by choice (protected,
 * outside the PATHs, not identical for hardlink) gets a "skipped" line.
 * Log on stdout, one line per member: ACTION<TAB>PATH[<TAB>TARGET], ACTION
 * being hardlinked, moved, trashed, deleted, "would hardlink", "would move",
 * "would trash", "would delete", or "skipped" (TARGET is then the reason). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dedup.h"
#include "journal.h"
#include "output.h"
#include "safe_fs.h"
#include "trash.h"

static const char *const verb[] = { "", "hardlink", "move", "delete", "trash" };
static const char *const done_verb[] = { "", "hardlinked", "moved", "deleted", "trashed" };

struct act {
	FILE *out;
	const struct dd_act_opts *o;
	struct sfs_id *roots, *prot;
	int nroots, nprot;
	int to_fd;        /* --to, -1 when it does not exist (dry run) */
	char *to_abs;     /* its physical path */
	struct journal j;
	int journal_ok;
	int status;
	struct dd_totals *t;
};

static void act_err(const struct act *a, const char *path, const char *why)
{
	char what[32];
	snprintf(what, sizeof(what), "cannot %s", verb[a->o->action]);
	cli_err_path(what, path, why);
}

static void log_line(FILE *out, const char *action, const char *path, const char *target)
{
	fputs(action, out);
	putc('\t', out);
	out_tsv_str(out, path);
	if (target) {
		putc('\t', out);
		out_tsv_str(out, target);
	}
	putc('\n', out);
}

static void refuse(struct act *a, const char *path, const char *why)
{
	act_err(a, path, why);
	a->status = EXIT_SKIPPED;
	a->t->skipped++;
}

static void skip(struct act *a, const char *path, const char *why)
{
	log_line(a->out, "skipped", path, why);
	a->t->skipped++;
}

/* Opens nd's file by the safe walk and checks that it is the file the index
 * describes: same device and inode when known, same size, same content. */
static int verify(const struct dd_node *nd, struct sfs_file *f, char *why)
{
	uint8_t h[16];
	uint64_t len;
	if ((nd->dev || nd->ino) && ((uint64_t)f->st.st_dev != nd->dev || (uint64_t)f->st.st_ino != nd->ino)) {
		snprintf(why, SFS_WHY, "is another file than the one indexed (device and inode differ)");
		goto fail;
	}
	if ((uint64_t)f->st.st_size != nd->size) {
		snprintf(why, SFS_WHY, "changed since it was indexed");
		goto fail;
	}
	if (sfs_hash_fd(f->fd, h, &len, why))
		goto fail;
	if (len != nd->size || memcmp(h, nd->hash, 16)) {
		snprintf(why, SFS_WHY, "changed since it was indexed (its content is not what was indexed)");
		goto fail;
	}
	return 0;
fail:
	sfs_close(f);
	return -1;
}

static int open_verified(const struct dd_node *nd, struct sfs_file *f, char *why)
{
	return sfs_open(nd->path, f, why) ? -1 : verify(nd, f, why);
}

/* The kept file of the group being handled, verified once and re-checked
 * (same inode under its name, same size, mtime and ctime) before each
 * member; any change makes it verified again. */
struct kept {
	const struct dd_node *nd;
	struct sfs_file f;
	int state; /* 0 not verified, 1 verified, -1 failed (why) */
	char why[SFS_WHY];
};

static int kept_ok(struct kept *k)
{
	if (k->state == 1) {
		struct stat st;
		char w[SFS_WHY];
		if (fstat(k->f.fd, &st) == 0 && st.st_size == k->f.st.st_size &&
		    st.st_mtim.tv_sec == k->f.st.st_mtim.tv_sec && st.st_mtim.tv_nsec == k->f.st.st_mtim.tv_nsec &&
		    st.st_ctim.tv_sec == k->f.st.st_ctim.tv_sec && st.st_ctim.tv_nsec == k->f.st.st_ctim.tv_nsec &&
		    sfs_same(k->f.dirfd, k->f.name, &k->f.st, w) == 0)
			return 1;
		sfs_close(&k->f);
		k->state = 0;
	}
	if (k->state == 0)
		k->state = open_verified(k->nd, &k->f, k->why) == 0 ? 1 : -1;
	return k->state == 1;
}

/* 1 when a and b are one directory entry (same directory, same name),
 * whatever spelling reached them. */
static int same_entry(const struct sfs_file *a, const struct sfs_file *b)
{
	const struct sfs_id *da = &a->chain[a->nchain - 1], *db = &b->chain[b->nchain - 1];
	return da->dev == db->dev && da->ino == db->ino && !strcmp(a->name, b->name);
}

/* 1 JPEG, 2 PNG, 0 anything else (by content). */
static int format_of(int fd)
{
	unsigned char m[8];
	if (pread(fd, m, sizeof(m), 0) != (ssize_t)sizeof(m))
		return 0;
	if (m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF)
		return 1;
	if (!memcmp(m, "\x89PNG\r\n\x1a\n", 8))
		return 2;
	return 0;
}

/* The path below --to: the stored path without leading '/' and './'. */
static const char *move_rel(const char *path)
{
	for (;;) {
		if (*path == '/')
			path++;
		else if (path[0] == '.' && path[1] == '/')
			path += 2;
		else
			return path;
	}
}

static int journal_ready(struct act *a)
{
	char why[SFS_WHY];
	if (a->journal_ok)
		return 0;
	if (journal_open(&a->j, a->o->index_dir, why)) {
		cli_msg("%s in '%s'; nothing more is done", why, a->o->index_dir);
		a->status = EXIT_FATAL;
		return -1;
	}
	a->journal_ok = 1;
	return 0;
}

/* The outcome of entry e in the journal. */
static void journal_outcome(struct act *a, const struct jentry *e, int ok, const char *why)
{
	char w[SFS_WHY];
	if (journal_end(&a->j, e->seq, ok, ok ? NULL : why, w)) {
		cli_msg("%s; nothing more is done", w);
		a->status = EXIT_FATAL;
	}
}

/* Acts on one verified member v (kept file k). Returns 0 when done (or a
 * dry run), -1 when refused (reported). */
static int act_one(struct act *a, const struct dd_node *nd, struct sfs_file *v, struct kept *k)
{
	const struct dd_act_opts *o = a->o;
	char why[SFS_WHY] = "", *target = NULL, *dest_abs = NULL;
	struct trash_slot ts = { .files_fd = -1, .info_fd = -1 };
	int rc = -1, sub = -1;
	const char *rel = NULL, *base = NULL;
	char *dir_rel = NULL;

	if (o->action == DD_MOVE) {
		rel = move_rel(nd->path);
		base = strrchr(rel, '/');
		dir_rel = strndup(rel, base ? (size_t)(base - rel) : 0);
		base = base ? base + 1 : rel;
		size_t dl = strlen(o->to_dir);
		while (dl > 1 && o->to_dir[dl - 1] == '/')
			dl--;
		if (!dir_rel || asprintf(&target, "%.*s/%s", (int)dl, o->to_dir, rel) < 0) {
			target = NULL;
			snprintf(why, SFS_WHY, "out of memory");
			goto refused;
		}
		struct stat st;
		if (a->to_fd >= 0 && fstatat(a->to_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			char q[400];
			snprintf(why, SFS_WHY, "'%s': destination exists (not overwritten)",
				 cli_quote(target, q, sizeof(q)));
			goto refused;
		}
	} else if (o->action == DD_TRASH && !o->yes) {
		if (!(target = trash_where(v, why)))
			goto refused;
	} else if (o->action == DD_HARDLINK) {
		if (v->st.st_dev != k->f.st.st_dev) {
			snprintf(why, SFS_WHY, "on another file system than the kept file");
			goto refused;
		}
	}

	if (!o->yes) {
		char vb[32];
		snprintf(vb, sizeof(vb), "would %s", verb[o->action]);
		log_line(a->out, vb, nd->path, o->action == DD_HARDLINK ? k->nd->path : target);
		rc = 0;
		goto done;
	}
	if (journal_ready(a))
		goto done;

	struct jentry e;
	memset(&e, 0, sizeof(e));
	snprintf(e.action, sizeof(e.action), "%s", verb[o->action]);
	e.source = v->abs;
	e.keep = k->f.abs;
	e.size = nd->size;
	memcpy(e.hash, nd->hash, 16);
	e.has_hash = 1;
	if (o->action == DD_MOVE) {
		if (sfs_mkdirs(a->to_fd, dir_rel, 0755, &sub, why))
			goto refused;
		if (asprintf(&dest_abs, "%s/%s", a->to_abs, rel) < 0) {
			dest_abs = NULL;
			snprintf(why, SFS_WHY, "out of memory");
			goto refused;
		}
		e.dest = dest_abs;
	} else if (o->action == DD_TRASH) {
		if (trash_prepare(v, &ts, why))
			goto refused;
		e.dest = ts.files_path;
		e.info = ts.info_path;
		target = strdup(ts.files_path);
	} else if (o->action == DD_HARDLINK) {
		e.dest = k->f.abs;
	}
	if (journal_begin(&a->j, &e, why)) {
		cli_msg("%s; nothing more is done", why);
		a->status = EXIT_FATAL;
		if (o->action == DD_TRASH)
			trash_abort(&ts);
		goto done;
	}
	int r;
	switch (o->action) {
	case DD_DELETE:
		r = sfs_unlink(v, why);
		break;
	case DD_MOVE:
		r = sfs_move(v, sub, base, nd->hash, why);
		break;
	case DD_TRASH:
		r = trash_commit(&ts, v, nd->hash, why);
		break;
	case DD_HARDLINK:
		r = sfs_replace_by_link(v, &k->f, why);
		break;
	default:
		r = -1;
		snprintf(why, SFS_WHY, "no such action");
	}
	journal_outcome(a, &e, r == 0, why);
	if (r == 0) {
		log_line(a->out, done_verb[o->action], nd->path, o->action == DD_HARDLINK ? k->nd->path : target);
		rc = 0;
		goto done;
	}
	if (o->action == DD_MOVE && target && !strcmp(why, "destination exists (not overwritten)")) {
		char q[400];
		char w2[SFS_WHY];
		snprintf(w2, sizeof(w2), "'%s': %s", cli_quote(target, q, sizeof(q)), why);
		snprintf(why, SFS_WHY, "%s", w2);
	}
refused:
	refuse(a, nd->path, why);
done:
	if (sub >= 0)
		close(sub);
	trash_slot_free(&ts);
	free(dir_rel);
	free(target);
	free(dest_abs);
	return rc;
}

static int resolve_ids(char *const *paths, int n, struct sfs_id **out)
{
	*out = calloc((size_t)n + 1, sizeof(**out));
	if (!*out)
		return -1;
	for (int i = 0; i < n; i++) {
		struct stat st;
		/* the user named these: symbolic links in them are the user's */
		if (stat(paths[i], &st) == 0)
			(*out)[i] = (struct sfs_id){ st.st_dev, st.st_ino };
	}
	return 0;
}

static int any_within(const struct sfs_file *f, const struct sfs_id *ids, int n)
{
	for (int i = 0; i < n; i++)
		if ((ids[i].dev || ids[i].ino) && sfs_within(f, ids[i]))
			return 1;
	return 0;
}

/* mkdir -p of the user's --to directory. */
static int make_dirs(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -1;
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST) {
			int e = errno;
			free(p);
			errno = e;
			return -1;
		}
		if (!s)
			break;
		*s = '/';
	}
	free(p);
	return 0;
}

static int open_to(struct act *a)
{
	const char *to = a->o->to_dir;
	char q[1024];
	a->to_fd = open(to, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (a->to_fd < 0 && errno == ENOENT && a->o->yes && make_dirs(to) == 0)
		a->to_fd = open(to, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (a->to_fd < 0) {
		if (errno == ENOENT && !a->o->yes)
			return 0; /* a dry run creates nothing */
		cli_msg("cannot use --to '%s': %s", cli_quote(to, q, sizeof(q)), strerror(errno));
		return -1;
	}
	if (!(a->to_abs = realpath(to, NULL))) {
		cli_msg("cannot use --to '%s': %s", cli_quote(to, q, sizeof(q)), strerror(errno));
		return -1;
	}
	return 0;
}

int dd_act(FILE *out, const struct dd_result *r, const struct dd_act_opts *o, uint32_t *done_ids,
	   size_t *n_done, struct dd_totals *t)
{
	struct act a = { .out = out, .o = o, .to_fd = -1, .status = EXIT_ALL_GOOD, .t = t };
	memset(t, 0, sizeof(*t));
	*n_done = 0;
	if (o->action == DD_REPORT)
		return EXIT_ALL_GOOD;
	if (resolve_ids(o->roots, o->nroots, &a.roots) || resolve_ids(o->protect, o->nprotect, &a.prot)) {
		cli_msg("out of memory");
		a.status = EXIT_FATAL;
		goto done;
	}
	a.nroots = o->nroots;
	a.nprot = o->nprotect;
	if (o->action == DD_MOVE && open_to(&a)) {
		a.status = EXIT_FATAL;
		goto done;
	}
	for (size_t gi = 0; gi < r->n_groups && a.status != EXIT_FATAL; gi++) {
		const struct dd_group *g = &r->groups[gi];
		struct kept k = { .nd = &r->nodes[g->members[0]] };
		k.f.fd = k.f.dirfd = -1;
		for (size_t mi = 1; mi < g->n && a.status != EXIT_FATAL; mi++) {
			const struct dd_node *nd = &r->nodes[g->members[mi]];
			struct sfs_file v;
			char why[SFS_WHY];
			if (cli_signal)
				break;
			if (nd->protect) {
				skip(&a, nd->path, "protected");
				continue;
			}
			if (sfs_open(nd->path, &v, why)) {
				refuse(&a, nd->path, why);
				continue;
			}
			if (a.nroots > 0 && !any_within(&v, a.roots, a.nroots)) {
				skip(&a, nd->path, "outside the given PATHs");
				sfs_close(&v);
				continue;
			}
			if (any_within(&v, a.prot, a.nprot)) {
				skip(&a, nd->path, "protected");
				sfs_close(&v);
				continue;
			}
			if (verify(nd, &v, why)) {
				refuse(&a, nd->path, why);
				continue;
			}
			if (!kept_ok(&k)) {
				char q[1024], msg[SFS_WHY + 1100];
				snprintf(msg, sizeof(msg), "left alone: the kept file '%s' %s",
					 cli_quote(k.nd->path, q, sizeof(q)), k.why);
				refuse(&a, nd->path, msg);
				sfs_close(&v);
				continue;
			}
			if (v.st.st_dev == k.f.st.st_dev && v.st.st_ino == k.f.st.st_ino) {
				if (same_entry(&v, &k.f)) {
					/* one file under two spellings: acting would lose it */
					char q[1024], msg[1400];
					snprintf(msg, sizeof(msg), "left alone: it is the kept file '%s' under "
						 "another name", cli_quote(k.nd->path, q, sizeof(q)));
					refuse(&a, nd->path, msg);
					sfs_close(&v);
					continue;
				}
				if (o->action == DD_HARDLINK) {
					skip(&a, nd->path, "already a hard link to the kept file");
					sfs_close(&v);
					continue;
				}
				/* a second hard link: the kept name keeps the content */
			}
			if (o->action == DD_HARDLINK && memcmp(nd->hash, k.nd->hash, 16)) {
				int fv = format_of(v.fd), fk = format_of(k.f.fd);
				if (!o->hardlink_near) {
					skip(&a, nd->path, "not byte-identical to the kept file "
						 "(--hardlink-near links near-duplicates)");
					sfs_close(&v);
					continue;
				}
				if (fv == 0 || fv != fk) {
					skip(&a, nd->path, "another format than the kept file (never linked)");
					sfs_close(&v);
					continue;
				}
			}
			if (act_one(&a, nd, &v, &k) == 0) {
				t->files++;
				t->bytes += nd->size;
				if (o->yes)
					done_ids[(*n_done)++] = nd->id;
			}
			sfs_close(&v);
		}
		sfs_close(&k.f);
	}
done:
	if (a.journal_ok)
		journal_close(&a.j);
	if (a.to_fd >= 0)
		close(a.to_fd);
	free(a.to_abs);
	free(a.roots);
	free(a.prot);
	return a.status;
}

/* "16.2 MB": decimal units, one decimal. */
void dd_human_size(char *buf, size_t cap, uint64_t b)
{
	static const char *const unit[] = { "kB", "MB", "GB", "TB", "PB" };
	if (b < 1000) {
		snprintf(buf, cap, "%llu bytes", (unsigned long long)b);
		return;
	}
	double v = (double)b / 1000;
	int u = 0;
	while (v >= 999.95 && u < 4) {
		v /= 1000;
		u++;
	}
	snprintf(buf, cap, "%.1f %s", v, unit[u]);
}

void dd_print_totals(enum dd_action action, int yes, const struct dd_totals *t)
{
	char size[32], skipped[48] = "";
	if (action == DD_REPORT)
		return;
	dd_human_size(size, sizeof(size), t->bytes);
	if (t->skipped)
		snprintf(skipped, sizeof(skipped), ", skipped %zu", t->skipped);
	cli_msg("%s%s %zu file%s, %s%s", yes ? "" : "would ", yes ? done_verb[action] : verb[action],
		t->files, t->files == 1 ? "" : "s", size, skipped);
}

int dd_parse_action(const char *s, int allow_report, enum dd_action *out)
{
	static const struct { const char *name; enum dd_action a; } names[] = {
		{ "report", DD_REPORT }, { "trash", DD_TRASH },   { "move", DD_MOVE },
		{ "hardlink", DD_HARDLINK }, { "delete", DD_DELETE },
	};
	for (size_t i = allow_report ? 0 : 1; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name)) {
			*out = names[i].a;
			return 0;
		}
	cli_msg("invalid value '%s' for --action (%strash, move, hardlink or delete)", s,
		allow_report ? "report, " : "");
	return -1;
}
