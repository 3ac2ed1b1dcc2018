#!/usr/bin/python3
"""Small random-weight models for the C engine's parity test, and their
test vectors.

    /usr/bin/python3 models/testnet.py [OUTDIR]     (default tests/data/cnn)

writes, for each model NAME in {testnet_a, testnet_b}:
    NAME.ndm      the model, exported with models/export.py
    NAME.in.f32   4 inputs, float32 little-endian [4][3][H][W]
    NAME.out.f32  PyTorch's outputs for them, float32 [4][D]
testnet_b also carries an 8-vector background set, bg[k][d] = (k - d) / 16.
tests/test_cnn.c loads these and requires cosine >= 0.99999 per image.

For a shipped model (models/NAME.ndm, e.g. the trained one), write its
vectors with the same factory and checkpoint used to export it:
    /usr/bin/python3 models/testnet.py --vectors tests/data/cnn/NAME \
        --factory MODULE:FN [--state-dict CKPT] --input-hw H W
and `make test` checks it too (tests/test_cnn.c: test_parity_shipped).
Deterministic (fixed seeds), so a re-run reproduces the same bytes on the
same torch version.

testnet_a covers: conv 3x3/s2 + folded BN + ReLU, depthwise 3x3 + BN +
ReLU6, channel-multiplier depthwise, grouped conv + SiLU, 1x1 conv +
Hardswish, dilated conv, asymmetric 5x3 kernel, residual add + ReLU, a
standalone BatchNorm (affine), max pool, average pool without padding
counted, GeM, Linear, L2Norm. testnet_b: a head that
flattens a 2x2 map (torch.flatten), avg pool with padding counted,
functional activations, x.mean((2, 3)), AdaptiveAvgPool2d + Flatten,
view(x.size(0), -1), F.normalize.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import export_model  # noqa: E402
from ndlayers import GeM, L2Norm  # noqa: E402


def cbr(cin, cout, k=3, s=1, p=1, g=1, d=1, act=nn.ReLU):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, dilation=d, groups=g, bias=False),
                         nn.BatchNorm2d(cout), act())


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = cbr(c, c, 3, 1, 1)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(self.b(self.a(x)) + x)


class TestNetA(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 16, 3, 2, 1)
        self.dw = cbr(16, 16, 3, 1, 1, g=16, act=nn.ReLU6)
        self.dwm = nn.Conv2d(16, 32, 3, 2, 1, groups=16)            # channel multiplier 2
        self.grp = cbr(32, 32, 3, 1, 1, g=4, act=nn.SiLU)
        self.pw = nn.Sequential(nn.Conv2d(32, 24, 1), nn.Hardswish())
        self.block = Block(24)
        self.bn = nn.BatchNorm2d(24)                                  # not after a conv
        self.dil = nn.Conv2d(24, 24, 3, 1, 2, dilation=2)
        self.asym = nn.Conv2d(24, 32, (5, 3), (1, 2), (2, 1))
        self.mp = nn.MaxPool2d(3, 2, 1)
        self.ap = nn.AvgPool2d(2, 1, 1, count_include_pad=False)
        self.head = nn.Conv2d(32, 40, 1)
        self.gem = GeM(3.0)
        self.fc = nn.Linear(40, 24)
        self.norm = L2Norm()

    def forward(self, x):
        x = self.pw(self.grp(self.dwm(self.dw(self.stem(x)))))
        x = self.block(x)
        x = self.bn(x)
        x = F.relu(self.dil(x))
        x = self.asym(x)
        x = self.ap(self.mp(x))
        x = F.relu(self.head(x))
        return self.norm(self.fc(self.gem(x)))


class TestNetB(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 12, 3, 2, 0)
        self.c2 = nn.Conv2d(12, 16, 3, 2, 1)
        self.pool = nn.AvgPool2d(3, 2, 1)                             # count_include_pad=True
        self.c3 = nn.Conv2d(16, 8, 1, bias=False)
        self.fc = nn.Linear(8 * 2 * 2, 20)
        self.side = nn.Linear(16, 20)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.side2 = nn.Linear(16, 20, bias=False)

    def forward(self, x):
        x = F.hardswish(self.c1(x))
        x = F.silu(self.c2(x))
        y = self.side(x.mean((2, 3))) + self.side2(self.flat(self.gap(x)))
        x = F.relu6(self.c3(self.pool(x)))
        z = torch.flatten(F.max_pool2d(x, 2), 1)
        z = self.fc(z.view(z.size(0), -1))
        return F.normalize(z + y, dim=1)


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    return model.eval()


BG_DIM = 20  # testnet_b's embedding dimension

MODELS = {
    # name: (class, seed, (H, W))
    "testnet_a": (TestNetA, 1, (40, 36)),
    "testnet_b": (TestNetB, 2, (30, 34)),
}


def vectors(factory, state_dict, hw, prefix, n=4, seed=200):
    """Test vectors for any model (e.g. the trained one): PREFIX.in.f32 (n
    random inputs) and PREFIX.out.f32 (the model's outputs). tests/test_cnn.c
    checks every models/NAME.ndm that has tests/data/cnn/NAME.{in,out}.f32."""
    import importlib
    sys.path.insert(0, os.getcwd())
    mod, _, fn = factory.partition(":")
    model = getattr(importlib.import_module(mod), fn or "build")()
    if state_dict:
        sd = torch.load(state_dict, map_location="cpu")
        model.load_state_dict(sd.get("model", sd) if isinstance(sd, dict) else sd)
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, *hw, generator=g)
    with torch.no_grad():
        y = model(x)
    x.numpy().astype("<f4").tofile(prefix + ".in.f32")
    y.numpy().astype("<f4").tofile(prefix + ".out.f32")
    print(f"{prefix}.in.f32, {prefix}.out.f32: {n} images, D={y.shape[1]}")


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    for name, (cls, seed, hw) in MODELS.items():
        model = randomise(cls(), seed)
        path = os.path.join(outdir, name + ".ndm")
        bg = None
        if name == "testnet_b":  # a small background set: bg[k][d] = (k - d) / 16
            D = BG_DIM
            bg = np.array([[(k - d) / 16.0 for d in range(D)] for k in range(8)], dtype=np.float32)
        export_model(model, path, name=name, input_hw=hw, mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), background=bg)
        g = torch.Generator().manual_seed(100 + seed)
        x = torch.randn(4, 3, *hw, generator=g)
        with torch.no_grad():
            y = model(x)
        x.numpy().astype("<f4").tofile(os.path.join(outdir, name + ".in.f32"))
        y.numpy().astype("<f4").tofile(os.path.join(outdir, name + ".out.f32"))
        print(f"{path}: {os.path.getsize(path)} bytes, D={y.shape[1]}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--vectors":
        import argparse
        ap = argparse.ArgumentParser(prog="testnet.py --vectors",
                                     description="parity vectors for an exported model")
        ap.add_argument("--vectors", metavar="PREFIX", required=True,
                        help="e.g. tests/data/cnn/neardup (for models/neardup.ndm)")
        ap.add_argument("--factory", required=True, metavar="MODULE:FN")
        ap.add_argument("--state-dict", metavar="CKPT")
        ap.add_argument("--input-hw", nargs=2, type=int, required=True, metavar=("H", "W"))
        a = ap.parse_args()
        vectors(a.factory, a.state_dict, tuple(a.input_hw), a.vectors)
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/cnn")
