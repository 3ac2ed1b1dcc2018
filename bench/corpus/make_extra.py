#!/usr/bin/python3
"""Builds the quality benchmark's extra corpora next to the dev set.

Everything comes from the dev packages (bench/corpus/fetch_dev_packages.sh ->
cache/dev/pkgs/), never from the training packages. The dev set itself
(bench/corpus/make_devset.py -> cache/dev/devset/) is left untouched, so its
queries stay what the model card quotes.

  strength : for each dev-set original (refs/o_NNNNN.png), one copy per
             (edit kind, strength), light and strong, plus two combinations:
             cache/quality/strength/s_NNNNN_<kind>_<light|strong>.<ext>
  tiles    : distractors scalable to 100,000+: random crops of the dev
             packages' images at full resolution (never of an image that is a
             dev-set original, a natural-family member or a hard negative; flat
             crops are drawn again), rescaled to 160-400 px, random flip, JPEG q80-92:
             cache/quality/tiles/t_NNNNNN.jpg; tile i depends only on (seed, i),
             so a larger --tiles extends a smaller one
  natural  : near-duplicate families made by others: the same artwork shipped
             at several resolutions or crops (files of one package whose paths
             differ only in a size token: NNxNN directories, -NN / -4x3 / -16x9
             suffixes), members of at least 32 px, kept when every member's 16x16
             grey signature is within cosine 0.75 of the family's largest member;
             families whose largest members match (>= 0.95) are one; used in place
  hardneg  : look-alike images that are NOT duplicates: files in one directory
             whose names differ only in digits (texture01/texture02, earth2/earth4),
             pairwise signature cosine < 0.9, not a natural family; used in place
Writes cache/quality/corpus.tsv:
  set<TAB>path<TAB>group<TAB>kind<TAB>strength<TAB>source
(group: the dev original id for strength copies, a family name for natural and
hardneg, -1 for tiles; source: the package file it came from).

  /usr/bin/python3 bench/corpus/make_extra.py [--tiles N] [--seed S]
"""
import argparse
import itertools
import os
import random
import re
import sys

import numpy as np
from PIL import Image, ImageDraw

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import make_devset as D  # noqa: E402  (also puts models/train on sys.path)
A = D.A

Image.MAX_IMAGE_PIXELS = None
RASTER = (".png", ".jpg", ".jpeg")  # what neardup decodes

# (kind, strength) -> parameters; light is milder and strong harsher than the
# dev set's single strength of the same kind.
STRENGTHS = ["rescale", "jpeg", "crop", "aspect", "rotate", "color", "blur", "noise", "caption",
             "border", "screenshot", "combo"]


def strength_edit(kind, lvl, im, rng):
    """Returns (image, extension, JPEG quality or None)."""
    w, h = im.size
    strong = lvl == "strong"
    if kind == "rescale":
        side = 40 if strong else 256
        s = side / max(w, h)
        return im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC), "png", None
    if kind == "jpeg":
        return im, "jpg", 3 if strong else 60
    if kind == "crop":
        area = 0.12 if strong else 0.8
        ar = rng.uniform(0.8, 1.25)
        cw, ch = min(1, (area * ar) ** 0.5), min(1, (area / ar) ** 0.5)
        x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
        return A.crop_frac(im, x0, y0, x0 + cw, y0 + ch), "png", None
    if kind == "aspect":
        f = rng.choice([0.4, 2.4] if strong else [0.85, 1.18])
        return im.resize((max(8, int(w * f)), h), Image.BICUBIC), "png", None
    if kind == "rotate":
        d = rng.choice([-1, 1]) * (20 if strong else 2)
        return A.rotate(im, d, (255, 255, 255), expand=True), "png", None
    if kind == "color":
        if strong:
            return A.color(im, rng.choice([0.5, 1.5]), rng.choice([0.5, 1.6]), rng.choice([0.0, 2.0]),
                           rng.choice([-0.15, 0.15])), "png", None
        return A.color(im, 1.08, 0.93, 1.1, 0.01), "png", None
    if kind == "blur":
        return A.blur(im, (0.03 if strong else 0.004) * max(w, h)), "png", None
    if kind == "noise":
        return A.noise(im, 40 if strong else 6, rng.randrange(1 << 30)), "png", None
    if kind == "caption":
        s = rng.choice(D.DEV_STRINGS)
        return A.text(im, s, rng.choice(A.DEV_FONTS), 0.2 if strong else 0.05, (255, 255, 255), 1.0,
                      rng.uniform(0.02, 0.1), rng.uniform(0.3, 0.6) if strong else 0.85), "png", None
    if kind == "border":
        b = 0.25 if strong else 0.03
        return A.border(im, b, b, b, b, [rng.randrange(256) for _ in range(3)]), "png", None
    if kind == "screenshot":
        cw = int(max(w, h) * (3.0 if strong else 1.3))
        ch = int(cw * 0.65)
        frac = 0.2 if strong else 0.75
        out = A.screenshot(im, (cw, ch), frac, rng.random(), rng.random(), (235, 235, 235), (40, 60, 120))
        d = ImageDraw.Draw(out)
        d.text((8, 2), "File  Edit  View  Help", fill=(255, 255, 255), font=A.font(A.DEV_FONTS[0], max(8, ch // 30)))
        return out, "png", None
    if kind == "combo":
        if not strong:  # half size, flipped, JPEG q50
            im = im.transpose(Image.FLIP_LEFT_RIGHT).resize((max(1, w // 2), max(1, h // 2)), Image.BILINEAR)
            return im, "jpg", 50
        area = 0.4  # crop 40%, 90-degree turn, greyscale, caption, JPEG q20
        x0, y0 = rng.uniform(0, 1 - area ** 0.5), rng.uniform(0, 1 - area ** 0.5)
        im = A.crop_frac(im, x0, y0, x0 + area ** 0.5, y0 + area ** 0.5)
        im = A.grey(A.rotate(im, rng.choice([90, 270])))
        im = A.text(im, rng.choice(D.DEV_STRINGS), rng.choice(A.DEV_FONTS), 0.1, (255, 255, 0), 1.0, 0.05, 0.05)
        return im, "jpg", 20
    raise ValueError(kind)


def size_key(path):
    """The path with its size tokens removed (same artwork at several sizes)."""
    k = re.sub(r"/\d+x\d+(@\d)?/", "/*/", path)
    k = re.sub(r"[-_](\d+x\d+|\d+|4x3|16x9|5x4|16x10)(?=\.\w+$)", "", k)
    return re.sub(r"\.\w+$", "", k)


def digit_key(path):
    d, f = os.path.split(path)
    return os.path.join(d, re.sub(r"\d+", "#", os.path.splitext(f)[0]))


def sig_of(path):
    try:
        im = D.load_rgb(path)
    except Exception:
        return None, None
    return D.signature(im), im.size


def raster_files(pkgs):
    out = []
    for pkg in D.DEV_PKGS:
        for r, _, fs in os.walk(os.path.join(pkgs, pkg)):
            for f in sorted(fs):
                if f.lower().endswith(RASTER):
                    out.append(os.path.join(r, f))
    return sorted(out)


def find_families(files):
    natural, used, sized = [], set(), set()
    groups = {}
    for p in files:
        groups.setdefault(size_key(p), []).append(p)
    for key, members in sorted(groups.items()):
        if len(members) < 2:
            continue
        sized.update(members)
        info = [(p, *sig_of(p)) for p in members]
        # icons under 32 px are redrawn, not rescaled: out of scope
        info = [x for x in info if x[1] is not None and min(x[2]) >= 32]
        if len({x[2] for x in info}) < 2:
            continue
        big = max(info, key=lambda x: x[2][0] * x[2][1])
        if all(float(x[1] @ big[1]) >= 0.75 for x in info):
            natural.append([key, [x[0] for x in info], big[1]])
            used.update(x[0] for x in info)
    # one artwork shipped under two names (icons/.../app.png and pixmaps/app-NN.png): one family
    merged = []
    for fam in natural:
        for m in merged:
            if float(fam[2] @ m[2]) >= 0.95:
                m[1] += fam[1]
                break
        else:
            merged.append(fam)
    natural = [(k, ms) for k, ms, _ in merged]
    hard = []
    groups = {}
    for p in files:
        # size variants whose check failed are not look-alikes either; the
        # registration test images are shifted copies of one image
        if p not in sized and "/registration/" not in p:
            groups.setdefault(digit_key(p), []).append(p)
    for key, members in sorted(groups.items()):
        if len(members) < 2 or "#" not in os.path.basename(key):
            continue
        info = [(p, *sig_of(p)) for p in members[:8]]
        info = [x for x in info if x[1] is not None and min(x[2]) >= 48]
        keep = []
        for x in info:  # members that are pairwise distinct
            if all(float(x[1] @ y[1]) < 0.9 for y in keep):
                keep.append(x)
        if len(keep) >= 2:
            hard.append((key, [x[0] for x in keep[:4]]))
            used.update(x[0] for x in keep[:4])
    return natural, hard, used | sized


def make_tiles(n, files, exclude, out, seed):
    sources = []
    for p in files:
        if p in exclude:
            continue
        try:
            with Image.open(p) as im:
                if min(im.size) >= 256:
                    sources.append(p)
        except Exception:
            pass
    rows, by_src = [], {}
    for i in range(n):
        by_src.setdefault(sources[i % len(sources)], []).append(i)
    for src, idxs in by_src.items():
        todo = [i for i in idxs if not os.path.exists(os.path.join(out, f"t_{i:06d}.jpg"))]
        if todo:
            im = D.load_rgb(src)
        for i in idxs:
            rp = os.path.join(out, f"t_{i:06d}.jpg")
            if i in todo:
                rng = random.Random(seed * 1000003 + i)
                for _ in range(20):  # a flat crop (blank sky, transparent margin) is no image: draw again
                    f = rng.uniform(0.2, 0.6)
                    ar = rng.uniform(0.7, 1.4)
                    cw, ch = min(1, f * ar ** 0.5), min(1, f / ar ** 0.5)
                    x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
                    t = A.crop_frac(im, x0, y0, x0 + cw, y0 + ch)
                    flat = D.signature(t) is None or np.asarray(t.convert("L"), np.float32).std() < 8
                    if not flat:
                        break
                if flat:  # a (nearly) blank source: this tile is left out
                    continue
                side = rng.randrange(160, 401)
                s = side / max(t.size)
                t = t.resize((max(8, round(t.size[0] * s)), max(8, round(t.size[1] * s))), Image.LANCZOS)
                if rng.random() < 0.5:
                    t = t.transpose(Image.FLIP_LEFT_RIGHT)
                t.save(rp + ".tmp", "JPEG", quality=rng.randrange(80, 93))
                os.replace(rp + ".tmp", rp)
            rows.append((i, rp, src))
    rows.sort()
    return rows, len(sources)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pkgs", default=os.path.join(ROOT, "cache", "dev", "pkgs"))
    ap.add_argument("--devset", default=os.path.join(ROOT, "cache", "dev", "devset"))
    ap.add_argument("--out", default=os.path.join(ROOT, "cache", "quality"))
    ap.add_argument("--tiles", type=int, default=1000, help="extra distractors (tiles) to have")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rows = []
    files = raster_files(args.pkgs)

    # strength copies of every dev original
    man = [line.rstrip("\n").split("\t") for line in open(os.path.join(args.devset, "manifest.tsv"))][1:]
    origs = [(int(r[2]), r[1], r[5]) for r in man if r[0] == "ref" and r[3] == "original"]
    orig_src = {os.path.join(args.pkgs, r[2]) for r in origs}
    sdir = os.path.join(args.out, "strength")
    os.makedirs(sdir, exist_ok=True)
    made = 0
    for oid, rp, src in origs:
        rng = random.Random(args.seed * 7919 + oid)
        im = None
        for kind, lvl in itertools.product(STRENGTHS, ("light", "strong")):
            ext = "jpg" if kind == "jpeg" or kind == "combo" else "png"
            p = os.path.join(sdir, f"s_{oid:05d}_{kind}_{lvl}.{ext}")
            if not os.path.exists(p):
                if im is None:
                    im = Image.open(os.path.join(args.devset, rp)).convert("RGB")
                q, e, quality = strength_edit(kind, lvl, im, rng)
                assert e == ext
                if quality:
                    q.save(p + ".tmp", "JPEG", quality=quality)
                else:
                    q.save(p + ".tmp", "PNG", compress_level=1)
                os.replace(p + ".tmp", p)
                made += 1
            else:  # keep the rng stream identical whether or not files exist
                strength_edit(kind, lvl, Image.new("RGB", (64, 64)), rng)
            rows.append(("strength", p, str(oid), kind, lvl, src))
    print(f"make_extra: strength copies: {len(rows)} ({made} new)", flush=True)

    natural, hard, used = find_families(files)
    for key, members in natural:
        fam = os.path.relpath(key, args.pkgs)
        for p in members:
            rows.append(("natural", p, fam, "natural", "-", os.path.relpath(p, args.pkgs)))
    for key, members in hard:
        fam = os.path.relpath(key, args.pkgs)
        for p in members:
            rows.append(("hardneg", p, fam, "hardneg", "-", os.path.relpath(p, args.pkgs)))
    print(f"make_extra: natural families: {len(natural)} ({sum(len(m) for _, m in natural)} files) "
          f"from {sorted({os.path.relpath(k, args.pkgs).split('/')[0] for k, _ in natural})}; "
          f"hard-negative families: {len(hard)} ({sum(len(m) for _, m in hard)} files)", flush=True)

    tdir = os.path.join(args.out, "tiles")
    os.makedirs(tdir, exist_ok=True)
    tiles, nsrc = make_tiles(args.tiles, files, orig_src | used, tdir, args.seed)
    for i, p, src in tiles:
        rows.append(("tile", p, "-1", "tile", "-", os.path.relpath(src, args.pkgs)))
    print(f"make_extra: tiles: {len(tiles)} of {args.tiles} (flat crops left out) from {nsrc} source images", flush=True)

    tmp = os.path.join(args.out, "corpus.tsv.tmp")
    with open(tmp, "w") as f:
        f.write("set\tpath\tgroup\tkind\tstrength\tsource\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    os.replace(tmp, os.path.join(args.out, "corpus.tsv"))


if __name__ == "__main__":
    main()
