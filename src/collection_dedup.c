/* neardup — a collection's near-duplicate groups, from the index's self-join.
 *
 * Pairs: every pair the self-join finds with similarity >= min_sim, plus
 * every pair of byte-identical files (same content hash).
 *
 * Grouping, without chaining: the images in some pair are sorted by the keep
 * rule (protected files first, then the keep rule: neardup/keep.h, whose default
 * "original" reads each image's stored originality record). Going down that
 * list, each image not yet in a group that still has neighbours not in a
 * group becomes a kept image, and those neighbours (its pairs, so each
 * within min_sim of it) become its group. Every member is thus within the threshold of the kept
 * image itself, and the kept image ranks first in its group by the keep
 * rule. A chain a~b~c with a and c unrelated gives {a, b} and leaves c
 * alone (or in a group of its own neighbours). Memory: the pairs and the
 * images in them; no N x N structure. */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "collection_impl.h"
#include "neardup/keep.h"

/* The grouping's own view of the result (nodes are the public images);
 * nd_collection_dedup hands it out as nd_dedup_result. */
/* members[0] is the kept image (sims[0] = 1); the others follow by
 * decreasing similarity to it. */
struct dd_group {
	size_t *members;  /* indices into nodes */
	float *sims;      /* similarity to the kept image (calibrated unless raw) */
	float *raws;      /* plain cosine to the kept image */
	size_t n;
	char reason[48];  /* why members[0] is kept */
};

struct dd_result {
	nd_dup_image *nodes;
	size_t n_nodes;
	struct dd_group *groups;
	size_t n_groups;
	size_t missing;
	uint64_t buckets_capped, pairs_skipped;
	uint32_t max_group;
};

static int dd_exact(const struct dd_result *r, const struct dd_group *g, size_t i)
{
	return !memcmp(r->nodes[g->members[0]].hash, r->nodes[g->members[i]].hash, 16);
}

enum keep_rule { KEEP_ORIGINAL = ND_KEEP_ORIGINAL, KEEP_COUNT = ND_KEEP_RULE_COUNT };

struct pair {
	uint32_t a, b;
	float sim;
};

struct pairs {
	struct pair *v;
	size_t n, cap;
	int oom;
	int clamp; /* sims are plain cosines: clamp the int8 overshoot */
};

static int pair_push(void *ctx, uint32_t a, uint32_t b, float sim)
{
	struct pairs *p = ctx;
	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 1024;
		struct pair *nv = realloc(p->v, nc * sizeof(*nv));
		if (!nv) {
			p->oom = 1;
			return 1;
		}
		p->v = nv;
		p->cap = nc;
	}
	if (a > b) {
		uint32_t t = a;
		a = b;
		b = t;
	}
	if (p->clamp && sim > 1.0f) /* int8-stored vectors can overshoot a little */
		sim = 1.0f;
	p->v[p->n++] = (struct pair){ a, b, sim };
	return 0;
}

struct hashid {
	uint8_t hash[16];
	uint32_t id;
};

struct hashes {
	struct hashid *v;
	size_t n, cap;
	int oom;
};

static int collect_hash(void *ctx, const nd_record *rec)
{
	struct hashes *h = ctx;
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 1024;
		struct hashid *nv = realloc(h->v, nc * sizeof(*nv));
		if (!nv) {
			h->oom = 1;
			return 1;
		}
		h->v = nv;
		h->cap = nc;
	}
	memcpy(h->v[h->n].hash, rec->hash, 16);
	h->v[h->n].id = rec->id;
	h->n++;
	return 0;
}

static int cmp_hashid(const void *x, const void *y)
{
	const struct hashid *a = x, *b = y;
	int c = memcmp(a->hash, b->hash, 16);
	return c ? c : (a->id > b->id) - (a->id < b->id);
}

static int cmp_pair(const void *x, const void *y)
{
	const struct pair *a = x, *b = y;
	if (a->a != b->a)
		return a->a < b->a ? -1 : 1;
	if (a->b != b->b)
		return a->b < b->b ? -1 : 1;
	return (a->sim < b->sim) - (a->sim > b->sim); /* higher sim first */
}

/* ---- keep rule ---- */

struct sort_ctx {
	enum keep_rule rule;
	const nd_dup_image *nodes;
};

static nd_keep_item keep_item(const nd_dup_image *n)
{
	return (nd_keep_item){ n->id, n->width, n->height, n->size, n->mtime_ns, n->path,
			       n->has_origin ? &n->origin : NULL };
}

/* Node indices, best to keep first. */
static int cmp_keep(const void *x, const void *y, void *arg)
{
	const struct sort_ctx *sc = arg;
	const nd_dup_image *a = &sc->nodes[*(const size_t *)x], *b = &sc->nodes[*(const size_t *)y];
	if (a->protect != b->protect)
		return a->protect ? -1 : 1;
	nd_keep_item ka = keep_item(a), kb = keep_item(b);
	return nd_keep_cmp((nd_keep_rule)sc->rule, &ka, &kb, NULL);
}

/* ---- protection ---- */

struct protect {
	char **given;  /* as typed, trailing '/' stripped */
	char **real;   /* realpath, or NULL */
	int n;
};

static int under(const char *path, const char *dir)
{
	size_t l = strlen(dir);
	if (l == 0)
		return 0;
	if (l == 1 && dir[0] == '/')
		return path[0] == '/';
	return !strncmp(path, dir, l) && path[l] == '/';
}

static int is_protected(const struct protect *pr, const char *path)
{
	if (pr->n == 0)
		return 0;
	char real[PATH_MAX];
	int have_real = realpath(path, real) != NULL;
	for (int i = 0; i < pr->n; i++) {
		if (under(path, pr->given[i]))
			return 1;
		if (have_real && pr->real[i] && under(real, pr->real[i]))
			return 1;
	}
	return 0;
}

/* ---- grouping ---- */

static void free_result(struct dd_result *r)
{
	for (size_t i = 0; i < r->n_nodes; i++)
		free(r->nodes[i].path);
	free(r->nodes);
	for (size_t i = 0; i < r->n_groups; i++) {
		free(r->groups[i].members);
		free(r->groups[i].sims);
		free(r->groups[i].raws);
	}
	free(r->groups);
	memset(r, 0, sizeof(*r));
}

static int cmp_group_path(const void *x, const void *y, void *arg)
{
	const struct sort_ctx *sc = arg;
	const struct dd_group *a = x, *b = y;
	return strcmp(sc->nodes[a->members[0]].path, sc->nodes[b->members[0]].path);
}

struct member {
	size_t node;
	float sim;
};

static int cmp_member(const void *x, const void *y, void *arg)
{
	const struct sort_ctx *sc = arg;
	const struct member *a = x, *b = y;
	if (a->sim != b->sim)
		return a->sim > b->sim ? -1 : 1;
	return strcmp(sc->nodes[a->node].path, sc->nodes[b->node].path);
}

struct join_ctx {
	struct pairs pairs;
	const uint32_t *canon; /* id -> first id of its content hash's run, 0 = unknown */
	uint32_t max_id;
};

/* Keeps pairs of canonical images only: copies share the vector, and come
 * in through their run (below). */
static int join_pair(void *vctx, uint32_t a, uint32_t b, float sim)
{
	struct join_ctx *c = vctx;
	if (a > c->max_id || b > c->max_id || c->canon[a] != a || c->canon[b] != b)
		return 0;
	return pair_push(&c->pairs, a, b, sim);
}

struct run {
	size_t start, end; /* node indices [start, end): one content hash */
};

/* A node's file identity, for finding one file under several names. */
struct ident {
	uint64_t dev, ino;
	uint32_t id;
	size_t node;
};

static int cmp_ident(const void *x, const void *y)
{
	const struct ident *a = x, *b = y;
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return (a->id > b->id) - (a->id < b->id);
}

/* Marks in hidden[] the nodes that must not be shown: files gone since
 * ingest (lstat: no such file; counted in *missing), and every name of one
 * file but the first indexed (lowest id), so that a file is never paired
 * with itself. The file as it is now decides (stat, which follows a
 * symlink named at ingest as the walk did); the identity stored decides
 * when stat fails otherwise. Returns -1 when out of memory. */
static int hide_nodes(const struct dd_result *r, unsigned char *hidden, size_t *missing)
{
	struct ident *v = malloc((r->n_nodes ? r->n_nodes : 1) * sizeof(*v));
	size_t m = 0;
	if (!v)
		return -1;
	*missing = 0;
	for (size_t i = 0; i < r->n_nodes; i++) {
		const nd_dup_image *nd = &r->nodes[i];
		struct stat st;
		if (lstat(nd->path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
			hidden[i] = 1;
			(*missing)++;
			continue;
		}
		if (stat(nd->path, &st) == 0)
			v[m++] = (struct ident){ (uint64_t)st.st_dev, (uint64_t)st.st_ino, nd->id, i };
		else if (nd->dev || nd->ino)
			v[m++] = (struct ident){ nd->dev, nd->ino, nd->id, i };
	}
	if (m)
		qsort(v, m, sizeof(*v), cmp_ident);
	for (size_t i = 1; i < m; i++)
		if (v[i].dev == v[i - 1].dev && v[i].ino == v[i - 1].ino)
			hidden[v[i].node] = 1;
	free(v);
	return 0;
}

/* g->raws[k]: the plain cosine of member k and the kept image, from the
 * stored vectors (1 for exact copies, as their similarity). */
static int raw_sims(nd_index *ix, const struct dd_result *r, struct dd_group *g, nd_error *err)
{
	nd_meta meta;
	int rc = nd_index_meta(ix, &meta, err);
	if (rc)
		return rc;
	float *a = malloc(2 * (size_t)meta.dim * sizeof(float)), *b = a + meta.dim;
	if (!a)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	if ((rc = nd_index_get_vector(ix, r->nodes[g->members[0]].id, a, err)))
		goto done;
	for (size_t k = 1; k < g->n; k++) {
		if (dd_exact(r, g, k)) {
			g->raws[k] = 1.0f;
			continue;
		}
		if ((rc = nd_index_get_vector(ix, r->nodes[g->members[k]].id, b, err)))
			goto done;
		double s = 0;
		for (uint32_t j = 0; j < meta.dim; j++)
			s += (double)a[j] * b[j];
		g->raws[k] = s > 1.0 ? 1.0f : (float)s;
	}
done:
	free(a);
	return rc;
}

/* The pairs above the threshold, as build_groups holds them. */
struct graph {
	const struct run *runs;
	const size_t *run_of;     /* node -> its run */
	const size_t *adj_start;  /* CSR over canonical nodes */
	const struct member *adj;
	float *nb_sim;            /* scratch, one per node */
	size_t *nb_mark;          /* scratch, one per node, SIZE_MAX at first */
	size_t mark;
};

/* Chooses the keeper of g (nd_keep_choose) and sets g->reason. With the
 * rule "original" and 3 to ND_KEEP_CENTRAL_MAX members, the keeper may be
 * any member within the threshold of every other one (a pair above it, or
 * the same content), so that each member stays within the threshold of
 * the kept image; the group is then reordered around it, with its
 * similarities. members[0] is the best by cmp_keep, which puts protected
 * images first: only members as protected as it may replace it.
 * tmp has room for g->n. */
static int choose_keeper(nd_index *ix, struct dd_result *r, struct dd_group *g, enum keep_rule rule,
			 uint32_t dim, struct graph *gr, struct member *tmp, nd_error *err)
{
	size_t n = g->n;
	const nd_dup_image *nodes = r->nodes;
	int central = rule == KEEP_ORIGINAL && n >= 3 && n <= ND_KEEP_CENTRAL_MAX;
	nd_keep_member *m = malloc(n * sizeof(*m));
	float *sim = central ? malloc(n * n * sizeof(*sim)) : NULL;
	float *vec = central ? malloc(n * (size_t)dim * sizeof(*vec)) : NULL;
	nd_keep_choice c;
	int rc = 0;
	if (!m || (central && (!sim || !vec))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const nd_dup_image *nd = &nodes[g->members[i]];
		m[i].item = keep_item(nd);
		m[i].can_keep = i == 0 || (central && nd->protect == nodes[g->members[0]].protect);
		if (central && (rc = nd_index_get_vector(ix, nd->id, vec + i * dim, err)))
			goto done;
	}
	for (size_t i = 1; central && i < n; i++) {
		/* within the threshold of all: its canonical's pairs, or its run */
		size_t ci = gr->runs[gr->run_of[g->members[i]]].start;
		gr->mark++;
		for (size_t k = gr->adj_start[ci]; k < gr->adj_start[ci + 1]; k++)
			gr->nb_mark[gr->adj[k].node] = gr->mark;
		for (size_t j = 0; j < n && m[i].can_keep; j++) {
			size_t cj = gr->runs[gr->run_of[g->members[j]]].start;
			m[i].can_keep = cj == ci || gr->nb_mark[cj] == gr->mark;
		}
	}
	for (size_t i = 0; central && i < n; i++)
		for (size_t j = 0; j < i; j++) {
			double s = 0;
			for (uint32_t d = 0; d < dim; d++)
				s += (double)vec[i * dim + d] * vec[j * dim + d];
			sim[i * n + j] = sim[j * n + i] = (float)s;
		}
	rc = nd_keep_choose(m, n, sim, (nd_keep_rule)rule, ND_KEEP_CENTRAL_MARGIN, &c);
	ND_ASSERT(rc == 0); /* member 0 may always be kept */
	nd_keep_reason(&c, g->reason, sizeof(g->reason));
	for (size_t i = 1; i < n; i++)
		if (nodes[g->members[0]].protect && !nodes[g->members[i]].protect)
			snprintf(g->reason, sizeof(g->reason), "protected");
	if (c.keeper == 0)
		goto done;
	/* reorder around the new keeper, with its similarities */
	size_t kn = g->members[c.keeper], ck = gr->runs[gr->run_of[kn]].start, t = 0;
	for (size_t k = gr->adj_start[ck]; k < gr->adj_start[ck + 1]; k++)
		gr->nb_sim[gr->adj[k].node] = gr->adj[k].sim;
	for (size_t i = 0; i < n; i++) {
		size_t x = g->members[i], cx = gr->runs[gr->run_of[x]].start;
		if (i != c.keeper)
			tmp[t++] = (struct member){ x, cx == ck ? 1.0f : gr->nb_sim[cx] };
	}
	struct sort_ctx sc = { rule, nodes };
	qsort_r(tmp, t, sizeof(*tmp), cmp_member, &sc);
	g->members[0] = kn;
	g->sims[0] = g->raws[0] = 1.0f;
	for (size_t i = 0; i < t; i++) {
		g->members[i + 1] = tmp[i].node;
		g->sims[i + 1] = g->raws[i + 1] = tmp[i].sim;
	}
done:
	free(m);
	free(sim);
	free(vec);
	return rc;
}

/* Builds r from the index. Returns 0 or an ND_E* code (err filled).
 *
 * Byte-identical files form a run (same hash, same vector). Only the first
 * id of a run (its canonical image) takes part in pairs; when an image
 * becomes a kept one, its group is every ungrouped image of its own run
 * (exact duplicates) and of the runs of its canonical image's neighbours.
 * Files gone since ingest, and second names of one file (device, inode),
 * are in no group (hide_nodes). */
static int build_groups(nd_index *ix, float min_sim, int raw, enum keep_rule rule,
			const struct protect *pr, int file_check, struct dd_result *r, nd_error *err)
{
	struct join_ctx jc;
	struct hashes hs = { 0 };
	uint32_t *canon = NULL, *node_of = NULL;
	size_t *adj_start = NULL, *fill = NULL, *order = NULL, *stamp = NULL, *run_of = NULL;
	struct run *runs = NULL;
	struct member *adj = NULL, *tmp = NULL;
	unsigned char *grouped = NULL;
	float *nb_sim = NULL;
	size_t *nb_mark = NULL;
	int status = ND_EINTERNAL;
	memset(r, 0, sizeof(*r));
	memset(&jc, 0, sizeof(jc));

	nd_meta meta;
	int rc = nd_index_meta(ix, &meta, err);
	if (rc)
		goto index_error;
	/* content hash runs */
	rc = nd_index_foreach(ix, collect_hash, &hs, err);
	if (hs.oom)
		goto oom;
	if (rc)
		goto index_error;
	if (hs.n)
		qsort(hs.v, hs.n, sizeof(*hs.v), cmp_hashid);
	uint32_t max_id = 0;
	for (size_t i = 0; i < hs.n; i++)
		if (hs.v[i].id > max_id)
			max_id = hs.v[i].id;
	canon = calloc((size_t)max_id + 1, sizeof(*canon));
	node_of = calloc((size_t)max_id + 1, sizeof(*node_of)); /* first: "in a pair" flags */
	if (!canon || !node_of)
		goto oom;
	for (size_t i = 0, j; i < hs.n; i = j) {
		for (j = i + 1; j < hs.n && !memcmp(hs.v[j].hash, hs.v[i].hash, 16); j++)
			;
		for (size_t k = i; k < j; k++)
			canon[hs.v[k].id] = hs.v[i].id;
	}

	nd_selfjoin_params sp;
	nd_selfjoin_params_init(&sp);
	sp.min_sim = min_sim;
	sp.raw = raw;
	jc.pairs.clamp = raw || !nd_index_calibrated(ix);
	nd_selfjoin_stats sst;
	jc.canon = canon;
	jc.max_id = max_id;
	rc = nd_index_selfjoin(ix, &sp, join_pair, &jc, &sst, err);
	if (jc.pairs.oom)
		goto oom;
	if (rc)
		goto index_error;
	r->buckets_capped = sst.groups_capped;
	r->pairs_skipped = sst.pairs_skipped;
	r->max_group = sp.max_group;
	/* one entry per pair, the highest similarity */
	struct pairs *pairs = &jc.pairs;
	if (pairs->n)
		qsort(pairs->v, pairs->n, sizeof(*pairs->v), cmp_pair);
	size_t np = 0;
	for (size_t i = 0; i < pairs->n; i++)
		if (np == 0 || pairs->v[np - 1].a != pairs->v[i].a || pairs->v[np - 1].b != pairs->v[i].b)
			pairs->v[np++] = pairs->v[i];
	pairs->n = np;
	for (size_t i = 0; i < np; i++)
		node_of[pairs->v[i].a] = node_of[pairs->v[i].b] = 1;

	/* the images: every run of two or more, and every run whose canonical
	 * image is in a pair; a run's nodes are contiguous, canonical first */
	size_t nn = 0, nruns = 0;
	for (size_t i = 0, j; i < hs.n; i = j) {
		for (j = i + 1; j < hs.n && !memcmp(hs.v[j].hash, hs.v[i].hash, 16); j++)
			;
		if (j - i >= 2 || node_of[hs.v[i].id]) {
			nn += j - i;
			nruns++;
		}
	}
	if (nn == 0) {
		status = 0;
		goto done;
	}
	r->nodes = calloc(nn, sizeof(*r->nodes));
	runs = malloc(nruns * sizeof(*runs));
	run_of = malloc(nn * sizeof(*run_of));
	if (!r->nodes || !runs || !run_of)
		goto oom;
	r->n_nodes = nn;
	size_t ni = 0, ri = 0;
	for (size_t i = 0, j; i < hs.n; i = j) {
		for (j = i + 1; j < hs.n && !memcmp(hs.v[j].hash, hs.v[i].hash, 16); j++)
			;
		if (!(j - i >= 2 || node_of[hs.v[i].id]))
			continue;
		runs[ri].start = ni;
		for (size_t k = i; k < j; k++) {
			uint32_t id = hs.v[k].id;
			nd_dup_image *nd = &r->nodes[ni];
			nd_record rec;
			char pbuf[ND_PATH_MAX + 1];
			if ((rc = nd_index_get_record(ix, id, &rec, pbuf, sizeof(pbuf), err)))
				goto index_error;
			nd->id = id;
			nd->width = rec.width;
			nd->height = rec.height;
			nd->size = rec.size;
			nd->mtime_ns = rec.mtime_ns;
			nd->dev = rec.dev;
			nd->ino = rec.ino;
			memcpy(nd->hash, rec.hash, 16);
			if ((rc = nd_index_get_origin(ix, id, &nd->has_origin, &nd->origin, err)))
				goto index_error;
			if (!(nd->path = strdup(pbuf)))
				goto oom;
			nd->protect = is_protected(pr, pbuf);
			node_of[id] = (uint32_t)(ni + 1);
			run_of[ni] = ri;
			ni++;
		}
		runs[ri].end = ni;
		ri++;
	}
	free(hs.v);
	hs.v = NULL;

	/* hidden nodes count as grouped already: never kept, never members */
	size_t missing = 0;
	if (!(grouped = calloc(nn, 1)) || (file_check && hide_nodes(r, grouped, &missing)))
		goto oom;
	r->missing = missing;

	/* adjacency of canonical nodes, both directions (CSR) */
	adj_start = calloc(nn + 1, sizeof(*adj_start));
	fill = malloc(nn * sizeof(*fill));
	adj = malloc((2 * np + 1) * sizeof(*adj));
	order = malloc(nn * sizeof(*order));
	stamp = malloc(nn * sizeof(*stamp));
	tmp = malloc(nn * sizeof(*tmp));
	if (!adj_start || !fill || !adj || !order || !stamp || !tmp)
		goto oom;
	for (size_t i = 0; i < np; i++) {
		adj_start[node_of[pairs->v[i].a]]++; /* node index + 1 */
		adj_start[node_of[pairs->v[i].b]]++;
	}
	for (size_t i = 1; i <= nn; i++)
		adj_start[i] += adj_start[i - 1];
	memcpy(fill, adj_start, nn * sizeof(*fill));
	for (size_t i = 0; i < np; i++) {
		size_t a = node_of[pairs->v[i].a] - 1, b = node_of[pairs->v[i].b] - 1;
		adj[fill[a]++] = (struct member){ b, pairs->v[i].sim };
		adj[fill[b]++] = (struct member){ a, pairs->v[i].sim };
	}
	free(pairs->v);
	pairs->v = NULL;

	nb_sim = malloc(nn * sizeof(*nb_sim));
	nb_mark = malloc(nn * sizeof(*nb_mark));
	if (!nb_sim || !nb_mark)
		goto oom;
	for (size_t i = 0; i < nn; i++)
		nb_mark[i] = SIZE_MAX;
	struct graph gr = { runs, run_of, adj_start, adj, nb_sim, nb_mark, 0 };
	struct sort_ctx sc = { rule, r->nodes };
	for (size_t i = 0; i < nn; i++) {
		order[i] = i;
		stamp[i] = SIZE_MAX;
	}
	qsort_r(order, nn, sizeof(*order), cmp_keep, &sc);

	size_t gcap = 0;
	for (size_t oi = 0; oi < nn; oi++) {
		size_t u = order[oi];
		if (grouped[u])
			continue;
		size_t m = 0;
		stamp[u] = u;
		const struct run *own = &runs[run_of[u]];
		for (size_t x = own->start; x < own->end; x++)
			if (!grouped[x] && stamp[x] != u) {
				stamp[x] = u;
				tmp[m++] = (struct member){ x, 1.0f };
			}
		size_t c = own->start; /* the canonical node: its pairs */
		for (size_t k = adj_start[c]; k < adj_start[c + 1]; k++) {
			const struct run *rv = &runs[run_of[adj[k].node]];
			for (size_t x = rv->start; x < rv->end; x++)
				if (!grouped[x] && stamp[x] != u) {
					stamp[x] = u;
					tmp[m++] = (struct member){ x, adj[k].sim };
				}
		}
		if (m == 0)
			continue;
		qsort_r(tmp, m, sizeof(*tmp), cmp_member, &sc);
		if (r->n_groups == gcap) {
			size_t nc = gcap ? gcap * 2 : 64;
			struct dd_group *ng = realloc(r->groups, nc * sizeof(*ng));
			if (!ng)
				goto oom;
			r->groups = ng;
			gcap = nc;
		}
		struct dd_group *g = &r->groups[r->n_groups];
		g->members = malloc((m + 1) * sizeof(*g->members));
		g->sims = malloc((m + 1) * sizeof(*g->sims));
		g->raws = malloc((m + 1) * sizeof(*g->raws));
		if (!g->members || !g->sims || !g->raws) {
			free(g->members);
			free(g->sims);
			free(g->raws);
			goto oom;
		}
		r->n_groups++;
		g->n = m + 1;
		g->members[0] = u;
		g->sims[0] = g->raws[0] = 1.0f;
		grouped[u] = 1;
		for (size_t k = 0; k < m; k++) {
			g->members[k + 1] = tmp[k].node;
			g->sims[k + 1] = g->raws[k + 1] = tmp[k].sim;
			grouped[tmp[k].node] = 1;
		}
		if ((rc = choose_keeper(ix, r, g, rule, meta.dim, &gr, tmp, err)))
			goto index_error;
		if (!jc.pairs.clamp && (rc = raw_sims(ix, r, g, err)))
			goto index_error;
	}
	if (r->n_groups)
		qsort_r(r->groups, r->n_groups, sizeof(*r->groups), cmp_group_path, &sc);
	status = 0;
	goto done;
oom:
	status = nd_error_set(err, ND_ENOMEM, "out of memory while grouping");
	goto done;
index_error:
	if (!err->msg[0])
		nd_error_set(err, rc, "%s", nd_strerror(rc));
	status = rc;
done:
	free(jc.pairs.v);
	free(hs.v);
	free(canon);
	free(node_of);
	free(runs);
	free(run_of);
	free(adj_start);
	free(fill);
	free(adj);
	free(order);
	free(stamp);
	free(grouped);
	free(tmp);
	free(nb_sim);
	free(nb_mark);
	if (status)
		free_result(r);
	return status;
}


void nd_dedup_options_init(nd_dedup_options *o)
{
	memset(o, 0, sizeof(*o));
	o->min_sim = ND_DEFAULT_MIN_SIM;
	o->keep = ND_KEEP_ORIGINAL;
}

void nd_dedup_result_free(nd_dedup_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_images; i++)
		free(r->images[i].path);
	free(r->images);
	for (size_t i = 0; i < r->n_groups; i++)
		free(r->groups[i].members);
	free(r->groups);
	free(r);
}

int nd_collection_dedup(nd_collection *c, const nd_dedup_options *o, nd_dedup_result **out,
			nd_error *err)
{
	nd_dedup_options def;
	nd_error tmp;
	if (!err)
		err = &tmp;
	nd_error_clear(err);
	*out = NULL;
	if (!o) {
		nd_dedup_options_init(&def);
		o = &def;
	}
	if (!(o->min_sim >= -1.5f && o->min_sim <= 1.5f))
		return nd_error_set(err, ND_EINVAL, "min_sim must be in [-1.5, 1.5]");
	if ((unsigned)o->keep >= ND_KEEP_RULE_COUNT)
		return nd_error_set(err, ND_EINVAL, "no such keep rule");
	struct protect pr = { 0 };
	struct dd_result r;
	nd_dedup_result *res = NULL;
	int rc = 0;
	memset(&r, 0, sizeof(r));
	size_t np = o->nprotect;
	pr.given = calloc(np + 1, sizeof(char *));
	pr.real = calloc(np + 1, sizeof(char *));
	if (!pr.given || !pr.real) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < np; i++) {
		const char *d = o->protect[i];
		size_t l = strlen(d);
		while (l > 1 && d[l - 1] == '/')
			l--;
		if (!(pr.given[i] = strndup(d, l))) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory");
			goto done;
		}
		pr.real[i] = realpath(d, NULL);
		pr.n++;
	}
	if ((rc = build_groups(c->ix, o->min_sim, o->raw, (enum keep_rule)o->keep, &pr, !o->no_file_check, &r,
				err)))
		goto done;
	if (!(res = calloc(1, sizeof(*res)))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	res->missing = r.missing;
	res->buckets_capped = r.buckets_capped;
	res->pairs_skipped = r.pairs_skipped;
	res->max_group = r.max_group;
	/* the images move over as they are; the groups are rewritten */
	res->images = r.nodes;
	res->n_images = r.n_nodes;
	r.nodes = NULL;
	r.n_nodes = 0;
	if (r.n_groups && !(res->groups = calloc(r.n_groups, sizeof(*res->groups)))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < r.n_groups; i++) {
		const struct dd_group *g = &r.groups[i];
		nd_dup_group *pg = &res->groups[i];
		if (!(pg->members = malloc(g->n * sizeof(*pg->members)))) {
			rc = nd_error_set(err, ND_ENOMEM, "out of memory");
			goto done;
		}
		res->n_groups++;
		pg->n = g->n;
		memcpy(pg->reason, g->reason, sizeof(pg->reason));
		const uint8_t *kept = res->images[g->members[0]].hash;
		for (size_t k = 0; k < g->n; k++)
			pg->members[k] = (nd_dup_member){
				g->members[k], g->sims[k], g->raws[k],
				!memcmp(kept, res->images[g->members[k]].hash, 16) };
	}
done:
	free_result(&r);
	for (int i = 0; i < pr.n; i++) {
		free(pr.given[i]);
		free(pr.real[i]);
	}
	free(pr.given);
	free(pr.real);
	if (rc) {
		nd_dedup_result_free(res);
		return rc;
	}
	*out = res;
	return 0;
}
