#!/usr/bin/python3
"""Offline probe: how much do extra views of the query or of the reference
buy on the development set? (model card, "Query views")

Embeds every dev image as-is, turned by 90/180/270 degrees, as centre crops
keeping 75% / 50% of each side, and as 5 regions keeping 60% of each side
(4 corners + centre); crops are cut from a 256x256 stretch of the image and
area-averaged to the 128x128 input. A pair's score is the best over the
allowed (query view, reference view) pairs, raw cosine or calibrated
(each view with its own background statistic, as neardup query does), and
calibrated + pHash: the score fusion term added to the (as-is, as-is) pair.

  /usr/bin/python3 models/train/probe_views.py [--ckpt models/train/checkpoint.pt]
Embeddings are cached in cache/calib/views_<step>.npz (~4 min on 2 cores).
"""
import argparse
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import eval as ev  # noqa: E402

ROT = ["rot1", "rot2", "rot3"]
CROPS = ["c0.75", "c0.5"]
REGIONS = ["tl", "tr", "bl", "br", "c"]


def view_embeddings(model, x256, region_size=128, regions_only=False):
    t = torch.from_numpy(x256).float()

    def emb(u, size=128):
        u = torch.nn.functional.interpolate(u, size=(size, size), mode="area") if u.shape[-1] != size else u
        return ev.embed(model, u.round().clamp(0, 255).to(torch.uint8).numpy())

    def crop(x0, y0, s):
        n = t.shape[-1]
        return t[:, :, int(y0 * n):int((y0 + s) * n), int(x0 * n):int((x0 + s) * n)]

    e = {}
    if not regions_only:
        e["full"] = emb(t)
        for k in (1, 2, 3):
            e[f"rot{k}"] = emb(torch.rot90(t, k, dims=(2, 3)))
        for s in (0.75, 0.5):
            e[f"c{s}"] = emb(crop((1 - s) / 2, (1 - s) / 2, s))
    s = 0.6
    for name, (a, b) in {"tl": (0, 0), "tr": (1 - s, 0), "bl": (0, 1 - s), "br": (1 - s, 1 - s),
                         "c": ((1 - s) / 2, (1 - s) / 2)}.items():
        e[name] = emb(crop(a, b, s), region_size)
    return e


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(HERE, "checkpoint.pt"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fusion-grid", action="store_true",
                    help="only the grid that chose the score fusion's bits and weight (query views)")
    ap.add_argument("--region-size", type=int, default=128,
                    help="embed the reference regions at this input size (a cheaper ingest: 96 costs "
                         "0.56 of an embedding)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = ev.load_manifest(ev.DEVSET)
    qi = [i for i, r in enumerate(rows) if r["role"] == "query"]
    ri = [i for i, r in enumerate(rows) if r["role"] == "ref"]
    ref_of_orig = {rows[i]["orig"]: j for j, i in enumerate(ri) if rows[i]["orig"] >= 0}
    rows_q = [rows[i] for i in qi]
    gt = np.array([ref_of_orig[r["orig"]] for r in rows_q])
    model, label = ev.load_model(args.ckpt)
    step = torch.load(args.ckpt, map_location="cpu").get("step")
    cache = os.path.join(ev.ROOT, "cache", "calib", f"views_{step}.npz")
    if os.path.exists(cache):
        e = dict(np.load(cache))
    else:
        x256, _ = ev.prepare(ev.DEVSET, rows, 256, os.path.join(ev.DEVSET, "prepared_256.npz"))
        e = view_embeddings(model, x256)
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        np.savez(cache, **e)
    if args.region_size != 128:
        rcache = cache[:-4] + f"_regions{args.region_size}.npz"
        if os.path.exists(rcache):
            e.update(dict(np.load(rcache)))
        else:
            x256, _ = ev.prepare(ev.DEVSET, rows, 256, os.path.join(ev.DEVSET, "prepared_256.npz"))
            r = view_embeddings(model, x256, args.region_size, regions_only=True)
            np.savez(rcache, **r)
            e.update(r)
    # background statistic of every view (calibrated score), as eval.py computes it
    x128, _ = ev.prepare(ev.DEVSET, rows, 128, os.path.join(ev.DEVSET, "prepared_128.npz"))

    class A:
        bg, threads, size, devset = ev.CALIB_DEFAULTS["n"], args.threads, 128, ev.DEVSET
    _, ebg = ev.cached_embeddings(model, label, x128, A())
    bg = ev.bg_f16(ebg)
    k, beta = ev.CALIB_DEFAULTS["k"], ev.CALIB_DEFAULTS["beta"]
    off = ev.calib_offset(bg, k, beta, ev.CALIB_MEAN, groups=ev.background_groups(len(bg)))
    b = {v: ev.calib_stat(e[v], bg, k, ev.CALIB_MEAN) for v in e}

    # the score fusion (models/README.md, "Score fusion"): the product's hash of
    # the image as it is, so only the (identity, identity) pair gets the term
    pb = ev.phash_bits_input(x128)
    bonus = ev.phash_bonus(ev.hamming(pb[qi], pb[ri]), ev.CALIB_DEFAULTS["phash_weight"],
                           ev.CALIB_DEFAULTS["phash_bits"])

    def score(qv, rv, cal):
        cos = e[qv][qi] @ e[rv][ri].T
        s = ev.calib_score(cos, b[qv][qi][:, None], b[rv][ri][None, :], beta, off) if cal else cos
        return s + bonus if cal == "fused" and (qv, rv) == ("full", "full") else s

    def row(name, qviews, rviews, cal):
        pairs = [("full", "full")] + [(v, "full") for v in qviews] + [("full", v) for v in rviews]
        sim = np.max([score(q, r, cal) for q, r in pairs], axis=0)
        res = ev.evaluate(sim, rows_q, gt)
        kinds = ["crop25", "crop50", "screenshot", "rot90", "combo", "grey", "blur", "jpeg"]
        label = {False: "raw", True: "calibrated", "fused": "calibrated + pHash"}[cal]
        print(f"| {name} | {label} | {res['all']['muAP']:.3f} | {res['all']['R@P90']:.3f} | "
              f"{res['all']['R@1']:.3f} | " + " | ".join(f"{res[kd]['muAP']:.3f}" for kd in kinds) + " |", flush=True)

    if args.fusion_grid:
        ham = ev.hamming(pb[qi], pb[ri])
        qviews = np.max([score(v, "full", True) for v in ROT + CROPS], axis=0)
        ident = score("full", "full", True)
        print("| bits | weight per bit | muAP (query views) | single vector | grey | blur | jpeg | rescale |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for bits in (9, 10, 11, 12, 13):
            for w in (0.03, 0.04, 0.05):
                t = ev.phash_bonus(ham, w, bits)
                r = ev.evaluate(np.maximum(ident + t, qviews), rows_q, gt)
                r1 = ev.evaluate(ident + t, rows_q, gt)
                print(f"| {bits} | {w} | {r['all']['muAP']:.4f} | {r1['all']['muAP']:.4f} | " +
                      " | ".join(f"{r[kd]['muAP']:.4f}" for kd in ("grey", "blur", "jpeg", "rescale")) + " |",
                      flush=True)
        return
    print(f"model: {label}; reference regions at {args.region_size}x{args.region_size}")
    print("| views | score | muAP | R@P90 | R@1 | crop25 | crop50 | screenshot | rot90 | combo | grey | blur | jpeg |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cal in (False, True, "fused"):
        row("single vector", [], [], cal)
        row("query: rotations", ROT, [], cal)
        row("query: rotations + centre crops (neardup query)", ROT + CROPS, [], cal)
        row("reference: 5 regions", [], REGIONS, cal)
        row("query views + reference regions", ROT + CROPS, REGIONS, cal)


if __name__ == "__main__":
    main()
