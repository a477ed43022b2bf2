"""Public functions: validate with ``_validation``, then dispatch to the kernels.

Notation (see the README): ``W`` (K, D) weights, ``X`` (N, D) inputs, ``b``
(K,) intercepts, logits ``z_n = W x_n + b``, ``p_n = softmax(z_n)``, labels
``y`` (N,) or targets ``Y`` (N, K), sample weights ``w`` (N,).
"""

import numpy as np

from ._dispatch import kernels as _kernels
from ._threads import resolve_n_threads
from ._packed import PackedBits
from ._validation import (
    as_bias,
    as_csr_parts,
    as_feature_matrix,
    as_float_matrix,
    as_sample_weight,
    as_targets,
    as_weights,
    check_l2,
    check_out,
    check_reduction,
    is_sparse,
    parameter_dtype,
    raise_bad_label,
    raise_nonfinite,
    loss_weights,
    penalised_loss,
)

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "predict_proba",
    "predict",
    "log_likelihood",
    "log_likelihood_gradient",
    "loss_and_gradient",
    "hessian_product",
]

# Status bits of the kernels (see _dense_impl.pxi).
_STATUS_NO_MEMORY = 1
_STATUS_BAD_LABEL = 2
_STATUS_NONFINITE = 4
_STATUS_BAD_INDEX = 8

_ROWWISE_SOFTMAX, _ROWWISE_LOG_SOFTMAX, _ROWWISE_LOGSUMEXP = 0, 1, 2


def _check_status(status):
    if status & _STATUS_NO_MEMORY:
        raise MemoryError("csoftmax: could not allocate the kernels' scratch buffers")
    if status & _STATUS_BAD_INDEX:
        raise ValueError("X (sparse) has a column index outside [0, n_features)")


# ---------------------------------------------------------------------------
# Row-wise functions of a logit matrix
# ---------------------------------------------------------------------------


def _rowwise(Z, out, n_threads, mode):
    Z = as_float_matrix(Z, "Z")
    n_rows, n_cols = Z.shape
    if n_cols == 0:
        raise ValueError(f"Z must have at least one column (class); got shape {Z.shape}")
    nt = resolve_n_threads(n_threads)
    shape = (n_rows,) if mode == _ROWWISE_LOGSUMEXP else (n_rows, n_cols)
    if out is None:
        out = np.empty(shape, dtype=Z.dtype)
    else:
        check_out(out, "out", shape, Z.dtype, (("Z", Z),))
    if mode == _ROWWISE_LOGSUMEXP:
        status, n_bad = _kernels.rowwise(Z, None, out, mode, nt)
    else:
        status, n_bad = _kernels.rowwise(Z, out, None, mode, nt)
    _check_status(status)
    if n_bad:
        row_max = Z.max(axis=1)
        bad = ~np.isfinite(row_max) | np.isnan(Z).any(axis=1)
        first = int(np.flatnonzero(bad)[0]) if bad.any() else -1
        raise ValueError(
            f"Z has {n_bad} row(s) with NaN, +inf or no finite entry (first: row {first}); "
            "every row needs a finite maximum (-inf entries are allowed)"
        )
    return out


def softmax(Z, *, out=None, n_threads=None):
    """Row-wise softmax ``exp(z_k - max z) / sum_j exp(z_j - max z)``.

    Parameters
    ----------
    Z : array_like of shape (N, K)
        Logits; float32 stays float32, other real dtypes become float64.
        Entries may be ``-inf`` (probability 0) when the row has a finite maximum.
    out : ndarray of shape (N, K), optional
        C-contiguous, writable, of Z's float dtype, not overlapping Z.
    n_threads : int, optional
        Threads to use: None for every usable core, negative to count back.

    Returns
    -------
    ndarray of shape (N, K)
        Rows are non-negative and sum to 1.

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> csoftmax.softmax(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    return _rowwise(Z, out, n_threads, _ROWWISE_SOFTMAX)


def log_softmax(Z, *, out=None, n_threads=None):
    """Row-wise log-softmax ``z_k - logsumexp(z)``, exact for very negative values.

    Parameters and errors as :func:`softmax`.

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> csoftmax.log_softmax(np.array([[0.0, -1e4]]))
    array([[     0., -10000.]])
    """
    return _rowwise(Z, out, n_threads, _ROWWISE_LOG_SOFTMAX)


def logsumexp(Z, *, out=None, n_threads=None):
    """Row-wise ``log(sum_k exp(z_k))``, computed as ``max z + log(sum exp(z - max z))``.

    Parameters as :func:`softmax`; ``out`` has shape (N,).

    Returns
    -------
    ndarray of shape (N,)

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> round(float(csoftmax.logsumexp(np.array([[1e4, 1e4]]))[0]), 9)  # 1e4 + log(2), no overflow
    10000.693147181
    """
    return _rowwise(Z, out, n_threads, _ROWWISE_LOGSUMEXP)


# ---------------------------------------------------------------------------
# The model: prediction
# ---------------------------------------------------------------------------


class _Features:
    """X after validation, with the kernels that read its kind.

    ``args`` are the leading arguments of those kernels: ``(X,)`` for dense
    arrays, ``(words, n_features)`` for PackedBits.
    """

    __slots__ = (
        "array", "args", "dtype", "n_samples", "n_features",
        "loss_gradient", "hessian_product", "predict_rows", "sgd_epoch",
    )

    def __init__(self, X, W):
        if isinstance(X, PackedBits):
            self.array = X.words
            self.args = (X.words, X.n_features)
            self.n_samples, self.n_features = X.shape
            suffix = "_bits"
            self.dtype = parameter_dtype(W)
        elif is_sparse(X):
            values, indices, indptr, self.n_samples, self.n_features, self.dtype = as_csr_parts(X, "X")
            self.array = values
            self.args = (values, indices, indptr, self.n_features)
            suffix = "_csr"
        else:
            X = as_feature_matrix(X, "X")
            self.array = X
            self.args = (X,)
            self.n_samples, self.n_features = X.shape
            suffix = "_u8" if X.dtype == np.uint8 else ""
            self.dtype = parameter_dtype(W) if suffix else X.dtype
        self.loss_gradient = getattr(_kernels, "loss_gradient" + suffix)
        self.hessian_product = getattr(_kernels, "hessian_product" + suffix)
        self.predict_rows = getattr(_kernels, "predict_rows" + suffix)
        self.sgd_epoch = getattr(_kernels, "sgd_epoch" + suffix, None)


def features_of(X, W):
    """Validated X with its kernels (used by the estimator and the SGD driver)."""
    return _Features(X, W)


def _model_inputs(W, X, b):
    features = _Features(X, W)
    W = as_weights(W, features.dtype, features.n_features, "W")
    b = as_bias(b, features.dtype, W.shape[0], "b")
    return W, features, b


def predict_proba(W, X, b=None, *, out=None, n_threads=None):
    """Class probabilities ``softmax(W x_n + b)`` of every row of X.

    Parameters
    ----------
    W : array_like of shape (K, D)
        Weights; cast to X's float dtype.
    X : array_like of shape (N, D)
        Inputs: float32 or float64 (kept), bool or integer (as float64).
        Any memory layout; C-contiguous is fastest.
    b : array_like of shape (K,), optional
        Intercepts.
    out : ndarray of shape (N, K), optional
        C-contiguous writable buffer of X's float dtype.
    n_threads : int, optional
        None for every usable core, negative to count back; 0 is an error.

    Returns
    -------
    ndarray of shape (N, K)

    Raises
    ------
    ValueError
        Mismatched shapes, or NaN/inf in X, W or b (the message names which).

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> csoftmax.predict_proba(W, np.array([[0.0, 0.0], [2.0, 0.0]])).round(3)
    array([[0.5  , 0.5  ],
           [0.881, 0.119]])
    """
    W, F, b = _model_inputs(W, X, b)
    nt = resolve_n_threads(n_threads)
    shape = (F.n_samples, W.shape[0])
    if out is None:
        out = np.empty(shape, dtype=F.dtype)
    else:
        check_out(out, "out", shape, F.dtype, (("X", F.array), ("W", W), ("b", b)))
    status, n_bad = F.predict_rows(*F.args, W, b, out, None, nt)
    _check_status(status)
    if n_bad or status & _STATUS_NONFINITE:
        raise_nonfinite((("X", F.array), ("W", W), ("b", b)), "predicted probabilities")
    return out


def predict(W, X, b=None, *, n_threads=None):
    """Most probable class ``argmax_k (W x_n + b)_k`` of every row (first on ties).

    Parameters as :func:`predict_proba`.

    Returns
    -------
    ndarray of shape (N,), dtype int64

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> csoftmax.predict(np.eye(3), np.array([[0.1, 0.7, 0.2], [0.0, 0.0, 1.0]]))
    array([1, 2])
    """
    W, F, b = _model_inputs(W, X, b)
    nt = resolve_n_threads(n_threads)
    labels = np.empty(F.n_samples, dtype=np.int64)
    status, n_bad = F.predict_rows(*F.args, W, b, None, labels, nt)
    _check_status(status)
    if n_bad or status & _STATUS_NONFINITE:
        raise_nonfinite((("X", F.array), ("W", W), ("b", b)), "a logit")
    return labels


# ---------------------------------------------------------------------------
# The model: log-likelihood and its gradient
# ---------------------------------------------------------------------------


def _fit_inputs(W, X, y, b, sample_weight):
    W, F, b = _model_inputs(W, X, b)
    labels, targets = as_targets(y, F.n_samples, W.shape[0], "y")
    weights = as_sample_weight(sample_weight, F.n_samples)
    return W, F, b, labels, targets, weights


def _run_loss_gradient(W, F, b, labels, targets, weights, scale, l2, grad_W, grad_b, nt):
    loss_sum, status, n_nonfinite, sum_sq_W = F.loss_gradient(
        *F.args, W, b, labels, targets, weights, scale, l2, grad_W, grad_b, nt
    )
    _check_status(status)
    if status & _STATUS_BAD_LABEL:
        raise_bad_label(labels, W.shape[0])
    if n_nonfinite or status & _STATUS_NONFINITE or not np.isfinite(loss_sum):
        raise_nonfinite(
            (("X", F.array), ("W", W), ("b", b), ("sample_weight", weights)),
            "the log-likelihood" if grad_W is None else "the log-likelihood or its gradient",
        )
    return loss_sum, sum_sq_W


def log_likelihood(W, X, y, b=None, *, sample_weight=None, n_threads=None):
    """Log-likelihood ``L = sum_n w_n sum_k y_nk ln softmax_k(W x_n + b)`` (a sum, <= 0).

    Parameters
    ----------
    W : array_like of shape (K, D)
    X : array_like of shape (N, D)
    y : array_like of shape (N,) or (N, K)
        Integer labels in [0, K), or non-negative targets (one-hot or soft;
        rows need not sum to 1).
    b : array_like of shape (K,), optional
    sample_weight : array_like of shape (N,), optional
        Finite, non-negative weights w_n (default 1).
    n_threads : int, optional

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> round(csoftmax.log_likelihood(np.zeros((2, 3)), np.ones((4, 3)), [0, 1, 1, 0]), 6)
    -2.772589
    """
    W, F, b, labels, targets, weights = _fit_inputs(W, X, y, b, sample_weight)
    nt = resolve_n_threads(n_threads)
    loss_sum, _ = _run_loss_gradient(W, F, b, labels, targets, weights, 0.0, 0.0, None, None, nt)
    return -loss_sum if loss_sum else 0.0


def log_likelihood_gradient(W, X, y, b=None, *, sample_weight=None, out=None, n_threads=None):
    """Gradient ``dL/dW = sum_n w_n (y_n - (sum_k y_nk) p_n) x_n^T`` of :func:`log_likelihood`.

    Parameters as :func:`log_likelihood`, and
    out : ndarray of shape (K, D), optional
        C-contiguous writable buffer of X's float dtype.

    Returns
    -------
    ndarray of shape (K, D)

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> csoftmax.log_likelihood_gradient(np.zeros((2, 1)), np.ones((2, 1)), [0, 0])
    array([[ 1.],
           [-1.]])
    """
    W, F, b, labels, targets, weights = _fit_inputs(W, X, y, b, sample_weight)
    nt = resolve_n_threads(n_threads)
    if out is None:
        out = np.empty(W.shape, dtype=F.dtype)
    else:
        check_out(
            out,
            "out",
            W.shape,
            F.dtype,
            (("X", F.array), ("W", W), ("b", b), ("y", labels), ("y", targets), ("sample_weight", weights)),
        )
    _run_loss_gradient(W, F, b, labels, targets, weights, -1.0, 0.0, out, None, nt)
    return out


_INF = float("inf")


def loss_and_gradient(
    W,
    X,
    y,
    b=None,
    *,
    sample_weight=None,
    l2=0.0,
    reduction="mean",
    n_threads=None,
    grad_W_out=None,
    grad_b_out=None,
):
    """Loss and gradients in the minimisation form used by optimisers.

    ``loss = -L / S + (l2 / 2) ||W||_F^2`` with ``S = sum_n w_n`` for
    ``reduction="mean"`` and ``S = 1`` for ``"sum"``; b is not penalised.
    One pass over X: logits, softmax, loss and the gradient are fused per
    chunk of rows, and no (N, K) temporary is made.

    Parameters
    ----------
    W, X, y, b, sample_weight
        As in :func:`log_likelihood`.
    l2 : float, default 0
        L2 penalty on W.
    reduction : {"mean", "sum"}, default "mean"
    n_threads : int, optional
    grad_W_out : ndarray of shape (K, D), optional
    grad_b_out : ndarray of shape (K,), optional
        Out-buffers (C-contiguous, writable, X's float dtype); ``grad_b_out``
        only when b is given.

    Returns
    -------
    loss : float
    grad_W : ndarray of shape (K, D)
    grad_b : ndarray of shape (K,) or None
        None when b is None.

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> loss, gW, gb = csoftmax.loss_and_gradient(np.zeros((2, 1)), np.ones((2, 1)), [0, 0], np.zeros(2))
    >>> round(loss, 6), gW.ravel(), gb
    (0.693147, array([-0.5,  0.5]), array([-0.5,  0.5]))
    """
    if sample_weight is None and reduction == "mean" and type(l2) is float and 0.0 <= l2 < _INF:
        # The training-loop call, checked and run in compiled code; None for
        # anything but the plain case, which the general path below handles
        # (and for which it raises the detailed errors).
        fast = _kernels.loss_gradient_fast(X, W, b, y, l2, grad_W_out, grad_b_out, resolve_n_threads(n_threads))
        if fast is not None:
            return fast
    W, F, b, labels, targets, weights = _fit_inputs(W, X, y, b, sample_weight)
    check_reduction(reduction)
    l2 = check_l2(l2)
    kernel_weights, total = loss_weights(weights, F.n_samples, reduction)
    nt = resolve_n_threads(n_threads)
    inputs = (("X", F.array), ("W", W), ("b", b), ("y", labels), ("y", targets), ("sample_weight", weights))
    if grad_W_out is None:
        grad_W_out = np.empty(W.shape, dtype=F.dtype)
    else:
        check_out(grad_W_out, "grad_W_out", W.shape, F.dtype, inputs)
    if b is None:
        if grad_b_out is not None:
            raise ValueError("grad_b_out was given but b is None: there is no intercept gradient")
    elif grad_b_out is None:
        grad_b_out = np.empty(W.shape[0], dtype=F.dtype)
    else:
        check_out(grad_b_out, "grad_b_out", (W.shape[0],), F.dtype, inputs + (("grad_W_out", grad_W_out),))
    scale = 1.0 / total
    loss_sum, sum_sq_W = _run_loss_gradient(
        W, F, b, labels, targets, kernel_weights, scale, l2, grad_W_out, grad_b_out, nt
    )
    return penalised_loss(loss_sum, scale, l2, sum_sq_W), grad_W_out, grad_b_out


def hessian_product(
    W,
    X,
    V,
    b=None,
    Vb=None,
    *,
    y=None,
    sample_weight=None,
    l2=0.0,
    reduction="mean",
    n_threads=None,
):
    """Hessian-vector product of the :func:`loss_and_gradient` objective.

    At parameters (W, b) and in direction (V, Vb) it returns ``H @ (V, Vb)``:

        HV_W = (1/S) sum_n w_n s_n x_n ((diag p_n - p_n p_n^T)(V x_n + Vb))^T + l2 V
        HV_b = (1/S) sum_n w_n s_n (diag p_n - p_n p_n^T)(V x_n + Vb)

    where ``s_n = sum_k y_nk`` (1 for integer labels or ``y=None``).  The
    Hessian of softmax cross-entropy depends on the targets only through
    those row sums.  One fused pass over X, no (N, K) temporary, and results
    that do not depend on ``n_threads``.

    Parameters
    ----------
    W : array_like of shape (K, D)
    X : array_like of shape (N, D)
    V : array_like of shape (K, D)
        Direction for W.
    b : array_like of shape (K,), optional
    Vb : array_like of shape (K,), optional
        Direction for b (zeros when omitted); only with b.
    y : array_like of shape (N,) or (N, K), optional
        Labels or targets; only the targets' row sums matter.
    sample_weight, l2, reduction, n_threads
        As in :func:`loss_and_gradient`.

    Returns
    -------
    HV_W : ndarray of shape (K, D)
    HV_b : ndarray of shape (K,) or None
        None when b is None.

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> HV_W, _ = csoftmax.hessian_product(np.zeros((2, 1)), np.ones((1, 1)), np.array([[1.0], [0.0]]))
    >>> HV_W
    array([[ 0.25],
           [-0.25]])
    """
    W, F, b = _model_inputs(W, X, b)
    V = as_weights(V, F.dtype, F.n_features, "V")
    if V.shape != W.shape:
        raise ValueError(f"V must have the shape of W {W.shape}; got {V.shape}")
    if b is None:
        if Vb is not None:
            raise ValueError("Vb was given but b is None: there is no intercept direction")
    else:
        Vb = np.zeros_like(b) if Vb is None else as_bias(Vb, F.dtype, W.shape[0], "Vb")
    weights = as_sample_weight(sample_weight, F.n_samples)
    check_reduction(reduction)
    l2 = check_l2(l2)
    weights, total = loss_weights(weights, F.n_samples, reduction)
    row_weights = weights
    if y is not None:
        labels, targets = as_targets(y, F.n_samples, W.shape[0], "y")
        if targets is not None:
            with np.errstate(over="ignore", invalid="ignore"):  # inf sums (and 0 * inf) are reported below
                sums = targets.sum(axis=1)
                row_weights = sums if weights is None else weights * sums
            if not np.isfinite(row_weights).all():
                raise ValueError(
                    "the row sums of the targets y (times sample_weight) overflow the floating-point range; "
                    "rescale y or sample_weight"
                )
        elif labels.size and (labels.min() < 0 or labels.max() >= W.shape[0]):
            raise_bad_label(labels, W.shape[0])
    nt = resolve_n_threads(n_threads)
    out_W = np.empty(W.shape, dtype=F.dtype)
    out_b = None if b is None else np.empty(W.shape[0], dtype=F.dtype)
    status, n_nonfinite = F.hessian_product(*F.args, W, b, V, Vb, row_weights, 1.0 / total, l2, out_W, out_b, nt)
    _check_status(status)
    if n_nonfinite or status & _STATUS_NONFINITE:
        raise_nonfinite(
            (("X", F.array), ("W", W), ("b", b), ("V", V), ("Vb", Vb), ("sample_weight", weights)),
            "the Hessian-vector product",
        )
    return out_W, out_b
