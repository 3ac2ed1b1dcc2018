#!/usr/bin/python3
"""Generates the image module's committed test inputs and golden decodings.

Run with Debian's Python (numpy + PIL): /usr/bin/python3 scripts/make_golden.py
Outputs go to tests/data/image/ (inputs *.jpg/*.png and references *.ppm) and
tests/data/pngsuite/ (*.ppm references beside the copied PngSuite files).
The outputs are committed, so `make test` needs no Python.

The reference decoder is PIL (Pillow 9.4 on Debian 12, which itself links
Debian's libjpeg-turbo and zlib; PNG decoding is PIL's own). Alpha is
composited by this script with out = (c*a + bg*(255-a) + 127) // 255 on the
background (128,128,128), the rule the C decoder documents. 16-bit samples
keep their high byte, as PIL does for 16-bit RGB(A).
"""
import io
import os
import shutil
import sys

import numpy as np
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "image")
PNGSUITE_SRC = os.environ.get("PNGSUITE", os.path.join(ROOT, "..", "shared", "testimages", "pngsuite"))
PNGSUITE_DST = os.path.join(ROOT, "tests", "data", "pngsuite")
BG = 128


def write_ppm(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    assert arr.ndim == 3 and arr.shape[2] == 3
    h, w, _ = arr.shape
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(arr.tobytes())


def test_pattern(w, h, seed=1):
    """A photo-like synthetic image: smooth gradients, hard edges, coloured
    discs, a little noise. Deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * (x / max(w - 1, 1))
    g = 255 * (y / max(h - 1, 1))
    b = 128 + 100 * np.sin(x / 7.0) * np.cos(y / 5.0)
    img = np.stack([r, g, b], axis=2)
    for cx, cy, rad, col in ((0.3, 0.4, 0.18, (250, 30, 30)), (0.7, 0.6, 0.22, (20, 40, 230)),
                             (0.55, 0.2, 0.1, (240, 240, 20))):
        m = (x - cx * w) ** 2 + (y - cy * h) ** 2 < (rad * min(w, h)) ** 2
        img[m] = col
    img[: h // 8, : w // 8] = (0, 0, 0)          # a black corner marks the top-left
    img[h - h // 6:, w - w // 5:] = (255, 255, 255)  # a white block bottom-right
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def rgb_of(im, depth=8):
    """PIL image -> HxWx3 uint8 composited on the background."""
    if im.mode in ("I", "I;16", "I;16B"):
        a = np.array(im).astype(np.uint32) >> 8
        if "transparency" in im.info:
            t = np.array(im) == im.info["transparency"]
            alpha = np.where(t, 0, 255).astype(np.uint32)
        else:
            alpha = np.full(a.shape, 255, np.uint32)
        rgba = np.stack([a, a, a, alpha], axis=2)
    elif im.mode in ("L", "1") and "transparency" in im.info and depth < 8:
        # PIL compares a low-bit-depth grey tRNS value (e.g. 15 of 4 bits)
        # with the samples already scaled to 8 bits, so it never matches;
        # PNG says the tRNS value is in the image's own bit depth.
        g = np.array(im.convert("L")).astype(np.uint32)
        t = im.info["transparency"] * (255 // ((1 << depth) - 1))
        alpha = np.where(g == t, 0, 255).astype(np.uint32)
        rgba = np.stack([g, g, g, alpha], axis=2)
    else:
        rgba = np.array(im.convert("RGBA")).astype(np.uint32)
    c, al = rgba[:, :, :3], rgba[:, :, 3:4]
    out = (c * al + BG * (255 - al) + 127) // 255
    return out.astype(np.uint8)


def save_jpeg(name, im, **kw):
    path = os.path.join(OUT, name)
    im.save(path, "JPEG", **kw)
    return path


def main():
    os.makedirs(OUT, exist_ok=True)
    base = Image.fromarray(test_pattern(96, 64))

    # JPEG variants: input + PIL's full-size decoding.
    variants = {
        "baseline.jpg": (base, dict(quality=90)),
        "baseline444.jpg": (base, dict(quality=90, subsampling=0)),
        "baseline422.jpg": (base, dict(quality=90, subsampling=1)),
        "progressive.jpg": (base, dict(quality=90, progressive=True)),
        "gray.jpg": (base.convert("L"), dict(quality=90)),
        "cmyk.jpg": (base.convert("CMYK"), dict(quality=95)),
    }
    for name, (im, kw) in variants.items():
        p = save_jpeg(name, im, **kw)
        with Image.open(p) as d:
            write_ppm(p[:-4] + ".ppm", np.array(d.convert("RGB")))

    # EXIF orientations 1..8 on a non-square image with a marked corner.
    small = Image.fromarray(test_pattern(48, 32, seed=2))
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        p = save_jpeg("orient%d.jpg" % o, small, quality=92, exif=exif.tobytes())
        with Image.open(p) as d:
            assert d.getexif().get(0x0112) == o
            write_ppm(p[:-4] + ".ppm", np.array(ImageOps.exif_transpose(d).convert("RGB")))

    # DCT-scaled decoding: PIL's draft() asks libjpeg for the same 1/N scale;
    # reduce(N) of the full decoding is the area-average reference.
    big = Image.fromarray(test_pattern(203, 141, seed=3))
    p = save_jpeg("big.jpg", big, quality=90)
    with Image.open(p) as d:
        full = d.convert("RGB")
        write_ppm(p[:-4] + ".ppm", np.array(full))
    for n in (2, 4, 8):
        with Image.open(p) as d:
            d.draft("RGB", (203 // n, 141 // n))
            assert d.size == ((203 + n - 1) // n, (141 + n - 1) // n), d.size
            write_ppm(os.path.join(OUT, "big_draft%d.ppm" % n), np.array(d.convert("RGB")))
        write_ppm(os.path.join(OUT, "big_reduce%d.ppm" % n), np.array(full.reduce(n)))

    # PNG: box reduction reference (PIL's reduce), and eXIf orientation.
    pbig = Image.fromarray(test_pattern(203, 141, seed=4))
    pbig.save(os.path.join(OUT, "big.png"))
    for n in (2, 4, 8):
        write_ppm(os.path.join(OUT, "bigpng_reduce%d.ppm" % n), np.array(pbig.reduce(n)))
    exif = Image.Exif()
    exif[0x0112] = 6
    small.save(os.path.join(OUT, "orient6.png"), exif=exif.tobytes())
    with Image.open(os.path.join(OUT, "orient6.png")) as d:
        assert d.getexif().get(0x0112) == 6
        write_ppm(os.path.join(OUT, "orient6_png.ppm"), np.array(ImageOps.exif_transpose(d).convert("RGB")))

    # PngSuite: copy the basic images (and their licence) with references.
    if os.path.isdir(PNGSUITE_SRC):
        os.makedirs(PNGSUITE_DST, exist_ok=True)
        shutil.copy(os.path.join(PNGSUITE_SRC, "README"), os.path.join(PNGSUITE_DST, "README"))
        names = sorted(f for f in os.listdir(PNGSUITE_SRC) if f.endswith(".png"))
        with open(os.path.join(PNGSUITE_DST, "LIST"), "w") as lst:
            for f in names:
                shutil.copy(os.path.join(PNGSUITE_SRC, f), os.path.join(PNGSUITE_DST, f))
                with open(os.path.join(PNGSUITE_SRC, f), "rb") as raw:
                    depth = raw.read(25)[24]  # IHDR bit depth
                with Image.open(os.path.join(PNGSUITE_SRC, f)) as d:
                    d.load()
                    write_ppm(os.path.join(PNGSUITE_DST, f[:-4] + ".ppm"), rgb_of(d, depth))
                lst.write(f[:-4] + "\n")
    else:
        print("make_golden: no PngSuite at %s; tests/data/pngsuite left as is" % PNGSUITE_SRC,
              file=sys.stderr)


if __name__ == "__main__":
    main()
