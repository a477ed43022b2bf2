"""Training benchmarks: full-batch fits against scikit-learn, SGD epochs against PyTorch.

1. Time for ``SoftmaxRegression(solver="lbfgs")`` to reach the final objective of
   scikit-learn's ``LogisticRegression(solver="lbfgs")`` (to 1e-8 relative) on
   200000 digits-like samples (the built-in 8x8 digits resampled with pixel
   noise, values 0..16), C=1.  scikit-learn is timed with its default threads
   and with every thread pool limited to 1 (its best setting on 2 cores).
2. One SGD epoch (batch 32, momentum) over 200000 x 64 x 10 binary data:
   csoftmax's compiled epoch against one full-batch ``loss_and_gradient`` pass
   and against the standard PyTorch loop (``nn.Linear`` + ``F.cross_entropy`` +
   ``torch.optim.SGD``, no DataLoader, one thread), when PyTorch is installed.

Run: ``python benchmarks/bench_training.py`` (about 1 minute); prints a table
and writes ``benchmarks/RESULTS-training.md``.
"""

import os
import platform
import sys
import time
import warnings

import numpy as np

import csoftmax
from csoftmax import SoftmaxRegression
from csoftmax._functions import features_of
from csoftmax._sgd import sgd_train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (standard library only)


def digits_like(n=200_000, noise=2.0, seed=0):
    X0, y0 = csoftmax.datasets.load_digits8x8(binary=False, return_X_y=True)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y0), n)
    X = np.clip(np.rint(X0[idx] + rng.normal(scale=noise, size=(n, X0.shape[1]))), 0, 16)
    return X.astype(np.float64), y0[idx]


def best_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def full_batch(rows):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    X, y = digits_like()
    n = X.shape[0]

    def objective(model):
        return csoftmax.loss_and_gradient(model.coef_, X, y, model.intercept_, l2=1.0 / n, n_threads=1)[0]

    sk_times = {}
    for label, limit in (("default threads", None), ("threads limited to 1", 1)):
        def fit():
            if limit is None:
                return LogisticRegression().fit(X, y)
            with threadpool_limits(limit):
                return LogisticRegression().fit(X, y)

        sk_times[label], sk_model = best_time(fit, 1 if limit is None else 2)
    target = objective(sk_model) * (1 + 1e-8)
    rows.append(("scikit-learn LogisticRegression(lbfgs), default threads", f"{sk_times['default threads']:.2f} s", ""))
    rows.append(("scikit-learn LogisticRegression(lbfgs), threads limited to 1", f"{sk_times['threads limited to 1']:.2f} s", ""))
    for n_threads in (None, 1):
        probe = SoftmaxRegression(max_iter=1000, tol=0, n_threads=n_threads).fit(X, y)
        reached = np.flatnonzero(np.asarray(probe.loss_curve_) <= target)
        iterations = int(reached[0]) + 1
        t, _ = best_time(lambda: SoftmaxRegression(max_iter=iterations, tol=0, n_threads=n_threads).fit(X, y), 3)
        best_sk = min(sk_times.values())
        rows.append((
            f"SoftmaxRegression(lbfgs, n_threads={n_threads}) to scikit-learn's objective ({iterations} iterations)",
            f"{t:.2f} s",
            f"{best_sk / t:.1f}x faster than scikit-learn's best",
        ))


def sgd_epoch(rows):
    rng = np.random.default_rng(0)
    n, d, k = 200_000, 64, 10
    X = (rng.random((n, d)) < 0.35).astype(np.float64)
    y = rng.integers(0, k, n).astype(np.int64)
    W, b = np.zeros((k, d)), np.zeros(k)

    def epoch():
        return sgd_train(features_of(X, W), y, None, W, b, l2=1e-5, max_epochs=1, learning_rate="constant",
                         eta0=0.01, momentum=0.9, random_state=0)

    ours, _ = best_time(epoch, 3)
    full, _ = best_time(lambda: csoftmax.loss_and_gradient(W, X, y, b, n_threads=1), 5)
    rows.append(("csoftmax SGD epoch (batch 32, 1 thread)", f"{ours * 1e3:.1f} ms", f"{ours / full:.2f}x one full-batch pass ({full * 1e3:.1f} ms)"))
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        rows.append(("PyTorch SGD loop", "not installed", ""))
        return
    torch.set_num_threads(1)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    model = torch.nn.Linear(d, k).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-5)

    def torch_epoch():
        perm = torch.randperm(n)
        for start in range(0, n, 32):
            idx = perm[start:start + 32]
            opt.zero_grad()
            F.cross_entropy(model(Xt[idx]), yt[idx]).backward()
            opt.step()

    theirs, _ = best_time(torch_epoch, 1)
    rows.append(("PyTorch loop epoch (nn.Linear + F.cross_entropy + optim.SGD, 1 thread)", f"{theirs * 1e3:.0f} ms",
                 f"csoftmax {theirs / ours:.1f}x faster"))


def main():
    warnings.simplefilter("ignore")
    rows = []
    full_batch(rows)
    sgd_epoch(rows)
    lines = [
        "# csoftmax training benchmarks",
        "",
        f"- machine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} usable CPUs, Python {platform.python_version()}",
        f"- csoftmax {csoftmax.__version__}, kernels {csoftmax._config.config()['isa']}, numpy {np.__version__}",
        f"- command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`",
        "",
        "| what | time | ratio |",
        "|---|---|---|",
    ] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    harness.write_results(lines, "RESULTS-training.md")


if __name__ == "__main__":
    main()
