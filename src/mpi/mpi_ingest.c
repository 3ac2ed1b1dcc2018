/* neardup-mpi ingest — every rank walks the paths and takes the files
 * whose identity (device, inode) hashes to it, so the two names of one
 * file meet on one rank; it embeds them with the ordinary pipeline into a
 * handle on the whole collection that writes the shards this rank owns
 * (s mod ranks = rank) and keeps what belongs to other ranks' shards in an
 * outbox; the outboxes are exchanged (MPI_Alltoallv) and each rank adds
 * what it received. Interrupted or killed, a rank loses only its outbox
 * and what it had not committed: no shard holds those files, so running
 * the same command again embeds them (unchanged files are skipped). The
 * other ranks' shards are opened read-only to skip unchanged files and to
 * copy the vectors of byte-identical ones: the collection must be on a
 * file system every rank reads. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "cli/cli.h"
#include "mpi_util.h"
#include "neardup/shard.h"

#define ADD_BATCH 256

static uint32_t opt_shards;     /* --shards, 0: the manifest's */
static struct mpi_buf *outbox;  /* [mpi_size] */
static pthread_mutex_t outbox_mu = PTHREAD_MUTEX_INITIALIZER;
static uint32_t dim;
static uint64_t n_remote;

static int own_shard(void *ctx, uint32_t shard)
{
	return (int)(shard % (uint32_t)mpi_size) == mpi_rank;
}

static int own_all(void *ctx, uint32_t shard)
{
	return 1;
}

/* One record on the wire (little-endian, the ranks run one build). */
struct wire {
	uint32_t path_len, width, height, has_phash, has_origin, pad;
	uint64_t size;
	int64_t mtime_ns;
	uint8_t hash[16];
	uint64_t dev, ino, phash;
	nd_origin origin;
};

static int remote_add(void *ctx, uint32_t shard, const nd_index_item *items, size_t n, nd_error *err)
{
	int rc = 0;
	pthread_mutex_lock(&outbox_mu);
	struct mpi_buf *b = &outbox[shard % (uint32_t)mpi_size];
	for (size_t i = 0; i < n && !rc; i++) {
		const nd_index_item *it = &items[i];
		struct wire w;
		memset(&w, 0, sizeof(w));
		w.path_len = (uint32_t)it->rec.path_len;
		w.width = it->rec.width;
		w.height = it->rec.height;
		w.has_phash = (uint32_t)it->has_phash;
		w.has_origin = it->origin != NULL;
		w.size = it->rec.size;
		w.mtime_ns = it->rec.mtime_ns;
		memcpy(w.hash, it->rec.hash, 16);
		w.dev = it->rec.dev;
		w.ino = it->rec.ino;
		w.phash = it->phash;
		if (it->origin)
			w.origin = *it->origin;
		if (mpi_buf_put(b, &w, sizeof(w)) || mpi_buf_put(b, it->rec.path, it->rec.path_len) ||
		    mpi_buf_put(b, it->vec, dim * sizeof(float)))
			rc = nd_error_set(err, ND_ENOMEM, "out of memory for records bound for rank %u",
					  shard % (uint32_t)mpi_size);
		n_remote++;
	}
	pthread_mutex_unlock(&outbox_mu);
	return rc;
}

static int take_file(void *ctx, const char *path, uint64_t dev, uint64_t ino)
{
	uint64_t id[2] = { dev, ino };
	return (int)(XXH3_64bits(id, sizeof(id)) % (uint64_t)mpi_size) == mpi_rank;
}

static void hook_create(nd_index_options *o, int write)
{
	o->shards = opt_shards;
	o->shard_own = own_all;
}

static void hook_rank(nd_index_options *o, int write)
{
	if (!write)
		return;
	o->shards = opt_shards;
	o->shard_own = own_shard;
	o->remote_add = remote_add;
}

static int open_model(int argc, char **argv, struct cli_common *com, nd_model **m)
{
	cli_common_init(com);
	const char *v;
	if ((v = mpi_arg(argc, argv, "index")))
		com->index_dir = v;
	if ((v = mpi_arg(argc, argv, "model")))
		com->model_path = v;
	return cli_model_load(com, m);
}

/* Adds the records received (buf) to this rank's shards. */
static int add_received(const struct mpi_buf *in, nd_index *ix, uint64_t *added)
{
	nd_index_item items[ADD_BATCH];
	float *vecs = malloc((size_t)ADD_BATCH * dim * sizeof(float));
	char *paths[ADD_BATCH];
	nd_origin origins[ADD_BATCH];
	size_t at = 0, n = 0;
	int status = 0;
	nd_error err;
	nd_error_clear(&err);
	memset(paths, 0, sizeof(paths));
	if (!vecs) {
		cli_msg("out of memory");
		return EXIT_FATAL;
	}
	while (at < in->n || n) {
		if (at < in->n) {
			struct wire w;
			if (in->n - at < sizeof(w))
				goto bad;
			memcpy(&w, in->p + at, sizeof(w));
			at += sizeof(w);
			if (w.path_len == 0 || w.path_len > ND_PATH_MAX || in->n - at < w.path_len + (size_t)dim * 4)
				goto bad;
			nd_index_item *it = &items[n];
			memset(it, 0, sizeof(*it));
			free(paths[n]);
			if (!(paths[n] = malloc(w.path_len + 1))) {
				cli_msg("out of memory");
				status = EXIT_FATAL;
				break;
			}
			memcpy(paths[n], in->p + at, w.path_len);
			paths[n][w.path_len] = 0;
			at += w.path_len;
			memcpy(vecs + n * dim, in->p + at, (size_t)dim * 4);
			at += (size_t)dim * 4;
			it->vec = vecs + n * dim;
			it->rec.path = paths[n];
			it->rec.path_len = w.path_len;
			it->rec.width = w.width;
			it->rec.height = w.height;
			it->rec.size = w.size;
			it->rec.mtime_ns = w.mtime_ns;
			memcpy(it->rec.hash, w.hash, 16);
			it->rec.dev = w.dev;
			it->rec.ino = w.ino;
			it->has_phash = (int)w.has_phash;
			it->phash = w.phash;
			origins[n] = w.origin;
			it->origin = w.has_origin ? &origins[n] : NULL;
			n++;
		}
		if (n == ADD_BATCH || (n && at >= in->n)) {
			int rc = nd_index_add(ix, items, n, NULL, &err);
			if (rc) {
				cli_msg("cannot add to '%s': %s", nd_index_dir(ix), err.msg[0] ? err.msg : nd_strerror(rc));
				status = EXIT_FATAL;
				break;
			}
			*added += n;
			n = 0;
		}
	}
	goto done;
bad:
	cli_msg("malformed records received from another rank");
	status = EXIT_FATAL;
done:
	for (size_t i = 0; i < ADD_BATCH; i++)
		free(paths[i]);
	free(vecs);
	return status;
}

int mpi_cmd_ingest(int argc, char **argv)
{
	struct cli_common com;
	nd_model *m = NULL;
	nd_index *ix = NULL;
	struct mpi_buf in = { 0 };
	int status = 0, st0;
	uint64_t sent = 0, added = 0;
	const char *v = mpi_arg(argc, argv, "shards");
	double t0 = mpi_now();
	if (v) {
		long n = strtol(v, NULL, 10);
		if (n < 1 || n > ND_SHARDS_MAX) {
			if (mpi_rank == 0)
				cli_msg("invalid value '%s' for --shards (an integer from 1 to %d)", v, ND_SHARDS_MAX);
			return EXIT_FATAL;
		}
		opt_shards = (uint32_t)n;
	}
	if (!(outbox = calloc(mpi_size, sizeof(*outbox)))) {
		cli_msg("out of memory");
		return EXIT_FATAL;
	}
	/* rank 0 creates the collection (or checks it) before the others open it */
	if (mpi_rank == 0) {
		status = open_model(argc, argv, &com, &m);
		if (!status) {
			if (!opt_shards && !nd_manifest_exists(com.index_dir)) {
				cli_msg("no sharded collection in '%s': give --shards N to create one", com.index_dir);
				status = EXIT_FATAL;
			} else {
				cli_index_options_hook = hook_create;
				status = cli_index_open(&com, 1, m, &ix);
				nd_index_close(ix);
				ix = NULL;
			}
		}
		nd_model_free(m);
		m = NULL;
	}
	st0 = status;
	MPI_Bcast(&st0, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (st0)
		goto done;
	/* every rank: its share of the files, embedded */
	{
		nd_model *mm = NULL;
		if ((status = open_model(argc, argv, &com, &mm)) == 0) {
			nd_model_info mi;
			nd_model_get_info(mm, &mi);
			dim = (uint32_t)mi.embed_dim;
		}
		nd_model_free(mm);
	}
	if (status == 0) {
		cli_index_options_hook = hook_rank;
		cli_take_hook = take_file;
		status = cmd_ingest(argc, argv);
		cli_take_hook = NULL;
	}
	double t1 = mpi_now();
	/* a test kills one rank here, after its own shards are committed and
	 * before the others' records reach them */
	const char *kill = getenv("NEARDUP_TEST_KILL_RANK");
	if (kill && atoi(kill) == mpi_rank)
		raise(SIGKILL);
	if (mpi_exchange(outbox, &in, &sent)) {
		cli_msg("out of memory for the records exchanged");
		status = EXIT_FATAL;
		goto done;
	}
	double t2 = mpi_now();
	if (in.n) {
		int s2 = open_model(argc, argv, &com, &m);
		if (!s2) {
			cli_index_options_hook = hook_rank;
			s2 = cli_index_open(&com, 1, m, &ix);
		}
		if (!s2)
			s2 = add_received(&in, ix, &added);
		if (s2)
			status = EXIT_FATAL;
	}
	mpi_stat("embed %.3f s, exchange %.3f s (%llu records, %llu bytes out), add %.3f s (%llu records in)", t1 - t0,
		 t2 - t1, (unsigned long long)n_remote, (unsigned long long)sent, mpi_now() - t2,
		 (unsigned long long)added);
done:
	nd_index_close(ix);
	nd_model_free(m);
	mpi_buf_free(&in);
	for (int d = 0; d < mpi_size; d++)
		mpi_buf_free(&outbox[d]);
	free(outbox);
	cli_index_options_hook = NULL;
	return status;
}
