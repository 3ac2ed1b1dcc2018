/* libFuzzer target: the posting-list decoder and posting blocks.
 * Input: 4 bytes of `prev` (little-endian), then the encoded list. A list
 * that decodes must re-encode to exactly the same bytes (the format has one
 * encoding per list: overlong varints and zero gaps are rejected). */
#include "neardup/postings.h"
#include "neardup/store.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t prev = 0, ids[4096], last;
	size_t n = 0, n2 = 0, len = 0;
	nd_error err;
	if (size < 4)
		return 0;
	memcpy(&prev, data, 4);
	data += 4;
	size -= 4;
	/* exact-size copy so that any over-read is caught */
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	int rc = nd_postings_decode(buf, buf + size, prev, ids, 4096, &n, &last, &err);
	int rc2 = nd_postings_decode(buf, buf + size, prev, NULL, 0, &n2, NULL, &err);
	if (rc == 0) {
		if (rc2 != 0 || n2 != n)
			abort();
		uint8_t *enc = malloc(nd_postings_bound(n) + 1);
		if (nd_postings_encode(prev, ids, n, enc, nd_postings_bound(n), &len, &err) != 0)
			abort();
		if (len != size || memcmp(enc, buf, size) != 0)
			abort();
		if (n && last != ids[n - 1])
			abort();
		free(enc);
	} else if (rc != ND_ELIMIT && rc2 == 0) {
		abort(); /* counting must reject what decoding rejects */
	}
	/* the same bytes as a posting block keyed by prev */
	if (prev != 0) {
		uint32_t blk[ND_BLOCK_MAX_IDS];
		size_t nb;
		if (nd_block_decode(prev, buf, size, blk, ND_BLOCK_MAX_IDS, &nb, &err) == 0) {
			uint8_t out[1 + ND_VARINT_MAX * ND_BLOCK_MAX_IDS];
			if (nd_block_encode(blk, nb, out, sizeof(out), &len, &err) != 0 || len != size ||
			    memcmp(out, buf, size) != 0)
				abort();
		}
	}
	free(buf);
	return 0;
}
