#!/usr/bin/python3
"""Dedup's grouping replayed on stored vectors, for choosing the pair score's
threshold and the grouping's guard without re-running the binary.

  dedup_sim.py RUNDIR JOIN.tsv NATPREFIX NATJOIN.tsv [--thr T,T,...] [--guard MARGIN,RATIO]
               [--weak WEAK_SIM,SHARE,PAIRS]

RUNDIR holds `bench_vectors dump` of the dedup index (all.*), JOIN.tsv its
self-join candidates (`bench_vectors join`); NATPREFIX the dump of the
natural/look-alike index and NATJOIN.tsv its candidates. The candidates (the
self-join's pairs plus pairs whose perceptual hashes share a 16-bit quarter
in some rotation or flip) are scored with the compiled-in weights
(src/score_table.h, as nd_score_pair) and grouped by
`bench_vectors group` (nd_group_components). Prints, per threshold, the
copies' pairwise precision and recall, the share of copies grouped with their
original, and the natural families' precision, recall and look-alike pairs
merged.
"""
import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import evaluate  # noqa: E402
import fit_score  # noqa: E402
import loss  # noqa: E402

BV = os.environ.get("BV", os.path.join(evaluate.ROOT, "build", "rel", "bench", "bench_vectors"))


def candidates(prefix, join):
    paths, v, stat, has, ph = fit_score.load(prefix)
    ids = [int(x.split("\t", 1)[0]) for x in open(prefix + ".tsv")]
    row = {i: k for k, i in enumerate(ids)}
    pairs = set()
    for ln in open(join):
        a, b, _ = ln.split("\t")
        ra, rb = row[int(a)], row[int(b)]
        pairs.add((min(ra, rb), max(ra, rb)))
    pairs |= loss.quarter_candidates(ph, has)
    pi = np.array([p[0] for p in pairs], np.int64)
    pj = np.array([p[1] for p in pairs], np.int64)
    c = np.minimum(np.einsum("ij,ij->i", v[pi], v[pj]), 1.0)
    var = fit_score.variants(ph)
    d0 = fit_score.popcount(ph[pi] ^ ph[pj])
    dd = d0.copy()
    for k in range(1, 8):
        dd = np.minimum(dd, fit_score.popcount(ph[pi] ^ var[k][pj]))
    x = fit_score.features(c, stat[pi], stat[pj], has[pi], has[pj], d0, dd)
    return [loss.norm(p) for p in paths], pi, pj, x


def group(n, pi, pj, s, thr, guard, weak=None):
    sel = s >= (float(weak[0]) if weak else thr)
    inp = "".join(f"{a} {b} {w:.6f}\n" for a, b, w in zip(pi[sel].tolist(), pj[sel].tolist(), s[sel].tolist()))
    guard = guard or (0.02, 0.5)
    args = [BV, "group", str(n), str(thr), str(guard[0]), str(guard[1])] + ([str(x) for x in weak] if weak else [])
    out = subprocess.run(args, input=inp, capture_output=True, text=True, check=True).stdout.split()
    g = {}
    for i, c in enumerate(out):
        if c != "-1":
            g.setdefault(c, []).append(i)
    return list(g.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("join")
    ap.add_argument("nat")
    ap.add_argument("natjoin")
    ap.add_argument("--thr", default="0.5,0.7,0.8,0.85,0.9,0.95")
    ap.add_argument("--guard")
    ap.add_argument("--weak", help="WEAK_SIM,SHARE,PAIRS: the weak merge")
    a = ap.parse_args()
    guard = [float(x) for x in a.guard.split(",")] if a.guard else None
    weak = a.weak.split(",") if a.weak else None
    w = loss.weights()
    t = {loss.norm(k): x for k, x in evaluate.truth(a.run).items()}
    paths, pi, pj, x = candidates(os.path.join(a.run, "all"), a.join)
    s = 1 / (1 + np.exp(-(x @ w)))
    npaths, npi, npj, nx = candidates(a.nat, a.natjoin)
    ns = 1 / (1 + np.exp(-(nx @ w)))
    items = [p for p in paths if p in t]
    nitems = [p for p in npaths if p in t]
    for thr in [float(z) for z in a.thr.split(",")]:
        gs = [(None, [paths[i] for i in m]) for m in group(len(paths), pi, pj, s, thr, guard, weak)]
        r = evaluate.pair_eval(gs, items, t)
        cs = evaluate.copy_share(gs, items, t)
        ng = [(None, [npaths[i] for i in m]) for m in group(len(npaths), npi, npj, ns, thr, guard, weak)]
        nr = evaluate.pair_eval(ng, nitems, t)
        print(f"{thr:5.3f} copies: P {r['precision']:.4f} R {r['recall']:.4f} grouped {cs:.3f} "
              f"wrong groups {r['wrong_groups']} | natural: P {nr['precision']:.4f} R {nr['recall']:.4f} "
              f"look-alike pairs {nr['lookalike_pairs_merged']}", flush=True)


if __name__ == "__main__":
    main()
