"""hessian_product against finite differences of the gradient and a dense Hessian."""

import numpy as np
import pytest

import csoftmax


def _problem(seed, n=400, d=6, k=4, soft=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(k, d))
    b = rng.normal(size=k)
    y = rng.random((n, k)) * 2 if soft else rng.integers(0, k, n)
    w = rng.uniform(0.5, 2.0, n)
    return X, W, b, y, w


def _flat_gradient(theta, X, y, w, l2, k, d, reduction):
    W, b = theta[: k * d].reshape(k, d), theta[k * d :]
    _, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=l2, reduction=reduction)
    return np.concatenate([gW.ravel(), gb])


# (70, 300, 49): long rows with many classes, whose logits (of W and of the
# direction) are a rank update over the features.
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("n,d,k", [(400, 6, 4), (70, 300, 49)])
def test_matches_finite_differences_of_the_gradient(soft, reduction, n, d, k):
    X, W, b, y, w = _problem(1, n=n, d=d, k=k, soft=soft)
    k, d = W.shape
    rng = np.random.default_rng(2)
    V, Vb = rng.normal(size=W.shape), rng.normal(size=b.shape)
    HV, HVb = csoftmax.hessian_product(W, X, V, b, Vb, y=y, sample_weight=w, l2=0.3, reduction=reduction)
    theta = np.concatenate([W.ravel(), b])
    direction = np.concatenate([V.ravel(), Vb])
    h = 1e-5
    fd = (
        _flat_gradient(theta + h * direction, X, y, w, 0.3, k, d, reduction)
        - _flat_gradient(theta - h * direction, X, y, w, 0.3, k, d, reduction)
    ) / (2 * h)
    got = np.concatenate([HV.ravel(), HVb])
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())


def test_matches_the_dense_hessian_and_is_symmetric():
    X, W, b, y, w = _problem(3, n=50, d=3, k=3)
    k, d = W.shape
    n_params = k * d + k
    H = np.empty((n_params, n_params))
    for j in range(n_params):
        e = np.zeros(n_params)
        e[j] = 1.0
        HV, HVb = csoftmax.hessian_product(W, X, e[: k * d].reshape(k, d), b, e[k * d :], sample_weight=w, l2=0.1)
        H[:, j] = np.concatenate([HV.ravel(), HVb])
    # Dense Hessian from the formula, written independently.
    Z = X @ W.T + b
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    Xa = np.hstack([X, np.ones((X.shape[0], 1))])  # the intercept as a feature
    dense = np.zeros((k * (d + 1), k * (d + 1)))
    for n in range(X.shape[0]):
        A = np.diag(P[n]) - np.outer(P[n], P[n])
        dense += w[n] * np.kron(A, np.outer(Xa[n], Xa[n]))
    dense /= w.sum()
    # reorder [W (k x d+1) with intercept column] -> [W.ravel(), b]
    order = [kk * (d + 1) + i for kk in range(k) for i in range(d)] + [kk * (d + 1) + d for kk in range(k)]
    dense = dense[np.ix_(order, order)]
    dense[: k * d, : k * d] += 0.1 * np.eye(k * d)
    np.testing.assert_allclose(H, dense, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)


def test_thread_count_invariance_and_no_intercept():
    X, W, b, y, w = _problem(4, n=20000, d=16, k=5)
    V = np.random.default_rng(5).normal(size=W.shape)
    first, none_b = csoftmax.hessian_product(W, X, V, n_threads=1)
    assert none_b is None
    for n_threads in (2, 3):
        again, _ = csoftmax.hessian_product(W, X, V, n_threads=n_threads)
        assert np.array_equal(again, first)


def test_errors_name_the_argument():
    X, W, b, y, w = _problem(6, n=10)
    with pytest.raises(ValueError, match="V must have the shape of W"):
        csoftmax.hessian_product(W, X, W[:2], b)
    with pytest.raises(ValueError, match="Vb was given but b is None"):
        csoftmax.hessian_product(W, X, W, None, b)
    with pytest.raises(ValueError, match="V contains NaN"):
        csoftmax.hessian_product(W, X, np.full_like(W, np.nan), b)
    with pytest.raises(ValueError, match="label out of range"):
        csoftmax.hessian_product(W, X, W, b, y=np.full(10, 9))
