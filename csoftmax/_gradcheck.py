"""Finite-difference check of the analytic gradient of ``loss_and_gradient``."""

from dataclasses import dataclass

import numpy as np

from ._functions import loss_and_gradient
from ._validation import as_bias, as_float_matrix, as_weights

__all__ = ["GradientCheckResult", "check_gradient"]

# Default tolerances (rtol, atol) per dtype of X.  The five-point differences
# are taken in float64 (accurate to about 1e-9 relative), so
# the tolerances are those of the analytic gradient: float64 rounding, or the
# float32 rounding of logits and probabilities in a float32 kernel.
_DEFAULT_TOLERANCES = {
    np.dtype(np.float64): (1e-6, 1e-8),
    np.dtype(np.float32): (1e-3, 1e-5),
}


@dataclass(frozen=True)
class GradientCheckResult:
    """Outcome of :func:`check_gradient`.

    Attributes
    ----------
    max_abs_error : float
        Largest ``|analytic - numeric|`` over the checked entries.
    max_rel_error : float
        Largest ``|analytic - numeric| / max(|analytic|, |numeric|, atol)``.
    worst_entry : tuple
        The entry furthest outside the tolerance: ``("W", k, i)`` or ``("b", k)``.
    n_checked : int
        Number of entries compared.
    passed : bool
        Whether every entry has ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``.
    analytic : float
        The analytic derivative at ``worst_entry``.
    numeric : float
        The finite-difference derivative at ``worst_entry``.
    rtol, atol : float
        The tolerances used.
    eps : float
        The relative step of the finite differences.
    """

    max_abs_error: float
    max_rel_error: float
    worst_entry: tuple
    n_checked: int
    passed: bool
    analytic: float = float("nan")
    numeric: float = float("nan")
    rtol: float = float("nan")
    atol: float = float("nan")
    eps: float = float("nan")

    def __bool__(self):
        return self.passed

    def __str__(self):
        if self.worst_entry[0] == "W":
            where = f"W[{self.worst_entry[1]}, {self.worst_entry[2]}]"
        else:
            where = f"b[{self.worst_entry[1]}]"
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"gradient check {verdict}: {self.n_checked} entries, max abs error {self.max_abs_error:.3e}, "
            f"max rel error {self.max_rel_error:.3e}; worst {where}: analytic {self.analytic:.10g}, "
            f"numeric {self.numeric:.10g} (rtol={self.rtol:g}, atol={self.atol:g}, eps={self.eps:.3g})"
        )


def check_gradient(
    W,
    X,
    y,
    b=None,
    *,
    sample_weight=None,
    l2=0.0,
    eps=None,
    n_entries=None,
    random_state=None,
    rtol=None,
    atol=None,
    grad_func=None,
):
    """Compare the analytic gradient of the loss with central finite differences.

    The loss is the one of :func:`csoftmax.loss_and_gradient` with
    ``reduction="mean"``::

        loss(W, b) = -L(W, b) / S + (l2 / 2) ||W||_F^2,    S = sum_n w_n

    **Derivation of the gradient** (notation of the README).  For an input
    ``x_n`` the logits are ``a_nk = sum_i w_ki x_ni + b_k`` and the
    probabilities ``p_nk = softmax_k(a_n) = exp(a_nk) / sum_j exp(a_nj)``.
    The log-likelihood with targets ``y_nk`` and sample weights ``w_n`` is::

        L = sum_n w_n sum_k y_nk ln p_nk
          = sum_n w_n ( sum_k y_nk a_nk - (sum_j y_nj) ln sum_m exp(a_nm) )

    because ``ln p_nk = a_nk - ln sum_m exp(a_nm)`` and the second term does
    not depend on k.  Differentiating with respect to one logit ``a_nk``, the
    derivative of the log-sum-exp is ``exp(a_nk) / sum_m exp(a_nm) = p_nk``, so::

        dL/da_nk = w_n (y_nk - (sum_j y_nj) p_nk)

    (``= w_n (y_nk - p_nk)`` for one-hot targets).  The logit ``a_nk``
    depends on ``w_ki`` through ``x_ni`` and on ``b_k`` with slope 1, and on
    no other row of W, so the chain rule gives::

        dL/dw_ki = sum_n w_n (y_nk - (sum_j y_nj) p_nk) x_ni
        dL/db_k  = sum_n w_n (y_nk - (sum_j y_nj) p_nk)

    and for the loss ``d loss/dw_ki = -(dL/dw_ki) / S + l2 w_ki``,
    ``d loss/db_k = -(dL/db_k) / S`` (b is not penalised).

    This function evaluates that analytic gradient once, then for every
    checked parameter ``theta_j`` (an entry of W or b) the five-point central
    difference::

        (f(theta_j - 2h) - 8 f(theta_j - h) + 8 f(theta_j + h) - f(theta_j + 2h)) / (12 h)

    whose error is O(h^4) from truncation plus O(noise / h) from the rounding
    noise of the loss.  That noise is not one ulp of the loss but the
    accumulated rounding of a sum over N samples (tens of ulps), which the
    simple two-point difference ``(f(theta_j + h) - f(theta_j - h)) / (2 h)``
    (error O(h^2) + O(noise / h), best at ``h ~ cbrt(machine eps)``) cannot
    resolve below about 1e-6 relative; the five-point rule, best at
    ``h ~ (machine eps)^(1/5)``, reaches about 1e-9.  The step is relative to
    the scale of the parameter, ``h = eps * max(|theta_j|, u_j)``, where
    ``u_j = 1`` for an intercept and ``1 / rms(x_i)`` for ``w_ki`` (so that
    the logits move by about ``eps`` whatever the units of feature i).

    The differences are always taken in float64: for float32 X the loss is
    evaluated on a float64 copy of X (the analytic gradient still comes
    from the float32 X), so a float32 gradient is measured against an
    accurate derivative rather than against differences of a loss that is
    itself only float32-accurate.

    Parameters
    ----------
    W : array_like of shape (K, D)
        Weights at which to check.
    X : array_like of shape (N, D)
        Inputs (float32 or float64 kept for the analytic gradient, as in
        the kernels).
    y : array_like of shape (N,) or (N, K)
        Integer labels or non-negative targets.
    b : array_like of shape (K,), optional
        Intercepts; their gradient is checked too when given.
    sample_weight : array_like of shape (N,), optional
        Non-negative sample weights.
    l2 : float, default 0
        L2 penalty on W.
    eps : float, optional
        Relative finite-difference step; default ``finfo(float64).eps ** (1/5)``
        = 7.4e-4, the balance of truncation and rounding of the five-point
        rule in float64 (``cbrt(eps)`` would be the one of the two-point rule).
    n_entries : int, optional
        Check only this many entries, drawn at random without replacement
        (for large models: each entry costs four passes over X); default all.
    random_state : int or numpy.random.Generator, optional
        Seed of that draw.
    rtol, atol : float, optional
        Tolerances of the test ``|analytic - numeric| <= atol + rtol *
        max(|analytic|, |numeric|)``; defaults 1e-6 and 1e-8 for float64 X,
        1e-3 and 1e-5 for float32 X.
    grad_func : callable, optional
        The function under test, with the signature of
        :func:`csoftmax.loss_and_gradient` (called as ``grad_func(W, X, y,
        b, sample_weight=..., l2=...)`` and returning ``(loss, grad_W,
        grad_b)``); its own loss is differenced.  Default: the csoftmax
        kernel.

    Returns
    -------
    GradientCheckResult
        Errors, worst entry, and ``passed``; ``str(result)`` is a readable
        one-line report and ``bool(result)`` is ``result.passed``.

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    >>> W, b = rng.normal(size=(3, 4)), rng.normal(size=3)
    >>> result = csoftmax.check_gradient(W, X, y, b, l2=0.1)
    >>> result.passed, result.n_checked, result.max_rel_error < 1e-7
    (True, 15, True)

    A gradient with a wrong sign in one row is caught:

    >>> def wrong(W, X, y, b=None, **kwargs):
    ...     loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, **kwargs)
    ...     gW[1] *= -1
    ...     return loss, gW, gb
    >>> result = csoftmax.check_gradient(W, X, y, b, grad_func=wrong)
    >>> result.passed, result.worst_entry[:2]
    (False, ('W', 1))
    """
    X = as_float_matrix(X, "X")
    dtype = X.dtype
    n_features = X.shape[1]
    W = np.array(as_weights(W, np.float64, n_features, "W"), dtype=np.float64, order="C", copy=True)
    n_classes = W.shape[0]
    b = as_bias(b, np.float64, n_classes, "b")
    if b is not None:
        b = b.copy()
    if grad_func is None:
        grad_func = loss_and_gradient
    default_rtol, default_atol = _DEFAULT_TOLERANCES[dtype]
    rtol = default_rtol if rtol is None else float(rtol)
    atol = default_atol if atol is None else float(atol)
    if eps is None:
        eps = float(np.finfo(np.float64).eps ** 0.2)
    elif not (float(eps) > 0 and np.isfinite(eps)):
        raise ValueError(f"eps must be a positive finite number; got {eps!r}")
    eps = float(eps)

    # Differences are taken in float64 even for float32 X: the float32
    # gradient is then measured against an accurate derivative, instead of
    # against differences of a loss that is itself only float32-accurate.
    X_fd = X if dtype == np.float64 else X.astype(np.float64)

    def loss_at(W_, b_):
        return float(grad_func(W_, X_fd, y, b_, sample_weight=sample_weight, l2=l2)[0])

    _, grad_W, grad_b = grad_func(W, X, y, b, sample_weight=sample_weight, l2=l2)
    grad_W = np.asarray(grad_W, dtype=np.float64)
    if grad_W.shape != W.shape:
        raise ValueError(f"grad_func returned grad_W of shape {grad_W.shape}; expected {W.shape}")
    if b is not None:
        if grad_b is None or np.shape(grad_b) != b.shape:
            raise ValueError(f"grad_func returned grad_b of shape {np.shape(grad_b)}; expected {b.shape}")
        grad_b = np.asarray(grad_b, dtype=np.float64)

    n_total = W.size + (0 if b is None else b.size)
    if n_entries is None or n_entries >= n_total:
        flat = np.arange(n_total)
    else:
        if isinstance(n_entries, bool) or int(n_entries) != n_entries or n_entries < 1:
            raise ValueError(f"n_entries must be a positive integer or None; got {n_entries!r}")
        rng = np.random.default_rng(random_state)
        flat = np.sort(rng.choice(n_total, size=int(n_entries), replace=False))

    # Typical size of each feature: a step in w_ki moves the logits by
    # h * x_ni, so steps are scaled to move them by about eps.
    with np.errstate(over="ignore"):
        feature_scale = np.sqrt(np.mean(np.square(X_fd), axis=0))
    feature_scale[~(feature_scale > 0) | ~np.isfinite(feature_scale)] = 1.0

    analytic = np.empty(flat.size)
    numeric = np.empty(flat.size)
    entries = []
    for j, index in enumerate(flat):
        if index < W.size:
            k, i = divmod(int(index), n_features)
            param, position, entry, value_grad = W, (k, i), ("W", k, i), grad_W[k, i]
            unit = 1.0 / feature_scale[i]
        else:
            k = int(index) - W.size
            param, position, entry, value_grad = b, (k,), ("b", k), grad_b[k]
            unit = 1.0
        original = param[position]
        h = eps * max(unit, abs(original))
        values = []
        for step in (-2.0, -1.0, 1.0, 2.0):
            param[position] = original + step * h
            values.append(loss_at(W, b))
        param[position] = original
        f_m2, f_m1, f_p1, f_p2 = values
        analytic[j] = value_grad
        numeric[j] = (f_m2 - 8.0 * f_m1 + 8.0 * f_p1 - f_p2) / (12.0 * h)
        entries.append(entry)

    abs_error = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    rel_error = abs_error / np.maximum(scale, atol if atol > 0 else np.finfo(np.float64).tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = abs_error / (atol + rtol * scale)
    excess = np.where(abs_error == 0, 0.0, excess)
    excess = np.where(np.isnan(excess), np.inf, excess)  # NaN gradients fail
    worst = int(np.argmax(excess))
    return GradientCheckResult(
        max_abs_error=float(np.max(abs_error)),
        max_rel_error=float(np.max(rel_error)),
        worst_entry=entries[worst],
        n_checked=int(flat.size),
        passed=bool(np.all(excess <= 1.0)),
        analytic=float(analytic[worst]),
        numeric=float(numeric[worst]),
        rtol=rtol,
        atol=atol,
        eps=eps,
    )
