"""Tests of the Python binding (python/neardup) on the library built here:
real images from data/ and tests/data, a real LMDB index in a scratch
directory. Prints PASS/FAIL lines as tests/run.sh reads them; one case by
name: test_python.py test_query."""
import os
import shutil
import sys
import tempfile
import traceback

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import neardup  # noqa: E402

DATA = "data"
GROUPS = [  # data/'s groups as the command line prints them (scripts/demo.sh)
    ["data/astronaut.jpg", "data/astronaut_half.png", "data/astronaut_crop.jpg"],
    ["data/camera_contrast.png", "data/camera.png"],
    ["data/chelsea.jpg", "data/chelsea_phone.heic", "data/chelsea_q25.jpg", "data/chelsea_flip.jpg"],
    ["data/coffee.jpg", "data/coffee_web.webp", "data/coffee_caption.jpg", "data/coffee_border.jpg"],
    ["data/rocket.jpg", "data/rocket_exif6.jpg"],
]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def same_age(d):
    """A fresh checkout writes data/'s files moments apart in any order, and
    the keep rule's age test would follow that order: one age for all, so that
    the pictures decide, as in GROUPS."""
    for name in os.listdir(d):
        if not name.startswith("."):
            os.utime(os.path.join(d, name), (1700000000, 1700000000))


def test_add_dedup(tmp):
    same_age(DATA)
    with neardup.Collection(os.path.join(tmp, "a.db")) as c:
        r = c.add([DATA])
        check(r["embedded"] == 23 and r["failed"] == 0, "counts %r" % r)
        check(len(r["ignored_files"]) == 3, "ignored %r" % r["ignored_files"])
        groups = c.dedup()
        got = [[m["path"] for m in g["members"]] for g in groups]
        check(got == GROUPS, "groups %r" % got)
        check(all(g["keep"] == g["members"][0]["path"] and g["reason"] for g in groups), "keepers")
        # members join on their own pair (>= the default 0.9) or by the weak
        # merge, which reads pairs down to 0.15 under it
        check(all(0.7 <= m["similarity"] <= 1 for g in groups for m in g["members"]), "similarities")
        # a higher threshold keeps fewer pairs
        check(sum(len(g["members"]) for g in c.dedup(min_sim=0.999)) <
              sum(len(g["members"]) for g in groups), "min_sim=0.999 not stricter")
        again = c.add(DATA)
        check(again["unchanged"] == 23 and again["embedded"] == 0, "second add %r" % again)


def test_query(tmp):
    with neardup.Collection(os.path.join(tmp, "q.db")) as c:
        c.add([os.path.join(tmp, "orig")])
        best = c.query("data/coffee_web.webp", k=3)
        check(2 <= len(best) <= 3, "k=3 gave %d" % len(best))
        check(best[0]["path"].endswith("/coffee.jpg"), "best %r" % best[0])
        check(all(a["similarity"] >= b["similarity"] for a, b in zip(best, best[1:])), "order")
        check(0.9 < best[0]["raw_similarity"] <= 1.0, "raw %r" % best[0])
        # bytes give what the file gives; the rotated copy is found by a rotated view
        b = c.query(open("data/coffee_web.webp", "rb").read(), k=3)
        check([m["path"] for m in b] == [m["path"] for m in best], "bytes %r" % b)
        rot = c.query("data/rocket_exif6.jpg", k=1, views="all")
        check(rot[0]["path"].endswith("/rocket.jpg"), "rocket %r" % rot)
        # the same bytes score 1 and come first; min_sim filters
        same = c.query("data/coffee.jpg", k=5, min_sim=0.5)
        check(len(same) == 1 and same[0]["similarity"] == 1.0, "min_sim filter %r" % same)
        check(len(c.query("data/coffee.jpg", k=1)) == 1, "k=1")


def test_embed(tmp):
    with neardup.Collection(os.path.join(tmp, "e.db")) as c:
        c.add([os.path.join(tmp, "orig")])
        v = c.embed("data/chelsea.jpg")
        check(isinstance(v, np.ndarray) and v.dtype == np.float32 and v.shape == (c.dim,), "shape")
        check(abs(float(v @ v) - 1) < 1e-3, "norm %f" % float(v @ v))
        w = c.embed(open("data/chelsea.jpg", "rb").read())
        check(np.allclose(v, w), "bytes and file differ")
        near = c.embed("data/chelsea_q25.jpg")
        far = c.embed("data/brick.jpg")
        check(float(v @ near) > 0.95 > float(v @ far), "cosines %f %f" % (v @ near, v @ far))
        hits = c.query(v, k=1)
        check(hits[0]["path"].endswith("/chelsea.jpg") and hits[0]["view"] == "identity", "%r" % hits)


def test_add_bytes(tmp):
    with neardup.Collection(os.path.join(tmp, "b.db")) as c:
        imgs = {"mem/coffee": open("data/coffee.jpg", "rb").read(),
                "mem/coffee-again": open("data/coffee.jpg", "rb").read(),
                "mem/web": open("data/coffee_web.webp", "rb").read(),
                "mem/junk": b"not an image"}
        r = c.add_bytes(imgs)
        check(r["embedded"] == 2 and r["exact"] == 1 and r["failed"] == 1, "counts %r" % r)
        check(r["errors"] == [("mem/junk", "cannot decode", "not a supported image format")],
              "errors %r" % r["errors"])
        check(c.dedup() == [], "names that are not files count as deleted files")
        g = c.dedup(check_files=False)
        check(len(g) == 1 and sorted(m["path"] for m in g[0]["members"]) ==
              ["mem/coffee", "mem/coffee-again", "mem/web"], "groups %r" % g)
        check(c.remove(["mem/web"]) == 1, "remove")
        check(all(m["path"] != "mem/web" for m in c.query(imgs["mem/web"], k=5)), "removed still found")


def test_errors(tmp):
    try:
        neardup.Collection(os.path.join(tmp, "none.db"), create=False)
        check(False, "opened a missing index")
    except neardup.Error as e:
        check(e.code == -10 and "no index in" in str(e) and "none.db" in str(e), "message %r" % str(e))
    with neardup.Collection(os.path.join(tmp, "err.db")) as c:
        for bad, want in [("data/README.md", "cannot decode 'data/README.md': not a supported image format"),
                          (os.path.join(tmp, "missing.jpg"), "cannot read")]:
            try:
                c.query(bad)
                check(False, "queried %s" % bad)
            except neardup.Error as e:
                check(want in str(e), "message %r" % str(e))
        try:
            c.query(np.zeros(3, dtype=np.float32))
            check(False, "queried a 3-d vector")
        except neardup.Error as e:
            check("dimension" in str(e), "message %r" % str(e))
        try:
            c.embed("tests/data/image/truncated.jpg" if os.path.exists("tests/data/image/truncated.jpg")
                    else "data/dups.tsv")
            check(False, "embedded a bad image")
        except neardup.Error as e:
            check(str(e).startswith("cannot embed '"), "message %r" % str(e))
    ro = neardup.Collection(os.path.join(tmp, "err.db"), readonly=True)
    try:
        ro.add([DATA])
        check(False, "added to a read-only collection")
    except neardup.Error as e:
        check("read-only" in str(e), "message %r" % str(e))
    ro.close()


def main():
    only = sys.argv[1:]
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    root = tempfile.mkdtemp()
    failed = 0
    try:
        os.mkdir(os.path.join(root, "orig"))
        copies = {l.split("\t")[0] for l in open(os.path.join(DATA, "dups.tsv")) if l[:1] not in "#\n"}
        for f in sorted(os.listdir(DATA)):
            if f not in copies and f.rsplit(".", 1)[-1] in ("jpg", "png", "webp", "heic"):
                shutil.copy2(os.path.join(DATA, f), os.path.join(root, "orig", f))
        for name, fn in tests:
            if only and name not in only:
                continue
            try:
                fn(root)
                print("PASS", name)
            except Exception:  # noqa: BLE001
                failed += 1
                print("FAIL", name)
                traceback.print_exc(file=sys.stdout)
    finally:
        shutil.rmtree(root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
