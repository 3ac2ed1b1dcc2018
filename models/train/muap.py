"""muAP, the copy-detection metric (DISC21 style), in one place: shared by
models/train/eval.py (training-time evaluation) and bench/quality/evaluate.py
(the quality benchmark), so both report the same figure for the same results.

Every query contributes its top results with scores; all (query, result,
score) triples are pooled and ranked by score, best first. Each distinct
score is one threshold (ties count together: the integer pHash scores have
many). At each threshold: precision = correct / returned, recall = correct /
number of queries. muAP is the area under that precision-recall curve;
R@P90 the highest recall whose precision is still >= 0.9.
"""
import numpy as np


def pooled_pr(scores, correct, nq):
    """scores, correct: numpy arrays, one entry per pooled (query, result)
    pair; nq: the number of queries. Returns (prec, rec, thr): one operating
    point per distinct score, from the highest threshold down. The arrays
    keep scores' dtype, so results do not depend on a conversion here."""
    order = np.argsort(-scores, kind="stable")
    scores, correct = scores[order], correct[order]
    tp = np.cumsum(correct)
    n = np.arange(1, len(correct) + 1)
    # one operating point per distinct score (ties form one threshold)
    last = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, bool)
    tp, n, thr = tp[last], n[last], scores[last]
    return tp / n, tp / nq, thr


def muap(prec, rec):
    """Area under the curve of pooled_pr (rectangles at each recall step)."""
    return float((np.diff(np.r_[0.0, rec]) * prec).sum())


def recall_at_precision(prec, rec, p=0.9):
    """The highest recall whose precision is >= p (0 when none)."""
    ok = prec >= p
    return float(rec[ok].max()) if ok.any() else 0.0
