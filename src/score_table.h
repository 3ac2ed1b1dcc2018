/* neardup — private: the fitted pair-score weights (neardup/score.h),
 * written by models/fit_score.py; do not edit. */
static const nd_score_model nd_score_table[] = {
	{ 0x01f6368416d12c42ull,
	  "logistic, dev set pairs of even originals/distractors (57496 pairs)",
	  { -2.9993478f, 4.465398f, 4.0777588f, 1.1674527f, 0.025857413f, -2.3840289f, -0.28231792f, 1.5040443f, 1.5797609f, 0.0f } },
};
