/* neardup CLI — `neardup inspect`: the developer command for the decode
 * stage. Decodes each file as ingest would (scaled decode for the model
 * size, EXIF orientation, limits), runs prep, and prints what happened. */
#ifndef NEARDUP_CLI_INSPECT_H
#define NEARDUP_CLI_INSPECT_H

/* argv[0] is "inspect"; options and files follow:
 *   neardup inspect [--size WxH] [--full] [-q] FILE...
 * Prints one line per file on stdout, errors on stderr as
 * "neardup: cannot decode 'PATH': MESSAGE", and a summary line.
 * Returns the exit status: 0 all decoded, 1 some skipped, 2 usage. */
int nd_cli_inspect(int argc, char **argv);

#endif
