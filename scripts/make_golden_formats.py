#!/usr/bin/python3
"""Generates the committed test inputs and golden decodings for the formats
beyond JPEG and PNG (WebP, GIF, TIFF, BMP, PNM, HEIF, AVIF) into
tests/data/formats/.

Run with Debian's Python (numpy + PIL): /usr/bin/python3 scripts/make_golden_formats.py
Tiled TIFFs are made with tiffcp (libtiff-tools), HEIC and AVIF with heif-enc
and decoded for their goldens by heif-convert (libheif-examples), when installed.
The reference decoder is PIL (Pillow 9.4 on Debian 12). Its RGBA results are
composited here with out = (c*a + bg*(255-a) + 127) // 255 on (128,128,128),
the decoder's documented rule; orientation is applied with
ImageOps.exif_transpose. The outputs are committed, so `make test` needs no
Python. Each file is small (a few KB).
"""
import io
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "formats")
BG = 128


def write_ppm(path, arr):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w, _ = arr.shape
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(arr.tobytes())


def pattern(w, h, seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 128 + 100 * np.sin(x / 5.0) * np.cos(y / 4.0)
    a = np.stack([r, g, b], -1)
    a[h // 3:h // 2, w // 4:w // 2] = (200, 30, 40)  # a hard-edged block
    a += rng.normal(0, 4, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)


def alpha_plane(w, h):
    y, x = np.mgrid[0:h, 0:w]
    a = (255 * x / max(w - 1, 1)).astype(np.uint8)
    a[: h // 4] = 0
    a[-h // 4:] = 255
    return a


def composite(im):
    im = ImageOps.exif_transpose(im)
    rgba = np.asarray(im.convert("RGBA")).astype(np.uint32)
    c, a = rgba[..., :3], rgba[..., 3:4]
    return ((c * a + BG * (255 - a) + 127) // 255).astype(np.uint8)


def golden(name):
    """Decode tests/data/formats/<name> with PIL into <name>.ppm."""
    path = os.path.join(OUT, name)
    im = Image.open(path)
    im.seek(0)
    write_ppm(path + ".ppm", composite(im))


def exif_orientation(o):
    ex = Image.Exif()
    ex[0x0112] = o
    return ex.tobytes()


def main():
    os.makedirs(OUT, exist_ok=True)
    W, H = 48, 32
    rgb = Image.fromarray(pattern(W, H))
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(alpha_plane(W, H)))

    # WebP: lossy, lossless with alpha, EXIF orientation 6, animated
    rgb.save(os.path.join(OUT, "lossy.webp"), quality=85, method=4)
    rgba.save(os.path.join(OUT, "alpha.webp"), lossless=True)
    rgb.save(os.path.join(OUT, "orient6.webp"), lossless=True, exif=exif_orientation(6))
    f2 = Image.fromarray(pattern(W, H, seed=2))
    rgb.save(os.path.join(OUT, "anim.webp"), save_all=True, append_images=[f2], duration=100,
             lossless=True, loop=0)
    Image.fromarray(pattern(64, 48, seed=3)).save(os.path.join(OUT, "big.webp"), lossless=True)
    for n in ("lossy.webp", "alpha.webp", "orient6.webp", "anim.webp", "big.webp"):
        golden(n)

    # GIF: palette, transparency, interlaced, animated (first frame)
    pal = rgb.quantize(64, dither=Image.Dither.NONE)
    pal.save(os.path.join(OUT, "palette.gif"), interlace=False)
    pal.save(os.path.join(OUT, "interlaced.gif"), interlace=True)
    tr = pal.copy()
    tr.info["transparency"] = int(np.asarray(pal)[0, 0])
    tr.save(os.path.join(OUT, "transparent.gif"), transparency=int(np.asarray(pal)[0, 0]))
    pal2 = f2.quantize(64, dither=Image.Dither.NONE)
    pal.save(os.path.join(OUT, "anim.gif"), save_all=True, append_images=[pal2], duration=100,
             loop=0)
    Image.fromarray(pattern(64, 48, seed=3)).quantize(128, dither=Image.Dither.NONE).save(
        os.path.join(OUT, "big.gif"))
    for n in ("palette.gif", "interlaced.gif", "transparent.gif", "anim.gif", "big.gif"):
        golden(n)

    # TIFF: RGB (raw, LZW), grey 8 and 16 bits, palette, CMYK, RGBA, orientation, two pages
    rgb.save(os.path.join(OUT, "rgb.tif"), compression="raw")
    rgb.save(os.path.join(OUT, "lzw.tif"), compression="tiff_lzw")
    rgb.convert("L").save(os.path.join(OUT, "grey.tif"), compression="tiff_deflate")
    g16 = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    Image.fromarray(g16, "I;16").save(os.path.join(OUT, "grey16.tif"), compression="raw")
    pal.save(os.path.join(OUT, "palette.tif"))
    rgb.convert("CMYK").save(os.path.join(OUT, "cmyk.tif"), compression="raw")
    rgba.save(os.path.join(OUT, "rgba.tif"), compression="tiff_lzw")
    rgb.save(os.path.join(OUT, "orient6.tif"), compression="raw", tiffinfo={274: 6})
    rgb.save(os.path.join(OUT, "pages.tif"), compression="raw", save_all=True, append_images=[f2])
    Image.fromarray(pattern(64, 48, seed=3)).save(os.path.join(OUT, "big.tif"),
                                                     compression="tiff_lzw")
    names = ["rgb.tif", "lzw.tif", "grey.tif", "grey16.tif", "palette.tif", "cmyk.tif", "rgba.tif",
             "orient6.tif", "pages.tif", "big.tif"]
    if shutil.which("tiffcp"):
        subprocess.check_call(["tiffcp", "-t", "-w", "16", "-l", "16", "-c", "lzw",
                               os.path.join(OUT, "rgb.tif"), os.path.join(OUT, "tiled.tif")])
        names.append("tiled.tif")
    for n in names:
        golden(n)
    # PIL 9.4 does not apply a TIFF's own Orientation tag (only EXIF's): the
    # golden is the stored image turned as orientation 6 says (90 clockwise)
    write_ppm(os.path.join(OUT, "orient6.tif.ppm"), np.asarray(rgb.transpose(Image.Transpose.ROTATE_270)))
    # 16-bit grey: PIL's I;16 does not convert to RGB by the high byte; the
    # golden is the high byte, as the decoder (libtiff) takes it
    write_ppm(os.path.join(OUT, "grey16.tif.ppm"),
              np.repeat((g16 >> 8).astype(np.uint8)[..., None], 3, axis=2))

    # BMP: 24-bit bottom-up, 8-bit palette, 32-bit, 1-bit; PNM: P1-P6
    rgb.save(os.path.join(OUT, "rgb24.bmp"))
    pal.save(os.path.join(OUT, "pal8.bmp"))
    rgb.convert("1").save(os.path.join(OUT, "mono.bmp"))
    for n in ("rgb24.bmp", "pal8.bmp", "mono.bmp"):
        golden(n)
    rgb.save(os.path.join(OUT, "p6.ppm"))
    rgb.convert("L").save(os.path.join(OUT, "p5.pgm"))
    rgb.convert("1").save(os.path.join(OUT, "p4.pbm"))
    for n in ("p6.ppm", "p5.pgm", "p4.pbm"):
        golden(n)
    # plain (ASCII) variants written here: PIL reads but does not write them
    a = np.asarray(rgb)
    with open(os.path.join(OUT, "p3.ppm"), "w") as f:
        f.write("P3\n# a comment\n%d %d\n255\n" % (W, H))
        for row in a:
            f.write(" ".join(str(int(v)) for v in row.reshape(-1)) + "\n")
    write_ppm(os.path.join(OUT, "p3.ppm.ppm"), a)
    grey = np.asarray(rgb.convert("L"))
    with open(os.path.join(OUT, "p2.pgm"), "w") as f:
        f.write("P2\n%d %d\n15\n" % (W, H))
        for row in grey:
            f.write(" ".join(str(int(v) * 15 // 255) for v in row) + "\n")
    g4 = ((grey.astype(np.uint32) * 15 // 255) * 255 + 7) // 15
    write_ppm(os.path.join(OUT, "p2.pgm.ppm"), np.repeat(g4.astype(np.uint8)[..., None], 3, 2))
    bits = np.asarray(rgb.convert("1"))
    with open(os.path.join(OUT, "p1.pbm"), "w") as f:
        f.write("P1\n%d %d\n" % (W, H))
        for row in bits:
            f.write("".join("0" if v else "1" for v in row) + "\n")
    pb = np.where(bits, 255, 0).astype(np.uint8)
    write_ppm(os.path.join(OUT, "p1.pbm.ppm"), np.repeat(pb[..., None], 3, 2))
    # HEIF/HEIC and AVIF: encoded by heif-enc (x265 / aom through libheif),
    # goldens by heif-convert (libheif-examples), alpha composited as above
    if shutil.which("heif-enc") and shutil.which("heif-convert"):
        tmp = os.path.join(OUT, "tmp.png")
        for name, im, args in (("rgb.heic", rgb, ["-q", "80"]), ("alpha.heic", rgba, ["-q", "80"]),
                               ("rgb.avif", rgb, ["-A", "-q", "80"]),
                               ("alpha.avif", rgba, ["-A", "-q", "80"])):
            im.save(tmp)
            dst = os.path.join(OUT, name)
            subprocess.check_call(["heif-enc"] + args + [tmp, "-o", dst], stdout=subprocess.DEVNULL)
            subprocess.check_call(["heif-convert", dst, tmp], stdout=subprocess.DEVNULL)
            write_ppm(dst + ".ppm", composite(Image.open(tmp)))
        os.remove(tmp)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("wrote %d files, %d bytes, into %s" % (len(os.listdir(OUT)), total, OUT))


if __name__ == "__main__":
    sys.exit(main())
