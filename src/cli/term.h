/* neardup CLI — the terminal (term.c) owns stderr: its lock, the messages,
 * the progress display and the clock. Progress: a redrawn bar when stderr is
 * a terminal, a plain line every 10 seconds otherwise, nothing when quiet.
 * Messages printed through cli_msg erase a visible bar first. */
#ifndef NEARDUP_CLI_TERM_H
#define NEARDUP_CLI_TERM_H

#include <pthread.h>
#include <stddef.h>

/* Monotonic seconds. */
double cli_now(void);

/* Messages on stderr, prefixed "neardup: ". Thread-safe: a visible progress
 * bar is cleared first. cli_err_path prints "neardup: WHAT 'PATH': WHY" with
 * control bytes in PATH escaped. */
void cli_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_err_path(const char *what, const char *path, const char *why);
/* Writes path into buf (cap bytes) escaped as TSV fields are (output.h: \\,
 * \t, \n, \r, other control characters and bytes that are not valid UTF-8
 * as \xNN); returns buf. */
const char *cli_quote(const char *path, char *buf, size_t cap);

/* Held while writing to stderr. */
extern pthread_mutex_t cli_stderr_lock;

/* quiet: show nothing. */
void progress_start(int quiet);
/* done of total files; total_final: total will not grow any more (the walk
 * ended), so an ETA can be shown. Rate-limited: call it as often as you
 * like. */
void progress_update(unsigned long done, unsigned long total, int total_final);
/* Erases the bar (final). */
void progress_end(void);
/* With cli_stderr_lock held: erase the bar if one is visible. */
void progress_erase_locked(void);

#endif
