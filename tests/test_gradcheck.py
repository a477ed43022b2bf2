import dataclasses

import numpy as np
import pytest

import csoftmax
from csoftmax import GradientCheckResult, check_gradient


def _problem(rng, n=200, d=6, k=4, dtype=np.float64, scale=1.0):
    X = (rng.normal(size=(n, d)) * scale).astype(dtype)
    y = rng.integers(0, k, n)
    W = rng.normal(size=(k, d)) / scale
    b = rng.normal(size=k)
    sw = rng.uniform(0.2, 2.0, n)
    return W, X, y, b, sw


def _scaled_gradient(factor, block="W", row=None):
    """A loss_and_gradient whose W or b gradient is multiplied by ``factor`` (in one row, or all)."""

    def func(W, X, y, b=None, **kwargs):
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, **kwargs)
        target = gW if block == "W" else gb
        if row is None:
            target *= factor
        else:
            target[row] *= factor
        return loss, gW, gb

    return func


@pytest.mark.parametrize("with_b", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("l2", [0.0, 0.5])
def test_kernel_gradient_passes(rng, with_b, weighted, l2):
    W, X, y, b, sw = _problem(rng)
    result = check_gradient(W, X, y, b if with_b else None, sample_weight=sw if weighted else None, l2=l2)
    assert result.passed, str(result)
    assert result.n_checked == W.size + (b.size if with_b else 0)
    assert result.max_rel_error < 1e-7
    assert bool(result)


@pytest.mark.parametrize("scale", [1e-2, 1.0, 1e3])
def test_float32_kernel_gradient_passes(rng, scale):
    W, X, y, b, sw = _problem(rng, dtype=np.float32, scale=scale)
    result = check_gradient(W, X, y, b, sample_weight=sw, l2=0.1)
    assert result.passed, str(result)
    assert (result.rtol, result.atol) == (1e-3, 1e-5)


@pytest.mark.parametrize("scale", [1e-2, 1e3])
def test_badly_scaled_features_pass(rng, scale):
    # Steps follow the scale of each feature: no false alarm for tiny or huge X.
    W, X, y, b, sw = _problem(rng, scale=scale)
    assert check_gradient(W, X, y, b, sample_weight=sw, l2=0.1).passed


def test_soft_targets(rng):
    W, X, _, b, sw = _problem(rng)
    Y = rng.dirichlet(np.ones(W.shape[0]), size=X.shape[0]) * rng.uniform(0.5, 2.0, (X.shape[0], 1))
    assert check_gradient(W, X, Y, b, sample_weight=sw, l2=0.2).passed


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "wrong, where",
    [
        (_scaled_gradient(-1.0, "W", row=2), ("W", 2)),
        (_scaled_gradient(1.01, "W"), ("W",)),
        (_scaled_gradient(0.0, "b", row=1), ("b", 1)),
    ],
    ids=["sign-of-one-row", "one-percent-off", "zero-intercept-row"],
)
def test_wrong_gradient_is_caught(rng, dtype, wrong, where):
    W, X, y, b, sw = _problem(rng, dtype=dtype)
    result = check_gradient(W, X, y, b, sample_weight=sw, l2=0.1, grad_func=wrong)
    assert not result.passed
    assert not bool(result)
    assert result.worst_entry[: len(where)] == where
    assert "FAILED" in str(result)


def test_missing_penalty_and_mean_are_caught(rng):
    W, X, y, b, sw = _problem(rng)

    def no_penalty_gradient(W, X, y, b=None, *, l2=0.0, **kwargs):
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, l2=l2, **kwargs)
        return loss, gW - l2 * W, gb

    def sum_instead_of_mean(W, X, y, b=None, **kwargs):
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, **kwargs)
        _, gW_sum, gb_sum = csoftmax.loss_and_gradient(W, X, y, b, reduction="sum", **kwargs)
        return loss, gW_sum, gb_sum

    assert not check_gradient(W, X, y, b, sample_weight=sw, l2=0.3, grad_func=no_penalty_gradient).passed
    assert not check_gradient(W, X, y, b, sample_weight=sw, grad_func=sum_instead_of_mean).passed


def test_nan_gradient_fails(rng):
    W, X, y, b, _ = _problem(rng)

    def nan_gradient(W, X, y, b=None, **kwargs):
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, **kwargs)
        gW[0, 0] = np.nan
        return loss, gW, gb

    result = check_gradient(W, X, y, b, grad_func=nan_gradient)
    assert not result.passed
    assert result.worst_entry == ("W", 0, 0)


def test_random_subset(rng):
    W, X, y, b, _ = _problem(rng, d=30, k=8)
    first = check_gradient(W, X, y, b, n_entries=12, random_state=3)
    again = check_gradient(W, X, y, b, n_entries=12, random_state=3)
    assert first.n_checked == 12 and first.passed
    assert first == again
    assert check_gradient(W, X, y, b, n_entries=10_000).n_checked == W.size + b.size
    # A wrong row is still found among a subset that includes it.
    wrong = _scaled_gradient(2.0, "W")
    assert not check_gradient(W, X, y, b, n_entries=5, random_state=0, grad_func=wrong).passed


def test_inputs_are_not_modified(rng):
    W, X, y, b, sw = _problem(rng)
    copies = [a.copy() for a in (W, X, y, b, sw)]
    check_gradient(W, X, y, b, sample_weight=sw, l2=0.1)
    for original, copy in zip((W, X, y, b, sw), copies):
        np.testing.assert_array_equal(original, copy)


def test_result_object(rng):
    W, X, y, b, _ = _problem(rng, d=3, k=2)
    result = check_gradient(W, X, y, b)
    assert isinstance(result, GradientCheckResult)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.passed = False
    text = str(result)
    assert text.startswith("gradient check PASSED: 8 entries")
    assert "max abs error" in text and "max rel error" in text
    assert result.worst_entry[0] in ("W", "b")
    assert result.max_abs_error <= result.max_rel_error * max(abs(result.analytic), abs(result.numeric), 1.0) + 1e-12


def test_tolerances_and_step_can_be_set(rng):
    W, X, y, b, _ = _problem(rng)
    result = check_gradient(W, X, y, b, rtol=0.0, atol=0.0)
    assert not result.passed  # nothing agrees exactly
    assert check_gradient(W, X, y, b, eps=1e-3).eps == 1e-3
    with pytest.raises(ValueError, match="eps"):
        check_gradient(W, X, y, b, eps=0.0)
    with pytest.raises(ValueError, match="n_entries"):
        check_gradient(W, X, y, b, n_entries=0)


def test_bad_grad_func_shapes(rng):
    W, X, y, b, _ = _problem(rng)

    def transposed(W, X, y, b=None, **kwargs):
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, **kwargs)
        return loss, gW.T, gb

    with pytest.raises(ValueError, match="grad_W of shape"):
        check_gradient(W, X, y, b, grad_func=transposed)
