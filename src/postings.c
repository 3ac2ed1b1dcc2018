/* neardup — varint (LEB128) delta codec for sorted id lists. */
#include "neardup/postings.h"

#include <stdio.h>

static size_t varint_len(uint32_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t nd_postings_bound(size_t n)
{
	size_t r;
	if (nd_mul_size(n, ND_VARINT_MAX, &r))
		return SIZE_MAX;
	return r;
}

size_t nd_varint_put(uint8_t *out, uint32_t v)
{
	size_t i = 0;
	while (v >= 0x80) {
		out[i++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[i++] = (uint8_t)v;
	return i;
}

int nd_varint_get(const uint8_t **pp, const uint8_t *end, uint32_t *v, nd_error *err)
{
	const uint8_t *p = *pp;
	uint32_t r = 0;
	for (int i = 0; i < ND_VARINT_MAX; i++) {
		if (p >= end)
			return nd_error_set(err, ND_ECORRUPT, "truncated varint (%d byte%s then end of data)",
					    i, i == 1 ? "" : "s");
		uint8_t b = *p++;
		if (i == ND_VARINT_MAX - 1 && (b & 0xF0))
			return nd_error_set(err, ND_ECORRUPT,
					    "varint overflows 32 bits (fifth byte 0x%02x)", b);
		r |= (uint32_t)(b & 0x7F) << (7 * i);
		if (!(b & 0x80)) {
			if (b == 0 && i > 0)
				return nd_error_set(err, ND_ECORRUPT,
						    "overlong varint (%d bytes ending in a zero group)", i + 1);
			*v = r;
			*pp = p;
			return 0;
		}
	}
	/* unreachable: the fifth byte either ends the varint or fails above */
	return nd_error_set(err, ND_ECORRUPT, "overlong varint");
}

int nd_postings_encode(uint32_t prev, const uint32_t *ids, size_t n, uint8_t *out,
		       size_t out_cap, size_t *len, nd_error *err)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (ids[i] <= prev)
			return nd_error_set(err, ND_EINVAL,
					    "ids not strictly increasing at index %zu (%u after %u)",
					    i, ids[i], prev);
		if (varint_len(ids[i] - prev) > out_cap - o)
			return nd_error_set(err, ND_ELIMIT, "output buffer of %zu bytes too small",
					    out_cap);
		o += nd_varint_put(out + o, ids[i] - prev);
		prev = ids[i];
	}
	*len = o;
	return 0;
}

int nd_postings_decode(const uint8_t *p, const uint8_t *end, uint32_t prev, uint32_t *out,
		       size_t cap, size_t *n, uint32_t *last, nd_error *err)
{
	const uint8_t *start = p;
	size_t k = 0;
	int count_only = (out == NULL && cap == 0);
	if (p > end)
		return nd_error_set(err, ND_EINVAL, "end pointer before start");
	while (p < end) {
		uint32_t g;
		size_t off = (size_t)(p - start);
		int rc = nd_varint_get(&p, end, &g, err);
		if (rc) {
			if (err) {
				char tmp[ND_ERRMSG_MAX];
				snprintf(tmp, sizeof(tmp), "%s", err->msg);
				nd_error_set(err, rc, "%s at byte %zu (entry %zu)", tmp, off, k);
			}
			return rc;
		}
		if (g == 0)
			return nd_error_set(err, ND_ECORRUPT,
					    "zero gap at byte %zu (entry %zu): ids not increasing",
					    off, k);
		if (g > UINT32_MAX - prev)
			return nd_error_set(err, ND_ECORRUPT,
					    "id overflows 32 bits at byte %zu (entry %zu: %u + %u)",
					    off, k, prev, g);
		prev += g;
		if (!count_only) {
			if (k >= cap)
				return nd_error_set(err, ND_ELIMIT, "list holds more than %zu ids", cap);
			out[k] = prev;
		}
		k++;
	}
	*n = k;
	if (last)
		*last = prev;
	return 0;
}
