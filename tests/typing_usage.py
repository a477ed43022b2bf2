"""Typed use of the public API: ``mypy --strict`` must accept this file
(tests/test_typing.py runs it), and the revealed dtypes follow the input."""

import numpy as np
import numpy.typing as npt

import csoftmax


def train_step(W: npt.NDArray[np.float32], X: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> float:
    grad_W = np.empty_like(W)
    loss, grad_W, grad_b = csoftmax.loss_and_gradient(W, X, y, grad_W_out=grad_W, n_threads=2)
    assert grad_b is None
    W -= np.float32(0.1) * grad_W
    return loss


def probabilities(W: npt.NDArray[np.float64], X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return csoftmax.predict_proba(W, X)


def rows32(Z: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return csoftmax.softmax(Z, n_threads=1)


def labels(W: npt.NDArray[np.float64], X: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    return csoftmax.predict(W, X)


def include_dir() -> str:
    assert csoftmax.openmp_enabled() in (True, False)
    return csoftmax.get_include()


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    X32 = rng.standard_normal((8, 3)).astype(np.float32)
    print(train_step(np.zeros((2, 3), np.float32), X32, np.zeros(8, np.int64)))
