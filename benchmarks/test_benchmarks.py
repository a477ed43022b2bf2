"""Correctness of the benchmark code: ``pytest benchmarks``.

Every peer must compute the same loss and gradients as csoftmax; the timing,
memory and report helpers must run.  Nothing here asserts anything about time.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import peers  # noqa: E402
import run  # noqa: E402
from cases import CASES, Case, make_data  # noqa: E402

csoftmax = pytest.importorskip("csoftmax")

OPTIONAL = {"sklearn": "sklearn", "torch_autograd": "torch", "torch_closed": "torch", "jax": "jax"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("peer", peers.PEERS)
def test_peer_matches_csoftmax(peer, dtype):
    if peer in OPTIONAL:
        pytest.importorskip(OPTIONAL[peer])
    case = Case("tiny", 257, 13, 5, dtype, "tiny")
    W, X, y, b = make_data(case, seed=3)
    call, extract = peers.SETUP[peer](W, X, y, b, 1)
    got = extract(call())
    again = extract(call())  # a second call must not depend on state left by the first
    ref = csoftmax.loss_and_gradient(W, X, y, b, n_threads=1)
    for result in (got, again):
        errors, bad = peers.compare(result, ref, case.rtol)
        assert not bad, errors
        assert result[1].dtype == X.dtype


def test_compare_flags_a_wrong_gradient():
    ref = (1.0, np.ones((2, 3)), np.ones(2))
    _, bad = peers.compare((1.0, np.ones((2, 3)) * 1.01, np.ones(2)), ref, 1e-6)
    assert set(bad) == {"grad_W"}
    _, bad = peers.compare((1.0, np.ones((3, 2)), np.ones(2)), ref, 1e-6)
    assert set(bad) == {"grad_W"}


def test_cases_are_the_documented_sizes():
    sizes = {name: (c.n, c.d, c.k, c.dtype) for name, c in CASES.items()}
    assert sizes["digits64"] == (200_000, 64, 10, "float64")
    assert sizes["mnist64"] == (20_000, 784, 10, "float64")
    assert sizes["wide64"] == (10_000, 1000, 100, "float64")
    assert sizes["batch32"] == (32, 64, 10, "float32")
    assert CASES["digits32"].x_bytes == CASES["digits64"].x_bytes // 2


def test_harness_timing_and_summary():
    samples, number = harness.time_calls(lambda: None, repeats=4, warmup_s=0.0, min_sample_s=1e-4)
    assert len(samples) == 4 and number >= 1
    s = harness.summarize([3.0, 1.0, 2.0, 4.0])
    assert s["median"] == 2.5 and s["min"] == 1.0 and s["iqr"] == s["q3"] - s["q1"] >= 0


def test_memory_probe_sees_a_numpy_allocation():
    m = harness.measure_memory(lambda: np.ones(2_000_000).sum())
    assert m["traced_bytes"] >= 16_000_000


def test_peer_cli_prints_json():
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "peers.py"), "--peer", "numpy", "--case", "batch64", "--repeats", "3", "--warmup", "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    rec = json.loads(out.stdout)
    assert rec["peer"] == "numpy" and "error" not in rec
    assert rec["cpus"] and len(rec["samples"]) == 3


def test_report_renders_from_fake_results():
    args = run.parse_args(["--quick", "--cases", "batch64", "--threads", "1"])
    floors = {
        1: {
            "read_GBps": 30.0,
            "array_bytes": 2**28,
            "gemm_n": 1500,
            "bandwidth": {k: {"best_GBps": 30.0, "median_GBps": 29.0} for k in ("np.sum", "a.dot(a)")},
            "threadpool_info": [],
            "gemm": {k: {"best_GFLOPs": 50.0, "median_GFLOPs": 49.0} for k in ("float64", "float32")},
        }
    }
    stats = harness.summarize([1e-5, 2e-5, 3e-5])
    loss = {
        ("batch64", 1, "csoftmax"): dict(stats, number=100, neighbour_cpus=0.1, check={"errors": {"loss": 0.0}}),
        ("batch64", 1, "numpy"): {"error": "result differs from csoftmax: loss relative error 1e-3 > 1e-06"},
    }
    fn = {"softmax": dict(stats, number=1, bytes=10**6, flops=0, reference="scipy")}
    functions = {1: {"csoftmax": {"functions": fn}, "reference": {"functions": {"softmax": dict(fn["softmax"], agree=True)}}}}
    results = {"floors": {1: run.best_floors([floors[1], floors[1]])}, "loss": loss, "memory": {}, "functions": functions}
    machine = {
        "cpu": "cpu",
        "logical_cpus": 2,
        "usable_cpus": 2,
        "memory": "1 GiB",
        "kernel": "k",
        "python": "3",
        "versions": {"numpy": "2"},
        "csoftmax_config": "config",
    }
    text = run.report(args, machine, results, 1.0)
    assert "| batch64" in text and "failed*" in text and "result differs" in text
    assert "| softmax | 1 |" in text


def test_input_kinds_benchmark_data_and_report():
    import bench_inputs

    W, X, y, b = bench_inputs.binarized_digits(n=500)
    assert X.dtype == np.uint8 and set(np.unique(X)) <= {0, 1} and X.shape == (500, 64)
    dense = csoftmax.loss_and_gradient(W, X.astype(np.float64), y, b)
    packed = csoftmax.loss_and_gradient(W, csoftmax.pack_bits(X), y, b)
    np.testing.assert_allclose(packed[0], dense[0], rtol=1e-12)
    W, X, y, b = bench_inputs.sparse_problem(n=200, d=1000, k=3, per_row=10)
    assert X.has_sorted_indices and X.shape == (200, 1000)
    np.testing.assert_allclose(
        csoftmax.loss_and_gradient(W, X, y, b)[1], csoftmax.loss_and_gradient(W, X.toarray(), y, b)[1], rtol=1e-12
    )
    records = [
        {"what": "packed", "threads": 1, "median": 0.004, "iqr": 0.0001, "x_bytes": 1_600_000},
        {"what": "float64", "threads": 1, "median": 0.009, "iqr": 0.0002, "x_bytes": 102_400_000},
        {"what": "jax", "threads": 1, "error": "not installed (jax)"},
    ]
    text = "\n".join(bench_inputs._table(records, "packed", "title"))
    assert "2.25" in text and "not installed" in text


def test_input_kinds_benchmark_measures_one_kind():
    # In a subprocess: a measurement pins its process to its CPUs.
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "bench_inputs.py"), "--one", "packed", "--threads", "1",
         "--repeats", "2", "--max-time", "0.2"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    record = json.loads(out.stdout.strip().splitlines()[-1])
    assert record["error"] is None and record["median"] > 0 and record["x_bytes"] == 200_000 * 8


def test_isa_benchmark_times_every_case_at_this_level():
    import bench_isa

    times = bench_isa.measure(repeats=1)
    assert times["isa"] == csoftmax._config.config()["isa"]
    expected = {f"loss_and_gradient {name}" for name, *_ in bench_isa.CASES}
    expected |= {"predict digits64", "softmax (200000, 10)"}
    assert set(times) - {"isa"} == expected
    assert all(value > 0 for key, value in times.items() if key != "isa")
