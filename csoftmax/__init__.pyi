# Type stubs of the public API.  Functions whose result dtype follows the
# input have one overload per float dtype (float32 in, float32 out; float64
# otherwise); anything else array-like gives a float64 result.
from typing import Literal, TextIO, overload

import numpy as np
import numpy.typing as npt

from . import datasets as datasets
from ._estimator import ConvergenceWarning as ConvergenceWarning
from ._estimator import SoftmaxRegression as SoftmaxRegression
from ._gradcheck import GradientCheckResult as GradientCheckResult
from ._gradcheck import check_gradient as check_gradient
from ._packed import PackedBits as PackedBits
from ._packed import pack_bits as pack_bits

__version__: str
__all__: list[str]

_F32 = npt.NDArray[np.float32]
_F64 = npt.NDArray[np.float64]
_X = npt.ArrayLike | PackedBits
_Threads = int | None

def openmp_enabled() -> bool: ...
def show_config(file: TextIO | None = None) -> None: ...
def get_include() -> str: ...
@overload
def softmax(Z: _F32, *, out: _F32 | None = None, n_threads: _Threads = None) -> _F32: ...
@overload
def softmax(Z: npt.ArrayLike, *, out: _F64 | None = None, n_threads: _Threads = None) -> _F64: ...
@overload
def log_softmax(Z: _F32, *, out: _F32 | None = None, n_threads: _Threads = None) -> _F32: ...
@overload
def log_softmax(Z: npt.ArrayLike, *, out: _F64 | None = None, n_threads: _Threads = None) -> _F64: ...
@overload
def logsumexp(Z: _F32, *, out: _F32 | None = None, n_threads: _Threads = None) -> _F32: ...
@overload
def logsumexp(Z: npt.ArrayLike, *, out: _F64 | None = None, n_threads: _Threads = None) -> _F64: ...
@overload
def predict_proba(
    W: npt.ArrayLike, X: _F32, b: npt.ArrayLike | None = None, *, out: _F32 | None = None, n_threads: _Threads = None
) -> _F32: ...
@overload
def predict_proba(
    W: npt.ArrayLike, X: _X, b: npt.ArrayLike | None = None, *, out: _F64 | None = None, n_threads: _Threads = None
) -> _F64: ...
def predict(W: npt.ArrayLike, X: _X, b: npt.ArrayLike | None = None, *, n_threads: _Threads = None) -> npt.NDArray[np.int64]: ...
def log_likelihood(
    W: npt.ArrayLike,
    X: _X,
    y: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    sample_weight: npt.ArrayLike | None = None,
    n_threads: _Threads = None,
) -> float: ...
@overload
def log_likelihood_gradient(
    W: npt.ArrayLike,
    X: _F32,
    y: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    sample_weight: npt.ArrayLike | None = None,
    out: _F32 | None = None,
    n_threads: _Threads = None,
) -> _F32: ...
@overload
def log_likelihood_gradient(
    W: npt.ArrayLike,
    X: _X,
    y: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    sample_weight: npt.ArrayLike | None = None,
    out: _F64 | None = None,
    n_threads: _Threads = None,
) -> _F64: ...
@overload
def loss_and_gradient(
    W: npt.ArrayLike,
    X: _F32,
    y: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    sample_weight: npt.ArrayLike | None = None,
    l2: float = 0.0,
    reduction: Literal["mean", "sum"] = "mean",
    n_threads: _Threads = None,
    grad_W_out: _F32 | None = None,
    grad_b_out: _F32 | None = None,
) -> tuple[float, _F32, _F32 | None]: ...
@overload
def loss_and_gradient(
    W: npt.ArrayLike,
    X: _X,
    y: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    *,
    sample_weight: npt.ArrayLike | None = None,
    l2: float = 0.0,
    reduction: Literal["mean", "sum"] = "mean",
    n_threads: _Threads = None,
    grad_W_out: _F64 | None = None,
    grad_b_out: _F64 | None = None,
) -> tuple[float, _F64, _F64 | None]: ...
@overload
def hessian_product(
    W: npt.ArrayLike,
    X: _F32,
    V: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    Vb: npt.ArrayLike | None = None,
    *,
    y: npt.ArrayLike | None = None,
    sample_weight: npt.ArrayLike | None = None,
    l2: float = 0.0,
    reduction: Literal["mean", "sum"] = "mean",
    n_threads: _Threads = None,
) -> tuple[_F32, _F32 | None]: ...
@overload
def hessian_product(
    W: npt.ArrayLike,
    X: _X,
    V: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    Vb: npt.ArrayLike | None = None,
    *,
    y: npt.ArrayLike | None = None,
    sample_weight: npt.ArrayLike | None = None,
    l2: float = 0.0,
    reduction: Literal["mean", "sum"] = "mean",
    n_threads: _Threads = None,
) -> tuple[_F64, _F64 | None]: ...
