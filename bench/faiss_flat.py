#!/usr/bin/python3
"""FAISS IndexFlatIP reference for bench_index: exact inner-product search.

usage: faiss_flat.py BASE.f32 QUERIES.f32 DIM OUT.txt

Loads the raw float32 matrices written by bench_index, runs every query one at
a time on one thread (latency p50/p99), then all queries in one batch (one
thread), writes the top-10 ids of each query (one line per query) to OUT.txt
and prints one line: "faiss p50_ms=.. p99_ms=.. batch_ms_per_query=..".
Needs Debian's python3-faiss and python3-numpy (/usr/bin/python3)."""
import sys
import time

import faiss
import numpy as np


def main():
    base_path, q_path, dim, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    xb = np.fromfile(base_path, dtype=np.float32).reshape(-1, dim)
    xq = np.fromfile(q_path, dtype=np.float32).reshape(-1, dim)
    faiss.omp_set_num_threads(1)
    index = faiss.IndexFlatIP(dim)
    index.add(xb)
    nsingle = min(len(xq), 200)
    for i in range(5):  # warm-up
        index.search(xq[i:i + 1], 10)
    lat = []
    for i in range(nsingle):
        t = time.perf_counter()
        index.search(xq[i:i + 1], 10)
        lat.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter()
    _, ids = index.search(xq, 10)
    batch = (time.perf_counter() - t) * 1e3 / len(xq)
    with open(out_path, "w") as f:
        for row in ids:
            f.write(" ".join(str(int(x)) for x in row) + "\n")
    lat.sort()
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    print(f"faiss p50_ms={p50:.3f} p99_ms={p99:.3f} batch_ms_per_query={batch:.4f}")


if __name__ == "__main__":
    main()
