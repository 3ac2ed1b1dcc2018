#!/usr/bin/python3
"""Export a PyTorch embedding model to neardup's .ndm format (models/FORMAT.md).

Python API (run with models/ on sys.path):

    from export import export_model
    export_model(model, "models/neardup.ndm", name="neardup-v1",
                 input_hw=(128, 128), mean=(0.485, 0.456, 0.406),
                 std=(0.229, 0.224, 0.225), background=None)

The model takes [N,3,H,W] float input normalised as (pixel/255 - mean)/std
and returns [N,D] L2-normalised embeddings. It is traced with torch.fx, so
it may be written as any nn.Module tree whose leaves are: Conv2d (any kernel,
stride, padding, dilation, groups), BatchNorm2d (folded into the conv before
it, else a per-channel affine layer), ReLU, ReLU6, Hardswish, SiLU,
MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Linear, Identity,
Dropout, ndlayers.GeM, ndlayers.L2Norm, plus residual `+`, torch.flatten,
x.flatten(1), x.view(x.size(0), -1), x.mean((2, 3)) and the functional forms
of the activations and pools. Anything else is refused with a message naming
the node. Activations and BatchNorms are fused into the layer before them.

After conversion the layer list is re-run by a small reference interpreter
(torch.nn.functional, float64) and compared with the model itself, so a file
that export_model writes computes what the model computes.

background: None, or a [K,D] array (numpy or torch) of embeddings stored as
float16 in the optional BACKGROUND section (for score calibration).

Command line: /usr/bin/python3 models/export.py --help
"""
import argparse
import copy
import importlib
import operator
import os
import struct
import sys

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F
from torch.fx.passes.shape_prop import ShapeProp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ndlayers  # noqa: E402

try:
    import xxhash

    def xxh3(b):
        return xxhash.xxh3_64_intdigest(b)
except ImportError:  # pragma: no cover
    xxhash = None

    def xxh3(b):
        raise RuntimeError("python3-xxhash is needed to write .ndm files: apt-get install python3-xxhash")

# ---- the format (keep in lock-step with src/cnn_impl.h) ----
MAGIC = b"NDMODEL\0"
VERSION = 1
ALIGN = 64
SEC_META, SEC_TENSORS, SEC_LAYERS, SEC_DATA, SEC_BACKGROUND, SEC_CALIB = 1, 2, 3, 4, 5, 6
CALIB_MEAN_TOPK, CALIB_KTH = 1, 2
SEC_REQUIRED = 1
F32, F16 = 1, 2
OP = dict(CONV=1, LINEAR=2, AFFINE=3, ACT=4, MAXPOOL=5, AVGPOOL=6, GAP=7, GEM=8, ADD=9,
          FLATTEN=10, L2NORM=11)
OP_NAME = {v: k for k, v in OP.items()}
ACT = dict(NONE=0, RELU=1, RELU6=2, HARDSWISH=3, SILU=4)
ACT_NAME = {v: k for k, v in ACT.items()}

HEADER = struct.Struct("<8sIIQIIQ24s")          # 64
SECTION = struct.Struct("<IIQQQ")               # 32
META = struct.Struct("<64s4I3f3f3I44s")         # 160
TENSOR = struct.Struct("<56sII4IQQ")            # 96
LAYER = struct.Struct("<II2i2i12i4f3I28s")      # 128
BACKGROUND = struct.Struct("<IIII")             # 16
CALIB = struct.Struct("<IIffff8x")              # 32 (phash weight, bits: 0 before issue 4)
assert (HEADER.size, SECTION.size, META.size, TENSOR.size, LAYER.size, BACKGROUND.size, CALIB.size) == \
    (64, 32, 160, 96, 128, 16, 32)


class ExportError(ValueError):
    """The model uses something the .ndm format / C engine cannot run."""


class _Layer:
    def __init__(self, op, name, in0, in1=-1, act=0, weight=None, bias=None, p=(), f=()):
        self.op, self.name, self.in0, self.in1, self.act = op, name, in0, in1, act
        self.weight, self.bias = weight, bias      # numpy float32 arrays or None
        self.p = list(p) + [0] * (12 - len(p))
        self.f = list(f) + [0.0] * (4 - len(f))
        self.shape = None                          # (C, H, W) per image


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m, qualname):
        if isinstance(m, (ndlayers.GeM, ndlayers.L2Norm)):
            return True
        return super().is_leaf_module(m, qualname)


def _pair(v):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ExportError(f"expected 2 values, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def _act_of_module(m):
    if isinstance(m, nn.ReLU6):  # before Hardtanh: ReLU6 subclasses it
        return ACT["RELU6"]
    if isinstance(m, nn.ReLU):
        return ACT["RELU"]
    if isinstance(m, nn.Hardtanh):
        if m.min_val == 0.0 and m.max_val == 6.0:
            return ACT["RELU6"]
        return None
    if isinstance(m, nn.Hardswish):
        return ACT["HARDSWISH"]
    if isinstance(m, nn.SiLU):
        return ACT["SILU"]
    return None


_ACT_FUNCS = {
    F.relu: "RELU", torch.relu: "RELU", F.relu6: "RELU6", F.hardswish: "HARDSWISH",
    F.silu: "SILU", torch.nn.functional.hardtanh: None,
}
_ACT_METHODS = {"relu": "RELU", "relu_": "RELU"}


class _Converter:
    def __init__(self, model, input_hw):
        self.model = model
        self.H, self.W = input_hw
        self.layers = []
        self.value = {}      # fx node -> layer index (-1 = input)
        self.owner = {}      # layer index -> the fx node that created it

    def fail(self, node, why):
        raise ExportError(f"cannot export node '{node.name}' ({node.op} {node.target}): {why}")

    def shape_of(self, node):
        tm = node.meta.get("tensor_meta")
        if tm is None or not hasattr(tm, "shape"):
            return None
        return tuple(tm.shape)

    def val(self, node, arg):
        if not isinstance(arg, fx.Node) or arg not in self.value:
            self.fail(node, f"input {arg!r} is not a tensor the engine computes")
        return self.value[arg]

    def add(self, node, layer):
        layer.name = node.name
        self.layers.append(layer)
        idx = len(self.layers) - 1
        self.value[node] = idx
        self.owner[idx] = node
        return idx

    def alias(self, node, src):
        self.value[node] = self.val(node, src)

    def fusable(self, node, src):
        """Layer index of src if an activation / BN at node may fuse into it."""
        if not isinstance(src, fx.Node) or src not in self.value:
            return None
        idx = self.value[src]
        if idx < 0 or self.owner.get(idx) is not src or len(src.users) != 1:
            return None
        if self.layers[idx].act != ACT["NONE"]:
            return None
        return idx

    def act(self, node, src, act):
        idx = self.fusable(node, src)
        if idx is not None:
            self.layers[idx].act = act
            self.value[node] = idx
            self.owner[idx] = node
        else:
            self.add(node, _Layer(OP["ACT"], "", self.val(node, src), act=act))

    def conv(self, node, m):
        if m.padding_mode != "zeros":
            self.fail(node, f"padding_mode {m.padding_mode!r} (only 'zeros')")
        kh, kw = _pair(m.kernel_size)
        sh, sw = _pair(m.stride)
        dh, dw = _pair(m.dilation)
        if isinstance(m.padding, str):
            if m.padding == "valid":
                ph = pw = 0
            else:  # 'same' (stride 1): symmetric only
                if (dh * (kh - 1)) % 2 or (dw * (kw - 1)) % 2:
                    self.fail(node, "padding='same' with an even kernel is asymmetric")
                ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
        else:
            ph, pw = _pair(m.padding)
        w = m.weight.detach().double().numpy()
        b = None if m.bias is None else m.bias.detach().double().numpy()
        lay = _Layer(OP["CONV"], "", self.val(node, node.args[0]), weight=w, bias=b,
                     p=(m.out_channels, kh, kw, sh, sw, ph, pw, dh, dw, m.groups))
        self.add(node, lay)

    def batchnorm(self, node, m):
        if m.running_mean is None or m.running_var is None:
            self.fail(node, "BatchNorm2d without running statistics")
        scale = (m.weight.detach().double() if m.weight is not None else torch.ones(m.num_features,
                 dtype=torch.float64)) / torch.sqrt(m.running_var.double() + m.eps)
        shift = (m.bias.detach().double() if m.bias is not None else torch.zeros(m.num_features,
                 dtype=torch.float64)) - m.running_mean.double() * scale
        scale, shift = scale.numpy(), shift.numpy()
        src = node.args[0]
        idx = self.fusable(node, src)
        if idx is not None and self.layers[idx].op == OP["CONV"]:
            L = self.layers[idx]
            L.weight = L.weight * scale[:, None, None, None]
            L.bias = (L.bias if L.bias is not None else 0.0) * scale + shift
            self.value[node] = idx
            self.owner[idx] = node
        else:
            self.add(node, _Layer(OP["AFFINE"], "", self.val(node, src), weight=scale, bias=shift))

    def pool(self, node, is_max, k, s, p, dil=1, ceil=False, count_pad=True, divisor=None):
        if ceil:
            self.fail(node, "ceil_mode=True")
        if divisor is not None:
            self.fail(node, "divisor_override")
        if _pair(dil) != (1, 1):
            self.fail(node, "dilated pooling")
        kh, kw = _pair(k)
        sh, sw = _pair(s if s is not None and s != [] else k)
        ph, pw = _pair(p)
        op = OP["MAXPOOL"] if is_max else OP["AVGPOOL"]
        self.add(node, _Layer(op, "", self.val(node, node.args[0]),
                              p=(kh, kw, sh, sw, ph, pw, 0 if is_max else int(bool(count_pad)))))

    def flatten(self, node, src, start=1, end=-1):
        shp = self.shape_of(src)
        if start != 1 or end not in (-1, len(shp) - 1 if shp else -1):
            self.fail(node, f"flatten(start_dim={start}, end_dim={end}) (only start_dim=1)")
        if shp is not None and len(shp) == 2:
            self.alias(node, src)
        else:
            self.add(node, _Layer(OP["FLATTEN"], "", self.val(node, src)))

    def gap(self, node, src):
        self.add(node, _Layer(OP["GAP"], "", self.val(node, src)))

    def call_module(self, node):
        m = self.model.get_submodule(node.target)
        x = node.args[0] if node.args else None
        a = _act_of_module(m)
        if a is not None:
            return self.act(node, x, a)
        if isinstance(m, nn.Conv2d):
            return self.conv(node, m)
        if isinstance(m, nn.BatchNorm2d):
            return self.batchnorm(node, m)
        if isinstance(m, (nn.Identity, nn.Dropout, nn.Dropout2d)):
            return self.alias(node, x)
        if isinstance(m, nn.MaxPool2d):
            if m.return_indices:
                self.fail(node, "return_indices=True")
            return self.pool(node, True, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        if isinstance(m, nn.AvgPool2d):
            return self.pool(node, False, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode,
                             m.count_include_pad, m.divisor_override)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != (1, 1):
                self.fail(node, f"AdaptiveAvgPool2d({m.output_size}) (only 1)")
            return self.gap(node, x)
        if isinstance(m, nn.Flatten):
            return self.flatten(node, x, m.start_dim, m.end_dim)
        if isinstance(m, nn.Linear):
            shp = self.shape_of(x)
            if shp is None or len(shp) != 2:
                self.fail(node, f"Linear on a {shp} tensor (flatten to [N, C] first)")
            w = m.weight.detach().double().numpy()
            b = None if m.bias is None else m.bias.detach().double().numpy()
            return self.add(node, _Layer(OP["LINEAR"], "", self.val(node, x), weight=w, bias=b,
                                         p=(m.out_features,)))
        if isinstance(m, ndlayers.GeM):
            p = float(m.p.detach().reshape(-1)[0])
            if m.p.numel() != 1:
                self.fail(node, "GeM with a per-channel p")
            return self.add(node, _Layer(OP["GEM"], "", self.val(node, x), f=(p, float(m.eps))))
        if isinstance(m, ndlayers.L2Norm):
            return self.add(node, _Layer(OP["L2NORM"], "", self.val(node, x), f=(float(m.eps),)))
        self.fail(node, f"module type {type(m).__name__} is not supported")

    def call_function(self, node):
        t, args, kw = node.target, node.args, node.kwargs
        if t in (getattr, operator.getitem) and self.shape_of(node) is None:
            return None  # x.shape[0] and the like: ints for view/reshape
        if t in (operator.add, operator.iadd, torch.add):
            if len(args) != 2 or kw.get("alpha", 1) != 1 or not all(isinstance(a, fx.Node) for a in args):
                self.fail(node, "only tensor + tensor")
            sa, sb = self.shape_of(args[0]), self.shape_of(args[1])
            if sa != sb:
                self.fail(node, f"add of shapes {sa} and {sb} (no broadcasting)")
            return self.add(node, _Layer(OP["ADD"], "", self.val(node, args[0]),
                                         self.val(node, args[1])))
        if t in _ACT_FUNCS:
            if t is F.hardtanh:
                lo = args[1] if len(args) > 1 else kw.get("min_val", -1.0)
                hi = args[2] if len(args) > 2 else kw.get("max_val", 1.0)
                if (lo, hi) != (0.0, 6.0):
                    self.fail(node, "hardtanh other than ReLU6")
                return self.act(node, args[0], ACT["RELU6"])
            return self.act(node, args[0], ACT[_ACT_FUNCS[t]])
        if t is torch.flatten:
            start = args[1] if len(args) > 1 else kw.get("start_dim", 0)
            end = args[2] if len(args) > 2 else kw.get("end_dim", -1)
            return self.flatten(node, args[0], start, end)
        if t is F.adaptive_avg_pool2d:
            out = args[1] if len(args) > 1 else kw.get("output_size")
            if _pair(out) != (1, 1):
                self.fail(node, "adaptive_avg_pool2d to other than 1x1")
            return self.gap(node, args[0])
        if t in (F.max_pool2d, F.avg_pool2d):
            names = (["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"]
                     if t is F.max_pool2d else
                     ["input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                      "divisor_override"])
            v = dict(zip(names, args))
            v.update(kw)
            if t is F.max_pool2d:
                if v.get("return_indices"):
                    self.fail(node, "return_indices=True")
                return self.pool(node, True, v["kernel_size"], v.get("stride"), v.get("padding", 0),
                                 v.get("dilation", 1), v.get("ceil_mode", False))
            return self.pool(node, False, v["kernel_size"], v.get("stride"), v.get("padding", 0), 1,
                             v.get("ceil_mode", False), v.get("count_include_pad", True),
                             v.get("divisor_override"))
        if t is F.normalize:
            p = args[1] if len(args) > 1 else kw.get("p", 2.0)
            dim = args[2] if len(args) > 2 else kw.get("dim", 1)
            eps = args[3] if len(args) > 3 else kw.get("eps", 1e-12)
            shp = self.shape_of(args[0])
            if p != 2 or dim not in (1, -1) or shp is None or len(shp) != 2:
                self.fail(node, "normalize other than p=2 over dim 1 of [N, D]")
            return self.add(node, _Layer(OP["L2NORM"], "", self.val(node, args[0]), f=(float(eps),)))
        self.fail(node, "function not supported")

    def call_method(self, node):
        t, args, kw = node.target, node.args, node.kwargs
        if t in _ACT_METHODS:
            return self.act(node, args[0], ACT[_ACT_METHODS[t]])
        if t == "size":
            return None  # an int, usable only by view/reshape below
        if t == "flatten":
            start = args[1] if len(args) > 1 else kw.get("start_dim", 0)
            end = args[2] if len(args) > 2 else kw.get("end_dim", -1)
            return self.flatten(node, args[0], start, end)
        if t in ("view", "reshape"):
            src, out = self.shape_of(args[0]), self.shape_of(node)
            if out is None or len(out) != 2 or src is None or out[0] != src[0]:
                self.fail(node, f"{t} to {out} (only to [N, -1])")
            return self.flatten(node, args[0])
        if t == "mean":
            dims = args[1] if len(args) > 1 else kw.get("dim")
            dims = sorted(d % 4 for d in (dims if isinstance(dims, (tuple, list)) else [dims]))
            if dims != [2, 3]:
                self.fail(node, f"mean over {dims} (only over H and W)")
            return self.gap(node, args[0])
        if t == "contiguous":
            return self.alias(node, args[0])
        self.fail(node, "method not supported")

    def run(self):
        tracer = _Tracer()
        graph = tracer.trace(self.model)
        gm = fx.GraphModule(self.model, graph)
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, 3, self.H, self.W))
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ExportError(f"the model must take one input, it takes {len(placeholders)}")
        out_node = None
        for node in graph.nodes:
            if node.op == "placeholder":
                self.value[node] = -1
            elif node.op == "call_module":
                self.call_module(node)
            elif node.op == "call_function":
                self.call_function(node)
            elif node.op == "call_method":
                self.call_method(node)
            elif node.op == "output":
                out_node = node.args[0]
                if not isinstance(out_node, fx.Node):
                    raise ExportError("the model must return one tensor")
            else:
                self.fail(node, "parameters used outside modules (get_attr) are not supported")
        out = self.val(out_node, out_node)
        if out < 0:
            raise ExportError("the model returns its input")
        shp = self.shape_of(out_node)
        if shp is None or len(shp) != 2:
            raise ExportError(f"the model must return [N, D], it returns {shp}")
        self.infer_shapes()
        return out, shp[1]

    def infer_shapes(self):
        """Per-image output shapes, the same rules as src/cnn_model.c."""
        def od(i, k, s, p, d=1):
            return (i + 2 * p - d * (k - 1) - 1) // s + 1
        for L in self.layers:
            c, h, w = (3, self.H, self.W) if L.in0 < 0 else self.layers[L.in0].shape
            p = L.p
            if L.op == OP["CONV"]:
                L.shape = (p[0], od(h, p[1], p[3], p[5], p[7]), od(w, p[2], p[4], p[6], p[8]))
            elif L.op == OP["LINEAR"]:
                L.shape = (p[0], 1, 1)
            elif L.op in (OP["MAXPOOL"], OP["AVGPOOL"]):
                L.shape = (c, od(h, p[0], p[2], p[4]), od(w, p[1], p[3], p[5]))
            elif L.op in (OP["GAP"], OP["GEM"]):
                L.shape = (c, 1, 1)
            elif L.op == OP["FLATTEN"]:
                L.shape = (c * h * w, 1, 1)
            else:
                L.shape = (c, h, w)


def run_layers(layers, x):
    """Reference interpreter of a layer list (torch.nn.functional, float64).
    x: [N,3,H,W] -> the output of every layer (list). Used to check exports."""
    acts = {0: lambda t: t, 1: F.relu, 2: F.relu6, 3: F.hardswish, 4: F.silu}
    vals = []
    x = x.double()
    for L in layers:
        a = x if L.in0 < 0 else vals[L.in0]
        w = None if L.weight is None else torch.from_numpy(np.asarray(L.weight, dtype=np.float64))
        b = None if L.bias is None else torch.from_numpy(np.asarray(L.bias, dtype=np.float64))
        p = L.p
        if L.op == OP["CONV"]:
            y = F.conv2d(a, w, b, (p[3], p[4]), (p[5], p[6]), (p[7], p[8]), p[9])
        elif L.op == OP["LINEAR"]:
            y = F.linear(a.reshape(a.shape[0], -1), w, b)
        elif L.op == OP["AFFINE"]:
            y = a * w[None, :, None, None] + b[None, :, None, None]
        elif L.op == OP["ACT"]:
            y = a
        elif L.op == OP["MAXPOOL"]:
            y = F.max_pool2d(a, (p[0], p[1]), (p[2], p[3]), (p[4], p[5]))
        elif L.op == OP["AVGPOOL"]:
            y = F.avg_pool2d(a, (p[0], p[1]), (p[2], p[3]), (p[4], p[5]), count_include_pad=bool(p[6]))
        elif L.op == OP["GAP"]:
            y = a.mean(dim=(2, 3), keepdim=True)
        elif L.op == OP["GEM"]:
            y = a.clamp(min=L.f[1]).pow(L.f[0]).mean(dim=(2, 3), keepdim=True).pow(1.0 / L.f[0])
        elif L.op == OP["ADD"]:
            y = a + (x if L.in1 < 0 else vals[L.in1])
        elif L.op == OP["FLATTEN"]:
            y = a.reshape(a.shape[0], -1, 1, 1)
        elif L.op == OP["L2NORM"]:
            y = F.normalize(a.reshape(a.shape[0], -1), dim=1, eps=L.f[0]).reshape(a.shape[0], -1, 1, 1)
        else:
            raise ExportError(f"unknown op {L.op}")
        if y.dim() == 2:
            y = y[:, :, None, None]
        vals.append(acts[L.act](y))
    return vals


def _align(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _cstr(s, size):
    b = s.encode("utf-8")[: size - 1]
    return b + b"\0" * (size - len(b))


def _serialise(layers, out_idx, name, input_hw, mean, std, embed_dim, background, calib=None):
    tensors, blobs = [], []
    data_off = 0

    def add_tensor(tname, arr):
        nonlocal data_off
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        if a.ndim < 1 or a.ndim > 4:
            raise ExportError(f"tensor {tname}: {a.ndim} dimensions")
        shape = list(a.shape) + [1] * (4 - a.ndim)
        raw = a.astype("<f4").tobytes()
        tensors.append(TENSOR.pack(_cstr(tname, 56), F32, a.ndim, *shape, data_off, len(raw)))
        blobs.append((data_off, raw))
        data_off = _align(data_off + len(raw))
        return len(tensors) - 1

    recs = []
    for i, L in enumerate(layers):
        wi = -1 if L.weight is None else add_tensor(f"{L.name}.weight", L.weight)
        bi = -1 if L.bias is None else add_tensor(f"{L.name}.bias", L.bias)
        recs.append(LAYER.pack(L.op, L.act, L.in0, L.in1, wi, bi, *[int(v) for v in L.p],
                               *[float(v) for v in L.f], *[int(v) for v in L.shape],
                               _cstr(L.name, 28)))
    data = bytearray(data_off)
    for off, raw in blobs:
        data[off:off + len(raw)] = raw
    H, W = input_hw
    meta = META.pack(_cstr(name, 64), 3, H, W, embed_dim, *[float(v) for v in mean],
                     *[float(v) for v in std], len(layers), len(tensors), out_idx, b"\0" * 44)
    sections = [(SEC_META, SEC_REQUIRED, meta), (SEC_TENSORS, SEC_REQUIRED, b"".join(tensors)),
                (SEC_LAYERS, SEC_REQUIRED, b"".join(recs)), (SEC_DATA, SEC_REQUIRED, bytes(data))]
    if background is not None:
        bg = background.detach().cpu().numpy() if isinstance(background, torch.Tensor) else np.asarray(background)
        if bg.ndim != 2 or bg.shape[1] != embed_dim:
            raise ExportError(f"background must be [K, {embed_dim}], it is {list(bg.shape)}")
        raw = np.ascontiguousarray(bg.astype("<f2")).tobytes()
        sections.append((SEC_BACKGROUND, 0, BACKGROUND.pack(bg.shape[0], embed_dim, F16, 0) + raw))
    if calib is not None:
        if background is None:
            raise ExportError("a calibration needs a background set")
        st, k, beta, off = (int(calib["stat"]), int(calib["k"]), float(calib["beta"]), float(calib["offset"]))
        pw, pb = float(calib.get("phash_weight", 0.0)), float(calib.get("phash_bits", 0.0))
        if st not in (CALIB_MEAN_TOPK, CALIB_KTH) or not 1 <= k <= len(bg) or not 0 <= beta <= 8 or \
                not abs(off) <= 8 or not 0 <= pw <= 1 or not 0 <= pb <= 64:
            raise ExportError(f"bad calibration {calib}")
        sections.append((SEC_CALIB, 0, CALIB.pack(st, k, beta, off, pw, pb)))
    return _assemble(sections)


def _assemble(sections):
    """header + section table + 64-aligned sections + XXH3-64 trailer."""
    table_off = HEADER.size
    pos = _align(table_off + SECTION.size * len(sections))
    placed = []
    for typ, flags, body in sections:
        placed.append((typ, flags, pos, body))
        pos = _align(pos + len(body))
    file_size = pos + 8
    out = bytearray(pos)
    out[0:HEADER.size] = HEADER.pack(MAGIC, VERSION, HEADER.size, file_size, len(sections), 0,
                                     table_off, b"\0" * 24)
    for i, (typ, flags, off, body) in enumerate(placed):
        out[table_off + i * SECTION.size: table_off + (i + 1) * SECTION.size] = \
            SECTION.pack(typ, flags, off, len(body), xxh3(body))
        out[off:off + len(body)] = body
    out += struct.pack("<Q", xxh3(bytes(out)))
    return bytes(out)


# the limits src/cnn_model.c enforces (keep in step): refuse here what it would refuse
LIM_KERNEL, LIM_STRIDE, LIM_PAD, LIM_CHANNELS = 64, 64, 64, 1 << 16
LIM_ELEMS, LIM_LAYERS, LIM_TENSOR, LIM_HW = 1 << 26, 4096, 1 << 28, 2048


def _check_limits(layers, input_hw):
    if not all(1 <= v <= LIM_HW for v in input_hw):
        raise ExportError(f"input {input_hw} outside 1..{LIM_HW} pixels a side")
    if len(layers) > LIM_LAYERS:
        raise ExportError(f"{len(layers)} layers (the engine takes {LIM_LAYERS})")
    for L in layers:
        p = L.p
        if L.op == OP["CONV"]:
            k, st, pad, dil = p[1:3], p[3:5], p[5:7], p[7:9]
        elif L.op in (OP["MAXPOOL"], OP["AVGPOOL"]):
            k, st, pad, dil = p[0:2], p[2:4], p[4:6], (1, 1)
        else:
            k, st, pad, dil = (1, 1), (1, 1), (0, 0), (1, 1)
        if not (all(1 <= v <= LIM_KERNEL for v in list(k) + list(dil)) and all(1 <= v <= LIM_STRIDE for v in st)
                and all(0 <= v <= LIM_PAD for v in pad)):
            raise ExportError(f"layer '{L.name}': kernel {k}, stride {st}, padding {pad}, dilation {dil} "
                              f"outside the engine's limits")
        c, h, w = L.shape
        if min(c, h, w) < 1 or c * h * w > LIM_ELEMS or (L.op != OP["FLATTEN"] and c > LIM_CHANNELS):
            raise ExportError(f"layer '{L.name}': output {c}x{h}x{w} outside the engine's limits")
        for t in (L.weight, L.bias):
            if t is not None and np.asarray(t).size > LIM_TENSOR:
                raise ExportError(f"layer '{L.name}': a tensor of {np.asarray(t).size} elements")


def convert(model, input_hw):
    """model -> (layers, output layer index, embedding dim). Raises ExportError."""
    model = model.eval()
    hw = tuple(int(v) for v in input_hw)
    conv = _Converter(model, hw)
    out_idx, dim = conv.run()
    _check_limits(conv.layers, hw)
    return conv.layers, out_idx, dim


def export_model(model, path, *, name, input_hw, mean, std, background=None, calib=None):
    """Write model to path in .ndm format; returns the file's XXH3-64 checksum.

    calib: None, or dict(stat=1 (mean of top k) | 2 (k-th), k, beta, offset),
    the calibrated similarity's parameters (optional CALIB section; needs
    background). See models/FORMAT.md.

    Raises ExportError (a ValueError) naming the node when the model uses
    something the engine does not run, or when the converted layers do not
    reproduce the model's output."""
    if len(input_hw) != 2 or len(mean) != 3 or len(std) != 3:
        raise ExportError("input_hw is (H, W); mean and std have 3 values")
    if not all(np.isfinite(v) for v in tuple(mean) + tuple(std)) or any(abs(v) < 1e-12 for v in std):
        raise ExportError(f"bad normalisation mean={mean} std={std}")
    # a private CPU float32 copy in eval mode: the caller's model is untouched
    model = copy.deepcopy(model).cpu().float().eval()
    layers, out_idx, dim = convert(model, input_hw)
    H, W = (int(v) for v in input_hw)
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(4, 3, H, W, generator=g)
    with torch.no_grad():
        want = model(x).double()
        got = run_layers(layers, x)[out_idx].reshape(want.shape)
    norms = want.norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        raise ExportError("the model's output is not L2-normalised (end it with ndlayers.L2Norm)")
    err = (got - want).norm() / want.norm().clamp(min=1e-30)
    if not err < 1e-4:
        raise ExportError(f"internal: converted layers differ from the model (relative error {err:.3g})")
    blob = _serialise(layers, out_idx, name, (H, W), mean, std, dim, background, calib)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(blob)
    os.replace(tmp, path)
    return struct.unpack("<Q", blob[-8:])[0]


# ---- reading (for --info and the tests) ----
def read_ndm(path_or_bytes):
    """Parse an .ndm file (no validation beyond checksums): a dict."""
    b = path_or_bytes if isinstance(path_or_bytes, (bytes, bytearray)) else open(path_or_bytes, "rb").read()
    magic, ver, hsz, fsize, nsec, _, toff, _ = HEADER.unpack_from(b, 0)
    if magic != MAGIC:
        raise ValueError("not a .ndm file")
    if xxh3(b[:-8]) != struct.unpack("<Q", b[-8:])[0]:
        raise ValueError("bad checksum")
    secs = {}
    for i in range(nsec):
        typ, flags, off, size, h = SECTION.unpack_from(b, toff + i * SECTION.size)
        secs[typ] = b[off:off + size]
    m = META.unpack_from(secs[SEC_META])
    res = dict(version=ver, name=m[0].split(b"\0")[0].decode(), input_hw=(m[2], m[3]),
               embed_dim=m[4], mean=m[5:8], std=m[8:11], checksum=struct.unpack("<Q", b[-8:])[0],
               size=len(b), layers=[], tensors=[], output_layer=m[13])
    for i in range(m[12]):
        t = TENSOR.unpack_from(secs[SEC_TENSORS], i * TENSOR.size)
        res["tensors"].append(dict(name=t[0].split(b"\0")[0].decode(), shape=t[3:3 + t[2]]))
    for i in range(m[11]):
        L = LAYER.unpack_from(secs[SEC_LAYERS], i * LAYER.size)
        res["layers"].append(dict(op=OP_NAME.get(L[0], L[0]), act=ACT_NAME.get(L[1], L[1]), inputs=L[2:4],
                                  p=L[6:18], f=L[18:22], shape=L[22:25],
                                  name=L[25].split(b"\0")[0].decode()))
    if SEC_BACKGROUND in secs:
        cnt, dim, _, _ = BACKGROUND.unpack_from(secs[SEC_BACKGROUND])
        res["background"] = (cnt, dim)
        res["background_f16"] = np.frombuffer(secs[SEC_BACKGROUND], "<f2", cnt * dim, BACKGROUND.size) \
            .reshape(cnt, dim)
    if SEC_CALIB in secs:
        st, k, beta, off, pw, pb = CALIB.unpack_from(secs[SEC_CALIB])
        res["calib"] = dict(stat=st, k=k, beta=beta, offset=off, phash_weight=pw, phash_bits=pb)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Export a PyTorch model to neardup's .ndm format, or describe an .ndm file.",
        epilog="Example: models/export.py --factory train.net:NearDupNet --state-dict ckpt.pt "
               "--name neardup-v1 --input-hw 128 128 -o models/neardup.ndm")
    ap.add_argument("--factory", metavar="MODULE:CALLABLE",
                    help="a function returning the nn.Module (MODULE importable with models/ and . on sys.path)")
    ap.add_argument("--state-dict", metavar="FILE", help="torch.load()ed and loaded into the model")
    ap.add_argument("--name", help="model name stored in the file")
    ap.add_argument("--input-hw", nargs=2, type=int, metavar=("H", "W"), default=(128, 128))
    ap.add_argument("--mean", nargs=3, type=float, default=(0.485, 0.456, 0.406))
    ap.add_argument("--std", nargs=3, type=float, default=(0.229, 0.224, 0.225))
    ap.add_argument("--background", metavar="FILE.npy", help="[K, D] embeddings for the background set")
    ap.add_argument("-o", "--output", metavar="FILE.ndm")
    ap.add_argument("--info", metavar="FILE.ndm", help="print a summary of an .ndm file and exit")
    a = ap.parse_args(argv)
    if a.info:
        r = read_ndm(a.info)
        print(f"{a.info}: '{r['name']}' v{r['version']}, input 3x{r['input_hw'][0]}x{r['input_hw'][1]}, "
              f"D={r['embed_dim']}, {len(r['layers'])} layers, {len(r['tensors'])} tensors, "
              f"{r['size']} bytes, xxh3 {r['checksum']:016x}" +
              (f", background {r['background'][0]}x{r['background'][1]}" if "background" in r else "") +
              (", calibration {stat} k={k} beta={beta:g} offset={offset:.6g} phash {phash_weight:g} x "
               "max(0, {phash_bits:g} - d)".format(**r["calib"])
               if "calib" in r else ""))
        for i, L in enumerate(r["layers"]):
            print(f"  {i:3d} {L['name']:<27} {L['op']:<8} act={L['act']:<9} in={L['inputs']} "
                  f"out={'x'.join(map(str, L['shape']))}")
        return 0
    if not (a.factory and a.name and a.output):
        ap.error("--factory, --name and -o are required to export (or use --info)")
    sys.path.insert(0, os.getcwd())
    mod, _, fn = a.factory.partition(":")
    model = getattr(importlib.import_module(mod), fn or "build")()
    if a.state_dict:
        sd = torch.load(a.state_dict, map_location="cpu")
        model.load_state_dict(sd.get("model", sd) if isinstance(sd, dict) else sd)
    bg = np.load(a.background) if a.background else None
    try:
        h = export_model(model, a.output, name=a.name, input_hw=tuple(a.input_hw), mean=a.mean,
                         std=a.std, background=bg)
    except ExportError as e:
        print(f"export.py: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.output} (xxh3 {h:016x})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
