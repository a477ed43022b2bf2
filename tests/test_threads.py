"""Threads: n_threads semantics, bitwise determinism, environment limits, concurrent callers."""

import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import csoftmax
from csoftmax import _threads
from reference import make_layout, soft_targets

THREAD_COUNTS = (1, 2, 3, 4, None, -1)


def _problem(n, d, k, dtype=np.float64, layout="C", seed=0):
    rng = np.random.default_rng([seed, n, d, k])
    X = make_layout(rng.normal(size=(n, d)).astype(dtype), layout)
    return {
        "X": X,
        "W": rng.normal(scale=0.5, size=(k, d)),
        "b": rng.normal(size=k),
        "y": rng.integers(0, k, n),
        "Y": soft_targets(rng, n, k),
        "w": rng.uniform(0.0, 2.0, n),
        "Z": make_layout(rng.normal(scale=3.0, size=(n, k)).astype(dtype), layout),
    }


def results(p, n_threads, targets="y"):
    W, X, y, b, w = p["W"], p["X"], p[targets], p["b"], p["w"]
    out = {}
    for reduction in ("mean", "sum"):
        loss, gW, gb = csoftmax.loss_and_gradient(
            W, X, y, b, sample_weight=w, l2=0.1, reduction=reduction, n_threads=n_threads
        )
        out[f"loss_{reduction}"] = loss
        out[f"gW_{reduction}"] = gW
        out[f"gb_{reduction}"] = gb
    out["loss_nob"], out["gW_nob"], _ = csoftmax.loss_and_gradient(W, X, y, n_threads=n_threads)
    out["L"] = csoftmax.log_likelihood(W, X, y, b, sample_weight=w, n_threads=n_threads)
    out["G"] = csoftmax.log_likelihood_gradient(W, X, y, b, n_threads=n_threads)
    out["P"] = csoftmax.predict_proba(W, X, b, n_threads=n_threads)
    out["labels"] = csoftmax.predict(W, X, b, n_threads=n_threads)
    for name in ("softmax", "log_softmax", "logsumexp"):
        out[name] = getattr(csoftmax, name)(p["Z"], n_threads=n_threads)
    return out


def assert_bitwise_equal(a, b, context=""):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float):
            assert a[key] == b[key], f"{key} {context}: {a[key]!r} != {b[key]!r}"
            assert a[key].hex() == b[key].hex(), key
        else:
            assert a[key].dtype == b[key].dtype
            assert np.array_equal(a[key], b[key]), f"{key} {context}"
            assert a[key].tobytes() == b[key].tobytes(), f"{key} {context}"


@pytest.mark.parametrize("targets", ["y", "Y"])
@pytest.mark.parametrize(
    "dtype, layout", [(np.float64, "C"), (np.float32, "C"), (np.float64, "F"), (np.float32, "strided")]
)
def test_bitwise_identical_for_every_thread_count(dtype, layout, targets):
    p = _problem(20000, 12, 7, dtype, layout)
    reference = results(p, 1, targets)
    for n_threads in THREAD_COUNTS:
        for repeat in range(2):
            assert_bitwise_equal(results(p, n_threads, targets), reference, f"n_threads={n_threads} run {repeat}")


def test_bitwise_identical_with_many_partitions():
    """More rows than fit the largest partition count: the partition layout still ignores threads."""
    p = _problem(150000, 3, 3)
    reference = results(p, 1)
    for n_threads in (2, 3, 5, None):
        assert_bitwise_equal(results(p, n_threads), reference, f"n_threads={n_threads}")


def test_partition_boundaries_do_not_change_values():
    """Results on N rows agree (to rounding) whether or not N crosses partition sizes."""
    p = _problem(6200, 5, 4)
    for n in (2047, 2048, 2049, 4096, 4097, 6143, 6200):
        W, X, y, b = p["W"], p["X"][:n], p["y"][:n], p["b"]
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, reduction="sum", n_threads=3)
        head = csoftmax.loss_and_gradient(W, X[: n - 1], y[: n - 1], b, reduction="sum", n_threads=3)
        last = csoftmax.loss_and_gradient(W, X[n - 1 :], y[n - 1 :], b, reduction="sum", n_threads=1)
        np.testing.assert_allclose(loss, head[0] + last[0], rtol=1e-12)
        np.testing.assert_allclose(gW, head[1] + last[1], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(gb, head[2] + last[2], rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# The n_threads argument
# ---------------------------------------------------------------------------


def test_n_threads_values():
    p = _problem(5000, 6, 5)
    reference = results(p, 1)
    for n_threads in (None, -1, -2, -(10**6), 10**6, 2**31 - 1, 2**40, np.int64(2), np.int32(3), np.uint8(2)):
        assert_bitwise_equal(results(p, n_threads), reference, f"n_threads={n_threads!r}")


def test_resolve_n_threads():
    default = _threads.default_n_threads()
    assert isinstance(default, int) and default >= 1
    assert _threads.resolve_n_threads(None) == default
    assert _threads.resolve_n_threads(-1) == default
    assert _threads.resolve_n_threads(-2) == max(1, default - 1)
    assert _threads.resolve_n_threads(-(10**6)) == 1
    assert _threads.resolve_n_threads(1) == 1
    assert _threads.resolve_n_threads(3) == 3
    capped = _threads.resolve_n_threads(10**6)
    assert 1 <= capped < 10**6
    assert _threads.resolve_n_threads(10**9) == capped
    for bad in (0, np.int64(0)):
        with pytest.raises(ValueError, match="n_threads"):
            _threads.resolve_n_threads(bad)
    for bad in (1.5, "2", True, False, 2.0, [1], np.float64(2.0)):
        with pytest.raises(TypeError, match="n_threads"):
            _threads.resolve_n_threads(bad)
    if csoftmax.openmp_enabled():
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        assert default <= affinity
    else:
        assert default == 1


def _run_python(code, env_extra=None, tmp_path=None):
    """Run ``code`` in a fresh interpreter that imports this same csoftmax."""
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT", "OMP_DYNAMIC"):
        env.pop(key, None)
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(csoftmax.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.update(env_extra or {})
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=str(tmp_path) if tmp_path else None,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


_CHILD = """
import json, numpy as np, csoftmax
from csoftmax import _threads
rng = np.random.default_rng(0)
X = rng.normal(size=(9000, 5)); W = rng.normal(size=(3, 5)); b = rng.normal(size=3)
y = rng.integers(0, 3, 9000)
loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, n_threads=4)
print(json.dumps({"default": _threads.default_n_threads(), "resolved": _threads.resolve_n_threads(None),
                  "loss": loss.hex(), "gW": [v.hex() for v in gW.ravel().tolist()]}))
"""


def _parent_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9000, 5))
    W = rng.normal(size=(3, 5))
    b = rng.normal(size=3)
    y = rng.integers(0, 3, 9000)
    loss, gW, _ = csoftmax.loss_and_gradient(W, X, y, b, n_threads=1)
    return loss.hex(), [v.hex() for v in gW.ravel().tolist()]


def test_omp_num_threads_1_in_subprocess(tmp_path):
    out = json.loads(_run_python(_CHILD, {"OMP_NUM_THREADS": "1"}, tmp_path))
    assert out["default"] == 1
    assert out["resolved"] == 1
    # The same numbers as this process computes with one thread.
    loss, gW = _parent_values()
    assert out["loss"] == loss and out["gW"] == gW


def test_omp_num_threads_larger_than_cores_is_capped(tmp_path):
    out = json.loads(_run_python(_CHILD, {"OMP_NUM_THREADS": "4096"}, tmp_path))
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= out["default"] <= affinity


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
def test_cpu_affinity_respected(tmp_path):
    code = "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n" + _CHILD
    out = json.loads(_run_python(code, None, tmp_path))
    assert out["default"] == 1
    loss, gW = _parent_values()
    assert out["loss"] == loss and out["gW"] == gW


def test_threadpoolctl_limits():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = _threads.default_n_threads()
    p = _problem(5000, 4, 3)
    reference = results(p, 1)
    with threadpoolctl.threadpool_limits(limits=1):
        assert _threads.default_n_threads() == 1
        assert _threads.resolve_n_threads(None) == 1
        assert_bitwise_equal(results(p, None), reference)
    assert _threads.default_n_threads() == before
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert _threads.default_n_threads() == 1
    assert _threads.default_n_threads() == before


def test_show_config_and_openmp_enabled():
    assert isinstance(csoftmax.openmp_enabled(), bool)
    buf = io.StringIO()
    csoftmax.show_config(file=buf)
    text = buf.getvalue()
    assert "csoftmax" in text and csoftmax.__version__ in text
    assert "OpenMP" in text
    assert ("on" if csoftmax.openmp_enabled() else "off") in text.split("OpenMP", 1)[1].splitlines()[0]
    assert str(_threads.default_n_threads()) in text
    assert np.__version__ in text


# ---------------------------------------------------------------------------
# Concurrent callers
# ---------------------------------------------------------------------------


def test_concurrent_calls_from_python_threads_match_serial():
    problems = [_problem(12000, 8, 5, dtype, seed=s) for s, dtype in enumerate((np.float64, np.float32, np.float64))]
    jobs = [(i, n_threads, targets) for i in range(len(problems)) for n_threads in (1, 2, None) for targets in ("y", "Y")]
    serial = {job: results(problems[job[0]], job[1], job[2]) for job in jobs}

    def work(job):
        return job, results(problems[job[0]], job[1], job[2])

    with ThreadPoolExecutor(max_workers=8) as pool:
        for job, got in pool.map(work, jobs * 3):
            assert_bitwise_equal(got, serial[job], f"job {job}")


def test_concurrent_calls_with_out_buffers():
    p = _problem(10000, 6, 4)
    expected = csoftmax.loss_and_gradient(p["W"], p["X"], p["y"], p["b"], sample_weight=p["w"], n_threads=1)
    expected_P = csoftmax.predict_proba(p["W"], p["X"], p["b"], n_threads=1)

    def work(i):
        gW = np.empty_like(p["W"])
        gb = np.empty_like(p["b"])
        P = np.empty((10000, 4))
        out = []
        for _ in range(5):
            loss, gW_, gb_ = csoftmax.loss_and_gradient(
                p["W"], p["X"], p["y"], p["b"], sample_weight=p["w"], grad_W_out=gW, grad_b_out=gb,
                n_threads=1 + i % 3,
            )
            assert gW_ is gW and gb_ is gb
            csoftmax.predict_proba(p["W"], p["X"], p["b"], out=P, n_threads=1 + i % 2)
            out.append((loss, gW.copy(), gb.copy(), P.copy()))
        return out

    with ThreadPoolExecutor(max_workers=8) as pool:
        for runs in pool.map(work, range(16)):
            for loss, gW, gb, P in runs:
                assert loss == expected[0]
                assert np.array_equal(gW, expected[1]) and np.array_equal(gb, expected[2])
                assert np.array_equal(P, expected_P)
