"""The training-loop call (mean, integer labels, no weights) has a compiled fast
path; everything it declines goes to the general path.  Both must agree
bitwise, and the fast path must decline every case it cannot take."""

import numpy as np
import pytest

import csoftmax
from csoftmax._dispatch import kernels


def _problem(rng, n=37, d=11, k=5, dtype=np.float64):
    X = rng.normal(size=(n, d)).astype(dtype)
    W = rng.normal(size=(k, d)).astype(dtype)
    b = rng.normal(size=k).astype(dtype)
    y = rng.integers(0, k, n)
    return W, X, y, b


def _general(W, X, y, b, l2=0.0):
    # Unit weights take the general path with the same arithmetic.
    return csoftmax.loss_and_gradient(W, X, y, b, sample_weight=np.ones(X.shape[0]), l2=l2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_b", [True, False])
@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fast_path_is_taken_and_equals_the_general_path(dtype, with_b, l2, n_threads, rng):
    W, X, y, b = _problem(rng, n=5000, dtype=dtype)
    b = b if with_b else None
    fast = kernels.loss_gradient_fast(X, W, b, y, l2, None, None, n_threads)
    assert fast is not None
    got = csoftmax.loss_and_gradient(W, X, y, b, l2=l2, n_threads=n_threads)
    expected = _general(W, X, y, b, l2)
    assert got[0] == expected[0] == fast[0]
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[1].dtype == dtype
    if with_b:
        np.testing.assert_array_equal(got[2], expected[2])
    else:
        assert got[2] is None


def test_fast_path_writes_the_out_buffers(rng):
    W, X, y, b = _problem(rng)
    gW, gb = np.empty_like(W), np.empty_like(b)
    loss, rW, rb = csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=gW, grad_b_out=gb)
    assert rW is gW and rb is gb
    expected = _general(W, X, y, b)
    assert loss == expected[0]
    np.testing.assert_array_equal(gW, expected[1])
    np.testing.assert_array_equal(gb, expected[2])


@pytest.mark.parametrize("layout", ["column-strided", "negative strides", "F-ordered X", "broadcast rows"])
def test_fast_path_takes_any_element_strides_of_x(layout, rng):
    W, X, y, b = _problem(rng, d=22)
    X = {
        "column-strided": X[:, ::2],
        "negative strides": X[::-1, ::-2],
        "F-ordered X": np.asfortranarray(X[:, :11]),
        "broadcast rows": np.broadcast_to(X[0, :11], (X.shape[0], 11)),
    }[layout]
    W = np.ascontiguousarray(W[:, :11])
    fast = kernels.loss_gradient_fast(X, W, b, y, 0.0, None, None, 1)
    assert fast is not None
    expected = _general(W, np.ascontiguousarray(X), y, b)
    assert fast[0] == expected[0]
    np.testing.assert_array_equal(fast[1], expected[1])


class _Subclass(np.ndarray):
    pass


def _valid_but_declined(rng):
    W, X, y, b = _problem(rng)
    return {
        "big-endian X": (W, X.astype(X.dtype.newbyteorder(">")), y, b),
        "F-ordered W": (np.asfortranarray(W), X, y, b),
        "int32 y": (W, X, y.astype(np.int32), b),
        "float32 W with float64 X": (W.astype(np.float32), X, y, b),
        "list X": (W, X.tolist(), y, b),
        "subclass X": (W, X.view(_Subclass), y, b),
        "uint8 X": (W, (X > 0).astype(np.uint8), y, b),
    }


@pytest.mark.parametrize("name", list(_valid_but_declined(np.random.default_rng(0))))
def test_valid_calls_the_fast_path_declines_go_to_the_general_path(name, rng):
    W, X, y, b = _valid_but_declined(rng)[name]
    assert kernels.loss_gradient_fast(X, W, b, y, 0.0, None, None, 1) is None
    got = csoftmax.loss_and_gradient(W, X, y, b)
    expected = csoftmax.loss_and_gradient(
        np.asarray(W, dtype=np.float64), np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64), b
    )
    rtol = 1e-6 if np.asarray(W).dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[0], expected[0], rtol=rtol)
    np.testing.assert_allclose(got[1], expected[1], rtol=rtol, atol=rtol)


def _invalid(rng):
    W, X, y, b = _problem(rng)
    gW, gb = np.empty_like(W), np.empty_like(b)
    read_only = np.empty_like(W)
    read_only.flags.writeable = False
    nan_X = X.copy()
    nan_X[3, 2] = np.nan
    return {
        "grad_W_out": (W, X, y, b, X[:5, :], None),             # aliases X
        "grad_b_out": (W, X, y, b, gW, gW[0]),                  # inside grad_W_out
        "grad_W_out ": (W, X, y, b, read_only, None),           # read-only
        "grad_b_out ": (W, X, y, None, None, gb),               # no intercept
        "y": (W, X, np.full_like(y, 7), b, None, None),         # labels >= K
        "X": (W, nan_X, y, b, None, None),                      # NaN
    }


@pytest.mark.parametrize("name", list(_invalid(np.random.default_rng(0))))
def test_invalid_calls_are_declined_and_raise_naming_the_argument(name, rng):
    W, X, y, b, gW, gb = _invalid(rng)[name]
    X_before = X.copy()
    assert kernels.loss_gradient_fast(X, W, b, y, 0.0, gW, gb, 1) is None
    with pytest.raises(ValueError, match=name.strip()):
        csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=gW, grad_b_out=gb)
    np.testing.assert_array_equal(X, X_before)
