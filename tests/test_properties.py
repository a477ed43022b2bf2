"""Property-based tests (hypothesis)."""

import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import csoftmax  # noqa: E402
from reference import ref_loss_and_gradient, soft_targets  # noqa: E402

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw, max_n=30):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, 4))
    k = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    w_scale = draw(st.sampled_from([0.1, 0.5, 1.0, 2.0]))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(scale=w_scale, size=(k, d))
    b = rng.normal(size=k) if draw(st.booleans()) else None
    y = soft_targets(rng, n, k) if draw(st.booleans()) else rng.integers(0, k, n)
    w = rng.uniform(0.1, 2.0, n) if draw(st.booleans()) else None
    return W, X, y, b, w


def _five_point(f, params, h):
    grad = np.empty_like(params)
    for j in range(params.size):
        vals = []
        for step in (-2, -1, 1, 2):
            p = params.copy()
            p[j] += step * h
            vals.append(f(p))
        grad[j] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return grad


@SETTINGS
@given(problem=problems(), l2=st.sampled_from([0.0, 0.01, 1.0]), reduction=st.sampled_from(["mean", "sum"]))
def test_gradient_matches_finite_differences(problem, l2, reduction):
    W, X, y, b, w = problem
    k, d = W.shape
    with_b = b is not None

    def loss(p):
        return csoftmax.loss_and_gradient(
            p[: k * d].reshape(k, d), X, y, p[k * d :] if with_b else None, sample_weight=w, l2=l2,
            reduction=reduction,
        )[0]

    params = np.concatenate([W.ravel(), b if with_b else []])
    value, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=l2, reduction=reduction)
    assert value >= 0.0
    analytic = np.concatenate([gW.ravel(), gb if with_b else []])
    numeric = _five_point(loss, params, 1e-3)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(numeric).max()))
    ref = ref_loss_and_gradient(W, X, y, b, w, l2=l2, reduction=reduction)
    np.testing.assert_allclose(value, ref[0], rtol=1e-10, atol=1e-300)


def _logit_arrays(dtype, low, high):
    return hnp.arrays(
        dtype=dtype,
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
        elements=st.floats(low, high, allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8),
    )


@SETTINGS
@given(
    Z=st.one_of(
        _logit_arrays(np.float64, -1e4, 1e4),
        _logit_arrays(np.float64, -1.7e308, 1.7e308),
        _logit_arrays(np.float32, float(np.float32(-3e38)), float(np.float32(3e38))),
        _logit_arrays(np.float32, -50, 50),
    )
)
def test_rowwise_invariants(Z):
    k = Z.shape[1]
    eps = np.finfo(Z.dtype).eps
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = csoftmax.softmax(Z)
        LP = csoftmax.log_softmax(Z)
        lse = csoftmax.logsumexp(Z)
    assert P.dtype == Z.dtype and LP.dtype == Z.dtype and lse.dtype == Z.dtype
    assert not np.isnan(P).any() and not np.isnan(LP).any() and not np.isnan(lse).any()
    assert np.all((P >= 0) & (P <= 1))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=4 * k * eps)
    # The row maximum has probability >= 1/K and log-probability 0 >= ... >= -log K.
    top = np.argmax(Z, axis=1)
    rows = np.arange(Z.shape[0])
    assert np.all(P[rows, top] >= (1.0 / k) * (1 - 4 * eps))
    assert np.all(LP <= 0)
    assert np.all(LP[rows, top] >= -np.log(k) * (1 + 4 * eps) - 4 * eps)
    row_max = Z.max(axis=1)
    assert np.all(lse >= row_max)
    bound = row_max.astype(np.float64) + np.log(k)
    assert np.all(lse.astype(np.float64) <= bound + 4 * eps * np.abs(bound) + 4 * eps)
    # log_softmax and softmax agree where the probability is representable.
    finite = np.isfinite(LP) & (P > 1e-30)
    np.testing.assert_allclose(np.exp(LP[finite].astype(np.float64)), P[finite], rtol=1e3 * eps * max(1, k))


@SETTINGS
@given(
    Z=_logit_arrays(np.float64, -100, 100),
    c=st.floats(-1000, 1000, allow_nan=False),
)
def test_softmax_shift_invariance(Z, c):
    P = csoftmax.softmax(Z)
    P_shift = csoftmax.softmax(Z + c)
    tol = 1e-13 * (1 + abs(c) + np.abs(Z).max())
    np.testing.assert_allclose(P_shift, P, rtol=0, atol=tol)
    np.testing.assert_allclose(csoftmax.log_softmax(Z + c), csoftmax.log_softmax(Z), rtol=0, atol=tol * 10)
    np.testing.assert_allclose(csoftmax.logsumexp(Z + c), csoftmax.logsumexp(Z) + c, rtol=0, atol=tol * 10)


@SETTINGS
@given(problem=problems(max_n=200), c=st.floats(-100, 100, allow_nan=False))
def test_likelihood_invariant_to_shifting_every_intercept(problem, c):
    W, X, y, b, w = problem
    b = np.zeros(W.shape[0]) if b is None else b
    L = csoftmax.log_likelihood(W, X, y, b, sample_weight=w)
    L_shift = csoftmax.log_likelihood(W, X, y, b + c, sample_weight=w)
    assert L <= 0.0 and L_shift <= 0.0
    n = X.shape[0]
    row_mass = np.asarray(y).sum(axis=1) if np.ndim(y) == 2 else np.ones(n)
    total_mass = float(np.sum(row_mass * (1.0 if w is None else w)))
    atol = 1e-12 * (1 + abs(c) + np.abs(X @ W.T + b).max()) * max(1.0, total_mass)
    np.testing.assert_allclose(L_shift, L, rtol=1e-10, atol=atol)
    G = csoftmax.log_likelihood_gradient(W, X, y, b, sample_weight=w)
    G_shift = csoftmax.log_likelihood_gradient(W, X, y, b + c, sample_weight=w)
    np.testing.assert_allclose(G_shift, G, rtol=1e-8, atol=atol * (1 + np.abs(X).max()))
    P = csoftmax.predict_proba(W, X, b)
    np.testing.assert_allclose(csoftmax.predict_proba(W, X, b + c), P, rtol=0, atol=atol)


@SETTINGS
@given(
    problem=problems(max_n=60),
    row_step=st.integers(1, 3),
    col_step=st.integers(1, 3),
    flip_rows=st.booleans(),
    fortran=st.booleans(),
)
def test_any_layout_same_results(problem, row_step, col_step, flip_rows, fortran):
    W, X, y, b, w = problem
    n, d = X.shape
    big = np.zeros((n * row_step, d * col_step))
    big[::row_step, ::col_step] = X
    if fortran:
        big = np.asfortranarray(big)
    view = big[::row_step, ::col_step]
    if flip_rows:
        view = view[::-1]
        X = X[::-1]
        y = y[::-1]
        w = None if w is None else w[::-1]
    assert np.array_equal(view, X)
    got = csoftmax.loss_and_gradient(W, view, y, b, sample_weight=w, l2=0.1)
    expected = csoftmax.loss_and_gradient(W, np.ascontiguousarray(X), y, b, sample_weight=w, l2=0.1)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(csoftmax.predict_proba(W, view, b), csoftmax.predict_proba(W, X, b), rtol=1e-13,
                               atol=1e-300)


@SETTINGS
@given(problem=problems(max_n=50), scale=st.sampled_from([1.0, 1e2, 1e4, 1e8]))
def test_loss_nonnegative_and_finite_for_large_logits(problem, scale):
    W, X, y, b, w = problem
    W = W * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, reduction="sum")
        L = csoftmax.log_likelihood(W, X, y, b, sample_weight=w)
        P = csoftmax.predict_proba(W, X, b)
    assert np.isfinite(loss) and loss >= 0.0 and L <= 0.0
    assert np.all(np.isfinite(gW)) and (gb is None or np.all(np.isfinite(gb)))
    assert np.all((P >= 0) & (P <= 1))
    ref = ref_loss_and_gradient(W, X, y, b, w, reduction="sum")
    np.testing.assert_allclose(loss, ref[0], rtol=1e-9, atol=1e-12)
