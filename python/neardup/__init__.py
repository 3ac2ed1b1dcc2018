"""neardup: near-duplicate image detection (a ctypes binding of libneardup).

    import neardup
    with neardup.Collection("photos.db") as c:
        c.add(["photos/"])
        for group in c.dedup():
            print(group["keep"], [m["path"] for m in group["members"][1:]])
        print(c.query("new.jpg", k=5))
        vec = c.embed("new.jpg")          # numpy float32 [dim], L2-normalised

Errors raise neardup.Error, whose message is the library's.
"""
from ._lib import Error, Collection, version

__all__ = ["Error", "Collection", "version"]
