/* neardup CLI — the freedesktop.org trash (see trash.h). */
#define _GNU_SOURCE
#include "trash.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TRASHINFO ".trashinfo"

static void why_errno(char *why, const char *what, int e)
{
	snprintf(why, SFS_WHY, "%s: %s", what, strerror(e));
}

static char *cat3(const char *a, const char *b, const char *c)
{
	char *p = NULL;
	if (asprintf(&p, "%s%s%s", a, b, c) < 0)
		return NULL;
	return p;
}

/* $XDG_DATA_HOME (when absolute), else $HOME/.local/share. */
static char *data_home(void)
{
	const char *x = getenv("XDG_DATA_HOME");
	if (x && x[0] == '/')
		return strdup(x);
	const char *h = getenv("HOME");
	if (!h || !*h) {
		struct passwd *pw = getpwuid(getuid());
		h = pw ? pw->pw_dir : NULL;
	}
	return h ? cat3(h, "/.local/share", "") : NULL;
}

/* The device of path's nearest existing ancestor (path itself included). */
static int nearest_dev(const char *path, dev_t *dev)
{
	char *p = strdup(path);
	struct stat st;
	int rc = -1;
	if (!p)
		return -1;
	for (;;) {
		if (stat(p, &st) == 0) {
			*dev = st.st_dev;
			rc = 0;
			break;
		}
		char *s = strrchr(p, '/');
		if (!s)
			break;
		if (s == p) {
			if (p[1] == 0)
				break;
			p[1] = 0;
		} else {
			*s = 0;
		}
	}
	free(p);
	return rc;
}

/* mkdir -p of the user's own data directory (its path is the user's
 * setting, so symbolic links in it are followed). */
static int make_data_home(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -1;
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = 0;
		if (mkdir(p, 0700) != 0 && errno != EEXIST) {
			free(p);
			return -1;
		}
		if (!s)
			break;
		*s = '/';
	}
	free(p);
	return 0;
}

struct where {
	int home;
	char *root;     /* the trash directory, absolute (owned) */
	const char *rel; /* Path= value source: f's path, absolute or relative to topdir */
	int topfd;      /* f's $topdir (borrowed from f) */
	char *sub;      /* the trash below topfd: ".Trash/UID" or ".Trash-UID" (owned) */
};

static void where_free(struct where *w)
{
	free(w->root);
	free(w->sub);
}

static int locate(const struct sfs_file *f, struct where *w, char *why)
{
	memset(w, 0, sizeof(*w));
	char *dh = data_home();
	dev_t dev;
	if (dh && nearest_dev(dh, &dev) == 0 && dev == f->st.st_dev) {
		char *real = realpath(dh, NULL);
		w->home = 1;
		w->root = cat3(real ? real : dh, "/Trash", "");
		w->rel = f->abs;
		free(real);
		free(dh);
		if (!w->root) {
			snprintf(why, SFS_WHY, "out of memory");
			return -1;
		}
		return 0;
	}
	free(dh);
	size_t top = sfs_topdir(f), pl = sfs_prefix(f, top);
	struct stat st;
	w->topfd = f->chain_fd[top];
	w->rel = f->abs + (top == 0 ? 1 : pl + 1);
	if (fstatat(w->topfd, ".Trash", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & S_ISVTX)) {
		if (asprintf(&w->sub, ".Trash/%lu", (unsigned long)getuid()) < 0)
			w->sub = NULL;
	} else if (asprintf(&w->sub, ".Trash-%lu", (unsigned long)getuid()) < 0) {
		w->sub = NULL;
	}
	if (w->sub && asprintf(&w->root, "%.*s/%s", top == 0 ? 0 : (int)pl, f->abs, w->sub) < 0)
		w->root = NULL;
	if (!w->sub || !w->root) {
		where_free(w);
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	return 0;
}

char *trash_where(const struct sfs_file *f, char *why)
{
	struct where w;
	if (locate(f, &w, why))
		return NULL;
	char *p = cat3(w.root, "/files", "");
	where_free(&w);
	if (!p)
		snprintf(why, SFS_WHY, "out of memory");
	return p;
}

/* Opens (creating) the trash directory of w: its descriptor. */
static int open_root(const struct where *w, int *out, char *why)
{
	if (w->home) {
		/* w->root is the physical path: walk it following no link */
		char *parent = strndup(w->root, (size_t)(strrchr(w->root, '/') - w->root));
		struct sfs_file d;
		int rc = -1;
		if (!parent || make_data_home(parent[0] ? parent : "/") != 0) {
			why_errno(why, "cannot create the home trash", errno);
			free(parent);
			return -1;
		}
		if (sfs_open_dir(parent[0] ? parent : "/", &d, why) == 0) {
			rc = sfs_mkdirs(d.dirfd, "Trash", 0700, out, why);
			sfs_close(&d);
		}
		free(parent);
		return rc;
	}
	/* a top-directory trash must be a real directory of ours */
	int fd;
	if (!strncmp(w->sub, ".Trash/", 7)) {
		int t = openat(w->topfd, ".Trash", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (t < 0) {
			why_errno(why, "cannot open the file system's .Trash", errno);
			return -1;
		}
		if (mkdirat(t, w->sub + 7, 0700) != 0 && errno != EEXIST) {
			why_errno(why, "cannot create the trash", errno);
			close(t);
			return -1;
		}
		fd = openat(t, w->sub + 7, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(t);
	} else {
		if (mkdirat(w->topfd, w->sub, 0700) != 0 && errno != EEXIST) {
			why_errno(why, "cannot create the trash", errno);
			return -1;
		}
		fd = openat(w->topfd, w->sub, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		why_errno(why, "cannot open the trash (not a directory?)", errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_uid != getuid()) {
		snprintf(why, SFS_WHY, "the trash '%s' belongs to another user", w->root);
		close(fd);
		return -1;
	}
	*out = fd;
	return 0;
}

/* RFC 2396 escaping of a path for Path=: '/' and unreserved bytes stay. */
static void put_encoded(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned c = *p;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("/-_.!~*'()", (int)c))
			putc((int)c, f);
		else
			fprintf(f, "%%%02X", c);
	}
}

static int write_info(int fd, const char *rel, char *why)
{
	char *buf = NULL, date[32];
	size_t len = 0;
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	FILE *m = open_memstream(&buf, &len);
	if (!m) {
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	fputs("[Trash Info]\nPath=", m);
	put_encoded(m, rel);
	fprintf(m, "\nDeletionDate=%s\n", date);
	if (fclose(m) != 0 || !buf) {
		free(buf);
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	int rc = 0;
	for (size_t o = 0; o < len && rc == 0;) {
		ssize_t n = write(fd, buf + o, len - o);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -1;
		else
			o += (size_t)n;
	}
	if (rc == 0 && fsync(fd) != 0)
		rc = -1;
	if (rc)
		why_errno(why, "cannot write the .trashinfo file", errno);
	free(buf);
	return rc;
}

void trash_slot_free(struct trash_slot *s)
{
	if (s->files_fd >= 0)
		close(s->files_fd);
	if (s->info_fd >= 0)
		close(s->info_fd);
	free(s->files_dir);
	free(s->name);
	free(s->files_path);
	free(s->info_path);
	memset(s, 0, sizeof(*s));
	s->files_fd = s->info_fd = -1;
}

int trash_prepare(const struct sfs_file *f, struct trash_slot *s, char *why)
{
	struct where w;
	int root = -1, rc = -1;
	memset(s, 0, sizeof(*s));
	s->files_fd = s->info_fd = -1;
	if (locate(f, &w, why))
		return -1;
	if (open_root(&w, &root, why) || sfs_mkdirs(root, "files", 0700, &s->files_fd, why) ||
	    sfs_mkdirs(root, "info", 0700, &s->info_fd, why))
		goto done;
	const char *base = f->name, *dot = strrchr(base, '.');
	size_t stem = dot && dot != base ? (size_t)(dot - base) : strlen(base);
	if (strlen(base) + 12 + sizeof(TRASHINFO) > NAME_MAX) {
		snprintf(why, SFS_WHY, "its name is too long for the trash");
		goto done;
	}
	for (unsigned n = 1; n < 100000; n++) {
		char name[NAME_MAX + 1], info[NAME_MAX + 16];
		struct stat st;
		if (n == 1)
			snprintf(name, sizeof(name), "%s", base);
		else
			snprintf(name, sizeof(name), "%.*s.%u%s", (int)stem, base, n, base + stem);
		if (fstatat(s->files_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
			continue;
		snprintf(info, sizeof(info), "%s" TRASHINFO, name);
		int fd = openat(s->info_fd, info, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0) {
			why_errno(why, "cannot create the .trashinfo file", errno);
			goto done;
		}
		int wrc = write_info(fd, w.rel, why);
		close(fd);
		s->name = strdup(name);
		s->files_dir = cat3(w.root, "/files", "");
		s->files_path = cat3(w.root, "/files/", name);
		s->info_path = cat3(w.root, "/info/", info);
		if (wrc || !s->name || !s->files_dir || !s->files_path || !s->info_path) {
			unlinkat(s->info_fd, info, 0);
			if (!wrc)
				snprintf(why, SFS_WHY, "out of memory");
			goto done;
		}
		rc = 0;
		goto done;
	}
	snprintf(why, SFS_WHY, "no free name in the trash");
done:
	if (root >= 0)
		close(root);
	where_free(&w);
	if (rc)
		trash_slot_free(s);
	return rc;
}

void trash_abort(struct trash_slot *s)
{
	char info[NAME_MAX + 16];
	if (s->info_fd < 0 || !s->name)
		return;
	snprintf(info, sizeof(info), "%s" TRASHINFO, s->name);
	unlinkat(s->info_fd, info, 0);
}

int trash_commit(struct trash_slot *s, struct sfs_file *f, const uint8_t hash[16], char *why)
{
	if (sfs_move(f, s->files_fd, s->name, hash, why) == 0)
		return 0;
	trash_abort(s);
	return -1;
}
