#!/usr/bin/python3
"""Scores one run of bench/suite_quality.sh and writes its report.

  evaluate.py extract-queries RUNDIR   query vectors (RUNDIR/all dump, in
                                       queries.txt order) -> RUNDIR/qvecs.f32
  evaluate.py report RUNDIR --mode quick|full --out bench/results/quality
                                       -> OUT.json, OUT.md, OUT-*.png

Methods, all on the same files:
  neardup       the CLI's results (`neardup query --format jsonl -k 10`), its
                `similarity` (calibrated when the model has a calibration)
  neardup-raw   the plain cosine, when the CLI reports it (`raw_similarity`
                or `--score raw`); absent from older runs
  exact         brute force over neardup's own stored (float16) embeddings,
                read from the index by bench/bench_vectors: the index's ceiling
  phash         64-bit DCT perceptual hash (models/train/eval.py's), score
                1 - Hamming/64
  findimagedupes  Debian's, dedup mode only (it has no query mode)
Query-mode metrics (DISC21 style, models/train/muap.py, shared with
models/train/eval.py): every query's top
10 references with scores are pooled and ranked by score; muAP is the area
under that precision-recall curve with recall over all queries; R@P90 the
recall where precision is still >= 0.9; R@1 / R@10: the query's original is
the first / among the ten results.
Dedup metrics: pairs of images put in one group against the truth (an
original and all its edited copies are one family; distractors and tiles are
alone; pairs of different families cut from the same package file are
ignored); wrong groups = groups holding more than one family; chained wrong
pairs = wrong pairs whose two images were never directly matched (neardup:
neither is the group's kept image; union-find baselines: their own score is
below the threshold).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import time

import numpy as np

# `neardup query`'s probe count (src/cli/cli.h CLI_DEFAULT_PROBES), marked in the LSH table
CLI_PROBES = 5120

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
import muap as muap_lib  # noqa: E402  (shared with models/train/eval.py)
sys.path.insert(0, os.path.join(ROOT, "bench", "corpus"))
import same_source  # noqa: E402  (shared with models/fit_score.py)
DEVSET = os.path.join(ROOT, "cache", "dev", "devset")
CORPUS = os.path.join(ROOT, "cache", "quality", "corpus.tsv")
SWEEP = ["0.3", "0.4", "0.5", "0.6", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]
FID_T = ["80", "85", "90", "95"]
PH_T = [2, 4, 6, 8, 10, 12, 14, 16]  # Hamming-distance thresholds for pHash dedup


def lines(path):
    with open(path) as f:
        return [x.rstrip("\n") for x in f if x.strip()]


def load_dump(prefix):
    tsv = lines(prefix + ".tsv")
    paths = [x.split("\t", 1)[1] for x in tsv]
    v = np.fromfile(prefix + ".f32", np.float32)
    return paths, v.reshape(len(paths), -1) if paths else v.reshape(0, 1)


# ---------------------------------------------------------------- truth
def truth(run):
    """path -> dict(family, kind, strength, set, source)."""
    t = {}
    rows = [r.split("\t") for r in lines(os.path.join(DEVSET, "manifest.tsv"))[1:]]
    # originals that are one picture (bench/corpus/same_source.tsv) are one family
    alias = same_source.aliases({int(o): src for role, _, o, _, _, src in rows if role == "ref" and int(o) >= 0})
    for role, path, orig, kind, _params, src in rows:
        p = os.path.join(DEVSET, path)
        o = int(orig)
        if role == "ref":
            t[p] = {"family": f"o{alias[o]}" if o >= 0 else p, "kind": kind, "strength": "-", "set": kind,
                    "source": src}
        else:
            t[p] = {"family": f"o{alias[o]}", "kind": kind, "strength": "dev", "set": "dev", "source": src, "orig": o}
    for r in lines(CORPUS)[1:]:
        st, path, group, kind, strength, src = r.split("\t")
        if st == "strength":
            t[path] = {"family": f"o{alias[int(group)]}", "kind": kind, "strength": strength, "set": "strength",
                       "source": src, "orig": int(group)}
        elif st == "tile":
            t[path] = {"family": path, "kind": "tile", "strength": "-", "set": "tile", "source": src}
        elif st == "natural":
            t[path] = {"family": "n:" + group, "kind": "natural", "strength": "-", "set": "natural", "source": src}
        elif st == "hardneg":  # each look-alike is its own family; its group is the look-alike family
            t[path] = {"family": path, "kind": "hardneg", "strength": "-", "set": "hardneg", "source": src,
                       "lookalike": group}
    return t


def category(m):
    return m["kind"] if m["strength"] == "dev" else f"{m['kind']}/{m['strength']}"


def orig_path(o):
    return os.path.join(DEVSET, "refs", f"o_{o:05d}.png")


# ---------------------------------------------------------------- query mode
def qmetrics(results, gt, topk=10):
    """results: list (per query) of [(ref, score)] best first; gt: list of the
    correct ref. Returns metrics and the PR curve."""
    nq = len(gt)
    if nq == 0:
        return {"queries": 0}, []
    scores, correct = [], []
    r1 = r10 = 0
    for res, g in zip(results, gt):
        res = res[:topk]
        if res and res[0][0] == g:
            r1 += 1
        if any(p == g for p, _ in res):
            r10 += 1
        for p, s in res:
            scores.append(s)
            correct.append(p == g)
    scores = np.asarray(scores, np.float64)
    correct = np.asarray(correct, bool)
    prec, rec, thr = muap_lib.pooled_pr(scores, correct, nq)
    ap = muap_lib.muap(prec, rec)
    r90 = muap_lib.recall_at_precision(prec, rec, 0.9)
    ok = prec >= 0.9
    # operating point: the lowest threshold keeping precision >= 0.9
    t90 = float(thr[ok][np.argmax(rec[ok])]) if ok.any() else None
    step = max(1, len(rec) // 400)
    curve = [(float(rec[i]), float(prec[i])) for i in range(0, len(rec), step)]
    if len(rec):
        curve.append((float(rec[-1]), float(prec[-1])))
    return {"muAP": ap, "R@P90": r90, "R@1": r1 / nq, "R@10": r10 / nq, "queries": nq,
            "threshold@P90": t90}, curve


def read_query_jsonl(path, field):
    out = {}
    for ln in lines(path):
        o = json.loads(ln)
        res = [(r["path"], float(r[field])) for r in o["results"] if field in r]
        if o["results"] and not res:
            return None
        out[o["query"]] = res
    return out


def phash_all(paths, cache):
    """64-bit DCT pHash of every path (cached by path, size and mtime)."""
    import eval as E  # models/train/eval.py: the same hash the model card uses
    from PIL import Image
    old = {}
    if os.path.exists(cache):
        z = np.load(cache, allow_pickle=False)
        for k, b in zip(z["keys"], z["bits"]):
            old[str(k)] = b
    keys, bits, todo = [], [], []
    for p in paths:
        st = os.stat(p)
        k = f"{p}|{st.st_size}|{st.st_mtime_ns}"
        keys.append(k)
        bits.append(old.get(k))
        if bits[-1] is None:
            todo.append(len(keys) - 1)
    t0 = time.time()
    if todo:
        g = np.zeros((len(todo), 32, 32), np.uint8)
        for j, i in enumerate(todo):
            im = E.decode_rgb(paths[i])
            g[j] = np.asarray(im.convert("L").resize((32, 32), Image.BOX))
        hb = E.phash_bits(g)
        for j, i in enumerate(todo):
            bits[i] = hb[j]
        np.savez(cache, keys=np.array(keys), bits=np.stack(bits))
    dt = time.time() - t0
    return np.stack(bits).astype(bool), len(todo), dt


def topk_by_sim(qm, rm, refs, k, block=1024):
    out = []
    for a in range(0, len(qm), block):
        s = qm[a:a + block] @ rm.T
        idx = np.argpartition(-s, min(k, s.shape[1]) - 1, axis=1)[:, :k]
        for i in range(len(idx)):
            ii = idx[i][np.argsort(-s[i, idx[i]], kind="stable")]
            out.append([(refs[j], float(s[i, j])) for j in ii])
    return out


def ham_sim(qb, rb):
    q = qb.astype(np.float32)
    r = rb.astype(np.float32)
    return 1.0 - (q @ (1 - r).T + (1 - q) @ r.T) / 64.0


# ---------------------------------------------------------------- dedup
def read_dedup_jsonl(path):
    groups = []
    for ln in lines(path):
        o = json.loads(ln)
        groups.append((o["keep"], [m["path"] for m in o["members"]]))
    return groups


def read_fid(path):
    return [(None, ln.split(" ")) for ln in lines(path)]


def pair_eval(groups, items, t, direct_fn=None):
    """groups: [(keeper or None, [paths])]; items: the universe; t: truth.
    direct_fn(paths) -> [m][m] bool: pairs the method matched directly (for
    union-find baselines); with a keeper, the direct pairs are the keeper's."""
    ids = {}

    def num(x):
        return ids.setdefault(x, len(ids))
    fam = {p: num(("f", t[p]["family"])) for p in items}
    src = {p: num(("s", t[p]["source"])) for p in items}
    lka = {p: (num(("l", t[p]["lookalike"])) if t[p].get("lookalike") else -1) for p in items}
    sizes = {}
    for p in items:
        sizes[fam[p]] = sizes.get(fam[p], 0) + 1
    truth_pairs = sum(n * (n - 1) // 2 for n in sizes.values())
    tp = fp = chained = wrong_groups = lookalike = 0
    seen = set()
    known = direct_fn is not None or any(k is not None for k, _ in groups)
    for keep, mem in groups:
        mem = [p for p in mem if p in fam and p not in seen]
        seen.update(mem)
        if len(mem) < 2:
            continue
        f = np.array([fam[p] for p in mem])
        sr = np.array([src[p] for p in mem])
        lk = np.array([lka[p] for p in mem])
        U = np.triu(np.ones((len(mem), len(mem)), bool), 1)
        same = f[:, None] == f[None, :]
        if len(set(f.tolist())) > 1:
            wrong_groups += 1
        tp += int((same & U).sum())
        wrong = ~same & (sr[:, None] != sr[None, :]) & U  # same package file: ambiguous, ignored
        fp += int(wrong.sum())
        lookalike += int((wrong & (lk[:, None] == lk[None, :]) & (lk[:, None] >= 0)).sum())
        if keep is not None:
            k = np.array([p == keep for p in mem])
            chained += int((wrong & ~(k[:, None] | k[None, :])).sum())
        elif direct_fn is not None:
            chained += int((wrong & ~direct_fn(mem)).sum())
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / truth_pairs if truth_pairs else 1.0
    return {"precision": prec, "recall": rec, "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
            "groups": len(groups), "wrong_groups": wrong_groups, "wrong_pairs": fp,
            "chained_wrong_pairs": chained if known else None,
            "lookalike_pairs_merged": lookalike, "true_pairs": truth_pairs, "found_pairs": tp}


def copy_recall(groups, items, t):
    """Per category: fraction of edited copies grouped with their original."""
    where = {}
    for gi, (_, mem) in enumerate(groups):
        for p in mem:
            where.setdefault(p, gi)
    tot, hit = {}, {}
    for p in items:
        m = t[p]
        if "orig" not in m:
            continue
        c = category(m)
        tot[c] = tot.get(c, 0) + 1
        g = where.get(p)
        if g is not None and where.get(orig_path(m["orig"])) == g:
            hit[c] = hit.get(c, 0) + 1
    return {c: hit.get(c, 0) / tot[c] for c in tot}


def union_find_groups(n, pairs):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    g = {}
    for i in range(n):
        g.setdefault(find(i), []).append(i)
    return [m for m in g.values() if len(m) > 1]


def pairs_at(mat_fn, n, thr, block=2048):
    """All pairs (i<j) with score >= thr, scores from mat_fn(a0, a1) -> [a1-a0][n]."""
    out = []
    for a in range(0, n, block):
        s = mat_fn(a, min(n, a + block))
        ii, jj = np.nonzero(s >= thr)
        ii = ii + a
        keep = jj > ii
        out.extend(zip(ii[keep].tolist(), jj[keep].tolist()))
    return out


def held_out_paths():
    """The dev set's held-out half (models/fit_score.py's split): every image
    but the training half's (originals with an even index with all their
    copies, distractors at an even position in the manifest). The pair score
    was fitted on the training half only."""
    train, nd = set(), 0
    for r in lines(os.path.join(DEVSET, "manifest.tsv"))[1:]:
        role, path, orig, *_ = r.split("\t")
        o = int(orig)
        if (o >= 0 and o % 2 == 0) or (o < 0 and nd % 2 == 0):
            train.add(os.path.join(DEVSET, path))
        nd += o < 0
    for r in lines(CORPUS)[1:]:
        st, path, group, *_ = r.split("\t")
        if st == "strength" and int(group) % 2 == 0:
            train.add(path)
    return train


def copy_share(groups, items, t):
    """Share of all edited copies among items grouped with their original."""
    where = {}
    for gi, (_, mem) in enumerate(groups):
        for p in mem:
            where.setdefault(p, gi)
    tot = hit = 0
    for p in items:
        m = t[p]
        if "orig" not in m:
            continue
        tot += 1
        g = where.get(p)
        hit += g is not None and where.get(orig_path(m["orig"])) == g
    return hit / tot if tot else 0.0


def keeper_rate(groups, t):
    """Of the groups holding an original, the share whose kept image is it."""
    tot = hit = 0
    for keep, mem in groups:
        origs = [p for p in mem if p in t and t[p]["kind"] == "original"]
        if not origs or keep is None:
            continue
        tot += 1
        hit += keep in origs
    return hit / tot if tot else None


def dihedral_bits(b):
    """[8][n][64] bool: the 8 rotations and flips of 64-bit DCT hashes
    (bit 8u+v), as src/phash.c derives them: transposition, and the bits of
    odd horizontal / vertical frequency inverted by a mirror."""
    n = len(b)
    g = b.reshape(n, 8, 8)
    oddv = (np.arange(8) % 2 == 1)[None, None, :]
    oddu = (np.arange(8) % 2 == 1)[None, :, None]
    out = []
    for k in range(8):
        x = g.transpose(0, 2, 1) if k & 4 else g
        if k & 1:
            x = x ^ oddv
        if k & 2:
            x = x ^ oddu
        out.append(x.reshape(n, 64))
    return out


def dihedral_pairs(b, maxd, block=1024):
    """(i, j, d) for i < j with the smallest Hamming distance over the 8
    variants d <= maxd."""
    q = b.astype(np.float32)
    var = [v.astype(np.float32) for v in dihedral_bits(b)]
    I, J, D = [], [], []
    for a in range(0, len(b), block):
        qa = q[a:a + block]
        d = np.full((len(qa), len(b)), 64.0, np.float32)
        for v in var:
            d = np.minimum(d, qa @ (1 - v).T + (1 - qa) @ v.T)
        ii, jj = np.nonzero(d <= maxd + 0.5)
        ii = ii + a
        k = jj > ii
        I.append(ii[k])
        J.append(jj[k])
        D.append(np.rint(d[ii[k] - a, jj[k]]).astype(np.int32))
    return np.concatenate(I), np.concatenate(J), np.concatenate(D)


def keeper_groups(n, pairs, order):
    """neardup's non-chaining grouping applied to a baseline's pairs: in
    `order`, each ungrouped item keeps every ungrouped neighbour."""
    nb = [[] for _ in range(n)]
    for a, b in pairs:
        nb[a].append(b)
        nb[b].append(a)
    done = np.zeros(n, bool)
    groups = []
    for i in order:
        if done[i]:
            continue
        mem = [j for j in nb[i] if not done[j]]
        if mem:
            done[i] = True
            done[mem] = True
            groups.append((i, [i] + mem))
    return groups


# ---------------------------------------------------------------- report helpers
def read_time(run, name):
    p = os.path.join(run, name + ".time")
    if not os.path.exists(p):
        return None
    w = lines(p)[-1].split()
    return {"wall_s": float(w[0]), "user_s": float(w[1]), "sys_s": float(w[2]), "peak_rss_mib": int(w[3]) / 1024}


def f3(x):
    return "—" if x is None else f"{x:.3f}"


def git(*a):
    try:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""


def gnuplot(script):
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def extract_queries(run):
    paths, v = load_dump(os.path.join(run, "all"))
    at = {p: i for i, p in enumerate(paths)}
    q = lines(os.path.join(run, "queries.txt"))
    miss = [p for p in q if p not in at]
    if miss:
        raise SystemExit(f"evaluate: {len(miss)} queries not in the index, e.g. {miss[0]}")
    v[[at[p] for p in q]].astype(np.float32).tofile(os.path.join(run, "qvecs.f32"))


def report(run, mode, out):
    t0 = time.time()
    t = truth(run)
    refs = lines(os.path.join(run, "refs.txt"))
    queries = lines(os.path.join(run, "queries.txt"))
    natural = lines(os.path.join(run, "natural.txt"))
    # the index holds one name per file (a symlink to a file listed too is
    # the same image): every method is scored on the names it holds
    nat_held = {x.split("\t", 1)[1] for x in lines(os.path.join(run, "nat.tsv"))}
    res_nat_left_out = len(natural) - sum(p in nat_held for p in natural)
    natural = [p for p in natural if p in nat_held]
    dedupset = refs + queries
    res = {"mode": mode, "date": datetime.datetime.now().isoformat(timespec="seconds"),
           # BENCH_BUILD names the build when the binary is not the work tree's (e.g. a snapshot)
           "commit": os.environ.get("BENCH_BUILD") or (git("rev-parse", "--short", "HEAD") + (
               " + uncommitted src/ changes" if git("status", "--porcelain", "--", "src", "include") else "")),
           "load_before": open(os.path.join(run, "load_before")).read().strip(),
           "load_after": open(os.path.join(run, "load_after")).read().strip(),
           "corpus": {"references": len(refs), "queries": len(queries), "natural_files": len(natural)}}
    stats = dict(x.split("\t", 1) for x in lines(os.path.join(run, "stats_refs.txt")))
    res["model"] = {"name": stats.get("model"), "checksum": stats.get("model_checksum")}
    counts = {}
    for p in refs:
        counts[t[p]["kind"]] = counts.get(t[p]["kind"], 0) + 1
    res["corpus"]["reference_kinds"] = counts

    # ---- query mode
    gt = [orig_path(t[q]["orig"]) for q in queries]
    methods = {}
    nd = read_query_jsonl(os.path.join(run, "query.jsonl"), "similarity")
    methods["neardup"] = [nd.get(q, []) for q in queries]
    raw = read_query_jsonl(os.path.join(run, "query.jsonl"), "raw_similarity")
    if os.path.exists(os.path.join(run, "query_raw.jsonl")):
        raw2 = read_query_jsonl(os.path.join(run, "query_raw.jsonl"), "raw_similarity") or \
            read_query_jsonl(os.path.join(run, "query_raw.jsonl"), "similarity")
        raw = raw2 or raw
    if raw:
        methods["neardup-raw"] = [raw.get(q, []) for q in queries]
    rpaths, rv = load_dump(os.path.join(run, "refs"))
    qv = np.fromfile(os.path.join(run, "qvecs.f32"), np.float32).reshape(len(queries), -1)
    methods["exact"] = topk_by_sim(qv, rv, rpaths, 10)
    allp = sorted(set(dedupset) | set(natural))
    bits, nhashed, dt = phash_all(allp, os.path.join(ROOT, "cache", "quality", "phash.npz"))
    at = {p: i for i, p in enumerate(allp)}
    res["phash_hashing"] = {"images": nhashed, "seconds": dt, "images_per_s": nhashed / dt if dt > 0 else None,
                            "note": "Python (PIL decode + numpy DCT); images already hashed are cached"}
    rb = bits[[at[p] for p in refs]]
    qb = bits[[at[p] for p in queries]]
    ph = []
    for a in range(0, len(queries), 1024):
        s = ham_sim(qb[a:a + 1024], rb)
        idx = np.argsort(-s, axis=1, kind="stable")[:, :10]
        for i in range(len(idx)):
            ph.append([(refs[j], float(s[i, j])) for j in idx[i]])
    methods["phash"] = ph
    cats = {}
    for i, q in enumerate(queries):
        cats.setdefault(("dev set" if t[q]["set"] == "dev" else "strength set"), []).append(i)
        cats.setdefault(category(t[q]), []).append(i)
    qres, curves = {}, {}
    for m, r in methods.items():
        qres[m] = {}
        for c, ids in cats.items():
            qres[m][c], cv = qmetrics([r[i] for i in ids], [gt[i] for i in ids])
            if c == "dev set":
                curves[m] = cv
    res["query"] = qres
    lsh = [json.loads(x) for x in lines(os.path.join(run, "lsh.jsonl"))]
    res["lsh"] = lsh

    # ---- dedup mode (references + copies)
    groups_def = read_dedup_jsonl(os.path.join(run, "dedup_default.jsonl"))
    train = held_out_paths()
    held = [p for p in dedupset if p not in train]
    dd = {"neardup": {"default": pair_eval(groups_def, dedupset, t)}}
    dd["neardup"]["default"]["copy_recall"] = copy_recall(groups_def, dedupset, t)
    for s in SWEEP:
        dd["neardup"][s] = pair_eval(read_dedup_jsonl(os.path.join(run, f"dedup_{s}.jsonl")), dedupset, t)
    if os.path.exists(os.path.join(run, "dedup_raw_default.jsonl")):
        dd["neardup-raw"] = {"default": pair_eval(read_dedup_jsonl(os.path.join(run, "dedup_raw_default.jsonl")), dedupset, t)}
        for s in SWEEP:
            dd["neardup-raw"][s] = pair_eval(read_dedup_jsonl(os.path.join(run, f"dedup_raw_{s}.jsonl")), dedupset, t)
    dd["findimagedupes"] = {}
    for ft in FID_T:
        g = read_fid(os.path.join(run, f"fid_{ft}.txt"))
        dd["findimagedupes"][ft + "%"] = pair_eval(g, dedupset, t)
        if ft == "90":
            dd["findimagedupes"]["90%"]["copy_recall"] = copy_recall(g, dedupset, t)
    # baselines on the same pairs: exact cosine and pHash, chained (union-find) and keeper-based
    apaths, av = load_dump(os.path.join(run, "all"))
    ai = {p: i for i, p in enumerate(apaths)}
    E = av[[ai[p] for p in dedupset]]
    B = bits[[at[p] for p in dedupset]].astype(np.float32)
    n = len(dedupset)
    res_order = sorted(range(n), key=lambda i: dedupset[i])

    def cos_fn(a, b):
        return E[a:b] @ E.T

    def ph_fn(a, b):
        q = B[a:b]
        return 1.0 - (q @ (1 - B).T + (1 - q) @ B.T) / 64.0
    idx_of = {p: i for i, p in enumerate(dedupset)}
    dd["exact-chained"] = {}
    for s in ["0.7", "0.8", "0.9"]:
        pr = pairs_at(cos_fn, n, float(s))
        g = [(None, [dedupset[i] for i in m]) for m in union_find_groups(n, pr)]

        def direct(mem, s=float(s)):
            x = E[[idx_of[p] for p in mem]]
            return x @ x.T >= s
        dd["exact-chained"][s] = pair_eval(g, dedupset, t, direct)
    dd["phash"] = {}
    dd["phash-chained"] = {}
    for h in PH_T:
        thr = 1.0 - h / 64.0 - 1e-6
        pr = pairs_at(ph_fn, n, thr)
        g = [(None, [dedupset[i] for i in m]) for m in union_find_groups(n, pr)]

        def direct(mem, thr=thr):
            x = B[[idx_of[p] for p in mem]]
            return 1.0 - (x @ (1 - x).T + (1 - x) @ x.T) / 64.0 >= thr
        dd["phash-chained"][f"{h}b"] = pair_eval(g, dedupset, t, direct)
        kg = [(dedupset[k], [dedupset[i] for i in m]) for k, m in keeper_groups(n, pr, res_order)]
        dd["phash"][f"{h}b"] = pair_eval(kg, dedupset, t)
        if h == 10:
            dd["phash"]["10b"]["copy_recall"] = copy_recall(kg, dedupset, t)
    # the dihedral pHash (best over the 8 rotations and flips), chained by
    # union-find, at each threshold; its best F1 point is the baseline
    di, dj, dd_d = dihedral_pairs(bits[[at[p] for p in dedupset]], max(PH_T))
    dd["phash-dihedral"] = {}
    for h in PH_T:
        k = dd_d <= h
        g = [(None, [dedupset[i] for i in m]) for m in union_find_groups(n, zip(di[k].tolist(), dj[k].tolist()))]
        x = pair_eval(g, dedupset, t)
        x["copy_recall"] = copy_recall(g, dedupset, t)
        x["copy_share"] = copy_share(g, dedupset, t)
        x["held_out"] = {"copy_share": copy_share(g, held, t), **pair_eval(g, held, t)}
        dd["phash-dihedral"][f"{h}b"] = x
    dd["phash-dihedral-best"] = max(dd["phash-dihedral"], key=lambda h: dd["phash-dihedral"][h]["f1"])
    nd0 = dd["neardup"]["default"]
    nd0["copy_share"] = copy_share(groups_def, dedupset, t)
    nd0["keeper_rate"] = keeper_rate(groups_def, t)
    nd0["held_out"] = {"copy_share": copy_share(groups_def, held, t),
                       "copy_recall": copy_recall(groups_def, held, t), **pair_eval(groups_def, held, t)}
    res["dedup"] = dd

    # ---- natural families and look-alikes
    nt = {"neardup": {"default": pair_eval(read_dedup_jsonl(os.path.join(run, "nat_dedup_default.jsonl")), natural, t)}}
    for s in SWEEP:
        nt["neardup"][s] = pair_eval(read_dedup_jsonl(os.path.join(run, f"nat_dedup_{s}.jsonl")), natural, t)
    if os.path.exists(os.path.join(run, "nat_dedup_raw_default.jsonl")):
        nt["neardup-raw"] = {"default": pair_eval(read_dedup_jsonl(os.path.join(run, "nat_dedup_raw_default.jsonl")), natural, t)}
        for s in SWEEP:
            nt["neardup-raw"][s] = pair_eval(read_dedup_jsonl(os.path.join(run, f"nat_dedup_raw_{s}.jsonl")), natural, t)
    nt["findimagedupes"] = {ft + "%": pair_eval(read_fid(os.path.join(run, f"fid_nat_{ft}.txt")), natural, t)
                            for ft in FID_T}
    npaths, nv = load_dump(os.path.join(run, "nat"))
    ni = {p: i for i, p in enumerate(npaths)}
    NE = nv[[ni[p] for p in natural]]
    NB = bits[[at[p] for p in natural]]
    nn = len(natural)
    nt["phash"] = {}
    for h in PH_T:
        s = ham_sim(NB, NB)
        pr = [(i, j) for i in range(nn) for j in range(i + 1, nn) if s[i, j] >= 1.0 - h / 64.0 - 1e-6]
        kg = [(natural[k], [natural[i] for i in m]) for k, m in keeper_groups(nn, pr, sorted(range(nn), key=lambda i: natural[i]))]
        nt["phash"][f"{h}b"] = pair_eval(kg, natural, t)
    # pair ranking: AP of true natural pairs among all pairs, and the score of look-alike pairs
    fam = [t[p]["family"] for p in natural]
    look = [t[p].get("lookalike") for p in natural]
    iu = np.triu_indices(nn, 1)
    same = np.array([fam[i] == fam[j] for i, j in zip(*iu)])
    lk = np.array([look[i] is not None and look[i] == look[j] for i, j in zip(*iu)])
    pr_rank = {}
    for m, S in (("exact", NE @ NE.T), ("phash", ham_sim(NB, NB))):
        sc = S[iu]
        o = np.argsort(-sc, kind="stable")
        c = same[o]
        tp = np.cumsum(c)
        ap = float((tp[c] / (np.nonzero(c)[0] + 1)).sum() / max(1, c.sum()))
        pr_rank[m] = {"pair_AP": ap, "true_pairs": int(same.sum()), "lookalike_pairs": int(lk.sum()),
                      "lookalike_median_score": float(np.median(sc[lk])) if lk.any() else None,
                      "true_median_score": float(np.median(sc[same])) if same.any() else None}
    nt["pair_ranking"] = pr_rank
    nfam = {}
    for p in natural:
        if t[p]["set"] == "natural":
            nfam.setdefault(t[p]["family"], []).append(t[p]["source"].split("/")[0])
    res["natural"] = nt
    res["natural_corpus"] = {"families": len(nfam), "files": sum(len(v) for v in nfam.values()),
                             "packages": sorted({v[0] for v in nfam.values()}),
                             "lookalike_families": len({x for x in look if x}),
                             "lookalike_files": sum(1 for x in look if x),
                             "second_names_left_out": res_nat_left_out}

    # ---- speed
    sp = {}
    for name, cnt in (("ingest_refs", len(refs)), ("ingest_queries", len(queries)), ("ingest_natural", len(natural)),
                      ("query", len(queries)), ("dedup", len(dedupset)), ("fid", None), ("ingest_fidset", None)):
        tm = read_time(run, name)
        if tm:
            fs = os.path.join(run, "fidset.txt")
            cnt = cnt if cnt is not None else len(lines(fs) if os.path.exists(fs) else refs)
            tm["images"] = cnt
            tm["images_per_s"] = cnt / tm["wall_s"] if tm["wall_s"] > 0 else None
            tm["images_per_cpu_s"] = cnt / (tm["user_s"] + tm["sys_s"]) if tm["user_s"] + tm["sys_s"] > 0 else None
            sp[name] = tm
    lat = np.array([int(x) for x in lines(os.path.join(run, "latency_us.txt"))], np.float64) / 1000
    sp["query_fresh_process_ms"] = {"n": len(lat), "p50": float(np.percentile(lat, 50)),
                                    "p99": float(np.percentile(lat, 99))}
    ib = int(stats.get("file_bytes", "0"))
    sp["index_bytes_per_image"] = ib / max(1, int(stats.get("images", "1")))
    sp["index_file_bytes"] = ib
    res["speed"] = sp
    res["eval_seconds"] = time.time() - t0
    with open(out + ".json", "w") as f:
        json.dump(res, f, indent=1)
    plots(res, curves, out, os.path.join(run, "plotdata"))
    with open(out + ".md", "w") as f:
        f.write(markdown(res, out))


def plots(res, curves, out, d):
    os.makedirs(d, exist_ok=True)
    names = list(curves)
    for m in names:
        with open(os.path.join(d, f"pr_{m}.dat"), "w") as f:
            f.writelines(f"{r} {p}\n" for r, p in curves[m])
    base = os.path.basename(out)
    gnuplot(f"""set terminal pngcairo size 800,560 font ",11" noenhanced
set output "{out}-pr.png"
set title "Precision-recall, query mode: the dev set's {res['query']['neardup']['dev set']['queries']} edited copies"
set xlabel "recall"; set ylabel "precision"; set grid
set xrange [0:1]; set yrange [0:1.02]; set key bottom left
plot """ + ", ".join(f'"{d}/pr_{m}.dat" using 1:2 with lines lw 2 title "{m} (muAP {res["query"][m]["dev set"]["muAP"]:.3f})"'
                     for m in names) + "\n")
    cats = [c for c in res["query"]["neardup"] if c not in ("dev set", "strength set")]
    cats.sort(key=lambda c: (c.split("/")[0], c))
    ms = [m for m in ("neardup", "exact", "phash") if m in res["query"]]
    with open(os.path.join(d, "kinds.dat"), "w") as f:
        f.write("kind " + " ".join(ms) + "\n")
        for c in cats:
            f.write(f'"{c}" ' + " ".join(f"{res['query'][m][c]['R@1']:.4f}" for m in ms) + "\n")
    gnuplot(f"""set terminal pngcairo size 1400,560 font ",10" noenhanced
set output "{out}-kinds.png"
set title "Recall@1 per edit kind and strength (query mode)"
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set yrange [0:1.05]; set grid ytics; set xtics rotate by -60 scale 0; set key outside right top
set ylabel "recall@1"
plot for [i=2:{len(ms) + 1}] "{d}/kinds.dat" using i:xtic(1) title columnheader(i)
""")
    dd = res["dedup"]
    series = {"neardup": [dd["neardup"][s] for s in SWEEP]}
    if "neardup-raw" in dd:
        series["neardup --score raw"] = [dd["neardup-raw"][s] for s in SWEEP]
    series.update({"pHash (keeper)": [dd["phash"][f"{h}b"] for h in PH_T],
              "pHash (chained)": [dd["phash-chained"][f"{h}b"] for h in PH_T],
              "findimagedupes": [dd["findimagedupes"][ft + "%"] for ft in FID_T]})
    for i, (k, v) in enumerate(series.items()):
        with open(os.path.join(d, f"dd{i}.dat"), "w") as f:
            f.writelines(f"{x['recall']} {x['precision']}\n" for x in v)  # in threshold order
    gnuplot(f"""set terminal pngcairo size 800,560 font ",11" noenhanced
set output "{out}-dedup.png"
set title "Dedup mode: pairwise precision vs recall, each method's thresholds in order"
set xlabel "pairwise recall"; set ylabel "pairwise precision"; set grid
set xrange [0:*]; set yrange [0:1.02]; set key bottom left
plot """ + ", ".join(f'"{d}/dd{i}.dat" using 1:2 with linespoints lw 2 title "{k}"' for i, k in enumerate(series)) + "\n")
    res["plots"] = [f"{base}-pr.png", f"{base}-kinds.png", f"{base}-dedup.png"]


def markdown(res, out):
    base = os.path.basename(out)
    L = []
    a = L.append
    c = res["corpus"]
    q = res["query"]
    ms = [m for m in ("neardup", "neardup-raw", "exact", "phash") if m in q]
    a(f"# Quality benchmark ({res['mode']})\n")
    a(f"`make bench` (quick) / `make bench-full` → `sh bench/suite_quality.sh {res['mode']}`; commit {res['commit']}, "
      f"{res['date']}, model {res['model']['name']} ({res['model']['checksum']}). Machine load before / after: "
      f"`{res['load_before'].split('load average:')[-1].strip()}` / `{res['load_after'].split('load average:')[-1].strip()}` "
      f"(2 cores, shared; timed steps ran under the training pause of /work/quiet.sh when present).\n")
    a(f"Corpus: {c['references']} references ({', '.join(f'{v} {k}' for k, v in sorted(c['reference_kinds'].items()))}), "
      f"{c['queries']} queries (the dev set's 4250 edited copies over 17 kinds, then light/strong copies), "
      f"{res['natural_corpus']['files']} files in {res['natural_corpus']['families']} natural families "
      f"({', '.join(res['natural_corpus']['packages'])}) and {res['natural_corpus']['lookalike_files']} look-alikes in "
      f"{res['natural_corpus']['lookalike_families']} families. Methods: neardup = the CLI (`similarity`); "
      f"neardup-raw = its plain cosine (when the CLI reports one); exact = brute force over neardup's stored "
      f"embeddings (the index's ceiling); phash = 64-bit DCT pHash, 1 − Hamming/64; findimagedupes = Debian's (dedup only).\n")
    a("## Query mode\n")
    a("| set | " + " | ".join(f"{m} muAP | {m} R@P90 | {m} R@1 | {m} R@10" for m in ms) + " |")
    a("|---|" + "---:|" * (4 * len(ms)))
    for s in ("dev set", "strength set"):
        if s in q[ms[0]]:
            a(f"| {s} ({q[ms[0]][s]['queries']}) | " + " | ".join(
                f"{f3(q[m][s]['muAP'])} | {f3(q[m][s]['R@P90'])} | {f3(q[m][s]['R@1'])} | {f3(q[m][s]['R@10'])}"
                for m in ms) + " |")
    a("")
    a(f"Score at which neardup keeps precision ≥ 0.9 on the dev set: {f3(q['neardup']['dev set']['threshold@P90'])}.\n")
    a(f"![precision-recall]({base}-pr.png)\n")
    a("Per edit kind (dev set: one strength per kind as the model card; kind/light and kind/strong: the strength set):\n")
    a("| kind | n | " + " | ".join(f"{m} muAP | {m} R@1" for m in ms) + " | best |")
    a("|---|---:|" + "---:|" * (2 * len(ms)) + "---|")
    cats = sorted((k for k in q["neardup"] if k not in ("dev set", "strength set")), key=lambda k: (k.split("/")[0], k))
    for k in cats:
        best = max(("neardup", "phash"), key=lambda m: q[m][k]["muAP"])
        a(f"| {k} | {q['neardup'][k]['queries']} | " + " | ".join(
            f"{f3(q[m][k]['muAP'])} | {f3(q[m][k]['R@1'])}" for m in ms) + f" | {best} |")
    a("")
    a(f"![recall per kind]({base}-kinds.png)\n")
    a("## LSH recall (the index against exact search over the same stored embeddings)\n")
    a("`bench_vectors lsh`: every query's vector (as stored by ingest) against the reference index; recall@10 = "
      "share of the exact top-10 returned; ≥0.5 / ≥0.8 = the same for exact neighbours with cosine ≥ 0.5 / 0.8; "
      "latency = index lookup + re-rank only, one thread, best of 1.\n")
    a("| probes | recall@10 | recall@1 | recall (cos ≥ 0.5) | recall (cos ≥ 0.8) | re-ranked | p50 ms | p99 ms |")
    a("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for x in res["lsh"]:
        a(f"| {x['probes']}{' (query default)' if x['probes'] == CLI_PROBES else ''} | {x['recall_at_k']:.4f} | {x['recall_at_1']:.4f} | "
          f"{x['recall_sim_ge_0.5']:.4f} | {x['recall_sim_ge_0.8']:.4f} | {x['reranked_mean']:.0f} | {x['p50_ms']:.3f} | {x['p99_ms']:.3f} |")
    if res["lsh"]:
        a(f"\nExact brute force (C, one thread): {res['lsh'][0]['exact_ms_per_query']:.3f} ms per query over "
          f"{res['lsh'][0]['vectors']} vectors.\n")
    a("## Dedup mode (references + all copies in one index)\n")
    dd = res["dedup"]
    a("| method | threshold | groups | pairwise precision | pairwise recall | F1 | wrong groups | wrong pairs | of which chained |")
    a("|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    def row(name, thr, x):
        ch = "—" if x["chained_wrong_pairs"] is None else x["chained_wrong_pairs"]
        a(f"| {name} | {thr} | {x['groups']} | {x['precision']:.3f} | {x['recall']:.3f} | {x['f1']:.3f} | "
          f"{x['wrong_groups']} | {x['wrong_pairs']} | {ch} |")
    row("**neardup**", "default", dd["neardup"]["default"])
    for s in SWEEP:
        row("neardup", s, dd["neardup"][s])
    if "neardup-raw" in dd:
        row("**neardup --score raw**", "default", dd["neardup-raw"]["default"])
        for s in SWEEP:
            row("neardup --score raw", s, dd["neardup-raw"][s])
    for s in dd["exact-chained"]:
        row("exact cosine, chained (union-find)", s, dd["exact-chained"][s])
    for h in PH_T:
        row("pHash, keeper grouping", f"≤{h} bits", dd["phash"][f"{h}b"])
    for h in PH_T:
        row("pHash, chained (union-find)", f"≤{h} bits", dd["phash-chained"][f"{h}b"])
    for ft in FID_T:
        row("findimagedupes", ft + "%", dd["findimagedupes"][ft + "%"])
    a("\nPairs: all pairs inside a group. Truth: an original with all its copies is one family. \"Chained\": wrong "
      "pairs whose two images were never matched directly (neardup: neither is the kept image; union-find: the "
      "pair's own score is below the threshold). findimagedupes does not report scores or a kept image.\n")
    a(f"![dedup precision-recall]({base}-dedup.png)\n")
    cr = dd["neardup"]["default"]["copy_recall"]
    a("Copies grouped with their original, per kind (neardup at its default threshold, pHash keeper ≤10 bits, findimagedupes 90%):\n")
    a("| kind | neardup | pHash ≤10b | findimagedupes 90% |")
    a("|---|---:|---:|---:|")
    for k in sorted(cr, key=lambda k: (k.split("/")[0], k)):
        a(f"| {k} | {cr[k]:.3f} | {dd['phash']['10b']['copy_recall'].get(k, 0):.3f} | "
          f"{dd['findimagedupes']['90%']['copy_recall'].get(k, 0):.3f} |")
    a("\n### Dedup: copies grouped with their original\n")
    dh = dd["phash-dihedral"]
    bh = dd["phash-dihedral-best"]
    a("neardup at its default threshold against the baseline: the 64-bit pHash matched over its 8 rotations and "
      f"flips, grouped by union-find at its best-F1 threshold (≤{bh[:-1]} bits). \"Held out\": the half of the dev "
      "set the pair score was not fitted on (odd originals with their copies, odd distractors; "
      "models/fit_score.py). Keeper rate: of the groups holding an original, the share that keep it.\n")
    a("| method | set | copies with their original | pairwise precision | pairwise recall | keeper rate |")
    a("|---|---|---:|---:|---:|---:|")
    nd0 = dd["neardup"]["default"]
    kr = nd0.get("keeper_rate")
    a(f"| neardup (default) | all | {nd0['copy_share']:.3f} | {nd0['precision']:.3f} | {nd0['recall']:.3f} | "
      f"{'—' if kr is None else f'{kr:.3f}'} |")
    ho = nd0["held_out"]
    a(f"| neardup (default) | held out | {ho['copy_share']:.3f} | {ho['precision']:.3f} | {ho['recall']:.3f} | |")
    a(f"| dihedral pHash ≤{bh[:-1]}b, union-find | all | {dh[bh]['copy_share']:.3f} | {dh[bh]['precision']:.3f} | "
      f"{dh[bh]['recall']:.3f} | — |")
    a(f"| dihedral pHash ≤{bh[:-1]}b, union-find | held out | {dh[bh]['held_out']['copy_share']:.3f} | "
      f"{dh[bh]['held_out']['precision']:.3f} | {dh[bh]['held_out']['recall']:.3f} | — |")
    for h in PH_T:
        x = dh[f"{h}b"]
        a(f"| dihedral pHash ≤{h}b, union-find | all | {x['copy_share']:.3f} | {x['precision']:.3f} | {x['recall']:.3f} | — |")
    a("\nPer kind (share of copies grouped with their original; all / held out):\n")
    a(f"| kind | neardup | neardup held out | dihedral pHash ≤{bh[:-1]}b | at or above the baseline |")
    a("|---|---:|---:|---:|---|")
    hcr = ho["copy_recall"]
    for k in sorted(cr, key=lambda k: (k.split("/")[0], k)):
        b = dh[bh]["copy_recall"].get(k, 0)
        a(f"| {k} | {cr[k]:.3f} | {f3(hcr.get(k))} | {b:.3f} | {'yes' if cr[k] >= b else '**no**'} |")
    a("\n## Natural families and look-alikes\n")
    nt = res["natural"]
    nc = res["natural_corpus"]
    a(f"{nc['families']} families ({nc['files']} files) of the same artwork shipped at several sizes or crops by "
      f"{', '.join(nc['packages'])}; {nc['lookalike_families']} look-alike families ({nc['lookalike_files']} files: "
      f"same directory, names differing in digits, e.g. texture variants, level screenshots), all in one index "
      f"({nc.get('second_names_left_out', 0)} second names of a file listed already left out). "
      f"\"look-alike merged\" = look-alike pairs put in one group (false positives on hard negatives).\n")
    a("| method | threshold | groups | pairwise precision | pairwise recall | wrong pairs | look-alike pairs merged |")
    a("|---|---:|---:|---:|---:|---:|---:|")

    def nrow(name, thr, x):
        a(f"| {name} | {thr} | {x['groups']} | {x['precision']:.3f} | {x['recall']:.3f} | {x['wrong_pairs']} | "
          f"{x['lookalike_pairs_merged']} |")
    nrow("**neardup**", "default", nt["neardup"]["default"])
    for s in SWEEP:
        nrow("neardup", s, nt["neardup"][s])
    if "neardup-raw" in nt:
        nrow("**neardup --score raw**", "default", nt["neardup-raw"]["default"])
        for s in SWEEP:
            nrow("neardup --score raw", s, nt["neardup-raw"][s])
    for h in PH_T:
        nrow("pHash, keeper", f"≤{h} bits", nt["phash"][f"{h}b"])
    for ft in FID_T:
        nrow("findimagedupes", ft + "%", nt["findimagedupes"][ft + "%"])
    pr = nt["pair_ranking"]
    a("\nRanking all pairs of this set by score: " + "; ".join(
        f"{m}: AP of true pairs {v['pair_AP']:.3f} ({v['true_pairs']} pairs), median score of true pairs "
        f"{f3(v['true_median_score'])}, of look-alike pairs {f3(v['lookalike_median_score'])}" for m, v in pr.items()) + ".\n")
    a("## Speed (same run)\n")
    sp = res["speed"]
    a("| step | images | wall s | images/s | images per CPU-s | peak RSS MiB |")
    a("|---|---:|---:|---:|---:|---:|")
    lab = {"ingest_refs": "neardup ingest -j 2, references", "ingest_queries": "neardup ingest -j 2, copies (into the same index)",
           "ingest_natural": "neardup ingest -j 2, natural set", "query": "neardup query -k 10, all copies, one process",
           "dedup": "neardup dedup (default threshold), references + copies",
           "ingest_fidset": "neardup ingest -j 2, the files timed for findimagedupes",
           "fid": "findimagedupes -t 90%, the same files (fresh fingerprint database)"}
    for k, v in lab.items():
        if k in sp:
            x = sp[k]
            a(f"| {v} | {x['images']} | {x['wall_s']:.2f} | {x['images_per_s']:.1f} | "
              f"{x['images_per_cpu_s'] or 0:.1f} | {x['peak_rss_mib']:.0f} |")
    ph = res["phash_hashing"]
    if ph["images"]:
        a(f"| pHash hashing (Python) | {ph['images']} | {ph['seconds']:.2f} | {ph['images_per_s']:.1f} | — | — |")
    lq = sp["query_fresh_process_ms"]
    a(f"\nOne query in a fresh process (start-up, model load, decode, embed, lookup), {lq['n']} queries: "
      f"p50 {lq['p50']:.1f} ms, p99 {lq['p99']:.1f} ms. Index lookup alone: see the LSH table. "
      f"Index: {sp['index_file_bytes'] / 2**20:.1f} MiB for {res['corpus']['references']} references, "
      f"{sp['index_bytes_per_image']:.0f} bytes per image (LMDB file size, includes its free pages).\n")
    a("## Where neardup wins and loses\n")
    a("\n".join(verdicts(res)) + "\n")
    return "\n".join(L) + "\n"


def verdicts(res):
    q = res["query"]
    out = []
    cats = [k for k in q["neardup"] if k not in ("dev set", "strength set")]
    win = [k for k in cats if q["neardup"][k]["muAP"] > q["phash"][k]["muAP"] + 0.005]
    lose = [k for k in cats if q["phash"][k]["muAP"] > q["neardup"][k]["muAP"] + 0.005]
    d = q["neardup"]["dev set"]
    p = q["phash"]["dev set"]
    e = q["exact"]["dev set"]
    out.append(f"- Query mode vs pHash: dev-set muAP {d['muAP']:.3f} vs {p['muAP']:.3f}, R@1 {d['R@1']:.3f} vs "
               f"{p['R@1']:.3f}. neardup better on {len(win)} of {len(cats)} kind/strength cells; pHash better on "
               f"{len(lose)}: {', '.join(sorted(lose)) or 'none'}.")
    lsh = [x for x in res["lsh"] if x["probes"] == CLI_PROBES]
    ix = q.get("neardup-raw", q["neardup"])["dev set"]
    out.append(f"- Index vs exact search over the same embeddings, same raw cosine: muAP {ix['muAP']:.3f} vs "
               f"{e['muAP']:.3f}, R@1 {ix['R@1']:.3f} vs {e['R@1']:.3f}, R@10 {ix['R@10']:.3f} vs {e['R@10']:.3f}"
               + (f"; at `neardup query`'s default {CLI_PROBES} probes the index returns the exact nearest neighbour for "
                  f"{lsh[0]['recall_at_1']:.3f} of the queries and {lsh[0]['recall_sim_ge_0.8']:.3f} of the exact "
                  f"neighbours with cosine >= 0.8" if lsh else "") + ".")
    if "neardup-raw" in q:
        r = q["neardup-raw"]["dev set"]
        out.append(f"- Calibrated `similarity` vs raw cosine: muAP {d['muAP']:.3f} vs {r['muAP']:.3f}, "
                   f"R@P90 {d['R@P90']:.3f} vs {r['R@P90']:.3f}, R@1 {d['R@1']:.3f} vs {r['R@1']:.3f}.")
    else:
        out.append("- Calibrated vs raw: the CLI reports no `raw_similarity` so only one score is measured.")
    dd = res["dedup"]
    n0 = dd["neardup"]["default"]
    best_ph = max(dd["phash"].values(), key=lambda x: x["f1"])
    best_f = max(dd["findimagedupes"].values(), key=lambda x: x["f1"])
    if "neardup-raw" in dd:
        r0 = dd["neardup-raw"]["default"]
        out.append(f"- Dedup, calibrated vs raw at each one's default threshold: precision {n0['precision']:.3f} vs "
                   f"{r0['precision']:.3f}, recall {n0['recall']:.3f} vs {r0['recall']:.3f}, wrong groups "
                   f"{n0['wrong_groups']} vs {r0['wrong_groups']}.")
    out.append(f"- Dedup: neardup at its default threshold precision {n0['precision']:.3f} / recall {n0['recall']:.3f}; "
               f"best pHash (keeper) F1 point {best_ph['precision']:.3f} / {best_ph['recall']:.3f}; best findimagedupes "
               f"{best_f['precision']:.3f} / {best_f['recall']:.3f}. Wrong pairs from chaining: neardup "
               f"{n0['chained_wrong_pairs']} of {n0['wrong_pairs']}.")
    nt = res["natural"]
    out.append(f"- Natural families: neardup default recall {nt['neardup']['default']['recall']:.3f}, precision "
               f"{nt['neardup']['default']['precision']:.3f}, look-alike pairs merged "
               f"{nt['neardup']['default']['lookalike_pairs_merged']}; findimagedupes 90%: recall "
               f"{nt['findimagedupes']['90%']['recall']:.3f}, look-alikes merged "
               f"{nt['findimagedupes']['90%']['lookalike_pairs_merged']}.")
    sp = res["speed"]
    if "fid" in sp and "ingest_refs" in sp:
        nd = sp.get("ingest_fidset", sp["ingest_refs"])
        out.append(f"- Speed on the same {nd['images']} reference files: neardup ingest -j 2 {nd['images_per_s']:.1f} "
                   f"images/s ({nd['images_per_cpu_s']:.1f} per CPU-s) vs findimagedupes {sp['fid']['images_per_s']:.1f} "
                   f"({sp['fid']['images_per_cpu_s']:.1f} per CPU-s): {nd['images_per_s'] / sp['fid']['images_per_s']:.1f}x "
                   f"wall, {nd['images_per_cpu_s'] / sp['fid']['images_per_cpu_s']:.1f}x per CPU-s; peak RSS "
                   f"{nd['peak_rss_mib']:.0f} vs {sp['fid']['peak_rss_mib']:.0f} MiB. Dedup of all "
                   f"{sp['dedup']['images']} images after ingest: {sp['dedup']['wall_s']:.2f} s.")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=["extract-queries", "report"])
    ap.add_argument("run")
    ap.add_argument("--mode", default="quick")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "quality"))
    args = ap.parse_args()
    if args.cmd == "extract-queries":
        extract_queries(args.run)
    else:
        report(args.run, args.mode, args.out)


if __name__ == "__main__":
    main()
