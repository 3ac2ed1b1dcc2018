/* neardup — sharded collections: one directory, a manifest and N ordinary
 * index shards.
 *
 *   DIR/manifest        binary, little-endian (layout below), validated on open
 *   DIR/shard-0000/ ... ordinary LMDB indexes (neardup/index.h)
 *
 * An image lives in shard nd_shard_of(content hash, N), so byte-identical
 * copies share a shard. nd_index_open on a directory holding a manifest
 * opens every shard and returns one handle that the whole nd_index API
 * works on (a "union" handle): ids are global (nd_shard_gid), reads and
 * writes go to the shard that holds the image, queries fan out over the
 * shards on threads and merge their top k, and the self-join runs over the
 * images of all shards at once, so its pairs are those of one index
 * holding the same images. An add on a union handle is one transaction
 * per shard, not one in all.
 *
 * A manifest and shards that disagree (another model, LSH seed or
 * settings, a missing shard, an image in the wrong shard) are an error
 * naming the file. */
#ifndef NEARDUP_SHARD_H
#define NEARDUP_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"
#include "neardup/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ND_MANIFEST_FILE "manifest"
#define ND_MANIFEST_MAGIC "NDSHARDS"
#define ND_MANIFEST_VERSION 1
#define ND_SHARDS_MAX 4096
#define ND_SHARD_NAME_MAX 64        /* bytes per shard path field, NUL-padded */

/* The manifest's fixed header as stored (little-endian). It is followed by
 * shards x ND_SHARD_NAME_MAX bytes of shard paths (relative to DIR, no '/'
 * and no "..", NUL-padded) and the XXH3-64 of everything before it. */
typedef struct nd_manifest_hdr {
	char magic[8];              /* ND_MANIFEST_MAGIC */
	uint32_t version;           /* ND_MANIFEST_VERSION */
	uint32_t hdr_size;          /* sizeof(nd_manifest_hdr) */
	uint32_t shards;            /* 1..ND_SHARDS_MAX */
	uint32_t dim, tables, bits, vec_format;
	uint32_t reserved;          /* 0 */
	uint64_t seed;              /* LSH seed */
	uint64_t model_checksum;
	char model_name[ND_MODEL_NAME_MAX + 1];
} nd_manifest_hdr;
_Static_assert(sizeof(nd_manifest_hdr) == 312, "manifest header layout");

typedef struct nd_manifest {
	nd_manifest_hdr h;
	char (*names)[ND_SHARD_NAME_MAX]; /* [h.shards], NUL-terminated */
} nd_manifest;

/* The shard of an image with this content hash (XXH3-128, canonical bytes). */
uint32_t nd_shard_of(const uint8_t hash[16], uint32_t shards);

/* Global ids of a union handle: gid = local id * shards + shard. */
static inline uint32_t nd_shard_gid_shard(uint32_t gid, uint32_t shards)
{
	return gid % shards;
}
static inline uint32_t nd_shard_gid_local(uint32_t gid, uint32_t shards)
{
	return gid / shards;
}
/* ND_EOVERFLOW when the global id would not fit 32 bits. */
int nd_shard_gid(uint32_t local, uint32_t shard, uint32_t shards, uint32_t *gid, nd_error *err);

/* 1 when dir holds a manifest (a sharded collection). */
int nd_manifest_exists(const char *dir);

/* Reads and validates DIR/manifest; m->names is allocated (nd_manifest_free).
 * ND_ENOTFOUND when there is none; ND_EFORMAT / ND_EVERSION / ND_ECORRUPT
 * with a message naming the file. */
int nd_manifest_read(const char *dir, nd_manifest *m, nd_error *err);
/* Writes DIR/manifest atomically (a temporary file renamed over it). */
int nd_manifest_write(const char *dir, const nd_manifest *m, nd_error *err);
void nd_manifest_free(nd_manifest *m);
/* "DIR/NAME" of shard i into buf. ND_EINVAL when it does not fit. */
int nd_manifest_shard_path(const char *dir, const nd_manifest *m, uint32_t i, char *buf, size_t cap,
			   nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
