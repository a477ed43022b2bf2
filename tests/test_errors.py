"""Every error path: the right exception, a message naming the argument, no input modified.

The catalogue of malformed calls across the public API, by category:

- wrong types (None, strings, dicts, objects, ragged lists; lists of lists
  are converted, see ``test_lists_of_lists_are_converted``), ndim and shapes
  of X, W, b, Z, y, sample_weight, V, Vb;
- dtypes: complex, object, str, float16, longdouble, datetime64, timedelta64;
- labels negative, >= K, non-integral, NaN, inf, huge; targets negative,
  NaN, inf; weights negative, NaN, inf, of the wrong length, summing to 0
  with ``reduction="mean"``;
- out-buffers of the wrong shape, dtype, order or byte order, read-only,
  strided, not arrays, or overlapping an input;
- ``n_threads`` 0 or not an integer (huge values are capped, not errors:
  ``tests/test_threads.py::test_n_threads_values``), ``l2``, ``reduction``;
- NaN and infinity in X, W, b, Z, V, Vb;
- ``PackedBits`` and sparse oddities: bad words, counts and bit orders,
  out-of-range or negative column indices, inconsistent ``indptr``;
- estimator misuse: bad parameters, predicting before ``fit``, a different
  number of features, one class, bad ``partial_fit`` calls.
"""

import warnings

import numpy as np
import pytest

import csoftmax
from csoftmax import SoftmaxRegression
from csoftmax._estimator import NotFittedError

N, D, K = 70, 3, 4

MODEL_FUNCS = ("predict_proba", "predict", "log_likelihood", "log_likelihood_gradient", "loss_and_gradient")
FIT_FUNCS = ("log_likelihood", "log_likelihood_gradient", "loss_and_gradient")
ROW_FUNCS = ("softmax", "log_softmax", "logsumexp")


def data(seed=0):
    rng = np.random.default_rng(seed)
    return {
        # Positive X and labels avoiding class 0: the hardest case for spotting
        # a non-finite parameter from the results alone.
        "X": rng.uniform(0.5, 1.5, size=(N, D)),
        "W": rng.normal(size=(K, D)),
        "b": rng.normal(size=K),
        "y": rng.integers(1, K, N),
        "Y": rng.random((N, K)),
        "w": rng.uniform(0.5, 1.5, N),
        "Z": rng.normal(size=(N, K)),
    }


def call(name, W, X, y=None, b=None, **kwargs):
    func = getattr(csoftmax, name)
    if name in ("predict_proba", "predict"):
        kwargs.pop("sample_weight", None)
        return func(W, X, b, **kwargs)
    return func(W, X, y, b, **kwargs)


def _arrays(obj, prefix="arg"):
    """(label, array) pairs of every ndarray among the arguments (and inside
    sparse matrices and PackedBits)."""
    out = []
    if isinstance(obj, np.ndarray):
        out.append((prefix, obj))
    elif isinstance(obj, csoftmax.PackedBits):
        out.append((f"{prefix}.words", obj.words))
    elif hasattr(obj, "indptr") and hasattr(obj, "indices"):
        for part in ("data", "indices", "indptr"):
            out.append((f"{prefix}.{part}", getattr(obj, part)))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            out.extend(_arrays(value, f"{prefix}.{key}"))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            out.extend(_arrays(value, f"{prefix}[{i}]"))
    return out


def raises_unchanged(exc, match, func, *args, ignore=(), **kwargs):
    """Assert ``func(*args, **kwargs)`` raises ``exc`` matching ``match`` and modifies no input."""
    inputs = _arrays(list(args)) + _arrays({k: v for k, v in kwargs.items() if k not in ignore})
    before = [(label, arr.copy()) for label, arr in inputs]
    with pytest.raises(exc, match=match) as info:
        func(*args, **kwargs)
    for (label, arr), (_, copy) in zip(inputs, before):
        np.testing.assert_array_equal(arr, copy, err_msg=f"{label} was modified")
    return info


# ---------------------------------------------------------------------------
# Shapes and dtypes of X, W, b
# ---------------------------------------------------------------------------


def _model_cases():
    d = data()
    X, W, b = d["X"], d["W"], d["b"]
    return [
        ("X-1d", W, X[0], b, ValueError, r"\bX\b"),
        ("X-3d", W, X[None], b, ValueError, r"\bX\b"),
        ("X-0d", W, np.float64(1.0), b, ValueError, r"\bX\b"),
        ("X-complex", W, X.astype(complex), b, TypeError, r"\bX\b"),
        ("X-str", W, np.full((N, D), "a"), b, TypeError, r"\bX\b"),
        ("X-None", W, None, b, TypeError, r"\bX\b"),
        ("X-dict", W, {"a": 1}, b, TypeError, r"\bX\b"),
        ("X-object", W, np.array([[object()] * D] * N), b, TypeError, r"\bX\b"),
        ("X-ragged", W, [[1.0, 2.0], [3.0]], b, (TypeError, ValueError), r"\bX\b"),
        ("W-1d", W[0], X, b, ValueError, r"\bW\b"),
        ("W-3d", W[None], X, b, ValueError, r"\bW\b"),
        ("W-D-mismatch", W[:, :2], X, b, ValueError, r"\bW\b"),
        ("W-no-class", W[:0], X, None, ValueError, r"\bW\b"),
        ("W-complex", W.astype(complex), X, b, TypeError, r"\bW\b"),
        ("W-None", None, X, b, TypeError, r"\bW\b"),
        ("b-2d", W, X, b[None], ValueError, r"\bb\b"),
        ("b-K-mismatch", W, X, b[:3], ValueError, r"\bb\b"),
        ("b-scalar", W, X, np.float64(1.0), ValueError, r"\bb\b"),
        ("b-complex", W, X, b.astype(complex), TypeError, r"\bb\b"),
        ("b-str", W, X, "bias", TypeError, r"\bb\b"),
    ]


@pytest.mark.parametrize("func", MODEL_FUNCS)
@pytest.mark.parametrize("case", _model_cases(), ids=lambda c: c[0])
def test_bad_model_inputs(func, case):
    _, W, X, b, exc, match = case
    y = data()["y"]
    raises_unchanged(exc, match, call, func, W, X, y, b)


def test_sparse_Z_rejected_and_sparse_X_checked():
    # Sparse X is an input kind of the model functions (see test_input_kinds.py);
    # a sparse logit matrix is not.
    sparse = pytest.importorskip("scipy.sparse")
    d = data()
    raises_unchanged(TypeError, r"\bZ\b", csoftmax.softmax, sparse.csr_matrix(d["Z"]))
    bad = sparse.csr_matrix(d["X"])
    bad.indices[0] = d["X"].shape[1] + 3
    for func in MODEL_FUNCS:
        raises_unchanged(ValueError, r"\bX\b.*column index", call, func, d["W"], bad, d["y"], d["b"])


# ---------------------------------------------------------------------------
# Labels, targets, sample weights
# ---------------------------------------------------------------------------


def _target_cases():
    d = data()
    y, Y = d["y"], d["Y"]
    y_hi = y.copy()
    y_hi[37] = K
    y_neg = y.copy()
    y_neg[5] = -1
    y_frac = y.astype(float)
    y_frac[3] = 1.5
    y_nan = y.astype(float)
    y_nan[4] = np.nan
    y_inf = y.astype(float)
    y_inf[4] = np.inf
    y_huge = y.astype(float)
    y_huge[6] = 1e20
    y_u64 = y.astype(np.uint64)
    y_u64[7] = 2**63 + 5
    Y_neg = Y.copy()
    Y_neg[10, 2] = -0.1
    Y_nan = Y.copy()
    Y_nan[11, 1] = np.nan
    Y_inf = Y.copy()
    Y_inf[12, 0] = np.inf
    return [
        ("label-too-big", y_hi, ValueError, r"\by\b"),
        ("label-negative", y_neg, ValueError, r"\by\b"),
        ("label-int8-negative", y_neg.astype(np.int8), ValueError, r"\by\b"),
        ("label-non-integer", y_frac, ValueError, r"\by\b"),
        ("label-nan", y_nan, ValueError, r"\by\b"),
        ("label-inf", y_inf, ValueError, r"\by\b"),
        ("label-huge-float", y_huge, ValueError, r"\by\b"),
        ("label-huge-uint64", y_u64, ValueError, r"\by\b"),
        ("labels-wrong-length", y[:-1], ValueError, r"\by\b"),
        ("labels-too-long", np.append(y, 0), ValueError, r"\by\b"),
        ("labels-str", np.array(["a"] * N), TypeError, r"\by\b"),
        ("labels-complex", y.astype(complex), TypeError, r"\by\b"),
        ("labels-None-object", np.array([None] * N), TypeError, r"\by\b"),
        ("labels-3d", y[:, None, None], ValueError, r"\by\b"),
        ("targets-wrong-K", Y[:, :3], ValueError, r"\by\b"),
        ("targets-wrong-N", Y[:-1], ValueError, r"\by\b"),
        ("targets-negative", Y_neg, ValueError, r"\by\b"),
        ("targets-nan", Y_nan, ValueError, r"\by\b"),
        ("targets-inf", Y_inf, ValueError, r"\by\b"),
        ("targets-complex", Y.astype(complex), TypeError, r"\by\b"),
        ("y-None", None, TypeError, r"\by\b"),
    ]


@pytest.mark.parametrize("func", FIT_FUNCS)
@pytest.mark.parametrize("case", _target_cases(), ids=lambda c: c[0])
def test_bad_targets(func, case):
    _, y, exc, match = case
    d = data()
    raises_unchanged(exc, match, call, func, d["W"], d["X"], y, d["b"])


@pytest.mark.parametrize("n_threads", [1, 3])
def test_bad_label_in_a_late_partition(n_threads):
    """A bad label far into a large input (a partition other than the first) is found."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(9000, 3))
    y = rng.integers(0, K, 9000)
    y[8500] = K + 3
    W = rng.normal(size=(K, 3))
    for func in FIT_FUNCS:
        info = raises_unchanged(ValueError, r"\by\b", call, func, W, X, y, n_threads=n_threads)
        assert "8500" in str(info.value) or str(K + 3) in str(info.value)


def _weight_cases():
    w = data()["w"]
    w_neg = w.copy()
    w_neg[3] = -1.0
    w_nan = w.copy()
    w_nan[4] = np.nan
    w_inf = w.copy()
    w_inf[5] = np.inf
    return [
        ("negative", w_neg, ValueError),
        ("nan", w_nan, ValueError),
        ("inf", w_inf, ValueError),
        ("short", w[:-1], ValueError),
        ("2d", w[:, None], ValueError),
        ("complex", w.astype(complex), TypeError),
        ("str", np.array(["1"] * N), TypeError),
    ]


@pytest.mark.parametrize("func", FIT_FUNCS)
@pytest.mark.parametrize("case", _weight_cases(), ids=lambda c: c[0])
def test_bad_sample_weight(func, case):
    _, w, exc = case
    d = data()
    raises_unchanged(exc, r"sample_weight", call, func, d["W"], d["X"], d["y"], d["b"], sample_weight=w)


def test_mean_needs_positive_total_weight():
    d = data()
    raises_unchanged(
        ValueError, r"sample.weight", csoftmax.loss_and_gradient, d["W"], d["X"], d["y"], d["b"],
        sample_weight=np.zeros(N),
    )
    # With "sum" the same weights are fine and give 0.
    loss, gW, gb = csoftmax.loss_and_gradient(d["W"], d["X"], d["y"], d["b"], sample_weight=np.zeros(N), reduction="sum")
    assert loss == 0.0
    np.testing.assert_array_equal(gW, 0.0)
    np.testing.assert_array_equal(gb, 0.0)


@pytest.mark.parametrize("reduction", ["avg", "MEAN", None, "", 1, "none"])
def test_unknown_reduction(reduction):
    d = data()
    raises_unchanged(ValueError, r"reduction", csoftmax.loss_and_gradient, d["W"], d["X"], d["y"], reduction=reduction)


@pytest.mark.parametrize(
    "l2, exc",
    [(-1.0, ValueError), (np.nan, ValueError), (np.inf, ValueError), ("0.1", TypeError), (True, TypeError),
     (None, TypeError), (1j, TypeError), ([0.1], TypeError)],
)
def test_bad_l2(l2, exc):
    d = data()
    raises_unchanged(exc, r"\bl2\b", csoftmax.loss_and_gradient, d["W"], d["X"], d["y"], d["b"], l2=l2)


@pytest.mark.parametrize("func", MODEL_FUNCS + ROW_FUNCS)
@pytest.mark.parametrize(
    "n_threads, exc", [(0, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError), (False, TypeError),
                       (2.0, TypeError), ([2], TypeError)],
)
def test_bad_n_threads(func, n_threads, exc):
    d = data()
    if func in ROW_FUNCS:
        raises_unchanged(exc, r"n_threads", getattr(csoftmax, func), d["Z"], n_threads=n_threads)
    else:
        raises_unchanged(exc, r"n_threads", call, func, d["W"], d["X"], d["y"], d["b"], n_threads=n_threads)


# ---------------------------------------------------------------------------
# NaN and infinity in X, W, b
# ---------------------------------------------------------------------------

def _nonfinite_params():
    params = []
    for func in MODEL_FUNCS:
        for arg in ("X", "W", "b"):
            for value in (np.nan, np.inf, -np.inf):
                params.append(pytest.param(func, arg, value, id=f"{func}-{arg}-{value}"))
    return params


@pytest.mark.parametrize("func, arg, value", _nonfinite_params())
def test_nonfinite_inputs_rejected(func, arg, value):
    d = data()
    X, W, b = d["X"].copy(), d["W"].copy(), d["b"].copy()
    # In W and b: a class that is no row's label (see data()); in X: a middle entry.
    index = {"X": (N // 2, 1), "W": (0, 1), "b": (0,)}[arg]
    {"X": X, "W": W, "b": b}[arg][index] = value
    raises_unchanged(ValueError, rf"\b{arg}\b", call, func, W, X, d["y"], b)


@pytest.mark.parametrize("func", MODEL_FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 3])
def test_nan_in_X_late_row_of_large_input(func, dtype, n_threads):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(9000, 4)).astype(dtype)
    X[7777, 2] = np.nan
    W = rng.normal(size=(K, 4))
    y = rng.integers(0, K, 9000)
    raises_unchanged(ValueError, r"\bX\b", call, func, W, X, y, n_threads=n_threads)


@pytest.mark.parametrize("func", FIT_FUNCS)
def test_nan_in_X_hidden_by_zero_weight_or_zero_targets(func):
    """A NaN in X is an error even where the row's weight or targets are zero."""
    d = data()
    X = d["X"].copy()
    X[9, 1] = np.nan
    w = d["w"].copy()
    w[9] = 0.0
    raises_unchanged(ValueError, r"\bX\b", call, func, d["W"], X, d["y"], d["b"], sample_weight=w)
    Y = d["Y"].copy()
    Y[9] = 0.0
    raises_unchanged(ValueError, r"\bX\b", call, func, d["W"], X, Y, d["b"])


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_sample_weight_named(value):
    d = data()
    w = d["w"].copy()
    w[0] = value
    for func in FIT_FUNCS:
        raises_unchanged(ValueError, r"sample_weight", call, func, d["W"], d["X"], d["y"], d["b"], sample_weight=w)


def test_overflowing_logits_do_not_pass_silently():
    """Finite inputs whose logits overflow: an error, never a silent NaN/inf result."""
    X = np.full((3, 2), 1e200)
    W = np.array([[1e200, 1e200], [-1e200, 0.0]])
    for func in FIT_FUNCS + ("predict_proba",):
        try:
            result = call(func, W, X, [0, 1, 0])
        except ValueError:
            continue
        values = result if not isinstance(result, tuple) else [v for v in result if v is not None]
        assert all(np.all(np.isfinite(v)) for v in np.atleast_1d(values)), func


# ---------------------------------------------------------------------------
# Row-wise functions
# ---------------------------------------------------------------------------


def _z_cases():
    Z = data()["Z"]
    Z_nan = Z.copy()
    Z_nan[3, 1] = np.nan
    Z_inf = Z.copy()
    Z_inf[4, 0] = np.inf
    Z_allneg = Z.copy()
    Z_allneg[5] = -np.inf
    return [
        ("1d", Z[0], ValueError),
        ("3d", Z[None], ValueError),
        ("no-columns", Z[:, :0], ValueError),
        ("nan", Z_nan, ValueError),
        ("plus-inf", Z_inf, ValueError),
        ("row-all-minus-inf", Z_allneg, ValueError),
        ("complex", Z.astype(complex), TypeError),
        ("None", None, TypeError),
        ("str", "Z", TypeError),
    ]


@pytest.mark.parametrize("func", ROW_FUNCS)
@pytest.mark.parametrize("case", _z_cases(), ids=lambda c: c[0])
def test_bad_Z(func, case):
    _, Z, exc = case
    raises_unchanged(exc, r"\bZ\b", getattr(csoftmax, func), Z)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_nan_in_Z_late_row(n_threads):
    Z = np.random.default_rng(0).normal(size=(20000, 8))
    Z[19999, 7] = np.nan
    for func in ROW_FUNCS:
        raises_unchanged(ValueError, r"\bZ\b", getattr(csoftmax, func), Z, n_threads=n_threads)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bad_rows_counted(n_threads, dtype):
    # one NaN, one +inf and one all -inf row, in different chunks and lanes
    Z = np.random.default_rng(0).normal(size=(3001, 10)).astype(dtype)
    Z[5, 3] = np.nan
    Z[1234, 9] = np.inf
    Z[3000, :] = -np.inf
    for func in ROW_FUNCS:
        info = raises_unchanged(ValueError, r"\bZ\b", getattr(csoftmax, func), Z, n_threads=n_threads)
        assert "3 row(s)" in str(info.value) and "first: row 5" in str(info.value)


# ---------------------------------------------------------------------------
# Out-buffers
# ---------------------------------------------------------------------------


def _bad_out_buffers(shape, dtype):
    wrong_dtype = np.float32 if dtype == np.float64 else np.float64
    read_only = np.zeros(shape, dtype)
    read_only.setflags(write=False)
    big = np.zeros(tuple(2 * s for s in shape), dtype)
    strided = big[tuple(slice(None, None, 2) for _ in shape)]
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    unaligned = np.frombuffer(bytearray(size + 1), dtype, offset=1).reshape(shape)
    cases = [
        ("wrong-shape", np.zeros(tuple(s + 1 for s in shape), dtype), ValueError),
        ("wrong-dtype", np.zeros(shape, wrong_dtype), TypeError),
        ("int-dtype", np.zeros(shape, np.int64), TypeError),
        ("read-only", read_only, ValueError),
        ("strided", strided, ValueError),
        ("unaligned", unaligned, ValueError),
        ("list", np.zeros(shape, dtype).tolist(), TypeError),
        ("big-endian", np.zeros(shape, np.dtype(dtype).newbyteorder(">")), (TypeError, ValueError)),
    ]
    if len(shape) == 2:
        cases.append(("fortran", np.zeros(shape, dtype, order="F"), ValueError))
        cases.append(("flat", np.zeros(shape[0] * shape[1], dtype), ValueError))
    return cases


def _out_params():
    params = []
    for func, shape_of in (
        ("softmax", lambda: (N, K)),
        ("log_softmax", lambda: (N, K)),
        ("logsumexp", lambda: (N,)),
        ("predict_proba", lambda: (N, K)),
        ("log_likelihood_gradient", lambda: (K, D)),
        ("loss_and_gradient:grad_W_out", lambda: (K, D)),
        ("loss_and_gradient:grad_b_out", lambda: (K,)),
    ):
        for dtype in (np.float32, np.float64):
            for label, buf, exc in _bad_out_buffers(shape_of(), dtype):
                params.append(pytest.param(func, dtype, buf, exc, id=f"{func}-{np.dtype(dtype).name}-{label}"))
    return params


@pytest.mark.parametrize("target, dtype, buf, exc", _out_params())
def test_bad_out_buffer(target, dtype, buf, exc):
    d = data()
    X = d["X"].astype(dtype)
    func, _, kw = target.partition(":")
    kw = kw or "out"
    before = np.array(buf, copy=True)
    if func in ROW_FUNCS:
        raises_unchanged(exc, rf"\b{kw}\b", getattr(csoftmax, func), d["Z"].astype(dtype), out=buf)
    else:
        raises_unchanged(exc, rf"\b{kw}\b", call, func, d["W"], X, d["y"], d["b"], **{kw: buf})
    np.testing.assert_array_equal(np.asarray(buf), before)


def test_grad_b_out_without_b():
    d = data()
    raises_unchanged(
        ValueError, r"grad_b_out", csoftmax.loss_and_gradient, d["W"], d["X"], d["y"], grad_b_out=np.zeros(K)
    )


def test_out_overlapping_inputs():
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(50, 6))
    for func in ("softmax", "log_softmax"):
        raises_unchanged(ValueError, r"\bout\b", getattr(csoftmax, func), Z, out=Z)
        # Partial overlap: out is rows 10..34 of the array whose rows 0..24 are the input.
        raises_unchanged(ValueError, r"\bout\b", getattr(csoftmax, func), Z[:25], out=Z[10:35])
    base = rng.normal(size=(3, 6))
    Zt = base.T  # (6, 3) view; base[0] has the (6,) shape of logsumexp's out and overlaps Zt
    raises_unchanged(ValueError, r"\bout\b", csoftmax.logsumexp, Zt, out=base[0])

    # Model: X (N, D) with K == D, so that X itself or its rows fit the out shapes.
    n, d = 40, 4
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(d, d))
    b = rng.normal(size=d)
    y = rng.integers(0, d, n)
    Wc, bc = W.copy(), b.copy()
    with pytest.raises(ValueError, match=r"\bout\b"):
        csoftmax.predict_proba(W, X, b, out=X)
    with pytest.raises(ValueError, match=r"\bout\b"):
        csoftmax.predict_proba(X[:d], X[: d * 2], out=X[:8].reshape(8, 4))
    with pytest.raises(ValueError, match=r"\bout\b"):
        csoftmax.log_likelihood_gradient(W, X, y, b, out=W)
    with pytest.raises(ValueError, match=r"\bout\b"):
        csoftmax.log_likelihood_gradient(W, X, y, b, out=X[:d])
    with pytest.raises(ValueError, match=r"grad_W_out"):
        csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=W)
    with pytest.raises(ValueError, match=r"grad_W_out"):
        csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=X[5 : 5 + d])
    with pytest.raises(ValueError, match=r"grad_b_out"):
        csoftmax.loss_and_gradient(W, X, y, b, grad_b_out=b)
    with pytest.raises(ValueError, match=r"grad_b_out"):
        csoftmax.loss_and_gradient(W, X, y, b, grad_b_out=X[3])
    gW = np.zeros((d, d))
    with pytest.raises(ValueError, match=r"grad_(b|W)_out"):
        csoftmax.loss_and_gradient(W, X, y, b, grad_W_out=gW, grad_b_out=gW[1])
    Y = rng.random((n, d))
    with pytest.raises(ValueError, match=r"grad_W_out"):
        csoftmax.loss_and_gradient(W, X, Y, b, grad_W_out=Y[:d])
    w = rng.random(n)
    with pytest.raises(ValueError, match=r"grad_W_out"):
        csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, grad_W_out=w[: d * d].reshape(d, d))
    np.testing.assert_array_equal(W, Wc)
    np.testing.assert_array_equal(b, bc)


def test_gradient_out_overlapping_sample_weight():
    rng = np.random.default_rng(0)
    n, d, k = 20, 3, 2
    X = rng.random((n, d))
    W = rng.normal(size=(k, d))
    y = rng.integers(0, k, n)
    buf = np.ones(n)
    before = buf.copy()
    try:
        with pytest.raises(ValueError, match=r"\bout\b"):
            csoftmax.log_likelihood_gradient(W, X, y, sample_weight=buf, out=buf[: k * d].reshape(k, d))
    finally:
        np.testing.assert_array_equal(buf, before, err_msg="sample_weight was modified")


# ---------------------------------------------------------------------------
# Dtypes that are not plain real numbers, for every array argument
# ---------------------------------------------------------------------------

_BAD_DTYPES = ("complex128", "float16", "longdouble", "datetime64[s]", "timedelta64[s]", "object", "U1")


def _as_bad_dtype(a, dtype):
    if dtype == "object":
        return a.astype(object)
    if dtype == "U1":
        return np.full(a.shape, "1")
    if dtype.startswith(("datetime", "timedelta")):
        return a.astype(np.int64).astype(dtype)
    return a.astype(dtype)


def _dtype_params():
    params = []
    for dtype in _BAD_DTYPES:
        for arg in ("X", "W", "b", "y", "Y", "sample_weight", "Z", "V", "Vb"):
            if arg == "X" and dtype == "object":
                continue  # X-object is in _model_cases
            params.append(pytest.param(arg, dtype, id=f"{arg}-{dtype}"))
    return params


@pytest.mark.parametrize("arg, dtype", _dtype_params())
def test_bad_dtype(arg, dtype):
    d = data()
    y, Y = d["y"], d["Y"]
    if np.dtype(dtype).kind == "f" and arg == "y":
        y = y.astype(dtype)  # float labels of a dtype other than float32/float64
    if arg == "Z":
        raises_unchanged(TypeError, r"\bZ\b", csoftmax.softmax, _as_bad_dtype(d["Z"], dtype))
        return
    if arg in ("V", "Vb"):
        V, Vb = d["W"].copy(), d["b"].copy()
        bad = _as_bad_dtype(V if arg == "V" else Vb, dtype)
        V, Vb = (bad, Vb) if arg == "V" else (V, bad)
        raises_unchanged(TypeError, rf"\b{arg}\b", csoftmax.hessian_product, d["W"], d["X"], V, d["b"], Vb)
        return
    args = {"W": d["W"], "X": d["X"], "y": y, "b": d["b"], "sample_weight": None}
    name = {"Y": "y"}.get(arg, arg)
    source = {"Y": Y, "y": d["y"]}.get(arg, d.get(arg, d["w"]))
    args[name] = y if (arg == "y" and y.dtype != d["y"].dtype) else _as_bad_dtype(source, dtype)
    func = "loss_and_gradient" if arg in ("y", "Y", "sample_weight") else "predict_proba"
    raises_unchanged(TypeError, rf"\b{name}\b", call, func, args["W"], args["X"], args["y"], args["b"],
                     sample_weight=args["sample_weight"])


def test_lists_of_lists_are_converted():
    """Nested lists are array-likes: the same results as the arrays (not an error)."""
    d = data()
    W, X, y, b, w = d["W"], d["X"], d["y"], d["b"], d["w"]
    np.testing.assert_array_equal(csoftmax.softmax(d["Z"].tolist()), csoftmax.softmax(d["Z"]))
    np.testing.assert_array_equal(csoftmax.predict_proba(W.tolist(), X.tolist(), b.tolist()),
                                  csoftmax.predict_proba(W, X, b))
    got = csoftmax.loss_and_gradient(W.tolist(), X.tolist(), y.tolist(), b.tolist(), sample_weight=w.tolist())
    expected = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w)
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])


# ---------------------------------------------------------------------------
# hessian_product
# ---------------------------------------------------------------------------


def _hessian_cases():
    d = data()
    W, b = d["W"], d["b"]
    V_nan = W.copy()
    V_nan[1, 1] = np.nan
    Vb_inf = b.copy()
    Vb_inf[2] = np.inf
    return [
        ("V-D-mismatch", dict(V=W[:, :2]), ValueError, r"\bV\b"),
        ("V-K-mismatch", dict(V=W[:2]), ValueError, r"\bV\b"),
        ("V-1d", dict(V=W[0]), ValueError, r"\bV\b"),
        ("V-None", dict(V=None), TypeError, r"\bV\b"),
        ("V-str", dict(V="V"), TypeError, r"\bV\b"),
        ("V-nan", dict(V=V_nan), ValueError, r"\bV\b"),
        ("Vb-wrong-length", dict(Vb=b[:2]), ValueError, r"\bVb\b"),
        ("Vb-2d", dict(Vb=b[None]), ValueError, r"\bVb\b"),
        ("Vb-inf", dict(Vb=Vb_inf), ValueError, r"\bVb\b"),
        ("Vb-without-b", dict(b=None), ValueError, r"\bVb\b"),
        ("y-out-of-range", dict(y=d["y"] + K), ValueError, r"\by\b"),
        ("y-wrong-length", dict(y=d["y"][:-1]), ValueError, r"\by\b"),
        ("weights-all-zero-mean", dict(sample_weight=np.zeros(N)), ValueError, r"sample.weight"),
        ("weights-nan", dict(sample_weight=np.full(N, np.nan)), ValueError, r"sample_weight"),
        ("reduction", dict(reduction="avg"), ValueError, r"reduction"),
        ("l2-negative", dict(l2=-1.0), ValueError, r"\bl2\b"),
        ("n_threads-0", dict(n_threads=0), ValueError, r"n_threads"),
        ("n_threads-float", dict(n_threads=2.0), TypeError, r"n_threads"),
    ]


@pytest.mark.parametrize("case", _hessian_cases(), ids=lambda c: c[0])
def test_bad_hessian_product_arguments(case):
    _, changes, exc, match = case
    d = data()
    args = dict(W=d["W"], X=d["X"], V=d["W"].copy(), b=d["b"], Vb=d["b"].copy())
    kwargs = {}
    for key, value in changes.items():
        (args if key in args else kwargs)[key] = value
    raises_unchanged(exc, match, csoftmax.hessian_product, args["W"], args["X"], args["V"], args["b"], args["Vb"],
                     **kwargs)


# ---------------------------------------------------------------------------
# PackedBits and sparse oddities
# ---------------------------------------------------------------------------


def _packed_cases():
    words = np.zeros((N, 1), np.uint64)
    return [
        ("words-int64", lambda: csoftmax.PackedBits(words.astype(np.int64), D), TypeError, r"\bwords\b"),
        ("words-1d", lambda: csoftmax.PackedBits(words[:, 0], D), TypeError, r"\bwords\b"),
        ("words-too-few", lambda: csoftmax.PackedBits(words, 65), ValueError, r"\bwords\b"),
        ("words-too-many", lambda: csoftmax.PackedBits(np.zeros((N, 3), np.uint64), 65), ValueError, r"\bwords\b"),
        ("n_features-negative", lambda: csoftmax.PackedBits(words, -1), ValueError, r"n_features"),
        ("n_features-float", lambda: csoftmax.PackedBits(words, 3.0), ValueError, r"n_features"),
        ("n_features-bool", lambda: csoftmax.PackedBits(words, True), ValueError, r"n_features"),
        ("packbits-too-few-bytes", lambda: csoftmax.PackedBits.from_packbits(np.zeros((N, 1), np.uint8), 9),
         ValueError, r"n_features"),
        ("packbits-bitorder", lambda: csoftmax.PackedBits.from_packbits(np.zeros((N, 1), np.uint8), 8, "middle"),
         ValueError, r"bitorder"),
        ("packbits-not-uint8", lambda: csoftmax.PackedBits.from_packbits(np.zeros((N, 1)), 8), TypeError, r"\bA\b"),
        ("pack_bits-two", lambda: csoftmax.pack_bits(np.full((3, 3), 2)), ValueError, r"\bX\b"),
        ("pack_bits-nan", lambda: csoftmax.pack_bits(np.full((3, 3), np.nan)), ValueError, r"\bX\b"),
        ("pack_bits-1d", lambda: csoftmax.pack_bits(np.ones(3)), ValueError, r"\bX\b"),
        ("pack_bits-str", lambda: csoftmax.pack_bits("101"), TypeError, r"\bX\b"),
    ]


@pytest.mark.parametrize("case", _packed_cases(), ids=lambda c: c[0])
def test_bad_packed_bits(case):
    _, make, exc, match = case
    raises_unchanged(exc, match, make)


@pytest.mark.parametrize("func", MODEL_FUNCS)
def test_packed_bits_with_mismatched_arguments(func):
    d = data()
    packed = csoftmax.pack_bits(d["X"] > 1.0)
    raises_unchanged(ValueError, r"\bW\b", call, func, d["W"][:, :2], packed, d["y"], d["b"])
    if func in FIT_FUNCS:
        raises_unchanged(ValueError, r"\by\b", call, func, d["W"], packed, d["y"][:-1], d["b"])
        raises_unchanged(ValueError, r"\by\b", call, func, d["W"], packed, d["y"] + K, d["b"])


def test_packed_bits_padding_bits_are_ignored():
    """Set bits beyond n_features in the last word are not features (and are never read)."""
    d = data()
    dense = (d["X"] > 1.0).astype(np.uint8)
    noisy = csoftmax.pack_bits(dense).words | np.uint64(0xFFFF_FFFF_FFFF_FFF0)
    packed = csoftmax.PackedBits(noisy, D)
    np.testing.assert_array_equal(packed.unpack(), dense)
    np.testing.assert_allclose(csoftmax.predict_proba(d["W"], packed, d["b"]),
                               csoftmax.predict_proba(d["W"], dense, d["b"]), rtol=1e-14)
    got = csoftmax.loss_and_gradient(d["W"], packed, d["y"], d["b"])
    expected = csoftmax.loss_and_gradient(d["W"], dense, d["y"], d["b"])
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-14)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-15)


def _sparse_cases(sparse):
    X = sparse.csr_matrix(data()["X"])

    def edited(part, index, value):
        bad = X.copy()
        array = getattr(bad, part).copy()
        array[index] = value
        setattr(bad, part, array)
        return bad

    short_indptr = X.copy()
    short_indptr.indptr = X.indptr[:-1].copy()
    return [
        ("index-too-large", edited("indices", 5, D + 2), ValueError, r"\bX\b.*column index"),
        ("index-negative", edited("indices", 0, -1), ValueError, r"\bX\b.*column index"),
        ("indptr-decreasing", edited("indptr", 3, X.indptr[4] + 1), ValueError, r"\bX\b.*indptr"),
        ("indptr-end-past-nnz", edited("indptr", -1, X.nnz + 5), ValueError, r"\bX\b.*indptr"),
        ("indptr-start-not-0", edited("indptr", 0, 1), ValueError, r"\bX\b.*indptr"),
        ("indptr-too-short", short_indptr, ValueError, r"\bX\b.*indptr"),
        ("complex-data", X.astype(complex), TypeError, r"\bX\b"),
        ("W-wrong-features", None, ValueError, r"\bW\b"),
    ]


@pytest.mark.parametrize("func", MODEL_FUNCS + ("hessian_product",))
@pytest.mark.parametrize("index", range(8), ids=lambda i: ["index-too-large", "index-negative", "indptr-decreasing",
                                                           "indptr-end-past-nnz", "indptr-start-not-0",
                                                           "indptr-too-short", "complex-data", "W-wrong-features"][i])
def test_bad_sparse_X(func, index):
    sparse = pytest.importorskip("scipy.sparse")
    label, X, exc, match = _sparse_cases(sparse)[index]
    d = data()
    W = d["W"]
    if X is None:
        X, W = sparse.csr_matrix(d["X"]), W[:, :2]
    if func == "hessian_product":
        raises_unchanged(exc, match, csoftmax.hessian_product, W, X, W.copy(), d["b"], d["b"].copy())
    else:
        raises_unchanged(exc, match, call, func, W, X, d["y"], d["b"])


# ---------------------------------------------------------------------------
# Estimator misuse
# ---------------------------------------------------------------------------


def _estimator_cases():
    """(id, action(X, y), exception, pattern): every action gets the X and y of data()."""
    return [
        ("C-negative", lambda X, y: SoftmaxRegression(C=-1.0).fit(X, y), ValueError, r"\bC\b"),
        ("C-nan", lambda X, y: SoftmaxRegression(C=np.nan).fit(X, y), ValueError, r"\bC\b"),
        ("solver-unknown", lambda X, y: SoftmaxRegression(solver="adam").fit(X, y), ValueError, r"solver"),
        ("max_iter-0", lambda X, y: SoftmaxRegression(max_iter=0).fit(X, y), ValueError, r"max_iter"),
        ("tol-negative", lambda X, y: SoftmaxRegression(tol=-1.0).fit(X, y), ValueError, r"\btol\b"),
        ("n_threads-0", lambda X, y: SoftmaxRegression(n_threads=0).fit(X, y), ValueError, r"n_threads"),
        ("n_threads-str", lambda X, y: SoftmaxRegression(n_threads="4").fit(X, y), ValueError, r"n_threads"),
        ("class_weight-list", lambda X, y: SoftmaxRegression(class_weight=[1, 2]).fit(X, y), ValueError,
         r"class_weight"),
        ("batch_size-0", lambda X, y: SoftmaxRegression(solver="sgd", batch_size=0).fit(X, y), ValueError,
         r"batch_size"),
        ("momentum-1", lambda X, y: SoftmaxRegression(solver="sgd", momentum=1.0).fit(X, y), ValueError, r"momentum"),
        ("optimal-needs-C", lambda X, y: SoftmaxRegression(solver="sgd", C=np.inf).fit(X, y), ValueError,
         r"learning_rate"),
        ("predict-unfitted", lambda X, y: SoftmaxRegression().predict(X), NotFittedError, r"not fitted"),
        ("predict_proba-unfitted", lambda X, y: SoftmaxRegression().predict_proba(X), NotFittedError, r"not fitted"),
        ("predict-other-features", lambda X, y: SoftmaxRegression().fit(X, y).predict(X[:, :2]), ValueError,
         r"features"),
        ("predict-nan", lambda X, y: SoftmaxRegression().fit(X, y).predict(np.where(X > 1.4, np.nan, X)),
         ValueError, r"NaN"),
        ("fit-one-class", lambda X, y: SoftmaxRegression().fit(X, np.zeros(N)), ValueError, r"classes"),
        ("fit-y-wrong-length", lambda X, y: SoftmaxRegression().fit(X, y[:-1]), ValueError, r"samples"),
        ("fit-continuous-y", lambda X, y: SoftmaxRegression().fit(X, y + 0.5), ValueError, r"label type"),
        ("fit-X-3d", lambda X, y: SoftmaxRegression().fit(X[None], y), ValueError, r"2D|dim 3"),
        ("fit-X-complex", lambda X, y: SoftmaxRegression().fit(X.astype(complex), y), ValueError, r"[Cc]omplex"),
        ("fit-weights-negative", lambda X, y: SoftmaxRegression().fit(X, y, sample_weight=-np.ones(N)), ValueError,
         r"non-negative|sample.weight"),
        ("fit-weights-short", lambda X, y: SoftmaxRegression().fit(X, y, sample_weight=np.ones(N - 1)), ValueError,
         r"sample.weight|samples|entries"),
        ("partial_fit-no-classes", lambda X, y: SoftmaxRegression(solver="sgd").partial_fit(X, y), ValueError,
         r"classes"),
        ("partial_fit-unknown-label",
         lambda X, y: SoftmaxRegression(solver="sgd").partial_fit(X, y, classes=[1, 2]), ValueError, r"classes"),
        ("partial_fit-not-sgd", lambda X, y: SoftmaxRegression().partial_fit(X, y, classes=[0, 1, 2, 3]),
         AttributeError, r"solver='sgd'"),
    ]


@pytest.mark.parametrize("case", _estimator_cases(), ids=lambda c: c[0])
def test_estimator_misuse(case):
    _, action, exc, match = case
    d = data()
    raises_unchanged(exc, match, action, d["X"], d["y"])


# ---------------------------------------------------------------------------
# Extreme but valid values (each once a finding of tests/test_fuzz.py)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("arg", ["W", "b"])
def test_float64_parameters_beyond_the_float32_range_of_X(arg):
    d = data()
    W, b = d["W"].copy(), d["b"].copy()
    {"W": W, "b": b}[arg].flat[1] = 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for func in MODEL_FUNCS:
            raises_unchanged(ValueError, rf"\b{arg}\b.*float32", call, func, W, d["X"].astype(np.float32), d["y"], b)


def test_huge_W_without_penalty_gives_no_nan_and_an_overflowing_penalty_is_an_error():
    # K = 1: every probability is 1 whatever the logits, so the loss is exactly 0,
    # while ||W||^2 overflows.
    W, X, y = np.array([[1e307]]), np.array([[0.125]]), np.array([0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, gW, _ = csoftmax.loss_and_gradient(W, X, y)
        assert loss == 0.0 and np.all(gW == 0.0)
        raises_unchanged(ValueError, r"\bl2\b", csoftmax.loss_and_gradient, W, X, y, l2=0.5)


@pytest.mark.parametrize("scale", [1e-311, 1e-280, 1e300, 1.7e308])
def test_mean_depends_only_on_the_ratios_of_extreme_weights(scale):
    d = data()
    w = d["w"] / d["w"].max()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = csoftmax.loss_and_gradient(d["W"], d["X"], d["y"], d["b"], sample_weight=w * scale)
        hv = csoftmax.hessian_product(d["W"], d["X"], d["W"], d["b"], sample_weight=w * scale)
    expected = csoftmax.loss_and_gradient(d["W"], d["X"], d["y"], d["b"], sample_weight=w)
    rtol = 1e-9 if scale > 1e-300 else 1e-6  # subnormal weights carry fewer digits
    np.testing.assert_allclose(got[0], expected[0], rtol=rtol)
    np.testing.assert_allclose(got[1], expected[1], rtol=rtol, atol=1e-15)
    np.testing.assert_allclose(hv[0], csoftmax.hessian_product(d["W"], d["X"], d["W"], d["b"], sample_weight=w)[0],
                               rtol=rtol, atol=1e-15)


def test_overflowing_target_row_sums_in_hessian_product():
    d = data()
    Y = d["Y"].copy()
    Y[3] = 1e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        raises_unchanged(ValueError, r"\by\b", csoftmax.hessian_product, d["W"], d["X"], d["W"], d["b"], y=Y)
        # ... also where that row's weight is 0 (0 * inf).
        w = d["w"].copy()
        w[3] = 0.0
        raises_unchanged(ValueError, r"\by\b", csoftmax.hessian_product, d["W"], d["X"], d["W"], d["b"], y=Y,
                         sample_weight=w)
