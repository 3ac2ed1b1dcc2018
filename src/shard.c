/* neardup — the shard manifest and content placement (neardup/shard.h). */
#include "neardup/shard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the manifest is read as stored");

uint32_t nd_shard_of(const uint8_t hash[16], uint32_t shards)
{
	/* the low 64 bits of the canonical (big-endian) XXH3-128 */
	uint64_t v = 0;
	for (int i = 8; i < 16; i++)
		v = v << 8 | hash[i];
	return shards ? (uint32_t)(v % shards) : 0;
}

int nd_shard_gid(uint32_t local, uint32_t shard, uint32_t shards, uint32_t *gid, nd_error *err)
{
	uint64_t g = (uint64_t)local * shards + shard;
	if (g > UINT32_MAX)
		return nd_error_set(err, ND_EOVERFLOW, "id %u of shard %u does not fit a global id", local, shard);
	*gid = (uint32_t)g;
	return 0;
}

static int join_path(char *buf, size_t cap, const char *dir, const char *name, nd_error *err)
{
	int w = snprintf(buf, cap, "%s/%s", dir, name);
	if (w < 0 || (size_t)w >= cap)
		return nd_error_set(err, ND_EINVAL, "path '%s/%s' too long", dir, name);
	return 0;
}

int nd_manifest_exists(const char *dir)
{
	char p[4096];
	struct stat st;
	return join_path(p, sizeof(p), dir, ND_MANIFEST_FILE, NULL) == 0 && stat(p, &st) == 0;
}

void nd_manifest_free(nd_manifest *m)
{
	if (m) {
		free(m->names);
		m->names = NULL;
	}
}

int nd_manifest_shard_path(const char *dir, const nd_manifest *m, uint32_t i, char *buf, size_t cap,
			   nd_error *err)
{
	if (i >= m->h.shards)
		return nd_error_set(err, ND_EINVAL, "no shard %u", i);
	return join_path(buf, cap, dir, m->names[i], err);
}

static int valid_name(const char *n)
{
	size_t l = strnlen(n, ND_SHARD_NAME_MAX);
	if (l == 0 || l == ND_SHARD_NAME_MAX || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, ".."))
		return 0;
	for (size_t i = l; i < ND_SHARD_NAME_MAX; i++)
		if (n[i])
			return 0;
	return 1;
}

int nd_manifest_read(const char *dir, nd_manifest *m, nd_error *err)
{
	char path[4096];
	uint8_t *buf = NULL;
	int rc = 0, fd = -1;
	memset(m, 0, sizeof(*m));
	if ((rc = join_path(path, sizeof(path), dir, ND_MANIFEST_FILE, err)))
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? nd_error_set(err, ND_ENOTFOUND, "no manifest '%s'", path)
				       : nd_error_set(err, ND_EIO, "cannot open '%s': %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = nd_error_set(err, ND_EIO, "cannot stat '%s': %s", path, strerror(errno));
		goto done;
	}
	const size_t hs = sizeof(nd_manifest_hdr);
	size_t max = hs + (size_t)ND_SHARDS_MAX * ND_SHARD_NAME_MAX + 8, len = (size_t)st.st_size;
	if (len < hs + 8 || len > max) {
		rc = nd_error_set(err, ND_ECORRUPT, "manifest '%s' has %zu bytes, not a manifest's size", path, len);
		goto done;
	}
	if (!(buf = malloc(len))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t got = 0; got < len;) {
		ssize_t r = read(fd, buf + got, len - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = nd_error_set(err, ND_EIO, "cannot read '%s': %s", path, r < 0 ? strerror(errno) : "short read");
			goto done;
		}
		got += (size_t)r;
	}
	memcpy(&m->h, buf, hs);
	if (memcmp(m->h.magic, ND_MANIFEST_MAGIC, 8) != 0) {
		rc = nd_error_set(err, ND_EFORMAT, "'%s' is not a neardup shard manifest (bad magic)", path);
		goto done;
	}
	if (m->h.version != ND_MANIFEST_VERSION || m->h.hdr_size != hs) {
		rc = nd_error_set(err, ND_EVERSION, "manifest '%s' has version %u (header %u bytes); this neardup reads version %u",
				  path, m->h.version, m->h.hdr_size, ND_MANIFEST_VERSION);
		goto done;
	}
	if (m->h.shards < 1 || m->h.shards > ND_SHARDS_MAX ||
	    len != hs + (size_t)m->h.shards * ND_SHARD_NAME_MAX + 8) {
		rc = nd_error_set(err, ND_ECORRUPT, "manifest '%s' is truncated or names %u shards in %zu bytes", path,
				  m->h.shards, len);
		goto done;
	}
	uint64_t want;
	memcpy(&want, buf + len - 8, 8);
	if (XXH3_64bits(buf, len - 8) != want) {
		rc = nd_error_set(err, ND_ECORRUPT, "manifest '%s' is damaged (checksum mismatch)", path);
		goto done;
	}
	if (m->h.reserved || m->h.model_name[ND_MODEL_NAME_MAX] || m->h.dim == 0 || m->h.tables == 0 ||
	    m->h.bits == 0) {
		rc = nd_error_set(err, ND_ECORRUPT, "manifest '%s' has invalid settings", path);
		goto done;
	}
	if (!(m->names = malloc((size_t)m->h.shards * ND_SHARD_NAME_MAX))) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(m->names, buf + hs, (size_t)m->h.shards * ND_SHARD_NAME_MAX);
	for (uint32_t i = 0; i < m->h.shards; i++)
		if (!valid_name(m->names[i])) {
			rc = nd_error_set(err, ND_ECORRUPT, "manifest '%s': shard %u has an invalid path", path, i);
			goto done;
		}
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	if (rc)
		nd_manifest_free(m);
	return rc;
}

int nd_manifest_write(const char *dir, const nd_manifest *m, nd_error *err)
{
	char path[4096], tmp[4096];
	const size_t hs = sizeof(nd_manifest_hdr);
	size_t len = hs + (size_t)m->h.shards * ND_SHARD_NAME_MAX + 8;
	uint8_t *buf = NULL;
	int rc = 0, fd = -1;
	if (m->h.shards < 1 || m->h.shards > ND_SHARDS_MAX)
		return nd_error_set(err, ND_EINVAL, "shard count %u outside 1..%u", m->h.shards, ND_SHARDS_MAX);
	for (uint32_t i = 0; i < m->h.shards; i++)
		if (!valid_name(m->names[i]))
			return nd_error_set(err, ND_EINVAL, "invalid shard path for shard %u", i);
	if ((rc = join_path(path, sizeof(path), dir, ND_MANIFEST_FILE, err)) ||
	    (rc = join_path(tmp, sizeof(tmp), dir, ND_MANIFEST_FILE ".tmp", err)))
		return rc;
	if (!(buf = calloc(1, len)))
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	nd_manifest_hdr h = m->h;
	memcpy(h.magic, ND_MANIFEST_MAGIC, 8);
	h.version = ND_MANIFEST_VERSION;
	h.hdr_size = (uint32_t)hs;
	h.reserved = 0;
	memcpy(buf, &h, hs);
	memcpy(buf + hs, m->names, (size_t)m->h.shards * ND_SHARD_NAME_MAX);
	uint64_t sum = XXH3_64bits(buf, len - 8);
	memcpy(buf + len - 8, &sum, 8);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = nd_error_set(err, ND_EIO, "cannot create '%s': %s", tmp, strerror(errno));
		goto done;
	}
	for (size_t put = 0; put < len;) {
		ssize_t w = write(fd, buf + put, len - put);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = nd_error_set(err, ND_EIO, "cannot write '%s': %s", tmp, strerror(errno));
			goto done;
		}
		put += (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		rc = nd_error_set(err, ND_EIO, "cannot write '%s': %s", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		rc = nd_error_set(err, ND_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
done:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(buf);
	return rc;
}
