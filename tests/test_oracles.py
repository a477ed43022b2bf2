"""Independent oracles: finite differences, scikit-learn's multinomial loss, PyTorch autograd."""

import numpy as np
import pytest

import csoftmax
from reference import soft_targets


def _problem(n, d, k, targets, seed=0, with_w=True):
    rng = np.random.default_rng([seed, n, d, k])
    X = rng.normal(size=(n, d))
    W = rng.normal(scale=0.5, size=(k, d))
    b = rng.normal(size=k)
    y = rng.integers(0, k, n) if targets == "labels" else soft_targets(rng, n, k)
    w = rng.uniform(0.2, 2.0, n) if with_w else None
    return W, X, y, b, w


def five_point_gradient(f, params, h):
    """Central five-point differences of the scalar function f at params (a flat float64 vector)."""
    grad = np.empty_like(params)
    for j in range(params.size):
        values = []
        for step in (-2, -1, 1, 2):
            p = params.copy()
            p[j] += step * h
            values.append(f(p))
        f_m2, f_m1, f_p1, f_p2 = values
        grad[j] = (f_m2 - 8.0 * f_m1 + 8.0 * f_p1 - f_p2) / (12.0 * h)
    return grad


@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("with_b", [True, False], ids=["b", "nob"])
@pytest.mark.parametrize("n", [40, 4500])
def test_gradient_matches_finite_differences(n, with_b, l2, reduction, targets):
    W, X, y, b, w = _problem(n, 4, 3, targets)
    if not with_b:
        b = None
    k, d = W.shape

    def unpack(p):
        return p[: k * d].reshape(k, d), (p[k * d :] if with_b else None)

    def loss(p):
        W_, b_ = unpack(p)
        return csoftmax.loss_and_gradient(W_, X, y, b_, sample_weight=w, l2=l2, reduction=reduction, n_threads=2)[0]

    params = np.concatenate([W.ravel(), b if with_b else []])
    _, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=l2, reduction=reduction, n_threads=2)
    analytic = np.concatenate([gW.ravel(), gb if with_b else []])
    h = 1e-3 if reduction == "mean" else 1e-4
    numeric = five_point_gradient(loss, params, h)
    scale = max(1.0, np.abs(numeric).max())
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7 * scale)

    # And the log-likelihood's gradient: d/dW of log_likelihood.
    def loglik(p):
        W_, b_ = unpack(p)
        return csoftmax.log_likelihood(W_, X, y, b_, sample_weight=w)

    G = csoftmax.log_likelihood_gradient(W, X, y, b, sample_weight=w)
    numeric_L = five_point_gradient(loglik, params, 1e-4)[: k * d]
    np.testing.assert_allclose(G.ravel(), numeric_L, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(numeric_L).max()))


@pytest.mark.parametrize("targets", ["labels", "soft"])
def test_float32_gradient_matches_finite_differences(targets):
    """float32 X: W on a grid and a power-of-two step keep every W +- step h exact in float32."""
    W, X, y, b, w = _problem(300, 3, 4, targets)
    W = np.round(W * 64) / 64
    b = np.round(b * 64) / 64
    X = X.astype(np.float32)
    h = 2.0**-10
    k, d = W.shape

    def loss(p):
        return csoftmax.loss_and_gradient(
            p[: k * d].reshape(k, d), X, y, p[k * d :], sample_weight=w, l2=0.2
        )[0]

    params = np.concatenate([W.ravel(), b])
    _, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=0.2)
    assert gW.dtype == np.float32
    numeric = five_point_gradient(loss, params, h)
    np.testing.assert_allclose(np.concatenate([gW.ravel(), gb]), numeric, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------------------
# scikit-learn
# ---------------------------------------------------------------------------


def _sklearn_multinomial(k):
    pytest.importorskip("sklearn")
    loss_module = pytest.importorskip("sklearn._loss.loss")
    if not hasattr(loss_module, "HalfMultinomialLoss"):
        pytest.skip("this scikit-learn has no HalfMultinomialLoss")
    return loss_module.HalfMultinomialLoss(n_classes=k)


def test_sklearn_multinomial_loss_is_full_cross_entropy():
    """Check the oracle itself: despite its name it is the full (not halved) cross-entropy."""
    loss_obj = _sklearn_multinomial(3)
    per_sample = loss_obj.loss(y_true=np.array([0.0, 2.0]), raw_prediction=np.zeros((2, 3)))
    np.testing.assert_allclose(per_sample, np.log(3.0), rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_w", [False, True], ids=["now", "w"])
@pytest.mark.parametrize("n", [50, 5000])
def test_matches_sklearn_half_multinomial_loss(n, with_w, dtype):
    k = 4
    loss_obj = _sklearn_multinomial(k)
    W, X, y, b, w = _problem(n, 6, k, "labels", seed=3, with_w=with_w)
    X = X.astype(dtype)
    Wc, bc = W.astype(dtype).astype(np.float64), b.astype(dtype).astype(np.float64)
    X64 = X.astype(np.float64)
    raw = np.ascontiguousarray(X64 @ Wc.T + bc)
    y_true = y.astype(np.float64)
    per_sample = loss_obj.loss(y_true=y_true, raw_prediction=raw, sample_weight=w)
    grad_raw = loss_obj.gradient(y_true=y_true, raw_prediction=raw, sample_weight=w)  # w_n (p_n - onehot_n)

    rtol = 1e-10 if dtype == np.float64 else 1e-5
    S = w.sum() if with_w else float(n)
    l2 = 0.05
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=l2, n_threads=2)
    np.testing.assert_allclose(loss, per_sample.sum() / S + 0.5 * l2 * np.sum(Wc**2), rtol=rtol)
    scale_W = np.abs(grad_raw).T @ np.abs(X64) / S
    np.testing.assert_array_less(np.abs(gW - (grad_raw.T @ X64 / S + l2 * Wc)), rtol * (scale_W + 1e-30) + 1e-300)
    np.testing.assert_array_less(np.abs(gb - grad_raw.sum(axis=0) / S), rtol * np.abs(grad_raw).sum(axis=0) / S)

    loss_sum = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, reduction="sum")[0]
    np.testing.assert_allclose(loss_sum, per_sample.sum(), rtol=rtol)
    np.testing.assert_allclose(-csoftmax.log_likelihood(W, X, y, b, sample_weight=w), per_sample.sum(), rtol=rtol)

    # Per sample: -log_softmax of the logits at the label, and single-row log-likelihoods.
    unweighted = loss_obj.loss(y_true=y_true, raw_prediction=raw)
    LP = csoftmax.log_softmax(raw)
    np.testing.assert_allclose(-LP[np.arange(n), y], unweighted, rtol=1e-10, atol=1e-14)
    for i in range(0, n, max(1, n // 10)):
        Li = csoftmax.log_likelihood(W, X[i : i + 1], y[i : i + 1], b)
        np.testing.assert_allclose(-Li, unweighted[i], rtol=rtol, atol=1e-14)
    # The probabilities.
    P = csoftmax.predict_proba(W, X, b)
    _, proba = loss_obj.gradient_proba(y_true=y_true, raw_prediction=raw)
    np.testing.assert_allclose(P, proba, rtol=rtol, atol=1e-15)


def test_gradient_vanishes_at_sklearn_logistic_regression_optimum():
    """sklearn minimises C * sum_n w_n CE_n + ||W||^2 / 2 (intercepts unpenalised): our 'sum' loss with l2 = 1/C."""
    linear_model = pytest.importorskip("sklearn.linear_model")
    W, X, y, b, w = _problem(400, 5, 3, "labels", seed=4)
    C = 0.5
    clf = linear_model.LogisticRegression(C=C, tol=1e-12, max_iter=10000)
    clf.fit(X, y, sample_weight=w)
    assert clf.coef_.shape == (3, 5)
    _, gW, gb = csoftmax.loss_and_gradient(clf.coef_, X, y, clf.intercept_, sample_weight=w, l2=1.0 / C, reduction="sum")
    _, gW0, gb0 = csoftmax.loss_and_gradient(np.zeros((3, 5)), X, y, np.zeros(3), sample_weight=w, l2=1.0 / C,
                                             reduction="sum")
    size = max(np.abs(gW0).max(), np.abs(gb0).max())
    assert np.abs(gW).max() < 1e-4 * size, np.abs(gW).max()
    assert np.abs(gb).max() < 1e-4 * size, np.abs(gb).max()
    np.testing.assert_array_equal(csoftmax.predict(clf.coef_, X, clf.intercept_), clf.predict(X))
    np.testing.assert_allclose(csoftmax.predict_proba(clf.coef_, X, clf.intercept_), clf.predict_proba(X),
                               rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("with_w", [False, True], ids=["now", "w"])
def test_matches_torch_autograd(targets, reduction, with_w):
    torch = pytest.importorskip("torch")
    W, X, y, b, w = _problem(3000, 5, 4, targets, seed=5, with_w=with_w)
    l2 = 0.2
    Wt = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    Xt = torch.tensor(X, dtype=torch.float64)
    logits = Xt @ Wt.T + bt
    if targets == "labels":
        per_row = torch.nn.functional.cross_entropy(logits, torch.tensor(y, dtype=torch.int64), reduction="none")
    else:
        per_row = -(torch.tensor(y, dtype=torch.float64) * torch.log_softmax(logits, dim=1)).sum(dim=1)
    wt = torch.tensor(w if with_w else np.ones(len(X)), dtype=torch.float64)
    S = wt.sum() if reduction == "mean" else torch.tensor(1.0, dtype=torch.float64)
    total = (wt * per_row).sum() / S + 0.5 * l2 * (Wt**2).sum()
    total.backward()

    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=l2, reduction=reduction)
    np.testing.assert_allclose(loss, total.item(), rtol=1e-11)
    atol = 1e-11 * max(1.0, float(np.abs(Wt.grad.numpy()).max()))
    np.testing.assert_allclose(gW, Wt.grad.numpy(), rtol=1e-9, atol=atol)
    np.testing.assert_allclose(gb, bt.grad.numpy(), rtol=1e-9, atol=atol)
    np.testing.assert_allclose(
        csoftmax.predict_proba(W, X, b), torch.softmax(logits, dim=1).detach().numpy(), rtol=1e-12, atol=1e-15
    )
