"""The one place where user input is checked and converted.

Every public function funnels its arguments through these helpers before the
compiled kernels see them, so the kernels may assume: float32/float64 arrays of
the right ndim and matching shapes, strides that are whole multiples of the
item size, native byte order, contiguous 1-D vectors, writable C-contiguous
out-buffers that overlap no input.  Messages name the argument and say what
was expected and what was received.

Non-finite values in X, W, b and sample weights are *not* searched for here:
that would cost an extra pass over X on every call.  The kernels' results are
the cheap signal (a NaN or inf in any input makes the loss or a row
non-finite), and :func:`raise_nonfinite` then finds the culprit.
"""

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)
REDUCTIONS = ("mean", "sum")


def _describe(obj):
    if isinstance(obj, np.ndarray):
        return f"array of dtype {obj.dtype} and shape {obj.shape}"
    return f"{type(obj).__name__}"


def _as_array(value, name):
    """``np.asarray`` that turns conversion failures into a TypeError naming ``name``."""
    if isinstance(value, np.ndarray):
        return value
    if value is None or isinstance(value, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be array-like of numbers; got {_describe(value)}")
    if is_sparse(value):
        raise TypeError(f"{name}: sparse matrices are not supported here; got {type(value).__name__}")
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like of numbers; could not convert {_describe(value)}: {exc}") from None


def _fix_layout(arr):
    """Native byte order, aligned data and strides that are whole multiples of
    the item size (the kernels dereference typed pointers: a misaligned load
    is undefined behaviour in C, even where the CPU tolerates it)."""
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    itemsize = arr.dtype.itemsize
    if not arr.flags.aligned or any(s % itemsize for s in arr.strides):
        arr = np.array(arr, order="C")
    return arr


def contiguous(arr, dtype=None):
    """``np.ascontiguousarray`` that also guarantees aligned data (a copy of
    a misaligned array, e.g. from ``np.frombuffer`` at an odd offset)."""
    arr = np.ascontiguousarray(arr, dtype=dtype)
    return arr if arr.flags.aligned else arr.copy()


def _check_real_dtype(dtype, name, what="real numbers (float32 or float64)"):
    """Reject dtypes that are not plain real numbers: complex, object, strings,
    datetimes, extended precision (it would be rounded silently) and float16
    (rejected for X, so for every argument alike: one rule is easier to
    predict than per-argument exceptions)."""
    if dtype.kind not in "biuf" or dtype.itemsize > 8 or dtype == np.float16:
        raise TypeError(f"{name} must hold {what}; got dtype {dtype}")


def _check_ndim(arr, ndim, name, what):
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array {what}; got ndim={arr.ndim} with shape {arr.shape}")


def as_float_matrix(X, name="X"):
    """A 2-D float32/float64 array; bool and integer data become float64.

    F-ordered and strided arrays are kept as they are (the kernels read any
    strides): no copy of X is made for a float32/float64 input.
    """
    X = _as_array(X, name)
    if not X.dtype.isnative:
        X = X.astype(X.dtype.newbyteorder("="))
    dtype = X.dtype
    if dtype not in FLOAT_DTYPES:
        if dtype.kind in "biu":
            X = X.astype(np.float64)
        else:
            raise TypeError(
                f"{name} must hold real numbers of dtype float32 or float64 (bool and integer "
                f"are converted to float64); got dtype {dtype}"
            )
    _check_ndim(X, 2, name, "of shape (n_samples, n_features)")
    return _fix_layout(X)


def is_sparse(X):
    """A scipy.sparse matrix or array (checked without importing scipy)."""
    return hasattr(X, "tocsr") and hasattr(X, "nnz") and hasattr(X, "format")


def as_csr_parts(X, name="X"):
    """(values float64, indices int64, indptr int64, n_rows, n_features, dtype) of a sparse X.

    CSC, COO and other formats are converted to CSR once.  The output dtype is
    float32 for float32 data and float64 otherwise.  Indices must lie in
    [0, n_features) and indptr must be non-decreasing from 0 to nnz.
    """
    if X.format != "csr":
        X = X.tocsr()
    if len(X.shape) != 2:
        raise ValueError(f"{name} must be 2-D; got shape {X.shape}")
    n_rows, n_features = X.shape
    data = np.asarray(X.data)
    _check_real_dtype(data.dtype, f"{name} (sparse)", "real numbers")
    dtype = np.dtype(np.float32) if data.dtype == np.float32 else np.dtype(np.float64)
    values = contiguous(data, np.float64)
    indices = contiguous(X.indices, np.int64)
    indptr = contiguous(X.indptr, np.int64)
    if indptr.shape != (n_rows + 1,) or indptr[0] != 0 or indptr[-1] != indices.shape[0] or values.shape != indices.shape:
        raise ValueError(
            f"{name} (sparse) has an inconsistent structure: indptr must have {n_rows + 1} entries "
            f"rising from 0 to nnz={indices.shape[0]}"
        )
    if n_rows and np.any(indptr[1:] < indptr[:-1]):
        raise ValueError(f"{name} (sparse) has a decreasing indptr")
    if indices.size and (indices.min() < 0 or indices.max() >= n_features):
        bad = int(indices[(indices < 0) | (indices >= n_features)][0])
        raise ValueError(f"{name} (sparse) has a column index {bad} outside [0, {n_features})")
    return values, indices, indptr, n_rows, n_features, dtype


def as_feature_matrix(X, name="X"):
    """X for the model functions: float32/float64 kept, uint8 and bool kept
    (bool viewed as uint8, no copy), other integers converted to float64."""
    X = _as_array(X, name)
    if X.dtype == np.bool_:
        _check_ndim(X, 2, name, "of shape (n_samples, n_features)")
        return _fix_layout(X.view(np.uint8))
    if X.dtype == np.uint8:
        _check_ndim(X, 2, name, "of shape (n_samples, n_features)")
        return _fix_layout(X)
    return as_float_matrix(X, name)


def parameter_dtype(W):
    """The float dtype of the computation when X does not decide it (uint8,
    bool, PackedBits): float32 when W is float32, else float64."""
    dtype = getattr(W, "dtype", None)
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _to_dtype(arr, dtype, name):
    """``arr`` in the dtype of the computation.  A finite value beyond that
    dtype's range (float64 parameters with float32 X) is an error here, where
    NumPy would only warn and make it inf."""
    if arr.dtype == dtype:
        return arr
    with np.errstate(over="ignore"):
        out = arr.astype(dtype)
    if out.dtype.kind == "f" and out.size and not np.isfinite(out).all():
        overflowed = ~np.isfinite(out) & np.isfinite(arr)
        if overflowed.any():
            index = tuple(int(v) for v in np.argwhere(overflowed)[0])
            raise ValueError(
                f"{name} holds {arr[index]} at index {index[0] if len(index) == 1 else index}, beyond the range "
                f"of {dtype}, the dtype of the computation (X's)"
            )
    return out


def as_weights(W, dtype, n_features, name="W"):
    """W of shape (K, D) in ``dtype`` (a float copy only when the dtype differs)."""
    W = _as_array(W, name)
    _check_real_dtype(W.dtype, name)
    _check_ndim(W, 2, name, "of shape (n_classes, n_features)")
    if W.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row (class); got shape {W.shape}")
    if W.shape[1] != n_features:
        raise ValueError(
            f"{name} has {W.shape[1]} features (columns) but X has {n_features}: "
            f"expected {name} of shape (n_classes, {n_features}), got {W.shape}"
        )
    return _fix_layout(_to_dtype(W, dtype, name))


def as_bias(b, dtype, n_classes, name="b"):
    """b of shape (K,) in ``dtype``, contiguous; None stays None."""
    if b is None:
        return None
    b = _as_array(b, name)
    _check_real_dtype(b.dtype, name)
    _check_ndim(b, 1, name, "of shape (n_classes,)")
    if b.shape[0] != n_classes:
        raise ValueError(f"{name} must have shape ({n_classes},) to match W's {n_classes} classes; got {b.shape}")
    return contiguous(_to_dtype(b, dtype, name))


def as_targets(y, n_samples, n_classes, name="y", offset=0):
    """Labels (N,) as contiguous int64, or soft targets (N, K) as float64.

    Returns ``(labels, targets)`` with exactly one of them not None.  Label
    range is checked by the kernel (no extra pass); see :func:`raise_bad_label`.
    ``offset`` is added to the row indices in messages, for a block of rows
    that starts at row ``offset`` of the whole data.
    """
    y = _as_array(y, name)
    kind = y.dtype.kind
    if y.ndim == 1:
        if y.shape[0] != n_samples:
            raise ValueError(f"{name} has {y.shape[0]} labels but X has {n_samples} rows")
        if kind in "iub":
            if y.dtype != _INT64 or not (y.flags.c_contiguous and y.flags.aligned):
                if kind == "u" and y.dtype.itemsize == 8 and y.size and y.max() > np.iinfo(np.int64).max:
                    raise ValueError(f"{name} holds a label out of range [0, {n_classes}): {y.max()}")
                y = contiguous(y, np.int64)
            return y, None
        if kind == "f":
            _check_real_dtype(y.dtype, name, f"integer class labels in [0, {n_classes})")
            if y.size:
                finite = np.isfinite(y)
                if not finite.all():
                    i = int(np.flatnonzero(~finite)[0])
                    raise ValueError(f"{name} must hold integer class labels; got {y[i]} at index {i + offset}")
                too_big = np.abs(y) >= 2.0**62
                if too_big.any():
                    i = int(np.flatnonzero(too_big)[0])
                    raise ValueError(
                        f"{name} holds a label out of range [0, {n_classes}): {y[i]} at index {i + offset}"
                    )
                frac = y != np.floor(y)
                if frac.any():
                    i = int(np.flatnonzero(frac)[0])
                    raise ValueError(
                        f"{name} must hold integer class labels in [0, {n_classes}); got non-integer {y[i]} "
                        f"at index {i + offset}"
                    )
            return contiguous(y, np.int64), None
        raise TypeError(
            f"{name} must hold integer class labels in [0, {n_classes}) or be an (N, K) array of "
            f"targets; got dtype {y.dtype}"
        )
    if y.ndim == 2:
        if y.shape != (n_samples, n_classes):
            raise ValueError(
                f"{name} as targets must have shape (n_samples, n_classes) = ({n_samples}, {n_classes}); got {y.shape}"
            )
        _check_real_dtype(y.dtype, f"{name} targets", "real numbers")
        if y.dtype != _FLOAT64:
            y = y.astype(np.float64)
        y = _fix_layout(y)
        if y.size:
            low = y.min()
            if not (low >= 0.0) or not np.isfinite(y.max()):
                bad = ~(np.isfinite(y) & (y >= 0))
                r, c = (int(v) for v in np.argwhere(bad)[0])
                raise ValueError(
                    f"{name} targets must be finite and non-negative; got {y[r, c]} at row {r + offset}, column {c}"
                )
        return None, y
    raise ValueError(
        f"{name} must be 1-D labels of shape ({n_samples},) or 2-D targets of shape "
        f"({n_samples}, {n_classes}); got ndim={y.ndim} with shape {y.shape}"
    )


def as_sample_weight(sample_weight, n_samples, name="sample_weight", offset=0):
    """Weights (N,) as contiguous float64, or None; must be finite and non-negative.

    ``offset`` is added to the index in messages (see :func:`as_targets`).
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, float(sample_weight))
    w = _as_array(sample_weight, name)
    _check_real_dtype(w.dtype, name, "real numbers")
    _check_ndim(w, 1, name, f"of shape ({n_samples},)")
    if w.shape[0] != n_samples:
        raise ValueError(f"{name} has {w.shape[0]} entries but X has {n_samples} rows")
    w = contiguous(w, np.float64)
    if w.size and not (w.min() >= 0.0 and np.isfinite(w.max())):
        bad = ~(np.isfinite(w) & (w >= 0))
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite and non-negative; got {w[i]} at index {i + offset}")
    return w


def check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")


def weight_total(weights, n_samples, reduction):
    """The divisor S of the loss: sum of weights (or N) for 'mean', 1 for 'sum'."""
    if reduction == "sum":
        return 1.0
    with np.errstate(over="ignore"):  # an overflowing sum is handled by loss_weights
        total = float(n_samples) if weights is None else float(weights.sum())
    if not total > 0.0:
        raise ValueError(
            "reduction='mean' divides by the sum of sample weights, which is 0 here "
            f"(n_samples={n_samples}); use reduction='sum' or give positive weights"
        )
    return total


# Weight totals outside this range are brought into it (see loss_weights): the
# loss per unit of weight would otherwise overflow or lose its precision.
_TOTAL_LOW, _TOTAL_HIGH = 1e-250, 1e250


def loss_weights(weights, n_samples, reduction):
    """``(weights, S)``: the sample weights the kernels use and the divisor S.

    With ``reduction="mean"`` only the ratios of the weights matter, so
    weights whose sum overflows, or is so small that ``1 / S`` overflows,
    are divided by their largest value first (a new array: the caller's is
    left alone).  Otherwise as :func:`weight_total`.
    """
    total = weight_total(weights, n_samples, reduction)
    if reduction == "mean" and weights is not None and not _TOTAL_LOW <= total <= _TOTAL_HIGH:
        weights = weights / weights.max()
        total = float(weights.sum())
    return weights, total


def penalised_loss(loss_sum, scale, l2, sum_sq_W):
    """``loss_sum * scale + (l2 / 2) ||W||^2``; without a penalty ``||W||^2``
    is not used at all (for huge W it overflows, and 0 * inf would be NaN)."""
    loss = loss_sum * scale
    if l2:
        loss += 0.5 * l2 * sum_sq_W
        if not loss < np.inf:
            raise ValueError(
                f"the L2 penalty (l2 / 2) ||W||^2 overflows the floating-point range (l2={l2}); rescale W or lower l2"
            )
    return loss


def check_l2(l2):
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real):
        raise TypeError(f"l2 must be a real number >= 0; got {type(l2).__name__} {l2!r}")
    l2 = float(l2)
    if not (l2 >= 0.0 and np.isfinite(l2)):
        raise ValueError(f"l2 must be a finite number >= 0; got {l2}")
    return l2


def check_out(out, name, shape, dtype, inputs):
    """An out-buffer must match exactly: ndarray, shape, dtype, C order, writable, no overlap."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}; got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}; got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.aligned:
        raise ValueError(f"{name} must be aligned to its item size")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable; got a read-only array")
    if not out.dtype.isnative:
        raise ValueError(f"{name} must be in native byte order")
    for other_name, other in inputs:
        if other is not None and isinstance(other, np.ndarray) and np.may_share_memory(out, other):
            try:
                overlap = np.shares_memory(out, other, max_work=1 << 20)
            except np.exceptions.TooHardError:
                overlap = True
            if overlap:
                raise ValueError(f"{name} must not overlap the input {other_name}")
    return out


def raise_nonfinite(arrays, what="the result", offset=0):
    """Name the first input holding NaN or inf; if none, the computation overflowed.

    ``offset`` is added to the row index in messages (see :func:`as_targets`);
    give it only for arrays that are all blocks of rows.
    """
    for name, arr in arrays:
        if arr is not None and arr.size and not np.isfinite(arr).all():
            index = tuple(int(v) for v in np.argwhere(~np.isfinite(arr))[0])
            shown = (index[0] + offset,) + index[1:]
            where = shown[0] if len(shown) == 1 else shown
            raise ValueError(f"{name} contains NaN or infinity (first at index {where}: {arr[index]})")
    raise ValueError(
        f"{what} is not finite although every input is: the logits or the (weighted) sums overflowed "
        "the floating-point range; rescale X, W or sample_weight"
    )


def raise_bad_label(labels, n_classes, name="y", offset=0):
    """Name the first label outside [0, n_classes) (``offset`` as in :func:`as_targets`)."""
    bad = (labels < 0) | (labels >= n_classes)
    i = int(np.flatnonzero(bad)[0])
    raise ValueError(f"{name} holds a label out of range [0, {n_classes}): {labels[i]} at index {i + offset}")
