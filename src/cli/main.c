/* neardup — command-line entry point. The commands themselves arrive with the
 * CLI issue; for now this dispatches --help, --version and the developer
 * commands that exist. */
#include "neardup/common.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
	fputs("usage: neardup <command> [options] [args]\n"
	      "\n"
	      "commands:\n"
	      "  ingest   add image files or directories to the index\n"
	      "  query    find indexed images that look like the given images\n"
	      "  dedup    group near-duplicates in the index\n"
	      "  stats | check | remove\n"
	      "\n"
	      "options: --index DIR  --model FILE  -q  --help  --version\n",
	      out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("neardup %s\n", ND_VERSION_STRING);
		return 0;
	}
	fprintf(stderr, "neardup: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
