/* neardup — reading a whole image file into memory, as one version of it.
 *
 * A file overwritten in place while it is read would otherwise give bytes
 * (and a content hash) of neither version. So the file's size, mtime and
 * ctime are compared before and after each read; a file changed just before
 * the read began (its timestamps advance by a coarse clock tick, and its
 * writer may be between two writes) is read a second time after a short
 * pause and must give the same bytes and timestamps. A file that keeps
 * changing is refused with "changed while being read". */
#ifndef NEARDUP_READFILE_H
#define NEARDUP_READFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "neardup/common.h"

/* A whole file in memory. */
struct file_data {
	uint8_t *data;
	size_t len;
	struct stat st;   /* fstat of the opened file, after the read that was kept */
	uint8_t hash[16]; /* XXH3-128 of the bytes, canonical (big-endian) */
};

/* Reads path (at most ND_MAX_FILE_BYTES). nofollow: refuse a symlink (the
 * walk saw a regular file; it must not have been swapped since). Fails with
 * a message in err for anything but a regular file. fd->data is freed with
 * file_data_free. */
int file_read(const char *path, int nofollow, struct file_data *fd, nd_error *err);
void file_data_free(struct file_data *fd);

/* file_read, calling hook(ctx, pass) after the first chunk of every pass over
 * the file (pass 0, 1, ...): tests change the file there. */
typedef void (*file_read_hook)(void *ctx, int pass);
int file_read_hooked(const char *path, int nofollow, struct file_data *fd, file_read_hook hook,
		     void *ctx, nd_error *err);

#endif
