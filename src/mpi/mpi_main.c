/* neardup-mpi — the command line under mpirun: ingest, query and dedup
 * spread over the ranks of a sharded collection (neardup/shard.h); the
 * other commands run on rank 0. Built with mpicc beside neardup, from the
 * same library and command files. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "mpi_util.h"

struct command {
	const char *name;
	cli_cmd_fn fn;
	int distributed; /* every rank runs fn; else rank 0 runs it alone */
};

static const struct command commands[] = {
	{ "ingest", mpi_cmd_ingest, 1 },
	{ "query", mpi_cmd_query, 1 },
	{ "dedup", mpi_cmd_dedup, 1 },
	{ "stats", cmd_stats, 0 },
	{ "check", cmd_check, 0 },
	{ "remove", cmd_remove, 0 },
	{ "backup", cmd_backup, 0 },
	{ "undo", cmd_undo, 0 },
	{ "apply", cmd_apply, 0 },
};

static void usage(FILE *f)
{
	fputs("usage: mpirun -np N neardup-mpi <command> [options] [args]\n\n"
	      "  ingest --shards N [--index DIR] PATH...   each rank embeds its share of the files\n"
	      "  query [--index DIR] IMAGE...              the ranks search the shards they own\n"
	      "  dedup [--index DIR] [options]             the self-join spread over the ranks\n"
	      "  stats, check, remove, backup, undo, apply run on rank 0\n\n"
	      "Rank r owns the shards s with s mod N = r. See neardup(1), SHARDED COLLECTIONS.\n",
	      f);
}

int main(int argc, char **argv)
{
	int provided, status = EXIT_FATAL;
	MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
	MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
	MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		if (mpi_rank == 0)
			usage(argc < 2 ? stderr : stdout);
		status = argc < 2 ? EXIT_FATAL : EXIT_ALL_GOOD;
		goto done;
	}
	if (!strcmp(argv[1], "--version")) {
		if (mpi_rank == 0)
			printf("neardup-mpi %s\n", ND_VERSION_STRING);
		status = EXIT_ALL_GOOD;
		goto done;
	}
	if (provided < MPI_THREAD_SERIALIZED) {
		if (mpi_rank == 0)
			cli_msg("the MPI library does not support threads (MPI_THREAD_SERIALIZED)");
		goto done;
	}
	size_t i;
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		if (mpi_rank == 0) {
			cli_msg("unknown command '%s'", argv[1]);
			usage(stderr);
		}
		goto done;
	}
	if (commands[i].distributed)
		status = commands[i].fn(argc - 1, argv + 1);
	else
		status = mpi_rank == 0 ? commands[i].fn(argc - 1, argv + 1) : EXIT_ALL_GOOD;
done:;
	/* the job's status: the worst of the ranks' */
	int worst = status;
	MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
	MPI_Finalize();
	return worst;
}
