"""Input kinds: bit-packed, uint8/bool and sparse X against dense float64 and the peers.

1. Binarized 8x8 digits: 200000 images resampled from the built-in set with
   2% of the pixels flipped (so rows are not copies), D = 64, K = 10.
   ``loss_and_gradient`` on the same data as dense float64, uint8, bool,
   ``PackedBits`` and CSR, against the peers of ``peers.py`` (NumPy,
   scikit-learn, PyTorch, JAX) on the dense float64 array, at 1 and 2 threads.
2. Sparse: a 1%-dense 100000 x 20000 CSR matrix (float64, 200 stored entries
   per row), K = 20: csoftmax's CSR kernel against scikit-learn's
   ``LinearModelLoss(HalfMultinomialLoss).loss_gradient`` on the same matrix.

Every measurement runs in its own process pinned to its threads (see
``harness.limit_process``); every result is first checked against csoftmax on
the dense float64 array (rtol 1e-6) and not timed if it disagrees.  The sweep
over all measurements is repeated ``--rounds`` times in a rotated order and
the samples of the rounds are pooled (as in ``run.py``), so that a burst of
load from outside the run weighs on several measurements a little rather than
on one a lot.  Ratios are times of the row over csoftmax ``PackedBits`` (or
CSR) in the same run.

Run: ``python benchmarks/bench_inputs.py`` (about ten minutes); prints the tables
and writes ``benchmarks/RESULTS-inputs.md``.  ``--quick`` times fewer samples
and skips the peers.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402  (standard library only)

PACKED_KINDS = ("float64", "uint8", "bool", "packed", "csr")
PEERS = ("numpy", "sklearn", "torch_closed", "torch_autograd", "jax")
LABELS = {
    "float64": "csoftmax, dense float64",
    "uint8": "csoftmax, uint8",
    "bool": "csoftmax, bool",
    "packed": "csoftmax, PackedBits",
    "csr": "csoftmax, CSR",
    "numpy": "NumPy (dense float64)",
    "sklearn": "scikit-learn (dense float64)",
    "torch_closed": "torch closed form (dense float64)",
    "torch_autograd": "torch autograd (dense float64)",
    "jax": "JAX (dense float64)",
    "sparse_csoftmax": "csoftmax, CSR",
    "sparse_sklearn": "scikit-learn LinearModelLoss, same CSR",
}
RTOL = 1e-6


def binarized_digits(n=200_000, flip=0.02, seed=0):
    """``(W, X, y, b)``: X (n, 64) uint8 0/1 digits, W and b of logits of order 1."""
    import numpy as np

    import csoftmax

    X0, y0 = csoftmax.datasets.load_digits8x8(binary=True, return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y0), n)
    X = X0[idx].astype(np.uint8) ^ (rng.random((n, X0.shape[1])) < flip).astype(np.uint8)
    W = rng.standard_normal((10, X.shape[1])) / 8.0
    b = rng.standard_normal(10) * 0.1
    return W, X, y0[idx].astype(np.int64), b


def sparse_problem(n=100_000, d=20_000, k=20, per_row=200, seed=0):
    """``(W, X, y, b)`` with X a CSR matrix of ``per_row`` entries per row, sorted.

    Built from its arrays directly: ``scipy.sparse.random`` draws positions
    out of all n * d cells, which takes minutes at this size.
    """
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    indices = np.sort(rng.integers(0, d, (n, per_row)), axis=1).astype(np.int32)
    data = rng.standard_normal(n * per_row)
    indptr = np.arange(0, n * per_row + 1, per_row, dtype=np.int32)
    X = sp.csr_matrix((data, indices.ravel(), indptr), shape=(n, d))
    X.sum_duplicates()
    W = rng.standard_normal((k, d)) / np.sqrt(per_row)
    b = rng.standard_normal(k) * 0.1
    return W, X, rng.integers(0, k, n), b


def _check(got, ref):
    """Relative errors of (loss, grad_W, grad_b) against ``ref``; None when within RTOL."""
    from peers import compare

    errors, bad = compare(got, ref, RTOL)
    if bad:
        return ", ".join(f"{k} relative error {v:.2e}" for k, v in bad.items())
    return None


def measure(what, threads, repeats, max_time_s):
    """One measurement in this process; returns the JSON record."""
    record = {"what": what, "threads": threads}
    record.update(harness.limit_process(threads))
    import numpy as np
    from threadpoolctl import threadpool_limits

    import csoftmax

    if what.startswith("sparse_"):
        W, X, y, b = sparse_problem()
        record["x_bytes"] = int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
    else:
        W, X, y, b = binarized_digits()
        X_dense = X.astype(np.float64)
        ref = csoftmax.loss_and_gradient(W, X_dense, y, b, n_threads=1)
    if what in PACKED_KINDS or what == "sparse_csoftmax":
        if what == "sparse_csoftmax":
            Xk = X
        else:
            import scipy.sparse as sp

            Xk = {
                "float64": lambda: X_dense,
                "uint8": lambda: X,
                "bool": lambda: X.astype(bool),
                "packed": lambda: csoftmax.pack_bits(X),
                "csr": lambda: sp.csr_matrix(X_dense),
            }[what]()
            record["x_bytes"] = int(
                Xk.nbytes if hasattr(Xk, "nbytes") else Xk.data.nbytes + Xk.indices.nbytes + Xk.indptr.nbytes
            )

        def call():
            return csoftmax.loss_and_gradient(W, Xk, y, b, n_threads=threads)

        extract = lambda r: (float(r[0]), r[1], r[2])  # noqa: E731
    else:
        from peers import SETUP

        peer = what.removeprefix("sparse_")
        try:
            call, extract = SETUP[peer](W, X if what.startswith("sparse_") else X_dense, y, b, threads)
        except ImportError as exc:
            record["error"] = f"not installed ({exc.name or exc})"
            return record
    threadpool_limits(limits=threads)
    got = extract(call())
    if what == "sparse_csoftmax":
        # csoftmax's CSR kernel is checked against the dense array by the test
        # suite (the dense array is 16 GB here); the peer is checked against it.
        record["error"] = None
    elif what.startswith("sparse_"):
        mine = csoftmax.loss_and_gradient(W, X, y, b, n_threads=threads)
        record["error"] = _check(got, mine)
    else:
        record["error"] = _check(got, ref)
    if record["error"]:
        return record
    samples, number = harness.time_calls(call, repeats, max_time_s=max_time_s)
    record["number"] = number
    record["samples"] = samples
    record.update(harness.summarize(samples))
    return record


def _run_one(what, threads, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--one", what, "--threads", str(threads),
           "--repeats", str(args.repeats), "--max-time", str(args.max_time)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        return {"what": what, "threads": threads, "error": "timed out after 600 s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {"what": what, "threads": threads, "error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def _sweep(whats, thread_counts, args):
    """Every (what, threads) measured args.rounds times, each round in a rotated
    order; the rounds' samples pooled into one record per (what, threads)."""
    import run

    raw = {}
    for rnd in range(args.rounds):
        for t in thread_counts:
            shift = rnd % len(whats)
            for what in whats[shift:] + whats[:shift]:
                raw.setdefault((what, t), []).append(_run_one(what, t, args))
    records = []
    for (what, t), recs in raw.items():
        rec = run.pooled(recs)
        rec.update(what=what, threads=t, x_bytes=next((r["x_bytes"] for r in recs if r.get("x_bytes")), None))
        records.append(rec)
    return records


def _table(records, baseline, title):
    lines = [f"### {title}", "", "| input | threads | median ms | IQR ms | X bytes | time / " + LABELS[baseline] + " |",
             "|---|---|---|---|---|---|"]
    for threads in sorted({r["threads"] for r in records}):
        base = next((r for r in records if r["what"] == baseline and r["threads"] == threads and not r.get("error")), None)
        for r in (r for r in records if r["threads"] == threads):
            if r.get("error"):
                lines.append(f"| {LABELS[r['what']]} | {threads} | — | — | — | {r['error']} |")
                continue
            ratio = f"{r['median'] / base['median']:.2f}" if base else "—"
            x_bytes = f"{r['x_bytes'] / 2**20:.1f} MiB" if r.get("x_bytes") else "—"
            lines.append(
                f"| {LABELS[r['what']]} | {threads} | {r['median'] * 1e3:.2f} | {r['iqr'] * 1e3:.2f} | {x_bytes} | {ratio} |"
            )
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=30, help="timed samples per measurement (default 30)")
    p.add_argument("--max-time", type=float, default=10.0, help="seconds of sampling per measurement at most")
    p.add_argument("--rounds", type=int, default=None, help="sweeps over all measurements, pooled (default 2; quick 1)")
    p.add_argument("--quick", action="store_true", help="csoftmax only, fewer samples; prints, writes nothing")
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one, args.threads, args.repeats, args.max_time)))
        return
    if args.quick:
        args.repeats, args.max_time = 7, 2.0
    args.rounds = args.rounds or (1 if args.quick else 2)
    thread_counts = [t for t in (1, 2) if t <= len(os.sched_getaffinity(0))]
    packed_what = PACKED_KINDS + (() if args.quick else PEERS)
    sparse_what = ("sparse_csoftmax",) + (() if args.quick else ("sparse_sklearn",))
    packed = _sweep(packed_what, thread_counts, args)
    sparse = _sweep(sparse_what, thread_counts, args)

    lines = ["# Input kinds: benchmark results", ""]
    lines += [f"Command: `{shlex.join(['python', 'benchmarks/bench_inputs.py'] + (argv or sys.argv[1:]))}`", ""]
    import run  # its machine description, shared by every results file

    info = run.machine_description()
    lines += [f"Machine: {info['cpu']}; {info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable); "
              f"memory {info['memory']}; Linux {info['kernel']}, Python {info['python']}", ""]
    lines += ["Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()), ""]
    lines += [f"Medians over repeated samples, each measurement in its own process pinned to its threads; "
              f"{args.rounds} round(s) in rotated order, samples pooled.",
              "Last column: time of the row / time of the baseline row at the same thread count "
              "(below 1: faster than the baseline).", ""]
    lines += _table(packed, "packed", "Binarized 8x8 digits: 200000 x 64, K = 10 (`loss_and_gradient`)") + [""]
    lines += _table(sparse, "sparse_csoftmax", "Sparse: 100000 x 20000 CSR, 1% dense, K = 20") + [""]
    for threads in thread_counts:
        ok = {r["what"]: r["median"] for r in packed if r["threads"] == threads and not r.get("error")}
        if "packed" in ok and "float64" in ok:
            peers = {w: ok[w] for w in PEERS if w in ok}
            best = min(peers, key=peers.get) if peers else None
            line = (f"- {threads} thread(s): PackedBits is {ok['float64'] / ok['packed']:.2f}x faster than "
                    f"csoftmax on dense float64 (target 2x)")
            if best:
                line += f" and {peers[best] / ok['packed']:.1f}x faster than the fastest peer, {LABELS[best]} (target 15x)"
            lines.append(line + ".")
        sp_ok = {r["what"]: r["median"] for r in sparse if r["threads"] == threads and not r.get("error")}
        if "sparse_csoftmax" in sp_ok and "sparse_sklearn" in sp_ok:
            lines.append(f"- {threads} thread(s): CSR kernel {sp_ok['sparse_sklearn'] / sp_ok['sparse_csoftmax']:.1f}x "
                         "faster than scikit-learn's LinearModelLoss on the same matrix.")
    harness.write_results(lines, "RESULTS-inputs.md", write=not args.quick)


if __name__ == "__main__":
    main()
