"""softmax / log_softmax / logsumexp and predict_proba / predict against references."""

import warnings

import numpy as np
import pytest
import scipy.special

import csoftmax
from reference import (
    LAYOUTS,
    assert_close,
    cast_through,
    make_layout,
    ref_log_softmax,
    ref_logits,
    ref_logsumexp,
    ref_softmax,
)

DTYPES = (np.float32, np.float64)
SIZES = (1, 63, 65, 5000)
THREADS = (1, 2, 3)
# 5000 x 7 logits is above the size at which the row-wise functions go parallel.
N_CLASSES = 7
N_FEATURES = 9


def _logit_matrix(n, k, dtype, layout, seed=0):
    rng = np.random.default_rng(seed + 1000 * n + k)
    Z = rng.normal(scale=4.0, size=(n, k))
    Z = make_layout(Z.astype(dtype), layout)
    return Z


def _scipy(name, Z):
    Z = np.asarray(Z, dtype=np.float64)
    if name == "softmax":
        return scipy.special.softmax(Z, axis=1)
    if name == "log_softmax":
        return scipy.special.log_softmax(Z, axis=1)
    return scipy.special.logsumexp(Z, axis=1)


def _numpy_ref(name, Z):
    return {"softmax": ref_softmax, "log_softmax": ref_log_softmax, "logsumexp": ref_logsumexp}[name](Z)


def _error_scale(name, Z):
    """Sum of the magnitudes of the terms each output is made of."""
    Z = np.asarray(Z, dtype=np.float64)
    m = Z.max(axis=1, keepdims=True)
    lse = ref_logsumexp(Z)[:, None]
    if name == "softmax":
        return None
    if name == "log_softmax":
        return np.abs(Z - m) + np.abs(lse - m)
    return (np.abs(m) + np.abs(lse - m))[:, 0]


@pytest.mark.parametrize("use_out", [False, True], ids=["alloc", "out"])
@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_rowwise_matches_scipy_and_numpy(name, dtype, n, layout, n_threads, use_out):
    Z = _logit_matrix(n, N_CLASSES, dtype, layout)
    Z_before = np.array(Z, copy=True)
    func = getattr(csoftmax, name)
    shape = (n,) if name == "logsumexp" else (n, N_CLASSES)
    out = np.full(shape, np.nan, dtype=dtype) if use_out else None

    got = func(Z, out=out, n_threads=n_threads)

    if use_out:
        assert got is out
    assert got.dtype == dtype
    assert got.shape == shape
    assert got.flags.c_contiguous
    Z64 = np.asarray(Z, dtype=np.float64)
    scale = _error_scale(name, Z64)
    assert_close(got, _scipy(name, Z64), dtype, scale=scale, err_msg=f"{name} vs scipy")
    assert_close(got, _numpy_ref(name, Z64), dtype, scale=scale, err_msg=f"{name} vs numpy")
    np.testing.assert_array_equal(np.asarray(Z), Z_before)


# Class counts around the vector width (8 float64 lanes with AVX-512, 4 with
# AVX2, 2 with SSE2): rows are moved to and from the class-major layout in
# whole blocks of classes plus a partial last block, and rows past the last
# whole vector of rows one by one; a last block of two classes (K = 2, 6, 10,
# 18) goes as one pair of values per row.
@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 8, 9, 10, 16, 17, 18, 33])
@pytest.mark.parametrize("n", [8, 13, 130])
@pytest.mark.parametrize("layout", ["C", "F", "negative"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_rowwise_class_counts_around_the_vector_width(dtype, layout, n, k):
    Z = _logit_matrix(n, k, dtype, layout, seed=7)
    Z64 = np.asarray(Z, dtype=np.float64)
    for name in ("softmax", "log_softmax", "logsumexp"):
        got = getattr(csoftmax, name)(Z, n_threads=1)
        assert_close(got, _numpy_ref(name, Z64), dtype, scale=_error_scale(name, Z64), err_msg=name)
    W = np.random.default_rng(k).normal(size=(k, 5)).astype(dtype)
    X = np.random.default_rng(n).normal(size=(n, 5)).astype(dtype)
    assert_close(csoftmax.predict_proba(W, X), ref_softmax(ref_logits(W, X)), dtype, err_msg="predict_proba")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_rowwise_transposed_and_integer_input(dtype):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(5, 300)).astype(dtype)
    Z = base.T  # (300, 5), F-ordered view
    assert not Z.flags.c_contiguous
    assert_close(csoftmax.softmax(Z), scipy.special.softmax(Z.astype(np.float64), axis=1), dtype)
    Zi = rng.integers(-20, 20, size=(40, 6))
    for name in ("softmax", "log_softmax", "logsumexp"):
        got = getattr(csoftmax, name)(Zi)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, getattr(csoftmax, name)(Zi.astype(np.float64)))
    got = csoftmax.softmax([[0, 0], [1, 1]])
    np.testing.assert_array_equal(got, [[0.5, 0.5], [0.5, 0.5]])


def test_rowwise_minus_inf_entries_allowed():
    Z = np.array([[0.0, -np.inf, 1.0], [-np.inf, 5.0, -np.inf], [2.0, 2.0, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = csoftmax.softmax(Z)
        LP = csoftmax.log_softmax(Z)
        lse = csoftmax.logsumexp(Z)
    np.testing.assert_allclose(P, scipy.special.softmax(Z, axis=1), rtol=1e-14)
    assert P[0, 1] == 0.0 and P[1, 1] == 1.0 and P[2, 2] == 0.0
    assert LP[0, 1] == -np.inf and LP[1, 1] == 0.0
    np.testing.assert_allclose(LP[np.isfinite(LP)], scipy.special.log_softmax(Z, axis=1)[np.isfinite(LP)], rtol=1e-14)
    np.testing.assert_allclose(lse, scipy.special.logsumexp(Z, axis=1), rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_rowwise_extreme_logits_exact(dtype):
    big = 1e4
    Z = np.array([[big, 0.0], [0.0, big], [-big, -big], [big, big], [-big, big]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = csoftmax.softmax(Z)
        LP = csoftmax.log_softmax(Z)
        lse = csoftmax.logsumexp(Z)
    np.testing.assert_array_equal(P, np.array([[1, 0], [0, 1], [0.5, 0.5], [0.5, 0.5], [0, 1]], dtype=dtype))
    np.testing.assert_array_equal(LP[0], np.array([0.0, -big], dtype=dtype))
    np.testing.assert_array_equal(LP[4], np.array([-2 * big, 0.0], dtype=dtype))
    expected_lse = np.array([big, big, -big + np.log(2), big + np.log(2), big])
    np.testing.assert_allclose(lse, expected_lse.astype(dtype), rtol=1e-7 if dtype == np.float32 else 1e-15)
    np.testing.assert_allclose(LP[2:4], np.log(0.5), rtol=1e-6 if dtype == np.float32 else 1e-14)


def test_rowwise_huge_finite_logits_no_nan():
    Z = np.array([[1e308, -1e308], [1.7e308, 1.7e308], [-1.7e308, 0.0], [1e300, 1e300 * (1 - 1e-15)]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = csoftmax.softmax(Z)
        LP = csoftmax.log_softmax(Z)
        lse = csoftmax.logsumexp(Z)
    assert not np.isnan(P).any() and not np.isnan(LP).any() and not np.isnan(lse).any()
    np.testing.assert_array_equal(P[0], [1.0, 0.0])
    np.testing.assert_array_equal(P[1], [0.5, 0.5])
    np.testing.assert_array_equal(P[2], [0.0, 1.0])
    assert LP[0, 0] == 0.0
    assert lse[0] == 1e308
    assert lse[1] == 1.7e308  # + log(2) is below the resolution
    assert lse[2] == 0.0


@pytest.mark.parametrize("k", [1, 2])
def test_rowwise_one_and_two_classes(k):
    rng = np.random.default_rng(4)
    Z = rng.normal(scale=10, size=(500, k))
    P = csoftmax.softmax(Z)
    if k == 1:
        np.testing.assert_array_equal(P, 1.0)
        np.testing.assert_array_equal(csoftmax.log_softmax(Z), 0.0)
        np.testing.assert_array_equal(csoftmax.logsumexp(Z), Z[:, 0])
    else:
        # Two classes: softmax is the logistic sigmoid of the difference.
        np.testing.assert_allclose(P[:, 0], scipy.special.expit(Z[:, 0] - Z[:, 1]), rtol=1e-13)
        # log(sum) of a sum near 1 is only accurate to ~eps in absolute terms.
        np.testing.assert_allclose(
            csoftmax.log_softmax(Z)[:, 0], -np.logaddexp(0.0, Z[:, 1] - Z[:, 0]), rtol=1e-13, atol=1e-15
        )


def test_rowwise_empty_rows():
    for name in ("softmax", "log_softmax"):
        got = getattr(csoftmax, name)(np.empty((0, 3)))
        assert got.shape == (0, 3) and got.dtype == np.float64
    got = csoftmax.logsumexp(np.empty((0, 3), dtype=np.float32))
    assert got.shape == (0,) and got.dtype == np.float32


# ---------------------------------------------------------------------------
# predict_proba / predict
# ---------------------------------------------------------------------------


def _model(n, dtype, layout, with_b, seed=0):
    rng = np.random.default_rng(seed + n)
    X = rng.normal(size=(n, N_FEATURES))
    W = rng.normal(scale=0.7, size=(N_CLASSES, N_FEATURES))
    b = rng.normal(size=N_CLASSES) if with_b else None
    X = make_layout(X.astype(dtype), layout)
    return W, X, b


def _ref_logits_cast(W, X, b, dtype):
    return ref_logits(cast_through(W, dtype), np.asarray(X, dtype=np.float64), cast_through(b, dtype))


def _check_argmax(labels, Z_ref):
    """labels must be the argmax of the reference logits, up to rounding on near-ties."""
    assert labels.dtype == np.int64
    n = Z_ref.shape[0]
    expected = np.argmax(Z_ref, axis=1)
    differ = labels != expected
    if differ.any():
        rows = np.flatnonzero(differ)
        top = Z_ref[rows, expected[rows]]
        chosen = Z_ref[rows, labels[rows]]
        assert np.all(top - chosen <= 1e-12 * (1 + np.abs(top))), (rows[:5], labels[rows[:5]], expected[rows[:5]])
    assert labels.shape == (n,)


@pytest.mark.parametrize("use_out", [False, True], ids=["alloc", "out"])
@pytest.mark.parametrize("with_b", [False, True], ids=["nob", "b"])
@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_predict_proba_and_predict(dtype, n, layout, n_threads, with_b, use_out):
    W, X, b = _model(n, dtype, layout, with_b)
    out = np.full((n, N_CLASSES), np.nan, dtype=dtype) if use_out else None
    P = csoftmax.predict_proba(W, X, b, out=out, n_threads=n_threads)
    if use_out:
        assert P is out
    assert P.dtype == dtype and P.shape == (n, N_CLASSES)
    Z_ref = _ref_logits_cast(W, X, b, dtype)
    assert_close(P, ref_softmax(Z_ref), dtype, err_msg="predict_proba")
    assert_close(P, scipy.special.softmax(Z_ref, axis=1), dtype, err_msg="predict_proba vs scipy")
    labels = csoftmax.predict(W, X, b, n_threads=n_threads)
    _check_argmax(labels, Z_ref)


def test_predict_ties_pick_first_class():
    X = np.ones((4, 2))
    W = np.zeros((3, 2))
    np.testing.assert_array_equal(csoftmax.predict(W, X), [0, 0, 0, 0])
    W = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(csoftmax.predict(W, X), [1, 1, 1, 1])
    np.testing.assert_array_equal(csoftmax.predict(W, X, b=[0.0, 0.0, 1e-9]), [2, 2, 2, 2])
    np.testing.assert_array_equal(csoftmax.predict(W, X, b=[1.0, 0.0, 0.0]), [0, 0, 0, 0])


def test_predict_extreme_logits():
    W = np.array([[1.0], [-1.0]])
    X = np.array([[1e4], [-1e4], [0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = csoftmax.predict_proba(W, X)
        labels = csoftmax.predict(W, X)
    np.testing.assert_array_equal(P, [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_array_equal(labels, [0, 1, 0])


def test_predict_empty_and_single_class():
    W = np.ones((3, 4))
    P = csoftmax.predict_proba(W, np.empty((0, 4), dtype=np.float32))
    assert P.shape == (0, 3) and P.dtype == np.float32
    labels = csoftmax.predict(W, np.empty((0, 4)))
    assert labels.shape == (0,) and labels.dtype == np.int64
    X = np.random.default_rng(0).normal(size=(100, 4))
    np.testing.assert_array_equal(csoftmax.predict_proba(np.ones((1, 4)), X), 1.0)
    np.testing.assert_array_equal(csoftmax.predict(np.ones((1, 4)), X), 0)


def test_predict_proba_d1_matches_sigmoid():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 1))
    W = np.array([[2.0], [-1.0]])
    b = np.array([0.5, -0.25])
    P = csoftmax.predict_proba(W, X, b)
    np.testing.assert_allclose(P[:, 0], scipy.special.expit(3.0 * X[:, 0] + 0.75), rtol=1e-12)
