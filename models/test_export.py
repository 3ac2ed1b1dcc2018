#!/usr/bin/python3
"""Checks of models/export.py on its own (Python side; `make test` covers the
C side with the committed files):  /usr/bin/python3 models/test_export.py

- unsupported modules / functions / settings are refused with an ExportError
  naming the node;
- BatchNorm folding and activation fusion give the expected layer list;
- what export_model writes reads back (read_ndm) with the same header
  fields, checksums and background set.
Prints one line per check and "N passed, N failed"; exit status 1 on failure.
"""
import os
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export  # noqa: E402
from export import ExportError, export_model, read_ndm  # noqa: E402
from ndlayers import GeM, L2Norm  # noqa: E402

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def head(c):
    return [GeM(), nn.Linear(c, 8), L2Norm()]


def refused(name, model, hw=(16, 16), needle=""):
    with tempfile.TemporaryDirectory() as d:
        try:
            export_model(model.eval(), os.path.join(d, "m.ndm"), name="t", input_hw=hw,
                         mean=(0, 0, 0), std=(1, 1, 1))
        except ExportError as e:
            check(f"refuses {name}", needle in str(e), f"message: {e}")
            return
        check(f"refuses {name}", False, "exported")


class Mul(nn.Module):
    def forward(self, x):
        return F.normalize((x * x).mean((2, 3)), dim=1)


class NotNormalised(nn.Module):
    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 1)

    def forward(self, x):
        return self.c(x).mean((2, 3))


def main():
    refused("Sigmoid", nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid(), *head(4)), needle="Sigmoid")
    refused("ceil_mode", nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), *head(3)), needle="ceil_mode")
    refused("reflect padding", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), *head(4)),
            needle="padding_mode")
    refused("Linear on 4-D", nn.Sequential(nn.Conv2d(3, 4, 1), nn.Linear(16, 8), L2Norm()), needle="Linear")
    refused("AdaptiveAvgPool2d(2)", nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 4), L2Norm()),
            needle="AdaptiveAvgPool2d")
    refused("tensor * tensor", Mul(), needle="mul")
    refused("unnormalised output", NotNormalised(), needle="L2-normalised")
    refused("dilated pooling", nn.Sequential(nn.MaxPool2d(3, dilation=2), *head(3)), needle="dilated")
    refused("kernel over the engine's limit", nn.Sequential(nn.Conv2d(3, 4, 65, padding=32), *head(4)),
            hw=(70, 70), needle="limits")
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), *head(4)).train()
    with tempfile.TemporaryDirectory() as d:
        export_model(m, os.path.join(d, "m.ndm"), name="t", input_hw=(8, 8), mean=(0, 0, 0), std=(1, 1, 1))
    check("training mode and BN statistics left alone", m.training and int(m[1].num_batches_tracked) == 0)

    # folding and fusion
    m = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.Conv2d(8, 8, 3, 1, 1, groups=8), nn.BatchNorm2d(8), nn.Hardswish(),
                      nn.BatchNorm2d(8), *head(8))
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
                mod.weight.uniform_(0.5, 2)
                mod.bias.uniform_(-1, 1)
    m.eval()
    layers, out, dim = export.convert(m, (16, 16))
    ops = [(export.OP_NAME[L.op], export.ACT_NAME[L.act]) for L in layers]
    want = [("CONV", "RELU"), ("CONV", "HARDSWISH"), ("AFFINE", "NONE"), ("GEM", "NONE"),
            ("LINEAR", "NONE"), ("L2NORM", "NONE")]
    check("BN folded, activations fused", ops == want, f"{ops}")
    check("output index and dim", out == len(layers) - 1 and dim == 8)

    # write, read back
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.ndm")
        bg = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
        h = export_model(m, p, name="roundtrip", input_hw=(16, 16), mean=(0.1, 0.2, 0.3),
                         std=(0.4, 0.5, 0.6), background=bg)
        r = read_ndm(p)
        check("read back header", r["name"] == "roundtrip" and r["input_hw"] == (16, 16) and r["embed_dim"] == 8
              and np.allclose(r["mean"], (0.1, 0.2, 0.3)) and np.allclose(r["std"], (0.4, 0.5, 0.6)), f"{r}")
        check("checksum returned", r["checksum"] == h)
        check("background", r.get("background") == (5, 8))
        check("layer count", len(r["layers"]) == 6)
        raw = bytearray(open(p, "rb").read())
        raw[200] ^= 1
        try:
            read_ndm(bytes(raw))
            check("flipped byte detected", False)
        except ValueError:
            check("flipped byte detected", True)
        try:
            export_model(m, p, name="x", input_hw=(16, 16), mean=(0, 0, 0), std=(1, 1, 1),
                         background=np.zeros((3, 7)))
            check("background dim checked", False)
        except ExportError:
            check("background dim checked", True)
        # the calibration section (issue 8)
        cal = dict(stat=1, k=3, beta=0.65, offset=0.375)
        export_model(m, p, name="cal", input_hw=(16, 16), mean=(0, 0, 0), std=(1, 1, 1), background=bg, calib=cal)
        r = read_ndm(p)
        check("calibration read back", r.get("calib") == dict(cal, beta=float(np.float32(0.65))) and
              np.array_equal(r["background_f16"], bg.astype("<f2")), f"{r.get('calib')}")
        for bad, what in ((dict(cal, k=6), "k beyond the set"), (dict(cal, stat=3), "unknown statistic"),
                          (dict(cal, beta=float("nan")), "beta not finite")):
            try:
                export_model(m, p, name="x", input_hw=(16, 16), mean=(0, 0, 0), std=(1, 1, 1), background=bg,
                             calib=bad)
                check(f"calibration checked: {what}", False)
            except ExportError:
                check(f"calibration checked: {what}", True)
        try:
            export_model(m, p, name="x", input_hw=(16, 16), mean=(0, 0, 0), std=(1, 1, 1), calib=cal)
            check("calibration needs a background set", False)
        except ExportError:
            check("calibration needs a background set", True)

    # the command line
    rc = os.system(f"/usr/bin/python3 {os.path.join(os.path.dirname(__file__), 'export.py')} --help >/dev/null")
    check("--help", rc == 0)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
