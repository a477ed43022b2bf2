"""Time csoftmax's other public functions against their memory floor.

    python benchmarks/functions.py --threads 1 --impl csoftmax     # prints JSON
    python benchmarks/functions.py --threads 1 --impl reference

Row-wise functions on a (200000, 10) float64 array Z: ``softmax``,
``log_softmax``, ``logsumexp``; model functions on the digits-like case
(200000 x 64 x 10, float64): ``predict_proba``, ``predict``,
``log_likelihood``, ``log_likelihood_gradient``.  ``--impl reference`` times
a plain NumPy / SciPy formulation of each instead (``scipy.special`` for the
row-wise functions), for scale, after checking it agrees with csoftmax; the
two run in separate processes so that their thread pools never meet.
``bytes`` is what a function must read and write at least (inputs once,
outputs once); the runner divides it by the measured bandwidth.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402  (standard library only)
from cases import CASES, make_data  # noqa: E402


def build():
    """name -> (csoftmax call taking n_threads, reference call, reference label, bytes, flops)."""
    import numpy as np
    import scipy.special

    import csoftmax
    from peers import numpy_loss, numpy_loss_and_gradient

    case = CASES["digits64"]
    W, X, y, b = make_data(case)
    n, k = case.n, case.k
    Z = np.random.default_rng(1).standard_normal((n, k)) * 3.0
    rows = np.arange(n)
    f8 = 8
    gemm = 2 * n * case.d * k
    return {
        "softmax": (
            lambda nt: csoftmax.softmax(Z, n_threads=nt),
            lambda: scipy.special.softmax(Z, axis=1),
            "scipy.special.softmax",
            2 * n * k * f8,
            0,
        ),
        "log_softmax": (
            lambda nt: csoftmax.log_softmax(Z, n_threads=nt),
            lambda: scipy.special.log_softmax(Z, axis=1),
            "scipy.special.log_softmax",
            2 * n * k * f8,
            0,
        ),
        "logsumexp": (
            lambda nt: csoftmax.logsumexp(Z, n_threads=nt),
            lambda: scipy.special.logsumexp(Z, axis=1),
            "scipy.special.logsumexp",
            n * k * f8 + n * f8,
            0,
        ),
        "predict_proba": (
            lambda nt: csoftmax.predict_proba(W, X, b, n_threads=nt),
            lambda: scipy.special.softmax(X @ W.T + b, axis=1),
            "softmax(X @ W.T + b)",
            case.x_bytes + n * k * f8,
            gemm,
        ),
        "predict": (
            lambda nt: csoftmax.predict(W, X, b, n_threads=nt),
            lambda: np.argmax(X @ W.T + b, axis=1),
            "argmax(X @ W.T + b)",
            case.x_bytes + n * 8,
            gemm,
        ),
        "log_likelihood": (
            lambda nt: csoftmax.log_likelihood(W, X, y, b, n_threads=nt),
            lambda: -n * numpy_loss(W, X, y, b, rows),
            "NumPy reference, loss only",
            case.x_bytes + n * 8,
            gemm,
        ),
        "log_likelihood_gradient": (
            lambda nt: csoftmax.log_likelihood_gradient(W, X, y, b, n_threads=nt),
            lambda: -n * numpy_loss_and_gradient(W, X, y, b, rows)[1],
            "NumPy reference, loss + gradient",
            case.x_bytes + n * 8,
            2 * gemm,
        ),
    }


def _agree(a, b):
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "iu" or b.dtype.kind in "iu":
        return bool(np.array_equal(a, b))
    return bool(np.max(np.abs(a - b)) <= 1e-6 * max(np.max(np.abs(b)), 1e-300))


def run(threads, impl, repeats, warmup_s, only=None, min_warmup_calls=3):
    record = {"threads": threads, "impl": impl}
    record.update(harness.limit_process(threads))
    from threadpoolctl import threadpool_limits

    funcs = build()
    threadpool_limits(limits=threads)
    results = {}
    for name, (fn, ref, ref_label, n_bytes, flops) in funcs.items():
        if only and name not in only:
            continue
        entry = {"bytes": n_bytes, "flops": flops, "reference": ref_label}
        if impl == "csoftmax":
            call = lambda fn=fn: fn(threads)  # noqa: E731
        else:
            call = ref
            entry["agree"] = _agree(ref(), fn(1))  # csoftmax with 1 thread: starts no thread pool
        samples, number = harness.time_calls(call, repeats, warmup_s=warmup_s, min_warmup_calls=min_warmup_calls)
        entry.update(harness.summarize(samples), number=number)
        results[name] = entry
    record["functions"] = results
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--impl", choices=("csoftmax", "reference"), default="csoftmax")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=float, default=0.2)
    p.add_argument("--min-warmup-calls", type=int, default=3, help="calls before timing, at least (default 3)")
    p.add_argument("--only", default="", help="comma-separated function names")
    args = p.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    print(json.dumps(run(args.threads, args.impl, args.repeats, args.warmup, only, args.min_warmup_calls)))


if __name__ == "__main__":
    main()
