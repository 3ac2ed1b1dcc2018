#!/usr/bin/python3
"""The benchmark architecture for the CNN engine: a plain ResNet-style
embedding net of the kind models/ trains (3x3/1x1 convs with folded BN and
ReLU, residual adds, GeM, 256-d projection, L2Norm), random weights.

    /usr/bin/python3 bench/benchnet.py OUT.ndm [--hw 128] [--state OUT.pt]

At 128x128 input: ~0.31 GFLOP per image (2 per multiply-add), ~1.5 M
parameters. bench/torch_infer.py builds the same module (same seed) for the
PyTorch side of the comparison.
"""
import argparse
import os
import sys

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))
from ndlayers import GeM, L2Norm  # noqa: E402


def cbr(cin, cout, k=3, s=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = cbr(c, c)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.b(self.a(x)) + x)


class BenchNet(nn.Module):
    """128x128 -> 64 (stem) -> 32 -> 16 -> 8, widths 32/48/96/192, head 512."""

    def __init__(self, dim=256):
        super().__init__()
        self.features = nn.Sequential(
            cbr(3, 32, 3, 2),            # 64x64
            cbr(32, 48, 3, 2),           # 32x32
            Res(48),
            cbr(48, 96, 3, 2),           # 16x16
            Res(96),
            cbr(96, 192, 3, 2),          # 8x8
            Res(192),
            cbr(192, 512, 1, 1),
        )
        self.pool = GeM(3.0)
        self.proj = nn.Linear(512, dim)
        self.norm = L2Norm()

    def forward(self, x):
        return self.norm(self.proj(self.pool(self.features(x))))


def build(seed=7):
    torch.manual_seed(seed)
    m = BenchNet()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=g))
                mod.bias.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return m.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--hw", type=int, default=128)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(HERE, "..", "models"))
    from export import export_model
    m = build()
    export_model(m, a.out, name=f"benchnet-{a.hw}", input_hw=(a.hw, a.hw),
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
