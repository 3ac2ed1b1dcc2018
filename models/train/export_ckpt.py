#!/usr/bin/python3
"""Exports a training checkpoint to neardup's model format with
models/export.py (which checks the converted layers against PyTorch).

  /usr/bin/python3 models/train/export_ckpt.py [--ckpt models/train/checkpoint.pt]
        [--out models/neardup.ndm] [--name neardup-sscd-v1] [--bg 0]
        [--vectors tests/data/cnn/neardup]

--bg N adds N background embeddings of training instances (issue 8).
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
from export import export_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=os.path.join(HERE, "checkpoint.pt"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "neardup.ndm"))
    ap.add_argument("--name", default="neardup-sscd-v1")
    ap.add_argument("--bg", type=int, default=0)
    ap.add_argument("--vectors", metavar="PREFIX",
                    help="also write parity vectors PREFIX.in.f32 / PREFIX.out.f32 from the same "
                         "model (tests/test_cnn.c checks models/NAME.ndm against tests/data/cnn/NAME.*)")
    args = ap.parse_args()
    model, label = ev.load_model(args.ckpt)
    model.eval()
    bg = None
    if args.bg:
        bg = ev.embed(model, ev.background_inputs(args.bg, net.SIZE))
    export_model(model, args.out, name=args.name, input_hw=(net.SIZE, net.SIZE), mean=net.MEAN, std=net.STD,
                 background=bg)
    print(f"exported {label} -> {args.out} ({os.path.getsize(args.out)} bytes)")
    if args.vectors:
        g = torch.Generator().manual_seed(200)
        x = torch.randn(4, 3, net.SIZE, net.SIZE, generator=g)
        with torch.no_grad():
            y = model(x)
        x.numpy().astype("<f4").tofile(args.vectors + ".in.f32")
        y.numpy().astype("<f4").tofile(args.vectors + ".out.f32")
        print(f"parity vectors {args.vectors}.in.f32, .out.f32: 4 inputs, D={y.shape[1]}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
