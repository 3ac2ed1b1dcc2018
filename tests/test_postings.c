/* Tests for the varint delta codec (src/postings.c) and posting blocks. */
#include "neardup/postings.h"
#include "neardup/store.h"
#include "test.h"

#include <stdint.h>

static uint64_t rs = 12345;
static uint32_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (uint32_t)rs;
}

/* encode/decode a list at a misaligned offset and compare */
static int roundtrip(uint32_t prev, const uint32_t *ids, size_t n, size_t misalign)
{
	size_t cap = nd_postings_bound(n) + 16, len = 0, m = 0;
	uint8_t *buf = malloc(cap + 8);
	uint32_t *out = malloc((n + 1) * sizeof(uint32_t)), last = 0;
	nd_error err;
	int ok = 1;
	if (nd_postings_encode(prev, ids, n, buf + misalign, cap, &len, &err) != 0)
		ok = 0;
	else if (len > nd_postings_bound(n))
		ok = 0;
	else if (nd_postings_decode(buf + misalign, buf + misalign + len, prev, out, n, &m, &last, &err))
		ok = 0;
	else if (m != n || (n && memcmp(out, ids, n * sizeof(uint32_t))) || last != (n ? ids[n - 1] : prev))
		ok = 0;
	/* count-only mode */
	size_t m2 = 0;
	if (ok && (nd_postings_decode(buf + misalign, buf + misalign + len, prev, NULL, 0, &m2, NULL, &err) ||
		   m2 != n))
		ok = 0;
	/* too small an output array */
	if (ok && n > 0 &&
	    nd_postings_decode(buf + misalign, buf + misalign + len, prev, out, n - 1, &m2, NULL, &err) !=
		    ND_ELIMIT)
		ok = 0;
	free(buf);
	free(out);
	return ok;
}

static void test_varint_boundaries(void)
{
	uint32_t vals[] = { 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455, 268435456, UINT32_MAX };
	size_t lens[] = { 1, 1, 2, 2, 3, 3, 4, 4, 5, 5 };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		uint8_t b[8];
		size_t l = nd_varint_put(b, vals[i]);
		CHECK_EQ_INT(l, lens[i]);
		const uint8_t *p = b;
		uint32_t v = 0;
		CHECK_EQ_INT(nd_varint_get(&p, b + l, &v, NULL), 0);
		CHECK_EQ_INT(v, vals[i]);
		CHECK(p == b + l);
	}
}

static void test_roundtrip_lengths(void)
{
	size_t lens[] = { 0, 1, 2, 3, 127, 128, 129, 1000, 100000 };
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t n = lens[li];
		uint32_t *ids = malloc((n + 1) * sizeof(uint32_t));
		for (int mode = 0; mode < 3; mode++) {
			uint32_t cur = 0;
			for (size_t i = 0; i < n; i++) {
				uint32_t gap = mode == 0 ? 1 : mode == 1 ? 1 + rnd() % 300 : 1 + rnd() % 70000;
				cur += gap;
				ids[i] = cur;
			}
			for (size_t mis = 0; mis < 4; mis++)
				CHECK_MSG(roundtrip(0, ids, n, mis), "n %zu mode %d misalign %zu", n, mode, mis);
		}
		free(ids);
	}
}

static void test_large_gaps(void)
{
	/* gaps up to 2^32 - 1 */
	uint32_t a[] = { UINT32_MAX };
	CHECK(roundtrip(0, a, 1, 1));
	uint32_t b[] = { 1, UINT32_MAX };
	CHECK(roundtrip(0, b, 2, 3));
	uint32_t c[] = { 1u << 31, (1u << 31) + 1, UINT32_MAX - 1, UINT32_MAX };
	CHECK(roundtrip(0, c, 4, 0));
	uint32_t d[] = { 5, 6 };
	CHECK(roundtrip(4, d, 2, 2));
	/* random gaps spread over the whole range */
	for (int rep = 0; rep < 200; rep++) {
		uint32_t ids[40], cur = 0;
		size_t n = 0;
		while (n < 40) {
			uint32_t room = UINT32_MAX - cur, g;
			if (room == 0)
				break;
			g = 1 + (uint32_t)(((uint64_t)rnd() << 32 | rnd()) % (room < (1u << 30) ? room : (1u << 30)));
			if (rnd() % 8 == 0)
				g = room; /* a maximal jump */
			cur += g;
			ids[n++] = cur;
		}
		CHECK(roundtrip(0, ids, n, (size_t)rep % 4));
	}
}

static void test_encoder_rejects(void)
{
	uint8_t buf[64];
	size_t len;
	nd_error err;
	uint32_t dup[] = { 3, 3 }, dec[] = { 5, 4 }, low[] = { 7 };
	CHECK_EQ_INT(nd_postings_encode(0, dup, 2, buf, sizeof(buf), &len, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_postings_encode(0, dec, 2, buf, sizeof(buf), &len, &err), ND_EINVAL);
	CHECK_EQ_INT(nd_postings_encode(7, low, 1, buf, sizeof(buf), &len, &err), ND_EINVAL);
	uint32_t big[] = { UINT32_MAX };
	CHECK_EQ_INT(nd_postings_encode(0, big, 1, buf, 4, &len, &err), ND_ELIMIT);
	CHECK_EQ_INT(nd_postings_encode(0, big, 1, buf, 5, &len, &err), 0);
	CHECK_EQ_INT(len, 5);
	CHECK(nd_postings_bound(SIZE_MAX / 2) == SIZE_MAX);
}

static int decode_bytes(const uint8_t *b, size_t n, uint32_t prev, nd_error *err)
{
	uint32_t out[16];
	size_t m;
	/* copy to an exact-size heap buffer so ASan sees any over-read */
	uint8_t *h = malloc(n ? n : 1);
	if (n)
		memcpy(h, b, n);
	int rc = nd_postings_decode(h, h + n, prev, out, 16, &m, NULL, err);
	free(h);
	return rc;
}

static void test_decoder_rejects(void)
{
	nd_error err;
	/* truncated: continuation bit on the last byte */
	const uint8_t t1[] = { 0x80 }, t2[] = { 0x05, 0xFF, 0xFF };
	CHECK_EQ_INT(decode_bytes(t1, 1, 0, &err), ND_ECORRUPT);
	CHECK(strstr(err.msg, "truncated") != NULL);
	CHECK_EQ_INT(decode_bytes(t2, 3, 0, &err), ND_ECORRUPT);
	CHECK(strstr(err.msg, "byte 1") != NULL);
	/* overlong: trailing zero group, and six bytes */
	const uint8_t o1[] = { 0x81, 0x00 }, o2[] = { 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
	CHECK_EQ_INT(decode_bytes(o1, 2, 0, &err), ND_ECORRUPT);
	CHECK(strstr(err.msg, "overlong") != NULL);
	CHECK_EQ_INT(decode_bytes(o2, 6, 0, &err), ND_ECORRUPT);
	/* more than 32 bits in the fifth byte */
	const uint8_t v1[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0x1F };
	CHECK_EQ_INT(decode_bytes(v1, 5, 0, &err), ND_ECORRUPT);
	CHECK(strstr(err.msg, "32 bits") != NULL);
	const uint8_t v2[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0x0F };
	CHECK_EQ_INT(decode_bytes(v2, 5, 0, &err), 0);
	/* zero gap = non-increasing */
	const uint8_t z1[] = { 0x05, 0x00 };
	CHECK_EQ_INT(decode_bytes(z1, 2, 0, &err), ND_ECORRUPT);
	CHECK(strstr(err.msg, "not increasing") != NULL);
	const uint8_t z0[] = { 0x00 };
	CHECK_EQ_INT(decode_bytes(z0, 1, 0, &err), ND_ECORRUPT);
	/* sum overflows 32 bits */
	const uint8_t s1[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x01 };
	CHECK_EQ_INT(decode_bytes(s1, 6, 0, &err), ND_ECORRUPT);
	CHECK(strstr(err.msg, "overflow") != NULL);
	const uint8_t s2[] = { 0x02 };
	CHECK_EQ_INT(decode_bytes(s2, 1, UINT32_MAX - 1, &err), ND_ECORRUPT);
	CHECK_EQ_INT(decode_bytes(s2, 1, UINT32_MAX - 2, &err), 0);
	/* empty input is a valid empty list */
	CHECK_EQ_INT(decode_bytes(NULL, 0, 0, &err), 0);
	/* every truncation of a valid multi-byte list either decodes a prefix
	 * or is rejected; never reads past the end (ASan) */
	uint32_t ids[] = { 200, 70000, 70001, 3000000000u };
	uint8_t enc[32];
	size_t len;
	CHECK_EQ_INT(nd_postings_encode(0, ids, 4, enc, sizeof(enc), &len, NULL), 0);
	for (size_t cut = 0; cut < len; cut++) {
		int rc = decode_bytes(enc, cut, 0, &err);
		CHECK(rc == 0 || rc == ND_ECORRUPT);
	}
	/* all two-byte inputs: no crash, rejected or decoded consistently */
	for (unsigned a = 0; a < 256; a++)
		for (unsigned b = 0; b < 256; b++) {
			uint8_t in[2] = { (uint8_t)a, (uint8_t)b };
			int rc = decode_bytes(in, 2, 0, &err);
			int valid = (a & 0x80) ? (b != 0 && !(b & 0x80)) : (a != 0 && b != 0 && !(b & 0x80));
			CHECK_MSG((rc == 0) == valid, "bytes %02x %02x rc %d", a, b, rc);
		}
}

static void test_blocks(void)
{
	uint32_t ids[ND_BLOCK_MAX_IDS], out[ND_BLOCK_MAX_IDS];
	uint8_t val[1 + 5 * ND_BLOCK_MAX_IDS], key[ND_POSTING_KEY_SIZE];
	size_t len, n;
	nd_error err;
	uint32_t cur = 1000;
	for (int i = 0; i < ND_BLOCK_MAX_IDS; i++)
		ids[i] = cur += 1 + rnd() % 5000;
	CHECK_EQ_INT(nd_block_encode(ids, ND_BLOCK_MAX_IDS, val, sizeof(val), &len, &err), 0);
	CHECK_EQ_INT(nd_block_decode(ids[0], val, len, out, ND_BLOCK_MAX_IDS, &n, &err), 0);
	CHECK_EQ_INT(n, ND_BLOCK_MAX_IDS);
	CHECK(memcmp(ids, out, sizeof(ids)) == 0);
	/* one id more than a block may hold */
	uint8_t big[sizeof(val) + 1];
	memcpy(big, val, len);
	big[len] = 0x01;
	uint32_t out2[ND_BLOCK_MAX_IDS + 1];
	CHECK_EQ_INT(nd_block_decode(ids[0], big, len + 1, out2, ND_BLOCK_MAX_IDS + 1, &n, &err), ND_ECORRUPT);
	/* bad magic, empty value */
	val[0] = 0x00;
	CHECK_EQ_INT(nd_block_decode(ids[0], val, len, out, ND_BLOCK_MAX_IDS, &n, &err), ND_EFORMAT);
	CHECK(nd_block_decode(ids[0], val, 0, out, ND_BLOCK_MAX_IDS, &n, &err) != 0);
	/* keys sort as (table, bucket, first) */
	uint32_t t, b, f;
	nd_posting_key(300, 0xABCDEF, 77, key);
	CHECK_EQ_INT(nd_posting_key_decode(key, sizeof(key), &t, &b, &f, &err), 0);
	CHECK(t == 300 && b == 0xABCDEF && f == 77);
	uint8_t k2[ND_POSTING_KEY_SIZE];
	nd_posting_key(300, 0xABCDEF, 78, k2);
	CHECK(memcmp(key, k2, sizeof(key)) < 0);
	nd_posting_key(300, 0xABCDF0, 1, k2);
	CHECK(memcmp(key, k2, sizeof(key)) < 0);
	nd_posting_key(301, 0, 1, k2);
	CHECK(memcmp(key, k2, sizeof(key)) < 0);
	CHECK(nd_posting_key_decode(key, 9, &t, &b, &f, &err) == ND_ECORRUPT);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_varint_boundaries);
	RUN(test_roundtrip_lengths);
	RUN(test_large_gaps);
	RUN(test_encoder_rejects);
	RUN(test_decoder_rejects);
	RUN(test_blocks);
	return test_summary();
}
