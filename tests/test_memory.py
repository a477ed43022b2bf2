"""Memory: no leaks across calls, no (N, K) temporaries in the likelihood functions.

``CSOFTMAX_LEAK_CALLS`` sets the number of calls per function of the leak
test (default 100000).
"""

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import csoftmax


# AddressSanitizer holds freed memory in a quarantine, so the RSS of a
# sanitized build grows without any leak (and ASan checks the heap itself).
_SANITIZED = "-fsanitize=address" in csoftmax._config.config()["compile_flags"]
measures_rss = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _SANITIZED,
    reason="reads /proc/self/statm; the RSS of an AddressSanitizer build grows by its quarantine",
)


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@measures_rss
def test_repeated_calls_do_not_grow_the_process():
    rng = np.random.default_rng(0)
    # A wide model: a leak of any per-call copy of W (800 kB) shows at once.
    X = rng.random((64, 1000))
    W = rng.normal(size=(100, 1000)) * 0.01
    b = np.zeros(100)
    y = rng.integers(0, 100, 64)
    pb = csoftmax.pack_bits(X > 0.5)
    calls = [
        lambda: csoftmax.loss_and_gradient(W, X, y, b),
        lambda: csoftmax.loss_and_gradient(W, pb, y, b),
        lambda: csoftmax.predict_proba(W, X, b),
        lambda: csoftmax.hessian_product(W, X, W, b, b),
        lambda: csoftmax.softmax(X),
    ]
    for call in calls:
        call()
    before = _rss_bytes()
    for _ in range(200):
        for call in calls:
            call()
    grown = _rss_bytes() - before
    assert grown < 20 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 1000 calls"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_likelihood_functions_allocate_nothing_of_size_n(dtype):
    rng = np.random.default_rng(1)
    n, d, k = 100_000, 16, 10
    X = rng.random((n, d)).astype(dtype)
    W = rng.normal(size=(k, d)).astype(dtype)
    b = np.zeros(k, dtype)
    y = rng.integers(0, k, n)
    gW, gb = np.empty_like(W), np.empty_like(b)
    csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=gW, grad_b_out=gb)
    tracemalloc.start()
    csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=gW, grad_b_out=gb)
    csoftmax.log_likelihood(W, X, y, b)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # y (int64) is used as it is; nothing proportional to N (let alone N x K) is made.
    assert peak < n, f"peak traced allocation {peak} bytes"


def _small_calls():
    """(name, call) for every public function on small inputs, the compiled SGD
    epoch, and error paths that leave the kernels early."""
    rng = np.random.default_rng(2)
    n, d, k = 8, 5, 3
    X = rng.random((n, d))
    W = rng.normal(size=(k, d))
    b = rng.normal(size=k)
    y = rng.integers(0, k, n)
    Y = rng.random((n, k))
    w = rng.random(n) + 0.5
    Z = X @ W.T
    out = np.empty((n, k))
    gW, gb = np.empty_like(W), np.empty_like(b)
    bits = X > 0.5
    packed = csoftmax.pack_bits(bits)
    y_bad = y.copy()
    y_bad[-1] = k
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    from csoftmax._functions import features_of

    epoch = features_of(X, W).sgd_epoch
    order, W_sgd, b_sgd = np.arange(n, dtype=np.int64), W.copy(), b.copy()
    vW, vb = np.zeros_like(W), np.zeros_like(b)

    def expect_error(func, *args, **kwargs):
        try:
            func(*args, **kwargs)
        except ValueError:
            return
        raise AssertionError("no error")

    return [
        ("softmax", lambda: csoftmax.softmax(Z, out=out)),
        ("log_softmax", lambda: csoftmax.log_softmax(Z)),
        ("logsumexp", lambda: csoftmax.logsumexp(Z)),
        ("predict_proba", lambda: csoftmax.predict_proba(W, X, b)),
        ("predict", lambda: csoftmax.predict(W, packed, b)),
        ("log_likelihood", lambda: csoftmax.log_likelihood(W, X, Y, b, sample_weight=w)),
        ("log_likelihood_gradient", lambda: csoftmax.log_likelihood_gradient(W, bits, y, b)),
        ("loss_and_gradient", lambda: csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=gW, grad_b_out=gb)),
        ("loss_and_gradient-weighted", lambda: csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=0.1)),
        ("hessian_product", lambda: csoftmax.hessian_product(W, X, W, b, b, y=y)),
        ("pack_bits", lambda: csoftmax.pack_bits(bits)),
        ("sgd_epoch", lambda: epoch(X, order, y, None, W_sgd, b_sgd, vW, vb, 4, 0.01, 1.0, 0, 1e-3, 0.25, 1.0,
                                    0.9, 0.0)),
        ("bad-label", lambda: expect_error(csoftmax.loss_and_gradient, W, X, y_bad, b)),
        ("nan-in-X", lambda: expect_error(csoftmax.predict_proba, W, X_nan, b)),
    ]


@measures_rss
def test_100000_calls_of_every_function_keep_the_rss_stable():
    calls = int(os.environ.get("CSOFTMAX_LEAK_CALLS", "100000"))
    for name, call in _small_calls():
        for _ in range(2000):  # warm-up: caches, allocator arenas, lazy imports
            call()
        gc.collect()
        before = _rss_bytes()
        for _ in range(calls):
            call()
        gc.collect()
        grown = _rss_bytes() - before
        # 5 MiB over 100000 calls: a leak of even 64 bytes per call would show.
        assert grown < 5 * 2**20, f"{name}: RSS grew by {grown / 2**20:.1f} MiB over {calls} calls"
