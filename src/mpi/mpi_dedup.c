/* neardup-mpi dedup — rank 0 runs the ordinary dedup (grouping, keeper,
 * output, actions); its self-join is spread over the ranks:
 *   1. each rank exports the signature rows (id, statistic, hash,
 *      L*K signature bits) of the shards it owns (neardup/join.h);
 *   2. MPI_Alltoallv: every rank that owns a part (an LSH table or a
 *      perceptual-hash quarter; part i belongs to rank i mod ranks) gets
 *      every row;
 *   3. each rank lists the candidate pairs of its parts, each pair in the
 *      first part it is a candidate of, exactly as the one-index join;
 *   4. MPI_Alltoallv: each candidate goes to the rank owning the first
 *      image's shard, which asks the owners of the second images for their
 *      stored vectors (two more exchanges) and scores the pairs with the
 *      join's scorer (nd_join_score);
 *   5. the pairs at or above the threshold are gathered on rank 0, which
 *      groups them as for one index.
 * Rank 0 reads the records of the grouped images from every shard, so the
 * collection must be on a file system rank 0 reads. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mpi_util.h"
#include "neardup/join.h"
#include "neardup/shard.h"
#include "neardup/store.h"

struct jmsg {
	int go;                    /* 1: join with p; 0: done */
	nd_selfjoin_params p;
};

struct pairv {
	uint32_t a, b;
	float sim;
};

struct cands {
	struct mpi_buf *to;        /* [mpi_size]: pairs (a, b) bound for the owner of a */
	uint32_t shards;
	int oom;
};

static int owner_of(uint32_t gid, uint32_t shards)
{
	return (int)(nd_shard_gid_shard(gid, shards) % (uint32_t)mpi_size);
}

static int push_cand(void *ctx, uint32_t a, uint32_t b, float sim)
{
	struct cands *c = ctx;
	uint32_t ab[2] = { a, b };
	if (mpi_buf_put(&c->to[owner_of(a, c->shards)], ab, sizeof(ab))) {
		c->oom = 1;
		return 1;
	}
	return 0;
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return (a > b) - (a < b);
}

/* The second images' stored vectors: sorted ids, where each value starts. */
struct vtab {
	uint32_t *ids;
	size_t n;
	uint64_t *off;             /* [n]: where id's value starts in bytes */
	uint8_t *bytes;
};

#define FAIL(msg)                      \
	do {                           \
		cli_msg("%s", msg);    \
		ok = 0;                \
		goto sync;             \
	} while (0)

/* The distributed join on every rank (collective). On rank 0, fn gets the
 * pairs. Returns 0, or an ND_E* code (the same on every rank). */
static int dist_join(nd_index *ix, const nd_selfjoin_params *p, nd_pair_fn fn, void *ctx,
		     nd_selfjoin_stats *stats, nd_error *err)
{
	const int P = mpi_size;
	const uint32_t N = nd_index_shards(ix), parts = nd_join_parts(ix, p);
	const size_t R = nd_join_row_words(ix);
	struct mpi_buf *out = calloc(P, sizeof(*out)), in = { 0 }, in2 = { 0 }, in3 = { 0 };
	struct cands cd = { calloc(P, sizeof(struct mpi_buf)), N, 0 };
	unsigned char *mine = calloc(parts, 1);
	struct vtab vt = { 0 };
	struct pairv *kept = NULL;
	size_t nkept = 0;
	uint64_t sent_rows = 0, sent_cand = 0, sent_req = 0, sent_vec = 0, ncand = 0, nrows_local = 0;
	nd_selfjoin_stats st = { 0 }, tot = { 0 };
	int ok = out && cd.to && mine, all_ok, rc = 0;
	double t0 = mpi_now(), t1 = t0, t2 = t0, t3 = t0, t4 = t0;
	nd_error e;
	nd_error_clear(&e);
	if (!ok)
		FAIL("out of memory");
	if (N == 0)
		FAIL("dedup under mpirun needs a sharded collection");
	/* 1. rows of the own shards, ids global */
	float stat[2] = { FLT_MAX, FLT_MAX }; /* lowest statistic, minus the highest */
	struct mpi_buf rows = { 0 };
	for (uint32_t s = (uint32_t)mpi_rank; s < N; s += (uint32_t)P) {
		uint64_t *r = NULL;
		size_t n = 0;
		float ms, xs;
		if ((rc = nd_join_export(nd_index_shard(ix, s), &r, &n, &ms, &xs, &e))) {
			cli_msg("cannot read shard %u: %s", s, e.msg);
			ok = 0;
			break;
		}
		for (size_t i = 0; i < n && ok; i++) {
			uint32_t g;
			if (nd_shard_gid((uint32_t)r[i * R], s, N, &g, &e)) {
				ok = 0;
				break;
			}
			r[i * R] = (r[i * R] & ~(uint64_t)0xFFFFFFFFu) | g;
		}
		if (n && ms < stat[0])
			stat[0] = ms;
		if (n && -xs < stat[1])
			stat[1] = -xs;
		if (ok && mpi_buf_put(&rows, r, n * R * 8))
			ok = 0;
		nrows_local += n;
		free(r);
	}
	float g[2];
	MPI_Allreduce(stat, g, 2, MPI_FLOAT, MPI_MIN, MPI_COMM_WORLD);
	const float gmin = g[0] == FLT_MAX ? 0 : g[0], gmax = g[1] == FLT_MAX ? 0 : -g[1];
	/* 2. every row to every rank owning a part */
	for (int d = 0; d < P && ok; d++)
		if ((uint32_t)d < parts && mpi_buf_put(&out[d], rows.p, rows.n))
			ok = 0;
	mpi_buf_free(&rows);
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all_ok || mpi_exchange(out, &in, &sent_rows)) {
		ok = 0;
		goto sync;
	}
	for (int d = 0; d < P; d++)
		mpi_buf_free(&out[d]);
	t1 = mpi_now();
	/* 3. the candidates of the own parts */
	for (uint32_t i = 0; i < parts; i++)
		mine[i] = (int)(i % (uint32_t)P) == mpi_rank;
	if (in.n && (rc = nd_join_candidates(ix, p, (const uint64_t *)in.p, in.n / (R * 8), gmin, gmax, mine, push_cand,
					     &cd, &st, &e))) {
		cli_msg("self-join: %s", cd.oom ? "out of memory" : e.msg);
		ok = 0;
	}
	mpi_buf_free(&in);
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all_ok || mpi_exchange(cd.to, &in, &sent_cand)) {
		ok = 0;
		goto sync;
	}
	t2 = mpi_now();
	/* 4. the vectors of the second images, from their owners */
	ncand = in.n / 8;
	uint32_t *cand = (uint32_t *)in.p;
	/* by first image: each of this rank's vectors is read once */
	qsort(cand, ncand, 8, cmp_u32);
	for (int d = 0; d < P; d++)
		cd.to[d].n = 0;
	{
		uint32_t *want = malloc((ncand ? ncand : 1) * sizeof(uint32_t));
		size_t nw = 0;
		if (!want)
			FAIL("out of memory");
		for (size_t i = 0; i < ncand; i++)
			want[nw++] = cand[2 * i + 1];
		qsort(want, nw, sizeof(*want), cmp_u32);
		size_t u = 0;
		for (size_t i = 0; i < nw; i++)
			if (u == 0 || want[u - 1] != want[i])
				want[u++] = want[i];
		for (size_t i = 0; i < u && ok; i++)
			if (mpi_buf_put(&cd.to[owner_of(want[i], N)], &want[i], 4))
				ok = 0;
		free(want);
	}
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all_ok || mpi_exchange(cd.to, &in2, &sent_req)) {
		ok = 0;
		goto sync;
	}
	/* answer: per requesting rank, (id, length, value) */
	{
		nd_meta m;
		if ((rc = nd_index_meta(ix, &m, &e)))
			FAIL("cannot read the index's metadata");
		size_t cap = nd_vector_encoded_size_max(m.dim, m.vec_format), len;
		uint8_t *vb = malloc(cap);
		if (!vb)
			FAIL("out of memory");
		/* the requests arrived rank by rank: their counts say where each begins */
		uint64_t myc[64], *cnt = P <= 64 ? myc : malloc(P * 8), *rcv = malloc(P * 8);
		for (int d = 0; d < P; d++)
			cnt[d] = cd.to[d].n;
		MPI_Alltoall(cnt, 1, MPI_UINT64_T, rcv, 1, MPI_UINT64_T, MPI_COMM_WORLD);
		size_t at = 0;
		for (int d = 0; d < P; d++) {
			out[d].n = 0;
			for (uint64_t k = 0; k < rcv[d] / 4 && ok; k++, at += 4) {
				uint32_t id, l32;
				memcpy(&id, in2.p + at, 4);
				if ((rc = nd_join_vector_bytes(ix, id, vb, cap, &len, &e))) {
					cli_msg("cannot read the vector of id %u: %s", id, e.msg);
					ok = 0;
					break;
				}
				l32 = (uint32_t)len;
				if (mpi_buf_put(&out[d], &id, 4) || mpi_buf_put(&out[d], &l32, 4) ||
				    mpi_buf_put(&out[d], vb, len))
					ok = 0;
			}
		}
		if (cnt != myc)
			free(cnt);
		free(rcv);
		free(vb);
	}
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all_ok || mpi_exchange(out, &in3, &sent_vec)) {
		ok = 0;
		goto sync;
	}
	t3 = mpi_now();
	{
		size_t n = 0;
		for (size_t at = 0; at + 8 <= in3.n; n++) {
			uint32_t l;
			memcpy(&l, in3.p + at + 4, 4);
			at += 8 + l;
		}
		vt.ids = malloc((n ? n : 1) * 4);
		vt.off = malloc((n + 1) * 8);
		if (!vt.ids || !vt.off)
			FAIL("out of memory");
		/* the answers come sorted per owner; merge by sorting an index */
		size_t at = 0;
		struct { uint32_t id; uint64_t at; } *ix2 = malloc((n ? n : 1) * sizeof(*ix2));
		if (!ix2)
			FAIL("out of memory");
		for (size_t i = 0; i < n; i++) {
			uint32_t l;
			memcpy(&ix2[i].id, in3.p + at, 4);
			memcpy(&l, in3.p + at + 4, 4);
			ix2[i].at = at;
			at += 8 + l;
		}
		qsort(ix2, n, sizeof(*ix2), cmp_u32); /* id is the first member */
		vt.bytes = in3.p;
		for (size_t i = 0; i < n; i++) {
			uint32_t l;
			memcpy(&l, in3.p + ix2[i].at + 4, 4);
			vt.ids[i] = ix2[i].id;
			vt.off[i] = ix2[i].at + 8;
		}
		vt.n = n;
		uint64_t *end = malloc((n ? n : 1) * 8);
		if (!end) {
			free(ix2);
			FAIL("out of memory");
		}
		for (size_t i = 0; i < n; i++) {
			uint32_t l;
			memcpy(&l, in3.p + ix2[i].at + 4, 4);
			end[i] = ix2[i].at + 8 + l;
		}
		free(ix2);
		/* score: a is local, b from the table */
		nd_meta m;
		nd_index_meta(ix, &m, NULL);
		size_t cap = nd_vector_encoded_size_max(m.dim, m.vec_format), la;
		uint8_t *va = malloc(cap);
		kept = malloc((ncand ? ncand : 1) * sizeof(*kept));
		if (!va || !kept) {
			free(end);
			free(va);
			FAIL("out of memory");
		}
		uint32_t last_a = 0;
		for (size_t i = 0; i < ncand && ok; i++) {
			uint32_t a = cand[2 * i], b = cand[2 * i + 1];
			if ((i == 0 || a != last_a) && (rc = nd_join_vector_bytes(ix, a, va, cap, &la, &e))) {
				cli_msg("cannot read the vector of id %u: %s", a, e.msg);
				ok = 0;
				break;
			}
			last_a = a;
			size_t lo = 0, hi = vt.n;
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;
				if (vt.ids[mid] < b)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo == vt.n || vt.ids[lo] != b) {
				cli_msg("no vector came for id %u", b);
				ok = 0;
				break;
			}
			float sim;
			st.pairs_compared++;
			if ((rc = nd_join_score(ix, p, va, la, in3.p + vt.off[lo], (size_t)(end[lo] - vt.off[lo]), &sim, &e))) {
				cli_msg("cannot score ids %u and %u: %s", a, b, e.msg);
				ok = 0;
				break;
			}
			if (sim >= p->min_sim)
				kept[nkept++] = (struct pairv){ a, b, sim };
		}
		free(end);
		free(va);
	}
	t4 = mpi_now();
sync:
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all_ok) {
		rc = nd_error_set(err, ND_EIO, "the distributed self-join failed (see the ranks' messages)");
		goto done;
	}
	/* 5. the pairs to rank 0 */
	{
		int mine_n = (int)(nkept * sizeof(*kept)), *counts = NULL, *displs = NULL;
		uint8_t *all = NULL;
		if (mpi_rank == 0) {
			counts = calloc(P, sizeof(int));
			displs = calloc(P, sizeof(int));
		}
		MPI_Gather(&mine_n, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
		size_t total = 0;
		if (mpi_rank == 0) {
			for (int d = 0; d < P; d++) {
				displs[d] = (int)total;
				total += (size_t)counts[d];
			}
			all = malloc(total ? total : 1);
			if (!all)
				MPI_Abort(MPI_COMM_WORLD, 2);
		}
		MPI_Gatherv(kept, mine_n, MPI_BYTE, all, counts, displs, MPI_BYTE, 0, MPI_COMM_WORLD);
		if (mpi_rank == 0) {
			const struct pairv *pv = (const struct pairv *)all;
			for (size_t i = 0; i < total / sizeof(*pv) && !rc; i++) {
				st.pairs_emitted++;
				if (fn(ctx, pv[i].a, pv[i].b, pv[i].sim))
					rc = 1;
			}
		}
		free(all);
		free(counts);
		free(displs);
		uint64_t loc[6] = { st.groups, st.pairs_compared, st.groups_capped, st.pairs_skipped,
				    st.pairs_candidates, st.phash_compared },
			 sum[6];
		MPI_Reduce(loc, sum, 6, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
		uint64_t lg = st.largest_group, mg;
		MPI_Reduce(&lg, &mg, 1, MPI_UINT64_T, MPI_MAX, 0, MPI_COMM_WORLD);
		if (mpi_rank == 0) {
			tot.groups = sum[0];
			tot.pairs_compared = sum[1];
			tot.groups_capped = sum[2];
			tot.pairs_skipped = sum[3];
			tot.pairs_candidates = sum[4];
			tot.phash_compared = sum[5];
			tot.largest_group = mg;
			tot.pairs_emitted = st.pairs_emitted;
		}
	}
	mpi_stat("join: %llu rows; rows %.3f s (%llu bytes out), candidates %.3f s (%llu candidates here, %llu bytes "
		 "out), vectors %.3f s (%llu + %llu bytes out), score %.3f s (%zu pairs kept)",
		 (unsigned long long)nrows_local, t1 - t0, (unsigned long long)sent_rows, t2 - t1,
		 (unsigned long long)ncand, (unsigned long long)sent_cand, t3 - t2, (unsigned long long)sent_req,
		 (unsigned long long)sent_vec, t4 - t3, nkept);
done:
	if (stats)
		*stats = tot;
	for (int d = 0; out && d < P; d++)
		mpi_buf_free(&out[d]);
	for (int d = 0; cd.to && d < P; d++)
		mpi_buf_free(&cd.to[d]);
	free(out);
	free(cd.to);
	free(mine);
	free(vt.ids);
	free(vt.off);
	free(kept);
	mpi_buf_free(&in);
	mpi_buf_free(&in2);
	mpi_buf_free(&in3);
	return rc;
}

/* Rank 0's dedup calls this for its self-join: the others join in. */
static int hook_join(void *octx, nd_index *ix, const nd_selfjoin_params *p, nd_pair_fn fn, void *ctx,
		     nd_selfjoin_stats *stats, nd_error *err)
{
	struct jmsg msg;
	memset(&msg, 0, sizeof(msg));
	msg.go = 1;
	msg.p = *p;
	MPI_Bcast(&msg, sizeof(msg), MPI_BYTE, 0, MPI_COMM_WORLD);
	return dist_join(ix, p, fn, ctx, stats, err);
}

/* Rank 0's handle on the collection: its self-join is the ranks' */
static void hook_open(nd_index_options *o, int write)
{
	if (!write)
		o->remote_join = hook_join;
}

int mpi_cmd_dedup(int argc, char **argv)
{
	int status;
	struct jmsg msg;
	if (mpi_rank == 0)
		return mpi_rank0_run(cmd_dedup, hook_open, argc, argv, sizeof(msg));
	/* the other ranks: open the collection as rank 0 does, and serve */
	nd_model *m = NULL;
	nd_index *ix = NULL;
	status = mpi_serve_open(argc, argv, &m, &ix);
	for (;;) {
		MPI_Bcast(&msg, sizeof(msg), MPI_BYTE, 0, MPI_COMM_WORLD);
		if (!msg.go)
			break;
		if (!ix) {
			/* cannot take part: the collective steps still run, with nothing */
			cli_msg("rank %d cannot open the collection", mpi_rank);
			MPI_Abort(MPI_COMM_WORLD, EXIT_FATAL);
		}
		nd_error err;
		nd_error_clear(&err);
		if (dist_join(ix, &msg.p, NULL, NULL, NULL, &err))
			status = EXIT_FATAL;
	}
	nd_index_close(ix);
	nd_model_free(m);
	return status;
}
