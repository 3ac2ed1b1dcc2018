/* neardup — which image of a group of near-duplicates to keep.
 *
 * The rules order the images of a group, best to keep first. "original"
 * (the default) keeps the image that looks least edited, from the
 * originality records (neardup/origin.h); the others keep the most pixels
 * ("resolution"), the largest or smallest file, the oldest or newest file,
 * or the first path. Every rule ends with the same tie-breakers: more
 * pixels, larger file, older file, path, id.
 *
 * "original", in order (the first that tells the two apart decides):
 *   1. colour over greyscale;
 *   2. a camera named in EXIF over none;
 *   3. less lossy compression (nd_origin_lossy: JPEG quality, JPEG
 *      blocks in a PNG);
 *   4. the higher originality score (nd_origin_score), in steps of
 *      ND_KEEP_SCORE_STEP: content pixels without margins and flat
 *      canvas, detail per pixel, no added noise;
 *   5. the earlier EXIF capture date;
 *   6. the older file (a copy is made after its source);
 *   7. the higher score in finer steps (ND_KEEP_SCORE_FINE);
 *   8. more content pixels (without the uniform side bands);
 *   9. the tie-breakers.
 * An image without a record (an index from before records were stored)
 * is compared by the tie-breakers alone. */
#ifndef NEARDUP_KEEP_H
#define NEARDUP_KEEP_H

#include <stdint.h>

#include "neardup/common.h"
#include "neardup/origin.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nd_keep_rule {
	ND_KEEP_ORIGINAL,
	ND_KEEP_RESOLUTION,
	ND_KEEP_LARGEST,
	ND_KEEP_SMALLEST,
	ND_KEEP_OLDEST,
	ND_KEEP_NEWEST,
	ND_KEEP_FIRST_PATH,
	ND_KEEP_RULE_COUNT
} nd_keep_rule;

/* Scores are compared in whole steps of this (log2 of content pixels): a
 * smaller difference is weaker evidence than the files' ages. */
#define ND_KEEP_SCORE_STEP 3.0f
/* ... and, between files of the same age, closer than this. */
#define ND_KEEP_SCORE_FINE 0.5f

typedef struct nd_keep_item {
	uint32_t id;
	uint32_t width, height;  /* displayed size */
	uint64_t size;           /* file bytes */
	int64_t mtime_ns;
	const char *path;
	const nd_origin *origin; /* NULL: not measured */
} nd_keep_item;

/* "original", "resolution", ... */
const char *nd_keep_rule_name(nd_keep_rule r);
/* ND_EINVAL for a name that is not a rule. */
int nd_keep_rule_parse(const char *name, nd_keep_rule *r);

/* < 0 when a is to be kept before b, > 0 after, 0 only for equal items.
 * why (may be NULL) receives a short static phrase naming what decided
 * ("colour", "less edited", "older file", ...). */
int nd_keep_cmp(nd_keep_rule rule, const nd_keep_item *a, const nd_keep_item *b, const char **why);

#ifdef __cplusplus
}
#endif
#endif
