"""The compiled mini-batch SGD epochs (the estimator's "sgd" solver runs on them)."""

import numpy as np
import pytest

import csoftmax
from csoftmax._functions import features_of
from csoftmax._sgd import sgd_train


def _problem(seed=0, n=3000, d=20, k=4):
    rng = np.random.default_rng(seed)
    W_true = rng.normal(size=(k, d))
    Xb = rng.random((n, d)) < 0.4
    X = Xb.astype(np.float64)
    y = np.argmax(X @ W_true.T + rng.gumbel(size=(n, k)), axis=1).astype(np.int64)
    return Xb, X, y, k, d


def _train(X, y, k, d, **kwargs):
    W = np.zeros((k, d))
    b = np.zeros(k)
    options = dict(l2=1e-4, max_epochs=15, learning_rate="constant", eta0=0.05, momentum=0.9, random_state=0)
    options.update(kwargs)
    result = sgd_train(features_of(X, W), y, None, W, b, **options)
    return W, b, result


def test_sgd_approaches_the_full_batch_optimum():
    Xb, X, y, k, d = _problem()
    W, b, result = _train(X, y, k, d, max_epochs=30, learning_rate="invscaling", eta0=0.2, power_t=0.5)
    assert result.loss_curve[-1] < result.loss_curve[0]
    # Gradient of the same objective is small at the SGD solution.
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, l2=1e-4)
    assert abs(loss - result.loss_curve[-1]) < 0.05
    assert np.abs(gW).max() < 0.05 and np.abs(gb).max() < 0.05


# (600, 300, 49): float64 batches of long rows with many classes (whose
# full-data logits are a rank update over the features; batches keep W
# row-major) against the other kinds.
@pytest.mark.parametrize("n,d,k", [(3000, 20, 4), (600, 300, 49)])
def test_sgd_is_deterministic_and_the_same_for_every_input_kind(n, d, k):
    Xb, X, y, k, d = _problem(1, n=n, d=d, k=k)
    results = [_train(Xin, y, k, d, max_epochs=3) for Xin in (X, Xb, Xb.view(np.uint8), csoftmax.pack_bits(Xb))]
    W0, b0, r0 = results[0]
    for W, b, r in results[1:]:
        np.testing.assert_allclose(W, W0, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(r.loss_curve, r0.loss_curve, rtol=1e-10)
    W1, _, r1 = _train(X, y, k, d, max_epochs=3)
    np.testing.assert_array_equal(W1, W0)


def test_sample_weights_equal_repeated_rows():
    Xb, X, y, k, d = _problem(2, n=400)
    W = np.zeros((k, d))
    w = np.full(400, 2.0)
    r_w = sgd_train(features_of(X, W), y, w, W, np.zeros(k), l2=1e-3, max_epochs=5, shuffle=False,
                    learning_rate="constant", eta0=0.05, momentum=0.0, batch_size=400)
    W2 = np.zeros((k, d))
    r_1 = sgd_train(features_of(X, W2), y, None, W2, np.zeros(k), l2=1e-3, max_epochs=5, shuffle=False,
                    learning_rate="constant", eta0=0.05, momentum=0.0, batch_size=400)
    # Scaling every weight by 2 changes nothing in the mean objective.
    np.testing.assert_allclose(W, W2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r_w.loss_curve, r_1.loss_curve, rtol=1e-12)


def test_divergence_restores_finite_parameters():
    Xb, X, y, k, d = _problem(3)
    W, b, result = _train(X * 1e150, y, k, d, eta0=1e200, momentum=0.0, max_epochs=5)
    assert result.diverged
    assert np.isfinite(W).all() and np.isfinite(b).all()


def test_early_stopping_and_adaptive_schedule_stop():
    Xb, X, y, k, d = _problem(4)
    W, b, r = _train(X, y, k, d, early_stopping=True, n_iter_no_change=2, max_epochs=50)
    assert r.converged and r.n_epochs < 50 and len(r.validation_scores) == r.n_epochs
    W, b, r = _train(X, y, k, d, learning_rate="adaptive", n_iter_no_change=2, max_epochs=200, tol=1e-3)
    assert r.converged and r.n_epochs < 200


def test_bad_schedule_arguments():
    Xb, X, y, k, d = _problem(5, n=50)
    with pytest.raises(ValueError, match="learning_rate"):
        _train(X, y, k, d, learning_rate="sometimes")
    with pytest.raises(ValueError, match="optimal"):
        _train(X, y, k, d, learning_rate="optimal", l2=0.0)


def test_compiled_shuffle_is_a_seeded_uniform_permutation():
    from csoftmax._dispatch import kernels

    rows = np.arange(1000, dtype=np.int64)
    a, b, c = rows.copy(), rows.copy(), rows.copy()
    kernels.shuffle_rows(a, 12345)
    kernels.shuffle_rows(b, 12345)
    kernels.shuffle_rows(c, 54321)
    np.testing.assert_array_equal(np.sort(a), rows)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, rows)
    # Where each of 5 items lands over many shuffles: uniform (chi-square,
    # 24 degrees of freedom; 80 is far beyond the 1e-6 quantile).
    counts = np.zeros((5, 5))
    small = np.arange(5, dtype=np.int64)
    for seed in range(20000):
        order = small.copy()
        kernels.shuffle_rows(order, seed)
        counts[order, np.arange(5)] += 1
    expected = 20000 / 5
    assert ((counts - expected) ** 2 / expected).sum() < 80
    empty = np.empty(0, dtype=np.int64)
    kernels.shuffle_rows(empty, 1)
