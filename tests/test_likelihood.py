"""log_likelihood, log_likelihood_gradient and loss_and_gradient against the NumPy reference."""

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
    ref_gradient_scale,
    ref_log_likelihood,
    ref_log_likelihood_gradient,
    ref_loss_and_gradient,
    soft_targets,
)

DTYPES = (np.float32, np.float64)
SIZES = (1, 63, 65, 5000)
THREADS = (1, 2, 3)
K, D = 5, 7


def make_problem(n, dtype=np.float64, layout="C", with_b=True, with_w=False, targets="labels", k=K, d=D, seed=0):
    """A random problem; X in ``dtype`` and ``layout``, everything else float64."""
    rng = np.random.default_rng([seed, n, k, d])
    X = rng.normal(size=(n, d))
    W = rng.normal(scale=0.6, size=(k, d))
    b = rng.normal(size=k) if with_b else None
    if targets == "labels":
        y = rng.integers(0, k, n)
    else:
        y = soft_targets(rng, n, k)
    w = None
    if with_w:
        w = rng.uniform(0.1, 2.0, n)
        if n >= 4:
            w[1] = 0.0
            w[-1] = 0.0
    X = make_layout(X.astype(dtype), layout)
    return W, X, y, b, w


def reference_inputs(W, X, b, w, dtype):
    """What the package computes on: W, b, weights rounded to X's dtype, X widened."""
    return cast_through(W, dtype), np.asarray(X, dtype=np.float64), cast_through(b, dtype), cast_through(w, dtype)


@pytest.mark.parametrize("use_out", [False, True], ids=["alloc", "out"])
@pytest.mark.parametrize("targets", ["labels", "soft"])
@pytest.mark.parametrize("with_w", [False, True], ids=["now", "w"])
@pytest.mark.parametrize("with_b", [False, True], ids=["nob", "b"])
@pytest.mark.parametrize("n_threads", THREADS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_matches_reference(dtype, n, layout, n_threads, with_b, with_w, targets, use_out):
    W, X, y, b, w = make_problem(n, dtype, layout, with_b, with_w, targets)
    Wr, Xr, br, wr = reference_inputs(W, X, b, w, dtype)
    scale_W, scale_b = ref_gradient_scale(Wr, Xr, y, br, wr)

    # log_likelihood
    L = csoftmax.log_likelihood(W, X, y, b, sample_weight=w, n_threads=n_threads)
    assert type(L) is float
    assert L <= 0.0
    assert_close(L, ref_log_likelihood(Wr, Xr, y, br, wr), dtype, err_msg="log_likelihood")

    # log_likelihood_gradient
    out = np.full((K, D), np.nan, dtype=dtype) if use_out else None
    G = csoftmax.log_likelihood_gradient(W, X, y, b, sample_weight=w, out=out, n_threads=n_threads)
    if use_out:
        assert G is out
    assert G.dtype == dtype and G.shape == (K, D) and G.flags.c_contiguous
    gW_ref, _ = ref_log_likelihood_gradient(Wr, Xr, y, br, wr)
    assert_close(G, gW_ref, dtype, scale=scale_W, err_msg="log_likelihood_gradient")

    # loss_and_gradient, both reductions, with and without an L2 penalty
    S = float(np.sum(wr)) if wr is not None else float(n)
    for reduction, l2, divisor in (("mean", 0.0, S), ("sum", 0.3, 1.0), ("mean", 1.5, S)):
        gW_out = np.full((K, D), np.nan, dtype=dtype) if use_out else None
        gb_out = np.full(K, np.nan, dtype=dtype) if (use_out and with_b) else None
        loss, gW, gb = csoftmax.loss_and_gradient(
            W, X, y, b, sample_weight=w, l2=l2, reduction=reduction, n_threads=n_threads,
            grad_W_out=gW_out, grad_b_out=gb_out,
        )
        assert type(loss) is float
        assert loss >= 0.0
        ref_loss, ref_gW, ref_gb = ref_loss_and_gradient(Wr, Xr, y, br, wr, l2=l2, reduction=reduction)
        assert_close(loss, ref_loss, dtype, err_msg=f"loss ({reduction}, l2={l2})")
        assert gW.dtype == dtype and gW.shape == (K, D)
        assert_close(gW, ref_gW, dtype, scale=scale_W / divisor + l2 * np.abs(Wr), err_msg=f"grad_W ({reduction})")
        if use_out:
            assert gW is gW_out
        if with_b:
            assert gb.dtype == dtype and gb.shape == (K,)
            assert_close(gb, ref_gb, dtype, scale=scale_b / divisor, err_msg=f"grad_b ({reduction})")
            if use_out:
                assert gb is gb_out
        else:
            assert gb is None


@pytest.mark.parametrize(
    "n, k, d",
    [(5000, 3, 1), (3000, 1, 4), (2100, 2, 30), (700, 40, 100), (4500, 12, 3), (130, 300, 2), (2049, 4, 4)],
)
@pytest.mark.parametrize("targets", ["labels", "soft"])
def test_other_shapes(n, k, d, targets):
    W, X, y, b, w = make_problem(n, with_w=True, targets=targets, k=k, d=d, seed=7)
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=0.1, n_threads=2)
    ref_loss, ref_gW, ref_gb = ref_loss_and_gradient(W, X, y, b, w, l2=0.1)
    sW, sb = ref_gradient_scale(W, X, y, b, w)
    S = w.sum()
    assert_close(loss, ref_loss, np.float64)
    assert_close(gW, ref_gW, np.float64, scale=sW / S + 0.1 * np.abs(W))
    assert_close(gb, ref_gb, np.float64, scale=sb / S)
    L = csoftmax.log_likelihood(W, X, y, b, sample_weight=w)
    assert_close(L, ref_log_likelihood(W, X, y, b, w), np.float64)


def test_non_contiguous_parameters_and_targets():
    """W, b, y, Y and sample_weight in unusual layouts give the contiguous results."""
    n = 3000
    W, X, y, b, w = make_problem(n, with_w=True)
    Y = soft_targets(np.random.default_rng(1), n, K)
    W_odd = np.asfortranarray(W)
    W_neg = np.ascontiguousarray(W[::-1, ::-1])[::-1, ::-1]
    b_odd = np.repeat(b, 3)[::3]
    y_odd = np.repeat(y, 2)[::2]
    Y_odd = np.asfortranarray(Y)
    Y_neg = np.ascontiguousarray(Y[::-1])[::-1]
    w_odd = np.repeat(w, 2)[::2]
    for Wx in (W_odd, W_neg):
        for yy, yy_odd in ((y, y_odd), (Y, Y_odd), (Y, Y_neg)):
            got = csoftmax.loss_and_gradient(Wx, X, yy_odd, b_odd, sample_weight=w_odd, n_threads=2)
            expected = csoftmax.loss_and_gradient(W, X, yy, b, sample_weight=w, n_threads=2)
            assert got[0] == expected[0]
            np.testing.assert_array_equal(got[1], expected[1])
            np.testing.assert_array_equal(got[2], expected[2])


def test_mean_is_sum_divided_by_total_weight():
    W, X, y, b, w = make_problem(2500, with_w=True)
    loss_mean, gW_mean, gb_mean = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w)
    loss_sum, gW_sum, gb_sum = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, reduction="sum")
    np.testing.assert_allclose(loss_sum / w.sum(), loss_mean, rtol=1e-13)
    np.testing.assert_allclose(gW_sum / w.sum(), gW_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gb_sum / w.sum(), gb_mean, rtol=1e-12, atol=1e-15)
    L = csoftmax.log_likelihood(W, X, y, b, sample_weight=w)
    np.testing.assert_allclose(loss_sum, -L, rtol=1e-13)
    G = csoftmax.log_likelihood_gradient(W, X, y, b, sample_weight=w)
    np.testing.assert_allclose(gW_sum, -G, rtol=1e-13, atol=1e-15)


def test_l2_penalises_W_only():
    W, X, y, b, _ = make_problem(400)
    l0, gW0, gb0 = csoftmax.loss_and_gradient(W, X, y, b)
    l1, gW1, gb1 = csoftmax.loss_and_gradient(W, X, y, b, l2=0.7)
    np.testing.assert_allclose(l1 - l0, 0.35 * np.sum(W**2), rtol=1e-12)
    np.testing.assert_allclose(gW1 - gW0, 0.7 * W, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(gb1, gb0)


def test_integer_weights_equal_repeated_rows():
    """A weight of m counts a row m times: compare with the data with rows repeated."""
    rng = np.random.default_rng(11)
    W, X, y, b, _ = make_problem(300)
    reps = rng.integers(0, 4, 300)
    Xr, yr = np.repeat(X, reps, axis=0), np.repeat(y, reps)
    for reduction in ("mean", "sum"):
        got = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=reps, reduction=reduction)
        expected = csoftmax.loss_and_gradient(W, Xr, yr, b, reduction=reduction)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(got[2], expected[2], rtol=1e-10, atol=1e-13)


def test_one_hot_targets_equal_labels():
    W, X, y, b, w = make_problem(3000, with_w=True)
    Y = np.eye(K)[y]
    np.testing.assert_allclose(
        csoftmax.log_likelihood(W, X, Y, b, sample_weight=w),
        csoftmax.log_likelihood(W, X, y, b, sample_weight=w),
        rtol=1e-13,
    )
    a = csoftmax.loss_and_gradient(W, X, Y, b, sample_weight=w, l2=0.2)
    e = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=0.2)
    np.testing.assert_allclose(a[0], e[0], rtol=1e-13)
    np.testing.assert_allclose(a[1], e[1], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(a[2], e[2], rtol=1e-11, atol=1e-14)


def test_soft_targets_scale_linearly():
    W, X, _, b, _ = make_problem(1000)
    Y = soft_targets(np.random.default_rng(2), 1000, K)
    L1 = csoftmax.log_likelihood(W, X, Y, b)
    L3 = csoftmax.log_likelihood(W, X, 3.0 * Y, b)
    np.testing.assert_allclose(L3, 3.0 * L1, rtol=1e-13)
    G1 = csoftmax.log_likelihood_gradient(W, X, Y, b)
    G3 = csoftmax.log_likelihood_gradient(W, X, 3.0 * Y, b)
    np.testing.assert_allclose(G3, 3.0 * G1, rtol=1e-12, atol=1e-13)
    # All-zero targets contribute nothing.
    Z = np.zeros((1000, K))
    assert csoftmax.log_likelihood(W, X, Z, b) == 0.0
    np.testing.assert_array_equal(csoftmax.log_likelihood_gradient(W, X, Z, b), 0.0)


def test_label_dtypes_equivalent():
    W, X, y, b, _ = make_problem(700, k=3)
    expected = csoftmax.loss_and_gradient(W, X, y, b)
    variants = [
        y.astype(np.int8), y.astype(np.int16), y.astype(np.int32), y.astype(np.uint8), y.astype(np.uint64),
        y.astype(">i8"), y.astype(np.float64), y.astype(np.float32), list(map(int, y)), y.tolist(),
        np.repeat(y, 3)[::3],
    ]
    for v in variants:
        got = csoftmax.loss_and_gradient(W, X, v, b)
        assert got[0] == expected[0], type(v)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_array_equal(got[2], expected[2])
    yb = (y > 0)
    got = csoftmax.log_likelihood(W, X, yb, b)
    assert got == csoftmax.log_likelihood(W, X, yb.astype(np.int64), b)


# ---------------------------------------------------------------------------
# Extreme logits, tiny and empty problems
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_extreme_logits_exact(dtype):
    W = np.array([[1e4], [0.0]])
    X = np.array([[1.0], [1.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Confidently right: loss 0 and zero gradient.
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, [0, 0], np.zeros(2))
        assert loss == 0.0
        np.testing.assert_array_equal(gW, 0.0)
        np.testing.assert_array_equal(gb, 0.0)
        assert csoftmax.log_likelihood(W, X, [0, 0]) == 0.0
        # Confidently wrong: loss = margin = 1e4, residual p - y = (1, -1).
        loss, gW, gb = csoftmax.loss_and_gradient(W, X, [1, 1], np.zeros(2))
        assert loss == 1e4
        np.testing.assert_array_equal(gW, [[1.0], [-1.0]])
        np.testing.assert_array_equal(gb, [1.0, -1.0])
        assert csoftmax.log_likelihood(W, X, [1, 1]) == -2e4
        np.testing.assert_array_equal(csoftmax.log_likelihood_gradient(W, X, [1, 1]), [[-2.0], [2.0]])
        # Mixed, summed: 1e4 + 0
        loss, _, _ = csoftmax.loss_and_gradient(W, X, [1, 0], reduction="sum")
        assert loss == 1e4
        # Soft targets: L = 0.7 * (-1e4) + 0.3 * 0 per row
        L = csoftmax.log_likelihood(W, X[:1], [[0.3, 0.7]])
        np.testing.assert_allclose(L, -7000.0, rtol=1e-15)
        # Intercepts at +-1e4 with a wrong label: margin 2e4
        loss, _, _ = csoftmax.loss_and_gradient(np.zeros((2, 1)), X, [1, 1], np.array([1e4, -1e4]))
        assert loss == 2e4


def test_extreme_logits_many_classes_match_reference():
    rng = np.random.default_rng(9)
    n, k, d = 3000, 6, 3
    X = rng.choice([-1.0, 0.0, 1.0], size=(n, d))
    W = rng.choice([-1e4, -3e3, 0.0, 5e3, 1e4], size=(k, d))
    b = rng.choice([-1e4, 0.0, 1e4], size=k)
    y = rng.integers(0, k, n)
    Y = soft_targets(rng, n, k)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for targets in (y, Y):
            loss, gW, gb = csoftmax.loss_and_gradient(W, X, targets, b, reduction="sum", n_threads=2)
            ref_loss, ref_gW, ref_gb = ref_loss_and_gradient(W, X, targets, b, reduction="sum")
            assert np.isfinite(loss) and loss >= 0
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
            sW, sb = ref_gradient_scale(W, X, targets, b)
            assert_close(gW, ref_gW, np.float64, scale=sW)
            assert_close(gb, ref_gb, np.float64, scale=sb)
            P = csoftmax.predict_proba(W, X, b)
            assert not np.isnan(P).any()


def test_huge_finite_logits():
    # Powers of two, so that logits (+-2**1000) and the margin (2**1001) are exact.
    W = np.array([[2.0**500], [-(2.0**500)]])
    X = np.array([[2.0**500]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert csoftmax.loss_and_gradient(W, X, [0])[0] == 0.0
        loss, gW, _ = csoftmax.loss_and_gradient(W, X, [1])
        assert loss == 2.0**1001
        np.testing.assert_array_equal(gW, [[2.0**500], [-(2.0**500)]])
        assert csoftmax.log_likelihood(W, X, [1]) == -(2.0**1001)
        np.testing.assert_array_equal(csoftmax.predict_proba(W, X), [[1.0, 0.0]])


def test_two_classes_match_logistic_regression():
    rng = np.random.default_rng(6)
    n = 4000
    X = rng.normal(size=(n, 3))
    W = rng.normal(size=(2, 3))
    b = rng.normal(size=2)
    y = rng.integers(0, 2, n)
    margin = (X @ (W[1] - W[0]) + (b[1] - b[0])) * np.where(y == 1, 1.0, -1.0)
    loss = csoftmax.loss_and_gradient(W, X, y, b, reduction="sum")[0]
    np.testing.assert_allclose(loss, np.sum(np.logaddexp(0.0, -margin)), rtol=1e-12)
    # dL/db_1 = sum (y - sigmoid(z1 - z0))
    G = csoftmax.loss_and_gradient(W, X, y, b, reduction="sum")[2]
    s = scipy.special.expit(X @ (W[1] - W[0]) + (b[1] - b[0]))
    np.testing.assert_allclose(G[1], np.sum(s - y), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(G[0], -G[1], rtol=1e-9, atol=1e-10)


def test_single_class_loss_is_zero():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(3000, 4))
    W = rng.normal(size=(1, 4))
    b = np.array([2.0])
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, np.zeros(3000, dtype=int), b, l2=0.5)
    np.testing.assert_allclose(loss, 0.25 * np.sum(W**2), rtol=1e-15)
    np.testing.assert_allclose(gW, 0.5 * W, rtol=1e-15)
    np.testing.assert_array_equal(gb, 0.0)
    Y = rng.random((3000, 1))
    assert csoftmax.log_likelihood(W, X, Y, b) == 0.0


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("targets", ["labels", "soft"])
def test_empty_input(dtype, targets):
    W = np.arange(6.0).reshape(2, 3)
    b = np.array([1.0, -1.0])
    X = np.empty((0, 3), dtype=dtype)
    y = np.empty(0, dtype=np.int64) if targets == "labels" else np.empty((0, 2))
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, reduction="sum")
    assert loss == 0.0 and type(loss) is float
    np.testing.assert_array_equal(gW, np.zeros((2, 3)))
    np.testing.assert_array_equal(gb, np.zeros(2))
    assert gW.dtype == dtype
    loss, gW, _ = csoftmax.loss_and_gradient(W, X, y, b, reduction="sum", l2=2.0)
    np.testing.assert_allclose(loss, np.sum(W**2), rtol=1e-7)
    np.testing.assert_allclose(gW, 2.0 * W, rtol=1e-7)
    assert csoftmax.log_likelihood(W, X, y, b) == 0.0
    np.testing.assert_array_equal(csoftmax.log_likelihood_gradient(W, X, y, b), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="reduction"):
        csoftmax.loss_and_gradient(W, X, y, b)
    with pytest.raises(ValueError, match="reduction"):
        csoftmax.loss_and_gradient(W, X, y, b, reduction="mean", sample_weight=np.empty(0))
