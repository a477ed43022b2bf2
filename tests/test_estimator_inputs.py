"""SoftmaxRegression on every input kind: dense float32/float64, uint8, bool,
PackedBits and sparse (CSR, CSC, COO), for every solver and every method."""

import functools
import textwrap
import warnings

import numpy as np
import pytest

import csoftmax
from csoftmax import SoftmaxRegression
from csoftmax import _estimator
from csoftmax.datasets import load_digits8x8
from isolated import run_python

sparse = pytest.importorskip("scipy.sparse")

TIGHT = dict(tol=1e-10, max_iter=1000)
SGD = dict(max_iter=4, batch_size=48, random_state=0, learning_rate="invscaling", eta0=0.1, momentum=0.5)

# name -> (conversion of the dense 0/1 float64 array, float dtype of the computation)
KINDS = {
    "float64": (lambda X: X, np.float64),
    "float32": (lambda X: X.astype(np.float32), np.float32),
    "uint8": (lambda X: X.astype(np.uint8), np.float64),
    "bool": (lambda X: X.astype(bool), np.float64),
    "packed": (csoftmax.pack_bits, np.float64),
    "csr": (sparse.csr_matrix, np.float64),
    "csr32": (lambda X: sparse.csr_array(X.astype(np.float32)), np.float32),
    "csc": (sparse.csc_matrix, np.float64),
    "coo": (sparse.coo_array, np.float64),
}


@functools.lru_cache(maxsize=None)
def _digits():
    """The binarized 8x8 digits, with a reproducible weighting."""
    X, y = load_digits8x8(return_X_y=True)
    weights = np.random.default_rng(0).uniform(0.2, 3.0, len(y))
    return X, y, weights


def _options(solver):
    return dict(TIGHT) if solver != "sgd" else dict(SGD)


@functools.lru_cache(maxsize=None)
def _dense_fit(solver, dtype=np.float64, weighted=False):
    X, y, weights = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sgd: a few epochs only
        model = SoftmaxRegression(solver=solver, **_options(solver))
        return model.fit(X.astype(dtype), y, sample_weight=weights if weighted else None)


def _rtol(solver, dtype):
    if np.dtype(dtype) == np.float32:
        return 2e-3
    # L-BFGS stops (by its relative decrease test) on a path that depends on
    # rounding; newton-cg and sgd follow the same path up to rounding.
    return 1e-5 if solver == "lbfgs" else 1e-9


def _assert_close_models(model, reference, rtol):
    scale = np.abs(reference.coef_).max()
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=rtol, atol=rtol * scale)
    b = model.intercept_ - model.intercept_.mean()
    b_ref = reference.intercept_ - reference.intercept_.mean()
    np.testing.assert_allclose(b, b_ref, rtol=rtol, atol=rtol * max(scale, np.abs(b_ref).max()))


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "sgd"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_input_kind_gives_the_model_of_the_dense_array(kind, solver):
    X, y, _ = _digits()
    convert, dtype = KINDS[kind]
    Xk = convert(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SoftmaxRegression(solver=solver, **_options(solver)).fit(Xk, y)
    reference = _dense_fit(solver)
    assert model.coef_.dtype == dtype and model.intercept_.dtype == dtype
    assert model.n_features_in_ == 64 and not hasattr(model, "feature_names_in_")
    _assert_close_models(model, reference, _rtol(solver, dtype))
    np.testing.assert_array_equal(model.predict(Xk), reference.predict(X))
    rtol = 50 * _rtol(solver, dtype)
    np.testing.assert_allclose(model.predict_proba(Xk), reference.predict_proba(X), rtol=0, atol=rtol)
    scores = reference.decision_function(X)
    np.testing.assert_allclose(model.decision_function(Xk), scores, rtol=0, atol=rtol * np.abs(scores).max())
    log_proba = model.predict_log_proba(Xk)
    assert log_proba.dtype == dtype
    np.testing.assert_allclose(np.exp(log_proba), model.predict_proba(Xk), rtol=1e-4, atol=1e-6)
    assert model.score(Xk, y) == reference.score(X, y)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "sgd"])
@pytest.mark.parametrize("kind", ["uint8", "packed", "csr"])
def test_weights_on_every_input_kind(kind, solver):
    X, y, weights = _digits()
    Xk = KINDS[kind][0](X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SoftmaxRegression(solver=solver, **_options(solver)).fit(Xk, y, sample_weight=weights)
    _assert_close_models(model, _dense_fit(solver, weighted=True), _rtol(solver, np.float64))


@pytest.mark.parametrize("kind", ["bool", "packed", "csr", "csr32"])
def test_sgd_early_stopping_on_every_input_kind(kind):
    X, y, _ = _digits()
    options = dict(SGD, max_iter=20, early_stopping=True, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = SoftmaxRegression(solver="sgd", **options).fit(X.astype(KINDS[kind][1]), y)
        model = SoftmaxRegression(solver="sgd", **options).fit(KINDS[kind][0](X), y)
    assert model.n_iter_ == reference.n_iter_
    _assert_close_models(model, reference, 1e-9 if KINDS[kind][1] == np.float64 else 2e-3)


@pytest.mark.parametrize("kind", ["uint8", "packed", "csr", "csc"])
def test_partial_fit_on_every_input_kind(kind):
    X, y, _ = _digits()
    Xk = KINDS[kind][0](X)
    chunks = np.array_split(np.arange(len(y)), 3)
    models = [SoftmaxRegression(solver="sgd", **SGD) for _ in range(2)]
    for epoch in range(2):
        for chunk in chunks:
            classes = np.unique(y) if epoch == 0 else None
            models[0].partial_fit(X[chunk], y[chunk], classes=classes)
            models[1].partial_fit(Xk[chunk], y[chunk], classes=classes)
    assert models[1].n_iter_ == 6
    _assert_close_models(models[1], models[0], 1e-9)
    np.testing.assert_allclose(models[1].loss_curve_, models[0].loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("kind", ["packed", "csr"])
def test_same_optimum_as_sklearn_on_binary_digits(kind, solver):
    linear_model = pytest.importorskip("sklearn.linear_model")
    from threadpoolctl import threadpool_limits

    X, y, _ = _digits()
    with threadpool_limits(1):
        theirs = linear_model.LogisticRegression(C=1.0, **TIGHT).fit(X, y)
    ours = SoftmaxRegression(C=1.0, solver=solver, **TIGHT).fit(KINDS[kind][0](X), y)
    _assert_close_models(ours, theirs, 1e-4)
    np.testing.assert_array_equal(ours.predict(KINDS[kind][0](X)), theirs.predict(X))


def test_small_integer_inputs_are_not_copied_to_float():
    X, y, _ = _digits()
    model = SoftmaxRegression()
    for Xk in (X.astype(np.uint8), X.astype(bool)):
        checked = model._check_X(Xk, reset=True)
        assert checked.dtype == Xk.dtype and np.shares_memory(checked, Xk)
    Xs = sparse.csr_matrix(X)
    assert model._check_X(Xs, reset=True) is Xs


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("kind", ["packed", "csr", "coo"])
def test_feature_statistics_of_every_kind(kind, center):
    X, _, weights = _digits()
    Xk = KINDS[kind][0](X)
    for w in (None, weights):
        mean, scale = _estimator._feature_statistics(Xk, w, center=center, block_rows=500)
        mean_ref, scale_ref = _estimator._feature_statistics(X, w, center=center)
        np.testing.assert_allclose(scale, scale_ref, rtol=1e-10)
        if center:
            np.testing.assert_allclose(mean, mean_ref, rtol=1e-10, atol=1e-14)


def test_sparse_duplicates_and_explicit_zeros():
    X, y, _ = _digits()
    coo = sparse.coo_matrix(X)
    # Every entry stored as two halves, plus explicit zeros.
    rows = np.concatenate([coo.row, coo.row, [0, 1]])
    cols = np.concatenate([coo.col, coo.col, [0, 1]])
    vals = np.concatenate([coo.data / 2, coo.data / 2, [0.0, 0.0]])
    messy = sparse.csr_matrix((vals, (rows, cols)), shape=X.shape)
    messy.has_canonical_format = False
    model = SoftmaxRegression(solver="newton-cg", **TIGHT).fit(messy, y)
    _assert_close_models(model, _dense_fit("newton-cg"), 1e-9)


def test_input_kind_errors():
    X, y, _ = _digits()
    model = SoftmaxRegression().fit(csoftmax.pack_bits(X), y)
    with pytest.raises(ValueError, match="expecting 64 features"):
        model.predict(csoftmax.pack_bits(X[:, :10]))
    with pytest.raises(ValueError, match="expecting 64 features"):
        model.predict(sparse.csr_matrix(X[:, :10]))
    bad = sparse.csr_matrix(X)
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxRegression().fit(bad, y)
    with pytest.raises(ValueError, match="samples"):
        SoftmaxRegression().fit(csoftmax.pack_bits(X[:10]), y)


def test_every_input_kind_without_sklearn():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["sklearn"] = None
        import numpy as np, scipy.sparse as sparse
        import csoftmax
        from csoftmax import SoftmaxRegression, _estimator
        from csoftmax.datasets import load_digits8x8

        assert not _estimator._HAVE_SKLEARN
        X, y = load_digits8x8(return_X_y=True)
        for solver in ("lbfgs", "newton-cg", "sgd"):
            options = dict(solver=solver, random_state=0, max_iter=3 if solver == "sgd" else 100)
            ref = SoftmaxRegression(**options).fit(X, y)
            for Xk in (X.astype(np.uint8), X.astype(bool), csoftmax.pack_bits(X), sparse.csr_matrix(X),
                       sparse.csc_array(X), sparse.coo_matrix(X)):
                model = SoftmaxRegression(**options).fit(Xk, y)
                assert model.coef_.dtype == np.float64
                np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-4, atol=1e-6)
                assert (model.predict(Xk) == ref.predict(X)).mean() > 0.99
        model = SoftmaxRegression().fit(sparse.csr_matrix(X.astype(np.float32)), y)
        assert model.coef_.dtype == np.float32
        bad = sparse.csr_matrix(X)
        bad.data[0] = np.inf
        try:
            SoftmaxRegression().fit(bad, y)
        except ValueError as exc:
            assert "NaN or infinity" in str(exc)
        else:
            raise AssertionError("inf in sparse X was accepted")
        print("ok")
        """
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
