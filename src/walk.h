/* neardup — the file walk: files and directories named on the command
 * line, directories recursively, physically (symlinks inside a directory are
 * not followed, so loops and escapes out of the given roots cannot happen).
 * Output order is deterministic: entries sorted by name. */
#ifndef NEARDUP_WALK_H
#define NEARDUP_WALK_H

#include <sys/stat.h>

enum walk_ignore {
	WALK_IGNORED_SYMLINK,  /* a symbolic link inside a walked directory */
	WALK_IGNORED_SPECIAL,  /* FIFO, socket, device inside a walked directory */
	WALK_IGNORED_CYCLE,    /* directory already on the current path (bind mounts) */
	WALK_IGNORED_KINDS
};

struct walk_stats {
	unsigned long files;                       /* regular files reported */
	unsigned long ignored[WALK_IGNORED_KINDS]; /* silently passed over */
	unsigned long skipped;                     /* errors reported via on_skip */
};

struct walk_callbacks {
	/* A regular file. is_root: it was named on the command line. Return
	 * non-zero to stop the walk (that value is returned by walk_paths). */
	int (*on_file)(const char *path, const struct stat *st, int is_root, void *ctx);
	/* An input that could not be walked: the path and a reason such as
	 * "no such file or directory". The walk goes on. */
	void (*on_skip)(const char *path, const char *reason, void *ctx);
	void *ctx;
};

/* Walks every root in order. Returns 0, the first non-zero on_file result,
 * or -1 if the walk itself could not start (errno set). Named roots that are
 * symlinks are followed (the user asked for them); named roots that are not
 * files or directories are reported through on_skip. */
int walk_paths(char *const *roots, int nroots, const struct walk_callbacks *cb,
	       struct walk_stats *stats);

#endif
