import functools
import pickle
import textwrap
import warnings

import numpy as np
import pytest

import csoftmax
from csoftmax import SoftmaxRegression
from csoftmax import _estimator
from csoftmax._estimator import ConvergenceWarning, NotFittedError, _numpy_hessian_product
from isolated import run_python

try:
    import sklearn  # noqa: F401

    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False

needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="scikit-learn is not installed")
TIGHT = dict(tol=1e-10, max_iter=1000)


def _toy(rng, n=300, d=5, k=3, dtype=np.float64):
    """Overlapping Gaussian classes (the unpenalised optimum exists)."""
    y = rng.integers(0, k, n)
    centers = rng.normal(size=(k, d))
    X = (centers[y] + rng.normal(size=(n, d))).astype(dtype)
    return X, y


def _objective(model, X, y, sample_weight=None):
    """F = sum_n s_n CE_n / S + ||W||^2 / (2 C S), written out in NumPy."""
    classes = list(model.classes_)
    labels = np.array([classes.index(v) for v in y])
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    Z = np.asarray(X, dtype=float) @ model.coef_.astype(float).T + model.intercept_.astype(float)
    Z -= Z.max(axis=1, keepdims=True)
    ce = np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(len(y)), labels]
    S = sw.sum()
    return float((sw * ce).sum() / S + (model.coef_.astype(float) ** 2).sum() / (2 * model.C * S))


# ---------------------------------------------------------------------------
# Same optimum as scikit-learn's LogisticRegression
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _dataset(name):
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    weights = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
    return X, y, weights


_WEIGHTINGS = {
    "none": (None, False),
    "sample": (None, True),
    "balanced": ("balanced", False),
    "dict+sample": ({0: 3.0, 1: 0.5}, True),
}


@functools.lru_cache(maxsize=None)
def _sklearn_fit(name, fit_intercept, weighting, C=1.0):
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    X, y, weights = _dataset(name)
    class_weight, use_weights = _WEIGHTINGS[weighting]
    model = LogisticRegression(C=C, fit_intercept=fit_intercept, class_weight=class_weight, **TIGHT)
    # One thread: on small shared machines scikit-learn's BLAS and OpenMP
    # threads oversubscribe the cores and its fits take seconds instead of
    # milliseconds; the result does not depend on it.
    with threadpool_limits(1):
        return model.fit(X, y, sample_weight=weights if use_weights else None)


def _assert_same_model(ours, theirs, X, rtol):
    scale = np.abs(theirs.coef_).max()
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=rtol, atol=rtol * scale)
    # Shifting every intercept by the same amount changes nothing: compare centred.
    b_ours = ours.intercept_ - ours.intercept_.mean()
    b_theirs = theirs.intercept_ - theirs.intercept_.mean()
    np.testing.assert_allclose(b_ours, b_theirs, rtol=rtol, atol=rtol * max(scale, np.abs(b_theirs).max()))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@needs_sklearn
@pytest.mark.parametrize("name", ["iris", "wine", "digits"])
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize(
    "fit_intercept, weighting",
    [(True, "none"), (True, "sample"), (False, "sample"), (True, "balanced"), (True, "dict+sample")],
)
def test_same_optimum_as_sklearn(name, solver, fit_intercept, weighting):
    X, y, weights = _dataset(name)
    class_weight, use_weights = _WEIGHTINGS[weighting]
    theirs = _sklearn_fit(name, fit_intercept, weighting)
    ours = SoftmaxRegression(solver=solver, fit_intercept=fit_intercept, class_weight=class_weight, **TIGHT)
    ours.fit(X, y, sample_weight=weights if use_weights else None)
    _assert_same_model(ours, theirs, X, rtol=1e-4)
    if not fit_intercept:
        assert not ours.intercept_.any()


@needs_sklearn
@pytest.mark.parametrize("name", ["iris", "wine", "digits"])
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_float32_reaches_the_float64_optimum(name, solver):
    X, y, weights = _dataset(name)
    theirs = _sklearn_fit(name, True, "sample")
    X32 = X.astype(np.float32)
    ours = SoftmaxRegression(solver=solver, **TIGHT).fit(X32, y, sample_weight=weights)
    assert ours.coef_.dtype == np.float32 and ours.intercept_.dtype == np.float32
    # The float32 kernels see W rounded to float32, so the objective they
    # minimise is flat at the 1e-7 level: a fit stops once it gets there.  What
    # float32 guarantees is the objective, to about its precision (measured:
    # 7e-8 relative at most, L-BFGS on the digits).  Along the digits' flat
    # directions that much objective moves coefficients by ~1e-3 of their
    # scale (where L-BFGS stops there is a matter of rounding: 0.5-1.6 of
    # 1e-3), so they are compared at 1e-2.
    F_ours = _objective(ours, X, y, weights)
    F_theirs = _objective(theirs, X, y, weights)
    assert F_ours - F_theirs <= 1e-6 * abs(F_theirs), (F_ours, F_theirs)
    _assert_same_model(ours, theirs, X32, rtol=1e-2)


@needs_sklearn
@pytest.mark.parametrize("C", [0.05, 10.0])
def test_other_C(C):
    X, y, _ = _dataset("wine")
    theirs = _sklearn_fit("wine", True, "none", C=C)
    _assert_same_model(SoftmaxRegression(C=C, **TIGHT).fit(X, y), theirs, X, rtol=1e-4)


@needs_sklearn
def test_no_penalty(rng):
    from sklearn.linear_model import LogisticRegression

    X, y = _toy(rng)
    theirs = LogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    for solver in ("lbfgs", "newton-cg"):
        _assert_same_model(SoftmaxRegression(C=np.inf, solver=solver, **TIGHT).fit(X, y), theirs, X, rtol=1e-4)


@needs_sklearn
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_binary_is_multinomial_with_symmetric_rows(solver):
    from sklearn.linear_model import LogisticRegression

    X, y, _ = _dataset("iris")
    keep = y > 0
    X, y = X[keep], y[keep]
    ours = SoftmaxRegression(C=0.5, solver=solver, **TIGHT).fit(X, y)
    assert ours.coef_.shape == (2, X.shape[1]) and ours.intercept_.shape == (2,)
    np.testing.assert_allclose(ours.coef_[1], -ours.coef_[0], atol=1e-8)
    # The log-odds model equals scikit-learn's binary model with twice the C.
    theirs = LogisticRegression(C=1.0, **TIGHT).fit(X, y)
    np.testing.assert_allclose(ours.coef_[1] - ours.coef_[0], theirs.coef_[0], rtol=1e-4)
    np.testing.assert_allclose(ours.intercept_[1] - ours.intercept_[0], theirs.intercept_[0], rtol=1e-4, atol=1e-6)
    decision = ours.decision_function(X)
    assert decision.shape == (X.shape[0],)
    np.testing.assert_allclose(decision, theirs.decision_function(X), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


# ---------------------------------------------------------------------------
# Objective, weights, solvers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_objective_and_loss_curve(rng, solver):
    X, y = _toy(rng)
    sw = rng.uniform(0.1, 2.0, len(y))
    model = SoftmaxRegression(C=0.3, solver=solver, **TIGHT).fit(X, y, sample_weight=sw)
    curve = np.asarray(model.loss_curve_)
    assert len(curve) == model.n_iter_ >= 1
    assert np.all(np.diff(curve) <= 1e-12)
    assert curve[-1] == pytest.approx(_objective(model, X, y, sw), rel=1e-12)
    # The fitted point is the minimum: the gradient vanishes (lbfgs may stop
    # first on the relative decrease of F, at 64 eps, as scikit-learn's does).
    l2 = 1.0 / (model.C * sw.sum())
    _, gW, gb = csoftmax.loss_and_gradient(model.coef_, X, y, model.intercept_, sample_weight=sw, l2=l2)
    assert max(np.abs(gW).max(), np.abs(gb).max()) < (1e-7 if solver == "lbfgs" else 1e-9)


def test_solvers_agree(rng):
    X, y = _toy(rng, k=4)
    a = SoftmaxRegression(**TIGHT).fit(X, y)
    b = SoftmaxRegression(solver="newton-cg", **TIGHT).fit(X, y)
    # lbfgs stops on the relative decrease of F (64 eps) with |gradient| ~ 1e-8
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=1e-5, atol=1e-7)
    assert b.n_iter_ < a.n_iter_


def test_class_weight_is_a_sample_weight(rng):
    X, y = _toy(rng)
    sw = rng.uniform(0.5, 1.5, len(y))
    class_weight = {0: 2.0, 1: 0.25}  # class 2 keeps weight 1
    a = SoftmaxRegression(class_weight=class_weight, **TIGHT).fit(X, y, sample_weight=sw)
    b = SoftmaxRegression(**TIGHT).fit(X, y, sample_weight=sw * np.array([2.0, 0.25, 1.0])[y])
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10, atol=1e-12)


def test_balanced_class_weight(rng):
    X, y = _toy(rng)
    y[:200] = 0  # unbalanced
    counts = np.bincount(y)
    manual = {k: len(y) / (3 * counts[k]) for k in range(3)}
    a = SoftmaxRegression(class_weight="balanced", **TIGHT).fit(X, y)
    b = SoftmaxRegression(class_weight=manual, **TIGHT).fit(X, y)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10, atol=1e-12)


def test_integer_weights_repeat_samples(rng):
    X, y = _toy(rng, n=60)
    sw = rng.integers(0, 4, len(y))
    a = SoftmaxRegression(**TIGHT).fit(X, y, sample_weight=sw)
    b = SoftmaxRegression(**TIGHT).fit(np.repeat(X, sw, axis=0), np.repeat(y, sw))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-7)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_warm_start_continues(rng, solver):
    X, y = _toy(rng, d=8, k=4)
    X[:, 0] *= 30  # badly scaled: many iterations needed
    with pytest.warns(ConvergenceWarning, match="after 3 iteration"):
        warm = SoftmaxRegression(solver=solver, max_iter=3, warm_start=True).fit(X, y)
    first = warm.loss_curve_[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(X, y)
        cold = SoftmaxRegression(solver=solver, max_iter=3).fit(X, y)
    assert warm.loss_curve_[0] < first  # picked up where it stopped
    assert warm.loss_curve_[-1] < cold.loss_curve_[-1]
    # From the optimum, a warm start has nothing left to do.
    done = SoftmaxRegression(solver=solver, warm_start=True, **TIGHT).fit(X, y)
    coef = done.coef_.copy()
    done.fit(X, y)
    assert done.n_iter_ <= 1
    np.testing.assert_allclose(done.coef_, coef, rtol=1e-6, atol=1e-7)


def test_warm_start_ignores_other_shapes(rng):
    X, y = _toy(rng)
    model = SoftmaxRegression(warm_start=True, **TIGHT).fit(X, y)
    X2, y2 = _toy(rng, d=3, k=2)
    model.fit(X2, y2)
    cold = SoftmaxRegression(**TIGHT).fit(X2, y2)
    np.testing.assert_allclose(model.coef_, cold.coef_, rtol=1e-8, atol=1e-10)


def test_same_result_for_every_thread_count(rng):
    X, y = _toy(rng, n=3000)
    one = SoftmaxRegression(n_threads=1).fit(X, y)
    two = SoftmaxRegression(n_threads=2).fit(X, y)
    np.testing.assert_array_equal(one.coef_, two.coef_)
    assert one.loss_curve_ == two.loss_curve_


def test_convergence_warning_names_the_iterations(rng):
    X, y = _toy(rng)
    with pytest.warns(ConvergenceWarning, match=r"lbfgs failed to converge after 2 iteration"):
        model = SoftmaxRegression(max_iter=2).fit(X, y)
    assert model.n_iter_ == 2
    with pytest.warns(ConvergenceWarning, match=r"newton-cg failed to converge after 1 iteration"):
        SoftmaxRegression(solver="newton-cg", max_iter=1, tol=1e-12).fit(X, y)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_overflowing_objective_never_gives_nan(solver):
    # Separable, absurdly scaled data without a penalty: steps overflow the logits.
    X = np.array([[1e200, 1.0], [-1e200, 0.0], [3e200, 1.0], [-2e200, 0.0]])
    y = np.array([0, 1, 0, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = SoftmaxRegression(C=np.inf, solver=solver, max_iter=20).fit(X, y)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    assert all(issubclass(w.category, ConvergenceWarning) for w in caught)
    model.predict_proba(X[:, :2] * 0)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_non_finite_objective_keeps_last_finite_iterate(rng, monkeypatch, solver):
    X, y = _toy(rng)
    real = csoftmax._functions.loss_and_gradient
    calls = []

    def overflowing_after_three(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise ValueError("the log-likelihood is not finite although every input is")
        return real(*args, **kwargs)

    monkeypatch.setattr(csoftmax._functions, "loss_and_gradient", overflowing_after_three)
    with pytest.warns(ConvergenceWarning):
        model = SoftmaxRegression(solver=solver).fit(X, y)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    assert model.coef_.any()  # the progress before the failure is kept
    assert all(np.isfinite(model.loss_curve_))


def test_verbose_prints_iterations(rng, capsys):
    X, y = _toy(rng)
    SoftmaxRegression(verbose=1).fit(X, y)
    SoftmaxRegression(verbose=1, solver="newton-cg").fit(X, y)
    out = capsys.readouterr().out
    assert "[SoftmaxRegression lbfgs] iteration    1: objective" in out
    assert "[SoftmaxRegression newton-cg] iteration    1: objective" in out


# ---------------------------------------------------------------------------
# Preconditioned coordinates of the solvers
# ---------------------------------------------------------------------------


def _badly_scaled(rng, n=400):
    X, y = _toy(rng, n=n, d=4)
    return X * np.array([1e-2, 1.0, 30.0, 1.0]) + np.array([0.0, 500.0, -20.0, 0.0]), y


@pytest.mark.parametrize("center", [True, False])
def test_feature_statistics(rng, center):
    X, _ = _badly_scaled(rng)
    X[:, 3] = 7.0  # constant column
    w = rng.uniform(0.0, 2.0, len(X))
    mean, scale = _estimator._feature_statistics(X, w, center=center, block_rows=64)
    if center:
        expected_mean = np.average(X, axis=0, weights=w)
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
        expected = np.sqrt(np.average((X - expected_mean) ** 2, axis=0, weights=w))
        expected[3] = 1.0
    else:
        assert mean is None
        expected = np.sqrt(np.average(X**2, axis=0, weights=w))
    np.testing.assert_allclose(scale, expected, rtol=1e-10)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_objective_derivatives_in_solver_coordinates(rng, fit_intercept):
    X, y = _badly_scaled(rng, n=150)
    w = rng.uniform(0.5, 2.0, len(X))
    objective = _estimator._Objective(X, y, w, 0.01, 3, fit_intercept, None)
    theta = rng.normal(size=objective.n_params) * 0.1
    W, b = objective.unpack(theta)
    np.testing.assert_allclose(objective.pack(W, b), theta, rtol=1e-12, atol=1e-14)
    value, grad = objective.loss_gradient(theta)
    assert value == csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=0.01)[0]
    v = rng.normal(size=objective.n_params)
    h = 1e-6
    f_plus, g_plus = objective.loss_gradient(theta + h * v)
    f_minus, g_minus = objective.loss_gradient(theta - h * v)
    assert (f_plus - f_minus) / (2 * h) == pytest.approx(grad @ v, rel=1e-6)
    np.testing.assert_allclose(objective.hessp(theta, v), (g_plus - g_minus) / (2 * h), rtol=1e-5, atol=1e-8)


def _solve(X, y, solver, precondition, max_iter=10_000, tol=1e-9):
    objective = _estimator._Objective(X, y, None, 1.0 / len(y), 3, True, None, precondition=precondition)
    theta0 = objective.pack(np.zeros((3, X.shape[1])), np.zeros(3))
    theta, n_iter, _, _ = getattr(_estimator, solver)(objective, theta0, max_iter, tol, 0)
    return objective.unpack(theta), n_iter


@pytest.mark.parametrize("solver", ["_lbfgs", "_newton_cg"])
def test_preconditioning_keeps_the_optimum_and_saves_iterations(rng, solver):
    X, y = _badly_scaled(rng)
    (W_ref, b_ref), _ = _solve(X, y, "_newton_cg", True)
    (W, b), n_pre = _solve(X, y, solver, True)
    np.testing.assert_allclose(W, W_ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(b, b_ref, rtol=1e-5, atol=1e-6)
    # In the model's own coordinates L-BFGS needs thousands of iterations
    # here (and stops early on the relative decrease of F).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        (W_plain, _), n_plain = _solve(X, y, solver, False, max_iter=500)
    assert n_pre < n_plain
    if solver == "_newton_cg":
        np.testing.assert_allclose(W_plain, W_ref, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_badly_scaled_data_converge(rng, solver):
    X, y = _badly_scaled(rng)
    (W_ref, b_ref), _ = _solve(X, y, "_newton_cg", True)
    model = SoftmaxRegression(solver=solver, tol=1e-8).fit(X, y)
    np.testing.assert_allclose(model.coef_, W_ref, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(model.intercept_, b_ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Hessian-vector product used by newton-cg
# ---------------------------------------------------------------------------


def _hessp_by_differences(W, X, y, b, V, Vb, h=1e-6, **kwargs):
    def grads(t):
        _, gW, gb = csoftmax.loss_and_gradient(W + t * V, X, y, None if b is None else b + t * Vb, **kwargs)
        return gW.copy(), None if gb is None else gb.copy()

    (gW_p, gb_p), (gW_m, gb_m) = grads(h), grads(-h)
    return (gW_p - gW_m) / (2 * h), None if b is None else (gb_p - gb_m) / (2 * h)


@pytest.mark.parametrize("with_b", [True, False])
@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_numpy_hessian_product(rng, with_b, targets, reduction):
    n, d, k = 120, 5, 4
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, n)
    if targets == "soft":
        y = rng.dirichlet(np.ones(k), size=n) * rng.uniform(0.5, 2.0, (n, 1))
    W, V = rng.normal(size=(k, d)), rng.normal(size=(k, d))
    b, Vb = (rng.normal(size=k), rng.normal(size=k)) if with_b else (None, None)
    kwargs = dict(sample_weight=rng.uniform(0.2, 2.0, n), l2=0.3, reduction=reduction)
    HW, Hb = _numpy_hessian_product(W, X, V, b, Vb, y=y, **kwargs)
    HW_fd, Hb_fd = _hessp_by_differences(W, X, y, b, V, Vb, **kwargs)
    np.testing.assert_allclose(HW, HW_fd, rtol=1e-6, atol=1e-7)
    if with_b:
        np.testing.assert_allclose(Hb, Hb_fd, rtol=1e-6, atol=1e-7)
    else:
        assert Hb is None
    if targets == "labels":  # the Hessian does not depend on one-hot labels
        HW_none, _ = _numpy_hessian_product(W, X, V, b, Vb, **kwargs)
        np.testing.assert_allclose(HW_none, HW, rtol=1e-12, atol=1e-15)
    compiled = getattr(csoftmax, "hessian_product", None)
    if compiled is not None:
        HW_c, Hb_c = compiled(W, X, V, b, Vb, y=y, **kwargs)
        np.testing.assert_allclose(HW_c, HW, rtol=1e-10, atol=1e-13)


def test_numpy_hessian_product_arguments(rng):
    X = rng.normal(size=(10, 3)).astype(np.float32)
    W = np.zeros((2, 3))
    HW, Hb = _numpy_hessian_product(W, X, W + 1, np.zeros(2))  # Vb None: zero intercept direction
    assert HW.dtype == np.float32 and Hb.shape == (2,)
    with pytest.raises(ValueError, match="Vb was given but b is None"):
        _numpy_hessian_product(W, X, W, None, np.zeros(2))
    with pytest.raises(ValueError, match="shape of W"):
        _numpy_hessian_product(W, X, np.zeros((3, 3)))


def test_newton_cg_uses_the_package_hessian_product(rng, monkeypatch):
    X, y = _toy(rng)
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return _numpy_hessian_product(*args, **kwargs)

    monkeypatch.setattr(csoftmax, "hessian_product", counting, raising=False)
    SoftmaxRegression(solver="newton-cg").fit(X, y)
    assert calls


# ---------------------------------------------------------------------------
# Data types, labels, prediction
# ---------------------------------------------------------------------------


def test_precision_follows_X(rng):
    X, y = _toy(rng)
    m32 = SoftmaxRegression().fit(X.astype(np.float32), y)
    assert m32.coef_.dtype == np.float32
    for method in ("predict_proba", "predict_log_proba", "decision_function"):
        assert getattr(m32, method)(X.astype(np.float32)).dtype == np.float32
    m_int = SoftmaxRegression().fit(np.rint(X * 3).astype(np.int32), y)
    assert m_int.coef_.dtype == np.float64
    assert m32.predict(X).shape == (len(y),)  # float64 input to a float32 model


def test_prediction_methods_agree(rng):
    X, y = _toy(rng, k=4)
    model = SoftmaxRegression().fit(X, y)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(model.predict_log_proba(X), np.log(proba), rtol=1e-10, atol=1e-12)
    scores = model.decision_function(X)
    np.testing.assert_allclose(scores, X @ model.coef_.T + model.intercept_, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), model.classes_[np.argmax(scores, axis=1)])
    assert model.score(X, y) == pytest.approx(np.mean(model.predict(X) == y))
    # log-probabilities stay finite where probabilities underflow
    far = model.predict_log_proba(X[:3] * 1e4)
    assert np.isfinite(far).all()


def test_any_labels(rng):
    X, y = _toy(rng)
    names = np.array(["setosa", "versicolor", "virginica"])
    model = SoftmaxRegression().fit(X, names[y])
    np.testing.assert_array_equal(model.classes_, names)
    assert model.predict(X).dtype == names.dtype
    reference = SoftmaxRegression().fit(X, y)
    np.testing.assert_array_equal(model.predict(X), names[reference.predict(X)])
    odd = np.array([-7, 3, 100])
    np.testing.assert_array_equal(SoftmaxRegression().fit(X, odd[y]).predict(X), odd[reference.predict(X)])
    floats = SoftmaxRegression().fit(X.tolist(), (y * 1.0).tolist())
    np.testing.assert_array_equal(floats.classes_, [0.0, 1.0, 2.0])


def test_dataframe_feature_names(rng):
    pd = pytest.importorskip("pandas")
    X, y = _toy(rng, d=3)
    frame = pd.DataFrame(X, columns=["height", "width", "depth"])
    model = SoftmaxRegression().fit(frame, pd.Series(y))
    np.testing.assert_array_equal(model.feature_names_in_, ["height", "width", "depth"])
    np.testing.assert_array_equal(model.predict(frame), SoftmaxRegression().fit(X, y).predict(X))
    if HAVE_SKLEARN:
        with pytest.raises(ValueError, match="feature names"):
            model.predict(frame.rename(columns={"depth": "length"}))


# ---------------------------------------------------------------------------
# Bad input and parameters
# ---------------------------------------------------------------------------


def test_single_class_is_an_error(rng):
    X, _ = _toy(rng)
    with pytest.raises(ValueError, match="at least 2 classes.*only one class: 'a'"):
        SoftmaxRegression().fit(X, ["a"] * len(X))


def test_bad_input_errors(rng):
    X, y = _toy(rng, n=20)
    with pytest.raises(ValueError, match="inconsistent numbers of samples|samples but y has"):
        SoftmaxRegression().fit(X, y[:-1])
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxRegression().fit(X_nan, y)
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        SoftmaxRegression().fit(X_inf, y)
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxRegression().fit(X, np.where(y == 0, np.nan, y))
    with pytest.raises(ValueError, match="[Uu]nknown label type"):
        SoftmaxRegression().fit(X, y + 0.5)
    with pytest.raises(ValueError, match="2D array"):
        SoftmaxRegression().fit(X[:, 0], y)
    with pytest.raises(ValueError, match="non-negative"):
        SoftmaxRegression().fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError):
        SoftmaxRegression().fit(X, y, sample_weight=np.ones(len(y) + 1))
    with pytest.raises(ValueError, match="zero"):
        SoftmaxRegression().fit(X, y, sample_weight=np.zeros(len(y)))
    with pytest.raises(ValueError, match="zero"):
        SoftmaxRegression(class_weight={0: 0.0, 1: 0.0, 2: 0.0}).fit(X, y)
    with pytest.raises(ValueError, match="not in class_weight|not classes of y"):
        SoftmaxRegression(class_weight={7: 1.0}).fit(X, y)


def test_predict_checks(rng):
    X, y = _toy(rng, n=20)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        SoftmaxRegression().predict(X)
    model = SoftmaxRegression().fit(X, y)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(ValueError, match="features"):
            getattr(model, method)(X[:, :2])


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(C=0.0), "C must be"),
        (dict(C=-1.0), "C must be"),
        (dict(C="big"), "C must be"),
        (dict(solver="saga"), "solver must be"),
        (dict(max_iter=0), "max_iter must be"),
        (dict(max_iter=2.5), "max_iter must be"),
        (dict(tol=-1e-3), "tol must be"),
        (dict(class_weight="auto"), "class_weight must be"),
        (dict(fit_intercept=1), "fit_intercept must be"),
        (dict(warm_start="yes"), "warm_start must be"),
        (dict(n_threads=0), "n_threads"),
        (dict(n_threads=1.5), "n_threads"),
        (dict(verbose=-1), "verbose must be"),
        (dict(batch_size=0), "batch_size must be"),
        (dict(learning_rate="fast"), "learning_rate must be"),
        (dict(eta0=0.0), "eta0 must be"),
        (dict(momentum=1.0), "momentum must be"),
        (dict(validation_fraction=1.0), "validation_fraction must be"),
        (dict(n_iter_no_change=0), "n_iter_no_change must be"),
        (dict(random_state="seed"), "random_state must be"),
    ],
)
def test_bad_parameters(rng, params, match):
    X, y = _toy(rng, n=20)
    model = SoftmaxRegression(**params)  # no check before fit
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)


def test_sgd_solver_approaches_the_lbfgs_fit(rng):
    X, y = _toy(rng, n=600)
    exact = SoftmaxRegression(C=1.0, tol=1e-10, max_iter=1000).fit(X, y)
    model = SoftmaxRegression(
        C=1.0, solver="sgd", batch_size=16, learning_rate="invscaling", eta0=0.2, momentum=0.5,
        max_iter=200, tol=1e-6, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    assert model.n_iter_ == len(model.loss_curve_) >= 1
    assert np.mean(model.predict(X) == exact.predict(X)) > 0.95
    np.testing.assert_allclose(model.coef_, exact.coef_, atol=0.1 * np.abs(exact.coef_).max())
    # The same seed gives the same model; warm start continues from it.
    again = SoftmaxRegression(**model.get_params()).fit(X, y)
    np.testing.assert_array_equal(again.coef_, model.coef_)


def test_sgd_divergence_warns_and_keeps_finite_coefficients(rng):
    X, y = _toy(rng, n=200)
    model = SoftmaxRegression(solver="sgd", learning_rate="constant", eta0=1e300, max_iter=5, random_state=0)
    with pytest.warns(csoftmax.ConvergenceWarning, match="diverged"):
        model.fit(X * 1e200, y)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()


# ---------------------------------------------------------------------------
# scikit-learn integration
# ---------------------------------------------------------------------------


@needs_sklearn
def test_clone_pipeline_gridsearch_pickle():
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sklearn import datasets

    X, y = datasets.load_wine(return_X_y=True)
    model = SoftmaxRegression(C=0.5, solver="newton-cg", class_weight="balanced")
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "coef_")

    pipe = make_pipeline(StandardScaler(), SoftmaxRegression(max_iter=500))
    search = GridSearchCV(pipe, {"softmaxregression__C": [0.01, 1.0]}, cv=3).fit(X, y)
    assert search.best_params_["softmaxregression__C"] in (0.01, 1.0)
    assert search.score(X, y) > 0.95

    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(restored.predict_proba(X), search.best_estimator_.predict_proba(X))
    assert restored[-1].loss_curve_ == search.best_estimator_[-1].loss_curve_
    assert "SoftmaxRegression(max_iter=500)" in repr(pipe)


def test_pickle_and_params_without_sklearn_api(rng):
    X, y = _toy(rng)
    model = SoftmaxRegression(C=2.0).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    assert model.get_params()["C"] == 2.0
    assert model.set_params(C=3.0).C == 3.0
    assert repr(SoftmaxRegression(C=3.0)) == "SoftmaxRegression(C=3.0)"


def test_works_without_sklearn():
    # A fresh interpreter in which "import sklearn" fails.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["sklearn"] = None
        import pickle, warnings
        import numpy as np
        import csoftmax
        from csoftmax import SoftmaxRegression, ConvergenceWarning
        from csoftmax import _estimator

        assert not _estimator._HAVE_SKLEARN
        assert issubclass(ConvergenceWarning, UserWarning)
        rng = np.random.default_rng(0)
        X = rng.normal(size=(200, 3))
        y = np.array(["a", "b", "c"])[np.argmax(X, axis=1)]
        sw = rng.uniform(0.5, 1.5, 200)
        for solver in ("lbfgs", "newton-cg"):
            model = SoftmaxRegression(C=5.0, solver=solver, class_weight="balanced").fit(X, y, sample_weight=sw)
            assert model.score(X, y) > 0.95
            assert model.n_features_in_ == 3 and model.coef_.shape == (3, 3)
        # balanced class weights as scikit-learn >= 1.7 computes them
        counts = np.array([sw[y == c].sum() for c in "abc"])
        manual = dict(zip("abc", sw.sum() / (3 * counts)))
        other = SoftmaxRegression(C=5.0, solver="newton-cg", class_weight=manual).fit(X, y, sample_weight=sw)
        np.testing.assert_allclose(other.coef_, model.coef_, rtol=1e-6, atol=1e-8)
        assert repr(model) == "SoftmaxRegression(C=5.0, class_weight='balanced', solver='newton-cg')"
        assert model.get_params()["C"] == 5.0
        assert model.set_params(C=1.0, tol=1e-6).C == 1.0
        try:
            model.set_params(alpha=1.0)
        except ValueError as exc:
            assert "Invalid parameter 'alpha'" in str(exc)
        else:
            raise AssertionError("set_params accepted an unknown parameter")
        restored = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(restored.predict(X), model.predict(X))
        try:
            SoftmaxRegression().predict(X)
        except _estimator.NotFittedError as exc:
            assert isinstance(exc, (ValueError, AttributeError))
        for bad_X, bad_y, message in [
            (X, np.zeros(200), "one class"),
            (X[:10], y, "samples"),
            (np.where(X > 2, np.nan, X), y, "NaN"),
            (X, rng.normal(size=200), "label"),
        ]:
            try:
                SoftmaxRegression().fit(bad_X, bad_y)
            except ValueError as exc:
                assert message in str(exc), (message, str(exc))
            else:
                raise AssertionError(message)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            SoftmaxRegression(max_iter=2).fit(X, y)
        assert caught and issubclass(caught[0].category, ConvergenceWarning)
        assert "after 2 iteration" in str(caught[0].message)
        assert SoftmaxRegression().fit(X.astype(np.float32), y).coef_.dtype == np.float32
        assert SoftmaxRegression().fit(X.tolist(), list(y)).n_features_in_ == 3
        try:
            import pandas as pd
        except ImportError:
            pass
        else:
            frame = pd.DataFrame(X, columns=["p", "q", "r"])
            model = SoftmaxRegression().fit(frame, pd.Series(y))
            assert list(model.feature_names_in_) == ["p", "q", "r"]
            assert not hasattr(SoftmaxRegression().fit(X, y), "feature_names_in_")
        print("ok")
        """
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_does_not_load_the_estimator():
    script = "import sys, csoftmax; print('csoftmax._estimator' in sys.modules, 'sklearn' in sys.modules)"
    out = run_python(script, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
    assert "SoftmaxRegression" in dir(csoftmax) and "SoftmaxRegression" in csoftmax.__all__
    assert csoftmax.SoftmaxRegression is _estimator.SoftmaxRegression


def test_docstring_examples():
    import doctest

    result = doctest.testmod(_estimator, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_partial_fit_over_chunks_approaches_the_full_fit(rng):
    X, y = _toy(rng, n=2000)
    exact = SoftmaxRegression(C=1.0, tol=1e-10, max_iter=1000).fit(X, y)
    model = SoftmaxRegression(C=1.0, solver="sgd", learning_rate="invscaling", eta0=0.2, batch_size=16, random_state=0)
    classes = np.unique(y)
    for epoch in range(8):
        for chunk in np.array_split(np.arange(2000), 4):
            model.partial_fit(X[chunk], y[chunk], classes=classes if epoch == 0 else None)
    assert model.n_iter_ == 32 and len(model.loss_curve_) == 32
    assert np.mean(model.predict(X) == exact.predict(X)) > 0.95


def test_partial_fit_errors(rng):
    X, y = _toy(rng, n=50)
    with pytest.raises(ValueError, match="classes must be given"):
        SoftmaxRegression(solver="sgd").partial_fit(X, y)
    assert not hasattr(SoftmaxRegression(), "partial_fit")
    with pytest.raises(AttributeError, match="solver='sgd'"):
        SoftmaxRegression().partial_fit(X, y, classes=np.unique(y))
    model = SoftmaxRegression(solver="sgd").partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(ValueError, match="labels not in classes"):
        model.partial_fit(X, np.full(50, 7))
