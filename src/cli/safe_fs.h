/* neardup CLI — file operations that cannot be misdirected by symbolic links
 * or by a file swapped under a name.
 *
 * A file is reached from "/" (relative paths from the physical working
 * directory) by opening one directory component after the other with
 * O_NOFOLLOW, so no symbolic link anywhere in the path is followed; then the
 * file itself is opened with O_NOFOLLOW and fstat-ed. Every operation acts
 * relative to the verified directory descriptors, checks just before acting
 * that the name still refers to the verified inode, and checks again after
 * acting (a rename that moved something else is reverted).
 *
 * Errors: functions return 0, or -1 with a reason for the user in why
 * (lowercase, no full stop). Nothing here prints. */
#ifndef NEARDUP_CLI_SAFE_FS_H
#define NEARDUP_CLI_SAFE_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define SFS_WHY 512 /* room for a reason */

/* A directory or file identity. */
struct sfs_id {
	dev_t dev;
	ino_t ino;
};

/* An opened, verified path. */
struct sfs_file {
	char *abs;            /* absolute path (owned) */
	const char *name;     /* its last component (inside abs) */
	int dirfd;            /* its directory (O_PATH), -1 when closed */
	int fd;               /* the file (O_RDONLY), -1 for a directory walk */
	struct stat st;       /* fstat of fd (or of dirfd for a directory walk) */
	int *chain_fd;        /* the directories walked, "/" first (owned) */
	struct sfs_id *chain; /* their identities */
	size_t nchain;
};

/* Opens the regular file at path (absolute, or relative to the working
 * directory) by a walk that follows no symbolic link. A path with a '..'
 * component is refused. Close with sfs_close. */
int sfs_open(const char *path, struct sfs_file *f, char *why);

/* Walks to the directory at path the same way: f->dirfd is the directory
 * itself, f->fd is -1, f->name is its last component. */
int sfs_open_dir(const char *path, struct sfs_file *f, char *why);

/* Releases f (safe on a zeroed or already closed f). */
void sfs_close(struct sfs_file *f);

/* 1 when id is f itself or one of the directories above it. */
int sfs_within(const struct sfs_file *f, struct sfs_id id);

/* Index into f->chain of the top directory of f's file system (the highest
 * of the directories right above f that share its device), for the trash
 * spec's $topdir. */
size_t sfs_topdir(const struct sfs_file *f);

/* Length of the prefix of f->abs that names f->chain[i] ("/" for 0). */
size_t sfs_prefix(const struct sfs_file *f, size_t i);

/* The XXH3-128 of everything fd holds, in the canonical big-endian form
 * the index stores, and its length. -1 (why) on a read error. */
int sfs_hash_fd(int fd, uint8_t out[16], uint64_t *len, char *why);

/* 0 when name in dirfd is (not following a link) the inode st describes,
 * -1 (why) otherwise. */
int sfs_same(int dirfd, const char *name, const struct stat *st, char *why);

/* Opens (creating with mode when missing) the directory rel below dirfd,
 * following no symbolic link; *out is an O_PATH descriptor. rel is
 * relative, '/'-separated; empty means dirfd itself. */
int sfs_mkdirs(int dirfd, const char *rel, mode_t mode, int *out, char *why);

/* Removes f's name, after checking it still refers to f's inode; the name
 * is first renamed aside and checked there, so a file swapped in between is
 * put back, not removed. */
int sfs_unlink(struct sfs_file *f, char *why);

/* Moves f to dname in ddirfd without replacing anything. Across file
 * systems the content is copied from f's descriptor, fsync-ed and checked
 * against want (the expected hash) before f is removed. */
int sfs_move(struct sfs_file *f, int ddirfd, const char *dname, const uint8_t want[16], char *why);

/* Replaces victim's name by a hard link to kept's inode, atomically
 * (RENAME_EXCHANGE), checking both inodes before and after. */
int sfs_replace_by_link(struct sfs_file *victim, const struct sfs_file *kept, char *why);

#endif
