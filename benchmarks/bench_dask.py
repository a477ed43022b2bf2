"""Distributed fit: ``csoftmax.dask.SoftmaxRegression`` on a 2-worker LocalCluster
against the in-memory ``csoftmax.SoftmaxRegression`` on the same data.

- Data: 2,000,000 x 64 float32 features (scaled and shifted normals), 10
  classes drawn from a softmax model; 16 row chunks of 125,000 rows.
- Cluster: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)``
  on loopback.  X and y are persisted on the workers before the timed fit
  (the persist time is reported on its own), so the fit time is the L-BFGS
  loop, the feature statistics pass and the label encoding.
- In memory: ``SoftmaxRegression(n_threads=2)``, the same C, tol and max_iter.
- Both fits are capped at the same ``max_iter`` (30 by default): the time
  per iteration is fit time / ``n_iter_``.
- One evaluation: ``csoftmax.dask.loss_and_gradient`` on the persisted
  arrays against ``csoftmax.loss_and_gradient(n_threads=2)``, at the
  in-memory fit's parameters; the median of a few calls after a warm-up call.
- The in-memory measurements run before the cluster starts, so that its
  idle processes do not share the CPUs with them.
- Agreement: the largest coefficient difference relative to the largest
  coefficient, and the objective of each fitted model evaluated in memory.

Run: ``python benchmarks/bench_dask.py`` (about 3 minutes on 2 cores); prints
a table and writes ``benchmarks/RESULTS-dask.md``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402  (standard library only)


def make_data(n, d, k, seed=0):
    """float32 features with uneven scales and offsets; labels from a softmax model."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    X *= rng.uniform(0.5, 3.0, d).astype(np.float32)
    X += rng.uniform(-1.0, 1.0, d).astype(np.float32)
    W = rng.standard_normal((k, d)) / np.sqrt(d)
    logits = X @ W.T.astype(np.float32)
    logits += rng.gumbel(size=logits.shape).astype(np.float32)
    return X, np.argmax(logits, axis=1).astype(np.int64)


def timed(fn, repeats):
    """Median and best seconds of ``fn(i)`` for ``i = 1..repeats`` after a warm-up ``fn(0)``."""
    fn(0)
    times = []
    for i in range(1, repeats + 1):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def objective(model, X, y, C):
    """The fitted model's objective ``mean loss + ||W||^2 / (2 C N)``, evaluated in memory in float64."""
    import csoftmax

    W = model.coef_.astype(np.float64)
    b = model.intercept_.astype(np.float64)
    return csoftmax.loss_and_gradient(W, X, y, b, l2=1.0 / (C * X.shape[0]))[0]


def machine_lines():
    """The CPU description of ``run.py`` and the read bandwidth of ``machine.py`` at 2 threads."""
    import run

    info = run.machine_description()
    lines = [
        f"- CPU: {info['cpu']}; {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable); "
        f"memory {info['memory']}",
        f"- Linux {info['kernel']}, Python {info['python']}",
    ]
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "machine.py"), "--threads", "2", "--quick"],
        capture_output=True,
        text=True,
    )
    try:
        floors = json.loads(out.stdout)
        lines.append(
            f"- read bandwidth at 2 threads (`machine.py --quick`): {floors['read_GBps']:.1f} GB/s; "
            f"float32 GEMM {floors['gemm']['float32']['best_GFLOPs']:.0f} GFLOP/s"
        )
    except (ValueError, KeyError):
        lines.append(f"- machine.py failed: {out.stderr.strip()[-200:]}")
    return lines, info["csoftmax_config"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--chunks", type=int, default=16)
    p.add_argument("--max-iter", type=int, default=30)
    p.add_argument("--repeats", type=int, default=5, help="calls timed per evaluation measure")
    p.add_argument("--no-write", action="store_true", help="print only; do not write RESULTS-dask.md")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")

    import dask
    import dask.array as da
    import distributed

    import csoftmax
    from csoftmax import dask as cdask

    C, tol = 1.0, 1e-6
    n, d, k = args.rows, args.features, args.classes
    rows_per_chunk = -(-n // args.chunks)
    load = os.getloadavg()
    X, y = make_data(n, d, k)
    rows = []
    # Machine and in-memory measurements first: a running cluster would share the CPUs.
    machine, config = machine_lines()
    t0 = time.perf_counter()
    local = csoftmax.SoftmaxRegression(C=C, tol=tol, max_iter=args.max_iter, n_threads=2).fit(X, y)
    local_fit_s = time.perf_counter() - t0
    W, b = local.coef_.astype(np.float64), local.intercept_.astype(np.float64)
    # Every call at other parameters: the graph's keys are derived from the
    # parameters, and a repeated call could be served from results still held
    # by the cluster.
    local_eval = timed(lambda i: csoftmax.loss_and_gradient(W * (1 + 1e-9 * i), X, y, b, n_threads=2), args.repeats)

    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as client:
        t0 = time.perf_counter()
        Xd = client.persist(da.from_array(X, chunks=(rows_per_chunk, -1)))
        yd = client.persist(da.from_array(y, chunks=rows_per_chunk))
        distributed.wait([Xd, yd])
        persist_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        dist = cdask.SoftmaxRegression(C=C, tol=tol, max_iter=args.max_iter).fit(Xd, yd)
        dist_fit_s = time.perf_counter() - t0
        dist_eval = timed(lambda i: cdask.loss_and_gradient(W * (1 + 1e-9 * i), Xd, yd, b), args.repeats)

    dist_iter = dist_fit_s / max(dist.n_iter_, 1)
    local_iter = local_fit_s / max(local.n_iter_, 1)
    coef_diff = float(np.max(np.abs(dist.coef_ - local.coef_)) / np.max(np.abs(local.coef_)))
    f_dist, f_local = objective(dist, X, y, C), objective(local, X, y, C)
    agree = coef_diff < 1e-4 and abs(f_dist - f_local) <= 1e-7 * abs(f_local)

    rows.append((
        "fit, 2-worker LocalCluster (1 thread each)",
        f"{dist_fit_s:.2f} s",
        f"{dist.n_iter_}",
        f"{dist_iter * 1e3:.0f} ms",
        f"{dist_eval[0] * 1e3:.0f} ms (best {dist_eval[1] * 1e3:.0f})",
    ))
    rows.append((
        "fit, in memory (n_threads=2)",
        f"{local_fit_s:.2f} s",
        f"{local.n_iter_}",
        f"{local_iter * 1e3:.0f} ms",
        f"{local_eval[0] * 1e3:.0f} ms (best {local_eval[1] * 1e3:.0f})",
    ))

    lines = [
        "# csoftmax.dask benchmark",
        "",
        f"{n:,} x {d} float32 features, {k} classes, {args.chunks} row chunks of {rows_per_chunk:,} rows; "
        f"C={C}, tol={tol}, max_iter={args.max_iter} for both fits.  Generated by `benchmarks/bench_dask.py`; "
        "the method is in its docstring.",
        "",
        "## Machine and software",
        "",
        *machine,
        f"- csoftmax {csoftmax.__version__}, numpy {np.__version__}, dask {dask.__version__}, "
        f"distributed {distributed.__version__}",
        f"- load average at the start (1, 5, 15 min; the machine may be shared): "
        f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}",
        "",
        "```",
        config,
        "```",
        "",
        "Command:",
        "",
        "```bash",
        " ".join(["python", os.path.relpath(os.path.abspath(sys.argv[0]), os.path.dirname(HERE))] + sys.argv[1:]),
        "```",
        "",
        "## Results",
        "",
        "| fit | fit time | L-BFGS iterations | time per iteration | one evaluation (median of "
        f"{args.repeats}) |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows],
        "",
        f"- Persisting X and y on the workers (shipping {X.nbytes / 2**20:.0f} MiB from the client): "
        f"{persist_s:.2f} s, once per fit, not included above.",
        f"- Overhead of the distributed path: {dist_iter / local_iter:.2f}x the in-memory time per iteration, "
        f"{dist_eval[0] / local_eval[0]:.2f}x per evaluation (median).",
        f"- Agreement: max |coef difference| / max |coef| = {coef_diff:.2e}; objective {f_dist:.10f} "
        f"(distributed) vs {f_local:.10f} (in memory): {'the fits agree' if agree else 'the fits DIFFER'}.",
    ]
    harness.write_results(lines, "RESULTS-dask.md", write=not args.no_write)


if __name__ == "__main__":
    main()
