"""``SoftmaxRegression``: a scikit-learn compatible estimator on the csoftmax kernels.

Design
------
* The objective is exactly the one of scikit-learn's multinomial
  ``LogisticRegression`` (lbfgs / newton-cg solvers)::

      F(W, b) = sum_n s_n CE_n(W, b) / S  +  ||W||_F^2 / (2 C S)

  with per-sample weights ``s_n`` (sample_weight times class weight),
  ``S = sum_n s_n`` and the intercepts ``b`` not penalised.  scikit-learn
  writes it as ``C * sum_n s_n CE_n + ||W||^2 / 2`` and divides by ``C S``
  before optimising (``sklearn/linear_model/_logistic.py``,
  ``_linear_loss.py``); here it is ``csoftmax.loss_and_gradient`` with
  ``reduction="mean"`` and ``l2 = 1 / (C S)``.
* The solvers see one flat float64 vector ``theta = [W'.ravel(), b']`` in
  standardised coordinates: ``W = W' / scale`` and ``b = b' - W mean``
  (per feature, weighted mean and standard deviation of X, one extra pass at
  the start).  This diagonal-plus-shift preconditioner changes neither X
  (no copy) nor the objective or its minimum, but uncentred or badly scaled
  features no longer cost L-BFGS hundreds of extra iterations (on raw 0..16
  pixel data it reaches a given objective in about a third of the
  iterations).  The shift acts on the parameters only, never on X, so it
  keeps sparse and bit-packed X as they are; their statistics come from the
  stored entries (sparse) or from unpacked blocks of rows (PackedBits,
  uint8, bool).  The kernels still compute in the model's coordinates, and
  cast ``W`` and ``b`` to the float dtype of X, so float32 data (dense or
  sparse) are computed in float32; uint8, bool and PackedBits X in float64.
* Every input kind of csoftmax is used as it is: dense float32/float64,
  uint8 and bool (no float copy), :class:`csoftmax.PackedBits`, and sparse
  matrices (as CSR; other formats are converted once).
  ``decision_function`` and ``predict_log_proba`` of uint8, bool and
  PackedBits X convert blocks of rows, never the whole of X.
* The stopping test ``max |dF/dW|, |dF/db| <= tol`` is scikit-learn's and is
  made on the gradient in the model's coordinates; both solvers also stop
  when an iteration decreases ``F`` by less than 64 eps relatively.
* ``solver="lbfgs"``: ``scipy.optimize.minimize(method="L-BFGS-B")`` with the
  options scikit-learn uses (``ftol=64 eps``, ``maxls=50``, ``maxiter``);
  the gradient test is made in the callback.
* ``solver="newton-cg"``: a hand-written truncated Newton method (conjugate
  gradients on Hessian-vector products, then an Armijo backtracking line
  search).  Hessian-vector products come from ``csoftmax.hessian_product``
  when the package provides it, else from :func:`_numpy_hessian_product`.
* While fitting, BLAS is limited to one thread (``threadpoolctl``) so that
  SciPy's and NumPy's small vector operations do not compete with the OpenMP
  team of the kernels.
* scikit-learn is optional: with it the estimator subclasses its
  ``ClassifierMixin`` and ``BaseEstimator`` and uses its validation helpers;
  without it a small local base class provides ``get_params``, ``set_params``,
  ``__repr__`` and ``score``, and inputs are checked here.
"""

import contextlib
import copy
import importlib
import inspect
import numbers
import warnings

import numpy as np

from . import _functions
from ._packed import PackedBits
from ._threads import resolve_n_threads
from ._validation import FLOAT_DTYPES, as_bias, as_float_matrix, as_sample_weight, as_targets, as_weights, check_l2
from ._validation import check_reduction, is_sparse, parameter_dtype, weight_total

try:  # scikit-learn is optional
    from sklearn.base import BaseEstimator as _BaseEstimator
    from sklearn.base import ClassifierMixin as _ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning, NotFittedError

    _HAVE_SKLEARN = True
except ImportError:
    _HAVE_SKLEARN = False

__all__ = ["SoftmaxRegression", "ConvergenceWarning", "NotFittedError"]

_SOLVERS = ("lbfgs", "newton-cg", "sgd")
_LEARNING_RATES = ("optimal", "constant", "invscaling", "adaptive")
# Both solvers also stop when the objective decreases by less than this,
# relatively (scikit-learn's setting of L-BFGS-B).
_FTOL = 64 * np.finfo(np.float64).eps


# ---------------------------------------------------------------------------
# Stand-ins for scikit-learn's base classes, used only when it is missing
# ---------------------------------------------------------------------------

if not _HAVE_SKLEARN:

    class ConvergenceWarning(UserWarning):
        """The optimiser stopped before it converged."""

    class NotFittedError(ValueError, AttributeError):
        """The estimator was used before ``fit``."""

    class _BaseEstimator:
        """Minimal ``get_params`` / ``set_params`` / ``__repr__`` (scikit-learn's contract)."""

        @classmethod
        def _get_param_names(cls):
            signature = inspect.signature(cls.__init__)
            return sorted(
                p.name
                for p in signature.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            )

        def get_params(self, deep=True):
            params = {}
            for name in self._get_param_names():
                value = getattr(self, name)
                if deep and hasattr(value, "get_params") and not isinstance(value, type):
                    params.update((f"{name}__{k}", v) for k, v in value.get_params().items())
                params[name] = value
            return params

        def set_params(self, **params):
            valid = self.get_params(deep=True)
            nested = {}
            for key, value in params.items():
                name, _, sub = key.partition("__")
                if name not in valid:
                    raise ValueError(
                        f"Invalid parameter {name!r} for estimator {self.__class__.__name__}. "
                        f"Valid parameters are: {sorted(self._get_param_names())!r}."
                    )
                if sub:
                    nested.setdefault(name, {})[sub] = value
                else:
                    setattr(self, name, value)
            for name, sub_params in nested.items():
                getattr(self, name).set_params(**sub_params)
            return self

        def __repr__(self):
            defaults = {
                p.name: p.default for p in inspect.signature(self.__class__.__init__).parameters.values()
            }
            changed = []
            for name in self._get_param_names():
                value = getattr(self, name)
                default = defaults.get(name, inspect.Parameter.empty)
                same = value is default
                if not same:
                    try:
                        same = bool(value == default) and type(value) is type(default)
                    except Exception:
                        same = False
                if not same:
                    changed.append(f"{name}={value!r}")
            return f"{self.__class__.__name__}({', '.join(changed)})"

    class _ClassifierMixin:
        """``score`` as the (weighted) accuracy."""

        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            """Mean accuracy of ``predict(X)`` against ``y``, weighted by ``sample_weight``."""
            y = np.asarray(y)
            correct = (self.predict(X) == y).astype(np.float64)
            return float(np.average(correct, weights=sample_weight))


def _float_dtype(X, coef_dtype=np.float64):
    """The float dtype csoftmax computes in for X: X's own for float data (dense or
    sparse), else float32 only with float32 coefficients (uint8, bool, PackedBits)."""
    dtype = None if isinstance(X, PackedBits) else X.dtype
    if dtype in FLOAT_DTYPES:
        return np.dtype(dtype)
    if is_sparse(X):
        return np.dtype(np.float64)
    return parameter_dtype(np.empty(0, coef_dtype))


def _dense_rows(X, start, stop):
    """Rows ``start:stop`` of a dense or PackedBits X as a float64 array (a block, never all of X)."""
    block = X[start:stop]
    if isinstance(block, PackedBits):
        block = block.unpack()
    return np.asarray(block, dtype=np.float64)


def _logits(X, coef, intercept, block_rows=8192):
    """``X coef^T + intercept`` in the float dtype of the computation.

    Sparse X is multiplied as it is; uint8, bool and PackedBits X in blocks of
    rows, so no float copy of the whole of X is made.
    """
    dtype = _float_dtype(X, coef.dtype)
    coef = coef.astype(dtype, copy=False)
    if is_sparse(X) or (not isinstance(X, PackedBits) and X.dtype in FLOAT_DTYPES):
        scores = np.asarray(X @ coef.T, dtype=dtype)
    else:
        scores = np.empty((X.shape[0], coef.shape[0]), dtype=dtype)
        for start in range(0, X.shape[0], block_rows):
            scores[start : start + block_rows] = _dense_rows(X, start, start + block_rows) @ coef.T
    scores += intercept.astype(dtype, copy=False)
    return scores


def _separates(X, coef, intercept, y_encoded, sample_weight):
    """Whether the model puts every weighted training sample strictly on its
    own class's side (its logit above every other class's).

    Then the data are linearly separable, and without a penalty the objective
    has no minimum: scaling the coefficients up lowers it towards 0 forever.
    """
    scores = _logits(X, coef, intercept)
    rows = np.arange(scores.shape[0])
    own = scores[rows, y_encoded].copy()
    scores[rows, y_encoded] = -np.inf
    separated = own > scores.max(axis=1)
    if sample_weight is not None:
        separated |= sample_weight == 0
    return bool(separated.all())


# ---------------------------------------------------------------------------
# Hessian-vector product (NumPy reference, used until the compiled one exists)
# ---------------------------------------------------------------------------


def _numpy_hessian_product(
    W, X, V, b=None, Vb=None, *, y=None, sample_weight=None, l2=0.0, reduction="mean", n_threads=None
):
    """Hessian-vector product of the ``loss_and_gradient`` objective, in NumPy.

    With logits ``a_n = W x_n + b``, ``p_n = softmax(a_n)``, the direction's
    logits ``u_n = V x_n + Vb`` and ``t_n = sum_k y_nk`` (1 for labels or
    ``y=None``)::

        r_n  = (w_n t_n / S) (p_n * u_n - p_n (p_n . u_n))
        HV_W = sum_n r_n x_n^T + l2 V
        HV_b = sum_n r_n

    The Hessian does not depend on ``y`` beyond ``t_n``.  Returns ``(HV_W,
    HV_b)`` in X's float dtype; ``HV_b`` is None when ``b`` is None (then
    ``Vb`` must be None too), and ``Vb=None`` with ``b`` given means a zero
    intercept direction.
    """
    X = as_float_matrix(X, "X")
    n_samples, n_features = X.shape
    W = as_weights(W, X.dtype, n_features, "W")
    n_classes = W.shape[0]
    V = as_weights(V, X.dtype, n_features, "V")
    if V.shape != W.shape:
        raise ValueError(f"V must have the shape of W {W.shape}; got {V.shape}")
    b = as_bias(b, X.dtype, n_classes, "b")
    Vb = as_bias(Vb, X.dtype, n_classes, "Vb")
    if b is None and Vb is not None:
        raise ValueError("Vb was given but b is None: there is no intercept")
    weights = as_sample_weight(sample_weight, n_samples)
    check_reduction(reduction)
    l2 = check_l2(l2)
    total = weight_total(weights, n_samples, reduction)
    resolve_n_threads(n_threads)

    row_scale = np.full(n_samples, 1.0 / total)
    if y is not None:
        labels, targets = as_targets(y, n_samples, n_classes, "y")
        if targets is not None:
            row_scale *= targets.sum(axis=1)
    if weights is not None:
        row_scale *= weights

    # Overflow (absurdly large parameters or data) gives inf/NaN results,
    # which the solver handles; NumPy need not warn about it.
    with np.errstate(over="ignore", invalid="ignore"):
        A = X @ W.T
        U = X @ V.T
        if b is not None:
            A += b
        if Vb is not None:
            U += Vb
        A -= A.max(axis=1, keepdims=True)
        np.exp(A, out=A)
        A /= A.sum(axis=1, keepdims=True)  # A is now P
        U -= np.einsum("nk,nk->n", A, U)[:, None]
        U *= A
        U *= row_scale.astype(X.dtype)[:, None]  # U is now R
        HV_W = U.T @ X
        if l2:
            HV_W += l2 * V
        HV_b = U.sum(axis=0) if b is not None else None
    return np.ascontiguousarray(HV_W), HV_b


def _hessian_product():
    """The compiled Hessian-vector product when the package has it, else the NumPy one."""
    package = importlib.import_module(__package__)
    return getattr(package, "hessian_product", None) or _numpy_hessian_product


# ---------------------------------------------------------------------------
# The objective over the flat parameter vector
# ---------------------------------------------------------------------------


def _feature_statistics(X, sample_weight, center, block_rows=8192):
    """Weighted mean (None unless ``center``) and scale of every column of X, in float64.

    The scale is the weighted standard deviation with ``center``, else the
    root mean square; constant columns get scale 1.  One pass over X: dense
    and PackedBits X in blocks of rows, shifted by the first row against
    cancellation; sparse X over its stored entries only.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if is_sparse(X):
            moments = _sparse_moments(X, sample_weight)
        else:
            moments = _dense_moments(X, sample_weight, block_rows)
        mean, scale = _mean_and_scale(*moments, center)
    # Absurdly large values overflow the sums: leave those columns as they are.
    bad = ~(np.isfinite(scale) & np.isfinite(mean))
    scale[bad] = 1.0
    mean[bad] = 0.0
    return (mean if center else None), scale


def _dense_moments(X, sample_weight, block_rows):
    """(origin, first, second): weighted mean of ``x - origin`` and of its square."""
    n_samples, n_features = X.shape
    origin = _dense_rows(X, 0, 1)[0]
    total = 0.0
    first = np.zeros(n_features)
    second = np.zeros(n_features)
    for start in range(0, n_samples, block_rows):
        block = _dense_rows(X, start, start + block_rows) - origin
        if sample_weight is None:
            weights = np.ones(block.shape[0])
        else:
            weights = sample_weight[start : start + block_rows]
        total += weights.sum()
        first += weights @ block
        block *= block
        second += weights @ block
    return origin, first / total, second / total


def _sparse_moments(X, sample_weight):
    """As :func:`_dense_moments` about the origin 0, from the stored entries of sparse X."""
    X = X.tocsr()
    if not X.has_canonical_format:  # repeated entries add up before squaring
        X = X.copy()
        X.sum_duplicates()
    n_samples, n_features = X.shape
    values = np.asarray(X.data, dtype=np.float64)
    if sample_weight is None:
        entry_weights, total = None, float(n_samples)
    else:
        entry_weights, total = np.repeat(sample_weight, np.diff(X.indptr)), float(sample_weight.sum())
    weighted = values if entry_weights is None else values * entry_weights
    first = np.bincount(X.indices, weights=weighted, minlength=n_features)
    second = np.bincount(X.indices, weights=weighted * values, minlength=n_features)
    return np.zeros(n_features), first / total, second / total


def _mean_and_scale(origin, first, second, center):
    mean = origin + first
    var = second - first**2 if center else second + origin * (origin + 2 * first)
    var = np.maximum(var, 0.0)
    scale = np.sqrt(var)
    reference = mean**2 + var if center else var
    scale[~(var > 1e-14 * reference)] = 1.0  # constant columns
    return mean, scale


class _Objective:
    """``F`` and its derivatives over the optimiser's flat parameter vector ``theta``.

    The optimisers work in standardised coordinates: ``theta = [W'.ravel(),
    b']`` with ``W = W' / scale`` (per column) and, with an intercept,
    ``b = b' - W mean``, so that ``W x + b = W' (x - mean) / scale + b'``.
    This is a diagonal-plus-shift preconditioner: X is neither copied nor
    changed, the objective and its minimum are the same, but badly scaled or
    uncentred features no longer slow L-BFGS and CG down.  Gradients and
    Hessian products are mapped back with the transposed map (chain rule).

    Gradient out-buffers in X's dtype are allocated once and reused by every
    call; the float64 gradient handed to the optimiser is a fresh vector
    (optimisers may keep the previous one).
    """

    def __init__(self, X, y, sample_weight, l2, n_classes, fit_intercept, n_threads, precondition=True):
        self.X = X
        self.y = y
        self.sample_weight = sample_weight
        self.l2 = l2
        self.n_classes = n_classes
        self.n_features = X.shape[1]
        self.fit_intercept = fit_intercept
        self.n_threads = n_threads
        self.n_coef = n_classes * self.n_features
        self.n_params = self.n_coef + (n_classes if fit_intercept else 0)
        if precondition:
            self.shift, self.scale = _feature_statistics(X, sample_weight, center=fit_intercept)
        else:
            self.shift, self.scale = None, None
        dtype = _float_dtype(X)
        self.grad_W = np.empty((n_classes, self.n_features), dtype=dtype)
        self.grad_b = np.empty(n_classes, dtype=dtype) if fit_intercept else None
        self.hessp_func = _hessian_product()
        self.n_nonfinite = 0
        self._cache = None  # (theta, value, gradient, max |original gradient|)

    def unpack(self, theta):
        """``(W, b)`` in the model's coordinates (a linear map; also for directions)."""
        W = theta[: self.n_coef].reshape(self.n_classes, self.n_features)
        b = theta[self.n_coef :] if self.fit_intercept else None
        if self.scale is None:
            return W, b
        W = W / self.scale
        if b is not None and self.shift is not None:
            b = b - W @ self.shift
        return W, b

    def pack(self, W, b):
        """The inverse of :meth:`unpack`."""
        theta = np.empty(self.n_params, dtype=np.float64)
        Wt = theta[: self.n_coef].reshape(self.n_classes, self.n_features)
        Wt[...] = W
        if self.scale is not None:
            Wt *= self.scale
        if self.fit_intercept:
            theta[self.n_coef :] = b
            if self.shift is not None:
                theta[self.n_coef :] += np.asarray(W, dtype=np.float64) @ self.shift
        return theta

    def pack_gradient(self, grad_W, grad_b):
        """Gradient (or Hessian product) with respect to ``theta`` (transpose of :meth:`unpack`).

        The objective does not change when every intercept moves by the same
        amount (softmax does not), so the intercepts' gradient and Hessian
        products sum to zero, but for rounding.  Their mean is removed: left
        in, it is a direction the Hessian is zero along, where truncated
        Newton steps are long, and the intercepts drifted with the rounding
        (float32 newton-cg on the digits, with the logits of the loss taken
        relative to class 0: all moved by 83).
        """
        if grad_b is not None and grad_b.size:
            grad_b = grad_b - np.mean(grad_b, dtype=np.float64)
        g = np.empty(self.n_params, dtype=np.float64)
        G = g[: self.n_coef].reshape(self.n_classes, self.n_features)
        G[...] = grad_W
        if self.scale is not None:
            if self.shift is not None and grad_b is not None:
                G -= np.outer(grad_b, self.shift)
            G /= self.scale
        if self.fit_intercept:
            g[self.n_coef :] = grad_b
        return g

    def evaluate(self, W, b):
        """``(F, grad_W F, grad_b F)`` at ``(W, b)`` in the model's coordinates (overridable)."""
        return _functions.loss_and_gradient(
            W,
            self.X,
            self.y,
            b,
            sample_weight=self.sample_weight,
            l2=self.l2,
            reduction="mean",
            n_threads=self.n_threads,
            grad_W_out=self.grad_W,
            grad_b_out=self.grad_b,
        )

    def loss_gradient(self, theta):
        """``(F, grad_theta F)``; ``(inf, 0)`` where the logits overflow, so that line searches back off."""
        cache = self._cache
        if cache is not None and np.array_equal(theta, cache[0]):
            return cache[1], cache[2].copy()
        W, b = self.unpack(theta)
        try:
            if not (np.isfinite(W).all() and (b is None or np.isfinite(b).all())):
                raise ValueError("non-finite parameters")
            loss, grad_W, grad_b = self.evaluate(W, b)
        except ValueError:
            # X, y and the weights were checked before fitting, so the only
            # failure left is a non-finite result: too large parameters.
            self.n_nonfinite += 1
            return np.inf, np.zeros(self.n_params)
        grad_max = max(_max_abs(grad_W), _max_abs(grad_b) if grad_b is not None else 0.0)
        gradient = self.pack_gradient(grad_W, grad_b)
        self._cache = (theta.copy(), loss, gradient, grad_max)
        return loss, gradient.copy()

    def state(self, theta):
        """``(F, max |gradient of F in the model's coordinates|)`` at ``theta``."""
        self.loss_gradient(theta)
        cache = self._cache
        if cache is None or not np.array_equal(theta, cache[0]):
            return np.inf, np.inf
        return cache[1], cache[3]

    def hessp(self, theta, vector):
        """Hessian of F with respect to ``theta`` at ``theta``, times ``vector``."""
        W, b = self.unpack(theta)
        V, Vb = self.unpack(vector)
        HV_W, HV_b = self.hessp_func(
            W,
            self.X,
            V,
            b,
            Vb,
            sample_weight=self.sample_weight,
            l2=self.l2,
            reduction="mean",
            n_threads=self.n_threads,
        )
        return self.pack_gradient(HV_W, HV_b)


# ---------------------------------------------------------------------------
# Solvers: each returns (theta, n_iter, losses, warning message or None)
# ---------------------------------------------------------------------------


def _max_abs(vector):
    return float(np.max(np.abs(vector))) if vector.size else 0.0


class _Converged(Exception):
    """Raised from the L-BFGS-B callback when ``max |gradient| <= tol``."""


def _lbfgs(objective, theta0, max_iter, tol, verbose):
    try:
        from scipy.optimize import minimize
    except ImportError:
        raise ImportError("solver='lbfgs' needs SciPy: install scipy, or use solver='newton-cg'") from None

    losses = []
    state = {"theta": theta0.copy(), "n_iter": 0}
    _, grad_max = objective.state(theta0)
    if grad_max <= tol:
        return theta0, 0, losses, None

    def callback(xk):
        value, grad_max = objective.state(xk)
        losses.append(float(value))
        if np.isfinite(value) and np.isfinite(xk).all():
            state["theta"] = np.array(xk, copy=True)
            state["n_iter"] = len(losses)
        if verbose:
            print(
                f"[SoftmaxRegression lbfgs] iteration {len(losses):4d}: objective {value:.10g}, "
                f"max |gradient| {grad_max:.3g}"
            )
        # The gradient test is done here, on the gradient in the model's
        # coordinates (L-BFGS-B's own test would see the preconditioned one).
        if grad_max <= tol:
            raise _Converged

    try:
        result = minimize(
            objective.loss_gradient,
            theta0,
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={"maxiter": max_iter, "maxls": 50, "gtol": 0.0, "ftol": _FTOL},
        )
    except _Converged:
        return state["theta"], len(losses), losses, None
    n_iter = int(result.nit)
    theta = result.x
    problem = None
    final_value, final_grad_max = objective.state(theta) if np.isfinite(theta).all() else (np.nan, np.nan)
    if not (np.isfinite(theta).all() and np.isfinite(final_value)):
        problem = (
            f"lbfgs produced non-finite parameters after {n_iter} iteration(s); "
            f"keeping the last finite iterate (iteration {state['n_iter']})"
        )
        theta, n_iter = state["theta"], state["n_iter"]
        del losses[n_iter:]
    elif result.status != 0:
        message = result.message.decode() if isinstance(result.message, bytes) else str(result.message)
        problem = f"lbfgs failed to converge after {n_iter} iteration(s) (max_iter={max_iter}): {message}"
    elif objective.n_nonfinite and final_grad_max > tol:
        problem = (
            f"lbfgs stopped after {n_iter} iteration(s) with max |gradient| = {final_grad_max:.3g} > "
            f"tol={tol}: the objective overflowed at {objective.n_nonfinite} trial point(s)"
        )
    return theta, n_iter, losses, problem


def _conjugate_gradient(hessp, grad, rtol, max_inner):
    """Approximately solve ``H p = -grad`` by CG; stop on small residual or non-positive curvature."""
    step = np.zeros_like(grad)
    residual = -grad
    direction = residual.copy()
    rr = residual @ residual
    stop = rtol * np.sqrt(rr)
    eps = np.finfo(np.float64).eps
    for _ in range(max_inner):
        if np.sqrt(rr) <= stop:
            break
        Hd = hessp(direction)
        curvature = direction @ Hd
        if not curvature > 16 * eps * (direction @ direction):
            # Flat, negative or NaN curvature (e.g. shifting every intercept by the
            # same amount): keep what was found, or go down the gradient.
            if not step.any():
                step = -grad
            break
        alpha = rr / curvature
        step += alpha * direction
        residual -= alpha * Hd
        rr_new = residual @ residual
        direction *= rr_new / rr
        direction += residual
        rr = rr_new
    return step


def _newton_cg(objective, theta0, max_iter, tol, verbose, max_inner=200, max_halvings=50, ftol=_FTOL):
    # Overflowing products (absurdly scaled data) give inf/NaN steps, which
    # are rejected below; NumPy need not warn about them.
    with np.errstate(over="ignore", invalid="ignore"):
        return _newton_cg_loop(objective, theta0, max_iter, tol, verbose, max_inner, max_halvings, ftol)


def _newton_cg_loop(objective, theta0, max_iter, tol, verbose, max_inner, max_halvings, ftol):
    theta = theta0.copy()
    value, grad = objective.loss_gradient(theta)
    grad_max = objective.state(theta)[1]
    losses = []
    n_iter = 0
    problem = None
    while grad_max > tol:
        if n_iter >= max_iter:
            problem = (
                f"newton-cg failed to converge after {n_iter} iteration(s) (max_iter={max_iter}): "
                f"max |gradient| = {grad_max:.3g} > tol={tol}"
            )
            break
        grad_norm = np.sqrt(grad @ grad)
        # Forcing term of the inexact Newton step (superlinear convergence).
        rtol = min(0.5, np.sqrt(grad_norm))
        step = _conjugate_gradient(lambda v: objective.hessp(theta, v), grad, rtol, max_inner)
        slope = grad @ step
        if not (slope < 0 and np.isfinite(step).all()):
            step = -grad
            slope = -(grad @ grad)
        t = 1.0
        for _ in range(max_halvings):
            trial = theta + t * step
            new_value, new_grad = objective.loss_gradient(trial)
            if new_value <= value + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            problem = (
                f"newton-cg stopped after {n_iter} iteration(s): the line search found no decrease "
                f"(max |gradient| = {grad_max:.3g} > tol={tol}; the data may be too badly "
                "scaled, or tol below what the data's precision allows)"
            )
            break
        decrease = value - new_value
        theta, value, grad = trial, new_value, new_grad
        grad_max = objective.state(theta)[1]
        n_iter += 1
        losses.append(float(value))
        if verbose:
            print(
                f"[SoftmaxRegression newton-cg] iteration {n_iter:4d}: objective {value:.10g}, "
                f"max |gradient| {grad_max:.3g}, step {t:g}"
            )
        if decrease <= ftol * max(abs(value), abs(value + decrease), 1.0):
            # The objective no longer decreases at its own precision (L-BFGS-B's
            # criterion): typically float32 data, whose gradient cannot reach
            # a tol far below float32's resolution.
            break
    return theta, n_iter, losses, problem


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _unchanged_on_failure(estimator):
    """Put the estimator's attributes back if the block does not complete.

    Validation sets ``n_features_in_`` (and ``feature_names_in_``) before the
    solver runs; an error or a ``KeyboardInterrupt`` after that must not leave
    attributes that disagree with ``coef_``, nor make an unfitted estimator
    look fitted.  The snapshot is shallow: the fitting code never changes the
    previous attributes' arrays in place.
    """
    saved = dict(vars(estimator))
    try:
        yield
    except BaseException:
        vars(estimator).clear()
        vars(estimator).update(saved)
        raise


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a bool; got {value!r}")


def _check_int(value, name, low, low_inclusive=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if value < low or (value == low and not low_inclusive):
        relation = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {relation} {low}; got {value!r}")


def _check_real(value, name, low, high=np.inf, low_inclusive=True, high_inclusive=True):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or np.isnan(value):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    too_low = value < low or (value == low and not low_inclusive)
    too_high = value > high or (value == high and not high_inclusive)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        raise ValueError(f"{name} must be in {left}{low}, {high}{right}; got {value!r}")


# Dense dtypes X keeps (uint8 and bool are read by the kernels as they are);
# other real dtypes become float64.
_X_DTYPES = [np.float64, np.float32, np.uint8, np.bool_]


def _local_check_X(X, estimator, reset):
    """Input checks without scikit-learn: 2-D finite numbers, dense or sparse
    (as CSR), float32/float64/uint8/bool kept."""
    names = None
    columns = getattr(X, "columns", None)
    if columns is not None and not is_sparse(X):
        column_list = list(columns)
        if column_list and all(isinstance(c, str) for c in column_list):
            names = np.asarray(column_list, dtype=object)
    if is_sparse(X):
        X = X if X.format == "csr" else X.tocsr()
    else:
        X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if X.dtype.kind == "O" and not is_sparse(X):
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X could not be converted to numbers: {exc}") from None
    elif X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold numbers; got dtype {X.dtype}")
    if X.dtype not in _X_DTYPES:
        X = X.astype(np.float64)
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D array, got an array of shape {X.shape}: reshape your data with "
            "X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
        )
    values = X.data if is_sparse(X) else X
    if X.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError("Input X contains NaN or infinity")
    return _check_shape(X, estimator, reset, names)


def _check_shape(X, estimator, reset, names=None):
    """At least one sample and feature; ``n_features_in_`` (and ``feature_names_in_``) set or matched."""
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"Found array with shape {X.shape}: at least 1 sample and 1 feature are required")
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {estimator.__class__.__name__} is expecting "
            f"{estimator.n_features_in_} features as input"
        )
    return X


def _local_check_y(y, n_samples):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected", UserWarning, stacklevel=5)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D class labels; got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0]}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity")
        if (y != np.floor(y)).any():
            raise ValueError("Unknown label type: continuous. Class labels must be discrete values")
    return y


def _class_weights(class_weight, classes, y_encoded, sample_weight):
    """Per-class weights: None, "balanced" (weighted by sample_weight) or a dict {label: weight}."""
    n_classes = len(classes)
    if class_weight is None:
        return None
    if _HAVE_SKLEARN:
        from sklearn.utils.class_weight import compute_class_weight

        y = classes[y_encoded]
        if "sample_weight" in inspect.signature(compute_class_weight).parameters:
            return compute_class_weight(class_weight, classes=classes, y=y, sample_weight=sample_weight)
        return compute_class_weight(class_weight, classes=classes, y=y)
    if isinstance(class_weight, str) and class_weight == "balanced":
        counts = np.bincount(y_encoded, weights=sample_weight, minlength=n_classes)
        with np.errstate(divide="ignore"):
            return counts.sum() / (n_classes * counts)
    weights = np.ones(n_classes)
    index = {label: k for k, label in enumerate(classes.tolist())}
    missing = [label for label in class_weight if label not in index]
    if missing:
        raise ValueError(f"class_weight has labels that are not classes of y: {missing}; classes: {classes.tolist()}")
    for label, value in class_weight.items():
        weights[index[label]] = value
    return weights


def _validate_params(est):
    _check_real(est.C, "C", 0.0, low_inclusive=False)
    _check_bool(est.fit_intercept, "fit_intercept")
    if est.solver not in _SOLVERS:
        raise ValueError(f"solver must be one of {_SOLVERS}; got {est.solver!r}")
    _check_int(est.max_iter, "max_iter", 1)
    _check_real(est.tol, "tol", 0.0)
    cw = est.class_weight
    if not (cw is None or (isinstance(cw, str) and cw == "balanced") or isinstance(cw, dict)):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}; got {cw!r}")
    _check_bool(est.warm_start, "warm_start")
    if est.n_threads is not None:
        try:
            resolve_n_threads(est.n_threads)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
    _check_int(est.verbose, "verbose", 0)
    rs = est.random_state
    if not (rs is None or isinstance(rs, (numbers.Integral, np.random.RandomState, np.random.Generator))):
        raise ValueError(f"random_state must be None, an int or a NumPy random state; got {rs!r}")
    # Parameters of the stochastic solver: checked for every solver, as scikit-learn does.
    _check_int(est.batch_size, "batch_size", 1)
    if est.learning_rate not in _LEARNING_RATES:
        raise ValueError(f"learning_rate must be one of {_LEARNING_RATES}; got {est.learning_rate!r}")
    _check_real(est.eta0, "eta0", 0.0, low_inclusive=False)
    _check_real(est.momentum, "momentum", 0.0, 1.0, high_inclusive=False)
    _check_bool(est.shuffle, "shuffle")
    _check_bool(est.early_stopping, "early_stopping")
    _check_real(est.validation_fraction, "validation_fraction", 0.0, 1.0, False, False)
    _check_int(est.n_iter_no_change, "n_iter_no_change", 1)


# ---------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------


class _available_for_sgd:
    """Method descriptor: the attribute exists only when ``solver == "sgd"``,
    so that ``hasattr(estimator, "partial_fit")`` tells whether it can be used."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.func
        if obj.solver != "sgd":
            raise AttributeError(f"partial_fit is only available with solver='sgd' (solver={obj.solver!r})")
        return self.func.__get__(obj, owner)


class SoftmaxRegression(_ClassifierMixin, _BaseEstimator):
    """Multinomial (softmax) logistic regression on the compiled csoftmax kernels.

    Minimises the L2-penalised mean cross-entropy of scikit-learn's
    multinomial :class:`~sklearn.linear_model.LogisticRegression`::

        F(W, b) = sum_n s_n CE_n(W, b) / S  +  ||W||_F^2 / (2 C S)

    where ``CE_n = -ln softmax(W x_n + b)_{y_n}``, ``s_n`` is the weight of
    sample n (``sample_weight`` times its class weight), ``S = sum_n s_n``, and
    the intercepts ``b`` are not penalised.  For the same ``C`` it reaches
    the same optimum as ``LogisticRegression(C=C)`` on multiclass problems.

    The model is always multinomial: with two classes ``coef_`` has shape
    (2, n_features) and ``intercept_`` shape (2,) (scikit-learn's binary
    model has one row).  The penalty on both rows makes the optimum
    symmetric, ``coef_[1] = -coef_[0]``, so the log-odds coefficients
    ``coef_[1] - coef_[0]`` equal those of ``LogisticRegression(C=2 * C)``.
    ``decision_function`` then returns these log-odds, shape (n_samples,),
    as scikit-learn's binary classifiers do.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength, as in ``LogisticRegression``;
        ``np.inf`` means no penalty.
    fit_intercept : bool, default=True
        Whether to fit the intercepts ``intercept_`` (they are not penalised).
    solver : {"lbfgs", "newton-cg", "sgd"}, default="lbfgs"
        ``"lbfgs"``: SciPy's L-BFGS-B on the fused loss-and-gradient kernel.
        ``"newton-cg"``: truncated Newton (conjugate gradients on
        Hessian-vector products, Armijo backtracking); fewer, costlier
        iterations, good for tight tolerances. ``"sgd"``: mini-batch SGD with
        momentum whose epochs run in compiled code (``max_iter`` counts epochs).
    max_iter : int, default=100
        Maximum number of iterations of the solver.
    tol : float, default=1e-4
        Stop when the largest absolute entry of the gradient of ``F`` (with
        respect to ``coef_`` and ``intercept_``) is at most ``tol``, as
        scikit-learn does; both solvers also stop, as converged, when an
        iteration decreases ``F`` by less than 64 float64 machine epsilons,
        relatively (so a ``tol`` below the precision of float32 data ends
        without a warning).
    class_weight : dict, "balanced" or None, default=None
        Weights ``{label: weight}`` multiplied into the sample weights;
        ``"balanced"`` uses ``S / (n_classes * S_k)`` with ``S_k`` the
        (weighted) number of samples of class k.
    warm_start : bool, default=False
        Start from the previous solution when the classes and the number of
        features are unchanged.
    n_threads : int, default=None
        Threads of the kernels: None for every usable core, negative to
        count back (-2: all but one).
    random_state : int, RandomState, Generator or None, default=None
        Seed of the stochastic solver (unused by lbfgs and newton-cg).
    verbose : int, default=0
        Print the objective at every iteration when > 0.
    batch_size : int, default=32
        Mini-batch size of ``solver="sgd"``.
    learning_rate : {"optimal", "constant", "invscaling", "adaptive"}, default="optimal"
        Step-size schedule of ``solver="sgd"``.
    eta0 : float, default=0.01
        Initial step size of ``solver="sgd"`` (all schedules but "optimal").
    momentum : float, default=0.0
        Momentum of ``solver="sgd"``, in [0, 1).
    shuffle : bool, default=True
        Whether ``solver="sgd"`` shuffles the samples at every epoch.
    early_stopping : bool, default=False
        Whether ``solver="sgd"`` holds out ``validation_fraction`` of the data
        and stops when its score stops improving.
    validation_fraction : float, default=0.1
        Held-out fraction for ``early_stopping``, in (0, 1).
    n_iter_no_change : int, default=5
        Epochs without improvement before ``solver="sgd"`` stops.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels (any sortable labels: integers, strings, ...).
    coef_ : ndarray of shape (n_classes, n_features)
        Weights ``W``, in the float dtype the fit computed in: float32 for
        float32 data (dense or sparse), float64 for everything else (as
        scikit-learn's linear models).
    intercept_ : ndarray of shape (n_classes,)
        Intercepts ``b`` (zeros when ``fit_intercept=False``), dtype of ``coef_``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when X was a DataFrame with string column names.
    n_iter_ : int
        Iterations run by the solver in the last ``fit``.
    loss_curve_ : list of float
        The objective ``F`` after each iteration of the last ``fit``.

    See Also
    --------
    csoftmax.loss_and_gradient : the objective and its gradient.
    sklearn.linear_model.LogisticRegression : the same model for multiclass data.

    Notes
    -----
    X may be any input kind of csoftmax: float32 or float64 (kept, computed
    in that precision), uint8 or bool (read as they are, computed in
    float64), :class:`csoftmax.PackedBits`, or a SciPy sparse matrix or array
    (CSR is used as it is, other formats are converted to CSR once); other
    real dtypes are converted to float64.  Every solver and method takes
    every kind and gives the model of the equivalent dense float64 array (up
    to rounding).  ``solver="sgd"`` runs its epochs in compiled code for
    dense and PackedBits X; for sparse X each mini-batch goes through the
    compiled sparse loss-and-gradient kernel from a Python loop, which costs
    some microseconds per batch (larger ``batch_size`` amortises it).
    The solvers work in standardised coordinates (features
    centred and scaled by their weighted mean and standard deviation, as a
    change of variables, without copying X): the objective and its minimum
    are those above, in the original units, but raw features converge as
    fast as standardised ones.  While fitting, BLAS libraries are limited to one thread
    (when ``threadpoolctl`` is installed) so they do not compete with the
    kernels' OpenMP threads.  The solvers need SciPy (lbfgs) or only NumPy
    (newton-cg); scikit-learn is optional.

    Examples
    --------
    >>> import numpy as np
    >>> from csoftmax import SoftmaxRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(300, 4))
    >>> y = np.array(["cat", "dog", "owl"])[np.argmax(X[:, :3], axis=1)]
    >>> clf = SoftmaxRegression(C=10.0).fit(X, y)
    >>> clf.classes_
    array(['cat', 'dog', 'owl'], dtype='<U3')
    >>> clf.coef_.shape, clf.intercept_.shape
    ((3, 4), (3,))
    >>> clf.predict(np.array([[3.0, 0.0, 0.0, 0.0]]))
    array(['cat'], dtype='<U3')
    >>> clf.predict_proba(X[:2]).sum(axis=1)
    array([1., 1.])
    >>> clf.score(X, y) > 0.95
    True
    """

    def __init__(
        self,
        C=1.0,
        *,
        fit_intercept=True,
        solver="lbfgs",
        max_iter=100,
        tol=1e-4,
        class_weight=None,
        warm_start=False,
        n_threads=None,
        random_state=None,
        verbose=0,
        batch_size=32,
        learning_rate="optimal",
        eta0=0.01,
        momentum=0.0,
        shuffle=True,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
    ):
        self.C = C
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.eta0 = eta0
        self.momentum = momentum
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change

    if _HAVE_SKLEARN:

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.sparse = True
            return tags

    # -- validation ---------------------------------------------------------

    def _check_X(self, X, reset):
        if isinstance(X, PackedBits):
            return _check_shape(X, self, reset)
        if not _HAVE_SKLEARN:
            return _local_check_X(X, self, reset)
        return _sk_validate_data(self, X, reset=reset, accept_sparse="csr", dtype=_X_DTYPES)

    def _check_X_y(self, X, y, reset=True):
        if isinstance(X, PackedBits) or not _HAVE_SKLEARN:
            X = self._check_X(X, reset=reset)
            y = _local_check_y(y, X.shape[0])
            kind = y.dtype.kind
            if kind not in "biufOUS":
                raise ValueError(f"Unknown label type: y of dtype {y.dtype}")
            if _HAVE_SKLEARN:
                from sklearn.utils.multiclass import check_classification_targets

                check_classification_targets(y)
            return X, y
        from sklearn.utils.multiclass import check_classification_targets

        X, y = _sk_validate_data(
            self, X, y, accept_sparse="csr", dtype=_X_DTYPES, y_numeric=False, multi_output=False, reset=reset
        )
        check_classification_targets(y)
        return X, y

    def _check_sample_weight(self, sample_weight, X):
        if sample_weight is None:
            return None
        if _HAVE_SKLEARN:
            from sklearn.utils.validation import _check_sample_weight

            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return as_sample_weight(sample_weight, X.shape[0])

    def _check_is_fitted(self):
        if not hasattr(self, "coef_"):
            raise NotFittedError(
                f"This {self.__class__.__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    # -- fitting ------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Fit the model by minimising the penalised weighted cross-entropy.

        Parameters
        ----------
        X : {array-like, sparse matrix, PackedBits} of shape (n_samples, n_features)
            Training data.  float32 and float64 are kept (and computed in);
            uint8 and bool are read as they are, without a float copy, and
            computed in float64; other real dtypes become float64.  Sparse
            matrices are used as CSR (other formats are converted once);
            :class:`csoftmax.PackedBits` rows are read bit-packed.
        y : array-like of shape (n_samples,)
            Class labels (at least two distinct classes).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; they multiply the class weights.

        Returns
        -------
        self : SoftmaxRegression
            The fitted estimator.

        Notes
        -----
        The estimator's attributes change only when the fit completes: an
        error or an interruption (``KeyboardInterrupt``) leaves a fitted
        estimator with its previous model and an unfitted one unfitted.
        """
        with _unchanged_on_failure(self):
            return self._fit(X, y, sample_weight)

    def _fit(self, X, y, sample_weight):
        _validate_params(self)
        X, y = self._check_X_y(X, y)
        sample_weight = self._check_sample_weight(sample_weight, X)
        classes, y_encoded = np.unique(y, return_inverse=True)
        y_encoded = np.ascontiguousarray(y_encoded.reshape(-1), dtype=np.int64)
        n_classes = len(classes)
        if n_classes < 2:
            label = classes[0].item() if isinstance(classes[0], np.generic) else classes[0]
            raise ValueError(
                "SoftmaxRegression needs samples of at least 2 classes in the data, but the data "
                f"contains only one class: {label!r}"
            )
        sample_weight, l2 = self._training_weights(classes, y_encoded, sample_weight, X.shape[0])
        n_threads = resolve_n_threads(self.n_threads)

        W0 = np.zeros((n_classes, X.shape[1]))
        b0 = np.zeros(n_classes)
        if (
            self.warm_start
            and hasattr(self, "coef_")
            and self.coef_.shape == W0.shape
            and np.array_equal(getattr(self, "classes_", None), classes)
        ):
            W0[...] = self.coef_
            if self.fit_intercept:
                b0[...] = self.intercept_
        if self.solver == "sgd":
            self._fit_sgd(X, y_encoded, sample_weight, classes, W0, b0, l2)
            self._warn_if_unbounded(X, y_encoded, sample_weight, l2)
            return self

        objective = _Objective(X, y_encoded, sample_weight, l2, n_classes, self.fit_intercept, n_threads)
        theta0 = objective.pack(W0, b0)
        solve = _lbfgs if self.solver == "lbfgs" else _newton_cg
        with _single_threaded_blas():
            theta, n_iter, losses, problem = solve(objective, theta0, self.max_iter, float(self.tol), self.verbose)
        if problem is not None:
            warnings.warn(
                f"{problem}. Increase max_iter, or scale the data (e.g. StandardScaler).",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._set_model(classes, *objective.unpack(theta), X)
        self.n_iter_ = n_iter
        self.loss_curve_ = losses
        self._warn_if_unbounded(X, y_encoded, sample_weight, l2)
        return self

    def _warn_if_unbounded(self, X, y_encoded, sample_weight, l2):
        """Warn when ``C=inf`` meets separable data: the solver stopped at its
        tolerance, but the objective has no minimum to converge to."""
        if l2 > 0 or not _separates(X, self.coef_, self.intercept_, y_encoded, sample_weight):
            return
        warnings.warn(
            f"The training data are linearly separable and C=inf: the objective has no minimum "
            f"(it keeps decreasing as the coefficients grow), so where {self.solver} stopped was "
            f"set by tol and max_iter: after {self.n_iter_} iteration(s) with max |coef_| = "
            f"{_max_abs(self.coef_):.3g}. Use a finite C for a well-defined model.",
            ConvergenceWarning,
            stacklevel=4,
        )

    def _training_weights(self, classes, y_encoded, sample_weight, n_samples):
        """The per-sample weights ``s_n`` (sample_weight times the class weights,
        or None) and the L2 coefficient ``1 / (C S)`` of the objective."""
        class_weights = _class_weights(self.class_weight, classes, y_encoded, sample_weight)
        if class_weights is not None:
            per_sample = class_weights[y_encoded]
            if sample_weight is None:
                sample_weight = np.ascontiguousarray(per_sample, dtype=np.float64)
            else:
                sample_weight = np.where(sample_weight > 0, sample_weight * per_sample, 0.0)
            sample_weight = as_sample_weight(sample_weight, n_samples, "sample_weight * class_weight")
        total = float(n_samples) if sample_weight is None else float(sample_weight.sum())
        if not total > 0:
            raise ValueError(
                "The sample weights (times the class weights) sum to zero: at least one sample "
                "needs a non-zero weight"
            )
        l2 = 0.0 if np.isinf(self.C) else 1.0 / (float(self.C) * total)
        return sample_weight, l2

    def _set_model(self, classes, W, b, X):
        """``classes_``, ``coef_`` and ``intercept_`` in the float dtype of the
        computation on X (float32 only for float32 data, as scikit-learn)."""
        dtype = _float_dtype(X)
        self.classes_ = classes
        self.coef_ = np.array(W, dtype=dtype)
        self.intercept_ = np.array(b, dtype=dtype) if self.fit_intercept else np.zeros(len(classes), dtype)

    @_available_for_sgd
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of ``solver="sgd"`` over (X, y), continuing from the current model.

        Only present when ``solver="sgd"`` (as scikit-learn's ``available_if``).

        Parameters
        ----------
        X : {array-like, sparse matrix, PackedBits} of shape (n_samples, n_features)
            Any input kind :meth:`fit` takes.
        y : array-like of shape (n_samples,)
        classes : array-like, optional
            Every class of the problem; required on the first call.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : SoftmaxRegression

        Notes
        -----
        As for :meth:`fit`, the estimator is unchanged unless the call completes.
        """
        with _unchanged_on_failure(self):
            return self._partial_fit(X, y, classes, sample_weight)

    def _partial_fit(self, X, y, classes, sample_weight):
        _validate_params(self)
        if self.solver != "sgd":
            raise ValueError(f"partial_fit needs solver='sgd'; got solver={self.solver!r}")
        first = not hasattr(self, "classes_")
        if first:
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit")
            all_classes = np.unique(np.asarray(classes))
            if all_classes.size < 2:
                raise ValueError("partial_fit needs at least 2 classes in `classes`")
        else:
            all_classes = self.classes_
            if classes is not None and not np.array_equal(np.unique(np.asarray(classes)), all_classes):
                raise ValueError(
                    f"classes={np.unique(np.asarray(classes)).tolist()} differs from the classes of "
                    f"the first call {all_classes.tolist()}"
                )
        X, y = self._check_X_y(X, y, reset=first)
        unseen = ~np.isin(y, all_classes)
        if unseen.any():
            raise ValueError(f"y holds labels not in classes: {np.unique(y[unseen]).tolist()}")
        y_encoded = np.ascontiguousarray(np.searchsorted(all_classes, y), dtype=np.int64)
        sample_weight = self._check_sample_weight(sample_weight, X)
        sample_weight, l2 = self._training_weights(all_classes, y_encoded, sample_weight, X.shape[0])
        n_classes = len(all_classes)
        if first:
            W = np.zeros((n_classes, X.shape[1]))
            b = np.zeros(n_classes)
            state, loss_curve, n_iter = {}, [], 0
        else:
            W = np.array(self.coef_, dtype=np.float64)
            b = np.array(self.intercept_, dtype=np.float64)
            # The epoch updates the momentum buffers and the generator in
            # place: work on a copy, kept only if the epoch completes.  After
            # fit() there is no state yet: go on from its model, with fresh
            # momentum.
            state = copy.deepcopy(getattr(self, "_sgd_state", {}))
            loss_curve, n_iter = list(self.loss_curve_), self.n_iter_
        result = self._run_sgd(
            X, y_encoded, sample_weight, W, b, l2, max_epochs=1,
            learning_rate=self.learning_rate if self.learning_rate != "adaptive" else "constant",
            early_stopping=False, state=state,
        )
        if result.diverged:
            warnings.warn("SGD diverged (non-finite parameters); the last finite parameters are kept.",
                          ConvergenceWarning, stacklevel=3)
        self._set_model(all_classes, W, b, X)
        self._sgd_state = state
        self.n_iter_ = n_iter + result.n_epochs
        self.loss_curve_ = loss_curve + result.loss_curve
        return self

    def _run_sgd(self, X, y_encoded, sample_weight, W, b, l2, **options):
        """``sgd_train`` with the estimator's parameters (``options`` override them)."""
        from ._sgd import sgd_train

        settings = dict(
            l2=l2,
            batch_size=int(self.batch_size),
            max_epochs=int(self.max_iter),
            tol=float(self.tol),
            learning_rate=self.learning_rate,
            eta0=float(self.eta0),
            momentum=float(self.momentum),
            shuffle=bool(self.shuffle),
            early_stopping=bool(self.early_stopping),
            validation_fraction=float(self.validation_fraction),
            n_iter_no_change=int(self.n_iter_no_change),
            random_state=self.random_state,
        )
        settings.update(options)
        bias = b if self.fit_intercept else None
        with _single_threaded_blas():
            return sgd_train(_functions.features_of(X, W), y_encoded, sample_weight, W, bias, **settings)

    def _fit_sgd(self, X, y_encoded, sample_weight, classes, W, b, l2):
        """Mini-batch SGD; each epoch runs in compiled code (see ``csoftmax._sgd``)."""
        verbose = self.verbose

        def report(epoch, loss):
            if verbose:
                print(f"iteration {epoch}: objective {loss:.10g}")

        result = self._run_sgd(X, y_encoded, sample_weight, W, b, l2, epoch_callback=report)
        if result.diverged:
            warnings.warn(
                f"SGD diverged in epoch {result.n_epochs} (non-finite parameters); the last finite "
                "parameters are kept. Lower eta0 or scale the data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        elif not result.converged:
            warnings.warn(
                f"SGD reached max_iter={self.max_iter} epochs without converging.",
                ConvergenceWarning,
                stacklevel=4,
            )
        self._set_model(classes, W, b, X)
        self.n_iter_ = result.n_epochs
        self.loss_curve_ = result.loss_curve
        return self

    # -- prediction ---------------------------------------------------------

    def _bias(self):
        return self.intercept_ if self.fit_intercept else None

    def decision_function(self, X):
        """Logits ``X W^T + b``; for two classes the log-odds of the second class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
        """
        self._check_is_fitted()
        X = self._check_X(X, reset=False)
        scores = _logits(X, self.coef_, self.intercept_)
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict_proba(self, X):
        """Class probabilities ``softmax(W x + b)``, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        self._check_is_fitted()
        X = self._check_X(X, reset=False)
        return _functions.predict_proba(self.coef_, X, self._bias(), n_threads=self.n_threads)

    def predict_log_proba(self, X):
        """Log of the class probabilities, computed stably as a log-softmax of the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        self._check_is_fitted()
        X = self._check_X(X, reset=False)
        scores = _logits(X, self.coef_, self.intercept_)
        return _functions.log_softmax(scores, n_threads=self.n_threads)

    def predict(self, X):
        """Most probable class of every sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        self._check_is_fitted()
        X = self._check_X(X, reset=False)
        return self.classes_[_functions.predict(self.coef_, X, self._bias(), n_threads=self.n_threads)]


def _sk_validate_data(estimator, X, y="no_validation", **kwargs):
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        return estimator._validate_data(X, y, **kwargs)
    return validate_data(estimator, X, y, **kwargs)


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return _NullContext()
    return threadpool_limits(1, user_api="blas")
