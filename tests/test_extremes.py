"""Extreme sizes and values: 64-bit index arithmetic, tiny and wide shapes, float32 limits."""

import numpy as np
import pytest
from scipy.special import logsumexp

import csoftmax


def _reference_loss(W, x_row, n, label):
    z = W @ x_row
    return n * (z[label] - logsumexp(z))


def test_more_than_2_31_elements_through_a_broadcast_X():
    # N x D = 2^31 without allocating it: every row is the same view.
    N, D, K = 2**16, 2**15, 2
    row = np.linspace(-1.0, 1.0, D)
    X = np.broadcast_to(row[None, :], (N, D))
    assert X.strides == (0, 8) and N * D >= 2**31
    W = np.vstack([row, -row]) * 1e-3
    y = np.ones(N, dtype=np.int64)
    loss = csoftmax.log_likelihood(W, X, y)
    np.testing.assert_allclose(loss, _reference_loss(W, row, N, 1), rtol=1e-9)


@pytest.mark.parametrize("K", [1, 2, 1000])
@pytest.mark.parametrize("N,D", [(1, 1), (1, 7), (9, 1), (33, 5)])
def test_small_and_wide_shapes(N, D, K):
    rng = np.random.default_rng(N * 1000 + D * 10 + K)
    X, W, b = rng.normal(size=(N, D)), rng.normal(size=(K, D)), rng.normal(size=K)
    y = rng.integers(0, K, N)
    Z = X @ W.T + b
    expected = logsumexp(Z, axis=1)
    np.testing.assert_allclose(csoftmax.logsumexp(Z), expected, rtol=1e-12)
    P = csoftmax.predict_proba(W, X, b)
    np.testing.assert_allclose(P, np.exp(Z - expected[:, None]), rtol=1e-10, atol=1e-300)
    loss = csoftmax.log_likelihood(W, X, y, b)
    np.testing.assert_allclose(loss, np.sum(Z[np.arange(N), y] - expected), rtol=1e-10, atol=1e-12)
    if K == 1:
        assert np.all(P == 1.0) and loss == 0.0


def test_float32_logits_near_the_float32_limit():
    big = np.finfo(np.float32).max
    Z = np.array([[big, big * 0.5, -big], [-big, -big, -big], [big, big, big]], dtype=np.float32)
    expected = logsumexp(Z.astype(np.float64), axis=1)
    out = csoftmax.logsumexp(Z)
    # The exact value of the first and last rows is above float32's max: inf is the right answer.
    np.testing.assert_allclose(out.astype(np.float64)[1], expected[1], rtol=1e-6)
    P = csoftmax.softmax(Z)
    assert np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(P[0], [1.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(P[2], [1 / 3] * 3, rtol=1e-6)


def test_exponential_within_about_one_ulp_down_to_the_subnormals():
    # softmax([0, x]) has p_1 = exp(x) exactly when exp(x) < 2^-54 (1 + exp(x)
    # rounds to 1), so it shows the kernels' own exponential; the reference
    # is long double.  Every lane position of a vector sees every region.
    rng = np.random.default_rng(11)
    x = np.concatenate([np.linspace(-746.0, -40.0, 100_003), rng.uniform(-746.0, -40.0, 100_000),
                        rng.uniform(-745.2, -707.0, 20_000)])
    Z = np.column_stack([np.zeros_like(x), x])
    got = csoftmax.softmax(Z, n_threads=1)[:, 1]
    exact = np.exp(x.astype(np.longdouble))
    nearest = exact.astype(np.float64)
    tiny = np.finfo(np.float64).smallest_subnormal
    ulp = np.maximum(np.spacing(nearest), tiny).astype(np.longdouble)
    err_ulps = np.abs(got.astype(np.longdouble) - exact) / ulp
    if np.finfo(np.longdouble).nmant > 52:
        assert err_ulps.max() <= 1.2, x[np.argmax(err_ulps)]
    else:  # long double is double here: compare with libm's exp, itself within an ulp
        assert err_ulps.max() <= 2.0, x[np.argmax(err_ulps)]
    assert np.all(got[x < -745.2] == 0.0)
    assert np.all(got[x > -744.4] > 0.0)


def test_logarithm_within_about_one_ulp():
    # A row of k zeros and -inf elsewhere has logsumexp log(k) with the sum of
    # the exponentials exactly k, so it shows the kernels' own logarithm: on
    # the integers up to 2048, whose top mantissa bits (what a table-driven
    # log looks up) take every value in every lane position of a vector.
    width = 2048
    k = np.arange(1, width + 1)
    Z = np.where(np.arange(width)[None, :] < k[:, None], 0.0, -np.inf)
    got = csoftmax.logsumexp(Z, n_threads=1)
    exact = np.log(k.astype(np.longdouble))
    ulp = np.spacing(exact.astype(np.float64)).astype(np.longdouble)
    err_ulps = np.abs(got.astype(np.longdouble) - exact) / ulp
    assert got[0] == 0.0
    if np.finfo(np.longdouble).nmant > 52:
        assert err_ulps[1:].max() <= 1.0, k[1 + np.argmax(err_ulps[1:])]
    else:  # long double is double here: compare with libm's log, itself within an ulp
        assert err_ulps[1:].max() <= 2.0, k[1 + np.argmax(err_ulps[1:])]


def test_packed_bits_with_2_16_features():
    rng = np.random.default_rng(5)
    N, D, K = 6, 2**16, 3
    dense = rng.random((N, D)) < 0.01
    packed = csoftmax.pack_bits(dense)
    assert packed.n_features == D
    W = rng.normal(size=(K, D))
    y = rng.integers(0, K, N)
    Xf = dense.astype(np.float64)
    np.testing.assert_allclose(csoftmax.predict_proba(W, packed), csoftmax.predict_proba(W, Xf), rtol=1e-12)
    np.testing.assert_allclose(csoftmax.log_likelihood(W, packed, y), csoftmax.log_likelihood(W, Xf, y), rtol=1e-12)
