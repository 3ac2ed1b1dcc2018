"""Training data for neardup's embedding model (issue 4).

Stage 1 (`python3 models/train/data.py build`): scans the unpacked training
packages (scripts/fetch_training_data.sh -> cache/train/pkgs/<pkg>/), decodes
every raster image once, drops tiny / near-blank / exact-duplicate ones,
crops transparent images to their content, downsizes to at most MAXSIDE px,
and cuts large images into non-overlapping tiles (extra instances: "random
crops of larger images multiply the data"). Everything lands in one flat
uint8 file (cache/train/images.u8, memory-mapped by the loader workers so
they share it through the page cache and never decode big files) plus an
index (cache/train/index.npz) and per-package counts (cache/train/counts.json).

For a lent GPU machine (models/train/gpu_train.sh): `data.py pack DIR` writes
the store as WebP parts small enough to travel, `data.py unpack PART...`
rebuilds a store from them (NEARDUP_TRAIN_CACHE says where).

Stage 2: `PairDataset` returns two independently augmented 128x128 views of
one instance (see augment.py) as uint8 CHW tensors; normalisation happens in
the training step, exactly as the C prep stage does it.
"""
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
# NEARDUP_TRAIN_CACHE moves it (a GPU machine unpacks the carried pack into /tmp)
CACHE = os.environ.get("NEARDUP_TRAIN_CACHE", os.path.join(ROOT, "cache", "train"))

TRAIN_PKGS = ["openclipart-png", "tuxpaint-stamps-default", "gimp-data", "wesnoth-1.16-data",
              "extremetuxracer-data", "marble-data", "krita-data"]
# Development-set packages (bench/corpus/): evaluation only, never trained on.
DEV_PKGS = ["python3-skimage", "gnome-backgrounds", "desktop-base", "megaglest-data",
            "trigger-rally-data", "neverball-data"]
assert not set(TRAIN_PKGS) & set(DEV_PKGS)

EXTS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".tga")
MAXSIDE = 256        # stored size (max side)
MINSIDE = 40         # drop images whose smaller side is below this (brushes, tiny icons)
MAX_PIXELS = 40e6    # skip pathological files (openclipart has 168 Mpixel PNGs)
TILE_MIN = 320       # a large image yields tiles of at least this size
MAX_TILES = 6

Image.MAX_IMAGE_PIXELS = None


def _thumb_key(rgb):
    """Exact-duplicate key: 24x24 grey thumbnail quantised + aspect bucket,
    so the same artwork stored at several sizes is kept once."""
    g = np.asarray(rgb.convert("L").resize((24, 24), Image.BOX), dtype=np.uint8) // 8
    ar = round(rgb.size[0] / rgb.size[1], 1)
    return hashlib.md5(g.tobytes() + str(ar).encode()).hexdigest()


def _content_ok(arr):
    """arr: HxWx{3,4} uint8. False for near-blank images. Transparent images
    are judged composited over mid-grey, so black line art on a transparent
    background (common in openclipart) counts as content."""
    a = arr.astype(np.float32)
    if arr.shape[2] == 4:
        al = a[:, :, 3:4] / 255.0
        if (al > 0.125).mean() < 0.02:
            return False
        a = a[:, :, :3] * al + 128.0 * (1.0 - al)
    rgb = a.reshape(-1, 3)
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return float(luma.std()) >= 6.0 or float(rgb.std(axis=0).max()) >= 10.0


def _shrink(im):
    w, h = im.size
    s = MAXSIDE / max(w, h)
    if s < 1:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
    return im


def load_one(path):
    """Returns (list of (uint8 array, tag), reason-or-None)."""
    try:
        im = Image.open(path)
        w, h = im.size
        if w * h > MAX_PIXELS:
            return [], "huge"
        if min(w, h) < MINSIDE:
            return [], "tiny"
        im.seek(0)
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        im = im.convert("RGBA" if has_alpha else "RGB")
        if has_alpha:
            bbox = im.getchannel("A").point(lambda v: 255 if v > 16 else 0).getbbox()
            if bbox is None:
                return [], "blank"
            im = im.crop(bbox)
            w, h = im.size
            if min(w, h) < MINSIDE // 2 or w * h < MINSIDE * MINSIDE:
                return [], "tiny"
    except Exception:
        return [], "error"
    out = []
    small = _shrink(im)
    arr = np.asarray(small, dtype=np.uint8)
    if not _content_ok(arr):
        return [], "blank"
    out.append((arr, "full"))
    # Tiles of large images: extra, distinct instances.
    nx, ny = w // TILE_MIN, h // TILE_MIN
    if nx * ny >= 2:
        while nx * ny > MAX_TILES:
            if nx >= ny:
                nx -= 1
            else:
                ny -= 1
        tw, th = w // nx, h // ny
        for j in range(ny):
            for i in range(nx):
                t = _shrink(im.crop((i * tw, j * th, (i + 1) * tw, (j + 1) * th)))
                ta = np.asarray(t, dtype=np.uint8)
                if _content_ok(ta):
                    out.append((ta, "tile"))
    return out, None


def _list_files(pkgs_dir):
    files = []
    for pkg in TRAIN_PKGS:
        d = os.path.join(pkgs_dir, pkg)
        if not os.path.isdir(d):
            print(f"data: {pkg} not fetched (run scripts/fetch_training_data.sh); skipped", file=sys.stderr)
            continue
        for r, _, fs in os.walk(d):
            for f in sorted(fs):
                if f.lower().endswith(EXTS):
                    files.append((pkg, os.path.join(r, f)))
    files.sort()
    return files


def _work(item):
    pkg, path = item
    res, why = load_one(path)
    keyed = []
    for arr, tag in res:
        if arr.shape[2] == 4:  # key on the image composited over grey, not on raw RGB
            im = Image.new("RGB", (arr.shape[1], arr.shape[0]), (128, 128, 128))
            rgba = Image.fromarray(arr, "RGBA")
            im.paste(rgba, (0, 0), rgba)
        else:
            im = Image.fromarray(arr)
        keyed.append((arr, tag, _thumb_key(im)))
    return pkg, path, keyed, why


def build(cache=CACHE, workers=2):
    t0 = time.time()
    files = _list_files(os.path.join(cache, "pkgs"))
    print(f"data: {len(files)} raster files", flush=True)
    seen = set()
    offs, shapes, pkg_ids, srcs = [], [], [], []
    counts = {p: {"files": 0, "kept": 0, "tiles": 0, "dup": 0, "tiny": 0, "blank": 0, "huge": 0, "error": 0}
              for p in TRAIN_PKGS}
    tmp = os.path.join(cache, "images.u8.tmp")
    pos = 0
    with open(tmp, "wb") as f, Pool(workers) as pool:
        for n, (pkg, path, keyed, why) in enumerate(pool.imap(_work, files, chunksize=16)):
            c = counts[pkg]
            c["files"] += 1
            if why:
                c[why] += 1
            for arr, tag, key in keyed:
                if key in seen:
                    c["dup"] += 1
                    continue
                seen.add(key)
                if arr.shape[2] == 3:  # store everything as RGBA: alpha 255
                    arr = np.concatenate([arr, np.full(arr.shape[:2] + (1,), 255, np.uint8)], axis=2)
                arr = np.ascontiguousarray(arr)
                f.write(arr.tobytes())
                offs.append(pos)
                shapes.append(arr.shape[:2])
                pkg_ids.append(TRAIN_PKGS.index(pkg))
                srcs.append(os.path.relpath(path, cache) + ("#tile" if tag == "tile" else ""))
                pos += arr.size
                c["kept" if tag == "full" else "tiles"] += 1
            if n % 2000 == 0:
                print(f"data: {n}/{len(files)} files, {len(offs)} instances, {pos/2**20:.0f} MiB, "
                      f"{time.time()-t0:.0f}s", flush=True)
    os.replace(tmp, os.path.join(cache, "images.u8"))
    np.savez(os.path.join(cache, "index.npz"), offs=np.array(offs, np.int64),
             shapes=np.array(shapes, np.int32), pkg=np.array(pkg_ids, np.int16),
             src=np.array(srcs))
    counts["_total"] = {"instances": len(offs), "bytes": pos, "seconds": round(time.time() - t0)}
    with open(os.path.join(cache, "counts.json"), "w") as f:
        json.dump(counts, f, indent=1)
    print(json.dumps(counts, indent=1))


class ImageStore:
    """Read-only view of cache/train/images.u8 (memory-mapped lazily, so each
    DataLoader worker maps it after fork)."""

    def __init__(self, cache=CACHE):
        z = np.load(os.path.join(cache, "index.npz"))
        self.offs, self.shapes, self.pkg = z["offs"], z["shapes"], z["pkg"]
        # an unpacked subset of the store weighs packages by the full counts
        self.pkg_counts = z["pkg_counts"] if "pkg_counts" in z else None
        self.path = os.path.join(cache, "images.u8")
        self._mm = None

    def __len__(self):
        return len(self.offs)

    def get(self, i):
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        h, w = self.shapes[i]
        o = self.offs[i]
        return np.array(self._mm[o:o + h * w * 4]).reshape(h, w, 4)

    def sample_weights(self, power=0.5):
        """Per-instance sampling weights: package p gets a share ~ count_p^power,
        so the 10k Wesnoth sprites do not drown the rest."""
        cnt = np.bincount(self.pkg, minlength=len(TRAIN_PKGS)).astype(np.float64)
        full = cnt if self.pkg_counts is None else self.pkg_counts.astype(np.float64)
        w = (full ** power / np.maximum(cnt, 1))[self.pkg]
        return w / w.sum()


# ------------------------------------------------- packs for a GPU machine
# A lent GPU machine receives at most 64 MiB with the working tree, so the
# 1.7 GB store travels as WebP (quality PACK_QUALITY, alpha lossless) in
# parts of at most PACK_PART_BYTES; `unpack` decodes whichever parts are
# present back into images.u8 + index.npz. Package weights keep the full
# store's counts, so a run on some parts samples packages as the whole would.

PACK_QUALITY = 85
PACK_PART_BYTES = 42 * 10**6


def _encode_webp(arr):
    import io
    im = Image.fromarray(arr, "RGBA")
    if arr[:, :, 3].min() == 255:
        im = im.convert("RGB")
    b = io.BytesIO()
    im.save(b, format="WEBP", quality=PACK_QUALITY, method=4)
    return b.getvalue()


def _decode_webp(blob):
    import io
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGBA"), dtype=np.uint8)


def pack(out_dir, cache=CACHE, workers=2):
    """cache/train store -> out_dir/part<K>/{pack.bin,pack.npz}; parts are
    interleaved (instance i goes to the part being filled in a random order)
    so each part is a fair sample of every package."""
    store = ImageStore(cache)
    order = np.random.default_rng(0).permutation(len(store))
    with Pool(workers) as pool:
        blobs = pool.map(_encode_webp, (store.get(int(i)) for i in order), chunksize=64)
    cnt = np.bincount(store.pkg, minlength=len(TRAIN_PKGS))
    part, size, parts = [], 0, []
    for i, b in zip(order, blobs):
        if size + len(b) > PACK_PART_BYTES and part:
            parts.append(part)
            part, size = [], 0
        part.append((int(i), b))
        size += len(b)
    parts.append(part)
    for k, items in enumerate(parts):
        d = os.path.join(out_dir, f"part{k}")
        os.makedirs(d, exist_ok=True)
        lens = np.array([len(b) for _, b in items], np.int64)
        with open(os.path.join(d, "pack.bin"), "wb") as f:
            for _, b in items:
                f.write(b)
        ids = np.array([i for i, _ in items], np.int64)
        np.savez(os.path.join(d, "pack.npz"), ids=ids, lens=lens, pkg=store.pkg[ids], pkg_counts=cnt)
        print(f"pack: {d}: {len(items)} instances, {lens.sum()/1e6:.1f} MB", flush=True)
    # the text augmentation's fonts (fonts-dejavu-core), absent on a GPU machine
    import shutil
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import augment
    os.makedirs(os.path.join(out_dir, "fonts"), exist_ok=True)
    for f in augment.TRAIN_FONTS:
        shutil.copy(os.path.join(augment.FONT_DIR, f), os.path.join(out_dir, "fonts", f))


def unpack(part_dirs, cache=CACHE, workers=None):
    t0 = time.time()
    blobs, pkg, cnt = [], [], None
    for d in part_dirs:
        z = np.load(os.path.join(d, "pack.npz"))
        raw = open(os.path.join(d, "pack.bin"), "rb").read()
        ends = np.cumsum(z["lens"])
        blobs += [raw[e - n:e] for e, n in zip(ends, z["lens"])]
        pkg.append(z["pkg"])
        cnt = z["pkg_counts"]
    with Pool(workers or os.cpu_count()) as pool:
        arrs = pool.map(_decode_webp, blobs, chunksize=64)
    os.makedirs(cache, exist_ok=True)
    offs, shapes, pos = [], [], 0
    with open(os.path.join(cache, "images.u8"), "wb") as f:
        for a in arrs:
            f.write(np.ascontiguousarray(a).tobytes())
            offs.append(pos)
            shapes.append(a.shape[:2])
            pos += a.size
    np.savez(os.path.join(cache, "index.npz"), offs=np.array(offs, np.int64), shapes=np.array(shapes, np.int32),
             pkg=np.concatenate(pkg), pkg_counts=cnt, src=np.array(["pack"] * len(offs)))
    print(f"unpack: {len(offs)} instances from {len(part_dirs)} part(s), {pos/2**20:.0f} MiB, "
          f"{time.time()-t0:.1f}s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "build":
        build()
    elif len(sys.argv) > 2 and sys.argv[1] == "pack":
        pack(sys.argv[2])
    elif len(sys.argv) > 2 and sys.argv[1] == "unpack":
        unpack(sys.argv[2:])
    else:
        print(__doc__)


# ------------------------------------------------------------ training pairs

class PairStream:
    """Endless stream of (view0, view1) uint8 CHW pairs of random instances.

    Used as a torch IterableDataset body: each DataLoader worker gets its own
    seed (run seed, start step, worker id), so a resumed run does not replay
    the same sequence. Transparent instances are composited over a varied
    background; both views share it (p=0.85) or get their own.
    """

    def __init__(self, size, seed, store=None):
        self.size = size
        self.seed = seed
        self.store = store or ImageStore()
        self.weights = self.store.sample_weights()
        self.cum = np.cumsum(self.weights)

    def _pick(self, rng):
        return int(np.searchsorted(self.cum, rng.random() * self.cum[-1]))

    def _base(self, arr, rng):
        import augment
        h, w = arr.shape[:2]
        if arr[:, :, 3].min() == 255:
            return augment.to_rgb(arr, None), None
        other = self.store.get(self._pick(rng)) if rng.random() < 0.3 else None
        bg = augment.background(rng, (w, h), other)
        return augment.to_rgb(arr, bg), bg

    def pair(self, rng):
        import augment
        i = self._pick(rng)
        arr = self.store.get(i)
        base, _ = self._base(arr, rng)

        def other():
            return self.store.get(self._pick(rng))

        v0 = augment.augment(base, rng, self.size, other)
        if rng.random() >= 0.85 and arr[:, :, 3].min() < 255:
            base, _ = self._base(arr, rng)
        v1 = augment.augment(base, rng, self.size, other)
        return i, np.asarray(v0).transpose(2, 0, 1).copy(), np.asarray(v1).transpose(2, 0, 1).copy()

    def __iter__(self):
        import random
        import torch
        info = torch.utils.data.get_worker_info()
        wid = info.id if info is not None else 0
        rng = random.Random(f"{self.seed}-{wid}")
        while True:
            i, a, b = self.pair(rng)
            yield i, torch.from_numpy(a), torch.from_numpy(b)
