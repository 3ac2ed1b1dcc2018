/* neardup-mpi — byte buffers and the all-to-all exchange (mpi_util.h). */
#include "mpi_util.h"
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mpi_rank, mpi_size;

#define ROUND_BYTES ((size_t)64 << 20) /* per pair of ranks and round */

int mpi_buf_put(struct mpi_buf *b, const void *src, size_t n)
{
	if (b->n + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->n + n)
			nc *= 2;
		uint8_t *np = realloc(b->p, nc);
		if (!np)
			return -1;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
	return 0;
}

void mpi_buf_free(struct mpi_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int mpi_exchange(const struct mpi_buf *out, struct mpi_buf *in, uint64_t *sent)
{
	const int P = mpi_size;
	uint64_t *scount = calloc(P, 8), *rcount = calloc(P, 8), *sdone = calloc(P, 8), *rdone = calloc(P, 8);
	int *sc = calloc(P, sizeof(int)), *sd = calloc(P, sizeof(int)), *rc = calloc(P, sizeof(int)),
	    *rd = calloc(P, sizeof(int));
	int ok = scount && rcount && sdone && rdone && sc && sd && rc && rd, all_ok;
	uint64_t total = 0;
	uint8_t *sbuf = NULL;
	in->n = 0;
	for (int d = 0; ok && d < P; d++)
		scount[d] = out[d].n;
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all_ok)
		goto done;
	MPI_Alltoall(scount, 1, MPI_UINT64_T, rcount, 1, MPI_UINT64_T, MPI_COMM_WORLD);
	for (int d = 0; d < P; d++)
		total += rcount[d];
	if (in->cap < total) {
		uint8_t *np = realloc(in->p, total ? total : 1);
		ok = np != NULL;
		if (np) {
			in->p = np;
			in->cap = total;
		}
	}
	/* where rank s's bytes start in *in */
	uint64_t *rbase = calloc(P, 8);
	ok = ok && rbase;
	MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all_ok) {
		free(rbase);
		goto done;
	}
	for (int d = 1; d < P; d++)
		rbase[d] = rbase[d - 1] + rcount[d - 1];
	for (;;) {
		size_t slen = 0;
		for (int d = 0; d < P; d++) {
			uint64_t left = scount[d] - sdone[d];
			sc[d] = (int)(left < ROUND_BYTES ? left : ROUND_BYTES);
			sd[d] = (int)slen;
			slen += (size_t)sc[d];
		}
		int more = slen > 0, any;
		for (int d = 0; d < P; d++) {
			uint64_t left = rcount[d] - rdone[d];
			rc[d] = (int)(left < ROUND_BYTES ? left : ROUND_BYTES);
			more |= rc[d] > 0;
		}
		MPI_Allreduce(&more, &any, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
		if (!any)
			break;
		/* the send side of this round, packed */
		uint8_t *nb = realloc(sbuf, slen ? slen : 1);
		if (!nb) /* a failed realloc leaves no way to stay collective: abort the job */
			MPI_Abort(MPI_COMM_WORLD, 2);
		sbuf = nb;
		for (int d = 0; d < P; d++)
			memcpy(sbuf + sd[d], out[d].p + sdone[d], (size_t)sc[d]);
		/* receive in a staging area, then place */
		size_t rlen = 0;
		for (int d = 0; d < P; d++) {
			rd[d] = (int)rlen;
			rlen += (size_t)rc[d];
		}
		uint8_t *rbuf = malloc(rlen ? rlen : 1);
		if (!rbuf)
			MPI_Abort(MPI_COMM_WORLD, 2);
		MPI_Alltoallv(sbuf, sc, sd, MPI_BYTE, rbuf, rc, rd, MPI_BYTE, MPI_COMM_WORLD);
		for (int d = 0; d < P; d++) {
			memcpy(in->p + rbase[d] + rdone[d], rbuf + rd[d], (size_t)rc[d]);
			rdone[d] += (uint64_t)rc[d];
			sdone[d] += (uint64_t)sc[d];
			if (d != mpi_rank && sent)
				*sent += (uint64_t)sc[d];
		}
		free(rbuf);
	}
	in->n = total;
	free(rbase);
done:
	free(sbuf);
	free(scount);
	free(rcount);
	free(sdone);
	free(rdone);
	free(sc);
	free(sd);
	free(rc);
	free(rd);
	return all_ok ? 0 : -1;
}

const char *mpi_arg(int argc, char **argv, const char *name)
{
	size_t l = strlen(name);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strncmp(argv[i], "--", 2) && !strncmp(argv[i] + 2, name, l)) {
			if (argv[i][2 + l] == '=')
				return argv[i] + 3 + l;
			if (argv[i][2 + l] == 0 && i + 1 < argc)
				return argv[i + 1];
		}
	}
	return NULL;
}

double mpi_now(void)
{
	return MPI_Wtime();
}

void mpi_stat(const char *fmt, ...)
{
	if (!getenv("NEARDUP_MPI_STATS"))
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "neardup-mpi: rank %d: %s\n", mpi_rank, buf);
}

int mpi_rank0_run(int (*cmd)(int, char **), void (*hook)(nd_index_options *, int), int argc,
		  char **argv, size_t msg_size)
{
	cli_index_options_hook = hook;
	int status = cmd(argc, argv);
	cli_index_options_hook = NULL;
	/* the serving ranks wait in this broadcast: it must happen even
	 * without memory for the message, so it is a static zeroed one */
	static const uint8_t stop[1024];
	if (msg_size > sizeof(stop))
		MPI_Abort(MPI_COMM_WORLD, 70);
	MPI_Bcast((void *)stop, (int)msg_size, MPI_BYTE, 0, MPI_COMM_WORLD);
	return status;
}

int mpi_serve_open(int argc, char **argv, nd_model **m, nd_index **ix)
{
	struct cli_common com;
	const char *v;
	*m = NULL;
	*ix = NULL;
	cli_common_init(&com);
	if ((v = mpi_arg(argc, argv, "index")))
		com.index_dir = v;
	if ((v = mpi_arg(argc, argv, "model")))
		com.model_path = v;
	int status = cli_model_load(&com, m);
	if (!status)
		status = cli_index_open(&com, 0, *m, ix);
	return status;
}
