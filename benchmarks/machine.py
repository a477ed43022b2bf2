"""The machine's floors: memory read bandwidth and GEMM peak, at a thread count.

    python benchmarks/machine.py --threads 1          # prints JSON
    python benchmarks/machine.py --threads 2 --quick

- Bandwidth: one pass over a 1 GiB float64 array (256 MiB with ``--quick``),
  far larger than the L3 cache, with ``np.sum`` (NumPy, one thread) and
  ``a.dot(a)`` (BLAS ``ddot``, threaded by OpenBLAS).  The best rate of the two
  is the machine's read bandwidth at that thread count.
- GEMM peak: ``A @ B`` with 4000 x 4000 float64 and float32 matrices
  (1500 x 1500 with ``--quick``); FLOPs = 2 n^3.

Each figure is the best of a few repeats (a floor should be the fastest the
machine has been seen to go); medians are reported alongside.  The process is
pinned and its BLAS limited exactly as the peers are (``harness.limit_process``
and ``threadpoolctl``).
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402  (standard library only)


def _best_and_median(fn, repeats):
    fn()  # warm-up: page faults, BLAS thread start-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def measure(threads, quick=False):
    info = {"threads": threads}
    info.update(harness.limit_process(threads))
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads)
    info["threadpool_info"] = [
        {k: v for k, v in d.items() if k in ("user_api", "internal_api", "num_threads", "version", "architecture", "threading_layer", "filepath")}
        for d in threadpool_info()
    ]

    n_bytes = (256 if quick else 1024) * 2**20
    a = np.ones(n_bytes // 8)
    bw = {}
    for name, fn in (("np.sum", lambda: np.sum(a)), ("a.dot(a)", lambda: a.dot(a))):
        best, med = _best_and_median(fn, 3 if quick else 7)
        bw[name] = {"best_GBps": n_bytes / best / 1e9, "median_GBps": n_bytes / med / 1e9}
    del a
    info["array_bytes"] = n_bytes
    info["bandwidth"] = bw
    info["read_GBps"] = max(v["best_GBps"] for v in bw.values())

    n = 1500 if quick else 4000
    rng = np.random.default_rng(0)
    gemm = {}
    for dtype in ("float64", "float32"):
        A = rng.standard_normal((n, n)).astype(dtype)
        B = rng.standard_normal((n, n)).astype(dtype)
        best, med = _best_and_median(lambda: A @ B, 2 if quick else 3)
        flops = 2.0 * n**3
        gemm[dtype] = {"best_GFLOPs": flops / best / 1e9, "median_GFLOPs": flops / med / 1e9}
    info["gemm_n"] = n
    info["gemm"] = gemm
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="smaller array and matrices")
    args = p.parse_args(argv)
    print(json.dumps(measure(args.threads, args.quick)))


if __name__ == "__main__":
    main()
