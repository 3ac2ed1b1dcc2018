#!/usr/bin/python3
"""Copy-detection evaluation of neardup's embedding on the development set.

Dev set: bench/corpus/make_devset.py -> cache/dev/devset/ (queries = edited
copies of the originals; references = the originals + unrelated distractors).
Every image is preprocessed like src/prep.c: decoded to RGB (transparent
pixels over mid grey), stretched to the model input with an exact area
average when shrinking and bilinear when enlarging, then (x/255-mean)/std.

Methods compared, each on the same files:
  model   : a checkpoint (models/train/checkpoint.pt, cache/train/ckpt_*.pt)
  random  : the same network with random weights (seed 0)
  phash   : 64-bit DCT perceptual hash, similarity = 1 - Hamming/64
Metrics (DISC21-style): each query contributes its top-K references with
scores; all (query, reference, score) triples are pooled and ranked by score;
muAP = area under that precision-recall curve (recall over all queries),
recall at 90% precision, recall@1 -- overall and per edit kind. Ties in score
are handled as one threshold (matters for the integer pHash scores). The
metric is computed by muap.py, which bench/quality/evaluate.py shares.

Calibrated similarity (on by default, --bg 0 turns it off): a
background set of N training instances (background_indices: never dev
images), float16 as the model file stores it; b(x) = mean of x's k highest
cosines to it (calib_stat, exactly what src/calib.c computes); rows
"model+norm" = cos - beta*(b(query)+b(reference))/2 + offset (calib_score,
neardup's similarity; the offset only shifts scores) and "model+bgq" =
cos - beta*b(query) (SSCD's query-side form). Defaults: CALIB_DEFAULTS.
  --sweep          grid over statistic, k, beta and background size
  --pairs          dedup view: pairwise precision/recall by threshold over all
                   pairs of dev images, raw and calibrated
  --check-cli M    compare build/rel/neardup's similarity (model M, exported
                   from --ckpt) with calib_score on a subset
  --score-dedup F  pairwise precision/recall of `neardup dedup --format jsonl`
                   outputs of the whole dev set
Embeddings are cached in cache/calib/.

  /usr/bin/python3 models/train/eval.py [--ckpt PATH] [--methods model,random,phash] [--json OUT]
                                        [--bg 3000 --bg-k 3 --bg-beta 0.65] [--sweep] [--pairs]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import augment  # noqa: E402
import muap as muap_lib  # noqa: E402
import net  # noqa: E402

Image.MAX_IMAGE_PIXELS = None
DEVSET = os.path.join(ROOT, "cache", "dev", "devset")


def load_manifest(devset):
    rows = []
    with open(os.path.join(devset, "manifest.tsv")) as f:
        next(f)
        for line in f:
            role, path, orig, kind, params, src = line.rstrip("\n").split("\t")
            rows.append({"role": role, "path": path, "orig": int(orig), "kind": kind})
    return rows


def decode_rgb(path):
    """RGB as the C decoder gives it: alpha composited over mid grey (128)."""
    im = Image.open(path)
    im.seek(0)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (128, 128, 128))
        bg.paste(im, (0, 0), im)
        return bg
    return im.convert("RGB")


def prepare(devset, rows, size, cache_path):
    """uint8 [N][3][size][size] model inputs and uint8 [N][32][32] grey
    thumbnails for pHash, cached next to the dev set."""
    if os.path.exists(cache_path):
        z = np.load(cache_path)
        if z["x"].shape[0] == len(rows) and z["x"].shape[2] == size:
            return z["x"], z["g"]
    x = np.zeros((len(rows), 3, size, size), np.uint8)
    g = np.zeros((len(rows), 32, 32), np.uint8)
    for i, r in enumerate(rows):
        im = decode_rgb(os.path.join(devset, r["path"]))
        x[i] = np.asarray(augment.c_resize(im, size, size)).transpose(2, 0, 1)
        # pHash input: luma, box-averaged to 32x32 (area average)
        g[i] = np.asarray(im.convert("L").resize((32, 32), Image.BOX))
    np.savez(cache_path, x=x, g=g)
    return x, g


def embed(model, x, batch=128):
    model.eval()
    mean = torch.tensor(net.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(net.STD).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            t = torch.from_numpy(x[i:i + batch]).float() / 255.0
            out.append(model((t - mean) / std))
    return torch.cat(out).numpy()


def _dct_matrix(n):
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def phash_bits(g):
    """64-bit DCT hash: 32x32 luma -> 2-D DCT -> the 8x8 lowest frequencies ->
    bit = coefficient > median of those 64 (the DC term excluded from the median)."""
    d = _dct_matrix(32)
    c = np.einsum("ij,njk,lk->nil", d, g.astype(np.float64), d)[:, :8, :8].reshape(len(g), 64)
    med = np.median(c[:, 1:], axis=1, keepdims=True)
    return c > med


def phash_bits_input(x):
    """The product's hash (src/phash.c): the same DCT hash of the luma of the
    prepared model input x [N][3][S][S] uint8 (S a multiple of 32), area
    averaged to 32x32 -- what neardup stores with every vector."""
    lum = (0.299 * x[:, 0].astype(np.float64) + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    n, s = len(x), x.shape[-1]
    g = lum.reshape(n, 32, s // 32, 32, s // 32).mean(axis=(2, 4))
    return phash_bits(g)


def hamming(qbits, rbits):
    q = qbits.astype(np.float32)
    r = rbits.astype(np.float32)
    return q @ (1 - r).T + (1 - q) @ r.T


def phash_bonus(ham, weight, bits):
    """The fusion term neardup adds to the calibrated similarity
    (nd_phash_bonus, include/neardup/phash.h)."""
    return weight * np.maximum(0.0, bits - ham)


def phash_sim(qbits, rbits):
    q = qbits.astype(np.float32)
    r = rbits.astype(np.float32)
    ham = q @ (1 - r).T + (1 - q) @ r.T
    return 1.0 - ham / 64.0


def metrics(sim, gt, topk=10):
    """sim [Q][R]; gt [Q] index of the correct reference. Returns dict."""
    nq = len(gt)
    top1 = sim.argmax(axis=1)
    r1 = float((top1 == gt).mean())
    k = min(topk, sim.shape[1])
    idx = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    scores = np.take_along_axis(sim, idx, axis=1).ravel()
    correct = (idx == gt[:, None]).ravel()
    prec, rec, _ = muap_lib.pooled_pr(scores, correct, nq)
    return {"muAP": muap_lib.muap(prec, rec), "R@P90": muap_lib.recall_at_precision(prec, rec, 0.9),
            "R@1": r1, "queries": nq}


def evaluate(sim, rows_q, gt):
    kinds = sorted({r["kind"] for r in rows_q})
    res = {"all": metrics(sim, gt)}
    kind_arr = np.array([r["kind"] for r in rows_q])
    for kd in kinds:
        m = kind_arr == kd
        res[kd] = metrics(sim[m], gt[m])
    return res


def background_indices(n, seed=0):
    """n training instances for the background set: drawn with the training
    sampler's package weights (so one package's 10k sprites do not make up
    most of it) and at most one instance per source file (tiles of one large
    image are near-duplicates of each other, which would inflate the
    statistic of the set itself). Never dev images (cache/train only)."""
    import data
    store = data.ImageStore()
    src = np.load(os.path.join(data.CACHE, "index.npz"))["src"]
    base = np.array([s.split("#")[0] for s in src])
    order = np.random.default_rng(seed).choice(len(store), size=len(store), replace=False,
                                               p=store.sample_weights())
    seen, idx = set(), []
    for i in order:
        if base[i] not in seen:
            seen.add(base[i])
            idx.append(int(i))
            if len(idx) == n:
                break
    return store, np.array(idx)


def background_inputs(n, size, seed=0):
    """n training instances as model inputs (composited over mid grey like
    the C decoder, stretched like the C prep); see background_indices."""
    store, idx = background_indices(n, seed)
    x = np.zeros((len(idx), 3, size, size), np.uint8)
    for j, i in enumerate(idx):
        a = store.get(int(i))
        im = augment.to_rgb(a, Image.new("RGB", (a.shape[1], a.shape[0]), (128, 128, 128)))
        x[j] = np.asarray(augment.c_resize(im, size, size)).transpose(2, 0, 1)
    return x


def kth_sim(e, bg, k):
    s = e @ bg.T
    return -np.partition(-s, k - 1, axis=1)[:, k - 1]


# ---- calibrated score (issue 8); src/calib.c computes exactly this ----
CALIB_MEAN, CALIB_KTH = 1, 2          # statistic kinds, as in the model file's CALIB section
# chosen with --sweep at step 2400 (models/README.md, "Calibration"): muAP is flat
# (0.784-0.786) over k 1..5, beta 0.5..0.8, 3000..5000 vectors
# score fusion with the perceptual hash (models/README.md, "Score fusion"): + 0.04 per bit
# below 11 bits of Hamming distance
CALIB_DEFAULTS = {"stat": CALIB_MEAN, "k": 3, "beta": 0.65, "n": 3000, "phash_weight": 0.04, "phash_bits": 11.0}


def bg_f16(ebg):
    """The background set as the model file stores it (float16), back in float32."""
    return np.asarray(ebg, np.float32).astype("<f2").astype(np.float32)


def calib_stat(e, bg, k, stat=CALIB_MEAN, exclude_self=False, groups=None, chunk=2048):
    """b(x) for each row of e [N][D] against bg [K][D] (float32): the mean of
    the k highest cosines (stat 1) or the k-th highest (stat 2).
    exclude_self: e is bg itself; each row skips its own entry (leave-one-out);
    groups: e is bg itself; each row skips every entry of its own group."""
    out = np.empty(len(e), np.float32)
    for i in range(0, len(e), chunk):
        s = e[i:i + chunk].astype(np.float32) @ bg.T
        if exclude_self:
            s[np.arange(len(s)), np.arange(i, i + len(s))] = -np.inf
        if groups is not None:
            s[groups[i:i + chunk, None] == groups[None, :]] = -np.inf
        top = -np.partition(-s, k - 1, axis=1)[:, :k]
        out[i:i + chunk] = top.astype(np.float64).mean(axis=1) if stat == CALIB_MEAN else top.min(axis=1)
    return out


def calib_offset(bg, k, beta, stat=CALIB_MEAN, groups=None):
    """Re-centring: beta x the median statistic of the background set's own
    images, so that an image of typical background similarity keeps its
    cosine. With groups (the training package of each background image), each
    image is compared with the other packages' images only, as an image from
    elsewhere would be (images of one package resemble each other: at step
    2400 the plain leave-one-out median is 0.716, the other-package one 0.581,
    the dev set's references 0.602); without, leave-one-out."""
    return float(beta * np.median(calib_stat(bg, bg, k, stat, exclude_self=groups is None, groups=groups)))


def background_groups(n, seed=0):
    """The training package of each of background_indices(n)'s images."""
    store, idx = background_indices(n, seed)
    return store.pkg[idx]


def calib_score(cos, ba, bb, beta, offset):
    """The normalised similarity: cos - beta * (b(a) + b(b)) / 2 + offset."""
    return cos - beta * 0.5 * (ba + bb) + offset


def cached_embeddings(model, label, x, args):
    """Dev-set and background embeddings of a checkpoint, cached in cache/calib."""
    os.makedirs(os.path.join(ROOT, "cache", "calib"), exist_ok=True)
    tag = "".join(c if c.isalnum() else "_" for c in label)
    path = os.path.join(ROOT, "cache", "calib", f"emb2_{tag}_{args.size}_{args.bg}.npz")
    # background_indices(n) is a prefix of background_indices(m > n): a larger cache serves
    import glob
    for p in [path] + sorted(glob.glob(os.path.join(ROOT, "cache", "calib", f"emb2_{tag}_{args.size}_*.npz"))):
        if os.path.exists(p) and int(p.rsplit("_", 1)[1][:-4]) >= args.bg:
            z = np.load(p)
            return z["e"], z["ebg"][:args.bg]
    e = embed(model, x)
    ebg = embed(model, background_inputs(args.bg, args.size))
    np.savez(path, e=e, ebg=ebg)
    return e, ebg


def sweep(e, bg, qi, ri, rows_q, gt, rows):
    """Grid search; every row is muAP / R@P90 / R@1 over all queries."""
    sim = e[qi] @ e[ri].T
    base = metrics(sim, gt)
    print(f"sweep: raw muAP {base['muAP']:.3f} R@P90 {base['R@P90']:.3f} R@1 {base['R@1']:.3f}")
    print("| n | stat | k | beta | sym muAP | sym R@P90 | sym R@1 | query-only muAP | query-only R@1 |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in (1000, 2000, 3000, 5000):
        if n > len(bg):
            continue
        b_set = bg[:n]
        for st in (CALIB_MEAN, CALIB_KTH):
            for k in (1, 3, 5, 10, 20):
                b = calib_stat(e, b_set, k, st)
                bq, br = b[qi][:, None], b[ri][None, :]
                for beta in (0.25, 0.35, 0.5, 0.65, 0.8, 1.0):
                    ms = metrics(sim - beta * 0.5 * (bq + br), gt)   # the offset does not change these
                    mq = metrics(sim - beta * bq, gt)
                    print(f"| {n} | {'mean' if st == CALIB_MEAN else 'kth'} | {k} | {beta} | {ms['muAP']:.3f} | "
                          f"{ms['R@P90']:.3f} | {ms['R@1']:.3f} | {mq['muAP']:.3f} | {mq['R@1']:.3f} |", flush=True)


def pairs_table(e, b, rows, beta, off, bonus=None):
    """Dedup view: every pair of dev images (originals, distractors, copies);
    a pair is a true duplicate when both come from the same original.
    Prints pairwise precision / recall by threshold, raw, normalised and
    (with bonus, the [N][N] pHash fusion term) fused."""
    grp = np.array([r["orig"] if r["orig"] >= 0 else -1 - i for i, r in enumerate(rows)])
    iu = np.triu_indices(len(e), 1)
    cos = (e @ e.T)[iu]
    same = (grp[:, None] == grp[None, :])[iu]
    norm = calib_score(cos, b[iu[0]], b[iu[1]], beta, off)
    scores = [("raw", cos), ("norm", norm)] + ([("fused", norm + bonus[iu])] if bonus is not None else [])
    npos = int(same.sum())
    print(f"pairs: {len(cos)} pairs, {npos} duplicates")
    print("| threshold | " + " | ".join(f"{n} precision | {n} recall" for n, _ in scores) + " |")
    print("|---:|" + "---:|---:|" * len(scores))
    for t in np.arange(0.50, 0.96, 0.025):
        cells = []
        for _, sc in scores:
            sel = sc >= t
            tp = int((sel & same).sum())
            cells += [f"{tp / max(int(sel.sum()), 1):.3f}", f"{tp / npos:.3f}"]
        print(f"| {t:.3f} | " + " | ".join(cells) + " |")
    for name, sc in scores:
        order = np.argsort(-sc, kind="stable")
        tp = np.cumsum(same[order])
        prec = tp / np.arange(1, len(order) + 1)
        ok = np.nonzero(prec >= 0.95)[0]
        j = ok.max() if len(ok) else 0
        print(f"{name}: lowest threshold with pairwise precision >= 0.95: {sc[order][j]:.4f} "
              f"(recall {tp[j] / npos:.3f})", flush=True)


def check_cli(devset, rows, e, b, beta, off, model_path, binary, nq=200):
    """Runs the C command line on a subset (the 250 originals and 100
    distractors indexed, every 20th query looked up) and compares its
    similarity and raw_similarity with this file's formula on the PyTorch
    embeddings. Prints the differences."""
    import subprocess
    import tempfile
    refs = [i for i, r in enumerate(rows) if r["role"] == "ref" and r["orig"] >= 0]
    refs += [i for i, r in enumerate(rows) if r["role"] == "ref" and r["orig"] < 0][:100]
    qs = [i for i, r in enumerate(rows) if r["role"] == "query"][::20][:nq]
    by_path = {os.path.join(devset, rows[i]["path"]): i for i in refs + qs}
    with tempfile.TemporaryDirectory() as tmp:
        ix = os.path.join(tmp, "ix")
        lst = [os.path.join(devset, rows[i]["path"]) for i in refs]
        subprocess.run([binary, "ingest", "-q", "--model", model_path, "--index", ix] + lst, check=True)
        out = subprocess.run([binary, "query", "--model", model_path, "--index", ix, "--format", "jsonl",
                              "-k", "5", "-"], input="\n".join(os.path.join(devset, rows[i]["path"]) for i in qs),
                             capture_output=True, text=True, check=True).stdout
    ds, dr, dc = [], [], []
    for line in out.splitlines():
        j = json.loads(line)
        q = by_path[j["query"]]
        for res in j["results"]:
            r = by_path[res["path"]]
            cos = float(e[q] @ e[r])
            ds.append(res["similarity"] - calib_score(cos, b[q], b[r], beta, off))
            dr.append(res["raw_similarity"] - cos)
            # the calibration term alone: C's similarity - raw_similarity against this file's
            dc.append((res["similarity"] - res["raw_similarity"]) - (off - beta * 0.5 * (b[q] + b[r])))
    ds, dr, dc = np.abs(np.array(ds)), np.abs(np.array(dr)), np.abs(np.array(dc))
    print(f"check-cli: {len(qs)} queries against {len(refs)} indexed images, {len(ds)} results: "
          f"|C similarity - eval.py score| median {np.median(ds):.2e} max {ds.max():.2e}; "
          f"|C raw_similarity - cosine| median {np.median(dr):.2e} max {dr.max():.2e}; calibration term "
          f"|C (similarity - raw_similarity) - eval.py's| median {np.median(dc):.2e} max {dc.max():.2e}; "
          f"the differences come from the embeddings (C decoder and prep vs PIL), not the formula", flush=True)


def score_dedup(devset, rows, path):
    """Pairwise precision and recall of a `neardup dedup --format jsonl`
    output over the dev set: a predicted pair is two members of one group,
    a true pair two images of one original (the original or its copies)."""
    grp = {os.path.join(devset, r["path"]): (r["orig"] if r["orig"] >= 0 else -1 - i) for i, r in enumerate(rows)}
    cnt = {}
    for g in grp.values():
        cnt[g] = cnt.get(g, 0) + 1
    npos = sum(c * (c - 1) // 2 for c in cnt.values())
    tp = npred = 0
    with open(path) as f:
        for line in f:
            m = [grp[x["path"]] for x in json.loads(line)["members"]]
            for i in range(len(m)):
                for j in range(i + 1, len(m)):
                    npred += 1
                    tp += m[i] == m[j]
    print(f"dedup {path}: {npred} pairs in groups, precision {tp / max(npred, 1):.3f}, "
          f"recall {tp / npos:.3f} ({tp} of {npos} true pairs)")


def load_model(path):
    model = net.NearDupNet()
    if path is None:
        torch.manual_seed(0)
        return net.NearDupNet(), "random weights"
    ck = torch.load(path, map_location="cpu")
    sd = ck["model"]
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return model, f"{os.path.relpath(path, ROOT)} (step {ck.get('step')})"


def table(results):
    names = list(results)
    kinds = list(next(iter(results.values())).keys())
    hdr = "| edit kind | queries | " + " | ".join(f"{n} muAP | {n} R@P90 | {n} R@1" for n in names) + " |"
    sep = "|---|---:|" + "---:|" * (3 * len(names))
    lines = [hdr, sep]
    for kd in kinds:
        cells = []
        for n in names:
            m = results[n][kd]
            cells += [f"{m['muAP']:.3f}", f"{m['R@P90']:.3f}", f"{m['R@1']:.3f}"]
        lines.append(f"| {kd} | {results[names[0]][kd]['queries']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devset", default=DEVSET)
    ap.add_argument("--ckpt", default=os.path.join(HERE, "checkpoint.pt"))
    ap.add_argument("--methods", default="model,random,phash")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=net.SIZE, help="input size (the shipped model uses net.SIZE)")
    ap.add_argument("--json", default=None, help="write the figures here as JSON")
    ap.add_argument("--bg", type=int, default=CALIB_DEFAULTS["n"],
                    help="background-set size for the normalised score (0: off)")
    ap.add_argument("--bg-k", type=int, default=CALIB_DEFAULTS["k"])
    ap.add_argument("--bg-beta", type=float, default=CALIB_DEFAULTS["beta"])
    ap.add_argument("--bg-stat", type=int, default=CALIB_DEFAULTS["stat"], help="1: mean of top k, 2: k-th")
    ap.add_argument("--phash-weight", type=float, default=CALIB_DEFAULTS["phash_weight"],
                    help="score fusion (row model+fused): weight per bit below --phash-bits")
    ap.add_argument("--phash-bits", type=float, default=CALIB_DEFAULTS["phash_bits"])
    ap.add_argument("--sweep", action="store_true", help="grid over statistic, k, beta, background size")
    ap.add_argument("--pairs", action="store_true",
                    help="dedup pairwise precision/recall by threshold, raw and normalised (all dev images)")
    ap.add_argument("--dump", metavar="OUT.npz", help="write embeddings and statistics")
    ap.add_argument("--check-cli", metavar="MODEL.ndm",
                    help="compare build/rel/neardup's similarity (with this model, exported from --ckpt) "
                         "with this file's score on a subset")
    ap.add_argument("--score-dedup", metavar="DEDUP.jsonl", nargs="+",
                    help="only score these `neardup dedup --format jsonl` outputs of the whole dev set")
    args = ap.parse_args()
    if args.score_dedup:
        rows = load_manifest(args.devset)
        for p in args.score_dedup:
            score_dedup(args.devset, rows, p)
        return
    torch.set_num_threads(args.threads)
    t0 = time.time()
    rows = load_manifest(args.devset)
    x, g = prepare(args.devset, rows, args.size, os.path.join(args.devset, f"prepared_{args.size}.npz"))
    qi = [i for i, r in enumerate(rows) if r["role"] == "query"]
    ri = [i for i, r in enumerate(rows) if r["role"] == "ref"]
    ref_of_orig = {rows[i]["orig"]: j for j, i in enumerate(ri) if rows[i]["orig"] >= 0}
    rows_q = [rows[i] for i in qi]
    gt = np.array([ref_of_orig[r["orig"]] for r in rows_q])
    print(f"devset: {len(qi)} queries, {len(ri)} references ({len(ref_of_orig)} originals); "
          f"prepared in {time.time()-t0:.0f}s", flush=True)
    results, labels = {}, {}
    for m in args.methods.split(","):
        t1 = time.time()
        if m == "phash":
            bits = phash_bits(g)
            sim = phash_sim(bits[qi], bits[ri])
            labels[m] = "64-bit DCT pHash"
        elif m in ("model", "random"):
            model, labels[m] = load_model(args.ckpt if m == "model" else None)
            if m == "model" and args.bg:
                e, ebg = cached_embeddings(model, labels[m], x, args)
                sim = e[qi] @ e[ri].T
                results[m] = evaluate(sim, rows_q, gt)  # keeps "model" before its normalised rows
                bg = bg_f16(ebg)
                if args.sweep:
                    sweep(e, bg, qi, ri, rows_q, gt, rows)
                k, beta, st = args.bg_k, args.bg_beta, args.bg_stat
                off = calib_offset(bg, k, beta, st, groups=background_groups(len(bg)))
                b = calib_stat(e, bg, k, st)
                bq, br = b[qi], b[ri]
                pb = phash_bits_input(x)
                fused = calib_score(sim, bq[:, None], br[None, :], beta, off) + \
                    phash_bonus(hamming(pb[qi], pb[ri]), args.phash_weight, args.phash_bits)
                for tag, s2 in (("model+bgq", sim - beta * bq[:, None]),
                                ("model+norm", calib_score(sim, bq[:, None], br[None, :], beta, off)),
                                ("model+fused", fused)):
                    results[tag] = evaluate(s2, rows_q, gt)
                    labels[tag] = (f"{labels[m]}, minus {beta} x {'mean of top' if st == CALIB_MEAN else 'k-th'} "
                                   f"{k} of {len(bg)} background{' (query only)' if tag.endswith('q') else ''}"
                                   + ("" if tag.endswith("q") else f", + offset {off:.4f}")
                                   + (f", + {args.phash_weight:g} x max(0, {args.phash_bits:g} - pHash "
                                      "distance)" if tag.endswith("fused") else ""))
                    print(f"{tag}: muAP {results[tag]['all']['muAP']:.3f} R@P90 {results[tag]['all']['R@P90']:.3f} "
                          f"R@1 {results[tag]['all']['R@1']:.3f}", flush=True)
                if args.pairs:
                    pairs_table(e, b, rows, beta, off,
                                phash_bonus(hamming(pb, pb), args.phash_weight, args.phash_bits))
                if args.check_cli:
                    check_cli(args.devset, rows, e, b, beta, off, args.check_cli,
                              os.path.join(ROOT, "build", "rel", "neardup"))
                if args.dump:
                    np.savez(args.dump, e=e, b=b, paths=np.array([r["path"] for r in rows]), offset=off,
                             beta=beta, k=k, stat=st)
            else:
                e = embed(model, x)
                sim = e[qi] @ e[ri].T
        else:
            raise SystemExit(f"unknown method {m}")
        results[m] = evaluate(sim, rows_q, gt)
        print(f"{m}: {labels[m]}: muAP {results[m]['all']['muAP']:.3f} R@P90 {results[m]['all']['R@P90']:.3f} "
              f"R@1 {results[m]['all']['R@1']:.3f} ({time.time()-t1:.0f}s)", flush=True)
    print()
    print("methods: " + "; ".join(f"{k} = {v}" for k, v in labels.items()))
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"labels": labels, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
