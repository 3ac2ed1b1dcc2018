/* neardup — the on-disk value formats of the LMDB index, and their
 * validating decoders.
 *
 * One LMDB environment (a directory) holds these named databases:
 *   meta     "meta"                 -> nd_meta value (format version, model, L, K, seed, dim, counters)
 *   records  id (uint32, native)    -> record value (path, size, mtime, content hash, width, height,
 *                                      and from version 2 the file's device and inode)
 *   paths    path bytes (*)         -> path value (magic + id)
 *   hashes   128-bit content hash   -> ids (sorted duplicates, 4 bytes each)
 *   vectors  id (uint32, native)    -> vector value (header + float16 or int8 components)
 *   postings table|bucket|first id  -> block value (magic + varint gaps, see postings.h)
 *   phash    quarter|bucket|first id -> block value, as postings: the perceptual-hash
 *                                       postings. Every image whose vector
 *                                       carries a hash (version 3) is listed in four
 *                                       buckets, "tables" 0..3, bucket = bits 16q..16q+15
 *                                       of its hash: two hashes within 3 bits share one.
 *   inodes   device|inode (2 x u64,  -> path value (magic + id): every record that knows its
 *            big-endian)                file's identity, so that one file under two spellings
 *                                       (relative and absolute, through a symlinked directory,
 *                                       a hard link) is found as one image
 * The phash database is valid only while meta's "phash" entry (nd_phash_mark)
 * matches the metadata's next id and image count: a writer from before it
 * adds and removes images without touching either, and the next writer
 * that knows it rebuilds the database from the stored vectors. The inodes
 * database is kept the same way (meta key "inodes"), rebuilt from the
 * records.
 * (*) paths longer than ND_PATH_KEY_MAX bytes are keyed by their first
 *     ND_PATH_KEY_PREFIX bytes, a 0 byte and the XXH3-128 of the whole path;
 *     the record is always compared with the full path.
 *
 * Every value starts with a magic byte (meta: 4 bytes) and a version, is
 * little-endian, and is decoded only through the functions below, which take
 * the value's length and reject anything malformed with ND_ECORRUPT (or
 * ND_EVERSION / ND_EFORMAT) and a message saying what is wrong. Decoders
 * never allocate; pointers they return point into the given buffer.
 *
 * Extensibility: meta, record and vector values carry a header size. A later
 * minor version appends fields to the header and raises the header size;
 * readers skip what they do not know, so older data stays readable and older
 * readers read newer data. A new major version (magic change) is a format
 * break. */
#ifndef NEARDUP_STORE_H
#define NEARDUP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"
#include "neardup/origin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ND_FORMAT_VERSION 1      /* meta format version written by this code */

/* The databases' names (the table above), and the keys of the meta
 * database: the nd_meta value and the two marks. */
#define ND_DB_META "meta"
#define ND_DB_RECORDS "records"
#define ND_DB_PATHS "paths"
#define ND_DB_HASHES "hashes"
#define ND_DB_VECTORS "vectors"
#define ND_DB_POSTINGS "postings"
#define ND_DB_PHASH "phash"
#define ND_DB_INODES "inodes"
#define ND_META_KEY "meta"          /* -> nd_meta value */
#define ND_META_KEY_PHASH "phash"   /* -> the phash database's mark (nd_phash_mark) */
#define ND_META_KEY_INODES "inodes" /* -> the inodes database's mark (nd_phash_mark) */

#define ND_MODEL_NAME_MAX 255
#define ND_PATH_MAX 4095         /* longest image path stored (bytes) */
#define ND_PATH_KEY_MAX 480      /* longer paths are keyed by prefix + hash */
#define ND_PATH_KEY_PREFIX 463   /* 463 + 1 + 16 = 480 */
#define ND_POSTING_KEY_SIZE 10   /* u16 table, u32 bucket, u32 first id, big-endian */
#define ND_BLOCK_MAX_IDS 128     /* ids per posting block */

enum nd_vec_format {
	ND_VEC_F16 = 1,          /* IEEE half per component */
	ND_VEC_I8 = 2            /* int8 per component, times a per-vector float scale */
};

/* ---- meta ---- */
typedef struct nd_meta {
	uint32_t format_version;
	uint32_t dim, tables, bits, vec_format;
	uint64_t seed;
	uint64_t model_checksum;
	char model_name[ND_MODEL_NAME_MAX + 1];
	uint32_t next_id;        /* next id to assign (ids start at 1, never reused) */
	uint64_t n_images;       /* records */
	uint64_t n_postings;     /* ids in posting blocks (= n_images * tables) */
	uint64_t n_blocks;       /* posting blocks */
	uint64_t posting_bytes;  /* sum of block key + value sizes */
	uint32_t flags;          /* ND_META_* */
} nd_meta;

/* meta flags. An older writer (before calibrated similarity) writes 0 here and version-1
 * vectors, so the flag is cleared whenever such a writer touched the index. */
#define ND_META_VEC_STAT 1u      /* every vector is version 2 (carries its background statistic) */

#define ND_META_HDR_V1 80
size_t nd_meta_encoded_size(const nd_meta *m);
/* out must hold nd_meta_encoded_size(m) bytes (at most ND_META_HDR_V1 + 255). */
int nd_meta_encode(const nd_meta *m, uint8_t *out, size_t cap, size_t *len, nd_error *err);
int nd_meta_decode(const void *buf, size_t len, nd_meta *m, nd_error *err);

/* ---- image records ---- */
typedef struct nd_record {
	uint32_t id;
	uint32_t width, height;
	uint64_t size;           /* file size in bytes */
	int64_t mtime_ns;        /* modification time, ns since the epoch */
	uint8_t hash[16];        /* content hash (XXH3-128 of the file, canonical big-endian bytes) */
	const char *path;        /* NUL-terminated; lifetime: see the function that filled it */
	size_t path_len;         /* strlen(path) */
	uint64_t dev, ino;       /* the file's identity (st_dev, st_ino) when indexed; both 0 =
				  * unknown (a version-1 record) */
} nd_record;

/* The record knows its file's identity. */
static inline int nd_record_has_identity(const nd_record *r)
{
	return r->dev != 0 || r->ino != 0;
}

/* Version 1: a 48-byte header. Version 2: a 64-byte header, the v1 fields
 * plus the device and inode (uint64 each) at offset 48. Written: version 2. */
#define ND_RECORD_HDR_V1 48
#define ND_RECORD_HDR_V2 64
size_t nd_record_encoded_size(size_t path_len);
/* Encodes everything but id (the key), as version 2. ND_EINVAL for an empty
 * path, a path longer than ND_PATH_MAX or holding a NUL byte. */
int nd_record_encode(const nd_record *r, uint8_t *out, size_t cap, size_t *len, nd_error *err);
/* r->path points into buf (valid as long as buf); r->id is left alone.
 * A version-1 record decodes with dev = ino = 0. */
int nd_record_decode(const void *buf, size_t len, nd_record *r, nd_error *err);

/* ---- (device, inode) -> id ---- */
#define ND_INODE_KEY_SIZE 16
void nd_inode_key(uint64_t dev, uint64_t ino, uint8_t key[ND_INODE_KEY_SIZE]);

/* ---- path -> id ---- */
#define ND_PATHVAL_SIZE 5
/* key must hold ND_PATH_KEY_MAX bytes; returns the key length. */
size_t nd_path_key(const char *path, size_t path_len, uint8_t *key);
void nd_pathval_encode(uint32_t id, uint8_t out[ND_PATHVAL_SIZE]);
int nd_pathval_decode(const void *buf, size_t len, uint32_t *id, nd_error *err);

/* ---- vectors ---- */
/* Version 1: a 12-byte header. Version 2: a 16-byte header, the
 * v1 fields plus a float32 "stat" at offset 12, the image's background
 * statistic for the calibrated similarity (neardup/calib.h). Version 3:
 * a 24-byte header, the v2 fields plus the image's 64-bit
 * perceptual hash (neardup/phash.h) at offset 16, for the score fusion.
 * Version 4: a 64-byte header, the v3 fields plus the image's originality
 * record (neardup/origin.h, ND_ORIGIN_SIZE bytes) at offset 24, for the
 * keep rule "original". */
#define ND_VEC_HDR_V1 12
#define ND_VEC_HDR_V2 16
#define ND_VEC_HDR_V3 24
#define ND_VEC_HDR_V4 (ND_VEC_HDR_V3 + ND_ORIGIN_SIZE)
typedef struct nd_vec_view {
	uint32_t dim;
	uint32_t format;         /* enum nd_vec_format */
	float scale;             /* ND_VEC_I8: component = int8 * scale */
	const uint8_t *data;     /* dim components (unaligned), into the decoded buffer */
	int has_stat;            /* a version-2 value: stat is valid */
	float stat;              /* background statistic (finite), 0 when !has_stat */
	int has_phash;           /* a version-3 value: phash is valid */
	uint64_t phash;          /* perceptual hash, 0 when !has_phash */
	int has_origin;          /* a version-4 value: origin is valid */
	nd_origin origin;        /* originality record (nd_origin_init when !has_origin) */
} nd_vec_view;

/* Encoded size: version 1 (no statistic), or version 2 when has_stat. */
size_t nd_vector_encoded_size(uint32_t dim, uint32_t format);
size_t nd_vector_encoded_size_stat(uint32_t dim, uint32_t format, int has_stat);
/* The largest encoding of any version (version 4). */
size_t nd_vector_encoded_size_max(uint32_t dim, uint32_t format);
/* Quantises vec[dim] (finite values) into out (version 1). */
int nd_vector_encode(const float *vec, uint32_t dim, uint32_t format, uint8_t *out, size_t cap,
		     size_t *len, nd_error *err);
/* The same as version 2 with the statistic stat (finite). */
int nd_vector_encode_stat(const float *vec, uint32_t dim, uint32_t format, float stat, uint8_t *out,
			  size_t cap, size_t *len, nd_error *err);
/* The same as version 3 with the statistic and the perceptual hash phash. */
int nd_vector_encode_stat_phash(const float *vec, uint32_t dim, uint32_t format, float stat,
				uint64_t phash, uint8_t *out, size_t cap, size_t *len, nd_error *err);
/* The same as version 4 with the originality record origin too. */
int nd_vector_encode_v4(const float *vec, uint32_t dim, uint32_t format, float stat, uint64_t phash,
			const nd_origin *origin, uint8_t *out, size_t cap, size_t *len, nd_error *err);
/* Validates a stored vector of dim components (dim 0: any). */
int nd_vector_decode(const void *buf, size_t len, uint32_t dim, nd_vec_view *v, nd_error *err);
/* out: out[v->dim] floats. */
void nd_vector_dequant(const nd_vec_view *v, float *out);
/* <stored vector, q> for q[v->dim]. */
float nd_vector_dot(const nd_vec_view *v, const float *q);

/* ---- the validity mark of a derived database (meta keys "phash" and
 * "inodes": the same format, despite the name) ---- */
#define ND_PHASH_MARK_SIZE 16
#define ND_PHASH_QUARTERS 4
void nd_phash_mark_encode(uint32_t next_id, uint64_t n_images, uint8_t out[ND_PHASH_MARK_SIZE]);
int nd_phash_mark_decode(const void *buf, size_t len, uint32_t *next_id, uint64_t *n_images,
			 nd_error *err);

/* ---- posting blocks ---- */
#define ND_BLOCK_MAGIC 0xB1
void nd_posting_key(uint32_t table, uint32_t bucket, uint32_t first, uint8_t key[ND_POSTING_KEY_SIZE]);
int nd_posting_key_decode(const void *key, size_t len, uint32_t *table, uint32_t *bucket,
			  uint32_t *first, nd_error *err);
/* Decodes a block value whose key holds first: ids[0] = first, then the
 * gaps. ids has room for cap (>= ND_BLOCK_MAX_IDS) ids. */
int nd_block_decode(uint32_t first, const void *val, size_t len, uint32_t *ids, size_t cap,
		    size_t *n, nd_error *err);
/* Encodes ids[0..n) (n >= 1, n <= ND_BLOCK_MAX_IDS, increasing) as the value
 * of the block keyed by ids[0]; out needs 1 + 5 * (n - 1) bytes. */
int nd_block_encode(const uint32_t *ids, size_t n, uint8_t *out, size_t cap, size_t *len,
		    nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
