/* neardup — near-duplicate groups from scored pairs: connected components
 * of the pairs at or above a threshold, split where a weak bridge joins two
 * parts.
 *
 * Plain connected components chain: one wrong pair between two families of
 * copies puts both families in one group. The guard is the k-cut idea of
 * Pinterest's NearDup in its simplest form: a bridge (a pair whose removal
 * disconnects its component) is cut when both sides hold at least two
 * images and the bridge scores lower, by at least bridge_margin, than the
 * mean pair inside each side. A copy attached to its family by one pair
 * stays (one side is a single image); a chain whose links all score alike
 * stays one group; a weak link between two families does not. Cuts repeat
 * until no bridge qualifies.
 *
 * A pure function of its input (no index, no files): the caller maps its
 * images to nodes 0..n-1.
 *
 *   nd_group_params p; nd_group_params_init(&p); p.min_sim = 0.9f;
 *   uint32_t *comp = malloc(n * sizeof *comp); size_t ng;
 *   nd_group_components(n, edges, ne, &p, comp, &ng, &err);
 *   // comp[i] < ng: node i's group; ND_GROUP_NONE: in no group
 */
#ifndef NEARDUP_GROUP_H
#define NEARDUP_GROUP_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ND_GROUP_NONE UINT32_MAX

typedef struct nd_group_edge {
	uint32_t a, b;            /* nodes, a != b (a pair listed twice counts once) */
	float sim;
} nd_group_edge;

typedef struct nd_group_params {
	float min_sim;            /* pairs below are ignored (default 0.5) */
	float bridge_margin;      /* see above (default 0.02); negative: never cut */
	float cut_ratio;          /* thin cuts (see above; default 0.5); 0: none */
} nd_group_params;
void nd_group_params_init(nd_group_params *p);

/* Groups nodes 0..n-1 (n < ND_GROUP_NONE) by the edges: comp[i] receives
 * node i's group, numbered 0..*ngroups-1 in the order of each group's
 * lowest node, or ND_GROUP_NONE when no kept edge touches it. ND_EINVAL for
 * an edge with a node >= n, a loop or a non-finite score; ND_ENOMEM. */
int nd_group_components(size_t n, const nd_group_edge *edges, size_t ne, const nd_group_params *p,
			uint32_t *comp, size_t *ngroups, nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
