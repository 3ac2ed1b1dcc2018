/* neardup serve — reading a server-side file named by a client, only under
 * --allow-root. The root is resolved once (realpath at start); the file is
 * reached by safe_fs's openat walk, which follows no symbolic link and
 * refuses '..', so the normalised path it opened is the file's real path
 * and a prefix test against the root is exact. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safe_fs.h"
#include "serve.h"

int srv_fs_read(const char *root_real, const char *path, size_t max, uint8_t **data, size_t *len,
		char **abs, struct stat *st, char *why, size_t whycap)
{
	struct sfs_file f;
	char sw[SFS_WHY];
	char *joined = NULL;
	int rc = -2;
	*data = NULL;
	*abs = NULL;
	memset(&f, 0, sizeof(f));
	f.dirfd = f.fd = -1;
	if (!*path) {
		snprintf(why, whycap, "empty path");
		return -2;
	}
	if (path[0] != '/') {
		size_t n = strlen(root_real) + strlen(path) + 2;
		if (!(joined = malloc(n))) {
			snprintf(why, whycap, "out of memory");
			return -2;
		}
		snprintf(joined, n, "%s/%s", root_real, path);
		path = joined;
	}
	/* textual check first: a '..' never reaches the file system */
	for (const char *p = path; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			snprintf(why, whycap, "the path has a '..' component");
			rc = -1;
			goto done;
		}
		p += n + (e ? 1 : 0);
	}
	if (sfs_open(path, &f, sw)) {
		/* a link anywhere on the way is refused as outside the root */
		rc = strstr(sw, "symbolic link") ? -1 : -2;
		snprintf(why, whycap, "%s", sw);
		goto done;
	}
	size_t rl = strlen(root_real);
	int inside = strcmp(root_real, "/") == 0 ||
		     (!strncmp(f.abs, root_real, rl) && f.abs[rl] == '/');
	if (!inside) {
		snprintf(why, whycap, "the path is outside the allowed root");
		rc = -1;
		goto done;
	}
	if ((uint64_t)f.st.st_size > max) {
		snprintf(why, whycap, "the file is larger than %zu bytes", max);
		goto done;
	}
	size_t cap = (size_t)f.st.st_size + 1, n = 0;
	uint8_t *buf = malloc(cap);
	if (!buf) {
		snprintf(why, whycap, "out of memory");
		goto done;
	}
	for (;;) {
		ssize_t r = read(f.fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(why, whycap, "%s", strerror(errno));
			free(buf);
			goto done;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) { /* grew since fstat */
			snprintf(why, whycap, "the file changed while being read");
			free(buf);
			goto done;
		}
	}
	if (!(*abs = strdup(f.abs))) {
		snprintf(why, whycap, "out of memory");
		free(buf);
		goto done;
	}
	*data = buf;
	*len = n;
	*st = f.st;
	rc = 0;
done:
	sfs_close(&f);
	free(joined);
	return rc;
}
