/* neardup tests — shared fixtures: files and scratch directories. Linked
 * into every tests/test_*.c program (tests/lib_*.c, as git's t/lib-*.sh);
 * their names start with tl_. */
#ifndef NEARDUP_TESTS_LIB_FS_H
#define NEARDUP_TESTS_LIB_FS_H

#include <stddef.h>

/* The whole file, malloc'd with one extra 0 byte after its *len bytes (so
 * text can be parsed in place); NULL when it cannot be read. */
void *tl_read_file(const char *path, size_t *len);

/* Writes len bytes to path (created or truncated): 0, or -1. */
int tl_write_file(const char *path, const void *data, size_t len);

/* Makes a fresh directory $TMPDIR/nd_<name>_XXXXXX (TMPDIR defaulting to
 * /tmp) and writes its path into buf: 0, or -1 after printing why. */
int tl_scratch_dir(char *buf, size_t cap, const char *name);

/* Removes an index directory: its files (data.mdb, lock.mdb, neardup.lock)
 * and then the directory; whatever is missing is skipped. */
void tl_rm_index(const char *dir);

#endif
