/* neardup dedup — near-duplicate groups from the index's self-join.
 *
 * Pairs: every pair the self-join finds with similarity >= --min-sim, plus
 * every pair of byte-identical files (same content hash).
 *
 * Grouping: the connected components of the pairs, cut where a weak pair
 * bridges two parts (neardup/group.h), so that all edits of one photo that
 * reach each other through copies end in one group while one stray pair
 * does not merge two families. The kept image is chosen after grouping:
 * the group's first member by the keep rule (protected files first, then
 * --keep: neardup/keep.h, whose default "original" reads each image's
 * stored originality record). Each member shows its similarity to the kept
 * image, which can be below --min-sim for a member that reached the group
 * through another copy. Memory: the pairs and the images in them; no N x N
 * structure. */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "neardup/group.h"
#include "dedup.h"
#include "neardup/keep.h"
#include "output.h"
#include "pipeline.h"

static const char usage_text[] =
	"usage: neardup dedup [--index DIR] [--min-sim S] [--score normalized|raw]\n"
	"                     [--format jsonl|tsv|html]\n"
	"                     [--output FILE] [--keep RULE] [--protect DIR]...\n"
	"                     [--action report|trash|move|hardlink|delete] [--to DIR]\n"
	"                     [--hardlink-near] [--yes] [PATH...]\n"
	"\n"
	"Finds groups of near-duplicate images in the index (ingesting PATHs first when\n"
	"given) and reports them, one kept image per group. Groups join images that\n"
	"reach --min-sim of each other directly or through other copies, split where\n"
	"one weak pair joins two families.\n"
	"\n"
	"options:\n"
	"      --min-sim S    similarity threshold (default " CLI_DEFAULT_SCORE_MIN_SIM_STR " with the trained model's\n"
	"                     pair score, the probability that two images are copies of one\n"
	"                     source; else " CLI_DEFAULT_MIN_SIM_STR " on the calibrated similarity)\n"
	"      --score M      normalized (default): --min-sim and similarity use the\n"
	"                     calibrated score; raw: the plain cosine\n"
	"      --format F     tsv (default): one line per group, kept file first;\n"
	"                     jsonl: {\"group\", \"keep\", \"members\": [{\"path\", \"similarity\",\n"
	"                     \"raw_similarity\", \"exact\"}]} per group (raw_similarity: the\n"
	"                     cosine); html: a self-contained report\n"
	"  -o, --output FILE  write the report to FILE instead of standard output\n"
	"      --keep RULE    which copy to keep: original (default: the least edited:\n"
	"                     colour, camera EXIF, least compressed, most content and\n"
	"                     detail without added margins or noise, earliest capture,\n"
	"                     oldest file), resolution (most pixels), largest, smallest\n"
	"                     (file size), oldest, newest (mtime), first-path\n"
	"      --protect DIR  files under DIR are always kept and never touched (repeatable)\n"
	"      --action A     report (default), or for every member that is not kept:\n"
	"                     trash (into the desktop trash: recommended, undoable),\n"
	"                     move (into --to DIR, keeping its path; undoable),\n"
	"                     hardlink (replace a byte-identical copy by a hard link\n"
	"                     to the kept file), delete\n"
	"      --to DIR       destination of --action move\n"
	"      --hardlink-near  let hardlink also replace near-duplicates (their own\n"
	"                     content is lost; never across formats)\n"
	"      --yes          carry the action out; without it the action is a dry run\n"
	"                     that prints what it would do. Each action is written to\n"
	"                     the journal in the index directory first; 'neardup undo'\n"
	"                     reverses the last run's moves and trashes\n"
	"  -j, --jobs N       worker threads when ingesting PATHs\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
	fputs(cli_common_help, f);
}

/* the rules of neardup/keep.h */
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
	const struct dd_node *nodes;
};

static nd_keep_item keep_item(const struct dd_node *n)
{
	return (nd_keep_item){ n->id, n->width, n->height, n->size, n->mtime_ns, n->path,
			       n->has_origin ? &n->origin : NULL };
}

/* Node indices, best to keep first. */
static int cmp_keep(const void *x, const void *y, void *arg)
{
	const struct sort_ctx *sc = arg;
	const struct dd_node *a = &sc->nodes[*(const size_t *)x], *b = &sc->nodes[*(const size_t *)y];
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
	float sim, raw;
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
		const struct dd_node *nd = &r->nodes[i];
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

/* Chooses the keeper of g (nd_keep_choose) and sets g->reason. With the
 * rule "original" and 3 to ND_KEEP_CENTRAL_MAX members, the keeper may be
 * any member that scores at least min_sim with every other one (or shares
 * its content), so that each member stays within the threshold of the kept
 * image; the group is then reordered around it, with its similarities.
 * members[0] is the best by cmp_keep, which puts protected images first:
 * only members as protected as it may replace it. tmp has room for g->n. */
static int choose_keeper(nd_index *ix, struct dd_result *r, struct dd_group *g, enum keep_rule rule,
			 float min_sim, int raw, const size_t *run_of, struct member *tmp, nd_error *err)
{
	size_t n = g->n;
	const struct dd_node *nodes = r->nodes;
	int central = rule == KEEP_ORIGINAL && n >= 3 && n <= ND_KEEP_CENTRAL_MAX;
	nd_keep_member *m = malloc(n * sizeof(*m));
	float *cos = central ? malloc(n * n * sizeof(*cos)) : NULL;
	float *sc = central ? malloc(n * n * sizeof(*sc)) : NULL;
	nd_keep_choice c;
	int rc = 0;
	if (!m || (central && (!cos || !sc))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; central && i < n; i++) {
		cos[i * n + i] = sc[i * n + i] = 1.0f;
		for (size_t j = 0; j < i; j++) {
			float s = 1.0f, cs = 1.0f;
			if (run_of[g->members[i]] != run_of[g->members[j]] &&
			    (rc = nd_index_score_pair(ix, nodes[g->members[i]].id, nodes[g->members[j]].id, raw, &s,
						      &cs, err)))
				goto done;
			sc[i * n + j] = sc[j * n + i] = s;
			cos[i * n + j] = cos[j * n + i] = cs;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct dd_node *nd = &nodes[g->members[i]];
		m[i].item = keep_item(nd);
		m[i].can_keep = i == 0 || (central && nd->protect == nodes[g->members[0]].protect);
		for (size_t j = 0; i > 0 && j < n && m[i].can_keep; j++)
			m[i].can_keep = sc[i * n + j] >= min_sim;
	}
	rc = nd_keep_choose(m, n, cos, (nd_keep_rule)rule, ND_KEEP_CENTRAL_MARGIN, &c);
	ND_ASSERT(rc == 0); /* member 0 may always be kept */
	nd_keep_reason(&c, g->reason, sizeof(g->reason));
	for (size_t i = 1; i < n; i++)
		if (nodes[g->members[0]].protect && !nodes[g->members[i]].protect)
			snprintf(g->reason, sizeof(g->reason), "protected");
	if (c.keeper == 0)
		goto done;
	/* reorder around the new keeper, with its similarities */
	size_t kn = g->members[c.keeper], t = 0;
	for (size_t i = 0; i < n; i++)
		if (i != c.keeper)
			tmp[t++] = (struct member){ g->members[i], sc[c.keeper * n + i], cos[c.keeper * n + i] };
	struct sort_ctx sx = { rule, nodes };
	qsort_r(tmp, t, sizeof(*tmp), cmp_member, &sx);
	g->members[0] = kn;
	g->sims[0] = g->raws[0] = 1.0f;
	for (size_t i = 0; i < t; i++) {
		g->members[i + 1] = tmp[i].node;
		g->sims[i + 1] = tmp[i].sim;
		g->raws[i + 1] = tmp[i].raw;
	}
done:
	free(m);
	free(cos);
	free(sc);
	return rc;
}

/* Builds r from the index. Returns 0 or EXIT_FATAL (message printed).
 *
 * Byte-identical files form a run (same hash, same vector). Only the first
 * id of a run (its canonical image) takes part in pairs; a group holds
 * whole runs. Files gone since ingest, and second names of one file
 * (device, inode), are in no group (hide_nodes). */
static int build_groups(nd_index *ix, float min_sim, int raw, enum keep_rule rule,
			const struct protect *pr, struct dd_result *r)
{
	struct join_ctx jc;
	struct hashes hs = { 0 };
	uint32_t *canon = NULL, *node_of = NULL, *comp = NULL;
	size_t *order = NULL, *run_of = NULL, *gid = NULL;
	struct run *runs = NULL;
	struct member *tmp = NULL;
	nd_group_edge *edges = NULL;
	unsigned char *hidden = NULL;
	int status = EXIT_FATAL;
	nd_error err;
	nd_error_clear(&err);
	memset(r, 0, sizeof(*r));
	memset(&jc, 0, sizeof(jc));

	nd_meta meta;
	int rc = nd_index_meta(ix, &meta, &err);
	if (rc)
		goto index_error;
	/* content hash runs */
	rc = nd_index_foreach(ix, collect_hash, &hs, &err);
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
	rc = nd_index_selfjoin(ix, &sp, join_pair, &jc, &sst, &err);
	if (jc.pairs.oom)
		goto oom;
	if (rc)
		goto index_error;
	if (sst.groups_capped)
		cli_msg("warning: %llu LSH buckets with more than %u images were skipped (%llu pairs "
			"not compared)", (unsigned long long)sst.groups_capped, sp.max_group,
			(unsigned long long)sst.pairs_skipped);
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
			struct dd_node *nd = &r->nodes[ni];
			nd_record rec;
			char pbuf[ND_PATH_MAX + 1];
			if ((rc = nd_index_get_record(ix, id, &rec, pbuf, sizeof(pbuf), &err)))
				goto index_error;
			nd->id = id;
			nd->width = rec.width;
			nd->height = rec.height;
			nd->size = rec.size;
			nd->mtime_ns = rec.mtime_ns;
			nd->dev = rec.dev;
			nd->ino = rec.ino;
			memcpy(nd->hash, rec.hash, 16);
			if ((rc = nd_index_get_origin(ix, id, &nd->has_origin, &nd->origin, &err)))
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

	/* hidden nodes are never kept and never members */
	size_t missing;
	if (!(hidden = calloc(nn, 1)) || hide_nodes(r, hidden, &missing))
		goto oom;
	if (missing)
		cli_msg("%zu indexed files no longer exist and were left out; 'neardup remove --missing' "
			"drops them from the index", missing);

	/* groups: the components of the runs' pairs, cut at weak bridges
	 * (neardup/group.h); a run of byte-identical files is one node, and a
	 * run of two or more is a group even without pairs */
	edges = malloc((np ? np : 1) * sizeof(*edges));
	comp = malloc(nruns * sizeof(*comp));
	gid = malloc(nruns * sizeof(*gid));
	order = malloc(nn * sizeof(*order));
	tmp = malloc(nn * sizeof(*tmp));
	if (!edges || !comp || !gid || !order || !tmp)
		goto oom;
	for (size_t i = 0; i < np; i++)
		edges[i] = (nd_group_edge){ (uint32_t)run_of[node_of[pairs->v[i].a] - 1],
					    (uint32_t)run_of[node_of[pairs->v[i].b] - 1], pairs->v[i].sim };
	free(pairs->v);
	pairs->v = NULL;
	nd_group_params gp;
	nd_group_params_init(&gp);
	gp.min_sim = min_sim;
	size_t ng = 0;
	if ((rc = nd_group_components(nruns, edges, np, &gp, comp, &ng, &err))) {
		cli_msg("cannot group the pairs: %s", err.msg);
		goto done;
	}
	for (size_t i = 0; i < nruns; i++)
		gid[i] = comp[i] != ND_GROUP_NONE ? comp[i] : runs[i].end - runs[i].start >= 2 ? ng++ : SIZE_MAX;

	/* the kept image of each group: its first member by the keep rule,
	 * chosen after grouping; groups are built in the order of their kept
	 * images, members scored against the kept image */
	struct sort_ctx sc = { rule, r->nodes };
	for (size_t i = 0; i < nn; i++)
		order[i] = i;
	qsort_r(order, nn, sizeof(*order), cmp_keep, &sc);
	size_t *first_run = malloc((ng ? ng : 1) * sizeof(*first_run)), *next_run = malloc(nruns * sizeof(*next_run));
	unsigned char *done_g = calloc(ng ? ng : 1, 1);
	if (!first_run || !next_run || !done_g) {
		free(first_run);
		free(next_run);
		free(done_g);
		goto oom;
	}
	for (size_t g = 0; g < ng; g++)
		first_run[g] = SIZE_MAX;
	for (size_t i = nruns; i-- > 0;)
		if (gid[i] != SIZE_MAX) {
			next_run[i] = first_run[gid[i]];
			first_run[gid[i]] = i;
		}
	r->groups = calloc(ng ? ng : 1, sizeof(*r->groups));
	if (!r->groups) {
		free(first_run);
		free(next_run);
		free(done_g);
		goto oom;
	}
	for (size_t oi = 0; oi < nn && rc == 0; oi++) {
		size_t u = order[oi], g = gid[run_of[u]];
		if (g == SIZE_MAX || done_g[g] || hidden[u])
			continue;
		done_g[g] = 1;
		size_t m = 0;
		for (size_t ru = first_run[g]; ru != SIZE_MAX; ru = next_run[ru])
			for (size_t x = runs[ru].start; x < runs[ru].end; x++) {
				if (x == u || hidden[x])
					continue;
				float sim = 1.0f, cosine = 1.0f;
				if (ru != run_of[u] &&
				    (rc = nd_index_score_pair(ix, r->nodes[u].id, r->nodes[x].id, raw, &sim, &cosine, &err)))
					break;
				tmp[m++] = (struct member){ x, sim, cosine };
			}
		if (rc)
			break;
		if (m == 0) /* the others are hidden */
			continue;
		qsort_r(tmp, m, sizeof(*tmp), cmp_member, &sc);
		struct dd_group *dg = &r->groups[r->n_groups];
		dg->members = malloc((m + 1) * sizeof(*dg->members));
		dg->sims = malloc((m + 1) * sizeof(*dg->sims));
		dg->raws = malloc((m + 1) * sizeof(*dg->raws));
		r->n_groups++;
		if (!dg->members || !dg->sims || !dg->raws) {
			free(first_run);
			free(next_run);
			free(done_g);
			goto oom;
		}
		dg->n = m + 1;
		dg->members[0] = u;
		dg->sims[0] = dg->raws[0] = 1.0f;
		for (size_t k = 0; k < m; k++) {
			dg->members[k + 1] = tmp[k].node;
			dg->sims[k + 1] = tmp[k].sim;
			dg->raws[k + 1] = tmp[k].raw;
		}
		if ((rc = choose_keeper(ix, r, dg, rule, min_sim, raw, run_of, tmp, &err)))
			break;
	}
	free(first_run);
	free(next_run);
	free(done_g);
	if (rc)
		goto index_error;
	if (r->n_groups)
		qsort_r(r->groups, r->n_groups, sizeof(*r->groups), cmp_group_path, &sc);
	status = 0;
	goto done;
oom:
	cli_msg("out of memory while grouping");
	goto done;
index_error:
	cli_msg("cannot read the index: %s", err.msg[0] ? err.msg : nd_strerror(rc));
done:
	free(jc.pairs.v);
	free(hs.v);
	free(canon);
	free(node_of);
	free(runs);
	free(run_of);
	free(edges);
	free(hidden);
	free(comp);
	free(gid);
	free(order);
	free(tmp);
	if (status)
		free_result(r);
	return status;
}

/* ---- output ---- */

static void write_jsonl(FILE *f, const struct dd_result *r)
{
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct dd_group *g = &r->groups[i];
		fprintf(f, "{\"group\": %zu, \"keep\": ", i + 1);
		out_json_str(f, r->nodes[g->members[0]].path);
		fputs(", \"reason\": ", f);
		out_json_str(f, g->reason);
		fputs(", \"members\": [", f);
		for (size_t k = 0; k < g->n; k++) {
			fputs(k ? ", {\"path\": " : "{\"path\": ", f);
			out_json_str(f, r->nodes[g->members[k]].path);
			fprintf(f, ", \"similarity\": %.6f, \"raw_similarity\": %.6f, \"exact\": %s}",
				g->sims[k], g->raws[k], dd_exact(r, g, k) ? "true" : "false");
		}
		fputs("]}\n", f);
	}
}

static void write_tsv(FILE *f, const struct dd_result *r)
{
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct dd_group *g = &r->groups[i];
		for (size_t k = 0; k < g->n; k++) {
			if (k)
				putc('\t', f);
			out_tsv_str(f, r->nodes[g->members[k]].path);
		}
		putc('\n', f);
	}
}

/* Removes ids from the index, reopening it for writing if needed. */
static int forget(const struct cli_common *com, nd_index **ix, int writable, const uint32_t *ids,
		  size_t n)
{
	if (!writable) {
		nd_index_close(*ix);
		*ix = NULL;
		if (cli_index_open(com, 1, NULL, ix)) {
			cli_msg("the index still lists the files changed; run 'neardup remove --missing' "
				"and 'neardup ingest' again");
			return EXIT_SKIPPED;
		}
	}
	nd_error err;
	int rc = nd_index_remove(*ix, ids, n, NULL, &err);
	if (rc) {
		cli_msg("cannot remove the changed files from the index: %s",
			err.msg[0] ? err.msg : nd_strerror(rc));
		return EXIT_SKIPPED;
	}
	return EXIT_ALL_GOOD;
}

int cmd_dedup(int argc, char **argv)
{
	enum { O_MINSIM = OPT_FIRST_PRIVATE, O_SCORE, O_FORMAT, O_KEEP, O_PROTECT, O_ACTION, O_TO, O_YES,
	       O_NEAR };
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "min-sim", required_argument, NULL, O_MINSIM },
		{ "score", required_argument, NULL, O_SCORE },
		{ "format", required_argument, NULL, O_FORMAT },
		{ "output", required_argument, NULL, 'o' },
		{ "keep", required_argument, NULL, O_KEEP },
		{ "protect", required_argument, NULL, O_PROTECT },
		{ "action", required_argument, NULL, O_ACTION },
		{ "to", required_argument, NULL, O_TO },
		{ "yes", no_argument, NULL, O_YES },
		{ "hardlink-near", no_argument, NULL, O_NEAR },
		{ "jobs", required_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	struct cli_common com;
	cli_common_init(&com);
	float min_sim = CLI_DEFAULT_MIN_SIM;
	int min_sim_given = 0;
	int format = 0; /* 0 tsv, 1 jsonl, 2 html */
	const char *output = NULL, *to_dir = NULL;
	enum keep_rule rule = KEEP_ORIGINAL;
	enum dd_action action = DD_REPORT;
	int yes = 0, jobs = cli_default_jobs(), raw = 0, near = 0;
	struct protect pr = { 0 };
	int status = EXIT_FATAL;
	nd_model *m = NULL;
	nd_index *ix = NULL;
	FILE *out = NULL;
	struct dd_result res = { 0 };
	int opt;
	long v;
	double d;

	pr.given = calloc((size_t)argc, sizeof(char *));
	pr.real = calloc((size_t)argc, sizeof(char *));
	if (!pr.given || !pr.real) {
		cli_msg("out of memory");
		goto done;
	}
	while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS "o:j:", longopts, NULL)) != -1) {
		if (cli_common_opt(&com, opt, optarg))
			continue;
		switch (opt) {
		case O_MINSIM:
			if (cli_parse_float("--min-sim", optarg, -CLI_MAX_MIN_SIM, CLI_MAX_MIN_SIM, &d))
				goto done;
			min_sim = (float)d;
			min_sim_given = 1;
			break;
		case O_SCORE:
			if ((raw = cli_parse_score(optarg)) < 0)
				goto done;
			break;
		case O_FORMAT:
			if (!strcmp(optarg, "tsv"))
				format = 0;
			else if (!strcmp(optarg, "jsonl"))
				format = 1;
			else if (!strcmp(optarg, "html"))
				format = 2;
			else {
				cli_msg("invalid value '%s' for --format (jsonl, tsv or html)", optarg);
				goto done;
			}
			break;
		case 'o':
			output = optarg;
			break;
		case O_KEEP: {
			nd_keep_rule k;
			if (nd_keep_rule_parse(optarg, &k)) {
				cli_msg("invalid value '%s' for --keep (original, resolution, largest, "
					"smallest, oldest, newest or first-path)", optarg);
				goto done;
			}
			rule = (enum keep_rule)k;
			break;
		}
		case O_PROTECT: {
			size_t l = strlen(optarg);
			while (l > 1 && optarg[l - 1] == '/')
				l--;
			pr.given[pr.n] = strndup(optarg, l);
			pr.real[pr.n] = realpath(optarg, NULL);
			if (!pr.given[pr.n]) {
				cli_msg("out of memory");
				goto done;
			}
			if (!pr.real[pr.n]) {
				char q[1024];
				cli_msg("cannot use --protect '%s': no such directory",
					cli_quote(optarg, q, sizeof(q)));
				pr.n++;
				goto done;
			}
			pr.n++;
			break;
		}
		case O_ACTION:
			if (dd_parse_action(optarg, 1, &action))
				goto done;
			break;
		case O_TO:
			to_dir = optarg;
			break;
		case O_YES:
			yes = 1;
			break;
		case O_NEAR:
			near = 1;
			break;
		case 'j':
			if (cli_parse_int("-j", optarg, 1, 256, &v))
				goto done;
			jobs = (int)v;
			break;
		case 'h':
			usage(stdout);
			status = EXIT_ALL_GOOD;
			goto done;
		default:
			usage(stderr);
			goto done;
		}
	}
	if (action == DD_MOVE && !to_dir) {
		cli_msg("--action move needs --to DIR");
		goto done;
	}
	if (to_dir && action != DD_MOVE) {
		cli_msg("--to is only for --action move");
		goto done;
	}
	if (near && action != DD_HARDLINK) {
		cli_msg("--hardlink-near is only for --action hardlink");
		goto done;
	}
	if (yes && action == DD_REPORT) {
		cli_msg("--yes needs an --action other than report");
		goto done;
	}

	int ingest_status = EXIT_ALL_GOOD;
	char **paths = argv + optind;
	int npaths = argc - optind;
	/* the model: for ingesting, and for its calibration of the similarity */
	if ((status = cli_model_load(&com, &m)))
		goto done;
	if (npaths > 0) {
		if ((status = cli_index_open(&com, 1, m, &ix)))
			goto done;
		cli_install_signals();
		struct ingest_opts io = { jobs, com.quiet, 0 };
		struct ingest_counts c;
		ingest_status = pipeline_ingest(ix, com.index_dir, m, paths, npaths, &io, &c);
		if (c.signal) {
			status = 128 + c.signal;
			goto done;
		}
		if (ingest_status == EXIT_FATAL) {
			status = EXIT_FATAL;
			goto done;
		}
	} else if ((status = cli_index_open(&com, 0, m, &ix))) {
		goto done;
	}
	nd_model_free(m); /* the calibration keeps its own copy */
	m = NULL;
	status = EXIT_FATAL;
	if (!min_sim_given && !raw && nd_index_scored(ix))
		min_sim = CLI_DEFAULT_SCORE_MIN_SIM;

	if (build_groups(ix, min_sim, raw, rule, &pr, &res))
		goto done;

	if (output) {
		out = fopen(output, "w");
		if (!out) {
			char q[1024];
			cli_msg("cannot open '%s' for writing: %s", cli_quote(output, q, sizeof(q)),
				strerror(errno));
			goto done;
		}
	}
	/* with an action and no --output, stdout carries the action log */
	FILE *rep = out ? out : (action == DD_REPORT ? stdout : NULL);
	int write_failed = 0;
	if (rep) {
		struct dd_html_opts ho = { min_sim, raw, nd_keep_rule_name((nd_keep_rule)rule), action,
					   com.index_dir, ix };
		if (format == 1)
			write_jsonl(rep, &res);
		else if (format == 2)
			write_failed = dd_write_html(rep, &res, &ho) != 0;
		else
			write_tsv(rep, &res);
		if (fflush(rep) != 0 || ferror(rep))
			write_failed = 1;
	}
	if (out) {
		if (fclose(out) != 0)
			write_failed = 1;
		out = NULL;
	}
	if (write_failed) {
		cli_msg("cannot write the report: write error");
		goto done;
	}
	status = ingest_status;
	struct dd_totals totals = { 0 };
	if (action != DD_REPORT) {
		uint32_t *done_ids = malloc((res.n_nodes + 1) * sizeof(*done_ids));
		size_t n_done = 0;
		if (!done_ids) {
			cli_msg("out of memory");
			status = EXIT_FATAL;
			goto done;
		}
		if (yes)
			cli_install_signals(); /* Ctrl-C stops between two files */
		struct dd_act_opts ao = { action, to_dir, yes, near, paths, npaths, pr.given, pr.n,
					  com.index_dir };
		int s = dd_act(stdout, &res, &ao, done_ids, &n_done, &totals);
		if (s > status)
			status = s;
		if (fflush(stdout) != 0) {
			cli_msg("cannot write to standard output");
			status = EXIT_FATAL;
		}
		/* the files changed are no longer what the index describes: drop
		 * them (ingest adds hard-linked ones back as exact duplicates) */
		if (n_done > 0 && (s = forget(&com, &ix, npaths > 0, done_ids, n_done)) > status)
			status = s;
		free(done_ids);
		if (cli_signal)
			status = 128 + cli_signal;
	}
	if (!com.quiet) {
		size_t members = 0;
		for (size_t i = 0; i < res.n_groups; i++)
			members += res.groups[i].n - 1;
		cli_msg("%zu groups, %zu duplicates of a kept image (min-sim %.3f)", res.n_groups,
			members, min_sim);
		/* the totals line comes last */
		dd_print_totals(action, yes, &totals);
	}
done:
	if (out)
		fclose(out);
	free_result(&res);
	for (int i = 0; i < pr.n; i++) {
		free(pr.given[i]);
		free(pr.real[i]);
	}
	free(pr.given);
	free(pr.real);
	nd_index_close(ix);
	nd_model_free(m);
	return status;
}
