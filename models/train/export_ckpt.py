#!/usr/bin/python3
"""Exports a training checkpoint to neardup's model format with
models/export.py (which checks the converted layers against PyTorch).

  /usr/bin/python3 models/train/export_ckpt.py [--ckpt models/train/checkpoint.pt]
        [--out models/neardup.ndm] [--name neardup-sscd-v1] [--bg N] [--bg-k K]
        [--bg-beta B] [--bg-stat 1|2] [--vectors tests/data/cnn/neardup]

By default the file gets the calibrated similarity (issue 8): a background set
of N embeddings of training instances (eval.background_indices: never dev
images), float16, and its calibration: statistic, k and beta (defaults:
eval.CALIB_DEFAULTS, chosen on the dev set with eval.py --sweep, see
models/README.md) and the offset, beta x the median statistic of the
background images against the other training packages' background images
(eval.calib_offset), computed here from the exported (float16) set so a
re-trained model carries its own. --bg 0: no background set, no calibration.
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import eval as ev  # noqa: E402
import net  # noqa: E402
from export import export_model, read_ndm  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(HERE, "checkpoint.pt"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "neardup.ndm"))
    ap.add_argument("--name", default="neardup-sscd-v1")
    ap.add_argument("--bg", type=int, default=ev.CALIB_DEFAULTS["n"], help="background-set size (0: none)")
    ap.add_argument("--bg-k", type=int, default=ev.CALIB_DEFAULTS["k"])
    ap.add_argument("--bg-beta", type=float, default=ev.CALIB_DEFAULTS["beta"])
    ap.add_argument("--bg-stat", type=int, default=ev.CALIB_DEFAULTS["stat"], help="1: mean of top k, 2: k-th")
    ap.add_argument("--phash-weight", type=float, default=ev.CALIB_DEFAULTS["phash_weight"],
                    help="score fusion with the perceptual hash: weight per bit (0: none)")
    ap.add_argument("--phash-bits", type=float, default=ev.CALIB_DEFAULTS["phash_bits"],
                    help="score fusion: Hamming distances below this add weight x (bits - distance)")
    ap.add_argument("--vectors", metavar="PREFIX",
                    help="also write parity vectors PREFIX.in.f32 / PREFIX.out.f32 from the same "
                         "model (tests/test_cnn.c checks models/NAME.ndm against tests/data/cnn/NAME.*)")
    args = ap.parse_args()
    model, label = ev.load_model(args.ckpt)
    model.eval()
    bg, calib = None, None
    if args.bg:
        bg = ev.bg_f16(ev.embed(model, ev.background_inputs(args.bg, net.SIZE)))
        off = ev.calib_offset(bg, args.bg_k, args.bg_beta, args.bg_stat, groups=ev.background_groups(args.bg))
        calib = dict(stat=args.bg_stat, k=args.bg_k, beta=args.bg_beta, offset=off,
                     phash_weight=args.phash_weight, phash_bits=args.phash_bits)
    export_model(model, args.out, name=args.name, input_hw=(net.SIZE, net.SIZE), mean=net.MEAN, std=net.STD,
                 background=bg, calib=calib)
    print(f"exported {label} -> {args.out} ({os.path.getsize(args.out)} bytes)" +
          (f"; background {len(bg)} vectors, calibration {calib}" if calib else ""))
    if args.vectors:
        g = torch.Generator().manual_seed(200)
        x = torch.randn(4, 3, net.SIZE, net.SIZE, generator=g)
        with torch.no_grad():
            y = model(x)
        x.numpy().astype("<f4").tofile(args.vectors + ".in.f32")
        y.numpy().astype("<f4").tofile(args.vectors + ".out.f32")
        print(f"parity vectors {args.vectors}.in.f32, .out.f32: 4 inputs, D={y.shape[1]}")
        if calib:
            # golden background statistics of those 4 outputs, from the file's
            # own float16 set (tests/test_calib.c)
            r = read_ndm(args.out)
            st = ev.calib_stat(y.numpy().astype("float32"), r["background_f16"].astype("float32"),
                               r["calib"]["k"], r["calib"]["stat"])
            st.astype("<f4").tofile(args.vectors + ".calib.f32")
            print(f"calibration golden values {args.vectors}.calib.f32: {st}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
