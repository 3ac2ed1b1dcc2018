/* neardup — a sharded collection opened as one index (neardup/shard.h):
 * every public nd_index function dispatches here when the handle is a
 * union of shards. Global ids: local id * shards + shard. */
#include "index_impl.h"

#include "neardup/shard.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct nd__index_un_ops un_ops;

#define SHARD_PATH_MAX 4096

static int gid_of(const struct nd__index_union *u, uint32_t local, uint32_t shard, uint32_t *gid, nd_error *err)
{
	return nd_shard_gid(local, shard, u->n, gid, err);
}

/* The shards' settings must be the manifest's. */
static int agree(const nd_manifest *m, const nd_meta *sm, const char *mpath, const char *spath, nd_error *err)
{
	const char *what = NULL;
	if (sm->dim != m->h.dim)
		what = "embedding dimension";
	else if (sm->tables != m->h.tables || sm->bits != m->h.bits)
		what = "LSH tables or bits";
	else if (sm->seed != m->h.seed)
		what = "LSH seed";
	else if (sm->vec_format != m->h.vec_format)
		what = "vector format";
	else if (sm->model_checksum != m->h.model_checksum || strcmp(sm->model_name, m->h.model_name))
		what = "model";
	if (!what)
		return 0;
	return nd_error_set(err, ND_EMISMATCH, "shard '%s' does not match the manifest '%s': another %s", spath,
			    mpath, what);
}

/* A new collection in dir: o->shards shards, created with o's settings. */
static int create_collection(const char *dir, const nd_index_options *o, nd_error *err)
{
	nd_manifest m;
	char p[SHARD_PATH_MAX];
	int rc = 0;
	memset(&m, 0, sizeof(m));
	if (o->shards > ND_SHARDS_MAX)
		return nd_error_set(err, ND_EINVAL, "%u shards: at most %u", o->shards, ND_SHARDS_MAX);
	if (mkdir(dir, 0777) != 0 && errno != EEXIST)
		return nd_error_set(err, ND_EIO, "cannot create '%s': %s", dir, strerror(errno));
	m.h.shards = o->shards;
	if (!(m.names = calloc(o->shards, ND_SHARD_NAME_MAX)))
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < o->shards; i++) {
		nd_index *sh = NULL;
		nd_index_options so = *o;
		so.shards = 0;
		so.create = 1;
		so.readonly = 0;
		snprintf(m.names[i], ND_SHARD_NAME_MAX, "shard-%04u", i);
		if ((rc = nd_manifest_shard_path(dir, &m, i, p, sizeof(p), err)) ||
		    (rc = nd__index_open_one(&sh, p, &so, err)))
			goto done;
		if (i == 0) {
			m.h.dim = sh->meta.dim;
			m.h.tables = sh->meta.tables;
			m.h.bits = sh->meta.bits;
			m.h.vec_format = sh->meta.vec_format;
			m.h.seed = sh->meta.seed;
			m.h.model_checksum = sh->meta.model_checksum;
			memcpy(m.h.model_name, sh->meta.model_name, sizeof(m.h.model_name));
		}
		nd_index_close(sh);
	}
	rc = nd_manifest_write(dir, &m, err);
done:
	nd_manifest_free(&m);
	return rc;
}

static int un_open(nd_index **out, const char *dir, const nd_index_options *o, nd_error *err)
{
	nd_manifest m;
	nd_index *ix = NULL;
	struct nd__index_union *u = NULL;
	char mpath[SHARD_PATH_MAX], p[SHARD_PATH_MAX];
	int rc;
	*out = NULL;
	memset(&m, 0, sizeof(m));
	if (!nd_manifest_exists(dir)) {
		struct stat st;
		snprintf(p, sizeof(p), "%s/data.mdb", dir);
		if (stat(p, &st) == 0)
			return nd_error_set(err, ND_EINVAL, "'%s' holds one index, not a sharded collection", dir);
		if (!o->create || !o->shards || o->readonly)
			return nd_error_set(err, ND_ENOTFOUND, "no index in '%s'", dir);
		if ((rc = create_collection(dir, o, err)))
			return rc;
	}
	if ((rc = nd_manifest_read(dir, &m, err)))
		return rc;
	snprintf(mpath, sizeof(mpath), "%s/%s", dir, ND_MANIFEST_FILE);
	if (o->shards && o->shards != m.h.shards) {
		rc = nd_error_set(err, ND_EMISMATCH, "the manifest '%s' says %u shards, not %u", mpath, m.h.shards,
				  o->shards);
		goto fail;
	}
	if (!(ix = calloc(1, sizeof(*ix))) || !(u = calloc(1, sizeof(*u))) ||
	    !(u->sh = calloc(m.h.shards, sizeof(*u->sh))) || !(u->own = calloc(m.h.shards, 1)) ||
	    !(u->local = calloc(m.h.shards, 1)) ||
	    !(u->dir = strdup(dir))) {
		free(u ? u->sh : NULL);
		free(u ? u->own : NULL);
		free(u ? u->local : NULL);
		free(u);
		u = NULL;
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto fail;
	}
	ix->un = u;
	u->ops = &un_ops;
	u->n = m.h.shards;
	u->remote_add = o->remote_add;
	u->remote_query = o->readonly ? o->remote_query : NULL;
	u->remote_join = o->readonly ? o->remote_join : NULL;
	u->ctx = o->shard_ctx;
	ix->calibrated = 1;
	for (uint32_t i = 0; i < u->n; i++) {
		nd_index_options so = *o;
		so.shards = 0;
		so.create = 0;
		u->own[i] = !o->readonly && (!o->shard_own || o->shard_own(o->shard_ctx, i));
		u->local[i] = !u->remote_query || !o->shard_own || o->shard_own(o->shard_ctx, i);
		so.readonly = !u->own[i];
		if ((rc = nd_manifest_shard_path(dir, &m, i, p, sizeof(p), err)))
			goto fail;
		if ((rc = nd__index_open_one(&u->sh[i], p, &so, err))) {
			if (rc == ND_ENOTFOUND)
				rc = nd_error_set(err, ND_EMISMATCH, "shard '%s' named by the manifest '%s' is missing", p,
						  mpath);
			else if (rc != ND_EBUSY && rc != ND_ECORRUPT && !strstr(err ? err->msg : "", p)) {
				char msg[ND_ERRMSG_MAX];
				snprintf(msg, sizeof(msg), "%s", err ? err->msg : "");
				rc = nd_error_set(err, rc, "shard '%s': %s", p, msg);
			}
			goto fail;
		}
		if ((rc = agree(&m, &u->sh[i]->meta, mpath, p, err)))
			goto fail;
		ix->calibrated &= u->sh[i]->calibrated;
	}
	ix->meta = u->sh[0]->meta;
	ix->calib = u->sh[0]->calib;
	rc = nd_lsh_create(&ix->lsh, ix->meta.dim, ix->meta.tables, ix->meta.bits, ix->meta.seed, err);
	if (rc)
		goto fail;
	nd_manifest_free(&m);
	*out = ix;
	return 0;
fail:
	nd_manifest_free(&m);
	nd_index_close(ix);
	return rc;
}

static void un_close(nd_index *ix)
{
	struct nd__index_union *u = ix->un;
	for (uint32_t i = 0; i < u->n; i++)
		nd_index_close(u->sh[i]);
	free(u->sh);
	free(u->own);
	free(u->local);
	free(u->dir);
	free(u);
	ix->un = NULL;
}

static int un_meta(nd_index *ix, nd_meta *meta, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	*meta = ix->meta;
	meta->n_images = meta->n_postings = meta->n_blocks = meta->posting_bytes = 0;
	meta->next_id = 1;
	for (uint32_t i = 0; i < u->n; i++) {
		nd_meta sm;
		uint32_t g;
		int rc = nd_index_meta(u->sh[i], &sm, err);
		if (rc)
			return rc;
		meta->n_images += sm.n_images;
		meta->n_postings += sm.n_postings;
		meta->n_blocks += sm.n_blocks;
		meta->posting_bytes += sm.posting_bytes;
		if (sm.next_id > 1 && (rc = gid_of(u, sm.next_id - 1, i, &g, err)) == 0 && g + 1 > meta->next_id)
			meta->next_id = g + 1;
		if (rc)
			return rc;
	}
	return 0;
}

static int un_locate(nd_index *ix, uint32_t gid, nd_index **sh, uint32_t *local, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	*sh = u->sh[nd_shard_gid_shard(gid, u->n)];
	*local = nd_shard_gid_local(gid, u->n);
	if (*local == 0)
		return nd_error_set(err, ND_ENOTFOUND, "no image with id %u", gid);
	return 0;
}

static int un_add(nd_index *ix, const nd_index_item *items, size_t n, uint32_t *ids, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	nd_index_item *sub = malloc((n ? n : 1) * sizeof(*sub));
	uint32_t *sids = malloc((n ? n : 1) * sizeof(*sids));
	size_t *at = malloc((n ? n : 1) * sizeof(*at));
	int rc = 0;
	if (!sub || !sids || !at) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if (ids)
		memset(ids, 0, n * sizeof(*ids));
	/* a file whose content changed moves to another shard: its old image
	 * (same path or same file identity) leaves the shard it was in */
	for (size_t i = 0; i < n && !rc; i++) {
		uint32_t to = nd_shard_of(items[i].rec.hash, u->n), local;
		for (uint32_t s = 0; s < u->n && !rc; s++) {
			if (s == to || !u->own[s])
				continue;
			if (nd_index_lookup_path(u->sh[s], items[i].rec.path, &local, NULL) == 0 ||
			    (nd_record_has_identity(&items[i].rec) &&
			     nd_index_lookup_file(u->sh[s], items[i].rec.dev, items[i].rec.ino, &local, NULL) == 0))
				rc = nd_index_remove(u->sh[s], &local, 1, NULL, err);
		}
	}
	for (uint32_t s = 0; s < u->n && !rc; s++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			if (nd_shard_of(items[i].rec.hash, u->n) == s) {
				at[m] = i;
				sub[m++] = items[i];
			}
		if (!m)
			continue;
		if (!u->own[s]) {
			rc = u->remote_add ? u->remote_add(u->ctx, s, sub, m, err)
					   : nd_error_set(err, ND_EUNSUPPORTED, "shard %u is not open for writing", s);
			continue;
		}
		if ((rc = nd_index_add(u->sh[s], sub, m, sids, err)))
			break;
		for (size_t k = 0; k < m && ids && !rc; k++)
			rc = gid_of(u, sids[k], s, &ids[at[k]], err);
	}
done:
	free(sub);
	free(sids);
	free(at);
	return rc;
}

static int un_remove(nd_index *ix, const uint32_t *ids, size_t n, size_t *removed, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	uint32_t *sub = malloc((n ? n : 1) * sizeof(*sub));
	int rc = 0;
	size_t total = 0;
	if (!sub)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < u->n && !rc; s++) {
		size_t m = 0, r = 0;
		for (size_t i = 0; i < n; i++)
			if (nd_shard_gid_shard(ids[i], u->n) == s && nd_shard_gid_local(ids[i], u->n))
				sub[m++] = nd_shard_gid_local(ids[i], u->n);
		if (!m)
			continue;
		rc = nd_index_remove(u->sh[s], sub, m, &r, err);
		total += r;
	}
	free(sub);
	if (removed)
		*removed = total;
	return rc;
}

/* ---- query: the shards on threads, their top k merged ---- */

struct qwork {
	nd_index *ix;
	const float *vec;
	const nd_query_params *p;
	uint32_t s0, step;
	nd_hit *hits;        /* [n shards][k] */
	size_t *counts;      /* [n shards] */
	nd_query_stats st;
	int rc;
	nd_error err;
};

static void *query_worker(void *arg)
{
	struct qwork *w = arg;
	struct nd__index_union *u = w->ix->un;
	for (uint32_t s = w->s0; s < u->n && !w->rc; s += w->step) {
		nd_query_stats st;
		if (!u->local[s])
			continue;
		w->rc = nd_index_query(u->sh[s], w->vec, w->p, w->hits + (size_t)s * w->p->k, &w->counts[s], &st,
				       &w->err);
		w->st.buckets += st.buckets;
		w->st.postings += st.postings;
		w->st.candidates += st.candidates;
		w->st.reranked += st.reranked;
		w->st.truncated |= st.truncated;
		w->st.phash_postings += st.phash_postings;
		for (size_t i = 0; i < w->counts[s] && !w->rc; i++)
			w->rc = gid_of(u, w->hits[(size_t)s * w->p->k + i].id, s,
				       &w->hits[(size_t)s * w->p->k + i].id, &w->err);
	}
	return NULL;
}

/* Best first, ties by id, as one index ranks them. */
static int cmp_hit(const void *x, const void *y)
{
	const nd_hit *a = x, *b = y;
	if (a->sim != b->sim)
		return a->sim > b->sim ? -1 : 1;
	return (a->id > b->id) - (a->id < b->id);
}

static int un_query(nd_index *ix, const float *vec, const nd_query_params *p, nd_hit *hits, size_t *n,
		   nd_query_stats *stats, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	unsigned nth = u->n < ND_JOIN_MAX_THREADS ? u->n : ND_JOIN_MAX_THREADS;
	size_t cap, total = 0;
	int rc = 0;
	*n = 0;
	if (stats)
		memset(stats, 0, sizeof(*stats));
	if (p->k == 0)
		return 0;
	if (nd_mul_size(u->n, p->k, &cap))
		return nd_error_set(err, ND_EOVERFLOW, "k too large");
	nd_hit *all = malloc(cap * sizeof(*all));
	size_t *counts = calloc(u->n, sizeof(*counts));
	struct qwork *w = calloc(nth, sizeof(*w));
	if (!all || !counts || !w) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory for a query");
		goto done;
	}
	for (unsigned i = 0; i < nth; i++)
		w[i] = (struct qwork){ ix, vec, p, i, nth, all, counts, { 0 }, 0, { 0, "" } };
	nd__index_run_parallel(w, sizeof(*w), nth, query_worker);
	for (unsigned i = 0; i < nth; i++) {
		if (w[i].rc && !rc) {
			rc = w[i].rc;
			if (err)
				*err = w[i].err;
		}
		if (stats) {
			stats->buckets += w[i].st.buckets;
			stats->postings += w[i].st.postings;
			stats->candidates += w[i].st.candidates;
			stats->reranked += w[i].st.reranked;
			stats->truncated |= w[i].st.truncated;
			stats->phash_postings += w[i].st.phash_postings;
		}
	}
	if (rc)
		goto done;
	for (uint32_t s = 0; s < u->n; s++) {
		memmove(all + total, all + (size_t)s * p->k, counts[s] * sizeof(*all));
		total += counts[s];
	}
	if (u->remote_query) {
		/* the others' hits go after the local ones: room for k more */
		nd_hit *grown = realloc(all, (total + p->k) * sizeof(*all));
		size_t nr = 0;
		if (!grown) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory for a query");
			goto done;
		}
		all = grown;
		if ((rc = u->remote_query(u->ctx, vec, p, all + total, &nr, err)))
			goto done;
		total += nr < p->k ? nr : p->k;
	}
	qsort(all, total, sizeof(*all), cmp_hit);
	*n = total < p->k ? total : p->k;
	memcpy(hits, all, *n * sizeof(*hits));
done:
	free(all);
	free(counts);
	free(w);
	return rc;
}

static int un_prefault(nd_index *ix, nd_error *err)
{
	for (uint32_t s = 0; s < ix->un->n; s++) {
		int rc = nd_index_prefault(ix->un->sh[s], err);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- lookups ---- */

static int un_get_record(nd_index *ix, uint32_t id, nd_record *rec, char *pathbuf, size_t pathcap,
			nd_error *err)
{
	nd_index *sh;
	uint32_t local;
	int rc = un_locate(ix, id, &sh, &local, err);
	if (rc == 0 && (rc = nd_index_get_record(sh, local, rec, pathbuf, pathcap, err)) == 0)
		rec->id = id;
	return rc;
}

static int un_lookup_path(nd_index *ix, const char *path, uint32_t *id, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	for (uint32_t s = 0; s < u->n; s++) {
		uint32_t local;
		int rc = nd_index_lookup_path(u->sh[s], path, &local, NULL);
		if (rc == 0)
			return gid_of(u, local, s, id, err);
		if (rc != ND_ENOTFOUND)
			return nd_index_lookup_path(u->sh[s], path, &local, err);
	}
	return nd_error_set(err, ND_ENOTFOUND, "'%s' is not indexed", path);
}

static int un_lookup_file(nd_index *ix, uint64_t dev, uint64_t ino, uint32_t *id, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	for (uint32_t s = 0; s < u->n; s++) {
		uint32_t local;
		int rc = nd_index_lookup_file(u->sh[s], dev, ino, &local, NULL);
		if (rc == 0)
			return gid_of(u, local, s, id, err);
		if (rc != ND_ENOTFOUND)
			return nd_index_lookup_file(u->sh[s], dev, ino, &local, err);
	}
	return nd_error_set(err, ND_ENOTFOUND, "no image of that file");
}

static int un_lookup_hash(nd_index *ix, const uint8_t hash[16], uint32_t *ids, size_t cap, size_t *n,
			 nd_error *err)
{
	struct nd__index_union *u = ix->un;
	uint32_t s = nd_shard_of(hash, u->n);
	int rc = nd_index_lookup_hash(u->sh[s], hash, ids, cap, n, err);
	for (size_t i = 0; rc == 0 && i < *n && i < cap; i++)
		rc = gid_of(u, ids[i], s, &ids[i], err);
	return rc;
}

struct fe_ctx {
	struct nd__index_union *u;
	uint32_t s;
	nd_record_fn fn;
	void *ctx;
	int rc;
	nd_error *err;
};

static int foreach_shard(void *vctx, const nd_record *rec)
{
	struct fe_ctx *c = vctx;
	nd_record r = *rec;
	if ((c->rc = gid_of(c->u, rec->id, c->s, &r.id, c->err)))
		return 1;
	return c->fn(c->ctx, &r);
}

static int un_foreach(nd_index *ix, nd_record_fn fn, void *ctx, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	for (uint32_t s = 0; s < u->n; s++) {
		struct fe_ctx c = { u, s, fn, ctx, 0, err };
		int rc = nd_index_foreach(u->sh[s], foreach_shard, &c, err);
		if (c.rc)
			return c.rc;
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- stats, verify, check, backup ---- */

static int un_stats(nd_index *ix, nd_index_stats *st, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	memset(st, 0, sizeof(*st));
	int rc = un_meta(ix, &st->meta, err);
	for (uint32_t s = 0; s < u->n && !rc; s++) {
		nd_index_stats ss;
		if ((rc = nd_index_stats_get(u->sh[s], &ss, err)))
			break;
		st->postings_db_bytes += ss.postings_db_bytes;
		st->vectors_db_bytes += ss.vectors_db_bytes;
		st->records_db_bytes += ss.records_db_bytes;
		st->paths_db_bytes += ss.paths_db_bytes;
		st->hashes_db_bytes += ss.hashes_db_bytes;
		st->phash_db_bytes += ss.phash_db_bytes;
		st->map_size += ss.map_size;
		st->file_bytes += ss.file_bytes;
	}
	if (!rc && st->meta.n_postings) {
		st->bytes_per_posting = (double)st->meta.posting_bytes / (double)st->meta.n_postings;
		st->disk_bytes_per_posting = (double)st->postings_db_bytes / (double)st->meta.n_postings;
	}
	return rc;
}

static int un_verify(nd_index *ix, uint64_t *pages, nd_error *err)
{
	uint64_t total = 0;
	for (uint32_t s = 0; s < ix->un->n; s++) {
		uint64_t p = 0;
		int rc = nd_index_verify(ix->un->sh[s], &p, err);
		if (rc)
			return rc;
		total += p;
	}
	if (pages)
		*pages = total;
	return 0;
}

static void add_problem(nd_check_report *rep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_problem(nd_check_report *rep, const char *fmt, ...)
{
	if (rep->n_problems < ND_CHECK_MAX_PROBLEMS) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(rep->problems[rep->n_problems], ND_CHECK_PROBLEM_LEN, fmt, ap);
		va_end(ap);
	}
	rep->n_problems++;
}

struct place_ctx {
	uint32_t s, n;
	const char *dir;
	nd_check_report *rep;
};

/* Every image lives in the shard of its content hash. */
static int check_place(void *vctx, const nd_record *rec)
{
	struct place_ctx *c = vctx;
	uint32_t want = nd_shard_of(rec->hash, c->n);
	if (want != c->s)
		add_problem(c->rep, "shard '%s': image '%s' belongs in shard %u of %u by its content", c->dir,
			    rec->path, want, c->n);
	return 0;
}

static int un_check(nd_index *ix, nd_check_report *rep, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	nd_check_report *sr = malloc(sizeof(*sr));
	int rc = 0;
	memset(rep, 0, sizeof(*rep));
	rep->phash_valid = rep->inode_valid = 1;
	if (!sr)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	for (uint32_t s = 0; s < u->n && !rc; s++) {
		if ((rc = nd_index_check(u->sh[s], sr, err)))
			break;
		rep->records += sr->records;
		rep->paths += sr->paths;
		rep->hash_entries += sr->hash_entries;
		rep->vectors += sr->vectors;
		rep->blocks += sr->blocks;
		rep->postings += sr->postings;
		rep->phash_valid &= sr->phash_valid;
		rep->phash_postings += sr->phash_postings;
		rep->pages += sr->pages;
		rep->file_bytes += sr->file_bytes;
		rep->inode_valid &= sr->inode_valid;
		rep->inode_entries += sr->inode_entries;
		for (uint64_t i = 0; i < sr->n_problems; i++)
			if (i < ND_CHECK_MAX_PROBLEMS)
				add_problem(rep, "shard '%s': %.*s", u->sh[s]->st->dir, ND_CHECK_PROBLEM_LEN - 40,
					    sr->problems[i]);
			else
				rep->n_problems++;
		struct place_ctx pc = { s, u->n, u->sh[s]->st->dir, rep };
		rc = nd_index_foreach(u->sh[s], check_place, &pc, err);
	}
	free(sr);
	return rc;
}

static int un_backup(nd_index *ix, const char *dest_dir, nd_error *err)
{
	struct nd__index_union *u = ix->un;
	nd_manifest m;
	char p[SHARD_PATH_MAX];
	int rc;
	if (nd_manifest_exists(dest_dir))
		return nd_error_set(err, ND_EINVAL, "'%s' already holds a manifest", dest_dir);
	if (mkdir(dest_dir, 0777) != 0 && errno != EEXIST)
		return nd_error_set(err, ND_EIO, "cannot create '%s': %s", dest_dir, strerror(errno));
	if ((rc = nd_manifest_read(u->dir, &m, err)))
		return rc;
	for (uint32_t s = 0; s < u->n && !rc; s++)
		if (!(rc = nd_manifest_shard_path(dest_dir, &m, s, p, sizeof(p), err)))
			rc = nd_index_backup(u->sh[s], p, err);
	if (!rc)
		rc = nd_manifest_write(dest_dir, &m, err);
	nd_manifest_free(&m);
	return rc;
}

static const struct nd__index_un_ops un_ops = {
	un_close, un_meta, un_add, un_remove, un_query, un_prefault, un_locate, un_get_record, un_lookup_path,
	un_lookup_file, un_lookup_hash, un_foreach, un_stats, un_verify, un_check, un_backup,
};

int nd_index_open(nd_index **out, const char *dir, const nd_index_options *o, nd_error *err)
{
	if (o->shards || nd_manifest_exists(dir))
		return un_open(out, dir, o, err);
	return nd__index_open_one(out, dir, o, err);
}
