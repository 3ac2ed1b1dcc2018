#!/usr/bin/env python3
"""No import cycles: checks the #include graph of src/ and include/ and the
graph of cross-file references between the objects of a build (file A uses
a symbol that file B defines), and prints one PASS or FAIL line for each.

    scripts/check_cycles.py [BUILD_DIR]     (default $ND_BUILD_DIR, else build/rel;
                                             make test runs it on its build)

The references come from nm on BUILD_DIR/src/**/*.o, so they are exactly
what the linker resolves: calls and global variables, macros not included.
A cycle is printed as the files in it, with one symbol for each edge.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sccs(nodes, edges):
    """Tarjan's strongly connected components with more than one node (or a
    self-loop), each as a sorted list."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def source_files():
    for top in ("src", "include"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), ROOT)


def include_graph():
    files = set(source_files())
    edges = {}
    for f in files:
        with open(os.path.join(ROOT, f), encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for inc in INCLUDE_RE.findall(text):
            # as the compiler looks: the including file's folder, then -Iinclude -Isrc
            for base in (os.path.dirname(f), "include", "src"):
                cand = os.path.normpath(os.path.join(base, inc))
                if cand in files:
                    if cand != f:
                        edges.setdefault(f, set()).add(cand)
                    break
    return files, edges


def nm(obj, *flags):
    out = subprocess.run(["nm", "-P", *flags, obj], check=True, capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def reference_graph(build):
    objs = {}
    for d, _, files in os.walk(os.path.join(build, "src")):
        for f in files:
            if f.endswith(".o"):
                obj = os.path.join(d, f)
                src = os.path.relpath(obj, build)[:-2] + ".c"
                if os.path.exists(os.path.join(ROOT, src)):  # not a removed file's
                    objs[src] = obj
    defined, used = {}, {}
    for src, obj in objs.items():
        for sym in nm(obj, "-g", "--defined-only"):
            defined.setdefault(sym, src)
        used[src] = set(nm(obj, "-u"))
    edges, why = {}, {}
    for src, syms in used.items():
        for sym in sorted(syms):
            dst = defined.get(sym)
            if dst and dst != src:
                edges.setdefault(src, set()).add(dst)
                why.setdefault((src, dst), sym)
    return set(objs), edges, why


def report(name, comps, why=None):
    if not comps:
        print("PASS %s" % name)
        return 0
    for comp in comps:
        desc = " ".join(comp)
        if why:
            links = ["%s->%s (%s)" % (a, b, s) for (a, b), s in sorted(why.items())
                     if a in comp and b in comp]
            desc += ": " + ", ".join(links)
        print("FAIL %s: cycle among %s" % (name, desc))
    return 1


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ND_BUILD_DIR") or os.path.join(ROOT, "build", "rel")
    files, edges = include_graph()
    bad = report("no #include cycles in src/ and include/ (%d files)" % len(files), sccs(files, edges))
    if not os.path.isdir(os.path.join(build, "src")):
        print("FAIL no objects under %s/src: build first" % build)
        return 1
    objs, edges, why = reference_graph(build)
    bad |= report("no reference cycles between the %d source files of %s" % (len(objs), build),
                  sccs(objs, edges), why)
    return bad


if __name__ == "__main__":
    sys.exit(main())
