/* neardup — keep rules (see neardup/keep.h). */
#include "neardup/keep.h"

#include <math.h>
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
