"""csoftmax: fast, numerically stable softmax (multinomial logistic) regression.

Notation: weights ``W`` (K, D), inputs ``X`` (N, D), intercepts ``b`` (K,),
integer labels ``y`` (N,) or targets ``Y`` (N, K), sample weights (N,).
"""

from ._config import get_include, openmp_enabled, show_config
from ._functions import (
    hessian_product,
    log_likelihood,
    log_likelihood_gradient,
    log_softmax,
    logsumexp,
    loss_and_gradient,
    predict,
    predict_proba,
    softmax,
)
from ._packed import PackedBits, pack_bits
from ._version import __version__
from . import datasets

__all__ = [
    "__version__",
    "datasets",
    "PackedBits",
    "pack_bits",
    "hessian_product",
    "log_likelihood",
    "log_likelihood_gradient",
    "get_include",
    "log_softmax",
    "logsumexp",
    "loss_and_gradient",
    "openmp_enabled",
    "predict",
    "predict_proba",
    "show_config",
    "softmax",
]

from ._gradcheck import GradientCheckResult, check_gradient  # noqa: E402

__all__ += ["GradientCheckResult", "check_gradient"]

# The estimator imports scikit-learn when it is installed, so it is loaded on
# first use rather than with the kernels.
_ESTIMATOR_NAMES = ("SoftmaxRegression", "ConvergenceWarning")
__all__ += list(_ESTIMATOR_NAMES)


def __getattr__(name):
    if name in _ESTIMATOR_NAMES:
        from . import _estimator

        return getattr(_estimator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ESTIMATOR_NAMES))
