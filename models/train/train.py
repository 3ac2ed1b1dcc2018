#!/usr/bin/python3
"""Self-supervised copy-detection training for neardup (SSCD-style, issue 4).

Two strongly augmented views of each instance are positives, every other
view in the batch a negative (InfoNCE, temperature 0.05), plus SSCD's
differential-entropy (KoLeo) term on each view's nearest non-matching
neighbour. Runs on the CPU (or --device cuda on a lent GPU machine, see
gpu_train.sh); resumable.

  /usr/bin/python3 models/train/data.py build            # once, after scripts/fetch_training_data.sh
  nohup nice -n 19 /usr/bin/python3 models/train/train.py > cache/train/stdout.log 2>&1 &
  ... later:  .../train.py --resume                      # continues from cache/train/ckpt_full.pt,
                                                         # else from models/train/checkpoint.pt

Writes cache/train/log.txt (one line per --log-every steps), the full state
cache/train/ckpt_full.pt (model, optimizer, step, RNG; every --ckpt-minutes
and on SIGTERM/SIGINT), snapshots cache/train/ckpt_step<N>.pt (weights only,
every --snapshot-every steps) and the compact resumable checkpoint
models/train/checkpoint.pt (fp16 weights, 8-bit Adam moments, step; a few MB,
meant to be committed).
"""
import argparse
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import net  # noqa: E402

CACHE = data.CACHE
COMPACT = os.path.join(HERE, "checkpoint.pt")
FULL = os.path.join(CACHE, "ckpt_full.pt")


def parse():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=128, help="instances per batch (2 views each)")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    ap.add_argument("--wd", type=float, default=1e-5)
    ap.add_argument("--warmup", type=int, default=300, help="linear warm-up steps")
    ap.add_argument("--total-steps", type=int, default=8000, help="cosine schedule length")
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--entropy-weight", type=float, default=1.0,
                    help="KoLeo weight. SSCD used 30 (advising 10 for new set-ups) on a pretrained-style "
                         "init; from scratch here, 10 kept InfoNCE above chance (no alignment) while 1 learns")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--snapshot-every", type=int, default=500)
    ap.add_argument("--low-size", type=int, default=96,
                    help="train at this input size first (cheaper on a shared CPU; the net is fully convolutional)")
    ap.add_argument("--low-until", type=float, default=0.7,
                    help="fraction of --total-steps trained at --low-size; the rest at the model's input size")
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (with a checkpoint) after this long; 0 = never")
    ap.add_argument("--out", default=CACHE, help="directory of log.txt, ckpt_full.pt, snapshots")
    ap.add_argument("--compact", default=COMPACT, help="where the compact resumable checkpoint goes")
    ap.add_argument("--restart-at", type=int, default=0,
                    help="warm restart: from this step a new cosine (peak --restart-lr) runs to --total-steps")
    ap.add_argument("--restart-lr", type=float, default=1e-3)
    ap.add_argument("--resume", action="store_true",
                    help="continue from <out>/ckpt_full.pt, else the compact checkpoint; options not given "
                         "on the command line are taken from the checkpoint's run")
    ap.add_argument("--resume-from", default=None, help="explicit checkpoint to resume from")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU machine is lent")
    ap.add_argument("--plan-minutes", type=float, default=0,
                    help="fit the (restart) schedule to a time budget: after --plan-probe steps the measured "
                         "rate sets --total-steps so the cosine ends after this many minutes of training")
    ap.add_argument("--plan-probe", type=int, default=40)
    return ap.parse_args()


def sscd_loss(emb, temperature, entropy_weight):
    """emb: [2N][D] L2-normalised; rows i and i^1 are the two views of one instance."""
    n2 = emb.shape[0]
    sim = emb @ emb.t()
    idx = torch.arange(n2, device=emb.device)
    pos = idx ^ 1
    self_mask = torch.eye(n2, dtype=torch.bool, device=emb.device)
    logits = (sim / temperature).masked_fill(self_mask, float("-inf"))
    infonce = F.cross_entropy(logits, pos)
    neg_mask = self_mask.clone()
    neg_mask[idx, pos] = True
    neg_sim = sim.masked_fill(neg_mask, -2.0)
    nearest_neg = neg_sim.max(dim=1).values
    dist = (2.0 - 2.0 * nearest_neg).clamp(min=1e-6).sqrt()
    entropy = -dist.log().mean()
    loss = infonce + entropy_weight * entropy
    with torch.no_grad():
        stats = {"infonce": infonce.item(), "entropy": entropy.item(),
                 "pos": sim[idx, pos].mean().item(),
                 "neg": sim.masked_fill(neg_mask, 0).sum().item() / (n2 * (n2 - 2)),
                 "nn_neg": nearest_neg.mean().item()}
    return loss, stats


def lr_at(step, args):
    if args.restart_at and step >= args.restart_at:
        # warm restart (SGDR): a short ramp to --restart-lr, then a fresh cosine
        local, span = step - args.restart_at, max(1, args.total_steps - args.restart_at - args.warmup // 3)
        if local < args.warmup // 3:
            return args.restart_lr * (local + 1) / (args.warmup // 3)
        t = min(1.0, (local - args.warmup // 3) / span)
        return args.restart_lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    t = min(1.0, (step - args.warmup) / max(1, args.total_steps - args.warmup))
    return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _q_signed(t):
    """int8 with a per-tensor scale (Adam first moment: refreshed within ~10 steps)."""
    scale = t.abs().max().clamp(min=1e-30) / 127.0
    return {"q": (t / scale).round().clamp(-127, 127).to(torch.int8), "scale": float(scale)}


def _dq_signed(d):
    return d["q"].float() * d["scale"]


def _q_log(t):
    """uint8 in log2 domain (Adam second moment: ~4% relative error in sqrt(v))."""
    lt = t.clamp(min=1e-38).log2()
    lo, hi = float(lt.min()), float(lt.max())
    span = max(hi - lo, 1e-6)
    return {"q": ((lt - lo) / span * 255.0).round().to(torch.uint8), "lo": lo, "hi": hi}


def _dq_log(d):
    return torch.pow(2.0, d["q"].float() / 255.0 * (d["hi"] - d["lo"]) + d["lo"])


def compact_state(model, opt, step, args):
    """fp16 weights (BN statistics kept fp32), int8 / log-uint8 Adam moments:
    about 4 bytes per parameter."""
    sd = {k: (v.half() if v.is_floating_point() and "running" not in k else v).cpu()
          for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    moments = {}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if st:
                moments[names[id(p)]] = (_q_signed(st["exp_avg"].cpu()), _q_log(st["exp_avg_sq"].cpu()),
                                         int(st["step"]))
    return {"format": "neardup-train-compact-1", "model": sd, "moments": moments, "step": step,
            "args": vars(args), "arch": {"stages": net.STAGES, "head": net.HEAD, "dim": net.DIM, "size": net.SIZE}}


def load_compact(ck, model, opt):
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
    params = dict(model.named_parameters())
    for n, (m, v, s) in ck["moments"].items():
        p = params[n]
        opt.state[p] = {"exp_avg": _dq_signed(m).to(p.device), "exp_avg_sq": _dq_log(v).to(p.device),
                        "step": torch.tensor(float(s))}
    return ck["step"]


def normalise(x):
    mean = torch.tensor(net.MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(net.STD, device=x.device).view(1, 3, 1, 1)
    return (x.float() / 255.0 - mean) / std


def main():
    args = parse()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    full_path = os.path.join(args.out, "ckpt_full.pt")
    dev = torch.device(args.device)
    model = net.NearDupNet().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    step = 0
    wall_before = 0.0
    log = open(os.path.join(args.out, "log.txt"), "a")

    def say(msg):
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    src = None
    if args.resume or args.resume_from:
        src = args.resume_from or (full_path if os.path.exists(full_path) else args.compact)
    if src:
        ck = torch.load(src, map_location="cpu")
        given = {a.split("=")[0][2:].replace("-", "_") for a in sys.argv[1:] if a.startswith("--")}
        for k, v in ck.get("args", {}).items():
            if k not in given and k not in ("resume", "resume_from", "out", "compact", "device", "threads",
                                            "workers", "plan_minutes", "plan_probe") and hasattr(args, k):
                setattr(args, k, v)
        say(f"run options: {vars(args)}")
        if ck.get("format") == "neardup-train-compact-1":
            step = load_compact(ck, model, opt)
            wall_before = ck.get("wall", 0.0)
        else:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["opt"])
            step = ck["step"]
            wall_before = ck.get("wall", 0.0)
            torch.set_rng_state(ck["torch_rng"])
            random.setstate(ck["py_rng"])
        say(f"resumed from {src} at step {step}")
    else:
        torch.manual_seed(args.seed)
        say(f"new run: {vars(args)}")
    macs = net.count_macs(net.NearDupNet())
    nparams = sum(p.numel() for p in model.parameters())
    say(f"model: {2*macs/1e9:.3f} GFLOP/image at {net.SIZE}x{net.SIZE}, {nparams/1e6:.3f} M params, dim {net.DIM}")

    def size_at(st):
        return args.low_size if st < args.low_until * args.total_steps else net.SIZE

    def make_loader(st):
        stream = data.PairStream(size_at(st), seed=f"{args.seed}-{st}")

        class DS(torch.utils.data.IterableDataset):
            def __iter__(self):
                torch.set_num_threads(1)
                return iter(stream)

        say(f"data: {len(stream.store)} instances, views of {size_at(st)}x{size_at(st)}")
        return torch.utils.data.DataLoader(DS(), batch_size=args.pairs, num_workers=args.workers,
                                           persistent_workers=args.workers > 0, pin_memory=dev.type == "cuda",
                                           prefetch_factor=(4 if dev.type == "cuda" else 2) if args.workers > 0
                                           else None)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def save_full():
        wall = wall_before + time.time() - t_start
        atomic_save({"format": "neardup-train-full-1", "model": {k: v.cpu() for k, v in model.state_dict().items()},
                     "opt": opt.state_dict(),
                     "step": step, "wall": wall, "args": vars(args), "torch_rng": torch.get_rng_state(),
                     "py_rng": random.getstate()}, full_path)
        c = compact_state(model, opt, step, args)
        c["wall"] = wall
        atomic_save(c, args.compact)
        say(f"checkpoint step {step}: {full_path}, {args.compact} ({os.path.getsize(args.compact)/2**20:.1f} MiB)")

    model.train()
    t_start = time.time()
    last_ck = time.time()
    t_log = time.time()
    wait = 0.0
    acc = {}
    n_acc = 0
    cur_size = size_at(step)
    loader = make_loader(step)
    it = iter(loader)
    plan = {"step": step + args.plan_probe // 2, "t": None} if args.plan_minutes else None
    while step < args.total_steps and not stop["flag"]:
        if plan and step == plan["step"]:  # start timing once the loader's pipeline is full
            plan["t"] = time.time()
        elif plan and plan["t"] and step == plan["step"] + args.plan_probe:
            rate = args.plan_probe / (time.time() - plan["t"])
            start = args.restart_at if args.restart_at else 0
            spent = (time.time() - t_start) / 60
            args.total_steps = step + int(rate * 60 * max(0.5, args.plan_minutes - spent))
            say(f"plan: {rate:.2f} steps/s, schedule {start}..{args.total_steps} "
                f"({args.plan_minutes:.1f} min of training)")
            plan = None
        if size_at(step) != cur_size:
            del it, loader
            cur_size = size_at(step)
            loader = make_loader(step)
            it = iter(loader)
        t0 = time.time()
        _, a, b = next(it)
        wait += time.time() - t0
        x = torch.stack([a, b], dim=1).reshape(-1, 3, cur_size, cur_size)  # rows 2i, 2i+1: one instance
        x = x.to(dev, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args)
        emb = model(normalise(x))
        loss, stats = sscd_loss(emb, args.temperature, args.entropy_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        stats["loss"] = loss.item()
        for k, v in stats.items():
            acc[k] = acc.get(k, 0.0) + v
        n_acc += 1
        if step % args.log_every == 0:
            dt = time.time() - t_log
            views = n_acc * 2 * args.pairs
            s = " ".join(f"{k} {v / n_acc:.4f}" for k, v in acc.items())
            say(f"step {step} {s} lr {lr_at(step - 1, args):.2e} views/s {views / dt:.1f} "
                f"data_wait {wait / dt:.0%} elapsed {(wall_before + time.time() - t_start) / 60:.1f} min")
            acc, n_acc, wait, t_log = {}, 0, 0.0, time.time()
        if step % args.snapshot_every == 0:
            atomic_save({"model": {k: v.cpu() for k, v in model.state_dict().items()}, "step": step},
                        os.path.join(args.out, f"ckpt_step{step}.pt"))
        if time.time() - last_ck > args.ckpt_minutes * 60:
            save_full()
            last_ck = time.time()
        if args.max_minutes and time.time() - t_start > args.max_minutes * 60:
            break
    save_full()
    say(f"stopped at step {step}")


if __name__ == "__main__":
    main()
