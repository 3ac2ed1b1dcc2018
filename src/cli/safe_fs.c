/* neardup CLI — file operations that follow no symbolic link and act only on
 * the inode that was verified (see safe_fs.h). */
#define _GNU_SOURCE
#include "safe_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "cli.h"

#define DIR_FLAGS (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static void why_set(char *why, const char *path, size_t len, const char *what)
{
	char q[400], *p = strndup(path, len);
	if (!p) {
		snprintf(why, SFS_WHY, "out of memory");
		return;
	}
	snprintf(why, SFS_WHY, "'%s' %s", cli_quote(p, q, sizeof(q)), what);
	free(p);
}

static void why_errno(char *why, const char *what, int e)
{
	snprintf(why, SFS_WHY, "%s%s%s", what, *what ? ": " : "", strerror(e));
}

/* Why a component could not be opened as a directory. */
static void why_component(char *why, int dirfd, const char *name, const char *abs, size_t len, int e)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISLNK(st.st_mode))
			why_set(why, abs, len, "is a symbolic link (not followed)");
		else if (!S_ISDIR(st.st_mode))
			why_set(why, abs, len, "is not a directory");
		else
			why_set(why, abs, len, strerror(e));
	} else if (errno == ENOENT) {
		why_set(why, abs, len, "does not exist");
	} else {
		why_set(why, abs, len, strerror(errno));
	}
}

void sfs_close(struct sfs_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	for (size_t i = 0; i < f->nchain; i++)
		if (f->chain_fd[i] >= 0)
			close(f->chain_fd[i]);
	free(f->chain_fd);
	free(f->chain);
	free(f->abs);
	memset(f, 0, sizeof(*f));
	f->fd = f->dirfd = -1;
}

/* f->abs: the absolute, normalised path ('.' and empty components
 * dropped). -1 on a '..' component. */
static int normalise(const char *path, struct sfs_file *f, char *why)
{
	char *cwd = NULL;
	size_t cl = 0;
	if (path[0] != '/') {
		if (!(cwd = getcwd(NULL, 0))) {
			why_errno(why, "cannot find the working directory", errno);
			return -1;
		}
		cl = strlen(cwd);
	}
	char *abs = malloc(cl + strlen(path) + 3);
	if (!abs) {
		free(cwd);
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	size_t o = 0;
	const char *srcs[2] = { cwd ? cwd : "", path };
	for (int k = 0; k < 2; k++) {
		for (const char *s = srcs[k]; *s;) {
			while (*s == '/')
				s++;
			const char *e = s;
			while (*e && *e != '/')
				e++;
			size_t l = (size_t)(e - s);
			if (l == 0)
				break;
			if (l == 2 && s[0] == '.' && s[1] == '.') {
				free(cwd);
				free(abs);
				snprintf(why, SFS_WHY, "has a '..' component (not resolved)");
				return -1;
			}
			if (!(l == 1 && s[0] == '.')) {
				abs[o++] = '/';
				memcpy(abs + o, s, l);
				o += l;
			}
			s = e;
		}
	}
	if (o == 0)
		abs[o++] = '/';
	abs[o] = 0;
	free(cwd);
	f->abs = abs;
	return 0;
}

/* Opens "/" then each directory of f->abs (all components when dir_too,
 * else all but the last). */
static int walk(struct sfs_file *f, int dir_too, char *why)
{
	size_t n = 0;
	for (const char *s = f->abs; *s; s++)
		n += *s == '/';
	if (f->abs[1] == 0)
		n = 0; /* "/" itself */
	f->chain_fd = malloc((n + 1) * sizeof(*f->chain_fd));
	f->chain = malloc((n + 1) * sizeof(*f->chain));
	if (!f->chain_fd || !f->chain) {
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	int fd = open("/", DIR_FLAGS);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		why_errno(why, "cannot open '/'", errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	f->chain_fd[0] = fd;
	f->chain[0] = (struct sfs_id){ st.st_dev, st.st_ino };
	f->nchain = 1;
	size_t ndirs = dir_too ? n : (n ? n - 1 : 0);
	const char *s = f->abs + 1;
	char name[NAME_MAX + 1];
	for (size_t i = 0; i < ndirs; i++) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if (l > NAME_MAX) {
			why_set(why, f->abs, (size_t)(s - f->abs) + l, "has a name too long");
			return -1;
		}
		memcpy(name, s, l);
		name[l] = 0;
		int nfd = openat(fd, name, DIR_FLAGS);
		if (nfd < 0) {
			why_component(why, fd, name, f->abs, (size_t)(s - f->abs) + l, errno);
			return -1;
		}
		if (fstat(nfd, &st) != 0) {
			why_errno(why, "cannot stat a directory", errno);
			close(nfd);
			return -1;
		}
		f->chain_fd[f->nchain] = fd = nfd;
		f->chain[f->nchain++] = (struct sfs_id){ st.st_dev, st.st_ino };
		s += l + 1;
	}
	f->dirfd = fd;
	f->name = dir_too ? strrchr(f->abs, '/') + 1 : s;
	if (dir_too)
		f->st = st;
	return 0;
}

int sfs_open(const char *path, struct sfs_file *f, char *why)
{
	memset(f, 0, sizeof(*f));
	f->fd = f->dirfd = -1;
	if (normalise(path, f, why) || walk(f, 0, why))
		goto fail;
	struct stat st;
	if (!*f->name) {
		snprintf(why, SFS_WHY, "is not a regular file");
		goto fail;
	}
	if (fstatat(f->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			snprintf(why, SFS_WHY, "no longer exists");
		else
			why_errno(why, "", errno);
		goto fail;
	}
	/* devices and FIFOs are never opened: opening can have effects */
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, SFS_WHY, "is a symbolic link (not followed)");
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, SFS_WHY, "is not a regular file");
		goto fail;
	}
	f->fd = openat(f->dirfd, f->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (f->fd < 0) {
		why_errno(why, errno == ELOOP ? "is a symbolic link (not followed)" : "", errno);
		goto fail;
	}
	if (fstat(f->fd, &f->st) != 0) {
		why_errno(why, "", errno);
		goto fail;
	}
	if (!S_ISREG(f->st.st_mode) || f->st.st_ino != st.st_ino || f->st.st_dev != st.st_dev) {
		snprintf(why, SFS_WHY, "was replaced while being opened");
		goto fail;
	}
	return 0;
fail:
	sfs_close(f);
	return -1;
}

int sfs_open_dir(const char *path, struct sfs_file *f, char *why)
{
	memset(f, 0, sizeof(*f));
	f->fd = f->dirfd = -1;
	if (normalise(path, f, why) || walk(f, 1, why)) {
		sfs_close(f);
		return -1;
	}
	return 0;
}

int sfs_within(const struct sfs_file *f, struct sfs_id id)
{
	if (f->fd >= 0 && f->st.st_dev == id.dev && f->st.st_ino == id.ino)
		return 1;
	for (size_t i = 0; i < f->nchain; i++)
		if (f->chain[i].dev == id.dev && f->chain[i].ino == id.ino)
			return 1;
	return 0;
}

size_t sfs_topdir(const struct sfs_file *f)
{
	/* the file's mount: the directories above it on its device, up to
	 * the first that is on another one */
	size_t i = f->nchain;
	while (i > 0 && f->chain[i - 1].dev == f->st.st_dev)
		i--;
	return i < f->nchain ? i : (f->nchain ? f->nchain - 1 : 0);
}

size_t sfs_prefix(const struct sfs_file *f, size_t i)
{
	if (i == 0)
		return 1;
	size_t k = 0;
	for (size_t o = 0; f->abs[o]; o++)
		if (f->abs[o] == '/' && o > 0 && ++k == i)
			return o;
	return strlen(f->abs);
}

int sfs_hash_fd(int fd, uint8_t out[16], uint64_t *len, char *why)
{
	enum { BUF = 1 << 18 };
	XXH3_state_t *xs = XXH3_createState();
	unsigned char *buf = malloc(BUF);
	int rc = -1;
	uint64_t off = 0;
	if (!xs || !buf || XXH3_128bits_reset(xs) != XXH_OK) {
		snprintf(why, SFS_WHY, "out of memory");
		goto done;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, BUF, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			why_errno(why, "cannot read it", errno);
			goto done;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(xs, buf, (size_t)n);
		off += (uint64_t)n;
	}
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xs));
	memcpy(out, c.digest, 16);
	if (len)
		*len = off;
	rc = 0;
done:
	XXH3_freeState(xs);
	free(buf);
	return rc;
}

int sfs_same(int dirfd, const char *name, const struct stat *want, char *why)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			snprintf(why, SFS_WHY, "was removed or renamed by something else");
		else
			why_errno(why, "", errno);
		return -1;
	}
	if (st.st_dev != want->st_dev || st.st_ino != want->st_ino) {
		snprintf(why, SFS_WHY, "was replaced by another file");
		return -1;
	}
	return 0;
}

int sfs_mkdirs(int dirfd, const char *rel, mode_t mode, int *out, char *why)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	char name[NAME_MAX + 1];
	if (fd < 0) {
		why_errno(why, "", errno);
		return -1;
	}
	for (const char *s = rel; *s;) {
		while (*s == '/')
			s++;
		const char *e = s;
		while (*e && *e != '/')
			e++;
		size_t l = (size_t)(e - s);
		if (l == 0)
			break;
		if (l > NAME_MAX || (l == 2 && s[0] == '.' && s[1] == '.')) {
			why_set(why, rel, (size_t)(e - rel), "cannot be created here");
			close(fd);
			return -1;
		}
		memcpy(name, s, l);
		name[l] = 0;
		s = e;
		if (l == 1 && name[0] == '.')
			continue;
		if (mkdirat(fd, name, mode) != 0 && errno != EEXIST) {
			why_set(why, rel, (size_t)(e - rel), strerror(errno));
			close(fd);
			return -1;
		}
		int nfd = openat(fd, name, DIR_FLAGS);
		if (nfd < 0) {
			why_component(why, fd, name, rel, (size_t)(e - rel), errno);
			close(fd);
			return -1;
		}
		close(fd);
		fd = nfd;
	}
	*out = fd;
	return 0;
}

/* A name beside the file for the moment of an exchange or removal. */
static void temp_name(char *buf, size_t cap)
{
	static unsigned counter;
	snprintf(buf, cap, ".neardup-%ld-%u.tmp", (long)getpid(), counter++);
}

int sfs_unlink(struct sfs_file *f, char *why)
{
	char tmp[64], w[SFS_WHY];
	if (sfs_same(f->dirfd, f->name, &f->st, why))
		return -1;
	temp_name(tmp, sizeof(tmp));
	if (renameat2(f->dirfd, f->name, f->dirfd, tmp, RENAME_NOREPLACE) != 0) {
		if (errno != EINVAL && errno != ENOSYS) {
			why_errno(why, "", errno);
			return -1;
		}
		/* a file system without RENAME_NOREPLACE: check, then remove */
		if (sfs_same(f->dirfd, f->name, &f->st, why))
			return -1;
		if (unlinkat(f->dirfd, f->name, 0) != 0) {
			why_errno(why, "", errno);
			return -1;
		}
		return 0;
	}
	if (sfs_same(f->dirfd, tmp, &f->st, w)) {
		if (renameat2(f->dirfd, tmp, f->dirfd, f->name, RENAME_NOREPLACE) != 0)
			snprintf(why, SFS_WHY, "was replaced while acting; the file found is now '%s' "
				 "in the same directory", tmp);
		else
			snprintf(why, SFS_WHY, "was replaced by another file while acting (left alone)");
		return -1;
	}
	if (unlinkat(f->dirfd, tmp, 0) != 0) {
		why_errno(why, "", errno);
		renameat2(f->dirfd, tmp, f->dirfd, f->name, RENAME_NOREPLACE);
		return -1;
	}
	return 0;
}

/* Copies f's content into a new file dname in ddirfd, checking what was
 * copied against want. */
static int copy_verified(struct sfs_file *f, int ddirfd, const char *dname, const uint8_t want[16],
			 char *why)
{
	enum { BUF = 1 << 18 };
	int out = openat(ddirfd, dname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			 f->st.st_mode & 07777);
	if (out < 0) {
		why_errno(why, errno == EEXIST ? "destination exists (not overwritten)" : "", errno);
		return -1;
	}
	unsigned char *buf = malloc(BUF);
	XXH3_state_t *xs = XXH3_createState();
	struct stat ost;
	int rc = -1, have_ost = fstat(out, &ost) == 0;
	off_t off = 0;
	if (!have_ost) {
		why_errno(why, "cannot write the copy", errno);
		goto done;
	}
	if (!buf || !xs || XXH3_128bits_reset(xs) != XXH_OK) {
		snprintf(why, SFS_WHY, "out of memory");
		goto done;
	}
	for (;;) {
		ssize_t n = pread(f->fd, buf, BUF, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			why_errno(why, "cannot read it", errno);
			goto done;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(xs, buf, (size_t)n);
		for (ssize_t o = 0; o < n;) {
			ssize_t w = write(out, buf + o, (size_t)(n - o));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				why_errno(why, "cannot write the copy", errno);
				goto done;
			}
			o += w;
		}
		off += n;
	}
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(xs));
	if (memcmp(c.digest, want, 16)) {
		snprintf(why, SFS_WHY, "changed while being copied (left alone)");
		goto done;
	}
	struct timespec ts[2] = { f->st.st_atim, f->st.st_mtim };
	if (futimens(out, ts) != 0 || fsync(out) != 0) {
		why_errno(why, "cannot write the copy", errno);
		goto done;
	}
	rc = 0;
done:
	free(buf);
	XXH3_freeState(xs);
	if (close(out) != 0 && rc == 0) {
		why_errno(why, "cannot write the copy", errno);
		rc = -1;
	}
	if (rc == 0 && sfs_unlink(f, why) != 0)
		rc = -1; /* the source stays: remove the copy below */
	if (rc != 0 && have_ost) { /* remove the copy, only if it is still ours */
		char w[SFS_WHY];
		if (sfs_same(ddirfd, dname, &ost, w) == 0)
			unlinkat(ddirfd, dname, 0);
	}
	return rc;
}

int sfs_move(struct sfs_file *f, int ddirfd, const char *dname, const uint8_t want[16], char *why)
{
	char w[SFS_WHY];
	if (sfs_same(f->dirfd, f->name, &f->st, why))
		return -1;
	if (renameat2(f->dirfd, f->name, ddirfd, dname, RENAME_NOREPLACE) == 0) {
		if (sfs_same(ddirfd, dname, &f->st, w) == 0)
			return 0;
		if (renameat2(ddirfd, dname, f->dirfd, f->name, RENAME_NOREPLACE) == 0)
			snprintf(why, SFS_WHY, "was replaced by another file while acting (put back)");
		else
			snprintf(why, SFS_WHY, "was replaced by another file while acting; that file is "
				 "now at the destination");
		return -1;
	}
	if (errno == EEXIST) {
		snprintf(why, SFS_WHY, "destination exists (not overwritten)");
		return -1;
	}
	if (errno == EINVAL || errno == ENOSYS) {
		/* no RENAME_NOREPLACE here: link (never replaces), check, unlink */
		if (linkat(f->dirfd, f->name, ddirfd, dname, 0) == 0) {
			if (sfs_same(ddirfd, dname, &f->st, w) != 0) {
				unlinkat(ddirfd, dname, 0);
				snprintf(why, SFS_WHY, "was replaced by another file while acting (left alone)");
				return -1;
			}
			if (sfs_unlink(f, why) != 0) {
				unlinkat(ddirfd, dname, 0);
				return -1;
			}
			return 0;
		}
		if (errno == EEXIST) {
			snprintf(why, SFS_WHY, "destination exists (not overwritten)");
			return -1;
		}
	}
	if (errno != EXDEV) {
		why_errno(why, "", errno);
		return -1;
	}
	return copy_verified(f, ddirfd, dname, want, why);
}

int sfs_replace_by_link(struct sfs_file *v, const struct sfs_file *k, char *why)
{
	char tmp[64], w[SFS_WHY];
	if (v->st.st_dev != k->st.st_dev) {
		snprintf(why, SFS_WHY, "on another file system than the kept file");
		return -1;
	}
	if (sfs_same(k->dirfd, k->name, &k->st, w)) {
		snprintf(why, SFS_WHY, "the kept file %.400s", w);
		return -1;
	}
	temp_name(tmp, sizeof(tmp));
	if (linkat(k->dirfd, k->name, v->dirfd, tmp, 0) != 0) {
		why_errno(why, "cannot link", errno);
		return -1;
	}
	if (sfs_same(v->dirfd, tmp, &k->st, w)) {
		unlinkat(v->dirfd, tmp, 0);
		snprintf(why, SFS_WHY, "the kept file was replaced while acting (left alone)");
		return -1;
	}
	if (sfs_same(v->dirfd, v->name, &v->st, why)) {
		unlinkat(v->dirfd, tmp, 0);
		return -1;
	}
	if (renameat2(v->dirfd, tmp, v->dirfd, v->name, RENAME_EXCHANGE) != 0) {
		/* no RENAME_EXCHANGE here: check, then replace */
		int e = errno;
		if (e == EINVAL || e == ENOSYS) {
			if (sfs_same(v->dirfd, v->name, &v->st, why) == 0) {
				if (renameat(v->dirfd, tmp, v->dirfd, v->name) == 0)
					return 0;
				why_errno(why, "", errno);
			}
		} else {
			why_errno(why, "", e);
		}
		unlinkat(v->dirfd, tmp, 0);
		return -1;
	}
	/* tmp now names what was at the victim's name */
	if (sfs_same(v->dirfd, tmp, &v->st, w) == 0) {
		unlinkat(v->dirfd, tmp, 0);
		return 0;
	}
	renameat2(v->dirfd, tmp, v->dirfd, v->name, RENAME_EXCHANGE);
	if (sfs_same(v->dirfd, tmp, &k->st, w) == 0)
		unlinkat(v->dirfd, tmp, 0);
	snprintf(why, SFS_WHY, "was replaced by another file while acting (put back)");
	return -1;
}
