"""Every error path: the right exception, a message naming the argument, no input modified."""

import numpy as np
import pytest

import csoftmax

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
    """(label, array) pairs of every ndarray among the arguments."""
    out = []
    if isinstance(obj, np.ndarray):
        out.append((prefix, obj))
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


# ---------------------------------------------------------------------------
# Out-buffers
# ---------------------------------------------------------------------------


def _bad_out_buffers(shape, dtype):
    wrong_dtype = np.float32 if dtype == np.float64 else np.float64
    read_only = np.zeros(shape, dtype)
    read_only.setflags(write=False)
    big = np.zeros(tuple(2 * s for s in shape), dtype)
    strided = big[tuple(slice(None, None, 2) for _ in shape)]
    cases = [
        ("wrong-shape", np.zeros(tuple(s + 1 for s in shape), dtype), ValueError),
        ("wrong-dtype", np.zeros(shape, wrong_dtype), TypeError),
        ("int-dtype", np.zeros(shape, np.int64), TypeError),
        ("read-only", read_only, ValueError),
        ("strided", strided, ValueError),
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
