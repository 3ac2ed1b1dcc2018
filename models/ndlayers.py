"""neardup's PyTorch layer vocabulary.

The C engine (src/cnn*.c) runs models built from standard torch.nn modules
(Conv2d, BatchNorm2d, ReLU, ReLU6, Hardswish, SiLU, MaxPool2d, AvgPool2d,
AdaptiveAvgPool2d, Linear, Flatten, residual `+`) plus the two modules
defined here. models/export.py converts such a model to the .ndm format; the
training code (models/train/) builds its network from the same pieces, so the
two never drift apart.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class GeM(nn.Module):
    """Generalised-mean pooling over H and W: (mean(x.clamp(eps)^p))^(1/p).

    in: [N][C][H][W], out: [N][C]. p is a learned scalar (p=1: average
    pooling, p->inf: max pooling); SSCD uses p=3.
    """

    def __init__(self, p=3.0, eps=1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([float(p)]))
        self.eps = eps

    def forward(self, x):
        p = self.p
        return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class L2Norm(nn.Module):
    """L2-normalise each row: in [N][D], out [N][D]."""

    def __init__(self, eps=1e-12):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        return F.normalize(x, p=2.0, dim=1, eps=self.eps)
