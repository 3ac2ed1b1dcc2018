/* neardup — the LMDB environment: open, writer lock, transactions, map growth. */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int is_damage(int mrc)
{
	return mrc == MDB_CORRUPTED || mrc == MDB_PAGE_NOTFOUND || mrc == MDB_INVALID ||
	       mrc == MDB_VERSION_MISMATCH;
}

int nd__store_err(int mrc, nd_error *err, const char *what)
{
	if (mrc == MDB_MAP_FULL)
		return ND_STORE_MAPFULL;
	if (is_damage(mrc))
		return nd_error_set(err, ND_ECORRUPT, "the index is damaged: %s: %s", what, mdb_strerror(mrc));
	if (mrc == ENOSPC)
		return nd_error_set(err, ND_ESTORE, "%s: no space left on device", what);
	if (mrc == EDQUOT)
		return nd_error_set(err, ND_ESTORE, "%s: disk quota exceeded", what);
	return nd_error_set(err, ND_ESTORE, "%s: %s", what, mdb_strerror(mrc));
}

/* Below this, a failed write is put down to a full disk. */
#define DISK_LOW_BYTES ((uint64_t)1 << 20)

/* A write that failed on a (nearly) full disk is said to be that: LMDB
 * reports a short write, which is what a full disk gives, as EIO. */
static int explain_full_disk(const nd_store *s, int rc, nd_error *err)
{
	struct statvfs v;
	if (rc != ND_ESTORE || !err || statvfs(s->dir, &v) != 0 ||
	    (uint64_t)v.f_bavail * v.f_frsize >= DISK_LOW_BYTES)
		return rc;
	return nd_error_set(err, ND_ESTORE, "no space left on device");
}

/* The same, naming the index */
static int store_err(const nd_store *s, int mrc, nd_error *err, const char *what)
{
	if (is_damage(mrc))
		return nd_error_set(err, ND_ECORRUPT, "index '%s' is damaged: %s: %s", s->dir, what,
				    mdb_strerror(mrc));
	return nd__store_err(mrc, err, what);
}

/* The walk before LMDB opens the file. A reader holds no lock: a writer
 * may commit meanwhile and reuse pages under it, so damage counts only when
 * the same snapshot shows it twice. */
static int preflight(const nd_store *s, int full, nd_error *err)
{
	nd__store_walk_info w;
	uint64_t last = 0;
	int rc = 0;
	for (int tries = 0; tries < 8; tries++) {
		rc = nd__store_walk(s->dir, full, 0, &w, err);
		if (rc != ND_ECORRUPT || w.txnid == last)
			return rc;
		last = w.txnid;
	}
	return rc;
}

/* Takes dir/neardup.lock (flock, so a killed writer never leaves it held)
 * and writes our pid into it; on contention names the holder. */
static int take_writer_lock(nd_store *s, nd_error *err)
{
	char path[4200], buf[32];
	int fd, rc = 0;
	snprintf(path, sizeof(path), "%s/neardup.lock", s->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return nd_error_set(err, ND_EIO, "cannot open lock file '%s': %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		long pid = 0;
		ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);
		if (r > 0) {
			buf[r] = 0;
			pid = strtol(buf, NULL, 10);
		}
		if (e != EWOULDBLOCK) {
			rc = nd_error_set(err, ND_EIO, "cannot lock '%s': %s", path, strerror(e));
		} else if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
			rc = nd_error_set(err, ND_EBUSY,
					  "index '%s' is being written by process %ld (lock file '%s')",
					  s->dir, pid, path);
		} else {
			rc = nd_error_set(err, ND_EBUSY,
					  "index '%s' is locked for writing by another process "
					  "(recorded pid %ld is not running; a child of it may hold '%s')",
					  s->dir, pid, path);
		}
		close(fd);
		return rc;
	}
	int len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
		rc = nd_error_set(err, ND_EIO, "cannot write lock file '%s': %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	s->lock_fd = fd;
	return 0;
}

int nd__store_open(nd_store **out, const char *dir, int create, int readonly, size_t map_size,
		   int nosync, nd_error *err)
{
	nd_store *s = NULL;
	MDB_txn *txn = NULL;
	char path[4200];
	struct stat sb;
	int rc = 0, mrc, dead = 0;

	*out = NULL;
	if (!dir || !*dir || strlen(dir) > 4000)
		return nd_error_set(err, ND_EINVAL, "bad index directory name");
	s = calloc(1, sizeof(*s));
	if (!s || !(s->dir = strdup(dir))) {
		free(s);
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	}
	s->lock_fd = -1;
	s->readonly = readonly;
	pthread_rwlock_init(&s->resize_lock, NULL);

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &sb) != 0) {
		if (!create || readonly) {
			rc = nd_error_set(err, ND_ENOTFOUND, "no index in '%s'", dir);
			goto fail;
		}
		if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
			rc = nd_error_set(err, ND_EIO, "cannot create directory '%s': %s", dir, strerror(errno));
			goto fail;
		}
	}
	if (!readonly && (rc = take_writer_lock(s, err)))
		goto fail;
	/* LMDB maps the file and trusts it: a short file faults (SIGBUS) and a
	 * damaged page sends it outside the map. Every open checks the size and
	 * what the open itself reads; a writer checks every tree (under its
	 * lock nobody else writes), since LMDB writes into the pages it finds. */
	if (stat(path, &sb) == 0 && sb.st_size > 0 && (rc = preflight(s, !readonly, err)))
		goto fail;
	/* an empty data.mdb is what a writer killed while creating the index
	 * leaves: LMDB sets it up anew, as a writer does here */
	if (readonly && sb.st_size == 0) {
		rc = nd_error_set(err, ND_ENOTFOUND, "no index in '%s' (data.mdb is empty)", dir);
		goto fail;
	}
	if (map_size == 0)
		map_size = (size_t)256 << 20;
	unsigned flags = MDB_NOTLS | (readonly ? MDB_RDONLY : 0) | (nosync ? MDB_NOSYNC : 0);
	for (;;) {
		if ((mrc = mdb_env_create(&s->env))) {
			rc = nd__store_err(mrc, err, "mdb_env_create");
			goto fail;
		}
		mdb_env_set_maxdbs(s->env, 12);
		mdb_env_set_maxreaders(s->env, 254);
		/* LMDB keeps the larger of this and the size the file already has */
		if ((mrc = mdb_env_set_mapsize(s->env, map_size))) {
			rc = nd__store_err(mrc, err, "mdb_env_set_mapsize");
			goto fail;
		}
		mrc = mdb_env_open(s->env, dir, flags, 0644);
		/* a reader who may not write lock.mdb (a shared index of another
		 * user) reads without it: its transactions are not registered,
		 * so a writer working at the same time may reuse pages it reads */
		if ((mrc == EACCES || mrc == EPERM) && readonly && !(flags & MDB_NOLOCK)) {
			mdb_env_close(s->env);
			s->env = NULL;
			flags |= MDB_NOLOCK;
			s->nolock = 1;
			continue;
		}
		break;
	}
	if (mrc) {
		if (is_damage(mrc))
			rc = store_err(s, mrc, err, "data.mdb");
		else
			rc = nd_error_set(err, mrc == EACCES || mrc == ENOENT ? ND_EIO : ND_ESTORE,
					  "cannot open index '%s': %s", dir, mdb_strerror(mrc));
		goto fail;
	}
	/* clear reader slots left by killed processes */
	if (!s->nolock)
		mdb_reader_check(s->env, &dead);

	if ((mrc = mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn))) {
		rc = store_err(s, mrc, err, "mdb_txn_begin");
		goto fail;
	}
	unsigned cf = readonly ? 0 : MDB_CREATE;
	struct {
		const char *name;
		unsigned flags;
		MDB_dbi *dbi;
	} dbs[] = {
		{ ND_DB_META, 0, &s->meta },
		{ ND_DB_RECORDS, MDB_INTEGERKEY, &s->records },
		{ ND_DB_PATHS, 0, &s->paths },
		{ ND_DB_HASHES, MDB_DUPSORT | MDB_DUPFIXED | MDB_INTEGERDUP, &s->hashes },
		{ ND_DB_VECTORS, MDB_INTEGERKEY, &s->vectors },
		{ ND_DB_POSTINGS, 0, &s->postings },
	};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		if ((mrc = mdb_dbi_open(txn, dbs[i].name, dbs[i].flags | cf, dbs[i].dbi))) {
			if (mrc == MDB_NOTFOUND)
				rc = nd_error_set(err, ND_ECORRUPT, "index '%s' has no '%s' database", dir,
						  dbs[i].name);
			else if (is_damage(mrc))
				rc = store_err(s, mrc, err, dbs[i].name);
			else
				rc = nd_error_set(err, ND_ESTORE, "cannot open database '%s' in '%s': %s",
						  dbs[i].name, dir, mdb_strerror(mrc));
			goto fail;
		}
	}
	/* the perceptual-hash postings came later: a read-only open
	 * of an older index goes on without them */
	mrc = mdb_dbi_open(txn, ND_DB_PHASH, cf, &s->phash);
	if (mrc == 0) {
		s->has_phash_db = 1;
	} else if (mrc != MDB_NOTFOUND) {
		rc = nd_error_set(err, ND_ESTORE, "cannot open database '%s' in '%s': %s", ND_DB_PHASH, dir,
				  mdb_strerror(mrc));
		goto fail;
	}
	/* so did the file identities */
	mrc = mdb_dbi_open(txn, ND_DB_INODES, cf, &s->inodes);
	if (mrc == 0) {
		s->has_inode_db = 1;
	} else if (mrc != MDB_NOTFOUND) {
		rc = nd_error_set(err, ND_ESTORE, "cannot open database '%s' in '%s': %s", ND_DB_INODES, dir,
				  mdb_strerror(mrc));
		goto fail;
	}
	/* committed even when read-only: an aborted transaction closes the handles */
	mrc = mdb_txn_commit(txn);
	txn = NULL;
	if (mrc) {
		rc = nd__store_err(mrc, err, "cannot create the index databases");
		if (rc == ND_STORE_MAPFULL)
			rc = nd_error_set(err, ND_ESTORE, "map size too small to create the index");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (txn)
		mdb_txn_abort(txn);
	nd__store_close(s);
	return rc;
}

void nd__store_close(nd_store *s)
{
	if (!s)
		return;
	if (s->env)
		mdb_env_close(s->env);
	if (s->lock_fd >= 0) {
		if (ftruncate(s->lock_fd, 0) != 0) {
			/* the pid left behind is harmless: flock is what counts */
		}
		close(s->lock_fd);
	}
	pthread_rwlock_destroy(&s->resize_lock);
	free(s->dir);
	free(s);
}

/* Adopts a map size grown by another process (MDB_MAP_RESIZED). */
static int adopt_map_size(nd_store *s, nd_error *err)
{
	pthread_rwlock_wrlock(&s->resize_lock);
	int mrc = mdb_env_set_mapsize(s->env, 0);
	pthread_rwlock_unlock(&s->resize_lock);
	return mrc ? nd__store_err(mrc, err, "mdb_env_set_mapsize") : 0;
}

int nd__store_read_begin(nd_store *s, MDB_txn **txn, nd_error *err)
{
	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&s->resize_lock);
		int mrc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
		if (mrc == 0)
			return 0;
		pthread_rwlock_unlock(&s->resize_lock);
		if (mrc == MDB_MAP_RESIZED && tries < 3) {
			int rc = adopt_map_size(s, err);
			if (rc)
				return rc;
			continue;
		}
		return store_err(s, mrc, err, "cannot begin a read transaction");
	}
}

void nd__store_read_end(nd_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->resize_lock);
}

static int grow_map(nd_store *s, nd_error *err)
{
	MDB_envinfo info;
	int rc = 0;
	pthread_rwlock_wrlock(&s->resize_lock);
	mdb_env_info(s->env, &info);
	size_t cur = info.me_mapsize, next;
	if (nd_mul_size(cur, 2, &next)) {
		rc = nd_error_set(err, ND_ELIMIT, "index map cannot grow beyond %zu bytes", cur);
	} else {
		int mrc = mdb_env_set_mapsize(s->env, next);
		if (mrc)
			rc = nd_error_set(err, ND_ESTORE, "cannot grow the index map to %zu bytes: %s", next,
					  mdb_strerror(mrc));
		else
			s->grows++;
	}
	pthread_rwlock_unlock(&s->resize_lock);
	return rc;
}

int nd__store_write(nd_store *s, nd__store_write_fn fn, void *ctx, nd_error *err)
{
	if (s->readonly)
		return nd_error_set(err, ND_EINVAL, "index '%s' is open read-only", s->dir);
	for (int attempt = 0; attempt < 40; attempt++) {
		MDB_txn *txn = NULL;
		pthread_rwlock_rdlock(&s->resize_lock);
		int mrc = mdb_txn_begin(s->env, NULL, 0, &txn), rc;
		if (mrc) {
			pthread_rwlock_unlock(&s->resize_lock);
			if (mrc == MDB_MAP_RESIZED) {
				if ((rc = adopt_map_size(s, err)))
					return rc;
				continue;
			}
			return store_err(s, mrc, err, "cannot begin a write transaction");
		}
		rc = fn(txn, ctx, err);
		if (rc == 0) {
			mrc = mdb_txn_commit(txn);
			pthread_rwlock_unlock(&s->resize_lock);
			if (mrc == 0)
				return 0;
			rc = store_err(s, mrc, err, "cannot commit");
			if (rc != ND_STORE_MAPFULL)
				return explain_full_disk(s, rc, err);
		} else {
			mdb_txn_abort(txn);
			pthread_rwlock_unlock(&s->resize_lock);
			if (rc != ND_STORE_MAPFULL)
				return explain_full_disk(s, rc, err);
		}
		if ((rc = grow_map(s, err)))
			return rc;
	}
	return nd_error_set(err, ND_ELIMIT, "index map still full after many grows");
}

int nd__store_read_begin_verified(nd_store *s, MDB_txn **txn, nd__store_walk_info *out, nd_error *err)
{
	int rc = ND_EBUSY;
	/* the read transaction keeps writers off the snapshot's pages; when
	 * they have overwritten its meta page meanwhile, take a newer one */
	for (int tries = 0; tries < 20 && rc == ND_EBUSY; tries++) {
		if ((rc = nd__store_read_begin(s, txn, err)))
			return rc;
		rc = nd__store_walk(s->dir, 1, (uint64_t)mdb_txn_id(*txn), out, err);
		if (rc == 0)
			return 0;
		nd__store_read_end(s, *txn);
	}
	*txn = NULL;
	if (rc == ND_EBUSY)
		rc = nd_error_set(err, ND_EBUSY, "index '%s' changes too fast to be verified", s->dir);
	return rc;
}

int nd__store_copy(nd_store *s, const char *dest_dir, nd_error *err)
{
	pthread_rwlock_rdlock(&s->resize_lock);
	int mrc = mdb_env_copy2(s->env, dest_dir, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&s->resize_lock);
	if (mrc == 0)
		return 0;
	if (is_damage(mrc))
		return store_err(s, mrc, err, "copying");
	return nd_error_set(err, mrc == EEXIST || mrc == ENOENT || mrc == EACCES ? ND_EIO : ND_ESTORE,
			    "cannot copy index '%s' to '%s': %s", s->dir, dest_dir, mdb_strerror(mrc));
}
