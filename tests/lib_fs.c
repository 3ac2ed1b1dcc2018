/* neardup tests — shared fixtures: files and scratch directories. */
#include "lib_fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void *tl_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = 0;
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

int tl_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = len ? fwrite(data, 1, len, f) : 0;
	return (fclose(f) == 0 && n == len) ? 0 : -1;
}

int tl_scratch_dir(char *buf, size_t cap, const char *name)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(buf, cap, "%s/nd_%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
	if (n < 0 || (size_t)n >= cap) {
		fprintf(stderr, "scratch directory name too long\n");
		return -1;
	}
	if (!mkdtemp(buf)) {
		perror(buf);
		return -1;
	}
	return 0;
}

void tl_rm_index(const char *dir)
{
	const char *files[] = { "data.mdb", "lock.mdb", "neardup.lock" };
	char p[4096];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}
