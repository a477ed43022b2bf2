"""The paths of the logits kernel against the NumPy reference, for every
element type of X and for the packed (non-contiguous) layout: rows longer
than one block, with more classes than one group of class pairs, short
float64 rows whose classes go through the broadcast tile in whole blocks of
vector width with the rest in pairs, and short float32 rows, which AVX-512
builds take through the row tile (8 rows in the lanes, classes in blocks of
at most 10, features in groups of 4 with a masked last group, summed in
float32 over runs of 16 features; with fewer than 8 classes only rows
shorter than 32 features per class)."""

import numpy as np
import pytest

import csoftmax
from reference import ref_log_likelihood, ref_log_likelihood_gradient, ref_logits, ref_softmax

# Block of the logits kernel: 2048 bytes of a row (256 float64, 512 float32,
# 2048 uint8 features); a group is 8 pairs of classes.  D values straddle one
# and several blocks, with features left over after whole vectors; K values
# give one group, an odd last pair and a second group.  Blocked rows with 48
# or more (padded) classes are copied chunk by chunk before use (float32,
# uint8, strided features) or, in float64, transposed 16 rows at a time for
# logits computed as a rank update over the features.
SHAPES = [
    (37, 257, 3), (37, 523, 17), (21, 1031, 19), (19, 2051, 5), (9, 4099, 2),  # blocked
    (70, 300, 49), (130, 2051, 48),  # blocked and copied or transposed, several chunks
    (37, 13, 8), (70, 100, 17), (29, 256, 25),  # short rows, several class blocks
    (45, 35, 10), (23, 7, 11), (40, 65, 21), (17, 64, 10),  # short rows: one block of 10, tails of runs
    (31, 13, 3), (33, 40, 2), (20, 70, 3), (15, 9, 1),  # few classes: row tile up to 32 K features
]


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
@pytest.mark.parametrize("layout", ["C", "F", "sliced"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_blocked_logits_match_reference(n, d, k, dtype, layout, n_threads, rng):
    shape = (n, d + 1) if layout == "sliced" else (n, d)
    X = (rng.random(shape) < 0.3).astype(dtype) if dtype == np.uint8 else rng.normal(size=shape).astype(dtype)
    X = np.asfortranarray(X) if layout == "F" else X
    # contiguous features, rows one element longer than D and off any alignment
    X = X[:, 1:] if layout == "sliced" else X
    w_dtype = np.float32 if dtype == np.float32 else np.float64
    W = (rng.normal(size=(k, d)) / np.sqrt(d)).astype(w_dtype)
    b = rng.normal(size=k).astype(w_dtype)
    y = rng.integers(0, k, n)
    rtol = 1e-5 if dtype == np.float32 else 1e-11

    P = csoftmax.predict_proba(W, X, b, n_threads=n_threads)
    np.testing.assert_allclose(P, ref_softmax(ref_logits(W, X, b)), rtol=rtol, atol=1e-14)
    np.testing.assert_array_equal(csoftmax.predict(W, X, b, n_threads=n_threads), P.argmax(axis=1))
    L = csoftmax.log_likelihood(W, X, y, b, n_threads=n_threads)
    np.testing.assert_allclose(L, ref_log_likelihood(W, X, y, b), rtol=rtol)
    ref_gW, ref_gb = ref_log_likelihood_gradient(W, X, y, b)
    gW = csoftmax.log_likelihood_gradient(W, X, y, b, n_threads=n_threads)
    np.testing.assert_allclose(gW, ref_gW, rtol=rtol, atol=rtol * np.abs(ref_gW).max())
    # The fused training call: its intercept gradient too (minimisation sign, mean).
    _, lW, lb = csoftmax.loss_and_gradient(W, X, y, b, n_threads=n_threads)
    np.testing.assert_allclose(lW, -ref_gW / n, rtol=rtol, atol=rtol * np.abs(ref_gW).max() / n)
    np.testing.assert_allclose(lb, -ref_gb / n, rtol=rtol, atol=rtol * np.abs(ref_gb).max() / n)
