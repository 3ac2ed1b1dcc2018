#!/usr/bin/python3
"""Throughput of the training pipeline's two halves on this machine:
augmentation (views/s, one process = one core) and the model's training
step (images/s, forward + backward + AdamW, --threads threads).
Prints the load average too: on the shared machine, numbers vary with it.

  /usr/bin/python3 models/train/speed.py [--threads 2] [--sizes 96,128]
"""
import argparse
import os
import random
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import net  # noqa: E402
import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="96,128")
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}")
    store = data.ImageStore()
    for size in map(int, args.sizes.split(",")):
        ps = data.PairStream(size, seed=0, store=store)
        rng = random.Random(0)
        for _ in range(10):
            ps.pair(rng)
        t, c = time.time(), time.process_time()
        for _ in range(args.pairs):
            ps.pair(rng)
        dt, dc = time.time() - t, time.process_time() - c
        print(f"augment {size}x{size}: {2*args.pairs/dt:.0f} views/s wall, {2*args.pairs/dc:.0f} views per CPU-second")
        m = net.NearDupNet()
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        x = torch.randn(args.batch, 3, size, size)
        best, cpu = 1e9, 0.0
        for i in range(4):
            t, c = time.time(), time.process_time()
            loss, _ = train.sscd_loss(m(x), 0.05, 10.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i:
                best = min(best, time.time() - t)
                cpu = time.process_time() - c
        print(f"model step {size}x{size}: {args.batch/best:.0f} images/s wall (best of 3, {args.threads} threads), "
              f"{args.batch/cpu:.0f} images per CPU-second")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
