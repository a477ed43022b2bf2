# Public API of csoftmax.dask (checked against the runtime by stubtest).
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._estimator import SoftmaxRegression as _SoftmaxRegression

__all__ = ["loss_and_gradient", "SoftmaxRegression"]

def loss_and_gradient(
    W: npt.ArrayLike,
    X: Any,
    y: Any,
    b: npt.ArrayLike | None = None,
    *,
    sample_weight: Any = None,
    l2: float = 0.0,
    reduction: Literal["mean", "sum"] = "mean",
    client: Any = None,
) -> tuple[float, npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]] | None]: ...

class SoftmaxRegression(_SoftmaxRegression):
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SoftmaxRegression: ...
    def predict_proba(self, X: Any) -> Any: ...
    def predict(self, X: Any) -> Any: ...
