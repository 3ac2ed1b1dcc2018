/* neardup — nd_index_backup: a consistent, compacted copy of an index. */
#include "index_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int nd_index_backup(nd_index *ix, const char *dest_dir, nd_error *err)
{
	if (ix->un)
		return ix->un->ops->backup(ix, dest_dir, err);
	char path[4200];
	struct stat sb;
	int rc;
	if (!dest_dir || !*dest_dir || strlen(dest_dir) > 4000)
		return nd_error_set(err, ND_EINVAL, "bad backup directory name");
	if (mkdir(dest_dir, 0755) != 0 && errno != EEXIST)
		return nd_error_set(err, ND_EIO, "cannot create directory '%s': %s", dest_dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/data.mdb", dest_dir);
	if (lstat(path, &sb) == 0)
		return nd_error_set(err, ND_EINVAL, "'%s' already holds an index", dest_dir);
	/* LMDB's copy reads every page through its map: a damaged page would
	 * crash it, so the file is walked first */
	if ((rc = nd_index_verify(ix, NULL, err)))
		return rc;
	return nd__store_copy(ix->st, dest_dir, err);
}
