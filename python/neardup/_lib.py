"""The ctypes side: finding libneardup, its structs and calls (include/neardup/neardup.h)."""
import ctypes as C
import os

import numpy as np

ND_KIND_COUNT = 10
ND_ERRMSG_MAX = 512
VIEWS = ["identity", "rot90", "rot180", "rot270", "crop75", "crop50"]
STAGES = ["", "cannot read", "cannot decode", "cannot embed", "cannot query the index for"]


class Error(Exception):
    """A failed library call: str(e) is the library's message, e.code its ND_E* code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class _Error(C.Structure):
    _fields_ = [("code", C.c_int), ("msg", C.c_char * ND_ERRMSG_MAX)]


class _CollOptions(C.Structure):
    _fields_ = [("model", C.c_void_p), ("model_path", C.c_char_p), ("create", C.c_int),
                ("readonly", C.c_int), ("nosync", C.c_int), ("upgraded", C.POINTER(C.c_uint64)),
                ("shards", C.c_uint32), ("index_options", C.c_void_p), ("index_options_ctx", C.c_void_p)]


_EVENT_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_char_p, C.c_int, C.c_char_p)
_PROGRESS_FN = C.CFUNCTYPE(None, C.c_void_p, C.c_uint64, C.c_uint64, C.c_int)


class _AddOptions(C.Structure):
    _fields_ = [("threads", C.c_int), ("on_event", _EVENT_FN), ("on_progress", _PROGRESS_FN),
                ("ctx", C.c_void_p), ("cancel", C.POINTER(C.c_int)),
                ("take", C.c_void_p), ("take_ctx", C.c_void_p)]


class _AddCounts(C.Structure):
    _fields_ = [("walked", C.c_uint64), ("unchanged", C.c_uint64), ("same_file", C.c_uint64),
                ("embedded", C.c_uint64), ("exact", C.c_uint64), ("not_image", C.c_uint64),
                ("not_image_kind", C.c_uint64 * ND_KIND_COUNT), ("ignored", C.c_uint64),
                ("failed", C.c_uint64), ("committed", C.c_uint64), ("uncommitted", C.c_uint64),
                ("cancelled", C.c_int), ("seconds", C.c_double)]


class _Buffer(C.Structure):
    _fields_ = [("data", C.c_void_p), ("len", C.c_size_t), ("name", C.c_char_p),
                ("mtime_ns", C.c_int64)]


class _QueryOptions(C.Structure):
    _fields_ = [("k", C.c_uint32), ("min_sim", C.c_float), ("probes", C.c_uint32),
                ("views", C.c_uint), ("raw", C.c_int)]


class _Match(C.Structure):
    _fields_ = [("id", C.c_uint32), ("similarity", C.c_float), ("raw_similarity", C.c_float),
                ("view", C.c_int), ("path", C.c_char_p)]


class _Matches(C.Structure):
    _fields_ = [("items", C.POINTER(_Match)), ("n", C.c_size_t), ("failed", C.c_int),
                ("decode_seconds", C.c_double), ("embed_seconds", C.c_double),
                ("index_seconds", C.c_double)]


class _DedupOptions(C.Structure):
    _fields_ = [("min_sim", C.c_float), ("raw", C.c_int), ("keep", C.c_int),
                ("protect", C.POINTER(C.c_char_p)), ("nprotect", C.c_size_t),
                ("no_file_check", C.c_int)]


class _Origin(C.Structure):
    _fields_ = [("chroma", C.c_float), ("colour", C.c_float), ("margin", C.c_float),
                ("flat", C.c_float), ("aniso", C.c_float), ("detail", C.c_float),
                ("noise", C.c_float), ("blockiness", C.c_float), ("quality", C.c_uint8),
                ("camera", C.c_uint8), ("taken", C.c_int64)]


class _DupImage(C.Structure):
    _fields_ = [("id", C.c_uint32), ("path", C.c_char_p), ("width", C.c_uint32),
                ("height", C.c_uint32), ("size", C.c_uint64), ("mtime_ns", C.c_int64),
                ("hash", C.c_uint8 * 16), ("dev", C.c_uint64), ("ino", C.c_uint64),
                ("protect", C.c_int), ("has_origin", C.c_int), ("origin", _Origin)]


class _DupMember(C.Structure):
    _fields_ = [("image", C.c_size_t), ("similarity", C.c_float), ("raw_similarity", C.c_float),
                ("exact", C.c_int)]


class _DupGroup(C.Structure):
    _fields_ = [("members", C.POINTER(_DupMember)), ("n", C.c_size_t), ("reason", C.c_char * 48)]


class _DedupResult(C.Structure):
    _fields_ = [("images", C.POINTER(_DupImage)), ("n_images", C.c_size_t),
                ("groups", C.POINTER(_DupGroup)), ("n_groups", C.c_size_t),
                ("missing", C.c_size_t), ("buckets_capped", C.c_uint64),
                ("pairs_skipped", C.c_uint64), ("max_group", C.c_uint32)]


def _find_library():
    """$NEARDUP_LIB, then the installed tree around this package
    (PREFIX/lib/python3*/dist-packages/neardup -> PREFIX/lib), then the
    source tree's build, then the dynamic loader's search."""
    if os.environ.get("NEARDUP_LIB"):
        return os.environ["NEARDUP_LIB"]
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "..", "..", "..", "libneardup.so.0"),
                 os.path.join(here, "..", "..", "build", "rel", "libneardup.so.0")):
        if os.path.exists(cand):
            return os.path.normpath(cand)
    return "libneardup.so.0"


_lib = C.CDLL(_find_library())
_P = C.c_void_p
_E = C.POINTER(_Error)
for name, res, args in [
    ("nd_version", C.c_char_p, []),
    ("nd_strerror", C.c_char_p, [C.c_int]),
    ("nd_collection_options_init", None, [C.POINTER(_CollOptions)]),
    ("nd_collection_open", C.c_int, [C.POINTER(_P), C.c_char_p, C.POINTER(_CollOptions), _E]),
    ("nd_collection_close", None, [_P]),
    ("nd_collection_dim", C.c_size_t, [_P]),
    ("nd_add_options_init", None, [C.POINTER(_AddOptions)]),
    ("nd_add_event_text", C.c_char_p, [C.c_int]),
    ("nd_collection_add_paths", C.c_int,
     [_P, C.POINTER(C.c_char_p), C.c_size_t, C.POINTER(_AddOptions), C.POINTER(_AddCounts), _E]),
    ("nd_collection_add_buffers", C.c_int,
     [_P, C.POINTER(_Buffer), C.c_size_t, C.POINTER(_AddOptions), C.POINTER(_AddCounts), _E]),
    ("nd_collection_embed_file", C.c_int, [_P, C.c_char_p, C.POINTER(C.c_float), C.c_size_t, _E]),
    ("nd_collection_embed_buffer", C.c_int,
     [_P, C.c_void_p, C.c_size_t, C.POINTER(C.c_float), C.c_size_t, _E]),
    ("nd_query_options_init", None, [C.POINTER(_QueryOptions)]),
    ("nd_views_parse", C.c_int, [C.c_char_p, C.POINTER(C.c_uint), _E]),
    ("nd_collection_query_file", C.c_int,
     [_P, C.c_char_p, C.POINTER(_QueryOptions), C.POINTER(_Matches), _E]),
    ("nd_collection_query_buffer", C.c_int,
     [_P, C.c_void_p, C.c_size_t, C.POINTER(_QueryOptions), C.POINTER(_Matches), _E]),
    ("nd_collection_query_vector", C.c_int,
     [_P, C.POINTER(C.c_float), C.c_size_t, C.POINTER(_QueryOptions), C.POINTER(_Matches), _E]),
    ("nd_matches_free", None, [C.POINTER(_Matches)]),
    ("nd_dedup_options_init", None, [C.POINTER(_DedupOptions)]),
    ("nd_keep_rule_parse", C.c_int, [C.c_char_p, C.POINTER(C.c_int)]),
    ("nd_collection_dedup", C.c_int,
     [_P, C.POINTER(_DedupOptions), C.POINTER(C.POINTER(_DedupResult)), _E]),
    ("nd_dedup_result_free", None, [C.POINTER(_DedupResult)]),
    ("nd_collection_remove_paths", C.c_int,
     [_P, C.POINTER(C.c_char_p), C.c_size_t, C.POINTER(C.c_size_t), C.c_void_p, _E]),
]:
    fn = getattr(_lib, name)
    fn.restype = res
    fn.argtypes = args


def version():
    """The loaded library's version."""
    return _lib.nd_version().decode()


def _check(rc, err, prefix=""):
    if rc:
        msg = err.msg.decode(errors="replace") or _lib.nd_strerror(rc).decode()
        raise Error(rc, prefix + msg)


def _enc(path):
    return os.fsencode(path)


def _dec(b):
    return os.fsdecode(b)


class Collection:
    """An index directory plus its model (nd_collection). Created on first
    use unless create=False; readonly=True takes no writer lock."""

    def __init__(self, path, model=None, readonly=False, create=True):
        opts = _CollOptions()
        _lib.nd_collection_options_init(C.byref(opts))
        opts.model_path = _enc(model) if model is not None else None
        opts.readonly = int(readonly)
        opts.create = int(create)
        err = _Error()
        h = _P()
        _check(_lib.nd_collection_open(C.byref(h), _enc(path), C.byref(opts), C.byref(err)), err)
        self._h = h
        self.path = os.fspath(path)
        self.dim = _lib.nd_collection_dim(h)

    def close(self):
        """Closes the index; the collection cannot be used afterwards."""
        h, self._h = getattr(self, "_h", None), None
        if h and _lib is not None:  # None: the interpreter is shutting down
            _lib.nd_collection_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _handle(self):
        if not self._h:
            raise Error(-6, "collection is closed")
        return self._h

    def _add(self, call, progress, threads):
        errors = []

        def on_event(ctx, path, ev, detail):
            errors.append((_dec(path), _lib.nd_add_event_text(ev).decode(), detail.decode(errors="replace")))

        def on_progress(ctx, done, total, final):
            if progress:
                try:
                    progress(done, total, bool(final))
                except Exception:  # noqa: BLE001 - no way to raise across the library's threads
                    pass

        opts = _AddOptions()
        _lib.nd_add_options_init(C.byref(opts))
        opts.threads = threads
        opts.on_event = _EVENT_FN(on_event)
        opts.on_progress = _PROGRESS_FN(on_progress)
        counts = _AddCounts()
        err = _Error()
        _check(call(C.byref(opts), C.byref(counts), C.byref(err)), err)
        out = {f: getattr(counts, f) for f in ("walked", "unchanged", "same_file", "embedded",
                                                 "exact", "not_image", "ignored", "failed", "committed")}
        out["errors"] = [e for e in errors if e[1] != "ignored"]
        out["ignored_files"] = [e for e in errors if e[1] == "ignored"]
        return out

    def add(self, paths, threads=0, progress=None):
        """Adds image files and directories (walked recursively); files already
        indexed unchanged are skipped. Returns the counts, with "errors": a list
        of (path, what, reason) for inputs that could not be added."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        arr = (C.c_char_p * len(paths))(*[_enc(p) for p in paths])
        h = self._handle()
        return self._add(lambda o, c, e: _lib.nd_collection_add_paths(h, arr, len(paths), o, c, e),
                         progress, threads)

    def add_bytes(self, images, threads=0, progress=None):
        """Adds images held in memory: a dict (or pairs) of name -> bytes; the
        name is what results show in place of a path."""
        items = list(images.items()) if isinstance(images, dict) else list(images)
        keep = [(_enc(n), bytes(b)) for n, b in items]
        bufs = (_Buffer * len(keep))()
        for i, (n, b) in enumerate(keep):
            bufs[i].data = C.cast(C.c_char_p(b), C.c_void_p)
            bufs[i].len = len(b)
            bufs[i].name = n
        h = self._handle()
        return self._add(lambda o, c, e: _lib.nd_collection_add_buffers(h, bufs, len(keep), o, c, e),
                         progress, threads)

    def query(self, image, k=10, min_sim=None, views="all", raw=False):
        """The indexed images most similar to image (a path, bytes, or a vector
        from embed), best first: a list of dicts with path, id, similarity,
        raw_similarity (the cosine) and view (the view of image that matched)."""
        opts = _QueryOptions()
        _lib.nd_query_options_init(C.byref(opts))
        opts.k = int(k)
        if min_sim is not None:
            opts.min_sim = float(min_sim)
        err = _Error()
        mask = C.c_uint()
        _check(_lib.nd_views_parse(views.encode(), C.byref(mask), C.byref(err)), err, "views: ")
        opts.views = mask.value
        opts.raw = int(raw)
        ms = _Matches()
        h = self._handle()
        if isinstance(image, np.ndarray):
            v = np.ascontiguousarray(image, dtype=np.float32).ravel()
            rc = _lib.nd_collection_query_vector(h, v.ctypes.data_as(C.POINTER(C.c_float)), v.size,
                                                 C.byref(opts), C.byref(ms), C.byref(err))
            where = "vector"
        elif isinstance(image, (bytes, bytearray, memoryview)):
            b = bytes(image)
            rc = _lib.nd_collection_query_buffer(h, b, len(b), C.byref(opts), C.byref(ms), C.byref(err))
            where = "buffer"
        else:
            rc = _lib.nd_collection_query_file(h, _enc(image), C.byref(opts), C.byref(ms), C.byref(err))
            where = os.fspath(image)
        if rc:
            _check(rc, err, "%s '%s': " % (STAGES[ms.failed] or "cannot query", where))
        try:
            return [{"path": _dec(m.path), "id": m.id, "similarity": m.similarity,
                     "raw_similarity": m.raw_similarity, "view": VIEWS[m.view]}
                    for m in ms.items[:ms.n]]
        finally:
            _lib.nd_matches_free(C.byref(ms))

    def dedup(self, min_sim=None, keep="original", protect=(), raw=False, check_files=True):
        """The near-duplicate groups: a list of dicts {"keep": path, "reason",
        "members": [{"path", "similarity", "raw_similarity", "exact"}, ...]}
        where members[0] is the kept file. min_sim None: the library's default.
        check_files=False for images added with add_bytes (their names are not
        files: otherwise they count as deleted files and are left out)."""
        opts = _DedupOptions()
        _lib.nd_dedup_options_init(C.byref(opts))
        if min_sim is not None:
            opts.min_sim = float(min_sim)
        opts.raw = int(raw)
        rule = C.c_int()
        if _lib.nd_keep_rule_parse(keep.encode(), C.byref(rule)):
            raise Error(-6, "unknown keep rule '%s'" % keep)
        opts.keep = rule.value
        prot = (C.c_char_p * max(1, len(protect)))(*[_enc(p) for p in protect])
        opts.protect = prot
        opts.nprotect = len(protect)
        opts.no_file_check = int(not check_files)
        res = C.POINTER(_DedupResult)()
        err = _Error()
        _check(_lib.nd_collection_dedup(self._handle(), C.byref(opts), C.byref(res), C.byref(err)), err)
        try:
            r = res.contents
            groups = []
            for g in r.groups[:r.n_groups]:
                members = [{"path": _dec(r.images[m.image].path), "similarity": m.similarity,
                            "raw_similarity": m.raw_similarity, "exact": bool(m.exact)}
                           for m in g.members[:g.n]]
                groups.append({"keep": members[0]["path"], "reason": g.reason.decode(),
                               "members": members})
            return groups
        finally:
            _lib.nd_dedup_result_free(res)

    def embed(self, image):
        """The embedding of an image (a path or bytes): numpy float32 [dim]."""
        v = np.zeros(self.dim, dtype=np.float32)
        err = _Error()
        p = v.ctypes.data_as(C.POINTER(C.c_float))
        if isinstance(image, (bytes, bytearray, memoryview)):
            b = bytes(image)
            rc = _lib.nd_collection_embed_buffer(self._handle(), b, len(b), p, self.dim, C.byref(err))
            _check(rc, err, "cannot embed buffer: ")
        else:
            rc = _lib.nd_collection_embed_file(self._handle(), _enc(image), p, self.dim, C.byref(err))
            _check(rc, err, "cannot embed '%s': " % os.fspath(image))
        return v

    def remove(self, paths):
        """Removes images by path (or a directory's images); returns how many."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        arr = (C.c_char_p * max(1, len(paths)))(*[_enc(p) for p in paths])
        n = C.c_size_t()
        err = _Error()
        _check(_lib.nd_collection_remove_paths(self._handle(), arr, len(paths), C.byref(n), None,
                                               C.byref(err)), err)
        return n.value
