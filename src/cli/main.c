/* neardup — command-line entry point: dispatches to one file per command.
 *
 * Start here. The library (libneardup: the .c files in src/, one public
 * header per module in include/neardup/) does the work; src/cli/ parses
 * arguments, prints and acts on files. README.md's "Layout" lists every
 * module.
 *
 * To add a command:
 *  1. write src/cli/<name>.c with `int cmd_<name>(int argc, char **argv)`:
 *     getopt_long with CLI_COMMON_LONGOPTS / cli_common_opt for --index,
 *     --model, -q, -h; messages through cli_msg (term.h); return EXIT_*;
 *  2. declare it in cli.h and add its row to commands[] below;
 *  3. document it in doc/neardup.1 and README.md's Usage;
 *  4. test it end to end in tests/e2e_<name>.sh (tests/lib_e2e.sh helps),
 *     and any library call it needs in tests/test_<module>.c.
 *
 * To add an image format (a codec): the recipe at "the codec table" in
 * src/image_impl.h: src/image_<fmt>.c with one nd__image_codec, its
 * ND_FMT_ value in include/neardup/image.h, its row in image.c's table, a
 * fuzz target tests/fuzz/fuzz_<fmt>.c, tests in tests/test_image.c.
 *
 * To add a test: a case is `static void test_x(void)` with CHECK* in
 * tests/test_<module>.c, run by RUN(test_x) in its main (tests/test.h); a
 * new module's tests/test_<module>.c is picked up by the Makefile. Shared
 * helpers go into tests/lib_*.c, never copied. `make test T=test_<module>
 * C=x` runs one case; `build/rel/tests/test_<module> x` too.
 *
 * Conventions: public names nd_<object>_<verb>; private names shared between
 * files nd__<module>_<name> (declared in src/<module>_impl.h); no import
 * cycles (scripts/check_cycles.py, in make test); no strcpy, strcat or
 * sprintf (src/banned.h). */
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
