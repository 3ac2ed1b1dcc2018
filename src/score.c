/* neardup — the pair score (see neardup/score.h). */
#include "neardup/score.h"

#include <math.h>
#include <stddef.h>

#include "neardup/phash.h"

void nd_score_features(float cos, const nd_score_side *a, const nd_score_side *b, float f[ND_SCORE_NFEAT])
{
	f[0] = 1.0f;
	f[1] = cos;
	f[2] = fmaxf(0.0f, cos - 0.5f);
	f[3] = fmaxf(0.0f, cos - 0.7f);
	f[4] = fmaxf(0.0f, cos - 0.9f);
	f[5] = a->has_stat && b->has_stat ? 0.5f * (a->stat + b->stat) : 0.0f;
	if (a->has_phash && b->has_phash) {
		int d = nd_phash_distance(a->phash, b->phash);
		int dd = nd_phash_distance_dihedral(a->phash, b->phash, NULL);
		f[6] = d < ND_SCORE_HASH_FAR ? (float)(ND_SCORE_HASH_FAR - d) / ND_SCORE_HASH_FAR : 0.0f;
		f[7] = dd < ND_SCORE_HASH_FAR ? (float)(ND_SCORE_HASH_FAR - dd) / ND_SCORE_HASH_FAR : 0.0f;
		f[8] = dd < ND_SCORE_HASH_NEAR ? (float)(ND_SCORE_HASH_NEAR - dd) / ND_SCORE_HASH_NEAR : 0.0f;
		f[9] = 0.0f;
	} else {
		f[6] = f[7] = f[8] = 0.0f;
		f[9] = 1.0f;
	}
}

float nd_score_pair(const nd_score_model *m, float cos, const nd_score_side *a, const nd_score_side *b)
{
	if (!isfinite(cos))
		return 0.0f;
	float f[ND_SCORE_NFEAT];
	/* a quantised vector can overshoot 1 a little: the fit saw cosines <= 1 */
	nd_score_features(fminf(cos, 1.0f), a, b, f);
	double z = 0;
	for (int i = 0; i < ND_SCORE_NFEAT; i++)
		z += (double)m->w[i] * f[i];
	return (float)(1.0 / (1.0 + exp(-z)));
}

#include "score_table.h"

const nd_score_model *nd_score_model_find(uint64_t model_checksum)
{
	for (size_t i = 0; i < sizeof(nd_score_table) / sizeof(nd_score_table[0]); i++)
		if (nd_score_table[i].model_checksum == model_checksum)
			return &nd_score_table[i];
	return NULL;
}
