/* neardup — the collection: opening (model lookup, calibration, index),
 * the workspace pool, embedding one image, remove, stats, check. */
#define _GNU_SOURCE /* dladdr */
#include "collection_impl.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "readfile.h"

#define MODEL_FILE "neardup.ndm"

const char *nd_version(void)
{
	return ND_VERSION_STRING;
}

void nd_collection_options_init(nd_collection_options *o)
{
	memset(o, 0, sizeof(*o));
	o->create = 1;
}

static int file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The directory part of path into buf (no trailing '/'); -1 when none. */
static int dir_of(const char *path, char *buf, size_t cap)
{
	const char *slash = strrchr(path, '/');
	if (!slash || (size_t)(slash - path) >= cap)
		return -1;
	memcpy(buf, path, (size_t)(slash - path));
	buf[slash - path] = 0;
	return 0;
}

int nd_model_find(char *buf, size_t cap, nd_error *err)
{
	const char *env = getenv("NEARDUP_MODEL");
	if (env && *env) {
		if (strlen(env) >= cap)
			return nd_error_set(err, ND_EINVAL, "$NEARDUP_MODEL is too long");
		memcpy(buf, env, strlen(env) + 1);
		return 0;
	}
	/* the running program's tree, then this library's (they differ for a
	 * program linked with the shared library, and for Python) */
	char dirs[2][PATH_MAX];
	int nd = 0;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		if (dir_of(exe, dirs[nd], sizeof(dirs[0])) == 0)
			nd++;
	}
	Dl_info info;
	if (dladdr((void *)nd_model_find, &info) && info.dli_fname) {
		char lib[PATH_MAX];
		if (realpath(info.dli_fname, lib) && dir_of(lib, dirs[nd], sizeof(dirs[0])) == 0 &&
		    (nd == 0 || strcmp(dirs[0], dirs[nd]) != 0))
			nd++;
	}
	char cand[5][PATH_MAX + 64];
	int nc = 0;
	for (int i = 0; i < nd; i++) {
		/* build/<variant>/ in the source tree */
		snprintf(cand[nc++], sizeof(cand[0]), "%.4000s/../../models/" MODEL_FILE, dirs[i]);
		/* PREFIX/bin or PREFIX/lib of a relocated install */
		snprintf(cand[nc++], sizeof(cand[0]), "%.4000s/../share/neardup/models/" MODEL_FILE, dirs[i]);
	}
	snprintf(cand[nc++], sizeof(cand[0]), "%s/models/" MODEL_FILE, ND_DATADIR);
	for (int i = 0; i < nc; i++)
		if (file_exists(cand[i])) {
			if (strlen(cand[i]) >= cap)
				return nd_error_set(err, ND_EINVAL, "model path too long");
			memcpy(buf, cand[i], strlen(cand[i]) + 1);
			return 0;
		}
	char tried[sizeof(cand) + 16];
	size_t at = 0;
	tried[0] = 0;
	for (int i = 0; i < nc; i++) {
		int w = snprintf(tried + at, sizeof(tried) - at, "%s%s", i ? ", " : "", cand[i]);
		if (w > 0 && (size_t)w < sizeof(tried) - at)
			at += (size_t)w;
	}
	return nd_error_set(err, ND_ENOTFOUND, "no model found (looked for %s)", tried);
}

/* Opens the index as the options say, with the calibration; an index from
 * before calibrated similarity opened read-only is upgraded once through a
 * short write open. */
static int open_index(nd_collection *c, const nd_collection_options *co, nd_error *err)
{
	nd_index_options o;
	nd_index_options_init(&o);
	nd_model_info mi;
	uint64_t upgraded = 0;
	nd_model_get_info(c->model, &mi);
	o.model_name = mi.name;
	o.model_checksum = mi.checksum;
	o.dim = (uint32_t)mi.embed_dim;
	if (c->calib) {
		nd_model_calib cp;
		nd_calib_params(c->calib, &cp);
		o.calib = (nd_index_calib){ nd_calib_stat_fn, c->calib, (uint32_t)nd_calib_dim(c->calib),
					    cp.beta, cp.offset, cp.phash_weight, cp.phash_bits,
					    nd_score_model_find(mi.checksum) };
	}
	o.create = co->create && !co->readonly;
	o.readonly = co->readonly;
	o.nosync = co->nosync;
	o.upgraded = &upgraded;
	o.shards = co->shards;
	if (co->index_options)
		co->index_options(co->index_options_ctx, &o);
	nd_error_clear(err);
	int rc = nd_index_open(&c->ix, c->dir, &o, err);
	if (rc == ND_EVERSION && co->readonly && o.calib.stat) {
		nd_index *w = NULL;
		nd_index_options ow = o;
		uint64_t up_w = 0;
		ow.readonly = 0;
		ow.create = 0;
		ow.upgraded = &up_w;
		nd_error_clear(err);
		rc = nd_index_open(&w, c->dir, &ow, err);
		nd_index_close(w);
		if (rc == 0) {
			nd_error_clear(err);
			rc = nd_index_open(&c->ix, c->dir, &o, err);
			upgraded = up_w;
		} else if (rc == ND_EBUSY) {
			char holder[ND_ERRMSG_MAX / 2];
			snprintf(holder, sizeof(holder), "%.200s", err->msg);
			return nd_error_set(err, ND_EBUSY,
					    "predates calibrated similarity and must be updated once, but "
					    "another process is writing to it (%s)", holder);
		}
	}
	if (rc == 0 && co->upgraded)
		*co->upgraded = upgraded;
	if (rc == ND_ENOTFOUND && !err->msg[0])
		nd_error_set(err, ND_ENOTFOUND, "no index in '%s'", c->dir);
	return rc;
}

int nd_collection_open(nd_collection **out, const char *index_dir, const nd_collection_options *o,
		       nd_error *err)
{
	nd_collection_options def;
	nd_error tmp;
	if (!err)
		err = &tmp;
	nd_error_clear(err);
	*out = NULL;
	if (!o) {
		nd_collection_options_init(&def);
		o = &def;
	}
	if (!index_dir || !*index_dir)
		return nd_error_set(err, ND_EINVAL, "no index directory given");
	nd_collection *c = calloc(1, sizeof(*c));
	if (!c || !(c->dir = strdup(index_dir))) {
		free(c);
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&c->pool_mu, NULL);
	c->readonly = o->readonly;
	int rc = 0;
	if (o->model) {
		c->model = o->model;
	} else {
		char path[PATH_MAX + 64];
		const char *mp = o->model_path;
		if (!mp) {
			if ((rc = nd_model_find(path, sizeof(path), err)))
				goto fail;
			mp = path;
		}
		if ((rc = nd_model_load(mp, &c->own_model, err)))
			goto fail;
		c->model = c->own_model;
	}
	nd_model_info mi;
	nd_model_get_info(c->model, &mi);
	c->dim = (size_t)mi.embed_dim;
	rc = nd_calib_create(c->model, &c->calib, err);
	if (rc == ND_ENOTFOUND) {
		c->calib = NULL;
		nd_error_clear(err);
	} else if (rc) {
		char m[ND_ERRMSG_MAX / 2];
		snprintf(m, sizeof(m), "%.200s", err->msg[0] ? err->msg : nd_strerror(rc));
		nd_error_set(err, rc, "cannot set up the calibrated similarity: %s", m);
		goto fail;
	}
	if ((rc = open_index(c, o, err)))
		goto fail;
	*out = c;
	return 0;
fail:
	nd_collection_close(c);
	return rc;
}

void nd_collection_close(nd_collection *c)
{
	if (!c)
		return;
	nd_index_close(c->ix);
	while (c->pool) {
		struct coll_embedder *n = c->pool->next;
		nd__embed_free(&c->pool->e);
		free(c->pool);
		c->pool = n;
	}
	nd_calib_free(c->calib); /* after the index: it scores with it */
	nd_model_free(c->own_model);
	pthread_mutex_destroy(&c->pool_mu);
	free(c->dir);
	free(c);
}

nd_index *nd_collection_index(nd_collection *c)
{
	return c->ix;
}

const nd_model *nd_collection_model(const nd_collection *c)
{
	return c->model;
}

size_t nd_collection_dim(const nd_collection *c)
{
	return c->dim;
}

int nd_collection_calibrated(const nd_collection *c)
{
	return nd_index_calibrated(c->ix);
}

float nd_collection_default_min_sim(const nd_collection *c, int raw)
{
	return !raw && nd_index_scored(c->ix) ? ND_DEFAULT_SCORE_MIN_SIM : ND_DEFAULT_MIN_SIM;
}

int nd__collection_writable(nd_collection *c, nd_error *err)
{
	if (c->readonly)
		return nd_error_set(err, ND_EINVAL, "collection '%s' is open read-only", c->dir);
	return 0;
}

/* ---- workspaces ---- */

int nd__collection_embedder_get(nd_collection *c, struct coll_embedder **out, nd_error *err)
{
	pthread_mutex_lock(&c->pool_mu);
	struct coll_embedder *ce = c->pool;
	if (ce)
		c->pool = ce->next;
	pthread_mutex_unlock(&c->pool_mu);
	if (!ce) {
		if (!(ce = calloc(1, sizeof(*ce))))
			return nd_error_set(err, ND_ENOMEM, "out of memory");
		int rc = nd__embed_init(&ce->e, c->model, ND_VIEW_COUNT, err);
		if (rc) {
			free(ce);
			return rc;
		}
	}
	ce->e.n = 0;
	*out = ce;
	return 0;
}

void nd__collection_embedder_put(nd_collection *c, struct coll_embedder *ce)
{
	if (!ce)
		return;
	pthread_mutex_lock(&c->pool_mu);
	ce->next = c->pool;
	c->pool = ce;
	pthread_mutex_unlock(&c->pool_mu);
}

/* ---- embedding one image ---- */

int nd_collection_embed_buffer(nd_collection *c, const void *data, size_t len, float *vec,
			       size_t dim, nd_error *err)
{
	if (dim != c->dim)
		return nd_error_set(err, ND_EINVAL, "vector of dimension %zu, the model gives %zu", dim,
				    c->dim);
	struct coll_embedder *ce;
	int rc = nd__collection_embedder_get(c, &ce, err);
	if (rc)
		return rc;
	uint32_t w, h;
	if (!(rc = nd__embed_add(&ce->e, data, len, &w, &h, err)) && !(rc = nd__embed_run(&ce->e, err)))
		memcpy(vec, ce->e.out, dim * sizeof(float));
	nd__collection_embedder_put(c, ce);
	return rc;
}

int nd_collection_embed_file(nd_collection *c, const char *path, float *vec, size_t dim,
			     nd_error *err)
{
	struct file_data fd;
	int rc = nd__readfile_read(path, 0, &fd, err);
	if (rc)
		return rc;
	rc = nd_collection_embed_buffer(c, fd.data, fd.len, vec, dim, err);
	nd__readfile_free(&fd);
	return rc;
}

/* ---- remove, stats, check ---- */

int nd_collection_remove_ids(nd_collection *c, const uint32_t *ids, size_t n, size_t *removed,
			     nd_error *err)
{
	int rc = nd__collection_writable(c, err);
	if (rc)
		return rc;
	return nd_index_remove(c->ix, ids, n, removed, err);
}

int nd_collection_remove_paths(nd_collection *c, const char *const *paths, size_t n,
			       size_t *removed, unsigned char *unmatched, nd_error *err)
{
	int rc = nd__collection_writable(c, err);
	return rc ? rc : nd_index_remove_paths(c->ix, paths, n, 0, removed, unmatched, err);
}

int nd_collection_remove_missing(nd_collection *c, size_t *removed, nd_error *err)
{
	int rc = nd__collection_writable(c, err);
	return rc ? rc : nd_index_remove_paths(c->ix, NULL, 0, 1, removed, NULL, err);
}

int nd_collection_stats(nd_collection *c, nd_index_stats *st, nd_error *err)
{
	return nd_index_stats_get(c->ix, st, err);
}

int nd_collection_check(nd_collection *c, nd_check_report *rep, nd_error *err)
{
	return nd_index_check(c->ix, rep, err);
}
