"""csoftmax.dask on a real two-process LocalCluster started and stopped here."""

import os
import pickle
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import csoftmax  # noqa: E402
from csoftmax import dask as cdask  # noqa: E402
from distributed.diagnostics.plugin import SchedulerPlugin  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
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


class _GraphRecorder(SchedulerPlugin):
    """Keeps, for every graph the scheduler receives, the chunk tasks' dependencies
    and the pickled size of every task's specification."""

    name = "csoftmax-graph-recorder"

    def __init__(self):
        self.graphs = []

    def update_graph(self, scheduler, *, tasks, **kwargs):
        graph = {}
        for key in tasks:
            state = scheduler.tasks[key]
            size = len(pickle.dumps(state.run_spec)) if state.run_spec is not None else 0
            graph[key] = ({dep.key for dep in state.dependencies}, size)
        self.graphs.append(graph)


def _recorded_graphs(dask_scheduler):
    return dask_scheduler.plugins[_GraphRecorder.name].graphs


def _name(key):
    return str(key[0] if isinstance(key, tuple) else key)


def test_parameters_sent_once_per_call_and_embedded_in_no_task(client):
    # What the scheduler receives is inspected, not the client's graph: one
    # key holds the parameters in every call, every chunk task reads it, and
    # the chunk tasks' specifications do not grow with W.
    X, y, _ = _data(d=7)
    Xd = client.persist(da.from_array(X, chunks=(500, -1)))
    yd = client.persist(da.from_array(y, chunks=500))
    distributed.wait([Xd, yd])
    client.register_plugin(_GraphRecorder())
    rng = np.random.default_rng(2)
    sizes = {}
    try:
        for n_classes in (4, 4, 2000):
            W, b = rng.standard_normal((n_classes, 7)), rng.standard_normal(n_classes)
            cdask.loss_and_gradient(W, Xd, yd, b)
            graph = client.run_on_scheduler(_recorded_graphs)[-1]
            holders = [k for k in graph if _name(k).startswith("csoftmax-parameters")]
            assert len(holders) == 1, holders
            assert graph[holders[0]][1] >= W.nbytes + b.nbytes
            chunk_tasks = [k for k in graph if _name(k).startswith("_chunk_sums")]
            assert len(chunk_tasks) == Xd.numblocks[0]
            for key in chunk_tasks:
                assert holders[0] in graph[key][0], key
            sizes[n_classes] = max(graph[k][1] for k in chunk_tasks)
            # The client's side of the same graph: no data of X (persisted, so
            # referred to by key) and the parameters in one key only.
            local = dict(cdask._graph(W, Xd, yd, b, None).__dask_graph__())
            rest = sum(
                len(pickle.dumps(v)) for k, v in local.items() if not _name(k).startswith("csoftmax-parameters")
            )
            assert rest < 500 * 7 * 8
        assert len(client.run_on_scheduler(_recorded_graphs)) == 3
    finally:
        client.unregister_scheduler_plugin(_GraphRecorder.name)
    assert sizes[2000] <= sizes[4] + 64 < 2000 * 7 * 8


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


@pytest.mark.parametrize("missing", ["dask", "distributed"])
def test_import_without_dask_names_the_extra(missing):
    # None in sys.modules makes the import fail as if the package were not installed.
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "try:\n    import csoftmax.dask\nexcept ImportError as error:\n    print(error)\n"
        "else:\n    print('imported')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert "pip install 'csoftmax[dask]'" in out, out
    assert missing in out, out


def _chunked(X, y, w, rows=500):
    return (
        da.from_array(X, chunks=(rows, -1)),
        da.from_array(y, chunks=rows),
        None if w is None else da.from_array(w, chunks=rows),
    )


def _bad_weights(w, value):
    w = w.copy()
    w[1234] = value
    return w


def _bad_labels(y, value):
    y = y.copy()
    y[1700] = value
    return y


def _nan_X(X):
    X = X.copy()
    X[2100, 3] = np.nan
    return X


@pytest.mark.parametrize(
    "spoil",
    [
        lambda X, y, w: (X, y, _bad_weights(w, -1.0)),
        lambda X, y, w: (X, y, _bad_weights(w, np.nan)),
        lambda X, y, w: (X, _bad_labels(y, 4), w),
        lambda X, y, w: (X, _bad_labels(y, -1), w),
        lambda X, y, w: (_nan_X(X), y, None),
    ],
    ids=["negative weight", "NaN weight", "label 4 of 4 classes", "label -1", "NaN in X"],
)
def test_loss_and_gradient_errors_equal_in_memory(client, spoil):
    # A bad value in a row chunk other than the first: the message, row index
    # included, is the in-memory function's.
    X, y, w = spoil(*_data())
    W, b = np.zeros((4, 7)), np.zeros(4)
    with pytest.raises(ValueError) as expected:
        csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w)
    with pytest.raises(ValueError) as got:
        cdask.loss_and_gradient(W, *_chunked(X, y, None)[:2], b, sample_weight=_chunked(X, y, w)[2])
    assert str(got.value) == str(expected.value)


def test_loss_and_gradient_rejects_mismatched_rows_and_chunks(client):
    X, y, w = _data()
    Xd, yd, wd = _chunked(X, y, w)
    W = np.zeros((4, 7))
    with pytest.raises(ValueError, match=r"y must be chunked along rows like X: row chunk 0 of y has 600 rows"):
        cdask.loss_and_gradient(W, Xd, da.from_array(y, chunks=600))
    with pytest.raises(ValueError, match=r"sample_weight must be chunked along rows like X.*sample_weight.rechunk"):
        cdask.loss_and_gradient(W, Xd, yd, sample_weight=da.from_array(w, chunks=(500,) * 5 + (250, 250)))
    for name, kwargs in (("y", {"y": yd[:-1]}), ("sample_weight", {"y": yd, "sample_weight": wd[:-1]})):
        with pytest.raises(ValueError) as got:
            cdask.loss_and_gradient(W, Xd, **kwargs)
        with pytest.raises(ValueError) as expected:
            in_memory = {k: np.asarray(v) for k, v in kwargs.items()}
            csoftmax.loss_and_gradient(W, X, **in_memory)
        assert str(got.value) == str(expected.value), name
    with pytest.raises(TypeError, match="y must be a dask array"):
        cdask.loss_and_gradient(W, Xd, y)
    with pytest.raises(ValueError, match="W has 6 features"):
        cdask.loss_and_gradient(np.zeros((4, 6)), Xd, yd)
    with pytest.raises(ValueError, match=r"W contains NaN or infinity \(first at index \(1, 2\)"):
        W_nan = W.copy()
        W_nan[1, 2] = np.inf
        cdask.loss_and_gradient(W_nan, Xd, yd)


@pytest.mark.parametrize(
    "spoil, message, argument",
    [
        (
            lambda X, y, w: (X, y, _bad_weights(w, -1.0)),
            "sample_weight must be finite and non-negative; got -1.0 at index 1234",
            "sample_weight",
        ),
        (
            lambda X, y, w: (X, y, _bad_weights(w, np.nan)),
            "sample_weight must be finite and non-negative; got nan at index 1234",
            "sample_weight",
        ),
        (lambda X, y, w: (_nan_X(X), y, w), r"X contains NaN or infinity \(first at index \(2100, 3\)", "X"),
        (lambda X, y, w: (X, _bad_labels(y.astype(float), np.nan), w), "y contains NaN", "y"),
        (lambda X, y, w: (X, y[:-1], w), "X has 3000 samples but y has 2999", "samples"),
        (lambda X, y, w: (X, y, w[:-1]), "sample_weight has 2999 entries but X has 3000 rows", "sample_weight"),
    ],
    ids=["negative weight", "NaN weight", "NaN in X", "NaN label", "short y", "short sample_weight"],
)
def test_fit_rejects_bad_input_naming_it(client, spoil, message, argument):
    X, y, w = spoil(*_data())
    with pytest.raises(ValueError, match=message):
        cdask.SoftmaxRegression().fit(
            da.from_array(X, chunks=(500, -1)), da.from_array(y, chunks=500), sample_weight=da.from_array(w, chunks=500)
        )
    # The in-memory fit rejects the same input and names the same argument
    # (scikit-learn's length check names the samples, not y).
    with pytest.raises(ValueError, match=argument):
        csoftmax.SoftmaxRegression().fit(X, y, sample_weight=w)


class _KillOnce(distributed.WorkerPlugin):
    """Kills its worker's process, as a crash would, when the worker starts a
    chunk task while ``sentinel`` exists; the first worker to remove the file
    is the only one to die."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def transition(self, key, start, finish, **kwargs):
        if finish != "executing" or not _name(key).startswith("_chunk_sums"):
            return
        try:
            os.remove(self.sentinel)
        except FileNotFoundError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


def test_fit_survives_a_worker_killed_mid_fit(client, tmp_path, monkeypatch):
    X, y, _ = _data()
    options = dict(C=10.0, tol=1e-8, max_iter=500)

    def chunked():
        return da.from_array(X, chunks=(500, -1)), da.from_array(y, chunks=500)

    undisturbed = cdask.SoftmaxRegression(**options).fit(*chunked())

    # The third evaluation arms the plugin: the first worker to start one of
    # its chunk tasks dies with the X chunks it holds; the scheduler computes
    # them again from their graph and reruns the lost tasks.
    sentinel = tmp_path / "kill-next-chunk-task"
    evaluations = []
    evaluate = cdask._DaskObjective.evaluate

    def evaluate_and_arm(self, W, b):
        evaluations.append(None)
        if len(evaluations) == 3:
            sentinel.touch()
        return evaluate(self, W, b)

    monkeypatch.setattr(cdask._DaskObjective, "evaluate", evaluate_and_arm)
    # Short connection timeouts, and the fit in a daemon thread joined with a
    # timeout: a regression can fail this test but never hang the run.
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0"
        )
        own = distributed.Client(cluster)  # the default client while it is open
        try:
            own.register_plugin(_KillOnce(str(sentinel)), name="csoftmax-kill-once")
            before = set(own.scheduler_info()["workers"])
            outcome = {}

            def fit():
                try:
                    outcome["model"] = cdask.SoftmaxRegression(**options).fit(*chunked())
                except BaseException as error:  # handed to the test's thread
                    outcome["error"] = error

            thread = threading.Thread(target=fit, daemon=True)
            thread.start()
            thread.join(timeout=120)
            assert not thread.is_alive(), "the fit did not finish within 120 s after a worker was killed"
            if "error" in outcome:
                raise outcome["error"]
            assert len(evaluations) > 3
            assert not sentinel.exists(), "no worker was killed"
            assert before - set(own.scheduler_info()["workers"]), "the killed worker is still registered"
        finally:
            own.close(timeout=30)
            cluster.close(timeout=30)
    model = outcome["model"]
    assert model.n_iter_ == undisturbed.n_iter_
    np.testing.assert_allclose(model.coef_, undisturbed.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.intercept_, undisturbed.intercept_, rtol=1e-12, atol=1e-14)
