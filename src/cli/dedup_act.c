/* neardup dedup --action hardlink|move|delete — what happens to the members
 * of each group that are not kept.
 *
 * Safety rules, checked for every file just before acting:
 * - protected files (--protect) are never touched; kept files are never
 *   touched;
 * - with PATHs given, only files under them are touched;
 * - the member must still be the regular file that was indexed (lstat: not a
 *   symbolic link, same size and modification time), and the kept file must
 *   still be there unchanged, else the member is left alone;
 * - nothing is ever overwritten: move fails when the destination exists
 *   (renameat2 RENAME_NOREPLACE, or link + unlink); hardlink builds the link
 *   under a temporary name beside the member and renames it over the member
 *   (the member's content is replaced by the kept file's).
 * Without --yes nothing is changed: each line says what would be done.
 * Log on stdout, one line per member: ACTION<TAB>PATH[<TAB>TARGET], ACTION
 * being hardlinked, moved, deleted, "would hardlink", "would move", "would
 * delete", or "skipped" (TARGET is then the reason); failures on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dedup.h"
#include "output.h"

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int unchanged(const char *path, const struct dd_node *nd, struct stat *st, const char **why)
{
	if (lstat(path, st) != 0) {
		*why = errno == ENOENT ? "no longer exists" : strerror(errno);
		return 0;
	}
	if (!S_ISREG(st->st_mode)) {
		*why = "is no longer a regular file";
		return 0;
	}
	if ((uint64_t)st->st_size != nd->size || mtime_ns(st) != nd->mtime_ns) {
		*why = "changed since it was indexed";
		return 0;
	}
	return 1;
}

static int under_root(const char *path, char *const *roots, int nroots)
{
	if (nroots == 0)
		return 1;
	for (int i = 0; i < nroots; i++) {
		const char *r = roots[i];
		size_t l = strlen(r);
		while (l > 1 && r[l - 1] == '/')
			l--;
		if (!strncmp(path, r, l) && (path[l] == 0 || path[l] == '/' || (l == 1 && r[0] == '/')))
			return 1;
	}
	return 0;
}

/* Destination of path under dir: dir + '/' + path without leading '/' and
 * './' components. NULL (why set) when the path has a '..' component. */
static char *move_dest(const char *dir, const char *path, const char **why)
{
	const char *p = path;
	for (;;) {
		if (*p == '/')
			p++;
		else if (p[0] == '.' && p[1] == '/')
			p += 2;
		else
			break;
	}
	for (const char *s = p; *s;) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l == 2 && s[0] == '.' && s[1] == '.') {
			*why = "has a '..' component: cannot place it under --to";
			return NULL;
		}
		s += l;
		while (*s == '/')
			s++;
	}
	if (!*p) {
		*why = "empty path";
		return NULL;
	}
	size_t dl = strlen(dir);
	while (dl > 1 && dir[dl - 1] == '/')
		dl--;
	char *d = malloc(dl + 1 + strlen(p) + 1);
	if (!d) {
		*why = "out of memory";
		return NULL;
	}
	memcpy(d, dir, dl);
	d[dl] = '/';
	strcpy(d + dl + 1, p);
	return d;
}

/* mkdir -p of the directories above path. */
static int make_parents(char *path)
{
	for (char *s = strchr(path + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		int rc = mkdir(path, 0755);
		int e = errno;
		*s = '/';
		if (rc != 0 && e != EEXIST) {
			errno = e;
			return -1;
		}
	}
	return 0;
}

/* Copies src to dst (created exclusively), keeping mode and mtime. */
static int copy_file(const char *src, const char *dst, const struct stat *st)
{
	int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return -1;
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 07777);
	if (out < 0) {
		int e = errno;
		close(in);
		errno = e;
		return -1;
	}
	char buf[1 << 16];
	ssize_t n;
	int rc = 0;
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		for (ssize_t o = 0; o < n;) {
			ssize_t w = write(out, buf + o, (size_t)(n - o));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				rc = -1;
				break;
			}
			o += w;
		}
		if (rc)
			break;
	}
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (rc == 0 && (futimens(out, ts) != 0 || fsync(out) != 0))
		rc = -1;
	int e = errno;
	if (close(out) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	close(in);
	if (rc)
		unlink(dst);
	errno = e;
	return rc;
}

/* rename without replacing; across file systems copy + unlink. */
static int move_file(const char *src, const char *dst, const struct stat *st)
{
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EINVAL || errno == ENOSYS) { /* no RENAME_NOREPLACE here */
		if (link(src, dst) == 0)
			return unlink(src);
		if (errno != EXDEV)
			return -1;
	} else if (errno != EXDEV) {
		return -1;
	}
	if (copy_file(src, dst, st) != 0)
		return -1;
	return unlink(src);
}

static const char *const verb[] = { "", "hardlink", "move", "delete" };

static void act_err(enum dd_action action, const char *path, const char *why)
{
	char what[32];
	snprintf(what, sizeof(what), "cannot %s", verb[action]);
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

int dd_act(FILE *out, const struct dd_result *r, enum dd_action action, const char *to_dir,
	   int yes, char *const *roots, int nroots, uint32_t *done_ids, size_t *n_done)
{
	static const char *const done_verb[] = { "", "hardlinked", "moved", "deleted" };
	int status = EXIT_ALL_GOOD;
	*n_done = 0;
	if (action == DD_REPORT)
		return status;
	for (size_t gi = 0; gi < r->n_groups; gi++) {
		const struct dd_group *g = &r->groups[gi];
		const struct dd_node *keep = &r->nodes[g->members[0]];
		for (size_t k = 1; k < g->n; k++) {
			const struct dd_node *nd = &r->nodes[g->members[k]];
			const char *why = NULL;
			struct stat mst, kst;
			char *dest = NULL;
			if (nd->protect) {
				log_line(out, "skipped", nd->path, "protected");
				continue;
			}
			if (!under_root(nd->path, roots, nroots)) {
				log_line(out, "skipped", nd->path, "outside the given PATHs");
				continue;
			}
			if (!unchanged(nd->path, nd, &mst, &why)) {
				act_err(action, nd->path, why);
				status = EXIT_SKIPPED;
				continue;
			}
			if (!unchanged(keep->path, keep, &kst, &why)) {
				char q[1024], msg[1400];
				snprintf(msg, sizeof(msg), "left alone: the kept file '%s' %s",
					 cli_quote(keep->path, q, sizeof(q)), why);
				act_err(action, nd->path, msg);
				status = EXIT_SKIPPED;
				continue;
			}
			if (action == DD_HARDLINK && mst.st_dev == kst.st_dev && mst.st_ino == kst.st_ino) {
				log_line(out, "skipped", nd->path, "already a hard link to the kept file");
				continue;
			}
			if (action == DD_HARDLINK && mst.st_dev != kst.st_dev) {
				act_err(action, nd->path, "on another file system than the kept file");
				status = EXIT_SKIPPED;
				continue;
			}
			if (action == DD_MOVE) {
				dest = move_dest(to_dir, nd->path, &why);
				struct stat dst;
				if (dest && lstat(dest, &dst) == 0)
					why = "destination exists (not overwritten)";
				if (!dest || why) {
					char msg[1400], q[1024];
					if (dest)
						snprintf(msg, sizeof(msg), "'%s': %s",
							 cli_quote(dest, q, sizeof(q)), why);
					act_err(action, nd->path, dest ? msg : why);
					free(dest);
					status = EXIT_SKIPPED;
					continue;
				}
			}
			const char *target = action == DD_HARDLINK ? keep->path : dest;
			if (!yes) {
				char v[32];
				snprintf(v, sizeof(v), "would %s", verb[action]);
				log_line(out, v, nd->path, target);
				free(dest);
				continue;
			}
			int rc = 0;
			if (action == DD_DELETE) {
				rc = unlink(nd->path);
			} else if (action == DD_MOVE) {
				rc = make_parents(dest);
				if (rc == 0)
					rc = move_file(nd->path, dest, &mst);
			} else {
				size_t l = strlen(nd->path);
				char *tmp = malloc(l + 32);
				if (!tmp) {
					rc = -1;
					errno = ENOMEM;
				} else {
					snprintf(tmp, l + 32, "%s.neardup-%ld", nd->path, (long)getpid());
					rc = link(keep->path, tmp);
					if (rc == 0 && (rc = rename(tmp, nd->path)) != 0) {
						int e = errno;
						unlink(tmp);
						errno = e;
					}
					free(tmp);
				}
			}
			if (rc != 0) {
				char msg[1400], q[1024];
				if (target)
					snprintf(msg, sizeof(msg), "'%s': %s", cli_quote(target, q, sizeof(q)),
						 errno == EEXIST ? "destination exists (not overwritten)"
								 : strerror(errno));
				else
					snprintf(msg, sizeof(msg), "%s", strerror(errno));
				act_err(action, nd->path, msg);
				status = EXIT_SKIPPED;
			} else {
				log_line(out, done_verb[action], nd->path, target);
				done_ids[(*n_done)++] = nd->id;
			}
			free(dest);
		}
	}
	return status;
}
