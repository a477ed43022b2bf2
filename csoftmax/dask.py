"""Multinomial softmax regression on Dask arrays (install with ``pip install csoftmax[dask]``).

Every row chunk of X is evaluated by csoftmax's compiled kernel on the worker
that holds it; the per-chunk sums (loss, gradients, weight total) are
tree-reduced and divided by the global weight total on the client.  The
parameters are scattered once per evaluation, so no task embeds them, and no
task embeds data of X: the client only ever receives K x D sized results.

Supported: dense float32/float64 chunks (other real dtypes become float64)
and row chunks that are ``PackedBits`` or scipy sparse matrices in
:func:`loss_and_gradient`; ``SoftmaxRegression`` fits dense dask arrays with
``solver="lbfgs"`` only.
"""

import numpy as np


def _require_dask():
    """Fail on import with the name of the extra when Dask is missing."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "csoftmax.dask needs Dask: install the 'dask' extra, pip install 'csoftmax[dask]' "
            "(dask[array] and distributed)"
        ) from error


_require_dask()

import dask  # noqa: E402
import dask.array as da  # noqa: E402
from distributed import default_client, wait  # noqa: E402

from . import _estimator, _functions
from ._validation import check_l2, check_reduction, weight_total

__all__ = ["loss_and_gradient", "SoftmaxRegression"]


def _chunk_sums(X, y, sample_weight, W, b):
    """Unpenalised summed loss and gradients of one row chunk, and its weight total."""
    loss, grad_W, grad_b = _functions.loss_and_gradient(
        W, X, y, b, sample_weight=sample_weight, reduction="sum", n_threads=1
    )
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


def _blocks(arr, n_chunks, name):
    if arr is None:
        return [None] * n_chunks
    if isinstance(arr, da.Array):
        if arr.numblocks[0] != n_chunks:
            raise ValueError(f"{name} must be chunked along rows like X ({n_chunks} row chunks), got {arr.numblocks[0]}")
        return list(arr.to_delayed().ravel())
    raise TypeError(f"{name} must be a dask array when X is one, got {type(arr).__name__}")


def _graph(W, X, y, b, sample_weight, client):
    if not isinstance(X, da.Array) or X.ndim != 2:
        raise TypeError(f"X must be a 2-d dask array, got {type(X).__name__}")
    if X.numblocks[1] != 1:
        raise ValueError("X must be chunked along rows only (one chunk across the features): X.rechunk({1: -1})")
    n_chunks = X.numblocks[0]
    Wf = client.scatter(W, broadcast=True, hash=False)
    bf = None if b is None else client.scatter(b, broadcast=True, hash=False)
    tasks = [
        dask.delayed(_chunk_sums, pure=True)(xb, yb, wb, Wf, bf)
        for xb, yb, wb in zip(
            X.to_delayed().ravel(), _blocks(y, n_chunks, "y"), _blocks(sample_weight, n_chunks, "sample_weight")
        )
    ]
    return _tree_sum(tasks)


def _finish(sums, W, l2, reduction):
    loss, grad_W, grad_b, total = sums
    total = weight_total(np.array([total]), 1, reduction)
    loss, grad_W = loss / total, grad_W / total
    grad_b = None if grad_b is None else grad_b / total
    if l2:
        loss += 0.5 * l2 * float(np.sum(np.square(W, dtype=np.float64)))
        grad_W += l2 * W
    return loss, grad_W, grad_b


def loss_and_gradient(W, X, y, b=None, *, sample_weight=None, l2=0.0, reduction="mean", client=None):
    """:func:`csoftmax.loss_and_gradient` for a row-chunked dask array X, evaluated on the cluster.

    y and ``sample_weight`` are dask arrays chunked along rows like X.  W
    (and b) are scattered to the workers once; each chunk's sums are computed
    where the chunk lives and tree-reduced.  Returns ``(loss, grad_W, grad_b)``
    as float64 NumPy values (``grad_b`` is None without b).
    """
    check_reduction(reduction)
    l2 = check_l2(l2)
    client = client or default_client()
    W = np.ascontiguousarray(W, dtype=np.float64)
    b = None if b is None else np.ascontiguousarray(b, dtype=np.float64)
    sums = client.compute(_graph(W, X, y, b, sample_weight, client)).result()
    return _finish(sums, W, l2, reduction)


def _chunk_moments(X, sample_weight, origin):
    block = np.asarray(X, dtype=np.float64) - origin
    weights = np.ones(block.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    first = weights @ block
    block *= block
    return float(weights.sum()), first, weights @ block


class _DaskObjective(_estimator._Objective):
    """The estimator's objective with one distributed pass per evaluation."""

    def __init__(self, X, y, sample_weight, l2, n_classes, fit_intercept, client):
        self.client = client
        super().__init__(X, y, sample_weight, l2, n_classes, fit_intercept, n_threads=1, precondition=False)
        self.shift, self.scale = self._statistics(center=fit_intercept)

    def _statistics(self, center):
        X, w = self.X, self.sample_weight
        origin = np.asarray(X[0].compute(), dtype=np.float64)
        parts = [
            dask.delayed(_chunk_moments, pure=True)(xb, wb, origin)
            for xb, wb in zip(X.to_delayed().ravel(), _blocks(w, X.numblocks[0], "sample_weight"))
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
        sums = self.client.compute(_graph(W, self.X, self.y, b, self.sample_weight, self.client)).result()
        loss, grad_W, grad_b = _finish(sums, W, self.l2, "mean")
        if not (np.isfinite(loss) and np.isfinite(grad_W).all()):
            raise ValueError("non-finite result")
        return loss, grad_W, grad_b


class SoftmaxRegression(_estimator.SoftmaxRegression):
    """:class:`csoftmax.SoftmaxRegression` fitted on dask arrays (``solver="lbfgs"`` only).

    ``fit`` persists X (and the encoded labels and weights) on the workers
    once, then runs full-batch L-BFGS on the client with one distributed
    evaluation per function call.  ``predict``/``predict_proba`` of a dask
    array return lazy dask arrays (one task per chunk); NumPy inputs go to
    the in-memory methods.
    """

    def fit(self, X, y, sample_weight=None):
        if not isinstance(X, da.Array):
            return super().fit(X, y, sample_weight)
        _estimator._validate_params(self)
        if self.solver != "lbfgs":
            raise ValueError(f"csoftmax.dask.SoftmaxRegression supports solver='lbfgs' only, got {self.solver!r}")
        if self.class_weight is not None:
            raise ValueError("csoftmax.dask.SoftmaxRegression does not support class_weight yet")
        client = default_client()
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        y = da.asarray(y).rechunk((X.chunks[0],))
        classes = da.unique(y).compute()
        if len(classes) < 2:
            raise ValueError("SoftmaxRegression needs samples of at least 2 classes in the data")
        y_enc = y.map_blocks(lambda yb: np.searchsorted(classes, yb).astype(np.int64), dtype=np.int64)
        if sample_weight is not None:
            sample_weight = da.asarray(sample_weight).astype(np.float64).rechunk((X.chunks[0],))
        persisted = client.persist([X, y_enc] if sample_weight is None else [X, y_enc, sample_weight])
        X, y_enc = persisted[:2]
        sample_weight = persisted[2] if sample_weight is not None else None
        wait([a for a in (X, y_enc, sample_weight) if a is not None])
        total = float(X.shape[0]) if sample_weight is None else float(sample_weight.sum().compute())
        if not total > 0:
            raise ValueError("The sample weights sum to zero: at least one sample needs a non-zero weight")
        l2 = 0.0 if np.isinf(self.C) else 1.0 / (float(self.C) * total)
        n_classes = len(classes)
        objective = _DaskObjective(X, y_enc, sample_weight, l2, n_classes, self.fit_intercept, client)
        theta0 = objective.pack(np.zeros((n_classes, X.shape[1])), np.zeros(n_classes))
        theta, n_iter, losses, problem = _estimator._lbfgs(objective, theta0, self.max_iter, float(self.tol), self.verbose)
        if problem is not None:
            import warnings

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
