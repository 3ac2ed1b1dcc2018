"""Which dev-set originals are one picture (bench/corpus/same_source.tsv).

aliases(origs) maps each original's index (origs: index -> source path) to
the smallest index showing the same picture by the table's lines; originals
not in the table map to themselves (two originals cut from one file stay
apart: the benchmarks leave such pairs out as ambiguous). The quality
benchmark and the pair-score fit both label pairs with it."""
import os

TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "same_source.tsv")


def _load():
    parent = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x
    with open(TABLE) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            a, b, _why = line.rstrip("\n").split("\t")
            parent.setdefault(a, a)
            parent.setdefault(b, b)
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


_ROOT = _load()


def aliases(origs):
    first = {}
    for o in sorted(origs):
        r = _ROOT.get(origs[o])
        if r is not None:
            first.setdefault(r, o)
    return {o: first[_ROOT[s]] if s in _ROOT else o for o, s in origs.items()}
