/* neardup — private: the fitted pair-score weights (neardup/score.h),
 * written by models/fit_score.py; do not edit. */
static const nd_score_model nd_score_table[] = {
	{ 0x01f6368416d12c42ull,
	  "logistic, dev set pairs of even originals/distractors (59379 pairs)",
	  { -2.1483241f, 4.3456077f, 3.7478699f, 0.67014447f, 0.013684583f, -3.2953671f, 0.046160697f, 1.9017133f, 1.1204932f, 0.0f } },
};
