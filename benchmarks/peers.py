"""Softmax-regression loss + gradient in csoftmax and its peers, one per process.

Every peer computes the same thing as ``csoftmax.loss_and_gradient(W, X, y, b)``:
the mean cross-entropy of ``softmax(X @ W.T + b)`` against integer labels
``y``, and its gradients with respect to ``W`` (K, D) and ``b`` (K,).

Run one peer on one case and print a JSON record::

    python benchmarks/peers.py --peer jax --case digits64 --threads 1
    python benchmarks/peers.py --peer numpy --case digits64 --threads 1 --memory

The process first pins itself to ``--threads`` CPUs (see
``harness.limit_process``), then imports the peer's library, limits its
thread pools, checks the peer's loss and gradients against csoftmax (computed
in the same process with ``n_threads=1``), and only then times it.  A peer
that disagrees is not timed: its record carries an ``error``.

Inputs are converted to each library's array type once, outside the timed
call (as a training loop would): ``torch.from_numpy`` shares memory,
``jax.device_put`` copies X once.  Each timed call returns the loss as a
Python float and the gradients as materialised arrays.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402  (standard library only)
from cases import CASES, make_data  # noqa: E402  (NumPy is imported later)

DESCRIPTIONS = {
    "csoftmax": "csoftmax.loss_and_gradient(W, X, y, b, n_threads=t)",
    "csoftmax_out": "the same, re-using grad_W_out / grad_b_out buffers",
    "numpy": "NumPy reference: X @ W.T + b, max-subtract, exp, normalise, loss, residual, P.T @ X",
    "sklearn": "scikit-learn LinearModelLoss(HalfMultinomialLoss, fit_intercept=True).loss_gradient",
    "torch_autograd": "PyTorch F.cross_entropy(X @ W.T + b, y) + backward()",
    "torch_closed": "PyTorch closed form: log_softmax, residual, two matmuls (no autograd)",
    "jax": "JAX jit(value_and_grad(loss, argnums=(0, 1))), block_until_ready",
}
PEERS = tuple(DESCRIPTIONS)
CSOFTMAX_PEERS = ("csoftmax", "csoftmax_out")


def _as_numpy_result(loss, gW, gb):
    import numpy as np

    return float(loss), np.asarray(gW), np.asarray(gb)


def setup_csoftmax(W, X, y, b, threads):
    import csoftmax

    def call():
        return csoftmax.loss_and_gradient(W, X, y, b, n_threads=threads)

    return call, lambda r: _as_numpy_result(*r)


def setup_csoftmax_out(W, X, y, b, threads):
    import numpy as np

    import csoftmax

    gW, gb = np.empty_like(W), np.empty_like(b)

    def call():
        return csoftmax.loss_and_gradient(W, X, y, b, n_threads=threads, grad_W_out=gW, grad_b_out=gb)

    return call, lambda r: _as_numpy_result(r[0], r[1].copy(), r[2].copy())


def numpy_loss(W, X, y, b, rows=None):
    """Mean cross-entropy alone, in NumPy (one GEMM)."""
    import numpy as np

    if rows is None:
        rows = np.arange(X.shape[0])
    Z = X @ W.T
    Z += b
    Z -= Z.max(axis=1, keepdims=True)
    z_true = Z[rows, y]
    np.exp(Z, out=Z)
    return float(np.mean(np.log(Z.sum(axis=1), dtype=np.float64) - z_true))


def numpy_loss_and_gradient(W, X, y, b, rows=None):
    """The textbook computation in NumPy; ``rows`` is ``np.arange(N)`` (re-usable)."""
    import numpy as np

    n = X.shape[0]
    if rows is None:
        rows = np.arange(n)
    Z = X @ W.T  # logits (N, K), one GEMM
    Z += b
    Z -= Z.max(axis=1, keepdims=True)
    z_true = Z[rows, y]
    np.exp(Z, out=Z)
    s = Z.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0], dtype=np.float64) - z_true)
    Z /= s  # probabilities
    Z[rows, y] -= 1  # residual P - Y
    grad_W = Z.T @ X  # second GEMM
    grad_W /= n
    grad_b = Z.sum(axis=0)
    grad_b /= n
    return float(loss), grad_W, grad_b


def setup_numpy(W, X, y, b, threads):
    import numpy as np

    rows = np.arange(X.shape[0])

    def call():
        return numpy_loss_and_gradient(W, X, y, b, rows)

    return call, lambda r: _as_numpy_result(*r)


def setup_sklearn(W, X, y, b, threads):
    import numpy as np
    from sklearn._loss.loss import HalfMultinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    k, d = W.shape
    model = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=k), fit_intercept=True)
    # coef (K, D + 1), intercept in the last column, F order as scikit-learn's
    # LogisticRegression keeps it; y as floats of X's dtype.
    coef = np.asfortranarray(np.hstack([W, b[:, None]]))
    y_float = y.astype(X.dtype)

    def call():
        return model.loss_gradient(coef, X, y_float, n_threads=threads)

    def extract(r):
        loss, grad = r
        return _as_numpy_result(loss, grad[:, :d], grad[:, d])

    return call, extract


def setup_torch_autograd(W, X, y, b, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    Wt = torch.from_numpy(W.copy()).requires_grad_()
    bt = torch.from_numpy(b.copy()).requires_grad_()

    def call():
        Wt.grad = None  # optimizer.zero_grad(set_to_none=True)
        bt.grad = None
        loss = F.cross_entropy(Xt @ Wt.T + bt, yt)
        loss.backward()
        return loss.item(), Wt.grad, bt.grad

    return call, lambda r: _as_numpy_result(r[0], r[1].numpy(), r[2].numpy())


def setup_torch_closed(W, X, y, b, threads):
    import torch

    torch.set_num_threads(threads)
    n = X.shape[0]
    Xt, Wt, bt = torch.from_numpy(X), torch.from_numpy(W), torch.from_numpy(b)
    y1 = torch.from_numpy(y)[:, None]
    minus_one = torch.full((n, 1), -1.0, dtype=Xt.dtype)

    @torch.no_grad()
    def call():
        Z = torch.addmm(bt, Xt, Wt.T)  # X @ W.T + b
        logP = torch.log_softmax(Z, dim=1)
        loss = -logP.gather(1, y1).mean()
        P = logP.exp_()
        P.scatter_add_(1, y1, minus_one)  # residual P - Y
        grad_W = (P.T @ Xt).div_(n)
        grad_b = P.sum(dim=0).div_(n)
        return loss.item(), grad_W, grad_b

    return call, lambda r: _as_numpy_result(r[0], r[1].numpy(), r[2].numpy())


def setup_jax(W, X, y, b, threads):
    import numpy as np

    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp

    if X.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)

    def loss_fn(W, b, X, y):
        logp = jax.nn.log_softmax(X @ W.T + b, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    f = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))
    Wj, bj, Xj = (jax.device_put(a) for a in (W, b, X))
    yj = jax.device_put(y.astype(np.int32))

    def call():
        loss, (gW, gb) = f(Wj, bj, Xj, yj)
        jax.block_until_ready((gW, gb))
        return float(loss), gW, gb

    def extract(r):
        assert r[1].dtype == X.dtype, f"JAX computed in {r[1].dtype}, not {X.dtype}"
        return _as_numpy_result(*r)

    return call, extract


SETUP = {name: globals()["setup_" + name] for name in PEERS}


def compare(got, ref, rtol):
    """Relative errors of (loss, grad_W, grad_b) against the reference.

    Gradients are compared as ``max |g - g_ref| / max |g_ref|`` (entries near
    zero would make an element-wise relative error meaningless).
    """
    import numpy as np

    errors = {"loss": abs(got[0] - ref[0]) / max(abs(ref[0]), 1e-300)}
    for name, g, r in (("grad_W", got[1], ref[1]), ("grad_b", got[2], ref[2])):
        g = np.asarray(g, dtype=np.float64)
        r = np.asarray(r, dtype=np.float64)
        if g.shape != r.shape:
            errors[name] = float("inf")
            continue
        errors[name] = float(np.max(np.abs(g - r)) / max(np.max(np.abs(r)), 1e-300))
    bad = {k: v for k, v in errors.items() if not v <= rtol}
    return errors, bad


def run(peer, case_name, threads, repeats, memory, warmup_s, min_sample_s, max_time_s=10.0, min_warmup_calls=3):
    record = {"peer": peer, "case": case_name, "threads": threads, "mode": "memory" if memory else "time"}
    record.update(harness.limit_process(threads))

    import numpy as np

    case = CASES[case_name]
    W, X, y, b = make_data(case)
    try:
        call, extract = SETUP[peer](W, X, y, b, threads)
    except ImportError as exc:
        record["error"] = f"not installed ({exc.name or exc})"
        return record
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # after the peer's imports: limits the pools loaded now

    if memory:
        for _ in range(2):  # warm-up: JIT compilation, thread pools, allocator
            call()
        record["memory"] = harness.measure_memory(call)
        record["x_bytes"] = case.x_bytes
        return record

    import csoftmax

    ref = csoftmax.loss_and_gradient(W, X, y, b, n_threads=1)
    got = extract(call())
    errors, bad = compare(got, ref, case.rtol)
    record["check"] = {"rtol": case.rtol, "errors": errors}
    if peer in CSOFTMAX_PEERS and threads > 1:
        # csoftmax promises bitwise-identical results for every thread count.
        record["check"]["bitwise_equal_to_1_thread"] = bool(
            got[0] == ref[0] and np.array_equal(got[1], ref[1]) and np.array_equal(got[2], ref[2])
        )
    if bad:
        record["error"] = "result differs from csoftmax: " + ", ".join(
            f"{k} relative error {v:.2e} > {case.rtol:g}" for k, v in bad.items()
        )
        return record

    samples, number = harness.time_calls(
        call, repeats, warmup_s=warmup_s, min_warmup_calls=min_warmup_calls, min_sample_s=min_sample_s, max_time_s=max_time_s
    )
    record["number"] = number
    record["samples"] = samples
    record.update(harness.summarize(samples))
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer", required=True, choices=PEERS)
    p.add_argument("--case", required=True, choices=tuple(CASES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30, help="timed samples (default 30)")
    p.add_argument("--warmup", type=float, default=0.3, help="seconds of warm-up (default 0.3)")
    p.add_argument("--min-sample", type=float, default=0.02, help="shortest sample in seconds (default 0.02)")
    p.add_argument("--max-time", type=float, default=10.0, help="stop sampling after this many seconds (default 10)")
    p.add_argument("--min-warmup-calls", type=int, default=3, help="calls before timing, at least (default 3)")
    p.add_argument("--memory", action="store_true", help="measure peak extra memory of one call instead of timing")
    args = p.parse_args(argv)
    record = run(
        args.peer,
        args.case,
        args.threads,
        args.repeats,
        args.memory,
        args.warmup,
        args.min_sample,
        args.max_time,
        args.min_warmup_calls,
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
