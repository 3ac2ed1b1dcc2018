/* neardup-mpi query — rank 0 runs the ordinary query; each query searches
 * rank 0's own shards on threads and is broadcast to the other ranks,
 * which search the shards they own (s mod ranks = rank) and send back
 * their top k (ids global), merged by score on rank 0 as one index ranks
 * them. Rank 0 reads the records of the hits from the shards, so the
 * collection must be on a file system rank 0 reads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mpi_util.h"
#include "neardup/shard.h"

struct qmsg {
	int go;
	uint32_t dim;
	nd_query_params p;
};

static pthread_mutex_t mpi_mu = PTHREAD_MUTEX_INITIALIZER;

static int own_shard(void *ctx, uint32_t shard)
{
	return (int)(shard % (uint32_t)mpi_size) == mpi_rank;
}

static int cmp_hit(const void *x, const void *y)
{
	const nd_hit *a = x, *b = y;
	if (a->sim != b->sim)
		return a->sim > b->sim ? -1 : 1;
	return (a->id > b->id) - (a->id < b->id);
}

/* This rank's top k over its own shards of ix (ids global). */
static int query_own(nd_index *ix, const float *vec, const nd_query_params *p, nd_hit *out, size_t *n)
{
	uint32_t N = nd_index_shards(ix);
	nd_hit *h = malloc((size_t)p->k * sizeof(*h)), *all = malloc((size_t)p->k * sizeof(*all) * (N / mpi_size + 1));
	size_t total = 0;
	int rc = 0;
	nd_error err;
	nd_error_clear(&err);
	if (!h || !all)
		rc = ND_ENOMEM;
	for (uint32_t s = (uint32_t)mpi_rank; s < N && !rc; s += (uint32_t)mpi_size) {
		size_t c = 0;
		if ((rc = nd_index_query(nd_index_shard(ix, s), vec, p, h, &c, NULL, &err)))
			break;
		for (size_t i = 0; i < c && !rc; i++)
			if (!(rc = nd_shard_gid(h[i].id, s, N, &h[i].id, &err)))
				all[total++] = h[i];
	}
	if (!rc) {
		qsort(all, total, sizeof(*all), cmp_hit);
		*n = total < p->k ? total : p->k;
		memcpy(out, all, *n * sizeof(*out));
	}
	free(h);
	free(all);
	return rc;
}

/* Rank 0: the other ranks' hits for this query. */
static int remote_query(void *ctx, const float *vec, const nd_query_params *p, nd_hit *hits, size_t *n,
			nd_error *err)
{
	struct qmsg msg;
	int rc = 0;
	memset(&msg, 0, sizeof(msg));
	msg.go = 1;
	msg.dim = *(const uint32_t *)ctx;
	msg.p = *p;
	pthread_mutex_lock(&mpi_mu);
	MPI_Bcast(&msg, sizeof(msg), MPI_BYTE, 0, MPI_COMM_WORLD);
	MPI_Bcast((void *)vec, (int)msg.dim, MPI_FLOAT, 0, MPI_COMM_WORLD);
	int k = (int)p->k, zero = 0, *counts = calloc(mpi_size, sizeof(int)), *displs = calloc(mpi_size, sizeof(int));
	nd_hit *all = malloc((size_t)mpi_size * p->k * sizeof(*all));
	MPI_Gather(&zero, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
	size_t total = 0;
	for (int d = 0; d < mpi_size; d++) {
		displs[d] = (int)(total * sizeof(nd_hit));
		total += (size_t)counts[d] / sizeof(nd_hit);
	}
	MPI_Gatherv(NULL, 0, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
	pthread_mutex_unlock(&mpi_mu);
	if (!counts || !displs || !all) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
	} else {
		qsort(all, total, sizeof(*all), cmp_hit);
		*n = total < (size_t)k ? total : (size_t)k;
		memcpy(hits, all, *n * sizeof(*hits));
	}
	free(counts);
	free(displs);
	free(all);
	return rc;
}

static uint32_t query_dim;

static void hook_rank0(nd_index_options *o, int write)
{
	if (write)
		return;
	query_dim = o->dim;
	o->shard_own = own_shard;
	o->remote_query = remote_query;
	o->shard_ctx = &query_dim;
}

int mpi_cmd_query(int argc, char **argv)
{
	int status;
	struct qmsg msg;
	if (mpi_rank == 0)
		return mpi_rank0_run(cmd_query, hook_rank0, argc, argv, sizeof(msg));
	nd_model *m = NULL;
	nd_index *ix = NULL;
	float *vec = NULL;
	nd_hit *hits = NULL;
	status = mpi_serve_open(argc, argv, &m, &ix);
	for (;;) {
		MPI_Bcast(&msg, sizeof(msg), MPI_BYTE, 0, MPI_COMM_WORLD);
		if (!msg.go)
			break;
		float *nv = realloc(vec, msg.dim * sizeof(float));
		nd_hit *nh = realloc(hits, (size_t)msg.p.k * sizeof(*hits));
		if (!nv || !nh || !ix)
			MPI_Abort(MPI_COMM_WORLD, EXIT_FATAL);
		vec = nv;
		hits = nh;
		MPI_Bcast(vec, (int)msg.dim, MPI_FLOAT, 0, MPI_COMM_WORLD);
		size_t n = 0;
		if (query_own(ix, vec, &msg.p, hits, &n))
			status = EXIT_FATAL, n = 0;
		int bytes = (int)(n * sizeof(nd_hit));
		MPI_Gather(&bytes, 1, MPI_INT, NULL, 1, MPI_INT, 0, MPI_COMM_WORLD);
		MPI_Gatherv(hits, bytes, MPI_BYTE, NULL, NULL, NULL, MPI_BYTE, 0, MPI_COMM_WORLD);
	}
	free(vec);
	free(hits);
	nd_index_close(ix);
	nd_model_free(m);
	return status;
}
