#!/usr/bin/python3
"""The small random-weight model the CLI's end-to-end tests run with.

    /usr/bin/python3 tests/data/cli/make_model.py [OUT]   (default tests/data/cli/tiny.ndm)

A narrow copy of models/train/net.py's architecture (3x3 conv + BN + ReLU
stages, residual blocks, GeM, Linear, L2Norm) at 64x64 input with 64-d
output and fixed random weights, so `make test` does not depend on the
trained model. Random features still tell a mildly edited copy (rescaled,
recompressed, EXIF-rotated) from other images, which is what the tests ask;
harder edits need the trained models/neardup.ndm.

The projection is centred: its bias is minus the projected mean GeM feature
of 64 synthetic images (smooth random colour fields, made here with a fixed
seed), so that the direction all ReLU features share does not dominate the
cosine. Deterministic: a re-run writes the same bytes on the same torch.

Calibrated similarity: the file carries a background set (the
embeddings of 400 more synthetic images, float16) and a calibration (mean of
the top 3, beta 0.5, offset from models/train/eval.py's calib_offset).
It also writes OUT-without-.ndm + ".calib.f32", the golden values of
tests/test_calib.c: 16 embeddings [16][64] float32 (of other synthetic
images), then their background statistics [16] computed by NumPy
(eval.calib_stat on the file's float16 background set), little-endian.
"""
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models"))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
from export import export_model  # noqa: E402
from net import NearDupNet, MEAN, STD  # noqa: E402
import eval as ev  # noqa: E402
from export import read_ndm  # noqa: E402
import numpy as np  # noqa: E402

SIZE = 64
STAGES = [(8, 2, 0), (16, 2, 1), (32, 2, 1), (48, 2, 0)]


def synthetic(n, g):
    """n smooth random colour fields, normalised like the C prep stage."""
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = nn.functional.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def build():
    torch.manual_seed(11)
    m = NearDupNet(dim=64, stages=STAGES, head=96)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=g))
                mod.bias.copy_(0.1 * torch.randn(n, generator=g))
        m.eval()
        feats = m.pool(m.features(synthetic(64, g)))
        m.proj.bias.copy_(-(feats.mean(0) @ m.proj.weight.t()))
    return m


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "tiny.ndm")
    m = build()
    g = torch.Generator().manual_seed(12)
    with torch.no_grad():
        bg = ev.bg_f16(m(synthetic(400, g)).numpy())
        probe = m(synthetic(16, g)).numpy().astype(np.float32)
    k, beta, stat = 3, 0.5, ev.CALIB_MEAN
    calib = dict(stat=stat, k=k, beta=beta, offset=ev.calib_offset(bg, k, beta, stat))
    ck = export_model(m, out, name="neardup-tiny-test", input_hw=(SIZE, SIZE), mean=MEAN, std=STD,
                      background=bg, calib=calib)
    # golden statistics from the file's own float16 background set
    r = read_ndm(out)
    st = ev.calib_stat(probe, r["background_f16"].astype(np.float32), r["calib"]["k"], r["calib"]["stat"])
    gold = out[:-4] + ".calib.f32" if out.endswith(".ndm") else out + ".calib.f32"
    np.concatenate([probe.ravel(), st.astype(np.float32)]).astype("<f4").tofile(gold)
    print(f"wrote {out} ({os.path.getsize(out)} bytes, checksum {ck:016x}, calibration {r['calib']}) "
          f"and {gold}")


if __name__ == "__main__":
    main()
