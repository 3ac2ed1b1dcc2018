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
are handled as one threshold (matters for the integer pHash scores).

Optional (--bg N, a preview of issue 8's calibrated score): N training
instances (cache/train, never dev images) are embedded as a background set;
b(x) = similarity of x to its k-th nearest background vector; reported as
extra rows "model+bgq" (score - beta*b(query)) and "model+bgs"
(score - beta*(b(query)+b(reference))/2). Rankings per query are unchanged
by the first; muAP, which pools all queries under one threshold, is not.

  /usr/bin/python3 models/train/eval.py [--ckpt PATH] [--methods model,random,phash] [--json OUT]
                                        [--bg 3000 --bg-k 3 --bg-beta 0.5]
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
    order = np.argsort(-scores, kind="stable")
    scores, correct = scores[order], correct[order]
    tp = np.cumsum(correct)
    n = np.arange(1, len(correct) + 1)
    # one operating point per distinct score (ties form one threshold)
    last = np.r_[scores[1:] != scores[:-1], True]
    tp, n = tp[last], n[last]
    prec = tp / n
    rec = tp / nq
    drec = np.diff(np.r_[0.0, rec])
    ap = float((drec * prec).sum())
    ok = prec >= 0.9
    r90 = float(rec[ok].max()) if ok.any() else 0.0
    return {"muAP": ap, "R@P90": r90, "R@1": r1, "queries": nq}


def evaluate(sim, rows_q, gt):
    kinds = sorted({r["kind"] for r in rows_q})
    res = {"all": metrics(sim, gt)}
    kind_arr = np.array([r["kind"] for r in rows_q])
    for kd in kinds:
        m = kind_arr == kd
        res[kd] = metrics(sim[m], gt[m])
    return res


def background_inputs(n, size, seed=0):
    """n training instances as model inputs (composited over mid grey like
    the C decoder, stretched like the C prep)."""
    import data
    store = data.ImageStore()
    idx = np.random.default_rng(seed).choice(len(store), size=min(n, len(store)), replace=False)
    x = np.zeros((len(idx), 3, size, size), np.uint8)
    for j, i in enumerate(idx):
        a = store.get(int(i))
        im = augment.to_rgb(a, Image.new("RGB", (a.shape[1], a.shape[0]), (128, 128, 128)))
        x[j] = np.asarray(augment.c_resize(im, size, size)).transpose(2, 0, 1)
    return x


def kth_sim(e, bg, k):
    s = e @ bg.T
    return -np.partition(-s, k - 1, axis=1)[:, k - 1]


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
    ap.add_argument("--bg", type=int, default=0, help="background-set size for the normalised score (0: off)")
    ap.add_argument("--bg-k", type=int, default=3)
    ap.add_argument("--bg-beta", type=float, default=0.5)
    args = ap.parse_args()
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
            e = embed(model, x)
            sim = e[qi] @ e[ri].T
            if m == "model" and args.bg:
                results[m] = evaluate(sim, rows_q, gt)  # keeps "model" before its +bg rows
                ebg = embed(model, background_inputs(args.bg, args.size))
                bq, br = kth_sim(e[qi], ebg, args.bg_k), kth_sim(e[ri], ebg, args.bg_k)
                for tag, s2 in (("model+bgq", sim - args.bg_beta * bq[:, None]),
                                ("model+bgs", sim - args.bg_beta * 0.5 * (bq[:, None] + br[None, :]))):
                    results[tag] = evaluate(s2, rows_q, gt)
                    labels[tag] = f"{labels[m]}, minus {args.bg_beta} x sim to {args.bg_k}-th of {len(ebg)} background"
                    print(f"{tag}: muAP {results[tag]['all']['muAP']:.3f} R@P90 {results[tag]['all']['R@P90']:.3f} "
                          f"R@1 {results[tag]['all']['R@1']:.3f}", flush=True)
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
