"""Multinomial softmax regression on Dask arrays (install with ``pip install csoftmax[dask]``).

Every row chunk of X is evaluated by csoftmax's compiled kernel on the worker
that holds it; the per-chunk sums (loss, gradients, weight total) are
tree-reduced and divided by the global weight total on the client.  The
parameters enter each evaluation's graph once, as one key that every chunk
task reads, so no task embeds them and each worker receives them once; no
task embeds data of X either: the client only ever receives K x D sized
results.

Supported: dense float32/float64 chunks (other real dtypes become float64)
and row chunks that are ``PackedBits`` or scipy sparse matrices in
:func:`loss_and_gradient`; ``SoftmaxRegression`` fits dense dask arrays with
``solver="lbfgs"`` only.
"""

import warnings

import numpy as np


def _require_dask():
    """Fail on import with the name of the extra when Dask is missing."""
    try:
        import dask  # noqa: F401
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as error:  # pragma: no cover - run in a subprocess by the tests
        raise ImportError(
            f"csoftmax.dask needs Dask, which is not installed here ({error}): install the 'dask' extra "
            "with pip install 'csoftmax[dask]' (it brings dask[array] and distributed)"
        ) from error


_require_dask()

import dask  # noqa: E402
import dask.array as da  # noqa: E402
from dask.base import tokenize  # noqa: E402
from distributed import default_client, wait  # noqa: E402

from . import _estimator, _functions  # noqa: E402
from ._validation import (  # noqa: E402
    as_bias,
    as_sample_weight,
    as_targets,
    as_weights,
    check_l2,
    check_reduction,
    raise_bad_label,
    raise_nonfinite,
    weight_total,
)

__all__ = ["loss_and_gradient", "SoftmaxRegression"]


def _raise_located(X, y, sample_weight, n_classes, start):
    """Raise the in-memory API's error for a row chunk that failed, with row
    indices counted in the whole arrays (the chunk starts at row ``start``).

    Called only after the kernel failed, so a successful evaluation pays for
    no extra pass.  Returns only when the cause is not found here (a chunk
    that is not a NumPy array); the caller then re-raises the kernel's error.
    """
    n_rows = X.shape[0]
    labels, targets = as_targets(y, n_rows, n_classes, "y", offset=start)
    weights = as_sample_weight(sample_weight, n_rows, offset=start)
    if labels is not None and labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise_bad_label(labels, n_classes, offset=start)
    if isinstance(X, np.ndarray):
        # W and b were checked on the client: what is left is X, the targets,
        # the weights, or logits that overflowed.
        raise_nonfinite((("X", X), ("y", targets), ("sample_weight", weights)), "the loss of a row chunk", start)


def _chunk_sums(X, y, sample_weight, parameters, start):
    """Unpenalised summed loss and gradients of one row chunk, and its weight total."""
    W, b = parameters
    try:
        loss, grad_W, grad_b = _functions.loss_and_gradient(
            W, X, y, b, sample_weight=sample_weight, reduction="sum", n_threads=1
        )
    except ValueError:
        _raise_located(X, y, sample_weight, W.shape[0], start)
        raise
    total = float(X.shape[0]) if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))
    return (
        float(loss),
        np.asarray(grad_W, dtype=np.float64),
        None if grad_b is None else np.asarray(grad_b, dtype=np.float64),
        total,
    )


def _add(*parts):
    loss = sum(p[0] for p in parts)
    grad_W = parts[0][1].copy()
    for p in parts[1:]:
        grad_W += p[1]
    grad_b = None
    if parts[0][2] is not None:
        grad_b = parts[0][2].copy()
        for p in parts[1:]:
            grad_b += p[2]
    return loss, grad_W, grad_b, sum(p[3] for p in parts)


def _tree_sum(tasks, split_every=4):
    while len(tasks) > 1:
        tasks = [dask.delayed(_add, pure=True)(*tasks[i : i + split_every]) for i in range(0, len(tasks), split_every)]
    return tasks[0]


def _check_X(X):
    """X as a 2-D dask array with one chunk across the features."""
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError(f"X must be a 2-d dask array, got {type(X).__name__} with ndim={getattr(X, 'ndim', None)}")
    if X.numblocks[1] != 1:
        raise ValueError("X must be chunked along rows only (one chunk across the features): X.rechunk({1: -1})")
    return X


def _row_starts(X):
    """The first row of every row chunk of X."""
    return [int(s) for s in np.cumsum((0,) + X.chunks[0][:-1])]


def _blocks(arr, X, name, what):
    """The row chunks of y or sample_weight as delayed objects, one per row chunk of X.

    They must have X's rows and X's row chunks: chunk i is read on the worker
    that holds chunk i of X, so a different chunking would need a rechunk
    (data moving between workers) on every evaluation.
    """
    n_chunks = X.numblocks[0]
    if arr is None:
        return [None] * n_chunks
    if not isinstance(arr, da.Array):
        raise TypeError(f"{name} must be a dask array when X is one, got {type(arr).__name__}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have one entry per row of X; got shape {arr.shape}")
    if arr.shape[0] != X.shape[0]:
        raise ValueError(f"{name} has {arr.shape[0]} {what} but X has {X.shape[0]} rows")
    if arr.chunks[0] != X.chunks[0]:
        i, (got, expected) = next((i, p) for i, p in enumerate(zip(arr.chunks[0], X.chunks[0])) if p[0] != p[1])
        raise ValueError(
            f"{name} must be chunked along rows like X: row chunk {i} of {name} has {got} rows where X's has "
            f"{expected}; rechunk it with {name}.rechunk({{0: X.chunks[0]}})"
        )
    if arr.ndim > 1 and any(n != 1 for n in arr.numblocks[1:]):
        arr = arr.rechunk({i: -1 for i in range(1, arr.ndim)})
    return list(arr.to_delayed().ravel())


def _parameters(W, b):
    """``(W, b)`` as one key of the graph, the one every chunk task reads.

    The workers fetch it once each per evaluation and no task embeds it.  It
    is a key of the graph rather than scattered data: when the worker that
    holds it dies, the scheduler makes it again elsewhere, where scattered
    data would be lost (and a broadcast scatter retries a dead worker).
    """
    return dask.delayed((W, b), traverse=False, name="csoftmax-parameters-" + tokenize(W, b))


def _graph(W, X, y, b, sample_weight):
    """The delayed sums ``(loss, grad_W, grad_b, weight total)`` over the row chunks of X."""
    parameters = _parameters(W, b)
    tasks = [
        dask.delayed(_chunk_sums, pure=True)(xb, yb, wb, parameters, start)
        for xb, yb, wb, start in zip(
            X.to_delayed().ravel(),
            _blocks(y, X, "y", "labels"),
            _blocks(sample_weight, X, "sample_weight", "entries"),
            _row_starts(X),
        )
    ]
    return _tree_sum(tasks)


def _evaluate(client, W, X, y, b, sample_weight, l2, reduction):
    """One distributed pass: the loss and gradients of ``loss_and_gradient`` at float64 ``(W, b)``."""
    loss, grad_W, grad_b, total = client.compute(_graph(W, X, y, b, sample_weight)).result()
    total = weight_total(np.array([total]), X.shape[0], reduction)
    loss, grad_W = loss / total, grad_W / total
    grad_b = None if grad_b is None else grad_b / total
    if l2:
        loss += 0.5 * l2 * float(np.sum(np.square(W, dtype=np.float64)))
        grad_W += l2 * W
    return loss, grad_W, grad_b


def loss_and_gradient(W, X, y, b=None, *, sample_weight=None, l2=0.0, reduction="mean", client=None):
    """:func:`csoftmax.loss_and_gradient` for a row-chunked dask array X, evaluated on the cluster.

    Parameters
    ----------
    W : array_like of shape (K, D)
        Weights; sent to the workers once per call.
    X : dask.array.Array of shape (N, D)
        Chunked along rows only (one chunk across the D features).  Chunks
        may be float32/float64 arrays, ``PackedBits`` or scipy sparse rows.
    y : dask.array.Array of shape (N,) or (N, K)
        Labels in [0, K) or targets, with X's row chunks.
    b : array_like of shape (K,), optional
        Intercepts; sent with W.
    sample_weight : dask.array.Array of shape (N,), optional
        Finite non-negative weights, with X's row chunks.
    l2 : float, default 0
        L2 penalty on W.
    reduction : {"mean", "sum"}, default "mean"
    client : distributed.Client, optional
        The client to compute with; the default client when None.

    Returns
    -------
    loss : float
    grad_W : ndarray of shape (K, D), float64
    grad_b : ndarray of shape (K,), float64, or None
        None when b is None.

    Notes
    -----
    Each row chunk is evaluated where it lives and the per-chunk sums are
    tree-reduced; the client receives only K x D sized results.  Errors in
    y, ``sample_weight`` or X found on a worker are those of the in-memory
    function, with row indices counted in the whole arrays.
    """
    check_reduction(reduction)
    l2 = check_l2(l2)
    client = client or default_client()
    X = _check_X(X)
    W = as_weights(W, np.dtype(np.float64), X.shape[1])
    b = as_bias(b, np.dtype(np.float64), W.shape[0])
    if not (np.isfinite(W).all() and (b is None or np.isfinite(b).all())):
        raise_nonfinite((("W", W), ("b", b)))
    return _evaluate(client, np.ascontiguousarray(W), X, y, b, sample_weight, l2, reduction)


def _chunk_moments(X, sample_weight, origin, start):
    """Weight total, and first and second moments about ``origin``, of one row chunk."""
    block = np.asarray(X, dtype=np.float64) - origin
    weights = np.ones(block.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    first = weights @ block
    block *= block
    second = weights @ block
    if not (np.isfinite(first).all() and np.isfinite(second).all()) and not np.isfinite(X).all():
        # The in-memory fit rejects non-finite X before fitting; this pass is
        # the first to read all of X, so it says where.
        raise_nonfinite((("X", X),), offset=start)
    return float(weights.sum()), first, second


def _checked_weight_total(sample_weight, start):
    """The sum of one row chunk of weights, which must be finite and non-negative."""
    return float(as_sample_weight(sample_weight, sample_weight.shape[0], offset=start).sum())


class _DaskObjective(_estimator._Objective):
    """The estimator's objective with one distributed pass per evaluation."""

    def __init__(self, X, y, sample_weight, l2, n_classes, fit_intercept, client):
        self.client = client
        super().__init__(X, y, sample_weight, l2, n_classes, fit_intercept, n_threads=1, precondition=False)
        self.shift, self.scale = self._statistics(center=fit_intercept)

    def _statistics(self, center):
        """The preconditioner's feature mean and scale, from one distributed pass over X."""
        X = self.X
        origin = np.asarray(X[0].compute(), dtype=np.float64)
        if not np.isfinite(origin).all():
            raise_nonfinite((("X", origin[np.newaxis]),))
        parts = [
            dask.delayed(_chunk_moments, pure=True)(xb, wb, origin, start)
            for xb, wb, start in zip(
                X.to_delayed().ravel(), _blocks(self.sample_weight, X, "sample_weight", "entries"), _row_starts(X)
            )
        ]
        moments = self.client.compute(parts, sync=True)
        total = sum(m[0] for m in moments)
        first = sum(m[1] for m in moments) / total
        second = sum(m[2] for m in moments) / total
        mean, scale = _estimator._mean_and_scale(origin, first, second, center)
        return (mean if center else None), scale

    def evaluate(self, W, b):
        W = np.ascontiguousarray(W, dtype=np.float64)
        b = None if b is None else np.ascontiguousarray(b, dtype=np.float64)
        loss, grad_W, grad_b = _evaluate(self.client, W, self.X, self.y, b, self.sample_weight, self.l2, "mean")
        if not (np.isfinite(loss) and np.isfinite(grad_W).all()):
            raise ValueError("non-finite result")
        return loss, grad_W, grad_b


def _fit_inputs(X, y, sample_weight):
    """X, y and sample_weight of ``fit`` checked as the in-memory fit checks them (without reading X):
    X 2-D and real with one chunk across the features, y and the weights 1-D with X's rows and row chunks."""
    if X.ndim != 2:
        raise ValueError(f"Expected a 2D array, got an array of shape {X.shape}")
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers; got dtype {X.dtype}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"Found array with shape {X.shape}: at least 1 sample and 1 feature are required")
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    y = da.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D class labels; got shape {y.shape}")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}")
    # y and the weights are small next to X: moving them to X's chunks keeps
    # each chunk task local to the worker holding its part of X.
    y = y.rechunk((X.chunks[0],))
    if sample_weight is not None:
        sample_weight = da.asarray(sample_weight)
        if sample_weight.dtype.kind not in "biuf":
            raise TypeError(f"sample_weight must hold real numbers; got dtype {sample_weight.dtype}")
        if sample_weight.ndim != 1:
            raise ValueError(
                f"sample_weight must be a 1-D array of shape ({X.shape[0]},); got shape {sample_weight.shape}"
            )
        if sample_weight.shape[0] != X.shape[0]:
            raise ValueError(f"sample_weight has {sample_weight.shape[0]} entries but X has {X.shape[0]} rows")
        sample_weight = sample_weight.astype(np.float64).rechunk((X.chunks[0],))
    return X, y, sample_weight


class SoftmaxRegression(_estimator.SoftmaxRegression):
    """:class:`csoftmax.SoftmaxRegression` fitted on dask arrays (``solver="lbfgs"`` only).

    ``fit`` persists X (and the encoded labels and weights) on the workers
    once, then runs full-batch L-BFGS on the client with one distributed
    evaluation per function call.  ``predict``/``predict_proba`` of a dask
    array return lazy dask arrays (one task per chunk); NumPy inputs go to
    the in-memory methods.  The computation runs on the default
    ``distributed.Client``.
    """

    def fit(self, X, y, sample_weight=None):
        """Fit the model on a dask array X (other inputs go to the in-memory fit).

        Parameters
        ----------
        X : dask.array.Array of shape (n_samples, n_features)
            Training data, real numbers; float32 and float64 are kept, other
            dtypes become float64.  Rechunked to one chunk across the
            features if needed, and persisted on the workers.
        y : dask.array.Array or array_like of shape (n_samples,)
            Class labels; rechunked to X's row chunks.
        sample_weight : dask.array.Array or array_like of shape (n_samples,), optional
            Finite non-negative weights; rechunked to X's row chunks.

        Returns
        -------
        self : SoftmaxRegression
            The fitted estimator.
        """
        if not isinstance(X, da.Array):
            return super().fit(X, y, sample_weight)
        _estimator._validate_params(self)
        if self.solver != "lbfgs":
            raise ValueError(f"csoftmax.dask.SoftmaxRegression supports solver='lbfgs' only, got {self.solver!r}")
        if self.class_weight is not None:
            raise ValueError("csoftmax.dask.SoftmaxRegression does not support class_weight yet")
        client = default_client()
        X, y, sample_weight = _fit_inputs(X, y, sample_weight)
        classes = da.unique(y).compute()
        # The in-memory checks of y (NaN, continuous values) hold for the
        # classes as they hold for every label.
        _estimator._local_check_y(classes, len(classes))
        if len(classes) < 2:
            raise ValueError("SoftmaxRegression needs samples of at least 2 classes in the data")
        y_enc = y.map_blocks(lambda yb: np.searchsorted(classes, yb).astype(np.int64), dtype=np.int64)
        persisted = client.persist([X, y_enc] if sample_weight is None else [X, y_enc, sample_weight])
        X, y_enc = persisted[:2]
        sample_weight = persisted[2] if sample_weight is not None else None
        wait([a for a in (X, y_enc, sample_weight) if a is not None])
        if sample_weight is None:
            total = float(X.shape[0])
        else:
            parts = [
                dask.delayed(_checked_weight_total, pure=True)(wb, start)
                for wb, start in zip(sample_weight.to_delayed().ravel(), _row_starts(X))
            ]
            total = sum(client.compute(parts, sync=True))
        if not total > 0:
            raise ValueError("The sample weights sum to zero: at least one sample needs a non-zero weight")
        l2 = 0.0 if np.isinf(self.C) else 1.0 / (float(self.C) * total)
        n_classes = len(classes)
        objective = _DaskObjective(X, y_enc, sample_weight, l2, n_classes, self.fit_intercept, client)
        theta0 = objective.pack(np.zeros((n_classes, X.shape[1])), np.zeros(n_classes))
        theta, n_iter, losses, problem = _estimator._lbfgs(objective, theta0, self.max_iter, float(self.tol), self.verbose)
        if problem is not None:
            warnings.warn(f"{problem}. Increase max_iter, or scale the data.", _estimator.ConvergenceWarning, stacklevel=2)
        W, b = objective.unpack(theta)
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.coef_ = np.array(W, dtype=X.dtype)
        self.intercept_ = np.array(b, dtype=X.dtype) if self.fit_intercept else np.zeros(n_classes, X.dtype)
        self.n_iter_ = n_iter
        self.loss_curve_ = losses
        return self

    def predict_proba(self, X):
        if not isinstance(X, da.Array):
            return super().predict_proba(X)
        self._check_is_fitted()
        coef, bias = self.coef_, self._bias()
        return X.map_blocks(
            lambda xb: _functions.predict_proba(coef, xb, bias, n_threads=1),
            chunks=(X.chunks[0], (len(self.classes_),)),
            dtype=self.coef_.dtype,
        )

    def predict(self, X):
        if not isinstance(X, da.Array):
            return super().predict(X)
        self._check_is_fitted()
        coef, bias, classes = self.coef_, self._bias(), self.classes_
        return X.map_blocks(
            lambda xb: classes[_functions.predict(coef, xb, bias, n_threads=1)],
            drop_axis=1,
            dtype=classes.dtype,
        )
