"""csoftmax.dask on a real two-process LocalCluster started and stopped here."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import csoftmax  # noqa: E402
from csoftmax import dask as cdask  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _data(n=3000, d=7, k=4, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) * rng.uniform(0.5, 3, d) + rng.uniform(-2, 2, d)).astype(dtype)
    y = rng.integers(0, k, n)
    w = rng.uniform(0.1, 2.0, n)
    return X, y, w


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_and_gradient_equals_in_memory(client, weighted, reduction):
    X, y, w = _data()
    rng = np.random.default_rng(1)
    W, b = rng.standard_normal((4, 7)), rng.standard_normal(4)
    sw = w if weighted else None
    expected = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=sw, l2=0.3, reduction=reduction)
    got = cdask.loss_and_gradient(
        W,
        da.from_array(X, chunks=(700, -1)),
        da.from_array(y, chunks=700),
        b,
        sample_weight=None if sw is None else da.from_array(sw, chunks=700),
        l2=0.3,
        reduction=reduction,
    )
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=0)


def test_graph_embeds_no_data_and_scatters_W(client):
    X, y, _ = _data()
    Xd = client.persist(da.from_array(X, chunks=(500, -1)))
    yd = client.persist(da.from_array(y, chunks=500))
    W = np.arange(28.0).reshape(4, 7)
    graph = cdask._graph(W, Xd, yd, None, None, client)
    for key, task in dict(graph.__dask_graph__()).items():
        for piece in _leaves(task):
            assert not (isinstance(piece, np.ndarray) and piece.size >= W.size), key
    futures = [v for v in _leaves(graph.__dask_graph__()) if isinstance(v, distributed.Future)]
    assert any(np.array_equal(f.result(), W) for f in futures) or any(
        isinstance(v, distributed.Future) for v in client.futures_of(graph)
    )


def _leaves(obj):
    try:
        import dask

        if hasattr(dask, "_task_spec") and isinstance(obj, dask._task_spec.GraphNode):
            for dep in getattr(obj, "args", ()) + tuple(getattr(obj, "kwargs", {}).values()):
                yield from _leaves(dep)
            if hasattr(obj, "value"):
                yield from _leaves(obj.value)
            return
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _leaves(o)
    elif isinstance(obj, dict) or hasattr(obj, "items"):
        for v in obj.values():
            yield from _leaves(v)
    else:
        yield obj


def test_fit_same_optimum_and_lazy_predict(client):
    X, y, w = _data()
    labels = np.array(["a", "b", "c", "d"])[y]
    ref = csoftmax.SoftmaxRegression(C=10.0, tol=1e-8, max_iter=500).fit(X, labels, sample_weight=w)
    est = cdask.SoftmaxRegression(C=10.0, tol=1e-8, max_iter=500).fit(
        da.from_array(X, chunks=(600, -1)), da.from_array(labels, chunks=600), sample_weight=da.from_array(w, chunks=600)
    )
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.intercept_, ref.intercept_, rtol=1e-5, atol=1e-6)
    Xd = da.from_array(X, chunks=(600, -1))
    proba = est.predict_proba(Xd)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(X), atol=1e-6)
    pred = est.predict(Xd)
    assert isinstance(pred, da.Array)
    assert (pred.compute() == ref.predict(X)).mean() > 0.999


def test_import_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, csoftmax; print('dask' in sys.modules or 'distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
