/* neardup CLI — the freedesktop.org trash (Trash specification 1.0), so that
 * file managers and `gio trash --restore` can restore what dedup trashed.
 *
 * A file goes to the home trash ($XDG_DATA_HOME/Trash, by default
 * ~/.local/share/Trash) when it is on the same file system, else to its
 * file system's $topdir/.Trash/$uid (when $topdir/.Trash is a directory
 * with the sticky bit, not a symbolic link) or $topdir/.Trash-$uid
 * (created 0700). info/NAME.trashinfo is written (O_EXCL, fsync-ed) before
 * the file is renamed to files/NAME; NAME is the file's name, or
 * STEM.N.EXT when that is taken. Files are never copied across file
 * systems into a trash. */
#ifndef NEARDUP_CLI_TRASH_H
#define NEARDUP_CLI_TRASH_H

#include <stdint.h>

#include "safe_fs.h"

struct trash_slot {
	int files_fd;     /* the trash's files/ directory, -1 when none */
	int info_fd;      /* its info/ directory */
	char *files_dir;  /* absolute path of files/ (owned) */
	char *name;       /* NAME (owned) */
	char *files_path; /* files/NAME, absolute (owned) */
	char *info_path;  /* info/NAME.trashinfo, absolute (owned) */
};

/* The files/ directory f would go to, absolute, malloc-ed (for a dry run;
 * nothing is created). NULL with why when f cannot be trashed. */
char *trash_where(const struct sfs_file *f, char *why);

/* Finds (creating) f's trash and writes info/NAME.trashinfo for it. */
int trash_prepare(const struct sfs_file *f, struct trash_slot *s, char *why);
/* Renames f to files/NAME (checked by sfs_move); on failure the
 * .trashinfo is removed. */
int trash_commit(struct trash_slot *s, struct sfs_file *f, const uint8_t hash[16], char *why);
/* Removes the .trashinfo of a slot that will not be used. */
void trash_abort(struct trash_slot *s);
void trash_slot_free(struct trash_slot *s);

#endif
