#!/usr/bin/python3
"""Builds the bundled sample corpus in data/ from Debian's python3-skimage.

    /usr/bin/python3 scripts/make_sample.py      # needs apt-get, numpy, PIL

1. `apt-get download python3-skimage` into cache/debs/ and `dpkg-deb -x` it
   (skipped when already there). The source images are checked against the
   SHA-256 sums below, so a different package version is noticed.
2. Writes a few freely licensed photos to data/ (re-encoded where noted) and
   near-duplicates of some of them (crop, rescale, JPEG recompression, flip,
   caption, border, screenshot paste, EXIF-rotated copy, contrast change).
3. Writes data/dups.tsv: copy<TAB>original<TAB>transformation, the ground
   truth for the demo and tests. data/README.md (licences) is hand-written.

The outputs are committed; PIL writes identical bytes for identical inputs,
so rerunning this script reproduces them.
"""
import hashlib
import os
import subprocess
import sys

from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "cache", "debs")
SK = os.path.join(CACHE, "sk")
SRC = os.path.join(SK, "usr", "lib", "python3", "dist-packages", "skimage", "data")
OUT = os.path.join(ROOT, "data")

# Source images used, from python3-skimage 0.19.3-8 (Debian 12).
SOURCES = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg",
           "hubble_deep_field.jpg", "retina.jpg", "coins.png", "brick.png", "grass.png", "gravel.png"]
SHA256_FILE = os.path.join(ROOT, "data", "SOURCES.sha256")


def fetch():
    if os.path.isdir(SRC):
        return
    os.makedirs(CACHE, exist_ok=True)
    subprocess.run(["apt-get", "download", "python3-skimage"], cwd=CACHE, check=True)
    debs = sorted(f for f in os.listdir(CACHE) if f.startswith("python3-skimage_") and f.endswith(".deb"))
    subprocess.run(["dpkg-deb", "-x", os.path.join(CACHE, debs[-1]), SK], check=True)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def check_sources():
    """Compares the source images with data/SOURCES.sha256 (written the
    first time), so that a rebuild from another package version says so."""
    sums = {n: sha(os.path.join(SRC, n)) for n in SOURCES}
    if os.path.exists(SHA256_FILE):
        with open(SHA256_FILE) as f:
            want = dict(reversed(line.split()) for line in f if line.strip())
        bad = [n for n in sums if want.get(n) != sums[n]]
        if bad:
            print("make_sample: source images differ from data/SOURCES.sha256: %s" % ", ".join(bad),
                  file=sys.stderr)
    else:
        with open(SHA256_FILE, "w") as f:
            for n in sorted(sums):
                f.write("%s  %s\n" % (sums[n], n))


def load(name):
    return Image.open(os.path.join(SRC, name))


def save(im, name, **kw):
    path = os.path.join(OUT, name)
    if name.endswith(".jpg"):
        im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode).save(path, "JPEG", **kw)
    else:
        im.save(path, "PNG", optimize=True)
    return name


def main():
    fetch()
    check_sources()
    os.makedirs(OUT, exist_ok=True)
    dups = []

    # Originals.
    astronaut = load("astronaut.png").convert("RGB")
    save(astronaut, "astronaut.jpg", quality=90)
    camera = load("camera.png")
    save(camera, "camera.png")
    chelsea = load("chelsea.png").convert("RGB")
    save(chelsea, "chelsea.jpg", quality=90)
    coffee = load("coffee.png").convert("RGB")
    save(coffee, "coffee.jpg", quality=90)
    for n in ("rocket.jpg", "retina.jpg"):  # the package's own JPEGs, byte for byte
        with open(os.path.join(SRC, n), "rb") as f, open(os.path.join(OUT, n), "wb") as g:
            g.write(f.read())
    hubble = load("hubble_deep_field.jpg").convert("RGB")
    save(hubble, "hubble.jpg", quality=85)
    save(load("coins.png"), "coins.png")
    for n in ("brick", "grass", "gravel"):  # look-alike textures: hard negatives
        save(load(n + ".png"), n + ".jpg", quality=90)
    rocket = load("rocket.jpg").convert("RGB")

    # Near-duplicates.
    w, h = astronaut.size
    dups.append((save(astronaut.crop((w // 12, h // 12, w - w // 12, h - h // 12)), "astronaut_crop.jpg",
                      quality=90), "astronaut.jpg", "central crop to 83%"))
    dups.append((save(astronaut.resize((w // 2, h // 2), Image.LANCZOS), "astronaut_half.png"),
                 "astronaut.jpg", "rescaled to 50%, saved as PNG"))
    dups.append((save(chelsea, "chelsea_q25.jpg", quality=25), "chelsea.jpg", "JPEG recompressed at quality 25"))
    dups.append((save(ImageOps.mirror(chelsea), "chelsea_flip.jpg", quality=90), "chelsea.jpg",
                 "mirrored left-right"))

    cap = Image.new("RGB", (coffee.width, coffee.height + 48), (20, 20, 20))
    cap.paste(coffee, (0, 0))
    d = ImageDraw.Draw(cap)
    font = ImageFont.load_default()
    d.text((12, coffee.height + 18), "Morning coffee, 7:45 - shared from my phone", fill=(240, 240, 240),
           font=font)
    dups.append((save(cap, "coffee_caption.jpg", quality=88), "coffee.jpg", "caption bar added below"))
    dups.append((save(ImageOps.expand(coffee, border=30, fill=(255, 255, 255)), "coffee_border.jpg",
                      quality=90), "coffee.jpg", "30-pixel white border"))

    # A "screenshot": a desktop with a window showing the photo, scaled down.
    shot = Image.new("RGB", (1024, 640), (58, 110, 165))
    d = ImageDraw.Draw(shot)
    view = rocket.resize((rocket.width * 3 // 4, rocket.height * 3 // 4), Image.BICUBIC)
    d.rectangle((150, 40, 150 + view.width + 20, 40 + 28 + view.height + 20), fill=(235, 235, 235))
    d.rectangle((150, 40, 150 + view.width + 20, 68), fill=(60, 60, 60))
    d.text((162, 48), "rocket.jpg - Image Viewer", fill=(255, 255, 255), font=font)
    shot.paste(view, (160, 78))
    d.rectangle((0, 610, 1024, 640), fill=(30, 30, 30))
    dups.append((save(shot, "rocket_screenshot.png"), "rocket.jpg", "shown at 75% in a window, screenshot"))

    # Stored rotated, with EXIF orientation 6: displays like the original.
    exif = Image.Exif()
    exif[0x0112] = 6
    save(rocket.transpose(Image.ROTATE_90), "rocket_exif6.jpg", quality=90, exif=exif.tobytes())
    dups.append(("rocket_exif6.jpg", "rocket.jpg", "stored rotated 90 degrees with EXIF orientation 6"))

    dups.append((save(ImageEnhance.Contrast(ImageEnhance.Brightness(camera).enhance(1.15)).enhance(1.3),
                      "camera_contrast.png"), "camera.png", "brightness +15%, contrast +30%"))
    hw, hh = hubble.size
    dups.append((save(hubble.crop((0, 0, hw * 3 // 4, hh * 3 // 4)), "hubble_crop_q70.jpg", quality=70),
                 "hubble.jpg", "top-left 75% crop, JPEG quality 70"))

    with open(os.path.join(OUT, "dups.tsv"), "w") as f:
        f.write("# copy\toriginal\ttransformation\n")
        for c, o, t in dups:
            f.write("%s\t%s\t%s\n" % (c, o, t))
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print("make_sample: %d files, %.2f MB in data/" % (len(os.listdir(OUT)), total / 1e6))


if __name__ == "__main__":
    main()
