"""Fuzzing the public functions with hypothesis.

Random shapes, dtypes (float16/32/64, integers, bool, complex, object),
layouts (C, F, strided, negative and zero strides) and values (subnormals,
+-inf, NaN, +-1e308, huge and tiny magnitudes) for X, W, b, y, sample_weight,
Z, V and Vb.  Every call must do one of two things:

- raise ``ValueError`` or ``TypeError`` with a message that names an argument
  (or says that the logits overflowed), and must do so whenever an input
  breaks the documented contract (a dtype that is not real numbers, NaN or
  inf in X, W, b, V, Vb or the weights, a bad label or target, mismatched
  shapes): non-finite input never gives a silent NaN;
- or return finite results equal to the plain NumPy reference
  (``tests/reference.py``) within a bound derived from the dtype of the
  computation and the size of the terms, and it must return whenever the
  input is valid and its logits are far from the overflow threshold.

``CSOFTMAX_FUZZ_EXAMPLES`` sets the number of examples per test (default 60,
a few seconds in all); for a long run::

    CSOFTMAX_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz.py
"""

import os
import re
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import csoftmax  # noqa: E402
from reference import (  # noqa: E402
    make_layout,
    ref_hessian_product,
    ref_log_likelihood,
    ref_log_likelihood_gradient,
    ref_log_softmax,
    ref_logits,
    ref_logsumexp,
    ref_softmax,
)

# The reference and the error bounds overflow for extreme values (and then
# compare nothing); warnings from csoftmax itself are errors inside _run.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

EXAMPLES = int(os.environ.get("CSOFTMAX_FUZZ_EXAMPLES", "60"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# Dtypes the functions compute in, dtypes they also read, and dtypes they refuse.
FLOATS = ("float64", "float32")
READ = ("int64", "int32", "uint8", "bool")
REFUSED = ("float16", "complex128", "object")
SPECIALS = (np.nan, np.inf, -np.inf, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308, 1e-200, 1e200, 0.0,
            -0.0)
# Magnitudes of the bulk of the values: ordinary, subnormal, tiny, large, extreme.
SCALES = (1.0, 1.0, 3.0, 1e-310, 1e-200, 1e20, 1e150, 1e308)
ARG_NAMES = ("X", "W", "b", "y", "Z", "V", "Vb", "sample_weight")


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def _dtype(draw, valid_share=0.85):
    if draw(st.floats(0, 1)) < valid_share:
        return draw(st.sampled_from(FLOATS))
    return draw(st.sampled_from(READ + REFUSED))


@st.composite
def arrays(draw, shape, dtype=None, nonnegative=False):
    """An array of ``shape`` with a drawn dtype, magnitude, special values and layout."""
    dtype = dtype or _dtype(draw)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    with np.errstate(over="ignore"):
        values = rng.normal(size=shape) * draw(st.sampled_from(SCALES))
    if nonnegative:
        values = np.abs(values)
    size = int(np.prod(shape))
    if size:
        for _ in range(draw(st.integers(0, 2) if draw(st.floats(0, 1)) < 0.3 else st.just(0))):
            values.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from(SPECIALS))
    if dtype in ("int64", "int32", "uint8"):
        values = rng.integers(0 if dtype == "uint8" else -3, 4, size=shape)
    elif dtype == "bool":
        values = rng.random(shape) < 0.5
    with np.errstate(all="ignore"):
        arr = values.astype(dtype)
    if len(shape) == 2:
        return make_layout(arr, draw(st.sampled_from(("C", "F", "strided", "negative", "broadcast_rows",
                                                       "broadcast_cols"))))
    if len(shape) == 1 and size > 1:
        kind = draw(st.sampled_from(("C", "negative", "strided", "broadcast")))
        if kind == "negative":
            return np.ascontiguousarray(arr[::-1])[::-1]
        if kind == "strided":
            big = np.zeros(2 * size, dtype=arr.dtype)
            big[::2] = arr
            return big[::2]
        if kind == "broadcast":
            return np.broadcast_to(arr[:1], shape)
    return arr


@st.composite
def model_problems(draw):
    """(W, X, b, y, sample_weight) with occasional shape mismatches and bad labels or targets."""
    n = draw(st.integers(0, 9))
    d = draw(st.integers(0, 5))
    k = draw(st.integers(1, 5))
    mismatch = draw(st.sampled_from([None] * 12 + ["W", "b", "y", "sample_weight"]))
    X = draw(arrays((n, d)))
    W = draw(arrays((k, d + (mismatch == "W"))))
    b = draw(st.none() | arrays((k + (mismatch == "b"),)))
    n_y = n + (mismatch == "y")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    form = draw(st.sampled_from(["labels"] * 4 + ["float-labels", "targets", "bad-label", "bad-target"]))
    if form in ("labels", "bad-label", "float-labels"):
        y = rng.integers(0, k, n_y)
        if form == "float-labels":
            y = y.astype(draw(st.sampled_from(["float64", "float32"])))
        if form == "bad-label" and n_y:
            y = y.astype(np.float64)
            y[draw(st.integers(0, n_y - 1))] = draw(st.sampled_from([-1, k, k + 7, 0.5, np.nan, np.inf, 1e30]))
    else:
        y = draw(arrays((n_y, k), dtype=draw(st.sampled_from(FLOATS)), nonnegative=True))
        if form == "bad-target" and n_y:
            y = np.array(y)
            y[draw(st.integers(0, n_y - 1)), draw(st.integers(0, k - 1))] = draw(st.sampled_from([-0.5, np.nan,
                                                                                                np.inf]))
    w = None
    if draw(st.booleans()):
        w = draw(arrays((n + (mismatch == "sample_weight"),), dtype="float64", nonnegative=draw(st.booleans())))
    return W, X, b, y, w


# ---------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------


class Refused(Exception):
    """The oracle's verdict that a call must raise (the message says why)."""


def _compute_dtype(X, W):
    """The float dtype csoftmax computes in for this X and W (see README: Input kinds)."""
    if X.dtype in (np.float32, np.float64):
        return X.dtype
    if X.dtype in (np.uint8, np.bool_):
        return np.dtype(np.float32) if W.dtype == np.float32 else np.dtype(np.float64)
    return np.dtype(np.float64)


def _readable(arr, name):
    if arr.dtype.kind not in "biuf" or arr.dtype == np.float16:
        raise Refused(f"{name} has dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise Refused(f"{name} has NaN or inf")
    return arr


def _cast(arr, dtype, name):
    """``arr`` rounded to the computation dtype; values overflowing it are refused."""
    with np.errstate(over="ignore"):
        out = np.asarray(arr).astype(dtype)
    if not np.isfinite(out).all():
        raise Refused(f"{name} overflows {dtype}")
    return out.astype(np.float64)


def _checked_model(W, X, b, y=None, w=None, reduction=None, V=None, Vb=None, l2=0.0):
    """The float64 inputs the reference sees (rounded to the computation dtype),
    or :class:`Refused` if the documented contract makes the call an error."""
    _readable(X, "X")
    _readable(W, "W")
    dtype = _compute_dtype(X, W)
    if W.shape[1] != X.shape[1]:
        raise Refused("W and X disagree on D")
    Xr, Wr = _cast(X, dtype, "X"), _cast(W, dtype, "W")
    br = None
    if b is not None:
        _readable(b, "b")
        if b.shape != (W.shape[0],):
            raise Refused("b has the wrong length")
        br = _cast(b, dtype, "b")
    out = {"W": Wr, "X": Xr, "b": br, "dtype": dtype, "l2": l2}
    if V is not None:
        _readable(V, "V")
        if V.shape != W.shape:
            raise Refused("V has the wrong shape")
        out["V"] = _cast(V, dtype, "V")
        if Vb is not None and b is None:
            raise Refused("Vb without b")
        if Vb is not None:
            _readable(Vb, "Vb")
            if Vb.shape != (W.shape[0],):
                raise Refused("Vb has the wrong length")
            out["Vb"] = _cast(Vb, dtype, "Vb")
    n, k = X.shape[0], W.shape[0]
    if y is not None:
        if y.ndim == 1:
            if y.shape[0] != n:
                raise Refused("y has the wrong length")
            if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.floor(y)).all()):
                raise Refused("non-integral label")
            if n and (y.min() < 0 or y.max() >= k):
                raise Refused("label out of range")
            out["y"] = y.astype(np.int64)
        else:
            if y.shape != (n, k):
                raise Refused("targets have the wrong shape")
            if not (np.isfinite(y).all() and (y >= 0).all()):
                raise Refused("bad target")
            out["y"] = y.astype(np.float64)
    if w is not None:
        if w.shape != (n,):
            raise Refused("sample_weight has the wrong length")
        if not (np.isfinite(w).all() and (w >= 0).all()):
            raise Refused("bad sample_weight")
    out["w"] = None if w is None else w.astype(np.float64)
    with np.errstate(over="ignore"):
        if reduction == "mean" and not (n if w is None else w.sum()) > 0:
            raise Refused("mean over a zero total weight")
        if reduction == "mean" and w is not None and not 1e-250 < w.sum() < 1e250:
            # A mean depends on the ratios of the weights only: keep the reference's sums in range.
            out["w"] = out["w"] / out["w"].max()
    return out


def _logit_error(inp):
    """Per-row bound on the rounding error of the logits (and the scale of the terms)."""
    eps = np.finfo(inp["dtype"]).eps
    with np.errstate(over="ignore", invalid="ignore"):
        A = ref_logits(np.abs(inp["W"]), np.abs(inp["X"]), None if inp["b"] is None else np.abs(inp["b"]))
    return A, 16 * eps * (1.0 + A.max(axis=1, initial=0.0)) * (1 + inp["X"].shape[1])


def _magnitude(inputs):
    """The largest size any logit, weighted sum or result of this problem can
    reach (in float64; inf if even that overflows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        A, _ = _logit_error(inputs)
        n, k = A.shape
        X_abs = np.abs(inputs["X"])
        y = inputs.get("y")
        mass = np.ones(n) if y is None or y.ndim == 1 else y.sum(axis=1)
        ws = mass * (1.0 if inputs["w"] is None else inputs["w"])
        sizes = [A.max(initial=0.0), np.sum(ws * (2 * A.max(axis=1, initial=0.0) + np.log(k) + 1)),
                 (ws @ X_abs).max(initial=0.0), np.abs(inputs["W"]).max(initial=0.0),
                 inputs["l2"] * np.sum(np.square(inputs["W"]))]
        if "V" in inputs:
            U = ref_logits(np.abs(inputs["V"]), X_abs, None if inputs.get("Vb") is None else np.abs(inputs["Vb"]))
            sizes += [U.max(initial=0.0), ((ws[:, None] * U).T @ X_abs).max(initial=0.0)]
    return max(sizes)


def _overflow_possible(inputs):
    """Sizes near the largest float of the computation: an overflow error is allowed."""
    size = _magnitude(inputs)
    return not np.isfinite(size) or size > np.finfo(inputs["dtype"]).max / 64

def _check_error(exc, refused):
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert message, "an exception without a message"
    names = "|".join(ARG_NAMES + ("out", "n_threads", "reduction", "l2"))
    assert re.search(rf"\b({names})\b", message) or "overflow" in message, message
    if refused is None:
        assert "overflow" in message, f"valid input refused: {message}"


def _close(got, expected, bound, what):
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, (what, got.shape, expected.shape)
    assert np.isfinite(got).all(), f"{what}: a silent NaN or inf in the result"
    if not np.isfinite(expected).all():
        return  # the float64 reference overflowed where the kernels did not: nothing to compare
    # A bound of inf * 0 (a zero term times an overflowing scale) allows nothing but equality.
    bound = np.nan_to_num(np.asarray(bound, dtype=np.float64), nan=0.0, posinf=np.inf)
    bad = ~((got == expected) | (np.abs(got - expected) <= bound))
    assert not bad.any(), (f"{what}: got {got[bad][:3]}, expected {expected[bad][:3]}, "
                           f"allowed {np.broadcast_to(bound, got.shape)[bad][:3]}")


def _relative_bound(got, expected, rel):
    """Bound on |got - expected| for probabilities with relative error ``rel``
    (a logit error d changes p by up to a factor exp(2 d)): when d is not small,
    any probability is possible."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(rel < 0.5, np.maximum(got, expected) * np.expm1(2 * np.minimum(rel, 0.5)), 1.0)


def _run(call, contract):
    """``call()`` against the contract: ``contract()`` returns the checked inputs or raises Refused."""
    try:
        inputs, refused = contract(), None
    except Refused as why:
        inputs, refused = None, why
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may escape either
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - every exception type is judged here
            if inputs is not None and "overflow" in str(exc) and "X" in inputs:
                assert _overflow_possible(inputs), f"overflow error for sizes up to {_magnitude(inputs)}"
                return None, None
            _check_error(exc, refused)
            return None, None
    assert refused is None, f"accepted although {refused}"
    return result, inputs


# ---------------------------------------------------------------------------
# Row-wise functions
# ---------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), n=st.integers(0, 9), k=st.integers(0, 6),
       func=st.sampled_from(["softmax", "log_softmax", "logsumexp"]), use_out=st.booleans())
def test_fuzz_rowwise(data, n, k, func, use_out):
    Z = data.draw(arrays((n, k)))
    dtype = Z.dtype if Z.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    out = None
    if use_out and Z.dtype.kind in "biuf" and Z.dtype != np.float16:
        out = np.empty((n, k) if func != "logsumexp" else (n,), dtype=dtype)

    def contract():
        if Z.dtype.kind not in "biuf" or Z.dtype == np.float16:
            raise Refused(f"Z has dtype {Z.dtype}")
        if k == 0:
            raise Refused("no columns")
        Zf = Z.astype(np.float64)
        if np.isnan(Zf).any() or np.isposinf(Zf).any():
            raise Refused("NaN or +inf in Z")
        if n and np.isneginf(Zf).all(axis=1).any():
            raise Refused("a row of -inf")
        return {"Z": Zf, "dtype": dtype}

    before = _snapshot(Z)
    result, inputs = _run(lambda: getattr(csoftmax, func)(Z, out=out), contract)
    _assert_unchanged((Z,), before)
    if inputs is None:
        return
    if out is not None:
        assert result is out
    assert result.dtype == dtype
    Zf = inputs["Z"]
    eps, out_eps = 16 * np.finfo(np.float64).eps, 4 * np.finfo(dtype).eps
    tiny = 2 * np.finfo(dtype).smallest_subnormal
    with np.errstate(invalid="ignore", over="ignore"):
        row_max = Zf.max(axis=1, keepdims=True, initial=-np.inf) if n else np.zeros((0, 1))
        spread = np.where(np.isfinite(Zf), np.abs(Zf - row_max), 0.0)
    if func == "softmax":
        expected = ref_softmax(Zf) if n else Zf
        _close(result, expected, _relative_bound(result, expected, out_eps + eps * (spread + k)) + tiny, func)
    elif func == "log_softmax":
        expected = ref_log_softmax(Zf) if n else Zf
        finite = np.isfinite(expected)
        # -inf where Z is -inf, and only there.
        np.testing.assert_array_equal(np.isneginf(result), ~finite)
        bound = out_eps * np.abs(expected) + eps * (np.abs(row_max) + spread + k)
        _close(np.where(finite, result, 0.0), np.where(finite, expected, 0.0), np.where(finite, bound, 0.0), func)
    else:
        expected = ref_logsumexp(Zf) if n else np.zeros(0)
        if dtype == np.float32 and n and np.abs(expected).max() > np.finfo(np.float32).max:
            return  # above float32's range: inf is the right float32 answer (see test_extremes.py)
        _close(result, expected, out_eps * np.abs(expected) + eps * (np.abs(row_max[:, 0]) + k), func)


# ---------------------------------------------------------------------------
# Model functions
# ---------------------------------------------------------------------------


def _snapshot(*arrays_):
    return [None if a is None else np.array(a, copy=True) for a in arrays_]


def _assert_unchanged(arrays_, copies):
    for a, c in zip(arrays_, copies):
        if a is None:
            continue
        if a.dtype == object:  # NaN != NaN among Python floats: compare their reprs
            assert [repr(v) for v in a.flat] == [repr(v) for v in c.flat]
        else:
            np.testing.assert_array_equal(a, c)


@SETTINGS
@given(problem=model_problems(), func=st.sampled_from(["predict_proba", "predict"]))
def test_fuzz_prediction(problem, func):
    W, X, b, _, _ = problem
    copies = _snapshot(W, X, b)
    result, inputs = _run(lambda: getattr(csoftmax, func)(W, X, b), lambda: _checked_model(W, X, b))
    _assert_unchanged((W, X, b), copies)
    if inputs is None:
        return
    A, err = _logit_error(inputs)
    Z = ref_logits(inputs["W"], inputs["X"], inputs["b"])
    if func == "predict_proba":
        assert result.dtype == inputs["dtype"]
        P = ref_softmax(Z) if len(Z) else Z
        out_eps = 4 * np.finfo(inputs["dtype"]).eps
        tiny = 2 * np.finfo(inputs["dtype"]).smallest_subnormal
        _close(result, P, _relative_bound(result, P, out_eps + 4 * err[:, None]) + tiny, func)
    else:
        assert result.dtype == np.int64 and result.shape == (X.shape[0],)
        if len(Z):
            # The predicted class is a most probable one, up to the logits' rounding
            # (where the reference's own sums overflow, the bound says nothing).
            chosen = Z[np.arange(len(Z)), result]
            with np.errstate(invalid="ignore"):
                bound = Z.max(axis=1) - 2 * err
            checkable = np.isfinite(bound)
            assert (chosen[checkable] >= bound[checkable]).all()


def _probability_error(P, err):
    """Bound on the error of the probabilities ``P`` for logit errors ``err`` per
    row: relative while the logits are accurate, anything in [0, 1] otherwise."""
    small = (err < 0.5)[:, None]
    return np.where(small, P * np.expm1(4 * np.minimum(err, 0.5))[:, None], 1.0)


def _likelihood_bounds(inputs):
    """Bounds on the errors of L and of dL/dW, dL/db (before division by S)."""
    A, err = _logit_error(inputs)
    n, k = inputs["X"].shape[0], inputs["W"].shape[0]
    y = inputs["y"]
    mass = np.ones(n) if y.ndim == 1 else y.sum(axis=1)
    w = np.ones(n) if inputs["w"] is None else inputs["w"]
    eps = 64 * np.finfo(np.float64).eps
    out_eps = 4 * np.finfo(inputs["dtype"]).eps
    Z = ref_logits(inputs["W"], inputs["X"], inputs["b"])
    logp = np.abs(ref_log_softmax(Z)) if n else Z
    Y = np.zeros((n, k)) if y.ndim == 1 else y
    if y.ndim == 1:
        Y[np.arange(n), y] = 1.0
    L_bound = float(np.sum(w * mass * 2 * err) + eps * np.sum(w[:, None] * np.where(Y != 0, Y * logp, 0.0)))
    P = ref_softmax(Z) if n else Z
    R_abs = w[:, None] * (Y + mass[:, None] * P)
    dR = w[:, None] * mass[:, None] * _probability_error(P, err)
    G_bound = (dR + eps * R_abs).T @ np.abs(inputs["X"])
    gb_bound = (dR + eps * R_abs).sum(axis=0)
    # Subnormal weights make the reference's own terms lose digits, and
    # results below the output dtype's range are flushed towards 0.
    sub = _subnormal_slack(n, k) + np.finfo(inputs["dtype"]).smallest_subnormal
    return L_bound + sub, G_bound + sub * (1 + np.abs(inputs["X"]).max(initial=0.0)), gb_bound + sub, out_eps


def _subnormal_slack(n, k):
    """The absolute error of n * k terms computed among subnormal numbers."""
    return 8 * np.finfo(np.float64).smallest_subnormal * (n * k + 1)


@SETTINGS
@given(problem=model_problems(), func=st.sampled_from(["log_likelihood", "log_likelihood_gradient"]))
def test_fuzz_likelihood(problem, func):
    W, X, b, y, w = problem
    copies = _snapshot(W, X, b, y, w)
    result, inputs = _run(lambda: getattr(csoftmax, func)(W, X, y, b, sample_weight=w),
                          lambda: _checked_model(W, X, b, y, w))
    _assert_unchanged((W, X, b, y, w), copies)
    if inputs is None:
        return
    L_bound, G_bound, _, out_eps = _likelihood_bounds(inputs)
    if func == "log_likelihood":
        assert isinstance(result, float)
        expected = ref_log_likelihood(inputs["W"], inputs["X"], inputs["y"], inputs["b"], inputs["w"])
        _close(result, expected, L_bound + 1e-300, func)
        assert result <= 0.0
    else:
        assert result.dtype == inputs["dtype"]
        G, _ = ref_log_likelihood_gradient(inputs["W"], inputs["X"], inputs["y"], inputs["b"], inputs["w"])
        _close(result, G, G_bound + out_eps * np.abs(G) + 1e-300, func)


@SETTINGS
@given(problem=model_problems(), reduction=st.sampled_from(["mean", "sum"]),
       l2=st.sampled_from([0.0, 0.5]), use_out=st.booleans())
def test_fuzz_loss_and_gradient(problem, reduction, l2, use_out):
    W, X, b, y, w = problem
    copies = _snapshot(W, X, b, y, w)
    outs = {}
    if use_out and X.dtype in (np.float32, np.float64):
        outs["grad_W_out"] = np.empty(W.shape, X.dtype)
        if b is not None:
            outs["grad_b_out"] = np.empty(b.shape, X.dtype)

    def call():
        return csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=l2, reduction=reduction, **outs)

    result, inputs = _run(call, lambda: _checked_model(W, X, b, y, w, reduction, l2=l2))
    _assert_unchanged((W, X, b, y, w), copies)
    if inputs is None:
        return
    loss, gW, gb = result
    n = inputs["X"].shape[0]
    S = (n if inputs["w"] is None else inputs["w"].sum()) if reduction == "mean" else 1.0
    L_bound, G_bound, gb_bound, out_eps = _likelihood_bounds(inputs)
    Wr = inputs["W"]
    L = ref_log_likelihood(Wr, inputs["X"], inputs["y"], inputs["b"], inputs["w"])
    G, g = ref_log_likelihood_gradient(Wr, inputs["X"], inputs["y"], inputs["b"], inputs["w"])
    penalty = 0.5 * l2 * float(np.sum(Wr * Wr))
    expected_loss = -L / S + penalty
    eps = 64 * np.finfo(np.float64).eps
    _close(loss, expected_loss, L_bound / S + eps * (abs(L) / S + penalty) + 1e-300, "loss")
    assert loss >= 0.0
    expected_gW = -G / S + l2 * Wr
    _close(gW, expected_gW, (G_bound / S + eps * l2 * np.abs(Wr)) * (1 + out_eps) + out_eps * np.abs(expected_gW)
           + 1e-300, "grad_W")
    if b is None:
        assert gb is None
    else:
        _close(gb, -g / S, gb_bound / S + out_eps * np.abs(g / S) + 1e-300, "grad_b")
    if "grad_W_out" in outs:
        assert gW is outs["grad_W_out"]


@SETTINGS
@given(problem=model_problems(), data=st.data(), reduction=st.sampled_from(["mean", "sum"]),
       l2=st.sampled_from([0.0, 0.5]), with_y=st.booleans())
def test_fuzz_hessian_product(problem, data, reduction, l2, with_y):
    W, X, b, y, w = problem
    V = data.draw(arrays(W.shape))
    Vb = None if b is None else data.draw(st.none() | arrays(b.shape))
    y = y if with_y else None
    copies = _snapshot(W, X, b, y, w, V, Vb)

    def call():
        return csoftmax.hessian_product(W, X, V, b, Vb, y=y, sample_weight=w, l2=l2, reduction=reduction)

    result, inputs = _run(call, lambda: _checked_model(W, X, b, y, w, reduction, V, Vb, l2))
    _assert_unchanged((W, X, b, y, w, V, Vb), copies)
    if inputs is None:
        return
    HV_W, HV_b = result
    Vr, Vbr = inputs["V"], inputs.get("Vb")
    expected_W, expected_b = ref_hessian_product(inputs["W"], inputs["X"], Vr, inputs["b"], Vbr, inputs.get("y"),
                                                 inputs["w"], l2, reduction)
    # Bound: the probabilities' relative error (from the logits) times the size of each term.
    A, err = _logit_error(inputs)
    n = inputs["X"].shape[0]
    if not n:
        _close(HV_W, expected_W, 1e-300 + np.abs(expected_W) * 1e-15, "HV_W")
        return
    U_abs = ref_logits(np.abs(Vr), np.abs(inputs["X"]), None if Vbr is None else np.abs(Vbr))
    P = ref_softmax(ref_logits(inputs["W"], inputs["X"], inputs["b"]))
    s = np.ones(n) if inputs.get("y") is None or inputs["y"].ndim == 1 else inputs["y"].sum(axis=1)
    ws = (np.ones(n) if inputs["w"] is None else inputs["w"]) * s
    S = (n if inputs["w"] is None else inputs["w"].sum()) if reduction == "mean" else 1.0
    eps = 64 * np.finfo(np.float64).eps
    out_eps = 4 * np.finfo(inputs["dtype"]).eps
    T = ws[:, None] * (P * U_abs + P * (P * U_abs).sum(axis=1, keepdims=True))
    out_tiny = np.finfo(inputs["dtype"]).smallest_subnormal
    dT = np.where((err < 0.5)[:, None], T * (8 * np.minimum(err, 0.5)[:, None] + eps
                                             + 16 * np.finfo(inputs["dtype"]).eps),
                  2 * ws[:, None] * U_abs.max(axis=1, keepdims=True))
    dT += (1 + ws[:, None]) * _subnormal_slack(1, T.shape[1])  # subnormal V x + Vb, then weighted
    _close(HV_W, expected_W, dT.T @ np.abs(inputs["X"]) / S + out_eps * np.abs(expected_W) + eps * l2 * np.abs(Vr)
           + out_tiny, "HV_W")
    if HV_b is not None:
        _close(HV_b, expected_b, dT.sum(axis=0) / S + out_eps * np.abs(expected_b) + out_tiny, "HV_b")


# ---------------------------------------------------------------------------
# The atheris harness, in a bounded run
# ---------------------------------------------------------------------------


def test_atheris_harness_bounded_run(tmp_path):
    """``tests/fuzz/fuzz_api.py`` (libFuzzer via atheris) over 2000 inputs from a
    fixed seed; longer runs are documented in the harness and the README."""
    pytest.importorskip("atheris")
    import subprocess
    import sys

    harness = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz", "fuzz_api.py")
    done = subprocess.run([sys.executable, harness, "-runs=2000", "-seed=1"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Done 2000 runs" in done.stderr
