/* neardup — a whole file into memory, as one version of it (readfile.h). */
#include "readfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "neardup/neardup.h"

#define READ_TRIES 4                        /* passes that may see a change */
#define READ_CHUNK ((size_t)256 << 10)      /* bytes per read(2) */
/* A file changed less than this before its read began may be in the middle
 * of being written: it is read again after READ_QUIET_NS. Well above the
 * coarse clock tick (at most 10 ms) that file timestamps advance by, so a
 * change within the tick of the last one is always caught. */
#define READ_RECENT_NS 100000000LL
#define READ_QUIET_NS 20000000L

static int same_version(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_ino == b->st_ino &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* st was changed less than READ_RECENT_NS before start. */
static int changed_recently(const struct stat *st, const struct timespec *start)
{
	int64_t d = ((int64_t)start->tv_sec - st->st_ctim.tv_sec) * 1000000000LL +
		    (start->tv_nsec - st->st_ctim.tv_nsec);
	return d < READ_RECENT_NS;
}

/* One pass: fstat, read everything from offset 0 into fd->data (grown as
 * needed), fstat again. *stable: the file did not change during the pass. */
static int read_pass(int f, struct file_data *fd, size_t *cap, int pass, file_read_hook hook, void *ctx,
		     int *stable, nd_error *err)
{
	struct stat before;
	if (fstat(f, &before) != 0)
		return nd_error_set(err, ND_EIO, "%s", strerror(errno));
	if (S_ISDIR(before.st_mode))
		return nd_error_set(err, ND_EINVAL, "is a directory");
	if (!S_ISREG(before.st_mode))
		return nd_error_set(err, ND_EINVAL, "not a regular file");
	if ((uint64_t)before.st_size > ND_MAX_FILE_BYTES)
		return nd_error_set(err, ND_ELIMIT, "file too large (%lld bytes, limit %zu MiB)",
				    (long long)before.st_size, ND_MAX_FILE_BYTES >> 20);
	size_t want = (size_t)before.st_size + 1; /* +1: notice growth while reading */
	if (want > *cap) {
		uint8_t *nd = realloc(fd->data, want);
		if (!nd)
			return nd_error_set(err, ND_ENOMEM, "out of memory reading %zu bytes", want);
		fd->data = nd;
		*cap = want;
	}
	size_t got = 0;
	int hooked = 0;
	while (got < want) {
		size_t n = want - got < READ_CHUNK ? want - got : READ_CHUNK;
		ssize_t r = pread(f, fd->data + got, n, (off_t)got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return nd_error_set(err, ND_EIO, "%s", strerror(errno));
		}
		if (hook && !hooked) {
			hook(ctx, pass);
			hooked = 1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (fstat(f, &fd->st) != 0)
		return nd_error_set(err, ND_EIO, "%s", strerror(errno));
	fd->len = got;
	*stable = got == (size_t)before.st_size && same_version(&before, &fd->st);
	return 0;
}

static void hash_bytes(const struct file_data *fd, uint8_t out[16])
{
	XXH128_canonical_t canon;
	XXH128_canonicalFromHash(&canon, XXH3_128bits(fd->data, fd->len));
	memcpy(out, canon.digest, 16);
}

int file_read_hooked(const char *path, int nofollow, struct file_data *fd, file_read_hook hook,
		     void *ctx, nd_error *err)
{
	memset(fd, 0, sizeof(*fd));
	/* O_NONBLOCK: a FIFO swapped in since the walk must not block us */
	int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (nofollow ? O_NOFOLLOW : 0));
	if (f < 0) {
		if (errno == ELOOP && nofollow)
			return nd_error_set(err, ND_EIO, "is a symbolic link now");
		return nd_error_set(err, ND_EIO, "%s", strerror(errno));
	}
	size_t cap = 0;
	int rc = 0, pass = 0, stable = 0;
	for (int t = 0; t < READ_TRIES && !stable; t++) {
		struct timespec start;
		clock_gettime(CLOCK_REALTIME, &start);
		if ((rc = read_pass(f, fd, &cap, pass++, hook, ctx, &stable, err)))
			goto done;
		if (!stable)
			continue;
		hash_bytes(fd, fd->hash);
		if (!changed_recently(&fd->st, &start))
			break;
		/* changed just now: its timestamps may not show a change made
		 * during the read, or its writer may be between two writes. After
		 * a pause, the same bytes and timestamps again. */
		uint8_t first[16];
		struct stat st1 = fd->st;
		struct timespec quiet = { 0, READ_QUIET_NS };
		memcpy(first, fd->hash, 16);
		nanosleep(&quiet, NULL);
		if ((rc = read_pass(f, fd, &cap, pass++, hook, ctx, &stable, err)))
			goto done;
		if (stable && same_version(&st1, &fd->st)) {
			hash_bytes(fd, fd->hash);
			stable = !memcmp(first, fd->hash, 16);
		} else {
			stable = 0;
		}
	}
	if (!stable)
		rc = nd_error_set(err, ND_EIO, "changed while being read");
done:
	close(f);
	if (rc)
		file_data_free(fd);
	return rc;
}

int file_read(const char *path, int nofollow, struct file_data *fd, nd_error *err)
{
	return file_read_hooked(path, nofollow, fd, NULL, NULL, err);
}

void file_data_free(struct file_data *fd)
{
	free(fd->data);
	fd->data = NULL;
	fd->len = 0;
}
