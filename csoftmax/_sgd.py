"""Mini-batch SGD whose epochs run in compiled code.

Each epoch (shuffle of the row order, gather of the rows, forward pass,
gradient, update with momentum, learning-rate schedule) runs without the GIL
in ``_dense_impl.pxi`` (``shuffle_rows``, then ``sgd_epoch_core``); Python is
entered once per epoch to record the loss curve, for early stopping and for
progress.  The shuffle's seed is drawn from the estimator's generator, so a
``random_state`` gives the same run every time.

Sparse CSR rows have no compiled epoch: :func:`_csr_sgd_epoch` runs the same
epoch with a Python loop over the mini-batches, each batch going through the
compiled CSR loss-and-gradient kernel (rows are gathered a block of batches
at a time).  It computes the same updates; the price is a few tens of
microseconds of interpreter work per batch, so larger batches pay it less.

Objective (as for the full-batch solvers): the weighted mean cross-entropy
plus ``(l2 / 2) ||W||_F^2``.  A batch B gives the unbiased gradient estimate
``N / (S |B|) sum_{n in B} w_n grad_n + l2 W`` with ``S = sum_n w_n``.

Update: classical momentum, ``v <- momentum v - eta g; W <- W + v``.

Schedules (``learning_rate``):
- ``"constant"``: ``eta = eta0``;
- ``"invscaling"``: ``eta = eta0 / (1 + t)^power_t`` with t the step count;
- ``"optimal"``: ``eta = 1 / (l2 (t0 + t))`` (needs l2 > 0; t0 as in Bottou's SGD);
- ``"adaptive"``: ``eta = eta0`` while the loss improves; divided by 5 after
  ``n_iter_no_change`` epochs without improvement; stops below 1e-6.
"""

import dataclasses
import functools
import numbers

import numpy as np

from ._dispatch import kernels as _kernels

SCHEDULES = {"constant": 0, "invscaling": 1, "optimal": 2, "adaptive": 0}
_STATUS_NO_MEMORY = 1
_STATUS_BAD_LABEL = 2
_STATUS_NONFINITE = 4
# Rows of sparse X gathered at once by the Python epoch (whole batches).
_CSR_BLOCK_ROWS = 4096


@dataclasses.dataclass
class SGDResult:
    W: np.ndarray
    b: np.ndarray
    n_epochs: int
    n_steps: int
    loss_curve: list
    validation_scores: list
    converged: bool
    diverged: bool


def as_generator(random_state):
    """The epochs' random generator from ``random_state``: None, an integer, a
    ``numpy.random.Generator`` (used as it is) or a legacy ``RandomState``
    (one seed drawn from it)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(int(random_state.randint(np.iinfo(np.int32).max)))
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_))
    ):
        return np.random.default_rng(random_state)
    raise ValueError(f"random_state must be None, an integer or a numpy random generator; got {random_state!r}")


def _accuracy(features, W, b, labels):
    from ._functions import predict

    return float(np.mean(predict(W, features, b) == labels))


def sgd_train(
    features,
    labels,
    sample_weight,
    W,
    b,
    *,
    l2,
    batch_size=32,
    max_epochs=100,
    tol=1e-4,
    learning_rate="invscaling",
    eta0=0.1,
    power_t=0.25,
    momentum=0.9,
    shuffle=True,
    early_stopping=False,
    validation_fraction=0.1,
    n_iter_no_change=5,
    random_state=None,
    epoch_callback=None,
    state=None,
):
    """Train (W, b) in place by mini-batch SGD; returns an :class:`SGDResult`.

    ``features`` is the object from ``csoftmax._functions.features_of`` (any
    input kind); ``labels`` int64 class indices; ``W`` (K, D) and ``b`` (K,)
    float64 arrays (``b`` may be None).  ``epoch_callback(epoch, loss)`` is
    called after each epoch.  ``state`` (a dict) carries the momentum
    buffers, the step count and the random generator from one call to the
    next (``partial_fit``); it is created when empty and updated in place.
    """
    if learning_rate not in SCHEDULES:
        raise ValueError(f"learning_rate must be one of {sorted(SCHEDULES)}; got {learning_rate!r}")
    if learning_rate == "optimal" and not l2 > 0:
        raise ValueError("learning_rate='optimal' needs a positive L2 penalty (finite C)")
    state = {} if state is None else state
    rng = state.get("rng")
    if rng is None:
        rng = state["rng"] = as_generator(random_state)
    run_epoch = features.sgd_epoch
    if run_epoch is None:  # sparse CSR rows
        run_epoch = functools.partial(_csr_sgd_epoch, features.loss_gradient, features.dtype)
    n = features.n_samples
    weights = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=np.float64)
    rows = np.arange(n, dtype=np.int64)
    validation = None
    if early_stopping:
        n_val = max(1, int(round(validation_fraction * n)))
        if n_val >= n:
            raise ValueError(f"validation_fraction={validation_fraction} leaves no training data")
        perm = rng.permutation(n)
        validation, rows = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    total_weight = float(rows.size if weights is None else weights[rows].sum())
    weight_scale = rows.size / total_weight if total_weight > 0 else 1.0
    W_velocity = state.setdefault("W_velocity", np.zeros_like(W))
    b_velocity = state.setdefault("b_velocity", None if b is None else np.zeros_like(b))
    schedule = SCHEDULES[learning_rate]
    eta = float(eta0)
    # Bottou's heuristic start of the "optimal" schedule (as scikit-learn's SGD).
    t0 = 1.0
    if schedule == 2:
        typw = np.sqrt(1.0 / np.sqrt(l2))
        t0 = 1.0 / (typw * l2)
    step = state.get("step", 0.0)
    loss_curve, scores = [], []
    best, best_W, best_b, stale = np.inf, None, None, 0
    converged = diverged = False
    W_backup, b_backup = W.copy(), None if b is None else b.copy()
    epoch = 0
    order = rows.copy() if shuffle else rows
    for epoch in range(1, max_epochs + 1):
        if shuffle:
            # Compiled and without the GIL, like the rest of the epoch.
            _kernels.shuffle_rows(order, int(rng.integers(0, 2**63)))
        status, loss_sum, weight_sum, n_steps = run_epoch(
            *features.args, order, labels, weights, W, b, W_velocity, b_velocity,
            int(batch_size), float(l2), float(weight_scale), schedule, eta, float(power_t),
            float(t0), float(momentum), step,
        )
        if status & _STATUS_NO_MEMORY:
            raise MemoryError("csoftmax: could not allocate the SGD buffers")
        if status & _STATUS_BAD_LABEL:
            raise ValueError("y holds a label out of range")
        if status or not (np.isfinite(W).all() and (b is None or np.isfinite(b).all())):
            # Diverged: go back to the last finite parameters.
            W[...] = W_backup
            if b is not None:
                b[...] = b_backup
            diverged = True
            break
        W_backup[...] = W
        if b is not None:
            b_backup[...] = b
        step += n_steps
        loss = loss_sum / weight_sum + 0.5 * l2 * float(np.vdot(W, W)) if weight_sum > 0 else 0.0
        loss_curve.append(loss)
        if epoch_callback is not None:
            epoch_callback(epoch, loss)
        if early_stopping:
            score = _accuracy(features_subset(features, validation), W, b, labels[validation])
            scores.append(score)
            improved = score > best + tol if best != np.inf else True
            if best == np.inf or score > best:
                best_W, best_b = W.copy(), None if b is None else b.copy()
            best = score if best == np.inf else max(best, score)
            metric_improved = improved
        else:
            metric_improved = loss < best - tol
            best = min(best, loss)
        stale = 0 if metric_improved else stale + 1
        if stale >= n_iter_no_change:
            if learning_rate == "adaptive" and eta > 1e-6:
                eta /= 5.0
                stale = 0
                if eta > 1e-6:
                    continue
            converged = True
            break
    state["step"] = step
    if early_stopping and best_W is not None:
        W[...] = best_W
        if b is not None:
            b[...] = best_b
    return SGDResult(W, b, epoch, int(step), loss_curve, scores, converged, diverged)


def _take_rows(values, indices, indptr, rows):
    """The CSR parts (values, indices, indptr) of the rows ``rows`` of a CSR matrix, in that order."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    new_indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    gather = np.repeat(starts - new_indptr[:-1], lengths)
    gather += np.arange(new_indptr[-1], dtype=np.int64)
    return values[gather], indices[gather], new_indptr


def _csr_sgd_epoch(
    loss_gradient, dtype, values, indices, indptr, n_features, order, labels, weights, W, b,
    W_velocity, b_velocity, batch_size, l2, weight_scale, schedule, eta0, power_t, t0, momentum, step,
):
    """One epoch over CSR rows with the arguments and results of the compiled
    ``sgd_epoch`` kernels, each mini-batch's gradient from the compiled CSR
    ``loss_gradient`` kernel (in ``dtype``: W is cast to float32 for float32 data)."""
    K, D = W.shape
    grad_W = np.empty((K, D), dtype=dtype)
    grad_b = None if b is None else np.empty(K, dtype=dtype)
    update_W = np.empty((K, D))
    block_rows = max(1, _CSR_BLOCK_ROWS // batch_size) * batch_size
    loss_sum = weight_sum = 0.0
    n_steps = 0
    for block_start in range(0, order.shape[0], block_rows):
        rows = order[block_start : block_start + block_rows]
        block_values, block_indices, block_indptr = _take_rows(values, indices, indptr, rows)
        block_labels = labels[rows]
        block_weights = None if weights is None else weights[rows]
        for start in range(0, rows.shape[0], batch_size):
            stop = min(start + batch_size, rows.shape[0])
            n_rows = stop - start
            low, high = block_indptr[start], block_indptr[stop]
            batch_weights = None if block_weights is None else block_weights[start:stop]
            loss, status, n_nonfinite, _ = loss_gradient(
                block_values[low:high], block_indices[low:high], block_indptr[start : stop + 1] - low,
                n_features, W.astype(dtype, copy=False), None if b is None else b.astype(dtype, copy=False),
                block_labels[start:stop], None, batch_weights, weight_scale / n_rows, l2, grad_W, grad_b, 1,
            )
            if status & (_STATUS_NO_MEMORY | _STATUS_BAD_LABEL):
                return status, loss_sum, weight_sum, n_steps
            if status or n_nonfinite or not np.isfinite(loss):
                return status | _STATUS_NONFINITE, loss_sum, weight_sum, n_steps
            loss_sum += loss
            weight_sum += n_rows if batch_weights is None else float(batch_weights.sum())
            if schedule == SCHEDULES["constant"]:
                eta = eta0
            elif schedule == SCHEDULES["invscaling"]:
                eta = eta0 / (1.0 + step) ** power_t
            else:
                eta = 1.0 / (l2 * (t0 + step))
            W_velocity *= momentum
            np.multiply(grad_W, eta, out=update_W)
            W_velocity -= update_W
            W += W_velocity
            if b is not None:
                b_velocity *= momentum
                b_velocity -= eta * grad_b
                b += b_velocity
            step += 1.0
            n_steps += 1
    return 0, loss_sum, weight_sum, n_steps


def features_subset(features, rows):
    """The same input kind restricted to ``rows`` (a copy of those rows)."""
    from ._packed import PackedBits

    if len(features.args) == 4:  # CSR parts
        from scipy import sparse

        values, indices, indptr, n_features = features.args
        parts = _take_rows(values, indices, indptr, rows)
        return sparse.csr_matrix(parts, shape=(rows.shape[0], n_features))
    if isinstance(features.args[0], np.ndarray) and len(features.args) == 2:
        return PackedBits(features.args[0][rows], features.args[1])
    return features.array[rows]
