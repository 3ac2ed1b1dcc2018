/* Tests for the stored value formats (src/store_codec.c). */
#include "neardup/store.h"
#include "test.h"

#include "lib_synth.h"

static void test_meta_roundtrip(void)
{
	nd_meta m = { 0 }, o;
	uint8_t buf[ND_META_HDR_V1 + ND_MODEL_NAME_MAX + 1];
	size_t len;
	nd_error err;
	m.format_version = ND_FORMAT_VERSION;
	m.dim = 256;
	m.tables = 16;
	m.bits = 14;
	m.vec_format = ND_VEC_I8;
	m.seed = 0x1234567890ABCDEFull;
	m.model_checksum = 0xFEDCBA0987654321ull;
	snprintf(m.model_name, sizeof(m.model_name), "%s", "resnet-gem-v1");
	m.next_id = 77;
	m.n_images = 70;
	m.n_postings = 1120;
	m.n_blocks = 900;
	m.posting_bytes = 12345;
	m.flags = ND_META_VEC_STAT; /* in the old reserved field: round-trips */
	CHECK_EQ_INT(nd_meta_encode(&m, buf, sizeof(buf), &len, &err), 0);
	CHECK_EQ_INT(len, nd_meta_encoded_size(&m));
	CHECK_EQ_INT(nd_meta_decode(buf, len, &o, &err), 0);
	CHECK(memcmp(&m, &o, sizeof(m)) == 0);
	/* every truncation is rejected */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *h = malloc(cut ? cut : 1);
		memcpy(h, buf, cut);
		CHECK_MSG(nd_meta_decode(h, cut, &o, &err) != 0, "cut %zu", cut);
		free(h);
	}
	/* bad magic, version, parameters */
	uint8_t bad[sizeof(buf)];
	memcpy(bad, buf, len);
	bad[0] = 'X';
	CHECK_EQ_INT(nd_meta_decode(bad, len, &o, &err), ND_EFORMAT);
	memcpy(bad, buf, len);
	bad[4] = 9;
	CHECK_EQ_INT(nd_meta_decode(bad, len, &o, &err), ND_EVERSION);
	CHECK(strstr(err.msg, "version 9") != NULL);
	memcpy(bad, buf, len);
	memset(bad + 8, 0, 4); /* dim 0 */
	CHECK_EQ_INT(nd_meta_decode(bad, len, &o, &err), ND_ECORRUPT);
	/* a longer header (a later minor version) is skipped */
	uint8_t ext[sizeof(buf) + 8];
	memcpy(ext, buf, ND_META_HDR_V1);
	memset(ext + ND_META_HDR_V1, 0xEE, 8);
	memcpy(ext + ND_META_HDR_V1 + 8, buf + ND_META_HDR_V1, len - ND_META_HDR_V1);
	uint16_t hs = ND_META_HDR_V1 + 8;
	memcpy(ext + 6, &hs, 2);
	CHECK_EQ_INT(nd_meta_decode(ext, len + 8, &o, &err), 0);
	CHECK(strcmp(o.model_name, "resnet-gem-v1") == 0 && o.next_id == 77);
}

static void test_record_roundtrip(void)
{
	nd_record r = { 0 }, o;
	uint8_t buf[ND_RECORD_HDR_V2 + ND_PATH_MAX + 1];
	size_t len;
	nd_error err;
	r.dev = 0x0000000800000021ull;
	r.ino = 0x123456789abcdef0ull;
	r.width = 4000;
	r.height = 3000;
	r.size = 5ull << 30;
	r.mtime_ns = -1234567890123456789ll;
	for (int i = 0; i < 16; i++)
		r.hash[i] = (uint8_t)(i * 17);
	r.path = "photos/2024/IMG_0001.JPG";
	r.path_len = strlen(r.path);
	CHECK_EQ_INT(nd_record_encode(&r, buf, sizeof(buf), &len, &err), 0);
	CHECK_EQ_INT(len, nd_record_encoded_size(r.path_len));
	CHECK_EQ_INT(nd_record_decode(buf, len, &o, &err), 0);
	CHECK(o.width == 4000 && o.height == 3000 && o.size == (5ull << 30) &&
	      o.mtime_ns == r.mtime_ns && memcmp(o.hash, r.hash, 16) == 0);
	CHECK(o.path_len == r.path_len && strcmp(o.path, r.path) == 0);
	CHECK(o.dev == r.dev && o.ino == r.ino && nd_record_has_identity(&o));
	for (size_t cut = 0; cut < len; cut++)
		CHECK_MSG(nd_record_decode(buf, cut, &o, &err) != 0, "cut %zu", cut);
	buf[0] ^= 1;
	CHECK_EQ_INT(nd_record_decode(buf, len, &o, &err), ND_EFORMAT);
	buf[0] ^= 1;
	buf[len - 1] = 'x'; /* no NUL */
	CHECK_EQ_INT(nd_record_decode(buf, len, &o, &err), ND_ECORRUPT);
	buf[len - 1] = 0;
	buf[ND_RECORD_HDR_V2 + 3] = 0; /* NUL inside the path */
	CHECK_EQ_INT(nd_record_decode(buf, len, &o, &err), ND_ECORRUPT);
	buf[ND_RECORD_HDR_V2 + 3] = 't';
	/* version 2 claiming a version-1 header: corrupt */
	uint16_t hs = ND_RECORD_HDR_V1;
	memcpy(buf + 2, &hs, 2);
	CHECK_EQ_INT(nd_record_decode(buf, len, &o, &err), ND_ECORRUPT);
	/* invalid records are refused by the encoder */
	r.path_len = 0;
	CHECK_EQ_INT(nd_record_encode(&r, buf, sizeof(buf), &len, &err), ND_EINVAL);
	r.path = "a\0b";
	r.path_len = 3;
	CHECK_EQ_INT(nd_record_encode(&r, buf, sizeof(buf), &len, &err), ND_EINVAL);
}

/* A version-1 record (written before the file identity) still decodes,
 * with the identity unknown; re-encoded it becomes version 2. */
static void test_record_v1(void)
{
	uint8_t v1[ND_RECORD_HDR_V1 + 6] = { 0 }, buf[ND_RECORD_HDR_V2 + 16];
	uint16_t hs = ND_RECORD_HDR_V1;
	uint32_t w = 640, pl = 5;
	uint64_t size = 12345;
	nd_record o;
	nd_error err;
	size_t len;
	v1[0] = 0xD1;
	v1[1] = 1;
	memcpy(v1 + 2, &hs, 2);
	memcpy(v1 + 4, &w, 4);
	memcpy(v1 + 12, &pl, 4);
	memcpy(v1 + 16, &size, 8);
	memcpy(v1 + ND_RECORD_HDR_V1, "a.jpg", 6);
	o.dev = o.ino = 7;
	CHECK_EQ_INT(nd_record_decode(v1, sizeof(v1), &o, &err), 0);
	CHECK(o.width == 640 && o.size == 12345 && strcmp(o.path, "a.jpg") == 0);
	CHECK(o.dev == 0 && o.ino == 0 && !nd_record_has_identity(&o));
	CHECK_EQ_INT(nd_record_encode(&o, buf, sizeof(buf), &len, &err), 0);
	CHECK_EQ_INT(len, ND_RECORD_HDR_V2 + 6);
	CHECK(buf[1] == 2);
	/* a later version with a longer header: the fields it adds are skipped */
	uint8_t v3[ND_RECORD_HDR_V2 + 8 + 6] = { 0 };
	memcpy(v3, buf, ND_RECORD_HDR_V2);
	v3[1] = 3;
	hs = ND_RECORD_HDR_V2 + 8;
	memcpy(v3 + 2, &hs, 2);
	memcpy(v3 + ND_RECORD_HDR_V2 + 8, "a.jpg", 6);
	CHECK_EQ_INT(nd_record_decode(v3, sizeof(v3), &o, &err), 0);
	CHECK(strcmp(o.path, "a.jpg") == 0 && o.size == 12345);
	/* inode keys sort by device, then inode */
	uint8_t k1[ND_INODE_KEY_SIZE], k2[ND_INODE_KEY_SIZE];
	nd_inode_key(1, 0xFFFFFFFFFFull, k1);
	nd_inode_key(2, 1, k2);
	CHECK(memcmp(k1, k2, ND_INODE_KEY_SIZE) < 0);
	nd_inode_key(2, 0x100, k1);
	CHECK(memcmp(k2, k1, ND_INODE_KEY_SIZE) < 0);
}

static void test_path_keys(void)
{
	char a[1000], b[1000];
	uint8_t ka[ND_PATH_KEY_MAX], kb[ND_PATH_KEY_MAX];
	memset(a, 'p', sizeof(a));
	memset(b, 'p', sizeof(b));
	b[998] = 'q';
	CHECK_EQ_INT(nd_path_key(a, 10, ka), 10);
	CHECK(memcmp(ka, a, 10) == 0);
	CHECK_EQ_INT(nd_path_key(a, ND_PATH_KEY_MAX, ka), ND_PATH_KEY_MAX);
	CHECK_EQ_INT(nd_path_key(a, 999, ka), ND_PATH_KEY_MAX);
	CHECK_EQ_INT(nd_path_key(b, 999, kb), ND_PATH_KEY_MAX);
	CHECK(memcmp(ka, kb, ND_PATH_KEY_MAX) != 0); /* same prefix, other hash */
	CHECK(ka[ND_PATH_KEY_PREFIX] == 0);
	uint8_t pv[ND_PATHVAL_SIZE];
	uint32_t id;
	nd_pathval_encode(1234, pv);
	CHECK_EQ_INT(nd_pathval_decode(pv, sizeof(pv), &id, NULL), 0);
	CHECK_EQ_INT(id, 1234);
	CHECK(nd_pathval_decode(pv, 4, &id, NULL) != 0);
	pv[0] = 0;
	CHECK(nd_pathval_decode(pv, sizeof(pv), &id, NULL) != 0);
}

/* Quantisation error of both formats on unit vectors, dot products against
 * unit queries: float16 within 1e-3, int8 within 1e-2 (measured maxima are
 * printed by bench_index). */
static void test_vector_formats(void)
{
	synth_rng r = { 3, 0, 0 };
	const uint32_t d = 256;
	float x[256], q[256], y[256];
	uint8_t buf[ND_VEC_HDR_V1 + 2 * 256];
	size_t len;
	nd_error err;
	uint32_t fmts[] = { ND_VEC_F16, ND_VEC_I8 };
	double tol[] = { 1e-3, 1e-2 };
	for (int f = 0; f < 2; f++) {
		double maxerr = 0;
		for (int rep = 0; rep < 200; rep++) {
			synth_unit_gauss(&r, x, d);
			synth_unit_gauss(&r, q, d);
			CHECK_EQ_INT(nd_vector_encode(x, d, fmts[f], buf, sizeof(buf), &len, &err), 0);
			CHECK_EQ_INT(len, nd_vector_encoded_size(d, fmts[f]));
			nd_vec_view v;
			CHECK_EQ_INT(nd_vector_decode(buf, len, d, &v, &err), 0);
			nd_vector_dequant(&v, y);
			double exact = 0, deq = 0;
			for (uint32_t i = 0; i < d; i++) {
				exact += (double)x[i] * q[i];
				deq += (double)y[i] * q[i];
			}
			double fast = nd_vector_dot(&v, q);
			CHECK_NEAR(fast, deq, 1e-5);
			if (fabs(exact - deq) > maxerr)
				maxerr = fabs(exact - deq);
			/* self-similarity stays close to 1 */
			CHECK_NEAR(nd_vector_dot(&v, x), 1.0, tol[f]);
		}
		CHECK_MSG(maxerr < tol[f], "format %u max dot error %g", fmts[f], maxerr);
		/* malformed values */
		CHECK_EQ_INT(nd_vector_decode(buf, len, d + 1, &(nd_vec_view){ 0 }, &err), ND_ECORRUPT);
		for (size_t cut = 0; cut < len; cut++)
			CHECK(nd_vector_decode(buf, cut, d, &(nd_vec_view){ 0 }, &err) != 0);
	}
	/* f16: exact for representable values, including subnormals */
	float ex[16] = { 0.0f, -0.0f, 1.0f, -2.0f, 0.5f, 65504.0f, 6.103515625e-05f, 5.9604645e-08f,
			 0.333251953125f, -1025.0f, 3.0f, 1e-9f, 0.1f, 7.0f, 100.0f, 0.25f };
	nd_vec_view v;
	CHECK_EQ_INT(nd_vector_encode(ex, 16, ND_VEC_F16, buf, sizeof(buf), &len, &err), 0);
	CHECK_EQ_INT(nd_vector_decode(buf, len, 16, &v, &err), 0);
	nd_vector_dequant(&v, y);
	for (int i = 0; i < 11; i++)
		CHECK_MSG(y[i] == ex[i], "f16 %d: %g -> %g", i, ex[i], y[i]);
	CHECK(y[11] == 0.0f);
	CHECK_NEAR(y[12], 0.1, 1e-4);
	/* non-finite input is refused */
	x[5] = NAN;
	CHECK_EQ_INT(nd_vector_encode(x, d, ND_VEC_I8, buf, sizeof(buf), &len, &err), ND_EINVAL);
	/* a later header version with a larger header (an appended field) still decodes */
	CHECK_EQ_INT(nd_vector_encode(ex, 16, ND_VEC_I8, buf, sizeof(buf), &len, &err), 0);
	uint8_t ext[ND_VEC_HDR_V1 + 4 + 16];
	memcpy(ext, buf, ND_VEC_HDR_V1);
	ext[1] = 2;                  /* version */
	ext[3] = ND_VEC_HDR_V1 + 4;  /* header size */
	memset(ext + ND_VEC_HDR_V1, 0x40, 4);
	memcpy(ext + ND_VEC_HDR_V1 + 4, buf + ND_VEC_HDR_V1, 16);
	nd_vec_view v2;
	CHECK_EQ_INT(nd_vector_decode(ext, sizeof(ext), 16, &v2, &err), 0);
	CHECK(v2.data == ext + ND_VEC_HDR_V1 + 4);
	CHECK_EQ_INT(nd_vector_decode(buf, len, 16, &v, &err), 0);
	CHECK(v2.scale == v.scale && memcmp(v2.data, v.data, 16) == 0);
}

/* Version-2 vector values: the v1 fields plus the background
 * statistic; the components are the same bytes as version 1's. */
static void test_vector_stat(void)
{
	synth_rng r = { 5, 0, 0 };
	const uint32_t d = 64;
	float x[64];
	uint8_t b1[ND_VEC_HDR_V2 + 2 * 64], b2[ND_VEC_HDR_V2 + 2 * 64];
	size_t l1, l2;
	nd_error err;
	uint32_t fmts[] = { ND_VEC_F16, ND_VEC_I8 };
	for (int f = 0; f < 2; f++) {
		synth_unit_gauss(&r, x, d);
		CHECK_EQ_INT(nd_vector_encode(x, d, fmts[f], b1, sizeof(b1), &l1, &err), 0);
		CHECK_EQ_INT(nd_vector_encode_stat(x, d, fmts[f], 0.625f, b2, sizeof(b2), &l2, &err), 0);
		CHECK_EQ_INT(l2, l1 + 4);
		CHECK_EQ_INT(l2, nd_vector_encoded_size_stat(d, fmts[f], 1));
		nd_vec_view v1, v2;
		CHECK_EQ_INT(nd_vector_decode(b1, l1, d, &v1, &err), 0);
		CHECK_EQ_INT(nd_vector_decode(b2, l2, d, &v2, &err), 0);
		CHECK(!v1.has_stat && v1.stat == 0.0f);
		CHECK(v2.has_stat && v2.stat == 0.625f);
		CHECK(v2.scale == v1.scale);
		CHECK(memcmp(v1.data, v2.data, l1 - ND_VEC_HDR_V1) == 0);
		for (size_t cut = 0; cut < l2; cut++)
			CHECK(nd_vector_decode(b2, cut, d, &(nd_vec_view){ 0 }, &err) != 0);
		/* version 2 with a version-1 header size */
		uint8_t bad[sizeof(b1)];
		memcpy(bad, b1, l1);
		bad[1] = 2;
		CHECK_EQ_INT(nd_vector_decode(bad, l1, d, &(nd_vec_view){ 0 }, &err), ND_ECORRUPT);
		/* a non-finite stored statistic */
		memcpy(bad, b2, l2);
		float nan_ = NAN;
		memcpy(bad + ND_VEC_HDR_V1, &nan_, 4);
		CHECK_EQ_INT(nd_vector_decode(bad, l2, d, &(nd_vec_view){ 0 }, &err), ND_ECORRUPT);
		/* refused when encoding */
		CHECK_EQ_INT(nd_vector_encode_stat(x, d, fmts[f], INFINITY, b2, sizeof(b2), &l2, &err), ND_EINVAL);
		CHECK_EQ_INT(nd_vector_encode_stat(x, d, fmts[f], 0.5f, b2, l1, &l2, &err), ND_ELIMIT);
	}
}

/* Version 3: version 2 plus the perceptual hash; versions 1 and
 * 2 decode without one. */
static void test_vector_phash(void)
{
	synth_rng r = { 9, 0, 0 };
	const uint32_t d = 64;
	float x[64];
	uint8_t b2[ND_VEC_HDR_V3 + 2 * 64], b3[ND_VEC_HDR_V3 + 2 * 64];
	size_t l2, l3;
	nd_error err;
	const uint64_t h = 0x8000f00dcafe0001ull;
	uint32_t fmts[] = { ND_VEC_F16, ND_VEC_I8 };
	for (int f = 0; f < 2; f++) {
		synth_unit_gauss(&r, x, d);
		CHECK_EQ_INT(nd_vector_encode_stat(x, d, fmts[f], 0.25f, b2, sizeof(b2), &l2, &err), 0);
		CHECK_EQ_INT(nd_vector_encode_stat_phash(x, d, fmts[f], 0.25f, h, b3, sizeof(b3), &l3, &err), 0);
		CHECK_EQ_INT(l3, l2 + 8);
		CHECK_EQ_INT(l3 + ND_ORIGIN_SIZE, nd_vector_encoded_size_max(d, fmts[f]));
		nd_vec_view v2, v3;
		CHECK_EQ_INT(nd_vector_decode(b2, l2, d, &v2, &err), 0);
		CHECK_EQ_INT(nd_vector_decode(b3, l3, d, &v3, &err), 0);
		CHECK(!v2.has_phash && v2.phash == 0);
		CHECK(v3.has_phash && v3.phash == h && v3.has_stat && v3.stat == 0.25f);
		CHECK(memcmp(v2.data, v3.data, l2 - ND_VEC_HDR_V2) == 0);
		CHECK(nd_vector_dot(&v2, x) == nd_vector_dot(&v3, x));
		for (size_t cut = 0; cut < l3; cut++)
			CHECK(nd_vector_decode(b3, cut, d, &(nd_vec_view){ 0 }, &err) != 0);
		/* version 3 with a version-2 header size */
		uint8_t bad[sizeof(b2)];
		memcpy(bad, b2, l2);
		bad[1] = 3;
		CHECK_EQ_INT(nd_vector_decode(bad, l2, d, &(nd_vec_view){ 0 }, &err), ND_ECORRUPT);
		CHECK_EQ_INT(nd_vector_encode_stat_phash(x, d, fmts[f], INFINITY, h, b3, sizeof(b3), &l3, &err),
			     ND_EINVAL);
		CHECK_EQ_INT(nd_vector_encode_stat_phash(x, d, fmts[f], 0.5f, h, b3, l2, &l3, &err), ND_ELIMIT);
	}
}

/* Version 4: version 3 plus the originality record; versions 1..3 decode
 * without one, and a bad record or header is refused. */
static void test_vector_origin(void)
{
	synth_rng r = { 11, 0, 0 };
	const uint32_t d = 32;
	float x[32];
	uint8_t b3[ND_VEC_HDR_V4 + 2 * 32], b4[ND_VEC_HDR_V4 + 2 * 32];
	size_t l3, l4;
	nd_error err;
	nd_origin o;
	nd_origin_init(&o);
	o.chroma = 12.5f;
	o.margin = 0.25f;
	o.quality = 75;
	o.camera = 1;
	o.taken = 1577934245;
	synth_unit_gauss(&r, x, d);
	CHECK_EQ_INT(nd_vector_encode_stat_phash(x, d, ND_VEC_I8, 0.5f, 42, b3, sizeof(b3), &l3, &err), 0);
	CHECK_EQ_INT(nd_vector_encode_v4(x, d, ND_VEC_I8, 0.5f, 42, &o, b4, sizeof(b4), &l4, &err), 0);
	CHECK_EQ_INT(l4, l3 + ND_ORIGIN_SIZE);
	CHECK_EQ_INT(l4, nd_vector_encoded_size_max(d, ND_VEC_I8));
	nd_vec_view v3, v4;
	CHECK_EQ_INT(nd_vector_decode(b3, l3, d, &v3, &err), 0);
	CHECK_EQ_INT(nd_vector_decode(b4, l4, d, &v4, &err), 0);
	CHECK(!v3.has_origin && v3.origin.quality == 0 && v3.origin.blockiness == 1.0f);
	CHECK(v4.has_origin && v4.has_phash && v4.phash == 42 && v4.stat == 0.5f);
	CHECK(v4.origin.chroma == 12.5f && v4.origin.margin == 0.25f && v4.origin.quality == 75 &&
	      v4.origin.camera == 1 && v4.origin.taken == 1577934245);
	CHECK(nd_vector_dot(&v3, x) == nd_vector_dot(&v4, x));
	for (size_t cut = 0; cut < l4; cut++)
		CHECK(nd_vector_decode(b4, cut, d, &(nd_vec_view){ 0 }, &err) != 0);
	/* version 4 with a version-3 header size */
	uint8_t bad[sizeof(b4)];
	memcpy(bad, b3, l3);
	bad[1] = 4;
	CHECK_EQ_INT(nd_vector_decode(bad, l3, d, &(nd_vec_view){ 0 }, &err), ND_ECORRUPT);
	/* a damaged record: margin 2 */
	memcpy(bad, b4, l4);
	float two = 2.0f;
	memcpy(bad + ND_VEC_HDR_V3 + 4, &two, 4);
	CHECK_EQ_INT(nd_vector_decode(bad, l4, d, &(nd_vec_view){ 0 }, &err), ND_ECORRUPT);
	/* an invalid record is not written */
	o.margin = NAN;
	CHECK_EQ_INT(nd_vector_encode_v4(x, d, ND_VEC_I8, 0.5f, 42, &o, b4, sizeof(b4), &l4, &err), ND_EINVAL);
}

/* The phash database's validity mark: round trip, every truncation and a
 * wrong magic or version refused. */
static void test_phash_mark(void)
{
	uint8_t b[ND_PHASH_MARK_SIZE + 1];
	uint32_t next;
	uint64_t n;
	nd_error err;
	nd_phash_mark_encode(0xfedcba98u, 0x0123456789abcdefull, b);
	CHECK_EQ_INT(nd_phash_mark_decode(b, ND_PHASH_MARK_SIZE, &next, &n, &err), 0);
	CHECK(next == 0xfedcba98u && n == 0x0123456789abcdefull);
	for (size_t cut = 0; cut <= ND_PHASH_MARK_SIZE + 1; cut++)
		if (cut != ND_PHASH_MARK_SIZE)
			CHECK_EQ_INT(nd_phash_mark_decode(b, cut, &next, &n, &err), ND_ECORRUPT);
	b[0] ^= 1;
	CHECK_EQ_INT(nd_phash_mark_decode(b, ND_PHASH_MARK_SIZE, &next, &n, &err), ND_ECORRUPT);
	b[0] ^= 1;
	b[1] = 2;
	CHECK_EQ_INT(nd_phash_mark_decode(b, ND_PHASH_MARK_SIZE, &next, &n, &err), ND_EVERSION);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_meta_roundtrip);
	RUN(test_record_roundtrip);
	RUN(test_record_v1);
	RUN(test_path_keys);
	RUN(test_vector_formats);
	RUN(test_vector_stat);
	RUN(test_vector_phash);
	RUN(test_vector_origin);
	RUN(test_phash_mark);
	return test_summary();
}
