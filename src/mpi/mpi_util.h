/* neardup-mpi — what the MPI commands share: the rank, byte buffers, the
 * all-to-all exchange, and the options read from the command line.
 *
 * To add a distributed command: write mpi_<cmd>.c with
 * `int mpi_cmd_<cmd>(int argc, char **argv)` (every rank calls it; rank 0
 * usually runs the ordinary command with a hook, the others serve it),
 * declare it here and add a row to mpi_main.c's table. */
#ifndef NEARDUP_MPI_UTIL_H
#define NEARDUP_MPI_UTIL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "neardup/index.h"
#include "neardup/cnn.h"

extern int mpi_rank, mpi_size;

struct mpi_buf {
	uint8_t *p;
	size_t n, cap;
};
/* Appends n bytes; -1 when out of memory. */
int mpi_buf_put(struct mpi_buf *b, const void *src, size_t n);
void mpi_buf_free(struct mpi_buf *b);

/* Sends out[d] to rank d, for every d (out: [mpi_size]); *in receives what
 * every rank sent here, rank by rank; *sent (may be NULL) adds the bytes
 * sent to other ranks. Collective; in rounds of bounded size, so counts
 * never overflow MPI's int. Returns 0, or -1 when out of memory (then on
 * every rank). */
int mpi_exchange(const struct mpi_buf *out, struct mpi_buf *in, uint64_t *sent);

/* The value of --NAME VALUE or --NAME=VALUE in argv, or NULL. */
const char *mpi_arg(int argc, char **argv, const char *name);

/* Seconds since some fixed point (MPI_Wtime). */
double mpi_now(void);
/* When $NEARDUP_MPI_STATS is set: one line per rank on stderr, prefixed
 * "neardup-mpi: rank R: ", for the scaling measurements. */
void mpi_stat(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Rank 0's part of a read-only command: runs the ordinary command cmd with
 * hook on the CLI's index opening, then sends the serving ranks a zeroed
 * message of msg_size bytes (its first field 0: stop). The command's status. */
int mpi_rank0_run(int (*cmd)(int, char **), void (*hook)(nd_index_options *, int), int argc,
		  char **argv, size_t msg_size);
/* A serving rank opens the collection read-only as rank 0 does (--index,
 * --model in argv): 0, or the CLI's exit status (then *m, *ix may be NULL). */
int mpi_serve_open(int argc, char **argv, nd_model **m, nd_index **ix);

int mpi_cmd_ingest(int argc, char **argv);
int mpi_cmd_query(int argc, char **argv);
int mpi_cmd_dedup(int argc, char **argv);

#endif
