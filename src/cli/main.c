/* neardup — command-line entry point: dispatches to one file per command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "inspect.h"

struct command {
	const char *name;
	cli_cmd_fn fn;
	const char *summary;
};

static const struct command commands[] = {
	{ "ingest", cmd_ingest, "add image files or directories to the index" },
	{ "query", cmd_query, "find indexed images that look like the given images" },
	{ "dedup", cmd_dedup, "group near-duplicates in the index; report, trash, move, link or delete" },
	{ "undo", cmd_undo, "reverse the moves and trashes of the last dedup run" },
	{ "apply", cmd_apply, "carry out the decisions exported from the HTML review page" },
	{ "stats", cmd_stats, "show what the index holds" },
	{ "check", cmd_check, "verify the index's consistency" },
	{ "remove", cmd_remove, "remove images (or everything under a directory) from the index" },
	{ "backup", cmd_backup, "write a consistent, compacted copy of the index" },
	{ "serve", cmd_serve, "serve the index over HTTP: query, add, remove, duplicates, metrics" },
	{ "inspect", nd_cli_inspect, "developer tool: decode files as ingest would, show what happened" },
};

static void usage(FILE *out)
{
	fputs("usage: neardup <command> [options] [args]\n\ncommands:\n", out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\nThe index commands take --index DIR, --model FILE, -q and --help.\n"
	      "neardup --version prints the version. See neardup(1).\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_FATAL;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return EXIT_ALL_GOOD;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
		printf("neardup %s\n", ND_VERSION_STRING);
		return EXIT_ALL_GOOD;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "neardup: unknown command '%s'\n", cmd);
	usage(stderr);
	return EXIT_FATAL;
}
