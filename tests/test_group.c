/* Tests of the grouping (src/group.c): cliques, chains, weak bridges
 * between dense parts, single copies on one pair, exact-duplicate runs
 * (pairs listed twice), the threshold, bad input, and plain components
 * against a naive reference on random graphs. */
#include <stdint.h>
#include <stdlib.h>

#include "neardup/group.h"
#include "test.h"

#define MAXE 4096

struct g {
	nd_group_edge e[MAXE];
	size_t n;
};

static void add(struct g *g, uint32_t a, uint32_t b, float s)
{
	ND_ASSERT(g->n < MAXE);
	g->e[g->n++] = (nd_group_edge){ a, b, s };
}

/* every pair of nodes [lo, hi) at score s */
static void clique(struct g *g, uint32_t lo, uint32_t hi, float s)
{
	for (uint32_t a = lo; a < hi; a++)
		for (uint32_t b = a + 1; b < hi; b++)
			add(g, a, b, s);
}

static size_t group(const struct g *g, size_t n, float margin, uint32_t *comp)
{
	nd_group_params p;
	nd_group_params_init(&p);
	p.min_sim = 0.9f;
	p.bridge_margin = margin;
	if (margin < 0) /* no guard at all: plain components */
		p.cut_ratio = 0;
	size_t ng = 12345;
	nd_error err;
	CHECK_EQ_INT(nd_group_components(n, g->e, g->n, &p, comp, &ng, &err), 0);
	return ng;
}

static void test_clique_and_chain(void)
{
	static struct g g;
	uint32_t comp[16];
	g.n = 0;
	clique(&g, 0, 5, 0.97f);
	CHECK_EQ_INT(group(&g, 5, 0.02f, comp), 1);
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(comp[i], 0);
	/* a chain whose links score alike is one group: no link is weaker */
	g.n = 0;
	for (uint32_t i = 0; i + 1 < 8; i++)
		add(&g, i, i + 1, 0.95f);
	CHECK_EQ_INT(group(&g, 8, 0.02f, comp), 1);
	for (int i = 0; i < 8; i++)
		CHECK_EQ_INT(comp[i], 0);
}

/* two dense families joined by one weak pair: two groups (one with the
 * guard off); a copy on a single pair stays with its family */
static void test_bridge(void)
{
	static struct g g;
	uint32_t comp[16];
	g.n = 0;
	clique(&g, 0, 4, 0.98f);
	clique(&g, 4, 9, 0.97f);
	add(&g, 2, 6, 0.91f);
	add(&g, 8, 9, 0.91f); /* node 9: one weak pair, one image on its side */
	CHECK_EQ_INT(group(&g, 10, 0.02f, comp), 2);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(comp[i], 0);
	for (int i = 4; i < 10; i++)
		CHECK_EQ_INT(comp[i], 1);
	CHECK_EQ_INT(group(&g, 10, -1.0f, comp), 1); /* no guard: chained */
	/* a strong bridge (not weaker than the parts) stays */
	CHECK(g.e[16].a == 2 && g.e[16].b == 6); /* 6 + 10 clique pairs come first */
	g.e[16].sim = 0.975f;
	CHECK_EQ_INT(group(&g, 10, 0.02f, comp), 1);
	/* a single image between two families, one weak pair to each: both
	 * bridges go, and it is left alone */
	g.n = 0;
	clique(&g, 0, 4, 0.98f);
	clique(&g, 5, 9, 0.98f);
	add(&g, 3, 4, 0.92f);
	add(&g, 4, 5, 0.92f);
	CHECK_EQ_INT(group(&g, 9, 0.02f, comp), 2);
	CHECK_EQ_INT(comp[0], 0);
	CHECK_EQ_INT(comp[8], 1);
	CHECK_EQ_INT(comp[4], ND_GROUP_NONE);
}

/* two families joined by two pairs (no bridge): a thin cut next to the
 * smaller side (2 < 0.5 x 5) splits them; four pairs between families of
 * five do not (4 >= 2.5) */
static void test_thin_cut(void)
{
	static struct g g;
	uint32_t comp[16];
	g.n = 0;
	clique(&g, 0, 5, 0.97f);
	clique(&g, 5, 10, 0.97f);
	add(&g, 0, 5, 0.95f);
	add(&g, 1, 6, 0.95f);
	CHECK_EQ_INT(group(&g, 10, 0.02f, comp), 2);
	CHECK_EQ_INT(comp[4], 0);
	CHECK_EQ_INT(comp[9], 1);
	add(&g, 2, 7, 0.95f);
	add(&g, 3, 8, 0.95f);
	CHECK_EQ_INT(group(&g, 10, 0.02f, comp), 1);
	/* a copy on two pairs of a family stays (its side is one image) */
	g.n = 0;
	clique(&g, 0, 6, 0.97f);
	add(&g, 6, 0, 0.92f);
	add(&g, 6, 1, 0.92f);
	CHECK_EQ_INT(group(&g, 7, 0.02f, comp), 1);
	CHECK_EQ_INT(comp[6], 0);
}

/* byte-identical files: the caller lists a pair more than once (both
 * orders, score 1); a doubled pair is no bridge */
static void test_exact_runs(void)
{
	static struct g g;
	uint32_t comp[8];
	g.n = 0;
	clique(&g, 0, 3, 0.99f);
	clique(&g, 3, 5, 0.99f);
	add(&g, 2, 3, 0.91f);
	add(&g, 3, 2, 0.91f);
	CHECK_EQ_INT(group(&g, 6, 0.02f, comp), 1);
	g.n = 0;
	add(&g, 1, 2, 1.0f);
	add(&g, 2, 1, 1.0f);
	add(&g, 1, 2, 1.0f);
	CHECK_EQ_INT(group(&g, 4, 0.02f, comp), 1);
	CHECK_EQ_INT(comp[0], ND_GROUP_NONE);
	CHECK_EQ_INT(comp[1], 0);
	CHECK_EQ_INT(comp[2], 0);
	CHECK_EQ_INT(comp[3], ND_GROUP_NONE);
}

static void test_threshold_and_order(void)
{
	static struct g g;
	uint32_t comp[8];
	g.n = 0;
	add(&g, 6, 7, 0.95f);
	add(&g, 1, 5, 0.93f);
	add(&g, 5, 6, 0.89f); /* below 0.9: ignored */
	CHECK_EQ_INT(group(&g, 8, 0.02f, comp), 2);
	CHECK_EQ_INT(comp[1], 0); /* numbered by the lowest node */
	CHECK_EQ_INT(comp[5], 0);
	CHECK_EQ_INT(comp[6], 1);
	CHECK_EQ_INT(comp[7], 1);
	CHECK_EQ_INT(comp[0], ND_GROUP_NONE);
	g.n = 0;
	CHECK_EQ_INT(group(&g, 0, 0.02f, comp), 0); /* nothing at all */
}

static void test_bad_input(void)
{
	nd_group_params p;
	nd_group_params_init(&p);
	nd_error err;
	uint32_t comp[4];
	size_t ng = 0;
	nd_group_edge e = { 0, 4, 0.95f };
	CHECK_EQ_INT(nd_group_components(4, &e, 1, &p, comp, &ng, &err), ND_EINVAL);
	e = (nd_group_edge){ 2, 2, 0.95f };
	CHECK_EQ_INT(nd_group_components(4, &e, 1, &p, comp, &ng, &err), ND_EINVAL);
	e = (nd_group_edge){ 1, 2, NAN };
	CHECK_EQ_INT(nd_group_components(4, &e, 1, &p, comp, &ng, &err), ND_EINVAL);
}

static uint32_t naive_find(uint32_t *par, uint32_t x)
{
	return par[x] == x ? x : (par[x] = naive_find(par, par[x]));
}

/* without the guard the groups are the connected components; with it every
 * group lies inside one component; a long chain does not overflow a stack */
static void test_random_and_deep(void)
{
	static struct g g;
	enum { N = 300 };
	uint32_t comp[N], comp2[N], par[N];
	uint64_t s = 11;
	for (int r = 0; r < 20; r++) {
		g.n = 0;
		for (int i = 0; i < 400; i++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t a = (uint32_t)(s >> 33) % N, b = (uint32_t)(s >> 13) % N;
			if (a != b)
				add(&g, a, b, 0.85f + (float)((s >> 5) % 150) / 1000);
		}
		for (uint32_t i = 0; i < N; i++)
			par[i] = i;
		for (size_t i = 0; i < g.n; i++)
			if (g.e[i].sim >= 0.9f)
				par[naive_find(par, g.e[i].a)] = naive_find(par, g.e[i].b);
		group(&g, N, -1.0f, comp);
		group(&g, N, 0.0f, comp2);
		for (uint32_t i = 0; i < N; i++)
			for (uint32_t j = i + 1; j < N; j++) {
				int same = naive_find(par, i) == naive_find(par, j);
				int touched = comp[i] != ND_GROUP_NONE;
				CHECK(!touched || (comp[i] == comp[j]) == same);
				CHECK(comp2[i] == ND_GROUP_NONE || comp2[i] != comp2[j] || same);
			}
	}
	enum { D = 200000 };
	nd_group_edge *e = malloc(sizeof(*e) * D);
	uint32_t *c = malloc(sizeof(*c) * D);
	for (uint32_t i = 0; i + 1 < D; i++)
		e[i] = (nd_group_edge){ i, i + 1, 0.95f };
	nd_group_params p;
	nd_group_params_init(&p);
	size_t ng = 0;
	nd_error err;
	CHECK_EQ_INT(nd_group_components(D, e, D - 1, &p, c, &ng, &err), 0);
	CHECK_EQ_INT(ng, 1);
	CHECK_EQ_INT(c[D - 1], 0);
	free(e);
	free(c);
}

int main(void)
{
	RUN(test_clique_and_chain);
	RUN(test_bridge);
	RUN(test_thin_cut);
	RUN(test_exact_runs);
	RUN(test_threshold_and_order);
	RUN(test_bad_input);
	RUN(test_random_and_deep);
	return test_summary();
}
