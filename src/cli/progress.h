/* neardup CLI — progress on stderr: a redrawn bar when stderr is a terminal,
 * a plain line every 10 seconds otherwise, nothing when quiet. Messages
 * printed through cli_msg erase a visible bar first. */
#ifndef NEARDUP_CLI_PROGRESS_H
#define NEARDUP_CLI_PROGRESS_H

#include <pthread.h>

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
