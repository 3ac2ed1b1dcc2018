/* neardup — groups from scored pairs (see neardup/group.h). */
#include "neardup/group.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nd_group_params_init(nd_group_params *p)
{
	p->min_sim = 0.5f;
	p->bridge_margin = 0.02f;
	p->cut_ratio = 0.5f;
}

struct graph {
	size_t n, m;          /* nodes; kept edges */
	uint32_t *ea, *eb;    /* [m] endpoints */
	float *ew;            /* [m] scores */
	unsigned char *cut;   /* [m] removed by a split */
	size_t *start;        /* [n + 1] CSR over adj */
	uint32_t *adj;        /* [2m] edge ids */
};

static uint32_t other_end(const struct graph *g, uint32_t e, uint32_t v)
{
	return g->ea[e] == v ? g->eb[e] : g->ea[e];
}

static uint32_t find(uint32_t *parent, uint32_t x)
{
	while (parent[x] != x) {
		parent[x] = parent[parent[x]];
		x = parent[x];
	}
	return x;
}

/* The global minimum cut of the k x k weight matrix w (Stoer-Wagner,
 * O(k^3)); side[i] = 1 for the nodes on one side. Returns its weight. w is
 * destroyed. */
static double min_cut(double *w, size_t k, unsigned char *side, size_t *grp, size_t *gnext,
		      unsigned char *merged, unsigned char *added, double *key)
{
	double best = INFINITY;
	for (size_t i = 0; i < k; i++) {
		grp[i] = i;       /* head of the chain of original nodes merged into i */
		gnext[i] = SIZE_MAX;
		merged[i] = 0;
	}
	for (size_t phase = k; phase > 1; phase--) {
		memset(added, 0, k);
		for (size_t i = 0; i < k; i++)
			key[i] = 0;
		size_t prev = SIZE_MAX, last = SIZE_MAX;
		for (size_t step = 0; step < phase; step++) {
			size_t sel = SIZE_MAX;
			for (size_t i = 0; i < k; i++)
				if (!merged[i] && !added[i] && (sel == SIZE_MAX || key[i] > key[sel]))
					sel = i;
			added[sel] = 1;
			prev = last;
			last = sel;
			for (size_t i = 0; i < k; i++)
				if (!merged[i] && !added[i])
					key[i] += w[sel * k + i];
		}
		if (key[last] < best) {
			best = key[last];
			memset(side, 0, k);
			for (size_t x = grp[last]; x != SIZE_MAX; x = gnext[x])
				side[x] = 1;
		}
		/* merge last into prev */
		size_t tail = grp[prev];
		while (gnext[tail] != SIZE_MAX)
			tail = gnext[tail];
		gnext[tail] = grp[last];
		merged[last] = 1;
		for (size_t i = 0; i < k; i++) {
			w[prev * k + i] += w[last * k + i];
			w[i * k + prev] = w[prev * k + i];
		}
		w[prev * k + prev] = 0;
	}
	return best;
}

/* One pass over the components of at most ND_GROUP_CUT_MAX nodes: where the
 * minimum cut is thin next to the smaller side (cut weight < cut_ratio x
 * its size, both sides of two or more), cut it. Returns the edges cut, or
 * -1 out of memory. */
#define ND_GROUP_CUT_MAX 256
static long cut_thin(struct graph *g, float ratio)
{
	size_t n = g->n, K = ND_GROUP_CUT_MAX;
	long cuts = 0;
	uint32_t *parent = malloc(n * sizeof(*parent)), *local = malloc(n * sizeof(*local));
	uint32_t *members = malloc(n * sizeof(*members));
	size_t *cstart = calloc(n + 1, sizeof(*cstart)), *grp = malloc(K * sizeof(*grp));
	size_t *gnext = malloc(K * sizeof(*gnext));
	double *w = malloc(K * K * sizeof(*w)), *key = malloc(K * sizeof(*key));
	unsigned char *side = malloc(K), *merged = malloc(K), *added = malloc(K);
	if (!parent || !local || !members || !cstart || !grp || !gnext || !w || !key || !side || !merged || !added) {
		cuts = -1;
		goto done;
	}
	for (size_t v = 0; v < n; v++)
		parent[v] = (uint32_t)v;
	for (size_t e = 0; e < g->m; e++)
		if (!g->cut[e]) {
			uint32_t ra = find(parent, g->ea[e]), rb = find(parent, g->eb[e]);
			if (ra != rb)
				parent[ra] = rb;
		}
	/* members of each root, contiguous (counting sort) */
	for (size_t v = 0; v < n; v++)
		cstart[find(parent, (uint32_t)v) + 1]++;
	for (size_t v = 0; v < n; v++)
		cstart[v + 1] += cstart[v];
	{
		size_t *fill = malloc((n ? n : 1) * sizeof(*fill));
		if (!fill) {
			cuts = -1;
			goto done;
		}
		memcpy(fill, cstart, n * sizeof(*fill));
		for (size_t v = 0; v < n; v++) {
			uint32_t r = find(parent, (uint32_t)v);
			local[v] = (uint32_t)(fill[r] - cstart[r]);
			members[fill[r]++] = (uint32_t)v;
		}
		free(fill);
	}
	for (size_t r = 0; r < n; r++) {
		size_t k = cstart[r + 1] - cstart[r];
		if (k < 4 || k > K)
			continue;
		const uint32_t *mem = members + cstart[r];
		for (size_t i = 0; i < k * k; i++)
			w[i] = 0;
		for (size_t i = 0; i < k; i++) {
			uint32_t v = mem[i];
			for (size_t a = g->start[v]; a < g->start[v + 1]; a++) {
				uint32_t e = g->adj[a];
				if (!g->cut[e])
					w[i * k + local[other_end(g, e, v)]] += g->ew[e];
			}
		}
		double c = min_cut(w, k, side, grp, gnext, merged, added, key);
		size_t in = 0;
		for (size_t i = 0; i < k; i++)
			in += side[i];
		size_t small = in < k - in ? in : k - in;
		if (small < 2 || !(c < ratio * (double)small))
			continue;
		for (size_t i = 0; i < k; i++) {
			uint32_t v = mem[i];
			for (size_t a = g->start[v]; a < g->start[v + 1]; a++) {
				uint32_t e = g->adj[a], u = other_end(g, e, v);
				if (!g->cut[e] && side[i] && !side[local[u]]) {
					g->cut[e] = 1;
					cuts++;
				}
			}
		}
	}
done:
	free(parent);
	free(local);
	free(members);
	free(cstart);
	free(grp);
	free(gnext);
	free(w);
	free(key);
	free(side);
	free(merged);
	free(added);
	return cuts;
}

/* One pass over every component: finds the bridges (iterative DFS,
 * lowpoints by edge id so that a pair listed twice is no bridge) and marks
 * the qualifying ones cut. Returns how many it cut, or -1 out of memory. */
static long cut_bridges(struct graph *g, float margin)
{
	size_t n = g->n;
	long cuts = 0;
	uint32_t *tin = malloc(n * sizeof(*tin)), *low = malloc(n * sizeof(*low));
	uint32_t *pe = malloc(n * sizeof(*pe)), *stack = malloc(n * sizeof(*stack));
	size_t *it = malloc(n * sizeof(*it)), *sub = malloc(n * sizeof(*sub));
	size_t *subdeg = malloc(n * sizeof(*subdeg));
	double *subw = malloc(n * sizeof(*subw));
	uint32_t *comp_root = malloc(n * sizeof(*comp_root));
	unsigned char *mark = calloc(g->m ? g->m : 1, 1);
	if (!tin || !low || !pe || !stack || !it || !sub || !subdeg || !subw || !comp_root || !mark) {
		cuts = -1;
		goto done;
	}
	for (size_t v = 0; v < n; v++)
		tin[v] = UINT32_MAX;
	uint32_t timer = 0;
	for (size_t r = 0; r < n; r++) {
		if (tin[r] != UINT32_MAX || g->start[r] == g->start[r + 1])
			continue;
		size_t sp = 0;
		stack[sp++] = (uint32_t)r;
		tin[r] = low[r] = timer++;
		pe[r] = UINT32_MAX;
		it[r] = g->start[r];
		sub[r] = 1;
		subdeg[r] = 0;
		subw[r] = 0;
		comp_root[r] = (uint32_t)r;
		while (sp) {
			uint32_t v = stack[sp - 1];
			if (it[v] < g->start[v + 1]) {
				uint32_t e = g->adj[it[v]++];
				if (g->cut[e] || e == pe[v])
					continue;
				subdeg[v]++;
				subw[v] += g->ew[e];
				uint32_t u = other_end(g, e, v);
				if (tin[u] == UINT32_MAX) {
					tin[u] = low[u] = timer++;
					pe[u] = e;
					it[u] = g->start[u];
					sub[u] = 1;
					subdeg[u] = 1; /* the tree edge to the parent */
					subw[u] = g->ew[e];
					comp_root[u] = (uint32_t)r;
					stack[sp++] = u;
				} else if (tin[u] < low[v]) {
					low[v] = tin[u];
				}
				continue;
			}
			sp--;
			if (pe[v] == UINT32_MAX)
				continue;
			uint32_t p = other_end(g, pe[v], v);
			if (low[v] < low[p])
				low[p] = low[v];
			sub[p] += sub[v];
			subdeg[p] += subdeg[v];
			subw[p] += subw[v];
			if (low[v] > tin[p])
				mark[pe[v]] = 1; /* a bridge; judged below with the whole component known */
		}
	}
	/* a bridge (p, v), v the child: v's side is v's subtree, whose edge ends
	 * (subdeg, subw) count every inner edge twice and the bridge once */
	for (size_t v = 0; v < n; v++) {
		if (tin[v] == UINT32_MAX || pe[v] == UINT32_MAX || !mark[pe[v]])
			continue;
		uint32_t e = pe[v], root = comp_root[v];
		double w = g->ew[e];
		size_t in_n = sub[v], out_n = sub[root] - sub[v];
		if (in_n < 2 || out_n < 2)
			continue;
		double in_edges = (double)(subdeg[v] - 1) / 2, in_w = (subw[v] - w) / 2;
		double out_edges = (double)(subdeg[root] - subdeg[v] - 1) / 2;
		double out_w = (subw[root] - subw[v] - w) / 2;
		if (in_edges < 1 || out_edges < 1)
			continue;
		if (w + margin <= in_w / in_edges && w + margin <= out_w / out_edges) {
			g->cut[e] = 1;
			cuts++;
		}
	}
done:
	free(tin);
	free(low);
	free(pe);
	free(stack);
	free(it);
	free(sub);
	free(subdeg);
	free(subw);
	free(comp_root);
	free(mark);
	return cuts;
}


int nd_group_components(size_t n, const nd_group_edge *edges, size_t ne, const nd_group_params *p,
			uint32_t *comp, size_t *ngroups, nd_error *err)
{
	struct graph g = { 0 };
	uint32_t *parent = NULL;
	int rc = 0;
	if (n >= ND_GROUP_NONE)
		return nd_error_set(err, ND_EINVAL, "%zu nodes: too many to group", n);
	for (size_t i = 0; i < ne; i++) {
		if (edges[i].a >= n || edges[i].b >= n || edges[i].a == edges[i].b || !isfinite(edges[i].sim))
			return nd_error_set(err, ND_EINVAL, "pair %zu (%u, %u, %g) is not an edge of %zu nodes", i,
					    edges[i].a, edges[i].b, (double)edges[i].sim, n);
	}
	g.n = n;
	for (size_t i = 0; i < ne; i++)
		g.m += edges[i].sim >= p->min_sim;
	size_t m1 = g.m ? g.m : 1;
	g.ea = malloc(m1 * sizeof(*g.ea));
	g.eb = malloc(m1 * sizeof(*g.eb));
	g.ew = malloc(m1 * sizeof(*g.ew));
	g.cut = calloc(m1, 1);
	g.start = calloc(n + 1, sizeof(*g.start));
	g.adj = malloc(2 * m1 * sizeof(*g.adj));
	parent = malloc((n ? n : 1) * sizeof(*parent));
	if (!g.ea || !g.eb || !g.ew || !g.cut || !g.start || !g.adj || !parent)
		goto oom;
	size_t k = 0;
	for (size_t i = 0; i < ne; i++)
		if (edges[i].sim >= p->min_sim) {
			g.ea[k] = edges[i].a;
			g.eb[k] = edges[i].b;
			g.ew[k] = edges[i].sim;
			g.start[edges[i].a + 1]++;
			g.start[edges[i].b + 1]++;
			k++;
		}
	for (size_t v = 0; v < n; v++)
		g.start[v + 1] += g.start[v];
	{
		size_t *fill = malloc((n ? n : 1) * sizeof(*fill));
		if (!fill)
			goto oom;
		memcpy(fill, g.start, n * sizeof(*fill));
		for (size_t e = 0; e < g.m; e++) {
			g.adj[fill[g.ea[e]]++] = (uint32_t)e;
			g.adj[fill[g.eb[e]]++] = (uint32_t)e;
		}
		free(fill);
	}
	for (;;) {
		long c = 0, t = 0;
		if (p->bridge_margin >= 0 && (c = cut_bridges(&g, p->bridge_margin)) < 0)
			goto oom;
		if (p->cut_ratio > 0 && (t = cut_thin(&g, p->cut_ratio)) < 0)
			goto oom;
		if (c == 0 && t == 0)
			break;
	}
	for (size_t v = 0; v < n; v++)
		parent[v] = (uint32_t)v;
	for (size_t e = 0; e < g.m; e++) {
		if (g.cut[e])
			continue;
		uint32_t ra = find(parent, g.ea[e]), rb = find(parent, g.eb[e]);
		if (ra != rb)
			parent[ra > rb ? ra : rb] = ra < rb ? ra : rb; /* the lowest node is the root */
	}
	/* number groups by their lowest node; a node without a kept edge is in none */
	size_t ng = 0;
	for (size_t v = 0; v < n; v++)
		comp[v] = ND_GROUP_NONE;
	for (size_t v = 0; v < n; v++) {
		int touched = 0;
		for (size_t a = g.start[v]; a < g.start[v + 1] && !touched; a++)
			touched = !g.cut[g.adj[a]];
		if (!touched)
			continue;
		uint32_t r = find(parent, (uint32_t)v);
		if (comp[r] == ND_GROUP_NONE)
			comp[r] = (uint32_t)ng++; /* r <= v: met first */
		comp[v] = comp[r];
	}
	*ngroups = ng;
	goto done;
oom:
	rc = nd_error_set(err, ND_ENOMEM, "out of memory for grouping %zu nodes", n);
done:
	free(g.ea);
	free(g.eb);
	free(g.ew);
	free(g.cut);
	free(g.start);
	free(g.adj);
	free(parent);
	return rc;
}
