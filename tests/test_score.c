/* Tests of the pair score (src/score.c): the compiled-in weights of the
 * trained model, the features against models/fit_score.py's (golden scores
 * it computed for the same pairs), range, symmetry, monotonicity, the
 * dihedral hash term and a non-finite cosine. */
#include <math.h>
#include <stdint.h>

#include "neardup/phash.h"
#include "neardup/score.h"
#include "test.h"

#define TRAINED 0x01f6368416d12c42ull /* models/neardup.ndm */

static const nd_score_model *trained(void)
{
	const nd_score_model *m = nd_score_model_find(TRAINED);
	ND_ASSERT(m != NULL);
	return m;
}

static void test_find(void)
{
	CHECK(nd_score_model_find(TRAINED) != NULL);
	CHECK(nd_score_model_find(TRAINED ^ 1) == NULL);
	CHECK(nd_score_model_find(0) == NULL);
}

/* fit_score.py's features() and weights, for b = rotation by 90 of a with 3
 * more bits flipped (plain distance 37, dihedral 3) */
static void test_golden(void)
{
	const nd_score_model *m = trained();
	nd_score_side a = { 1, 0.5f, 1, 0x565f485d62cd98d1ull }, b = { 1, 0.3f, 1, 0xad57a279dc7e72eeull };
	CHECK_EQ_INT(nd_phash_distance(a.phash, b.phash), 37);
	CHECK_EQ_INT(nd_phash_distance_dihedral(a.phash, b.phash, NULL), 3);
	CHECK_NEAR(nd_score_pair(m, 0.8f, &a, &b), 0.9725003761788096, 2e-6);
	a.stat = 0.41f;
	b.stat = 0.47f;
	CHECK_NEAR(nd_score_pair(m, 0.93f, &a, &b), 0.9897843356948035, 2e-6);
	/* without hashes: the "no hash" feature, no hash terms */
	float f[ND_SCORE_NFEAT];
	a.has_phash = 0;
	nd_score_features(0.6f, &a, &b, f);
	CHECK_NEAR(f[9], 1, 0);
	CHECK_NEAR(f[6] + f[7] + f[8], 0, 0);
	CHECK_NEAR(f[2], 0.1f, 1e-6);
	CHECK_NEAR(f[3], 0, 0);
}

static uint64_t next(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s ^ (*s >> 29);
}

static void test_range_symmetry_monotone(void)
{
	const nd_score_model *m = trained();
	uint64_t s = 3;
	for (int r = 0; r < 2000; r++) {
		nd_score_side a = { 1, (float)(next(&s) % 1000) / 1000, (int)(r & 1), next(&s) };
		nd_score_side b = { 1, (float)(next(&s) % 1000) / 1000, 1, r % 3 ? next(&s) : a.phash ^ 5 };
		float c = (float)((int)(next(&s) % 2001) - 1000) / 1000;
		float p = nd_score_pair(m, c, &a, &b);
		CHECK_MSG(p >= 0 && p <= 1, "%g", p);
		CHECK_NEAR(p, nd_score_pair(m, c, &b, &a), 0);
		/* a higher cosine never lowers the score */
		CHECK_MSG(nd_score_pair(m, fminf(1, c + 0.05f), &a, &b) >= p, "cos %g", c);
	}
	/* a quantised cosine above 1 scores as 1 */
	nd_score_side a = { 1, 0.4f, 1, 77 }, b = { 1, 0.4f, 1, 77 };
	CHECK_NEAR(nd_score_pair(m, 1.003f, &a, &b), nd_score_pair(m, 1.0f, &a, &b), 0);
	CHECK(nd_score_pair(m, 1.0f, &a, &b) > 0.99f);
	CHECK_NEAR(nd_score_pair(m, NAN, &a, &b), 0, 0);
}

/* a mirrored copy's hash counts as near as the hash itself; an unrelated
 * hash at the same plain distance does not */
static void test_dihedral_term(void)
{
	const nd_score_model *m = trained();
	uint64_t h = 0x565f485d62cd98d1ull, mir = nd_phash_variant(h, ND_PHASH_MIRROR_X);
	uint64_t other = h ^ 0x00000000FFFFFFFFull; /* as far, but no variant of h */
	CHECK_EQ_INT(nd_phash_distance(h, mir), nd_phash_distance(h, other));
	CHECK(nd_phash_distance_dihedral(h, other, NULL) > 8);
	nd_score_side a = { 1, 0.45f, 1, h }, b = { 1, 0.45f, 1, mir }, c = { 1, 0.45f, 1, other };
	float pm = nd_score_pair(m, 0.7f, &a, &b), po = nd_score_pair(m, 0.7f, &a, &c);
	CHECK_MSG(pm > po + 0.2f, "mirror %g, other %g", pm, po);
	b.phash = h;
	CHECK_NEAR(nd_score_pair(m, 0.7f, &a, &b), pm, 0.05); /* the plain term weighs little */
}

int main(void)
{
	RUN(test_find);
	RUN(test_golden);
	RUN(test_range_symmetry_monotone);
	RUN(test_dihedral_term);
	return test_summary();
}
