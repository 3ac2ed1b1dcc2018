#!/usr/bin/python3
"""Fits the pair score (include/neardup/score.h) on labelled pairs of the dev set.

  fit_score.py RUNDIR/PREFIX --checksum HEX [--write src/score_table.h]

PREFIX is a `bench_vectors dump` of an index holding the dev set's references
and edited copies (PREFIX.f32, .tsv, .side.tsv). Pairs: for every image its 40
nearest images by cosine, every image whose perceptual hash is within 12 bits
over the 8 rotations and flips, and every pair of one family (an original and
its copies); a pair is positive when both images come from one original.
Pairs of two different families cut from the same package file are left out,
as the quality benchmark does.

Split by family: originals with an even index (and their copies) and
distractors with an even position in the manifest train; odd ones are held
out; pairs across the split are not used. Every figure printed is on the
held-out half. The model is a logistic regression over the features of
nd_score_features (src/score.c; replicated here), fitted by Newton's method
with a small L2 penalty.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
DEVSET = os.path.join(ROOT, "cache", "dev", "devset")
sys.path.insert(0, os.path.join(ROOT, "bench", "corpus"))
import same_source  # noqa: E402  (shared with bench/quality/evaluate.py)
NFEAT = 10
FAR, NEAR = 24, 8
ODD_V = 0xAAAAAAAAAAAAAAAA
ODD_U = 0xFF00FF00FF00FF00


def transpose_bits(h):
    out = np.zeros_like(h)
    for u in range(8):
        for v in range(8):
            out |= ((h >> np.uint64(8 * u + v)) & np.uint64(1)) << np.uint64(8 * v + u)
    return out


def variants(h):
    """[8][n] uint64: nd_phash_variant(h, k)."""
    t = transpose_bits(h)
    out = []
    for k in range(8):
        x = t.copy() if k & 4 else h.copy()
        if k & 1:
            x ^= np.uint64(ODD_V)
        if k & 2:
            x ^= np.uint64(ODD_U)
        out.append(x)
    return out


def popcount(x):
    x = x.copy()
    c = np.zeros(x.shape, np.int64)
    for s in range(0, 64, 8):
        c += POP8[((x >> np.uint64(s)) & np.uint64(255)).astype(np.int64)]
    return c


POP8 = np.array([bin(i).count("1") for i in range(256)], np.int64)


def features(cos, sa, sb, hasa, hasb, d, dd):
    f = np.zeros((len(cos), NFEAT), np.float64)
    cos = cos.astype(np.float32)
    f[:, 0] = 1
    f[:, 1] = cos
    f[:, 2] = np.maximum(0, cos - np.float32(0.5))
    f[:, 3] = np.maximum(0, cos - np.float32(0.7))
    f[:, 4] = np.maximum(0, cos - np.float32(0.9))
    f[:, 5] = 0.5 * (sa + sb)
    both = hasa & hasb
    f[:, 6] = np.where(both, np.maximum(0, FAR - d) / FAR, 0)
    f[:, 7] = np.where(both, np.maximum(0, FAR - dd) / FAR, 0)
    f[:, 8] = np.where(both, np.maximum(0, NEAR - dd) / NEAR, 0)
    f[:, 9] = np.where(both, 0, 1)
    return f


def fit_logistic(x, y, l2=1e-3, iters=50):
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        g = x.T @ (p - y) + l2 * len(y) * np.r_[0, w[1:]]
        hdiag = p * (1 - p)
        h = (x * hdiag[:, None]).T @ x + l2 * len(y) * np.diag(np.r_[0, np.ones(len(w) - 1)])
        step = np.linalg.solve(h, g)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


RAW = 4  # raw features of the trees: cos, mean statistic, hash distance, dihedral distance


def raw_features(cos, sa, sb, hasa, hasb, d, dd):
    both = hasa & hasb
    return np.stack([cos.astype(np.float32), (0.5 * (sa + sb)).astype(np.float32),
                     np.where(both, d, 64).astype(np.float32), np.where(both, dd, 64).astype(np.float32)], 1)


def best_split(x, g, h, idx, cands, lam, min_h):
    """The (feature, threshold, gain) of the split of rows idx that most lowers
    the second-order loss, left = x <= threshold."""
    G, H = g[idx].sum(), h[idx].sum()
    base = G * G / (H + lam)
    best = (None, None, 0.0)
    for f in range(x.shape[1]):
        xs = x[idx, f]
        for t in cands[f]:
            m = xs <= t
            hl = h[idx][m].sum()
            hr = H - hl
            if hl < min_h or hr < min_h:
                continue
            gl = g[idx][m].sum()
            gr = G - gl
            gain = gl * gl / (hl + lam) + gr * gr / (hr + lam) - base
            if gain > best[2]:
                best = (f, t, gain)
    return best


def fit_trees(x, y, ntrees=150, rate=0.15, lam=1.0, min_h=5.0):
    """Gradient-boosted trees of depth 2 under the logistic loss (Newton
    leaves). Returns base, [(f0, t0, f1, t1, f2, t2, leaf[4])]: the root
    splits on (f0, t0); x <= t0 goes to (f1, t1), else to (f2, t2); leaves
    in order left-left, left-right, right-left, right-right."""
    cands = []
    for f in range(x.shape[1]):
        q = np.unique(np.quantile(x[:, f], np.linspace(0.01, 0.99, 48)).astype(np.float32))
        cands.append(q)
    pr = y.mean()
    base = float(np.log(pr / (1 - pr)))
    z = np.full(len(y), base)
    trees = []
    allidx = np.arange(len(y))
    for _ in range(ntrees):
        p = 1 / (1 + np.exp(-z))
        g, h = p - y, p * (1 - p)
        f0, t0, _ = best_split(x, g, h, allidx, cands, lam, min_h)
        if f0 is None:
            break
        left = allidx[x[:, f0] <= t0]
        right = allidx[x[:, f0] > t0]
        node = [f0, t0]
        leaves = []
        for part in (left, right):
            f1, t1, _ = best_split(x, g, h, part, cands, lam, min_h)
            if f1 is None:
                f1, t1 = 0, np.float32(np.inf)
            node += [f1, t1]
            for sub in (part[x[part, f1] <= t1], part[x[part, f1] > t1]):
                leaves.append(-rate * g[sub].sum() / (h[sub].sum() + lam) if len(sub) else 0.0)
        trees.append((node[0], node[1], node[2], node[3], node[4], node[5], leaves))
        z += predict_trees(0.0, [trees[-1]], x)
    return base, trees


def predict_trees(base, trees, x):
    z = np.full(len(x), base)
    for f0, t0, f1, t1, f2, t2, leaf in trees:
        l = x[:, f0] <= t0
        a = np.where(x[:, f1] <= t1, leaf[0], leaf[1])
        b = np.where(x[:, f2] <= t2, leaf[2], leaf[3])
        z += np.where(l, a, b)
    return z


def load(prefix):
    tsv = [l.rstrip("\n").split("\t", 1) for l in open(prefix + ".tsv")]
    paths = [p for _, p in tsv]
    v = np.fromfile(prefix + ".f32", np.float32).reshape(len(paths), -1)
    side = [l.rstrip("\n").split("\t") for l in open(prefix + ".side.tsv")]
    stat = np.array([float(s[1]) if s[1] != "-" else 0.0 for s in side])
    has = np.array([s[2] != "-" for s in side])
    ph = np.array([int(s[2], 16) if s[2] != "-" else 0 for s in side], np.uint64)
    return paths, v, stat, has, ph


def truth():
    t = {}
    nd = 0
    rows = [r.split("\t") for r in open(os.path.join(DEVSET, "manifest.tsv")).read().splitlines()[1:]]
    # originals that are one picture are one family (bench/corpus/same_source.tsv)
    alias = same_source.aliases({int(o): src for role, _, o, _, _, src in rows if role == "ref" and int(o) >= 0})
    for role, path, orig, kind, _params, src in rows:
        p = os.path.realpath(os.path.join(DEVSET, path))
        o = int(orig)
        if o >= 0:
            t[p] = (f"o{alias[o]}", o % 2, kind, src)
        else:
            t[p] = (p, nd % 2, "distractor", src)
            nd += 1
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("prefix")
    ap.add_argument("--checksum", required=True)
    ap.add_argument("--write")
    ap.add_argument("--knn", type=int, default=40)
    ap.add_argument("--trees", type=int, default=0, help="also fit N boosted trees, for comparison")
    a = ap.parse_args()
    paths, v, stat, has, ph = load(a.prefix)
    t = truth()
    keep = [i for i, p in enumerate(paths) if os.path.realpath(p) in t]
    info = [t[os.path.realpath(paths[i])] for i in keep]
    v, stat, has, ph = v[keep], stat[keep], has[keep], ph[keep]
    n = len(keep)
    fam = np.array([x[0] for x in info])
    half = np.array([x[1] for x in info])
    kind = np.array([x[2] for x in info])
    src = np.array([x[3] for x in info])
    print(f"{n} images", file=sys.stderr)
    cos = v @ v.T
    np.fill_diagonal(cos, -2)
    pairs = set()
    nn = np.argpartition(-cos, a.knn, axis=1)[:, : a.knn]
    for i in range(n):
        for j in nn[i]:
            pairs.add((min(i, j), max(i, j)))
    var = variants(ph)
    dmin = np.full((n, n), 64, np.int64)
    for k in range(8):
        # Hamming via +-1 products: d = (64 - a.b) / 2
        def pm(h):
            bits = ((h[:, None] >> np.arange(64, dtype=np.uint64)[None, :]) & np.uint64(1)).astype(np.float32)
            return 2 * bits - 1
        dk = np.rint((64 - pm(ph) @ pm(var[k]).T) / 2).astype(np.int64)
        dmin = np.minimum(dmin, dk)
    ii, jj = np.nonzero(np.triu(dmin <= 12, 1))
    pairs.update(zip(ii.tolist(), jj.tolist()))
    byfam = {}
    for i, f in enumerate(fam):
        byfam.setdefault(f, []).append(i)
    for members in byfam.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                pairs.add((members[x], members[y]))
    pi = np.array([p[0] for p in pairs])
    pj = np.array([p[1] for p in pairs])
    y = (fam[pi] == fam[pj]).astype(np.float64)
    ok = (half[pi] == half[pj]) & ~((y == 0) & (src[pi] == src[pj]))
    pi, pj, y = pi[ok], pj[ok], y[ok]
    c = np.minimum(cos[pi, pj], 1.0)
    pmbits = lambda h: ((h[:, None] >> np.arange(64, dtype=np.uint64)[None, :]) & np.uint64(1))
    d = popcount(ph[pi] ^ ph[pj])
    dd = dmin[pi, pj]
    x = features(c, stat[pi], stat[pj], has[pi], has[pj], d, dd)
    tr = half[pi] == 0
    te = ~tr
    print(f"pairs: train {tr.sum()} ({int(y[tr].sum())} positive), held out {te.sum()} ({int(y[te].sum())} positive)",
          file=sys.stderr)
    w = fit_logistic(x[tr], y[tr])
    pl = 1 / (1 + np.exp(-(x @ w)))
    cmp = [("logistic", pl), ("cosine", c)]
    if a.trees:  # the alternative weighed against it: boosted trees of depth 2
        r = raw_features(c, stat[pi], stat[pj], has[pi], has[pj], d, dd)
        base, trees = fit_trees(r[tr], y[tr], ntrees=a.trees)
        cmp.append(("trees", 1 / (1 + np.exp(-predict_trees(base, trees, r)))))
    p = pl
    print("weights:", " ".join(f"{z:.8g}" for z in w))
    for name, q in cmp:
        o = np.argsort(-q[te])
        yy = y[te][o]
        prec = np.cumsum(yy) / np.arange(1, len(yy) + 1)
        ok99 = np.nonzero(prec >= 0.99)[0]
        r99 = yy[: ok99.max() + 1].sum() / yy.sum() if len(ok99) else 0
        print(f"{name}: recall at precision >= 0.99 (held out): {r99:.4f}")
    # held-out figures
    npos = y[te].sum()
    print("held-out (odd originals and distractors):")
    for thr in (0.5, 0.9, 0.99):
        sel = te & (p >= thr)
        prec = y[sel].mean() if sel.any() else float("nan")
        rec = y[sel].sum() / npos
        print(f"  score >= {thr}: precision {prec:.4f}, recall {rec:.4f} ({int(sel.sum())} pairs)")
    # calibration
    bins = [0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0001]
    print("  calibration (predicted range: mean predicted, observed share, pairs):")
    for lo, hi in zip(bins[:-1], bins[1:]):
        sel = te & (p >= lo) & (p < hi)
        if sel.any():
            print(f"    [{lo}, {min(hi, 1)}): {p[sel].mean():.3f} {y[sel].mean():.3f} {int(sel.sum())}")
    # copy pairs (original with copy) by kind, at 0.5
    orig_kind = kind[pi] == "original"
    orig_kind2 = kind[pj] == "original"
    print("  copy found with its original at score >= 0.5, by kind:")
    for k in sorted(set(kind)):
        if k in ("original", "distractor"):
            continue
        sel = te & (y == 1) & ((orig_kind & (kind[pj] == k)) | (orig_kind2 & (kind[pi] == k)))
        if sel.any():
            print(f"    {k}: {(p[sel] >= 0.5).mean():.3f} of {int(sel.sum())}")
    if a.write:
        with open(a.write, "w") as f:
            f.write("/* neardup — private: the fitted pair-score weights (neardup/score.h),\n"
                    " * written by models/fit_score.py; do not edit. */\n")
            f.write("static const nd_score_model nd_score_table[] = {\n")
            f.write(f"\t{{ 0x{int(a.checksum, 16):016x}ull,\n")
            f.write(f"\t  \"logistic, dev set pairs of even originals/distractors ({int(tr.sum())} pairs)\",\n")
            lit = lambda z: (lambda t: t if any(ch in t for ch in ".e") else t + ".0")(f"{z:.8g}") + "f"
            f.write("\t  { " + ", ".join(lit(z) for z in w) + " } },\n")
            f.write("};\n")


if __name__ == "__main__":
    main()
