"""Plain-NumPy reference implementations of the quantities csoftmax computes.

Everything here is float64 and written directly from the mathematical
definitions (max-subtracted for stability), independently of the package:

    z_n   = W x_n + b
    p_n   = softmax(z_n)
    L     = sum_n w_n sum_k y_nk log p_nk
    dL/dW = sum_n w_n (y_n - (sum_k y_nk) p_n) x_n^T
    loss  = -L / S + (l2 / 2) ||W||_F^2,  S = sum_n w_n ("mean") or 1 ("sum")

The helpers at the bottom build test problems in several memory layouts and
compare results with tolerances that account for a different summation order.
"""

import numpy as np

# ---------------------------------------------------------------------------
# Reference mathematics (float64)
# ---------------------------------------------------------------------------


def as_f64(a):
    return None if a is None else np.array(a, dtype=np.float64)


def cast_through(a, dtype):
    """``a`` rounded to ``dtype`` and widened back to float64 (what the package computes on)."""
    if a is None:
        return None
    return np.asarray(a).astype(dtype).astype(np.float64)


def ref_logits(W, X, b=None):
    Z = as_f64(X) @ as_f64(W).T
    if b is not None:
        Z = Z + as_f64(b)[None, :]
    return Z


def ref_logsumexp(Z):
    Z = as_f64(Z)
    m = Z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True)))[:, 0]


def ref_log_softmax(Z):
    Z = as_f64(Z)
    m = Z.max(axis=1, keepdims=True)
    shifted = Z - m
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def ref_softmax(Z):
    Z = as_f64(Z)
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def target_matrix(y, n_classes):
    """Labels (N,) -> one-hot (N, K) float64; targets (N, K) -> float64 copy."""
    y = np.asarray(y)
    if y.ndim == 1:
        Y = np.zeros((y.shape[0], n_classes))
        Y[np.arange(y.shape[0]), y.astype(np.int64)] = 1.0
        return Y
    return y.astype(np.float64)


def _weights(sample_weight, n):
    return np.ones(n) if sample_weight is None else as_f64(sample_weight)


def ref_log_likelihood(W, X, y, b=None, sample_weight=None):
    W = as_f64(W)
    Z = ref_logits(W, X, b)
    Y = target_matrix(y, W.shape[0])
    w = _weights(sample_weight, Z.shape[0])
    logp = ref_log_softmax(Z) if Z.shape[0] else Z
    # 0 * log p must be 0 even if log p were -inf: only sum where y_nk != 0.
    terms = np.where(Y != 0, Y * logp, 0.0)
    return float(np.sum(w * terms.sum(axis=1)))


def ref_residuals(W, X, y, b=None, sample_weight=None):
    """R_nk = w_n (y_nk - (sum_j y_nj) p_nk): dL/dz_nk."""
    W = as_f64(W)
    Z = ref_logits(W, X, b)
    Y = target_matrix(y, W.shape[0])
    w = _weights(sample_weight, Z.shape[0])
    P = ref_softmax(Z) if Z.shape[0] else Z
    return w[:, None] * (Y - Y.sum(axis=1, keepdims=True) * P)


def ref_log_likelihood_gradient(W, X, y, b=None, sample_weight=None):
    """(dL/dW, dL/db)."""
    R = ref_residuals(W, X, y, b, sample_weight)
    return R.T @ as_f64(X), R.sum(axis=0)


def ref_gradient_scale(W, X, y, b=None, sample_weight=None):
    """Elementwise sum of |terms| of dL/dW and dL/db: the size of the rounding error scale."""
    R = np.abs(ref_residuals(W, X, y, b, sample_weight))
    return R.T @ np.abs(as_f64(X)), R.sum(axis=0)


def ref_loss_and_gradient(W, X, y, b=None, sample_weight=None, l2=0.0, reduction="mean"):
    W = as_f64(W)
    n = np.asarray(X).shape[0]
    if reduction == "mean":
        S = float(_weights(sample_weight, n).sum())
    elif reduction == "sum":
        S = 1.0
    else:
        raise ValueError(reduction)
    L = ref_log_likelihood(W, X, y, b, sample_weight)
    gW, gb = ref_log_likelihood_gradient(W, X, y, b, sample_weight)
    loss = -L / S + 0.5 * l2 * float(np.sum(W * W))
    grad_W = -gW / S + l2 * W
    grad_b = None if b is None else -gb / S
    return loss, grad_W, grad_b


# ---------------------------------------------------------------------------
# Layouts: the same logical (N, D) matrix in different memory layouts
# ---------------------------------------------------------------------------

LAYOUTS = ("C", "F", "strided", "negative", "broadcast_rows", "broadcast_cols")


def make_layout(A, layout):
    """A view/copy of the 2-D array ``A`` (any float dtype) with the requested layout.

    ``broadcast_rows`` and ``broadcast_cols`` replace A by a matrix with a
    zero stride (every row = A[0], or every column = A[:, 0]); the caller
    gets the logical values back from the result, so compare against
    ``np.array(result)``.
    """
    n, d = A.shape
    if layout == "C":
        out = np.ascontiguousarray(A)
    elif layout == "F":
        out = np.asfortranarray(A)
    elif layout == "strided":
        base = np.zeros((2 * n + 1, 3 * d + 2), dtype=A.dtype)
        base[1 : 2 * n + 1 : 2, 2 : 3 * d + 2 : 3] = A
        out = base[1 : 2 * n + 1 : 2, 2 : 3 * d + 2 : 3]
        assert out.shape == (n, d)
    elif layout == "negative":
        base = np.ascontiguousarray(A[::-1, ::-1])
        out = base[::-1, ::-1]
        assert out.strides[0] <= 0 or n <= 1
    elif layout == "broadcast_rows":
        out = np.broadcast_to(A[0], (n, d)) if n else A
    elif layout == "broadcast_cols":
        out = np.broadcast_to(A[:, :1], (n, d)) if d else A
    else:
        raise ValueError(layout)
    return out


# ---------------------------------------------------------------------------
# Data and comparisons
# ---------------------------------------------------------------------------


def soft_targets(rng, n, k):
    """Non-negative targets whose rows sum to various totals, including 0 and one-hot rows."""
    Y = rng.random((n, k))
    Y[rng.random((n, k)) < 0.3] = 0.0
    row_scale = rng.choice([0.0, 0.25, 1.0, 1.0, 3.5], size=n)
    Y *= row_scale[:, None]
    if n >= 4:
        Y[1] = 0.0                      # an all-zero row
        Y[2] = 0.0
        Y[2, k - 1] = 1.0               # a one-hot row
        Y[3] = rng.dirichlet(np.ones(k))  # a distribution (sums to 1)
    return Y


def tolerance(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


def assert_close(got, expected, dtype, scale=None, rtol=None, err_msg=""):
    """Compare with a relative tolerance and an absolute one proportional to ``scale``.

    ``scale`` is the sum of the absolute values of the terms making up each
    entry (for sums that may cancel); by default the expected value itself.
    """
    rtol = tolerance(dtype) if rtol is None else rtol
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if scale is None:
        atol = 0.0
    else:
        atol = rtol * np.asarray(scale, dtype=np.float64)
    err = np.abs(got - expected)
    bound = atol + rtol * np.abs(expected)
    bad = ~(err <= bound)
    if bad.any():
        i = np.argwhere(bad)[0] if got.ndim else ()
        i = tuple(i)
        raise AssertionError(
            f"{err_msg} {int(bad.sum())} of {bad.size} entries differ; first at {i}: "
            f"got {got[i]!r}, expected {expected[i]!r} (allowed {np.broadcast_to(bound, got.shape)[i]!r})"
        )


def ref_hessian_product(W, X, V, b=None, Vb=None, y=None, sample_weight=None, l2=0.0, reduction="mean"):
    """(HV_W, HV_b): the Hessian of the ``loss_and_gradient`` objective times (V, Vb).

    Row n contributes ``w_n s_n (diag p_n - p_n p_n^T) u_n`` with
    ``u_n = V x_n + Vb`` and ``s_n`` the row sum of the targets (1 for labels).
    """
    W, X, V = as_f64(W), as_f64(X), as_f64(V)
    n, k = X.shape[0], W.shape[0]
    P = ref_softmax(ref_logits(W, X, b)) if n else np.zeros((0, k))
    U = ref_logits(V, X, None if b is None else (np.zeros(k) if Vb is None else Vb))
    s = np.ones(n) if y is None or np.ndim(y) == 1 else as_f64(y).sum(axis=1)
    w = _weights(sample_weight, n) * s
    S = float(_weights(sample_weight, n).sum()) if reduction == "mean" else 1.0
    M = w[:, None] * (P * U - P * (P * U).sum(axis=1, keepdims=True))
    HV_W = M.T @ X / S + l2 * V
    HV_b = None if b is None else M.sum(axis=0) / S
    return HV_W, HV_b
