#!/usr/bin/python3
"""Where dedup loses edited copies: candidates, the pair score or the grouping.

  loss.py RUNDIR JOIN.tsv [--floor F] [--json OUT]

RUNDIR is a quality-bench work folder holding `bench_vectors dump` of the
dedup index (all.f32, all.tsv, all.side.tsv); JOIN.tsv is
`bench_vectors join RUNDIR/idx_all F` (the LSH self-join's candidate pairs at
plain cosine >= F). Every figure is on the held-out half of the dev set
(evaluate.held_out_paths): the pair score was fitted on the other half.

For every edited copy: is the pair (copy, original) a candidate at all (LSH
self-join at the floor, or a shared 16-bit quarter of the perceptual hash
over the 8 rotations and flips), what the pair score gives it, and whether it
clears the score threshold that pairwise precision 0.99 needs over all pairs
(t99). The oracle ceilings: the share of copies whose own pair to the
original scores >= t99, and the share joined to it by any path of pairs >= t99
through copies of the same original (what a perfect guard could group).
"""
import argparse
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))
import evaluate  # noqa: E402
import fit_score  # noqa: E402

ROOT = evaluate.ROOT


def norm(p):
    """Paths as this tree's cache/ spells them (a run may come from another tree)."""
    i = p.find("/cache/")
    return os.path.join(ROOT, p[i + 1:]) if i >= 0 else p


def weights():
    src = open(os.path.join(ROOT, "src", "score_table.h")).read()
    w = re.search(r"\{ ([-0-9.e, f]+) \} \}", src).group(1)
    return np.array([float(x.strip().rstrip("f")) for x in w.split(",")])


def dihedral_min(ph, has):
    """[n][n] smallest Hamming distance over the 8 variants; plain distance."""
    def pm(h):
        bits = ((h[:, None] >> np.arange(64, dtype=np.uint64)[None, :]) & np.uint64(1)).astype(np.float32)
        return 2 * bits - 1
    base = pm(ph)
    var = fit_score.variants(ph)
    d0 = np.rint((64 - base @ base.T) / 2).astype(np.int16)
    dmin = d0.copy()
    for k in range(1, 8):
        dmin = np.minimum(dmin, np.rint((64 - base @ pm(var[k]).T) / 2).astype(np.int16))
    return d0, dmin


def quarter_candidates(ph, has):
    """Pairs sharing a 16-bit quarter of the hash in some dihedral variant of one side."""
    var = fit_score.variants(ph)
    pairs = set()
    for q in range(4):
        base = {}
        for i in np.nonzero(has)[0]:
            base.setdefault(int((ph[i] >> np.uint64(16 * q)) & np.uint64(0xFFFF)), []).append(i)
        for k in range(8):
            for j in np.nonzero(has)[0]:
                key = int((var[k][j] >> np.uint64(16 * q)) & np.uint64(0xFFFF))
                for i in base.get(key, ()):
                    if i != j:
                        pairs.add((min(i, j), max(i, j)))
    return pairs


def t_at_precision(score, y, target):
    o = np.argsort(-score, kind="stable")
    yy, ss = y[o], score[o]
    prec = np.cumsum(yy) / np.arange(1, len(yy) + 1)
    end = np.r_[ss[1:] != ss[:-1], True]  # a threshold takes every pair of a tied score
    ok = np.nonzero((prec >= target) & end)[0]
    if not len(ok):
        return 1.0, 0.0
    k = ok.max()
    return float(score[o][k]), float(yy[: k + 1].sum() / yy.sum())


def components(n, ii, jj):
    parent = np.arange(n)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for a, b in zip(ii.tolist(), jj.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    return np.array([find(i) for i in range(n)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("join")
    ap.add_argument("--precision", type=float, default=0.99)
    ap.add_argument("--json")
    ap.add_argument("--md", help="also write the figures as Markdown")
    a = ap.parse_args()
    paths, v, stat, has, ph = fit_score.load(os.path.join(a.run, "all"))
    ids = [int(x.split("\t", 1)[0]) for x in open(os.path.join(a.run, "all.tsv"))]
    paths = [norm(p) for p in paths]
    t = evaluate.truth(a.run)
    t = {norm(k): x for k, x in t.items()}
    train = {norm(p) for p in evaluate.held_out_paths()}
    keep = [i for i, p in enumerate(paths) if p in t and p not in train]
    row = {ids[i]: k for k, i in enumerate(keep)}
    P = [paths[i] for i in keep]
    v, stat, has, ph = v[keep], stat[keep], has[keep], ph[keep]
    n = len(P)
    fam = np.array([t[p]["family"] for p in P])
    src = np.array([t[p]["source"] for p in P])
    print(f"{n} held-out images", file=sys.stderr)

    cos = np.minimum(v @ v.T, 1.0).astype(np.float32)
    d0, dmin = dihedral_min(ph, has)
    iu, ju = np.triu_indices(n, 1)
    c = cos[iu, ju]
    x = fit_score.features(c, stat[iu], stat[ju], has[iu], has[ju], d0[iu, ju], dmin[iu, ju])
    s = (1 / (1 + np.exp(-(x @ weights())))).astype(np.float32)
    y = fam[iu] == fam[ju]
    ok = y | (src[iu] != src[ju])  # two families cut from one file: ambiguous, left out
    S = np.zeros((n, n), np.float32)
    S[iu, ju] = s
    S = S + S.T
    t99, r99 = t_at_precision(s[ok], y[ok], a.precision)
    tc, rc = t_at_precision(c[ok], y[ok], a.precision)
    td = 64 - dmin[iu, ju]
    tdh, rdh = t_at_precision(td[ok].astype(np.float32), y[ok], a.precision)
    out = {"images": n, "precision_target": a.precision,
           "score_threshold": t99, "score_pair_recall": r99,
           "cosine_threshold": tc, "cosine_pair_recall": rc,
           "dihedral_phash_max_bits": int(64 - tdh), "dihedral_phash_pair_recall": rdh}
    for thr in (0.5, 0.9, 0.99):
        sel = ok & (s >= thr)
        out[f"precision_at_{thr}"] = float(y[sel].mean()) if sel.any() else None
        out[f"pair_recall_at_{thr}"] = float((y & sel).sum() / (y & ok).sum())

    # candidates
    lsh = set()
    for ln in open(a.join):
        ia, ib, _ = ln.split("\t")
        ra, rb = row.get(int(ia)), row.get(int(ib))
        if ra is not None and rb is not None:
            lsh.add((min(ra, rb), max(ra, rb)))
    quart = quarter_candidates(ph, has)

    # per copy
    at = {p: i for i, p in enumerate(P)}
    above = S >= t99
    fi = np.nonzero(np.triu(above & (fam[:, None] == fam[None, :]), 1))
    comp_fam = components(n, fi[0], fi[1])
    ai = np.nonzero(np.triu(above, 1))
    comp_all = components(n, ai[0], ai[1])
    kinds = {}
    for p in P:
        m = t[p]
        if "orig" not in m:
            continue
        o = at.get(norm(evaluate.orig_path(m["orig"])))
        if o is None:
            continue
        i = at[p]
        pr = (min(i, o), max(i, o))
        k = kinds.setdefault(evaluate.category(m), {"n": 0, "lsh": 0, "hashq": 0, "cand": 0, "direct": 0,
                                                    "path": 0, "cc": 0, "score": []})
        k["n"] += 1
        k["lsh"] += pr in lsh
        k["hashq"] += pr in quart
        k["cand"] += pr in lsh or pr in quart
        k["direct"] += bool(S[i, o] >= t99)
        k["path"] += bool(comp_fam[i] == comp_fam[o])
        k["cc"] += bool(comp_all[i] == comp_all[o])
        k["score"].append(float(S[i, o]))
    tot = {f: sum(k[f] for k in kinds.values()) for f in ("n", "lsh", "hashq", "cand", "direct", "path", "cc")}
    out["copies"] = {f: tot[f] / tot["n"] for f in tot if f != "n"}
    out["copies"]["n"] = tot["n"]
    out["kinds"] = {c: {**{f: k[f] / k["n"] for f in k if f not in ("n", "score")}, "n": k["n"],
                        "median_score": float(np.median(k["score"]))} for c, k in sorted(kinds.items())}
    # what plain components at t99 cost in precision (no guard)
    g = {}
    for i in range(n):
        g.setdefault(comp_all[i], []).append(i)
    tp = fp = 0
    for mem in g.values():
        if len(mem) < 2:
            continue
        mem = np.array(mem)
        U = np.triu(np.ones((len(mem), len(mem)), bool), 1)
        same = fam[mem][:, None] == fam[mem][None, :]
        diff = ~same & (src[mem][:, None] != src[mem][None, :])
        tp += int((same & U).sum())
        fp += int((diff & U).sum())
    out["components_at_t99_precision"] = tp / (tp + fp) if tp + fp else 1.0

    ph_txt = f"dihedral pHash <= {64 - tdh:.0f} bits ({rdh:.3f})" if rdh > 0 else "dihedral pHash: no distance"
    print(f"pair score: precision {a.precision} needs score >= {t99:.4f} (pair recall {r99:.3f}); "
          f"cosine >= {tc:.4f} ({rc:.3f}); {ph_txt}")
    for thr in (0.5, 0.9, 0.99):
        print(f"  score >= {thr}: precision {out[f'precision_at_{thr}']:.4f}, pair recall {out[f'pair_recall_at_{thr}']:.4f}")
    cp = out["copies"]
    print(f"{tot['n']} copies: candidate {cp['cand']:.3f} (LSH {cp['lsh']:.3f}, hash quarter {cp['hashq']:.3f}); "
          f"own pair >= t99 {cp['direct']:.3f}; path through its family >= t99 {cp['path']:.3f}; "
          f"plain components at t99 {cp['cc']:.3f} (pair precision {out['components_at_t99_precision']:.4f})")
    print(f"{'kind':22} {'n':>4} {'cand':>6} {'lsh':>6} {'hashq':>6} {'direct':>6} {'path':>6} {'cc':>6} {'median':>7}")
    for c_, k in out["kinds"].items():
        print(f"{c_:22} {k['n']:4d} {k['cand']:6.3f} {k['lsh']:6.3f} {k['hashq']:6.3f} {k['direct']:6.3f} "
              f"{k['path']:6.3f} {k['cc']:6.3f} {k['median_score']:7.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write("# Where dedup loses edited copies\n\n"
                    f"`/usr/bin/python3 bench/quality/loss.py RUNDIR JOIN.tsv --md ...` (JOIN.tsv: `bench_vectors join "
                    f"RUNDIR/idx_all 0.3`). Held-out half of the dev set ({n} images, {tot['n']} edited copies).\n\n"
                    f"Pairwise precision {a.precision} over all pairs needs a pair score >= {t99:.4f} "
                    f"(pair recall {r99:.3f}); the plain cosine needs >= {tc:.4f} (pair recall {rc:.3f}); "
                    f"{ph_txt}.\n\n")
            f.write("| score >= | precision | pair recall |\n|---:|---:|---:|\n")
            for thr in (0.5, 0.9, 0.99):
                f.write(f"| {thr} | {out[f'precision_at_{thr}']:.4f} | {out[f'pair_recall_at_{thr}']:.4f} |\n")
            f.write("\nPer copy: **cand**, the pair (copy, original) is a candidate (the LSH self-join at cosine >= "
                    "0.3, or a shared 16-bit quarter of the hash in some rotation or flip: **lsh**, **hashq**); "
                    "**direct**, it scores >= the 0.99-precision threshold (the oracle ceiling of a perfect "
                    "grouping of direct pairs); **path**, some chain of such pairs through copies of the same "
                    "original joins them (the ceiling of a perfect chaining guard); **cc**, plain connected "
                    f"components at that threshold join them (their pairwise precision: "
                    f"{out['components_at_t99_precision']:.4f}).\n\n")
            f.write("| kind | copies | cand | lsh | hashq | direct | path | cc | median score |\n"
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
            f.write(f"| **all** | {tot['n']} | {cp['cand']:.3f} | {cp['lsh']:.3f} | {cp['hashq']:.3f} | "
                    f"{cp['direct']:.3f} | {cp['path']:.3f} | {cp['cc']:.3f} | |\n")
            for c_, k in out["kinds"].items():
                f.write(f"| {c_} | {k['n']} | {k['cand']:.3f} | {k['lsh']:.3f} | {k['hashq']:.3f} | {k['direct']:.3f} | "
                        f"{k['path']:.3f} | {k['cc']:.3f} | {k['median_score']:.3f} |\n")


if __name__ == "__main__":
    main()
