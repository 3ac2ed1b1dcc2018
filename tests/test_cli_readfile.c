/* Tests of the whole-file read (src/readfile.c, compiled in here for its
 * static helpers): a file overwritten in place while it is
 * read gives the bytes and hash of one version, never a mix of two, and a
 * file that keeps changing is refused. The file is changed from the read's
 * hook, after the first chunk of a pass, so the interleaving is exact. */
#include "test.h"

#include "readfile.c"

#define FILE_BYTES (3 * READ_CHUNK / 2 + 1234) /* two chunks per pass */

static char path[256];

static void fill(uint8_t *buf, uint8_t version)
{
	for (size_t i = 0; i < FILE_BYTES; i++)
		buf[i] = (uint8_t)(i * 31 + version * 101);
}

static void write_version(uint8_t version, int truncate)
{
	static uint8_t buf[FILE_BYTES];
	fill(buf, version);
	int f = open(path, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : 0), 0644);
	CHECK(f >= 0);
	/* in place: the reader's open descriptor sees these bytes */
	CHECK(pwrite(f, buf, FILE_BYTES, 0) == (ssize_t)FILE_BYTES);
	close(f);
}

/* Waits until the coarse clock (the one file timestamps follow) moves, so
 * that the next change gets a newer ctime than the last one. */
static void next_tick(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_REALTIME_COARSE, &a);
	do
		clock_gettime(CLOCK_REALTIME_COARSE, &b);
	while (a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec);
}

struct changer {
	int passes;      /* change the file in passes [0, passes) */
	int wait_tick;
	int truncate;
	int calls;
	uint8_t version; /* the version written last */
};

static void change(void *vctx, int pass)
{
	struct changer *c = vctx;
	c->calls++;
	if (pass >= c->passes)
		return;
	if (c->wait_tick)
		next_tick();
	write_version(++c->version, c->truncate);
}

static int is_version(const struct file_data *fd, uint8_t version)
{
	static uint8_t want[FILE_BYTES];
	fill(want, version);
	return fd->len == FILE_BYTES && memcmp(fd->data, want, FILE_BYTES) == 0;
}

static int hash_ok(const struct file_data *fd)
{
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(fd->data, fd->len));
	return memcmp(c.digest, fd->hash, 16) == 0;
}

static void test_read_plain(void)
{
	struct file_data fd;
	nd_error err;
	write_version(0, 1);
	CHECK_EQ_INT(file_read(path, 1, &fd, &err), 0);
	CHECK(is_version(&fd, 0) && hash_ok(&fd));
	CHECK_EQ_INT(fd.st.st_size, FILE_BYTES);
	file_data_free(&fd);
}

/* Overwritten once during the first pass, timestamps moving: the new version. */
static void test_read_changed_once(void)
{
	for (int truncate = 0; truncate <= 1; truncate++) {
		struct file_data fd;
		nd_error err;
		struct changer c = { 1, 1, truncate, 0, 0 };
		write_version(0, 1);
		CHECK_EQ_INT(file_read_hooked(path, 1, &fd, change, &c, &err), 0);
		CHECK_MSG(is_version(&fd, 1) && hash_ok(&fd), "truncate %d: len %zu", truncate, fd.len);
		CHECK(c.calls >= 2);
		file_data_free(&fd);
	}
}

/* Overwritten once, maybe within one clock tick (timestamps unchanged): one
 * whole version, never a mix. */
static void test_read_changed_same_tick(void)
{
	for (int i = 0; i < 20; i++) {
		struct file_data fd;
		nd_error err;
		struct changer c = { 1, 0, 0, 0, 0 };
		write_version(0, 1);
		CHECK_EQ_INT(file_read_hooked(path, 1, &fd, change, &c, &err), 0);
		CHECK_MSG((is_version(&fd, 0) || is_version(&fd, 1)) && hash_ok(&fd), "try %d", i);
		file_data_free(&fd);
	}
}

/* Changed in every pass: refused, and nothing is returned. */
static void test_read_keeps_changing(void)
{
	for (int wait = 0; wait <= 1; wait++) {
		struct file_data fd;
		nd_error err;
		struct changer c = { 1000, wait, 0, 0, 0 };
		write_version(0, 1);
		CHECK_EQ_INT(file_read_hooked(path, 1, &fd, change, &c, &err), ND_EIO);
		CHECK_MSG(strstr(err.msg, "changed while being read") != NULL, "%s", err.msg);
		CHECK(fd.data == NULL && fd.len == 0);
		CHECK(c.calls >= READ_TRIES);
	}
}

static void test_read_errors(void)
{
	struct file_data fd;
	nd_error err;
	char link[300];
	snprintf(link, sizeof(link), "%s.lnk", path);
	write_version(0, 1);
	unlink(link);
	CHECK(symlink(path, link) == 0);
	CHECK_EQ_INT(file_read(link, 1, &fd, &err), ND_EIO);
	CHECK(strstr(err.msg, "symbolic link") != NULL);
	CHECK_EQ_INT(file_read(link, 0, &fd, &err), 0);
	file_data_free(&fd);
	unlink(link);
}

int main(void)
{
	char dir[] = "/tmp/nd_test_readfile_XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/image.jpg", dir);
	RUN(test_read_plain);
	RUN(test_read_changed_once);
	RUN(test_read_changed_same_tick);
	RUN(test_read_keeps_changing);
	RUN(test_read_errors);
	unlink(path);
	rmdir(dir);
	return test_summary();
}
