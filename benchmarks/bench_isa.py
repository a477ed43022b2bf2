"""The kernels of every instruction-set level this machine can run, side by side.

csoftmax is built for baseline x86-64, AVX2+FMA and AVX-512 and picks the
best runnable level at import (``CSOFTMAX_ISA`` overrides it).  Users of older
or other CPUs get the lower levels, which the main benchmark never times: this
script times them all, on one core, so that a level gone slow shows up (the
AVX2 build once ran 10x slower than intended while every test passed).

Each level runs in its own process (``CSOFTMAX_ISA=<level>``, pinned to one
CPU where the OS allows, ``n_threads=1``); each time is the median of
``--repeats`` calls after a warm-up.

Run: ``python benchmarks/bench_isa.py`` (about 1 minute); prints a table and
writes ``benchmarks/RESULTS-isa.md``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (standard library only)

CASES = (
    # name, N, D, K, dtype of X
    ("digits64", 200_000, 64, 10, "float64"),
    ("digits32", 200_000, 64, 10, "float32"),
    ("mnist64", 20_000, 784, 10, "float64"),
    ("uint8", 200_000, 64, 10, "uint8"),
)


def measure(repeats):
    """Times (ms) of this process's kernels: loss_and_gradient per case, then
    predict and softmax on the digits-like case."""
    import numpy as np

    import csoftmax

    def median_ms(fn):
        fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times)) * 1e3

    rng = np.random.default_rng(0)
    out = {"isa": csoftmax._config.config()["isa"]}
    for name, n, d, k, dtype in CASES:
        X = (rng.random((n, d)) < 0.3).astype(dtype)
        y = rng.integers(0, k, n)
        W = rng.normal(scale=0.1, size=(k, d)).astype(np.float32 if dtype == "float32" else np.float64)
        b = np.zeros(k, dtype=W.dtype)
        out[f"loss_and_gradient {name}"] = median_ms(lambda: csoftmax.loss_and_gradient(W, X, y, b, n_threads=1))
        if name == "digits64":
            out["predict digits64"] = median_ms(lambda: csoftmax.predict(W, X, b, n_threads=1))
            Z = rng.normal(size=(n, k))
            out["softmax (200000, 10)"] = median_ms(lambda: csoftmax.softmax(Z, n_threads=1))
    return out


def run_level(isa, repeats):
    env = dict(os.environ, CSOFTMAX_ISA=isa, OMP_NUM_THREADS="1")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--repeats", str(repeats)]
    if hasattr(os, "sched_getaffinity") and sys.platform.startswith("linux"):
        first_cpu = min(os.sched_getaffinity(0))
        cmd = ["taskset", "-c", str(first_cpu)] + cmd
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.repeats)))
        return

    import csoftmax

    levels = list(csoftmax._config.config()["isa_runnable"])
    results = [run_level(isa, args.repeats) for isa in levels]
    names = [key for key in results[0] if key != "isa"]
    best = results[0]
    lines = [
        "# csoftmax kernels per instruction-set level",
        "",
        f"- machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}",
        f"- csoftmax {csoftmax.__version__}; levels runnable here: {', '.join(levels)} "
        f"(the first is what `import csoftmax` picks)",
        f"- command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`",
        "- 1 thread, one process per level pinned to one CPU, medians of "
        f"{args.repeats} calls; in brackets: the time relative to {best['isa']}",
        "",
        "| what | " + " | ".join(r["isa"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for name in names:
        cells = [f"{r[name]:.2f} ms ({r[name] / best[name]:.1f}x)" for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    harness.write_results(lines, "RESULTS-isa.md")


if __name__ == "__main__":
    main()
