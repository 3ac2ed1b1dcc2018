/* neardup — encoders and validating decoders of the index's LMDB values. */
#include "neardup/store.h"
#include "neardup/postings.h"

#include <math.h>
#include <stddef.h>
#include <string.h>
#include <xxhash.h>

#if defined(__F16C__) && defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ND_VEC_SIMD 1
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "neardup's on-disk formats are little-endian and this code assumes a little-endian host"
#endif

/* On-disk layouts. Fields are read and written through memcpy at offsetof()
 * so that unaligned LMDB values are safe. */
struct meta_disk_v1 {
	char magic[4];           /* "NDIX" */
	uint16_t version;        /* ND_FORMAT_VERSION */
	uint16_t hdr_size;       /* >= ND_META_HDR_V1 */
	uint32_t dim;
	uint16_t tables;
	uint8_t bits;
	uint8_t vec_format;
	uint64_t seed;
	uint64_t model_checksum;
	uint32_t next_id;
	uint32_t model_name_len; /* bytes after the header */
	uint64_t n_images;
	uint64_t n_postings;
	uint64_t n_blocks;
	uint64_t posting_bytes;
	uint32_t flags;          /* ND_META_* (was reserved, 0, before calibrated similarity) */
	uint32_t reserved;
};
_Static_assert(sizeof(struct meta_disk_v1) == ND_META_HDR_V1, "meta header layout");

#define RECORD_MAGIC 0xD1
struct record_disk_v1 {
	uint8_t magic;           /* RECORD_MAGIC */
	uint8_t version;         /* 1 */
	uint16_t hdr_size;       /* >= ND_RECORD_HDR_V1 */
	uint32_t width;
	uint32_t height;
	uint32_t path_len;       /* path bytes after the header, then a NUL */
	uint64_t size;
	int64_t mtime_ns;
	uint8_t hash[16];
};
_Static_assert(sizeof(struct record_disk_v1) == ND_RECORD_HDR_V1, "record header layout");
struct record_disk_v2 {
	struct record_disk_v1 v1; /* version 2, hdr_size >= ND_RECORD_HDR_V2 */
	uint64_t dev;            /* st_dev of the file when indexed (0 with ino 0: unknown) */
	uint64_t ino;            /* st_ino */
};
_Static_assert(sizeof(struct record_disk_v2) == ND_RECORD_HDR_V2, "record header v2 layout");

#define VEC_MAGIC 0xE1
struct vec_disk_v1 {
	uint8_t magic;           /* VEC_MAGIC */
	uint8_t version;         /* 1 */
	uint8_t format;          /* enum nd_vec_format */
	uint8_t hdr_size;        /* >= ND_VEC_HDR_V1; components follow */
	uint16_t dim;
	uint16_t reserved;
	float scale;
};
_Static_assert(sizeof(struct vec_disk_v1) == ND_VEC_HDR_V1, "vector header layout");
struct vec_disk_v2 {
	struct vec_disk_v1 v1;   /* version 2, hdr_size >= ND_VEC_HDR_V2 */
	float stat;              /* background statistic */
};
_Static_assert(sizeof(struct vec_disk_v2) == ND_VEC_HDR_V2, "vector header v2 layout");
struct vec_disk_v3 {
	struct vec_disk_v2 v2;   /* version 3, hdr_size >= ND_VEC_HDR_V3 */
	uint64_t phash;          /* 64-bit DCT perceptual hash (neardup/phash.h) */
};
_Static_assert(sizeof(struct vec_disk_v3) == ND_VEC_HDR_V3, "vector header v3 layout");
struct vec_disk_v4 {
	struct vec_disk_v3 v3;   /* version 4, hdr_size >= ND_VEC_HDR_V4 */
	uint8_t origin[ND_ORIGIN_SIZE]; /* nd_origin_encode */
};
_Static_assert(sizeof(struct vec_disk_v4) == ND_VEC_HDR_V4, "vector header v4 layout");

#define PATHVAL_MAGIC 0xA1

#define GET(T, buf, s, f) ({ T v_; memcpy(&v_, (const uint8_t *)(buf) + offsetof(s, f), sizeof(T)); v_; })
#define PUT(T, buf, s, f, x) do { T v_ = (x); memcpy((uint8_t *)(buf) + offsetof(s, f), &v_, sizeof(T)); } while (0)

/* ---- meta ---- */

size_t nd_meta_encoded_size(const nd_meta *m)
{
	return ND_META_HDR_V1 + strnlen(m->model_name, ND_MODEL_NAME_MAX);
}

int nd_meta_encode(const nd_meta *m, uint8_t *out, size_t cap, size_t *len, nd_error *err)
{
	typedef struct meta_disk_v1 S;
	size_t nl = strnlen(m->model_name, ND_MODEL_NAME_MAX + 1);
	if (nl > ND_MODEL_NAME_MAX)
		return nd_error_set(err, ND_EINVAL, "model name longer than %d bytes", ND_MODEL_NAME_MAX);
	if (m->tables > UINT16_MAX || m->bits > UINT8_MAX || m->vec_format > UINT8_MAX)
		return nd_error_set(err, ND_EINVAL, "meta field out of range");
	if (cap < ND_META_HDR_V1 + nl)
		return nd_error_set(err, ND_ELIMIT, "meta buffer too small");
	memset(out, 0, ND_META_HDR_V1);
	memcpy(out, "NDIX", 4);
	PUT(uint16_t, out, S, version, (uint16_t)m->format_version);
	PUT(uint16_t, out, S, hdr_size, ND_META_HDR_V1);
	PUT(uint32_t, out, S, dim, m->dim);
	PUT(uint16_t, out, S, tables, (uint16_t)m->tables);
	PUT(uint8_t, out, S, bits, (uint8_t)m->bits);
	PUT(uint8_t, out, S, vec_format, (uint8_t)m->vec_format);
	PUT(uint64_t, out, S, seed, m->seed);
	PUT(uint64_t, out, S, model_checksum, m->model_checksum);
	PUT(uint32_t, out, S, next_id, m->next_id);
	PUT(uint32_t, out, S, model_name_len, (uint32_t)nl);
	PUT(uint64_t, out, S, n_images, m->n_images);
	PUT(uint64_t, out, S, n_postings, m->n_postings);
	PUT(uint64_t, out, S, n_blocks, m->n_blocks);
	PUT(uint64_t, out, S, posting_bytes, m->posting_bytes);
	PUT(uint32_t, out, S, flags, m->flags);
	memcpy(out + ND_META_HDR_V1, m->model_name, nl);
	*len = ND_META_HDR_V1 + nl;
	return 0;
}

int nd_meta_decode(const void *buf, size_t len, nd_meta *m, nd_error *err)
{
	typedef struct meta_disk_v1 S;
	const uint8_t *b = buf;
	if (len < 8 || memcmp(b, "NDIX", 4) != 0)
		return nd_error_set(err, ND_EFORMAT, "metadata is not a neardup index header");
	uint16_t ver = GET(uint16_t, b, S, version), hs = GET(uint16_t, b, S, hdr_size);
	if (ver != ND_FORMAT_VERSION)
		return nd_error_set(err, ND_EVERSION, "index format version %u (this build reads %d)",
				    ver, ND_FORMAT_VERSION);
	if (hs < ND_META_HDR_V1 || hs > len)
		return nd_error_set(err, ND_ECORRUPT, "metadata header size %u for a %zu-byte value",
				    hs, len);
	memset(m, 0, sizeof(*m));
	m->format_version = ver;
	m->dim = GET(uint32_t, b, S, dim);
	m->tables = GET(uint16_t, b, S, tables);
	m->bits = GET(uint8_t, b, S, bits);
	m->vec_format = GET(uint8_t, b, S, vec_format);
	m->seed = GET(uint64_t, b, S, seed);
	m->model_checksum = GET(uint64_t, b, S, model_checksum);
	m->next_id = GET(uint32_t, b, S, next_id);
	uint32_t nl = GET(uint32_t, b, S, model_name_len);
	m->n_images = GET(uint64_t, b, S, n_images);
	m->n_postings = GET(uint64_t, b, S, n_postings);
	m->n_blocks = GET(uint64_t, b, S, n_blocks);
	m->posting_bytes = GET(uint64_t, b, S, posting_bytes);
	m->flags = GET(uint32_t, b, S, flags);
	if (nl > ND_MODEL_NAME_MAX || (size_t)hs + nl != len)
		return nd_error_set(err, ND_ECORRUPT,
				    "metadata model name of %u bytes does not fit a %zu-byte value", nl, len);
	if (memchr(b + hs, 0, nl))
		return nd_error_set(err, ND_ECORRUPT, "metadata model name holds a NUL byte");
	memcpy(m->model_name, b + hs, nl);
	m->model_name[nl] = 0;
	if (m->dim == 0 || m->dim > 8192 || m->tables == 0 || m->tables > 256 || m->bits == 0 ||
	    m->bits > 30)
		return nd_error_set(err, ND_ECORRUPT,
				    "metadata parameters out of range (dim %u, tables %u, bits %u)",
				    m->dim, m->tables, m->bits);
	if (m->vec_format != ND_VEC_F16 && m->vec_format != ND_VEC_I8)
		return nd_error_set(err, ND_ECORRUPT, "metadata vector format %u unknown", m->vec_format);
	if (m->next_id == 0)
		return nd_error_set(err, ND_ECORRUPT, "metadata next id is 0");
	return 0;
}

/* ---- records ---- */

size_t nd_record_encoded_size(size_t path_len)
{
	return ND_RECORD_HDR_V2 + path_len + 1;
}

int nd_record_encode(const nd_record *r, uint8_t *out, size_t cap, size_t *len, nd_error *err)
{
	typedef struct record_disk_v1 S;
	if (!r->path || r->path_len == 0 || r->path_len > ND_PATH_MAX)
		return nd_error_set(err, ND_EINVAL, "path length %zu out of range 1..%d", r->path_len,
				    ND_PATH_MAX);
	if (memchr(r->path, 0, r->path_len))
		return nd_error_set(err, ND_EINVAL, "path holds a NUL byte");
	size_t need = nd_record_encoded_size(r->path_len);
	if (cap < need)
		return nd_error_set(err, ND_ELIMIT, "record buffer too small");
	memset(out, 0, ND_RECORD_HDR_V2);
	PUT(uint8_t, out, S, magic, RECORD_MAGIC);
	PUT(uint8_t, out, S, version, 2);
	PUT(uint16_t, out, S, hdr_size, ND_RECORD_HDR_V2);
	PUT(uint32_t, out, S, width, r->width);
	PUT(uint32_t, out, S, height, r->height);
	PUT(uint32_t, out, S, path_len, (uint32_t)r->path_len);
	PUT(uint64_t, out, S, size, r->size);
	PUT(int64_t, out, S, mtime_ns, r->mtime_ns);
	memcpy(out + offsetof(S, hash), r->hash, 16);
	PUT(uint64_t, out, struct record_disk_v2, dev, r->dev);
	PUT(uint64_t, out, struct record_disk_v2, ino, r->ino);
	memcpy(out + ND_RECORD_HDR_V2, r->path, r->path_len);
	out[ND_RECORD_HDR_V2 + r->path_len] = 0;
	*len = need;
	return 0;
}

int nd_record_decode(const void *buf, size_t len, nd_record *r, nd_error *err)
{
	typedef struct record_disk_v1 S;
	const uint8_t *b = buf;
	if (len < 4 || b[0] != RECORD_MAGIC)
		return nd_error_set(err, ND_EFORMAT, "image record has a bad magic byte");
	if (b[1] < 1)
		return nd_error_set(err, ND_EVERSION, "image record version 0");
	uint16_t hs = GET(uint16_t, b, S, hdr_size);
	if (hs < ND_RECORD_HDR_V1 || hs > len)
		return nd_error_set(err, ND_ECORRUPT, "image record header size %u for a %zu-byte value",
				    hs, len);
	uint32_t pl = GET(uint32_t, b, S, path_len);
	if (pl == 0 || pl > ND_PATH_MAX || (size_t)hs + pl + 1 != len)
		return nd_error_set(err, ND_ECORRUPT,
				    "image record path length %u does not fit a %zu-byte value", pl, len);
	const char *p = (const char *)b + hs;
	if (p[pl] != 0 || memchr(p, 0, pl))
		return nd_error_set(err, ND_ECORRUPT, "image record path is not NUL-terminated text");
	r->width = GET(uint32_t, b, S, width);
	r->height = GET(uint32_t, b, S, height);
	r->size = GET(uint64_t, b, S, size);
	r->mtime_ns = GET(int64_t, b, S, mtime_ns);
	memcpy(r->hash, b + offsetof(S, hash), 16);
	r->dev = r->ino = 0;
	if (b[1] >= 2) {
		if (hs < ND_RECORD_HDR_V2)
			return nd_error_set(err, ND_ECORRUPT, "image record version %u with a %u-byte header",
					    b[1], hs);
		r->dev = GET(uint64_t, b, struct record_disk_v2, dev);
		r->ino = GET(uint64_t, b, struct record_disk_v2, ino);
	}
	r->path = p;
	r->path_len = pl;
	return 0;
}

void nd_inode_key(uint64_t dev, uint64_t ino, uint8_t key[ND_INODE_KEY_SIZE])
{
	/* big-endian: the keys of one device sort together, by inode */
	for (int i = 0; i < 8; i++) {
		key[i] = (uint8_t)(dev >> (56 - 8 * i));
		key[8 + i] = (uint8_t)(ino >> (56 - 8 * i));
	}
}

/* ---- paths ---- */

size_t nd_path_key(const char *path, size_t path_len, uint8_t *key)
{
	if (path_len <= ND_PATH_KEY_MAX) {
		memcpy(key, path, path_len);
		return path_len;
	}
	XXH128_canonical_t c;
	XXH128_canonicalFromHash(&c, XXH3_128bits(path, path_len));
	memcpy(key, path, ND_PATH_KEY_PREFIX);
	key[ND_PATH_KEY_PREFIX] = 0;
	memcpy(key + ND_PATH_KEY_PREFIX + 1, c.digest, 16);
	return ND_PATH_KEY_MAX;
}

void nd_pathval_encode(uint32_t id, uint8_t out[ND_PATHVAL_SIZE])
{
	out[0] = PATHVAL_MAGIC;
	memcpy(out + 1, &id, 4);
}

int nd_pathval_decode(const void *buf, size_t len, uint32_t *id, nd_error *err)
{
	const uint8_t *b = buf;
	if (len != ND_PATHVAL_SIZE || b[0] != PATHVAL_MAGIC)
		return nd_error_set(err, ND_ECORRUPT, "path entry is not a %d-byte id value",
				    ND_PATHVAL_SIZE);
	memcpy(id, b + 1, 4);
	if (*id == 0)
		return nd_error_set(err, ND_ECORRUPT, "path entry holds id 0");
	return 0;
}

/* ---- vectors ---- */

static uint16_t f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000, mant = x & 0x7FFFFF;
	int32_t exp = (int32_t)((x >> 23) & 0xFF);
	if (exp == 0xFF) /* inf/nan (rejected before; keep something sane) */
		return (uint16_t)(sign | 0x7C00 | (mant ? 0x200 : 0));
	int32_t e = exp - 127 + 15;
	if (e >= 0x1F)
		return (uint16_t)(sign | 0x7C00);
	if (e <= 0) {
		if (e < -10)
			return (uint16_t)sign;
		mant |= 0x800000;
		uint32_t shift = (uint32_t)(14 - e);
		uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
		if (rem > half || (rem == half && (h & 1)))
			h++;
		return (uint16_t)(sign | h);
	}
	uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1FFF;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++; /* may carry into the exponent: still correct */
	return (uint16_t)(sign | h);
}

static float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, mant = h & 0x3FF, x;
	if (exp == 0) {
		if (mant == 0) {
			x = sign;
		} else {
			int e = -1;
			do {
				e++;
				mant <<= 1;
			} while (!(mant & 0x400));
			x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3FF) << 13);
		}
	} else if (exp == 0x1F) {
		x = sign | 0x7F800000 | (mant << 13);
	} else {
		x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
	}
	float f;
	memcpy(&f, &x, 4);
	return f;
}

/* Each version needs the fields of the ones before it. */
static int version_of(const float *stat, const uint64_t *phash, const nd_origin *origin)
{
	return origin ? 4 : phash ? 3 : stat ? 2 : 1;
}

static size_t header_size(int version)
{
	static const size_t hs[] = { 0, ND_VEC_HDR_V1, ND_VEC_HDR_V2, ND_VEC_HDR_V3, ND_VEC_HDR_V4 };
	return hs[version];
}

size_t nd_vector_encoded_size_stat(uint32_t dim, uint32_t format, int has_stat)
{
	return (has_stat ? ND_VEC_HDR_V2 : ND_VEC_HDR_V1) + (size_t)dim * (format == ND_VEC_F16 ? 2 : 1);
}

size_t nd_vector_encoded_size_max(uint32_t dim, uint32_t format)
{
	return ND_VEC_HDR_V4 + (size_t)dim * (format == ND_VEC_F16 ? 2 : 1);
}

size_t nd_vector_encoded_size(uint32_t dim, uint32_t format)
{
	return nd_vector_encoded_size_stat(dim, format, 0);
}

static int vector_encode(const float *vec, uint32_t dim, uint32_t format, const float *stat,
			 const uint64_t *phash, const nd_origin *origin, uint8_t *out, size_t cap,
			 size_t *len, nd_error *err);

int nd_vector_encode(const float *vec, uint32_t dim, uint32_t format, uint8_t *out, size_t cap,
		     size_t *len, nd_error *err)
{
	return vector_encode(vec, dim, format, NULL, NULL, NULL, out, cap, len, err);
}

int nd_vector_encode_stat(const float *vec, uint32_t dim, uint32_t format, float stat, uint8_t *out,
			  size_t cap, size_t *len, nd_error *err)
{
	if (!isfinite(stat))
		return nd_error_set(err, ND_EINVAL, "vector statistic is not finite");
	return vector_encode(vec, dim, format, &stat, NULL, NULL, out, cap, len, err);
}

int nd_vector_encode_stat_phash(const float *vec, uint32_t dim, uint32_t format, float stat,
				uint64_t phash, uint8_t *out, size_t cap, size_t *len, nd_error *err)
{
	if (!isfinite(stat))
		return nd_error_set(err, ND_EINVAL, "vector statistic is not finite");
	return vector_encode(vec, dim, format, &stat, &phash, NULL, out, cap, len, err);
}

int nd_vector_encode_v4(const float *vec, uint32_t dim, uint32_t format, float stat, uint64_t phash,
			const nd_origin *origin, uint8_t *out, size_t cap, size_t *len, nd_error *err)
{
	if (!isfinite(stat))
		return nd_error_set(err, ND_EINVAL, "vector statistic is not finite");
	uint8_t probe[ND_ORIGIN_SIZE];
	nd_origin back;
	nd_origin_encode(origin, probe);
	if (nd_origin_decode(probe, &back, err))
		return ND_EINVAL;
	return vector_encode(vec, dim, format, &stat, &phash, origin, out, cap, len, err);
}

static int vector_encode(const float *vec, uint32_t dim, uint32_t format, const float *stat,
			 const uint64_t *phash, const nd_origin *origin, uint8_t *out, size_t cap,
			 size_t *len, nd_error *err)
{
	typedef struct vec_disk_v1 S;
	const int version = version_of(stat, phash, origin);
	const size_t hs = header_size(version);
	if (dim == 0 || dim > UINT16_MAX)
		return nd_error_set(err, ND_EINVAL, "vector dimension %u out of range", dim);
	if (format != ND_VEC_F16 && format != ND_VEC_I8)
		return nd_error_set(err, ND_EINVAL, "unknown vector format %u", format);
	size_t need = hs + (size_t)dim * (format == ND_VEC_F16 ? 2 : 1);
	if (cap < need)
		return nd_error_set(err, ND_ELIMIT, "vector buffer too small");
	float amax = 0;
	for (uint32_t i = 0; i < dim; i++) {
		if (!isfinite(vec[i]))
			return nd_error_set(err, ND_EINVAL, "vector component %u is not finite", i);
		float a = fabsf(vec[i]);
		if (a > amax)
			amax = a;
	}
	if (format == ND_VEC_F16 && amax > 65504.0f)
		return nd_error_set(err, ND_EINVAL, "vector component too large for float16");
	memset(out, 0, hs);
	PUT(uint8_t, out, S, magic, VEC_MAGIC);
	PUT(uint8_t, out, S, version, (uint8_t)version);
	PUT(uint8_t, out, S, format, (uint8_t)format);
	PUT(uint8_t, out, S, hdr_size, (uint8_t)hs);
	PUT(uint16_t, out, S, dim, (uint16_t)dim);
	if (stat)
		PUT(float, out, struct vec_disk_v2, stat, *stat);
	if (phash)
		PUT(uint64_t, out, struct vec_disk_v3, phash, *phash);
	if (origin)
		nd_origin_encode(origin, out + offsetof(struct vec_disk_v4, origin));
	uint8_t *d = out + hs;
	if (format == ND_VEC_F16) {
		PUT(float, out, S, scale, 1.0f);
		for (uint32_t i = 0; i < dim; i++) {
			uint16_t h = f32_to_f16(vec[i]);
			memcpy(d + 2 * i, &h, 2);
		}
	} else {
		float scale = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0;
		PUT(float, out, S, scale, scale);
		for (uint32_t i = 0; i < dim; i++) {
			long q = lrintf(vec[i] * inv);
			if (q > 127)
				q = 127;
			if (q < -127)
				q = -127;
			d[i] = (uint8_t)(int8_t)q;
		}
	}
	*len = need;
	return 0;
}

int nd_vector_decode(const void *buf, size_t len, uint32_t dim, nd_vec_view *v, nd_error *err)
{
	typedef struct vec_disk_v1 S;
	const uint8_t *b = buf;
	if (len < ND_VEC_HDR_V1 || b[0] != VEC_MAGIC)
		return nd_error_set(err, ND_EFORMAT, "vector value has a bad magic byte or is too short");
	if (b[1] < 1)
		return nd_error_set(err, ND_EVERSION, "vector value version 0");
	uint8_t fmt = GET(uint8_t, b, S, format), hs = GET(uint8_t, b, S, hdr_size);
	uint16_t d = GET(uint16_t, b, S, dim);
	float scale = GET(float, b, S, scale);
	if (fmt != ND_VEC_F16 && fmt != ND_VEC_I8)
		return nd_error_set(err, ND_ECORRUPT, "vector value format %u unknown", fmt);
	if (hs < ND_VEC_HDR_V1)
		return nd_error_set(err, ND_ECORRUPT, "vector header size %u below %d", hs, ND_VEC_HDR_V1);
	if (d == 0 || (dim && d != dim))
		return nd_error_set(err, ND_ECORRUPT, "vector of dimension %u, index dimension %u", d, dim);
	if ((size_t)hs + (size_t)d * (fmt == ND_VEC_F16 ? 2 : 1) != len)
		return nd_error_set(err, ND_ECORRUPT, "vector value of %zu bytes for %u components", len, d);
	if (!isfinite(scale) || scale < 0)
		return nd_error_set(err, ND_ECORRUPT, "vector scale is not a finite non-negative number");
	v->has_stat = 0;
	v->stat = 0;
	if (b[1] >= 2) {
		float st;
		if (hs < ND_VEC_HDR_V2)
			return nd_error_set(err, ND_ECORRUPT, "vector version %u with a %u-byte header", b[1],
					    hs);
		st = GET(float, b, struct vec_disk_v2, stat);
		if (!isfinite(st))
			return nd_error_set(err, ND_ECORRUPT, "vector statistic is not finite");
		v->has_stat = 1;
		v->stat = st;
	}
	v->has_phash = 0;
	v->phash = 0;
	if (b[1] >= 3) {
		if (hs < ND_VEC_HDR_V3)
			return nd_error_set(err, ND_ECORRUPT, "vector version %u with a %u-byte header", b[1],
					    hs);
		v->has_phash = 1;
		v->phash = GET(uint64_t, b, struct vec_disk_v3, phash);
	}
	v->has_origin = 0;
	nd_origin_init(&v->origin);
	if (b[1] >= 4) {
		if (hs < ND_VEC_HDR_V4)
			return nd_error_set(err, ND_ECORRUPT, "vector version %u with a %u-byte header", b[1],
					    hs);
		int rc = nd_origin_decode(b + offsetof(struct vec_disk_v4, origin), &v->origin, err);
		if (rc)
			return rc;
		v->has_origin = 1;
	}
	v->dim = d;
	v->format = fmt;
	v->scale = scale;
	v->data = b + hs;
	return 0;
}

void nd_vector_dequant(const nd_vec_view *v, float *out)
{
	if (v->format == ND_VEC_F16) {
		for (uint32_t i = 0; i < v->dim; i++) {
			uint16_t h;
			memcpy(&h, v->data + 2 * i, 2);
			out[i] = f16_to_f32(h);
		}
	} else {
		for (uint32_t i = 0; i < v->dim; i++)
			out[i] = (float)(int8_t)v->data[i] * v->scale;
	}
}

float nd_vector_dot(const nd_vec_view *v, const float *q)
{
	uint32_t i = 0, n = v->dim;
	float s = 0;
#ifdef ND_VEC_SIMD
	__m256 acc = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
	if (v->format == ND_VEC_F16) {
		for (; i + 16 <= n; i += 16) {
			__m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v->data + 2 * i)));
			__m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v->data + 2 * i + 16)));
			acc = _mm256_fmadd_ps(a, _mm256_loadu_ps(q + i), acc);
			acc2 = _mm256_fmadd_ps(b, _mm256_loadu_ps(q + i + 8), acc2);
		}
	} else {
		for (; i + 16 <= n; i += 16) {
			__m128i x = _mm_loadu_si128((const __m128i *)(v->data + i));
			__m256 a = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
			__m256 b = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(x, 8)));
			acc = _mm256_fmadd_ps(a, _mm256_loadu_ps(q + i), acc);
			acc2 = _mm256_fmadd_ps(b, _mm256_loadu_ps(q + i + 8), acc2);
		}
	}
	acc = _mm256_add_ps(acc, acc2);
	__m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
	h = _mm_add_ps(h, _mm_movehl_ps(h, h));
	h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
	s = _mm_cvtss_f32(h);
#endif
	if (v->format == ND_VEC_F16) {
		for (; i < n; i++) {
			uint16_t hv;
			memcpy(&hv, v->data + 2 * i, 2);
			s += f16_to_f32(hv) * q[i];
		}
		return s;
	}
	float si = 0;
	for (; i < n; i++)
		si += (float)(int8_t)v->data[i] * q[i];
	return (s + si) * v->scale;
}

/* ---- the phash database's validity mark ---- */

#define PHASH_MARK_MAGIC 0xA5
struct phash_mark_disk_v1 {
	uint8_t magic;           /* PHASH_MARK_MAGIC */
	uint8_t version;         /* 1 */
	uint16_t reserved;
	uint32_t next_id;        /* the metadata's, when the phash database was last written */
	uint64_t n_images;
};
_Static_assert(sizeof(struct phash_mark_disk_v1) == ND_PHASH_MARK_SIZE, "phash mark layout");

void nd_phash_mark_encode(uint32_t next_id, uint64_t n_images, uint8_t out[ND_PHASH_MARK_SIZE])
{
	typedef struct phash_mark_disk_v1 S;
	memset(out, 0, ND_PHASH_MARK_SIZE);
	out[0] = PHASH_MARK_MAGIC;
	out[1] = 1;
	PUT(uint32_t, out, S, next_id, next_id);
	PUT(uint64_t, out, S, n_images, n_images);
}

int nd_phash_mark_decode(const void *buf, size_t len, uint32_t *next_id, uint64_t *n_images,
			 nd_error *err)
{
	typedef struct phash_mark_disk_v1 S;
	const uint8_t *b = buf;
	if (len != ND_PHASH_MARK_SIZE || b[0] != PHASH_MARK_MAGIC)
		return nd_error_set(err, ND_ECORRUPT, "phash mark of %zu bytes is malformed", len);
	if (b[1] != 1)
		return nd_error_set(err, ND_EVERSION, "phash mark version %u unknown", b[1]);
	*next_id = GET(uint32_t, b, S, next_id);
	*n_images = GET(uint64_t, b, S, n_images);
	return 0;
}

/* ---- posting blocks ---- */

void nd_posting_key(uint32_t table, uint32_t bucket, uint32_t first, uint8_t key[ND_POSTING_KEY_SIZE])
{
	key[0] = (uint8_t)(table >> 8);
	key[1] = (uint8_t)table;
	for (int i = 0; i < 4; i++) {
		key[2 + i] = (uint8_t)(bucket >> (24 - 8 * i));
		key[6 + i] = (uint8_t)(first >> (24 - 8 * i));
	}
}

int nd_posting_key_decode(const void *k, size_t len, uint32_t *table, uint32_t *bucket,
			  uint32_t *first, nd_error *err)
{
	const uint8_t *key = k;
	if (len != ND_POSTING_KEY_SIZE)
		return nd_error_set(err, ND_ECORRUPT, "posting key of %zu bytes (expected %d)", len,
				    ND_POSTING_KEY_SIZE);
	*table = (uint32_t)key[0] << 8 | key[1];
	*bucket = *first = 0;
	for (int i = 0; i < 4; i++) {
		*bucket = *bucket << 8 | key[2 + i];
		*first = *first << 8 | key[6 + i];
	}
	if (*first == 0)
		return nd_error_set(err, ND_ECORRUPT, "posting key with first id 0");
	return 0;
}

int nd_block_decode(uint32_t first, const void *val, size_t len, uint32_t *ids, size_t cap,
		    size_t *n, nd_error *err)
{
	const uint8_t *b = val;
	size_t m = 0;
	if (len < 1 || b[0] != ND_BLOCK_MAGIC)
		return nd_error_set(err, ND_EFORMAT, "posting block has a bad magic byte");
	if (cap < 1)
		return nd_error_set(err, ND_ELIMIT, "no room for posting ids");
	if (first == 0)
		return nd_error_set(err, ND_ECORRUPT, "posting block with first id 0");
	ids[0] = first;
	int rc = nd_postings_decode(b + 1, b + len, first, ids + 1, cap - 1, &m, NULL, err);
	if (rc)
		return rc;
	if (m + 1 > ND_BLOCK_MAX_IDS)
		return nd_error_set(err, ND_ECORRUPT, "posting block of %zu ids (limit %d)", m + 1,
				    ND_BLOCK_MAX_IDS);
	*n = m + 1;
	return 0;
}

int nd_block_encode(const uint32_t *ids, size_t n, uint8_t *out, size_t cap, size_t *len,
		    nd_error *err)
{
	size_t l = 0;
	if (n < 1 || n > ND_BLOCK_MAX_IDS || ids[0] == 0)
		return nd_error_set(err, ND_EINVAL, "posting block of %zu ids", n);
	if (cap < 1)
		return nd_error_set(err, ND_ELIMIT, "block buffer too small");
	out[0] = ND_BLOCK_MAGIC;
	int rc = nd_postings_encode(ids[0], ids + 1, n - 1, out + 1, cap - 1, &l, err);
	if (rc)
		return rc;
	*len = l + 1;
	return 0;
}
