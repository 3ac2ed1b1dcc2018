/* neardup — private: the fitted pair-score weights (neardup/score.h),
 * written by models/fit_score.py; do not edit. */
static const nd_score_model nd_score_table[] = {
	{ 0x01f6368416d12c42ull,
	  "logistic, dev set pairs of even originals/distractors (56998 pairs)",
	  { -3.372016f, 4.2873813f, 3.9930282f, 1.3745114f, 0.043459331f, -1.7416071f, -0.27799071f, 0.96353848f, 2.2373336f, 0.0f } },
};
