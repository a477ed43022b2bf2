"""Memory: no leaks across calls, no (N, K) temporaries in the likelihood functions."""

import sys
import tracemalloc

import numpy as np
import pytest

import csoftmax


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
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
