/* neardup — keep rules (see neardup/keep.h). */
#include "neardup/keep.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const names[ND_KEEP_RULE_COUNT] = {
	[ND_KEEP_ORIGINAL] = "original", [ND_KEEP_RESOLUTION] = "resolution",
	[ND_KEEP_LARGEST] = "largest",   [ND_KEEP_SMALLEST] = "smallest",
	[ND_KEEP_OLDEST] = "oldest",     [ND_KEEP_NEWEST] = "newest",
	[ND_KEEP_FIRST_PATH] = "first-path",
};

const char *nd_keep_rule_name(nd_keep_rule r)
{
	return (unsigned)r < ND_KEEP_RULE_COUNT ? names[r] : "unknown";
}

int nd_keep_rule_parse(const char *name, nd_keep_rule *r)
{
	for (int i = 0; i < ND_KEEP_RULE_COUNT; i++)
		if (!strcmp(name, names[i])) {
			*r = (nd_keep_rule)i;
			return 0;
		}
	return ND_EINVAL;
}

#define DECIDE(cond_a_first, cond_differ, reason) \
	do {                                              \
		if (cond_differ) {                        \
			if (why)                          \
				*why = (reason);          \
			return (cond_a_first) ? -1 : 1;   \
		}                                         \
	} while (0)

/* The score in whole steps of step, so that equality is transitive. */
static long score_step(const nd_keep_item *it, float step)
{
	float s = nd_origin_score(it->origin, it->width, it->height);
	return lrintf(floorf(s / step));
}

static int cmp_original(const nd_keep_item *a, const nd_keep_item *b, const char **why)
{
	const nd_origin *oa = a->origin, *ob = b->origin;
	int ga = nd_origin_is_grey(oa), gb = nd_origin_is_grey(ob);
	DECIDE(!ga, ga != gb, "colour");
	DECIDE(oa->camera, oa->camera != ob->camera, "camera EXIF");
	int la = nd_origin_lossy(oa), lb = nd_origin_lossy(ob);
	DECIDE(la < lb, la != lb, "less compressed");
	long sa = score_step(a, ND_KEEP_SCORE_STEP), sb = score_step(b, ND_KEEP_SCORE_STEP);
	DECIDE(sa > sb, sa != sb, "less edited");
	DECIDE(oa->taken < ob->taken, oa->taken && ob->taken && oa->taken != ob->taken, "earlier capture");
	DECIDE(a->mtime_ns < b->mtime_ns, a->mtime_ns != b->mtime_ns, "older file");
	sa = score_step(a, ND_KEEP_SCORE_FINE);
	sb = score_step(b, ND_KEEP_SCORE_FINE);
	DECIDE(sa > sb, sa != sb, "less edited");
	/* a frame adds pixels, not picture */
	double ca = (double)a->width * a->height * (1.0 - oa->margin);
	double cb = (double)b->width * b->height * (1.0 - ob->margin);
	DECIDE(ca > cb, ca != cb, "more content pixels");
	return 0;
}

int nd_keep_cmp(nd_keep_rule rule, const nd_keep_item *a, const nd_keep_item *b, const char **why)
{
	uint64_t pa = (uint64_t)a->width * a->height, pb = (uint64_t)b->width * b->height;
	int c;
	switch (rule) {
	case ND_KEEP_ORIGINAL:
		if (a->origin && b->origin && (c = cmp_original(a, b, why)))
			return c;
		break;
	case ND_KEEP_RESOLUTION:
	case ND_KEEP_RULE_COUNT:
		break;
	case ND_KEEP_LARGEST:
		DECIDE(a->size > b->size, a->size != b->size, "larger file");
		break;
	case ND_KEEP_SMALLEST:
		DECIDE(a->size < b->size, a->size != b->size, "smaller file");
		break;
	case ND_KEEP_OLDEST:
		DECIDE(a->mtime_ns < b->mtime_ns, a->mtime_ns != b->mtime_ns, "older file");
		break;
	case ND_KEEP_NEWEST:
		DECIDE(a->mtime_ns > b->mtime_ns, a->mtime_ns != b->mtime_ns, "newer file");
		break;
	case ND_KEEP_FIRST_PATH:
		c = strcmp(a->path, b->path);
		DECIDE(c < 0, c != 0, "first path");
		break;
	}
	DECIDE(pa > pb, pa != pb, "more pixels");
	DECIDE(a->size > b->size, a->size != b->size, "larger file");
	DECIDE(a->mtime_ns < b->mtime_ns, a->mtime_ns != b->mtime_ns, "older file");
	c = strcmp(a->path, b->path);
	DECIDE(c < 0, c != 0, "first path");
	DECIDE(a->id < b->id, a->id != b->id, "lower id");
	if (why)
		*why = "identical";
	return 0;
}

/* Index of the best member among those with ok[i] (ok NULL: all), except
 * skip; SIZE_MAX when none. */
static size_t best_of(const nd_keep_member *m, size_t n, const unsigned char *ok, size_t skip,
		      nd_keep_rule rule)
{
	size_t b = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		if (i == skip || (ok && !ok[i]))
			continue;
		if (b == SIZE_MAX || nd_keep_cmp(rule, &m[i].item, &m[b].item, NULL) < 0)
			b = i;
	}
	return b;
}

/* Width:height within 2% (0 sides: unknown, the same as any). */
static int same_shape(const nd_keep_item *a, const nd_keep_item *b)
{
	if (!a->width || !a->height || !b->width || !b->height)
		return 1;
	double r = ((double)a->width * b->height) / ((double)a->height * b->width);
	return fabs(log(r)) < 0.02;
}

int nd_keep_choose(const nd_keep_member *m, size_t n, const float *sim, nd_keep_rule rule,
		   float margin, nd_keep_choice *out)
{
	unsigned char ok[ND_KEEP_CENTRAL_MAX];
	double cen[ND_KEEP_CENTRAL_MAX];
	size_t shared[ND_KEEP_CENTRAL_MAX];
	size_t p = SIZE_MAX;
	for (size_t i = 0; i < n; i++)
		if (m[i].can_keep && (p == SIZE_MAX || nd_keep_cmp(rule, &m[i].item, &m[p].item, NULL) < 0))
			p = i;
	if (p == SIZE_MAX)
		return ND_EINVAL;
	out->keeper = p;
	out->central = 0;
	out->why = NULL;
	if (rule == ND_KEEP_ORIGINAL && sim && n >= 3 && n <= ND_KEEP_CENTRAL_MAX) {
		double best = -INFINITY;
		for (size_t i = 0; i < n; i++) {
			double s = 0;
			for (size_t j = 0; j < n; j++)
				if (j != i)
					s += sim[i * n + j];
			cen[i] = s / (double)(n - 1);
			if (m[i].can_keep && cen[i] > best)
				best = cen[i];
		}
		/* the shape most members share: most edits keep the picture's
		 * shape, so a stretched copy, as central as its source to a
		 * model that sees a square, is in the minority */
		size_t most = 0, any = 0;
		for (size_t i = 0; i < n; i++) {
			shared[i] = 0;
			for (size_t j = 0; j < n; j++)
				shared[i] += same_shape(&m[i].item, &m[j].item);
			if (shared[i] > most)
				most = shared[i];
		}
		for (size_t i = 0; i < n; i++) {
			ok[i] = m[i].can_keep && cen[i] >= best - margin;
			any += ok[i] && shared[i] == most;
		}
		for (size_t i = 0; any && i < n; i++)
			ok[i] = ok[i] && shared[i] == most;
		size_t c = best_of(m, n, ok, SIZE_MAX, rule);
		if (c != p) {
			out->keeper = c;
			out->central = 1;
			size_t r = best_of(m, n, ok, c, rule);
			if (r != SIZE_MAX)
				nd_keep_cmp(rule, &m[c].item, &m[r].item, &out->why);
			return 0;
		}
	}
	size_t r = best_of(m, n, NULL, p, rule);
	if (r != SIZE_MAX)
		nd_keep_cmp(rule, &m[p].item, &m[r].item, &out->why);
	return 0;
}

char *nd_keep_reason(const nd_keep_choice *c, char *buf, size_t cap)
{
	if (!cap)
		return buf;
	if (c->central)
		snprintf(buf, cap, "most central%s%s", c->why ? ", " : "", c->why ? c->why : "");
	else
		snprintf(buf, cap, "%s", c->why ? c->why : "only one");
	return buf;
}
