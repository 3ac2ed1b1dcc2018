/* neardup query — --views parsing and the per-image merge of the views'
 * results. */
#include "views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned views_parse(const char *list, char *bad, size_t badcap)
{
	unsigned mask = VIEW_BIT(VIEW_IDENTITY);
	int none = 0, words = 0;
	const char *p = list;
	for (;;) {
		size_t len = strcspn(p, ",");
		words++;
		if (len == 4 && !strncmp(p, "none", 4))
			none = 1;
		else if (len == 9 && !strncmp(p, "rotations", 9))
			mask |= VIEWS_ROTATIONS;
		else if (len == 5 && !strncmp(p, "crops", 5))
			mask |= VIEWS_CROPS;
		else if (len == 3 && !strncmp(p, "all", 3))
			mask |= VIEWS_ALL;
		else {
			snprintf(bad, badcap, "%.*s", (int)len, p);
			return 0;
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	if (none && words > 1) {
		snprintf(bad, badcap, "none");
		return 0;
	}
	return mask;
}

/* id ascending, then sim descending, then earlier list (view) first */
static int by_id_best(const void *a, const void *b)
{
	const struct view_hit *x = a, *y = b;
	if (x->hit.id != y->hit.id)
		return x->hit.id < y->hit.id ? -1 : 1;
	if (x->hit.sim != y->hit.sim)
		return x->hit.sim > y->hit.sim ? -1 : 1;
	return (x->view > y->view) - (x->view < y->view);
}

/* sim descending, then id ascending */
static int by_rank(const void *a, const void *b)
{
	const struct view_hit *x = a, *y = b;
	if (x->hit.sim != y->hit.sim)
		return x->hit.sim > y->hit.sim ? -1 : 1;
	return (x->hit.id > y->hit.id) - (x->hit.id < y->hit.id);
}

size_t views_merge(const nd_hit *const *lists, const size_t *counts, const enum view *views, int n,
		   size_t k, struct view_hit *out)
{
	size_t m = 0;
	for (int v = 0; v < n; v++) {
		for (size_t i = 0; i < counts[v]; i++) {
			out[m].hit = lists[v][i];
			out[m].view = views[v];
			m++;
		}
	}
	/* views are given in enum order, so "earlier view" is "earlier list" */
	qsort(out, m, sizeof(*out), by_id_best);
	size_t u = 0;
	for (size_t i = 0; i < m; i++)
		if (u == 0 || out[u - 1].hit.id != out[i].hit.id)
			out[u++] = out[i];
	qsort(out, u, sizeof(*out), by_rank);
	return u < k ? u : k;
}
