"""16 Python threads calling different functions, shapes and thread counts at once."""

import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import csoftmax


def _jobs():
    rng = np.random.default_rng(3)
    jobs = []
    for i in range(16):
        N, D, K = 50 + 37 * i, 1 + i % 5, 2 + i % 4
        dtype = np.float32 if i % 3 == 0 else np.float64
        X = rng.normal(size=(N, D)).astype(dtype)
        W = rng.normal(size=(K, D)).astype(dtype)
        b = rng.normal(size=K).astype(dtype)
        y = rng.integers(0, K, N)
        n_threads = (1, 2, None, -1)[i % 4]
        use_out = i % 2 == 1
        kind = i % 4
        if kind == 0:
            jobs.append(lambda X=X, W=W, b=b, nt=n_threads: csoftmax.predict_proba(W, X, b, n_threads=nt))
        elif kind == 1:
            Z = X @ W.T
            jobs.append(
                lambda Z=Z, nt=n_threads, o=use_out: csoftmax.softmax(
                    Z, out=np.empty_like(Z) if o else None, n_threads=nt
                )
            )
        elif kind == 2:
            jobs.append(lambda X=X, W=W, y=y, b=b, nt=n_threads: csoftmax.log_likelihood(W, X, y, b, n_threads=nt))
        else:

            def job(X=X, W=W, y=y, b=b, nt=n_threads, o=use_out):
                gW_out, gb_out = (np.empty_like(W), np.empty_like(b)) if o else (None, None)
                loss, gW, gb = csoftmax.loss_and_gradient(
                    W, X, y, b, n_threads=nt, grad_W_out=gW_out, grad_b_out=gb_out
                )
                return loss, gW.copy(), gb.copy()

            jobs.append(job)
    return jobs


def _same(a, b):
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


def test_16_threads_match_single_threaded_results():
    jobs = _jobs()
    serial = [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(5):
            results = list(pool.map(lambda j: j(), jobs * 2))
            for i, res in enumerate(results):
                assert _same(res, serial[i % len(jobs)]), f"job {i % len(jobs)} differs"


@pytest.mark.skipif(
    not hasattr(sys, "_is_gil_enabled") or sys._is_gil_enabled(), reason="needs a free-threaded CPython"
)
def test_16_threads_match_without_the_gil():
    test_16_threads_match_single_threaded_results()
