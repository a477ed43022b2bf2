"""The estimator on awkward data and under interruption.

Separable data without a penalty, constant features, duplicated rows, and a
``KeyboardInterrupt`` in the middle of ``fit`` or ``partial_fit`` (raised by a
real SIGINT inside the compiled SGD epoch, or between two evaluations of the
objective): the estimator warns instead of diverging, and an interrupted call
leaves it exactly as it was.
"""

import inspect
import os
import signal
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import csoftmax._sgd
from csoftmax import SoftmaxRegression
from csoftmax._estimator import ConvergenceWarning, NotFittedError, _Objective

SOLVERS = {
    "lbfgs": {},
    "newton-cg": {},
    # "optimal" needs a penalty, so C=inf goes with a constant learning rate.
    "sgd": {"learning_rate": "constant", "eta0": 0.5, "random_state": 0},
}


def _blobs(rng, n_per_class=30, spread=1.0):
    centres = np.array([[6.0, 0.0], [-6.0, 0.0], [0.0, 8.0]])
    X = np.vstack([rng.normal(scale=spread, size=(n_per_class, 2)) + c for c in centres])
    return X, np.repeat([0, 1, 2], n_per_class)


def _fitted_state(est):
    """Every attribute of a fitted estimator, as copies."""
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(est).items() if k.endswith("_")}


def _assert_same_state(est, state):
    now = {k: v for k, v in vars(est).items() if k.endswith("_")}
    assert now.keys() == state.keys()
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(now[key], value, err_msg=key)
        else:
            assert now[key] == value, key


# ---------------------------------------------------------------------------
# Separable data, constant features, duplicate rows
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("tol", [1e-4, 0.0])
@pytest.mark.filterwarnings("ignore:SGD reached max_iter")  # with tol=0, SGD runs all its epochs
def test_separable_data_without_penalty_warns_and_stays_finite(rng, solver, tol):
    X, y = _blobs(rng)
    est = SoftmaxRegression(C=np.inf, solver=solver, tol=tol, max_iter=300, **SOLVERS[solver])
    with pytest.warns(ConvergenceWarning, match="linearly separable and C=inf") as record:
        est.fit(X, y)
    # Reported at the caller's line, for every solver.
    assert [w.filename for w in record if "separable" in str(w.message)] == [__file__]
    assert np.isfinite(est.coef_).all() and np.isfinite(est.intercept_).all()
    np.testing.assert_array_equal(est.predict(X), y)
    assert np.isfinite(est.predict_proba(X)).all()


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_overlapping_data_without_penalty_has_no_separability_warning(rng, solver):
    X, y = _blobs(rng, spread=8.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = SoftmaxRegression(C=np.inf, solver=solver).fit(X, y)
    assert (est.predict(X) != y).any()


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_separable_data_with_a_penalty_converges_quietly(rng, solver):
    X, y = _blobs(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SoftmaxRegression(C=1.0, solver=solver).fit(X, y)


@pytest.mark.parametrize("solver", SOLVERS)
def test_constant_features(rng, solver):
    """A constant and an all-zero column: finite fit, and with an intercept the
    same model as without those columns (the unpenalised intercept absorbs
    the constant, so its coefficient goes to 0)."""
    X, y = _blobs(rng, spread=6.0)
    X_const = np.column_stack([X[:, 0], np.full(len(X), 3.0), X[:, 1], np.zeros(len(X))])
    params = dict(C=1.0, solver=solver, max_iter=500, **{k: v for k, v in SOLVERS[solver].items() if k != "eta0"})
    if solver == "sgd":
        params.update(learning_rate="optimal", eta0=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = SoftmaxRegression(**params).fit(X_const, y)
        plain = SoftmaxRegression(**params).fit(X, y)
    assert np.isfinite(est.coef_).all()
    np.testing.assert_array_equal(est.coef_[:, 3], 0.0)
    if solver != "sgd":
        np.testing.assert_allclose(est.coef_[:, 1], 0.0, atol=1e-4)
        np.testing.assert_allclose(est.predict_proba(X_const), plain.predict_proba(X), atol=1e-4)
    # Every row constant: no information at all, the intercepts alone fit the class frequencies.
    X_flat = np.ones((len(y), 3))
    est = SoftmaxRegression(**params).fit(X_flat, y)
    assert np.isfinite(est.coef_).all()
    if solver != "sgd":
        np.testing.assert_allclose(est.predict_proba(X_flat[:1]), [[1 / 3] * 3], atol=1e-3)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_duplicate_rows_are_weight_two(rng, solver):
    X, y = _blobs(rng, spread=5.0)
    twice = np.arange(0, len(y), 3)
    X_dup = np.vstack([X, X[twice]])
    y_dup = np.concatenate([y, y[twice]])
    weights = np.ones(len(y))
    weights[twice] = 2.0
    dup = SoftmaxRegression(solver=solver, tol=1e-8, max_iter=500).fit(X_dup, y_dup)
    weighted = SoftmaxRegression(solver=solver, tol=1e-8, max_iter=500).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(dup.coef_, weighted.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dup.intercept_, weighted.intercept_, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Interrupted fits
# ---------------------------------------------------------------------------


def _epoch_call_lines():
    """Line numbers of the statement in ``sgd_train`` that calls the compiled epoch."""
    lines, first = inspect.getsourcelines(csoftmax._sgd.sgd_train)
    start = next(i for i, line in enumerate(lines) if "= run_epoch(" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith(")"))
    return set(range(first + start, first + end + 1))


def _interrupt_when_in_epoch(main_ident, done):
    """Send SIGINT once the main thread has been inside the compiled epoch for a while."""
    code = csoftmax._sgd.sgd_train.__code__
    lines = _epoch_call_lines()
    seen = 0
    while not done.is_set():
        frame = sys._current_frames().get(main_ident)
        while frame is not None and frame.f_code is not code:
            frame = frame.f_back
        # Several sightings in a row at the call: the compiled epoch is running
        # (it holds no GIL, so this thread can look).
        seen = seen + 1 if frame is not None and frame.f_lineno in lines else 0
        if seen >= 3:
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.005)


def _long_sgd_problem():
    # A broadcast X (no memory) whose epoch is long enough for the watcher to see.
    rng = np.random.default_rng(7)
    n, d = 1_000_000, 40
    X = np.broadcast_to(rng.normal(size=d), (n, d))
    y = np.arange(n) % 4
    return X, y


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to the own process is POSIX")
@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals go to the main thread")
@pytest.mark.parametrize("fitted_before", [True, False])
def test_sigint_inside_the_compiled_sgd_epoch(rng, fitted_before):
    X, y = _long_sgd_problem()
    est = SoftmaxRegression(solver="sgd", learning_rate="constant", eta0=1e-3, max_iter=200, tol=0.0,
                            n_iter_no_change=1000, random_state=0)
    if fitted_before:
        # Another number of features, so that a half-updated n_features_in_ would show.
        X_small, y_small = rng.normal(size=(50, 3)), rng.integers(0, 4, 50)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.set_params(max_iter=5).fit(X_small, y_small).set_params(max_iter=200)
    before = _fitted_state(est)
    done = threading.Event()
    watcher = threading.Thread(target=_interrupt_when_in_epoch, args=(threading.get_ident(), done))
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            est.fit(X, y)
    finally:
        done.set()
        watcher.join()
    # Raised from the compiled loop's own signal check, not after the epoch.
    assert any("sgd_epoch_core" in entry.name for entry in info.traceback)
    _assert_same_state(est, before)
    if fitted_before:
        assert est.predict(X_small).shape == (50,)
    else:
        with pytest.raises(NotFittedError):
            est.predict(X[:2])
    # The interpreter and the kernels carry on: a new fit works as from scratch.
    X2, y2 = _blobs(rng, spread=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again = est.set_params(max_iter=20).fit(X2, y2)
        fresh = SoftmaxRegression(**est.get_params()).fit(X2, y2)
    np.testing.assert_array_equal(again.coef_, fresh.coef_)


class _Interrupt:
    """Callable raising KeyboardInterrupt on its ``at``-th call, else calling ``func``."""

    def __init__(self, func, at):
        self.func, self.at, self.calls = func, at, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.func(*args, **kwargs)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("fitted_before", [True, False])
def test_interrupt_between_objective_evaluations(rng, monkeypatch, solver, fitted_before):
    X, y = _blobs(rng, spread=5.0)
    est = SoftmaxRegression(solver=solver, warm_start=True)
    if fitted_before:
        est.fit(rng.normal(size=(40, 5)), rng.integers(0, 3, 40))
    before = _fitted_state(est)
    interrupt = _Interrupt(_Objective.evaluate, at=4)
    monkeypatch.setattr(_Objective, "evaluate", lambda self, W, b: interrupt(self, W, b))
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    assert interrupt.calls == 4
    _assert_same_state(est, before)
    monkeypatch.undo()
    est.set_params(warm_start=False).fit(X, y)
    np.testing.assert_array_equal(est.coef_, SoftmaxRegression(solver=solver).fit(X, y).coef_)


def test_interrupted_partial_fit_changes_nothing(rng, monkeypatch):
    """Even the momentum buffers and the random generator are as before the
    interrupted call, so the next calls continue as if it never happened."""
    X, y = _blobs(rng, spread=5.0)
    params = dict(solver="sgd", momentum=0.9, random_state=3)
    reference = SoftmaxRegression(**params)
    est = SoftmaxRegression(**params)
    reference.partial_fit(X, y, classes=[0, 1, 2])
    est.partial_fit(X, y, classes=[0, 1, 2])
    before = _fitted_state(est)
    real = csoftmax._sgd.sgd_train

    def train_then_interrupt(*args, **kwargs):
        real(*args, **kwargs)  # every in-place update of the epoch is done...
        raise KeyboardInterrupt  # ...and then the call is interrupted

    monkeypatch.setattr(csoftmax._sgd, "sgd_train", train_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        est.partial_fit(X, y)
    _assert_same_state(est, before)
    monkeypatch.undo()
    for _ in range(2):
        reference.partial_fit(X, y)
        est.partial_fit(X, y)
    np.testing.assert_array_equal(est.coef_, reference.coef_)
    assert est.n_iter_ == reference.n_iter_ == 3


def test_failed_refit_keeps_the_previous_model(rng):
    """An error after validation has begun (here: one class only) keeps the old model whole."""
    est = SoftmaxRegression().fit(rng.normal(size=(30, 4)), rng.integers(0, 3, 30))
    before = _fitted_state(est)
    with pytest.raises(ValueError, match="at least 2 classes"):
        est.fit(rng.normal(size=(30, 6)), np.zeros(30))
    _assert_same_state(est, before)
