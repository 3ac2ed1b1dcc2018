/* neardup — what the collection's files (collection.c, collection_add.c,
 * collection_query.c, collection_dedup.c) share. */
#ifndef NEARDUP_COLLECTION_IMPL_H
#define NEARDUP_COLLECTION_IMPL_H

#include <pthread.h>

#include "embed.h"
#include "neardup/calib.h"
#include "neardup/neardup.h"

/* A query/embed workspace, lent to one call at a time. */
struct coll_embedder {
	struct coll_embedder *next;
	struct embedder e;   /* batch: one slot per view */
};

struct nd_collection {
	char *dir;
	nd_model *own_model;     /* loaded by the open, or NULL */
	const nd_model *model;
	nd_calib *calib;         /* NULL: the model has no calibration */
	nd_index *ix;
	int readonly;
	size_t dim;
	pthread_mutex_t pool_mu;
	struct coll_embedder *pool; /* idle workspaces */
};

/* Takes an idle workspace from the pool, or makes one. */
int nd__collection_embedder_get(nd_collection *c, struct coll_embedder **out, nd_error *err);
/* Gives it back (NULL is fine). */
void nd__collection_embedder_put(nd_collection *c, struct coll_embedder *ce);

/* ND_EINVAL ("collection 'DIR' is open read-only") unless c may be written. */
int nd__collection_writable(nd_collection *c, nd_error *err);

#endif
