/* neardup — query views: choosing the query-side views and merging their results.
 * The views themselves are built by embedder_add_views (embed.h). */
#ifndef NEARDUP_VIEWS_H
#define NEARDUP_VIEWS_H

#include <stddef.h>

#include "embed.h"
#include "neardup/index.h"

/* Parses --views LIST: comma-separated words "rotations", "crops", "all"
 * (both) or "none" (identity only, alone). Returns the view mask (always with
 * VIEW_IDENTITY), or 0 with the offending word's text in bad[badcap]. */
unsigned views_parse(const char *list, char *bad, size_t badcap);

/* One merged result: the best of an image's hits over the views. */
struct view_hit {
	nd_hit hit;     /* sim: the active score (calibrated unless --score raw) */
	enum view view; /* the view that gave it */
};

/* Merges n lists of hits (lists[v][0..counts[v]), list v from view
 * views[v]) into out: one entry per image id, the one with the highest sim
 * (ties: the earlier list; lists come in enum view order), sorted by sim descending, then id ascending, at
 * most k entries. out has room for the sum of counts. Returns the count. */
size_t views_merge(const nd_hit *const *lists, const size_t *counts, const enum view *views, int n,
		   size_t k, struct view_hit *out);

#endif
