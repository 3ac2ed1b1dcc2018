/* neardup — removing images by the paths a user names: an indexed path, a
 * file under the name it was indexed by, or every image under a directory
 * as spelled when added; and the images whose files are gone. */
#include "index_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct ids {
	uint32_t *v;
	size_t n, cap;
	int oom;
};

static void ids_push(struct ids *a, uint32_t id)
{
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 256;
		uint32_t *nv = realloc(a->v, nc * sizeof(*nv));
		if (!nv) {
			a->oom = 1;
			return;
		}
		a->v = nv;
		a->cap = nc;
	}
	a->v[a->n++] = id;
}

struct remove_ctx {
	struct ids ids;
	char **prefixes; /* directory prefixes with trailing '/' stripped; NULL: matched already */
	size_t *plen;
	unsigned char *hit;
	size_t np;
	int missing;
};

static int remove_scan(void *vctx, const nd_record *rec)
{
	struct remove_ctx *c = vctx;
	for (size_t i = 0; i < c->np; i++) {
		size_t l = c->plen[i];
		if (!c->prefixes[i])
			continue;
		if (l == 0 || (rec->path_len > l && !memcmp(rec->path, c->prefixes[i], l) &&
			       rec->path[l] == '/')) {
			ids_push(&c->ids, rec->id);
			c->hit[i] = 1;
			return 0;
		}
	}
	struct stat st;
	if (c->missing && lstat(rec->path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR))
		ids_push(&c->ids, rec->id);
	return 0;
}

int nd_index_remove_paths(nd_index *ix, const char *const *paths, size_t np, int missing,
			  size_t *removed, unsigned char *unmatched, nd_error *err)
{
	int rc = 0;
	struct remove_ctx rc_ = { 0 };
	rc_.missing = missing;
	rc_.np = np;
	rc_.prefixes = calloc(np + 1, sizeof(char *));
	rc_.plen = calloc(np + 1, sizeof(size_t));
	rc_.hit = calloc(np + 1, 1);
	int need_scan = missing;
	if (!rc_.prefixes || !rc_.plen || !rc_.hit) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < np; i++) {
		const char *p = paths[i];
		uint32_t id;
		struct stat st;
		/* the path, or the file under the spelling it was indexed by */
		if (nd_index_lookup_path(ix, p, &id, NULL) == 0 ||
		    (stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
		     nd_index_lookup_file(ix, (uint64_t)st.st_dev, (uint64_t)st.st_ino, &id, NULL) == 0)) {
			ids_push(&rc_.ids, id);
			rc_.hit[i] = 1;
			continue;
		}
		size_t l = strlen(p);
		while (l > 1 && p[l - 1] == '/')
			l--;
		if (!(rc_.prefixes[i] = strndup(p, l))) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory");
			goto done;
		}
		rc_.plen[i] = (l == 1 && p[0] == '/') ? 0 : l;
		need_scan = 1;
	}
	if (need_scan && (rc = nd_index_foreach(ix, remove_scan, &rc_, err)))
		goto done;
	if (rc_.ids.oom) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	size_t nr = 0;
	if (rc_.ids.n && (rc = nd_index_remove(ix, rc_.ids.v, rc_.ids.n, &nr, err)))
		goto done;
	if (removed)
		*removed = nr;
	for (size_t i = 0; unmatched && i < np; i++)
		unmatched[i] = !rc_.hit[i];
done:
	for (size_t i = 0; rc_.prefixes && i < np; i++)
		free(rc_.prefixes[i]);
	free(rc_.prefixes);
	free(rc_.plen);
	free(rc_.hit);
	free(rc_.ids.v);
	return rc;
}

