"""The benchmark cases: problem sizes and reproducible data.

Imports NumPy only inside :func:`make_data`, so that scripts can read the case
list before they pin their threads.
"""

from dataclasses import dataclass

ITEMSIZE = {"float64": 8, "float32": 4}


@dataclass(frozen=True)
class Case:
    name: str
    n: int  # samples
    d: int  # features
    k: int  # classes
    dtype: str
    label: str

    @property
    def x_bytes(self):
        return self.n * self.d * ITEMSIZE[self.dtype]

    @property
    def flops(self):
        """Two GEMMs: logits (2 N D K) and the gradient (2 N D K)."""
        return 4 * self.n * self.d * self.k

    @property
    def rtol(self):
        return 1e-6 if self.dtype == "float64" else 1e-3


CASES = {
    c.name: c
    for c in (
        Case("digits64", 200_000, 64, 10, "float64", "digits-like"),
        Case("digits32", 200_000, 64, 10, "float32", "digits-like"),
        Case("mnist64", 20_000, 784, 10, "float64", "MNIST-like"),
        Case("wide64", 10_000, 1000, 100, "float64", "wide"),
        Case("batch64", 32, 64, 10, "float64", "training-loop batch"),
        Case("batch32", 32, 64, 10, "float32", "training-loop batch"),
    )
}


def make_data(case, seed=0):
    """``(W, X, y, b)`` for a case: standard normal X, logits of order 1.

    Generated directly in the case's dtype (no float64 temporary for float32
    cases), C-contiguous, labels int64 in ``[0, K)``.
    """
    import numpy as np

    dtype = np.dtype(case.dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((case.n, case.d), dtype=dtype)
    W = rng.standard_normal((case.k, case.d), dtype=dtype)
    W *= dtype.type(1.0 / np.sqrt(case.d))
    b = rng.standard_normal(case.k, dtype=dtype) * dtype.type(0.1)
    y = rng.integers(0, case.k, case.n, dtype=np.int64)
    return W, X, y, b
