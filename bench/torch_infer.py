#!/usr/bin/python3
"""PyTorch CPU inference of the benchmark model (bench/benchnet.py), for the
comparison in bench/suite_cnn.sh: images/s at each thread count (PyTorch's
intra-op threads, torch.set_num_threads) and batch size, under
torch.inference_mode, same input as bench_cnn.

    /usr/bin/python3 bench/torch_infer.py [--hw 128] [--seconds 3]
        [--threads 1,2] [--batches 1,16] [--check C_EMBED.f32]

--check compares PyTorch's embeddings of bench_cnn's deterministic input
with the ones bench_cnn --embed wrote (cosine per image).
Prints markdown.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchnet import build  # noqa: E402


def fill_input(n):
    """The generator of bench_cnn.c's fill_input (an LCG)."""
    s = 12345
    out = np.empty(n, dtype=np.float32)
    for i in range(n):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = np.float32(s >> 8) / np.float32(1 << 24) * np.float32(4.0) - np.float32(2.0)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--check", metavar="C_EMBED.f32")
    a = ap.parse_args()
    model = build()
    hw = a.hw
    print(f"PyTorch {torch.__version__}, {torch.__config__.parallel_info().splitlines()[0]}")
    print(f"mkldnn available: {torch.backends.mkldnn.is_available()}\n")
    if a.check:
        c = np.fromfile(a.check, dtype="<f4")
        n = c.size // 256
        x = torch.from_numpy(fill_input(n * 3 * hw * hw).reshape(n, 3, hw, hw))
        with torch.inference_mode():
            y = model(x).numpy()
        c = c.reshape(n, -1)
        cos = (c * y).sum(1) / np.linalg.norm(c, axis=1) / np.linalg.norm(y, axis=1)
        print("C engine vs PyTorch on the benchmark input, cosine per image: " +
              ", ".join(f"{v:.7f}" for v in cos) + "\n")
    print(f"PyTorch whole model, images/s ({a.seconds:.0f} s per point; best 0.5 s window, mean, and\n"
          "images per CPU-second of the process times the thread count):\n")
    print("| threads | batch | images/s best | images/s mean | images/CPU-s x threads |\n|---:|---:|---:|---:|---:|")
    for t in [int(v) for v in a.threads.split(",")]:
        torch.set_num_threads(t)
        for b in [int(v) for v in a.batches.split(",")]:
            x = torch.from_numpy(fill_input(3 * hw * hw).reshape(1, 3, hw, hw)).repeat(b, 1, 1, 1)
            with torch.inference_mode():
                model(x)  # warm-up
                # windows of >= 0.5 s; the best window counts (shared machine), mean kept
                n, t0, c0 = 0, time.perf_counter(), time.process_time()
                tw, nw, best = t0, 0, 0.0
                while time.perf_counter() - t0 < a.seconds:
                    model(x)
                    n += b
                    nw += b
                    now = time.perf_counter()
                    if now - tw >= 0.5:
                        best = max(best, nw / (now - tw))
                        tw, nw = now, 0
                dt = time.perf_counter() - t0
                dc = time.process_time() - c0
            best = best or n / dt
            print(f"| {t} | {b} | {best:.1f} | {n / dt:.1f} | {n / dc * t:.1f} |", flush=True)


if __name__ == "__main__":
    main()
