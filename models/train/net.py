"""neardup's copy-detection embedding network (issue 4).

A plain CNN built only from the layer vocabulary the C engine runs
(Conv2d, BatchNorm2d after each conv -- folded at export --, ReLU, residual
`+`, GeM, Linear, L2Norm; see models/ndlayers.py). 3x3 convolutions map
onto GEMM in the engine; residual blocks keep the deeper stages trainable
in a few CPU hours. Input: RGB, stretched to SIZE x SIZE (no crop), then
(x/255 - MEAN)/STD in CHW order, exactly as the C prep stage does.
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ndlayers import GeM, L2Norm  # noqa: E402

SIZE = 128
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DIM = 256

# (out_channels, stride, residual blocks after the strided conv)
STAGES = [(24, 2, 0), (32, 2, 1), (64, 2, 2), (128, 2, 2), (256, 2, 0)]
HEAD = 512  # 1x1 conv widening before GeM (0 = none)


def conv_bn(cin, cout, stride=1, relu=True):
    layers = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """x + BN(conv(ReLU(BN(conv(x))))), then ReLU. The last BN starts at zero
    (SSCD's advice: its entropy weight relies on zero-init residuals)."""

    def __init__(self, c):
        super().__init__()
        self.a = conv_bn(c, c)
        self.b = conv_bn(c, c, relu=False)
        nn.init.zeros_(self.b[1].weight)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.b(self.a(x)))


class NearDupNet(nn.Module):
    def __init__(self, dim=DIM, stages=STAGES, head=HEAD):
        super().__init__()
        layers = []
        cin = 3
        for cout, stride, nres in stages:
            layers.append(conv_bn(cin, cout, stride))
            for _ in range(nres):
                layers.append(ResBlock(cout))
            cin = cout
        if head:
            layers += [nn.Conv2d(cin, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(inplace=True)]
            cin = head
        self.features = nn.Sequential(*layers)
        self.pool = GeM(p=3.0)
        self.proj = nn.Linear(cin, dim)
        self.norm = L2Norm()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.norm(self.proj(self.pool(self.features(x))))


def count_macs(model, size=SIZE):
    """Multiply-adds of one forward pass at size x size (convs + linear)."""
    macs = [0]

    def conv_hook(m, inp, out):
        macs[0] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def lin_hook(m, inp, out):
        macs[0] += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return macs[0]


if __name__ == "__main__":
    m = NearDupNet()
    macs = count_macs(m)
    params = sum(p.numel() for p in m.parameters())
    print(f"input {SIZE}x{SIZE}  MACs {macs/1e6:.1f} M  FLOPs {2*macs/1e9:.3f} G  params {params/1e6:.3f} M  dim {DIM}")
