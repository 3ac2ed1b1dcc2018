/* neardup — the posting-list codec: sorted image ids, delta-encoded,
 * variable-byte (LEB128) compressed.
 *
 * A list is a sequence of varints, each the gap (>= 1) from the previous id;
 * the first gap is taken from a caller-given `prev` (0 for a whole list: ids
 * start at 1, 0 is never an image id; the first id of a stored block, which
 * lives in the block's key, for a block). Each varint holds 7 bits per byte,
 * least significant group first, the high bit set on every byte but the last.
 *
 * The encoder writes into a caller buffer of at least nd_postings_bound(n)
 * bytes. The decoder takes an end pointer and rejects, with ND_ECORRUPT and a
 * precise message: truncated varints, overlong encodings (more than 5 bytes,
 * or a trailing zero group), gaps that overflow 32 bits, zero gaps
 * (non-increasing ids). Neither allocates. */
#ifndef NEARDUP_POSTINGS_H
#define NEARDUP_POSTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "neardup/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest varint for a 32-bit gap. */
#define ND_VARINT_MAX 5

/* Bytes needed in the worst case to encode n ids; SIZE_MAX if n * 5
 * overflows. */
size_t nd_postings_bound(size_t n);

/* Encodes ids[0..n) (strictly increasing, ids[0] > prev) into out, which has
 * room for out_cap bytes (nd_postings_bound(n) is always enough). Stores the
 * byte count in *len. ND_EINVAL if ids are not increasing, ND_ELIMIT if out is
 * too small. */
int nd_postings_encode(uint32_t prev, const uint32_t *ids, size_t n, uint8_t *out,
		       size_t out_cap, size_t *len, nd_error *err);

/* Writes one varint (1..5 bytes) at out; returns its length. */
size_t nd_varint_put(uint8_t *out, uint32_t v);

/* Reads one varint from [*p, end), advancing *p. ND_ECORRUPT on truncation,
 * overlong or > 32-bit encodings. */
int nd_varint_get(const uint8_t **p, const uint8_t *end, uint32_t *v, nd_error *err);

/* Decodes the list in [p, end) into out[0..cap), starting from prev; stores
 * the id count in *n. ND_ECORRUPT on malformed input (message names the byte
 * offset), ND_ELIMIT if the list holds more than cap ids. out may be NULL when
 * cap is 0 and only validation and counting are wanted: then no limit applies
 * and *last (if not NULL) receives the last id (prev when the list is empty). */
int nd_postings_decode(const uint8_t *p, const uint8_t *end, uint32_t prev, uint32_t *out,
		       size_t cap, size_t *n, uint32_t *last, nd_error *err);

#ifdef __cplusplus
}
#endif
#endif
