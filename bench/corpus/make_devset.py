#!/usr/bin/python3
"""Builds neardup's development set (evaluation only).

From the dev packages (bench/corpus/fetch_dev_packages.sh -> cache/dev/pkgs/),
which training never sees:
  originals  : distinct images with min side >= MIN_ORIG, saved as RGB PNG,
               downsized to at most MAXSIDE px (refs/o_NNNNN.png)
  distractors: the other distinct dev images with min side >= MIN_DISTR
               (refs/d_NNNNN.png); unrelated to every original
  queries    : for each original, one copy per edit kind (queries/q_NNNNN_<kind>.png|jpg),
               made with the edits of models/train/augment.py but with parameters
               training does not use (held-out fonts and strings, other strengths).
Writes cache/dev/devset/{refs,queries}/ and manifest.tsv:
  role<TAB>path<TAB>original-id<TAB>kind<TAB>params<TAB>source
Near-identical dev images (same artwork at several sizes, e.g. desktop-base)
are collapsed to one so that the ground truth is unambiguous.

  /usr/bin/python3 bench/corpus/make_devset.py [--max-originals N] [--max-distractors N] [--seed S]
"""
import argparse
import json
import os
import random
import sys

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
import augment as A  # noqa: E402

Image.MAX_IMAGE_PIXELS = None
DEV_PKGS = ["python3-skimage", "gnome-backgrounds", "desktop-base", "megaglest-data",
            "trigger-rally-data", "neverball-data"]
EXTS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".tga")
MAXSIDE = 512
MIN_ORIG = 160
MIN_DISTR = 64
DEV_STRINGS = ["(c) 2024 Example Photo", "SAMPLE", "do not copy", "holiday_pic_0042.jpg",
               "Posted by user123", "MEME TEXT HERE", "www.example.org", "Ünïcödé ✓ 12:30"]

KINDS = ["rescale", "jpeg", "crop50", "crop25", "aspect", "flip", "rot90", "rotate", "color", "grey",
         "blur", "noise", "caption", "border", "screenshot", "overlay", "combo"]


def load_rgb(path):
    im = Image.open(path)
    im.seek(0)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        bg = Image.new("RGB", im.size, (255, 255, 255))
        bg.paste(im, (0, 0), im)
        return bg
    return im.convert("RGB")


def shrink(im, maxside=MAXSIDE):
    w, h = im.size
    s = maxside / max(w, h)
    if s < 1:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    return im


def signature(im):
    g = np.asarray(im.convert("L").resize((16, 16), Image.BOX), np.float32).ravel()
    g -= g.mean()
    n = np.linalg.norm(g)
    return g / n if n > 1e-6 else None


def edit(kind, im, rng, overlay_src):
    """Returns (edited RGB image, params dict, file extension)."""
    w, h = im.size
    p = {}
    ext = "png"
    if kind == "rescale":
        side = rng.choice([64, 96, 128])
        s = side / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), rng.choice([Image.LANCZOS, Image.BICUBIC]))
        p["side"] = side
    elif kind == "jpeg":
        p["quality"] = rng.choice([5, 12, 22])
        ext = "jpg"
    elif kind in ("crop50", "crop25"):
        area = 0.5 if kind == "crop50" else 0.25
        ar = rng.uniform(0.8, 1.25)
        cw, ch = min(1, (area * ar) ** 0.5), min(1, (area / ar) ** 0.5)
        x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
        im = A.crop_frac(im, x0, y0, x0 + cw, y0 + ch)
        p.update(x0=round(x0, 3), y0=round(y0, 3), w=round(cw, 3), h=round(ch, 3))
    elif kind == "aspect":
        f = rng.choice([0.55, 0.65, 1.6, 1.8])
        im = im.resize((max(8, int(w * f)), h), Image.BICUBIC)
        p["x_stretch"] = f
    elif kind == "flip":
        im = im.transpose(Image.FLIP_LEFT_RIGHT)
    elif kind == "rot90":
        d = rng.choice([90, 270])
        im = A.rotate(im, d)
        p["degrees"] = d
    elif kind == "rotate":
        d = rng.choice([-1, 1]) * rng.uniform(4, 9)
        im = A.rotate(im, d, (255, 255, 255), expand=True)
        p["degrees"] = round(d, 2)
    elif kind == "color":
        b, c, s, hh = rng.uniform(0.65, 1.35), rng.uniform(0.6, 1.4), rng.uniform(0.4, 1.6), rng.uniform(-0.06, 0.06)
        im = A.color(im, b, c, s, hh)
        p.update(brightness=round(b, 2), contrast=round(c, 2), saturation=round(s, 2), hue=round(hh, 3))
    elif kind == "grey":
        im = A.grey(im)
    elif kind == "blur":
        r = rng.uniform(0.006, 0.012) * max(w, h)
        im = A.blur(im, r)
        p["radius"] = round(r, 2)
    elif kind == "noise":
        s = rng.uniform(12, 22)
        im = A.noise(im, s, rng.randrange(1 << 30))
        p["std"] = round(s, 1)
    elif kind == "caption":
        s = rng.choice(DEV_STRINGS)
        f = rng.choice(A.DEV_FONTS)
        im = A.text(im, s, f, rng.uniform(0.07, 0.12), (255, 255, 255), 1.0, rng.uniform(0.02, 0.2), rng.uniform(0.75, 0.85))
        p.update(text=s, font=f)
    elif kind == "border":
        b = rng.uniform(0.05, 0.12)
        col = [rng.randrange(256) for _ in range(3)]
        im = A.border(im, b, b, b, b, col)
        p.update(width=round(b, 3), fill=col)
    elif kind == "screenshot":
        cw = int(max(w, h) * rng.uniform(1.5, 2.0))
        ch = int(cw * rng.uniform(0.6, 0.75))
        frac = rng.uniform(0.4, 0.6)
        im = A.screenshot(im, (cw, ch), frac, rng.random(), rng.random(), (235, 235, 235), (40, 60, 120))
        d = ImageDraw.Draw(im)  # a little UI clutter: menu text and a side panel
        d.text((8, 2), "File  Edit  View  Help", fill=(255, 255, 255), font=A.font(A.DEV_FONTS[0], max(8, ch // 30)))
        d.rectangle((0, ch // 10, cw // 12, ch), fill=(210, 210, 215))
        p.update(canvas=[cw, ch], frac=round(frac, 2))
    elif kind == "overlay":
        o = overlay_src[rng.randrange(len(overlay_src))]
        frac = rng.uniform(0.25, 0.4)
        im = A.overlay(im, o, frac, rng.random(), rng.random(), 1.0)
        p["frac"] = round(frac, 2)
    elif kind == "combo":
        area = rng.uniform(0.45, 0.7)
        cw = ch = area ** 0.5
        x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
        im = A.crop_frac(im, x0, y0, x0 + cw, y0 + ch)
        im = A.color(im, rng.uniform(0.75, 1.25), rng.uniform(0.75, 1.25), rng.uniform(0.6, 1.4))
        im = A.text(im, rng.choice(DEV_STRINGS), rng.choice(A.DEV_FONTS), 0.09, (255, 255, 0), 1.0, 0.05, 0.05)
        s = 256 / max(im.size)
        if s < 1:
            im = im.resize((round(im.size[0] * s), round(im.size[1] * s)), Image.BILINEAR)
        p.update(crop_area=round(area, 2), quality=30)
        p["quality"] = 30
        ext = "jpg"
    else:
        raise ValueError(kind)
    return im, p, ext


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pkgs", default=os.path.join(ROOT, "cache", "dev", "pkgs"))
    ap.add_argument("--out", default=os.path.join(ROOT, "cache", "dev", "devset"))
    ap.add_argument("--max-originals", type=int, default=250)
    ap.add_argument("--max-distractors", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    files = []
    for pkg in DEV_PKGS:
        d = os.path.join(args.pkgs, pkg)
        if not os.path.isdir(d):
            print(f"make_devset: {pkg} missing (run bench/corpus/fetch_dev_packages.sh)", file=sys.stderr)
            continue
        for r, _, fs in os.walk(d):
            for f in sorted(fs):
                if f.lower().endswith(EXTS):
                    files.append((pkg, os.path.join(r, f)))
    files.sort()
    cands, sigs = [], []
    skipped = {"small": 0, "flat": 0, "dup": 0, "error": 0}
    for pkg, path in files:
        try:
            im = Image.open(path)
            if min(im.size) < MIN_DISTR:
                skipped["small"] += 1
                continue
            im = shrink(load_rgb(path))
        except Exception:
            skipped["error"] += 1
            continue
        s = signature(im)
        if s is None or np.asarray(im.convert("L"), np.float32).std() < 8:
            skipped["flat"] += 1
            continue
        if sigs and float(np.max(np.stack(sigs) @ s)) > 0.95:
            skipped["dup"] += 1
            continue
        sigs.append(s)
        cands.append((pkg, path, im))
    print(f"make_devset: {len(files)} files, {len(cands)} distinct, skipped {skipped}")

    orig_pool = [c for c in cands if min(c[2].size) >= MIN_ORIG or min(Image.open(c[1]).size) >= MIN_ORIG]
    rng.shuffle(orig_pool)
    # balance packages: round-robin over packages
    by_pkg = {}
    for c in orig_pool:
        by_pkg.setdefault(c[0], []).append(c)
    originals = []
    while len(originals) < args.max_originals and any(by_pkg.values()):
        for pkg in DEV_PKGS:
            if by_pkg.get(pkg) and len(originals) < args.max_originals:
                originals.append(by_pkg[pkg].pop())
    chosen = {c[1] for c in originals}
    distractors = [c for c in cands if c[1] not in chosen]
    rng.shuffle(distractors)
    distractors = distractors[:args.max_distractors]
    # overlay sources: small transparent dev icons (not among originals)
    overlay_src = []
    for pkg, path in files:
        if len(overlay_src) >= 60:
            break
        if path in chosen:
            continue
        try:
            im = Image.open(path)
            if im.mode == "RGBA" and 32 <= min(im.size) and max(im.size) <= 256:
                overlay_src.append(np.asarray(im.convert("RGBA")))
        except Exception:
            pass
    if not overlay_src:
        overlay_src = [np.asarray(distractors[0][2].convert("RGBA"))]

    os.makedirs(os.path.join(args.out, "refs"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "queries"), exist_ok=True)
    rows = []
    counts = {"originals": {}, "distractors": {}, "queries": {}}
    for i, (pkg, path, im) in enumerate(originals):
        rp = f"refs/o_{i:05d}.png"
        im.save(os.path.join(args.out, rp), compress_level=1)
        rows.append(("ref", rp, str(i), "original", "{}", os.path.relpath(path, args.pkgs)))
        counts["originals"][pkg] = counts["originals"].get(pkg, 0) + 1
        for kind in KINDS:
            q, p, ext = edit(kind, im, rng, overlay_src)
            qp = f"queries/q_{i:05d}_{kind}.{ext}"
            if ext == "jpg":
                q.save(os.path.join(args.out, qp), quality=p["quality"])
            else:
                q.save(os.path.join(args.out, qp), compress_level=1)
            rows.append(("query", qp, str(i), kind, json.dumps(p, ensure_ascii=False), os.path.relpath(path, args.pkgs)))
            counts["queries"][kind] = counts["queries"].get(kind, 0) + 1
    for j, (pkg, path, im) in enumerate(distractors):
        dp = f"refs/d_{j:05d}.png"
        im.save(os.path.join(args.out, dp), compress_level=1)
        rows.append(("ref", dp, "-1", "distractor", "{}", os.path.relpath(path, args.pkgs)))
        counts["distractors"][pkg] = counts["distractors"].get(pkg, 0) + 1
    with open(os.path.join(args.out, "manifest.tsv"), "w") as f:
        f.write("role\tpath\toriginal\tkind\tparams\tsource\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    with open(os.path.join(args.out, "counts.json"), "w") as f:
        json.dump(counts, f, indent=1)
    print(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
