"""Built-in data: the 8x8 handwritten digits, and a reproducible stratified split.

Everything here needs NumPy only; the data ship inside the package (no
download).
"""

import importlib.resources
import math
import numbers

import numpy as np

__all__ = ["Bunch", "load_digits8x8", "train_test_split"]

_DIGITS_FILE = "digits8x8.npz"
_N_SAMPLES = 1797
_THRESHOLD = 8

_DIGITS_DESCR = """\
8x8 handwritten digits (the test set of the UCI "Optical Recognition of
Handwritten Digits" data set)
=======================================================================

1797 images of handwritten digits 0-9 written by 13 people.  Each image is an
8x8 grid of integer pixels in 0..16: 32x32 binary bitmaps normalised by the
NIST preprocessing programs, divided into non-overlapping 4x4 blocks, and the
number of "on" bits counted in every block.

Samples per digit 0..9: 178, 182, 177, 183, 181, 182, 181, 179, 174, 180.

binary=True (the default) sets a pixel to 1 when its count is >= 8 (at least
half of its 4x4 block is on) and to 0 otherwise.

Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten
Digits", UCI Machine Learning Repository, 1998, doi:10.24432/C50P49
(file optdigits.tes; the same 1797 images as scikit-learn's load_digits).
Licence: Creative Commons Attribution 4.0 International (CC BY 4.0),
https://creativecommons.org/licenses/by/4.0/ ; shipped unchanged (as uint8
counts) in csoftmax/datasets/digits8x8.npz.
"""


class Bunch(dict):
    """A dict whose keys are also attributes (``bunch.data is bunch["data"]``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.keys()))


def _read_digits():
    resource = importlib.resources.files(__name__).joinpath(_DIGITS_FILE)
    with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
        images = archive["images"]
        target = archive["target"]
    if images.shape != (_N_SAMPLES, 8, 8) or target.shape != (_N_SAMPLES,):
        raise RuntimeError(
            f"csoftmax/datasets/{_DIGITS_FILE} is damaged: images {images.shape}, target {target.shape}"
        )
    return images, target


def load_digits8x8(*, binary=True, packed=False, return_X_y=False):
    """Load the 1797 8x8 handwritten digits, binarised by default.

    The test set of the UCI "Optical Recognition of Handwritten Digits" data
    (E. Alpaydin and C. Kaynak, 1998, UCI Machine Learning Repository,
    doi:10.24432/C50P49, licensed CC BY 4.0); the same images as
    scikit-learn's ``load_digits``.  Each pixel is the number (0..16) of "on"
    bits of a 4x4 block of a 32x32 bitmap.  The data ship with csoftmax: no
    download, no scikit-learn needed.

    ==============  ======================================
    samples         1797 (174 to 183 per digit)
    classes         10 (digits 0..9)
    features        64 (8 x 8 pixels, row by row)
    pixel values    {0, 1} (``binary=True``) or 0..16
    ==============  ======================================

    Parameters
    ----------
    binary : bool, default True
        Pixels become 1 where the count is >= 8 and 0 elsewhere; False keeps
        the counts 0..16.
    packed : bool, default False
        Return ``data`` as a :class:`csoftmax.PackedBits` (64 binary pixels
        in one 64-bit word per image); needs ``binary=True``.
    return_X_y : bool, default False
        Return ``(data, target)`` instead of a :class:`Bunch`.

    Returns
    -------
    Bunch with
        ``data`` : ndarray of float64, shape (1797, 64) (or a ``PackedBits``);
        ``target`` : ndarray of int64, shape (1797,), the digits 0..9;
        ``images`` : ndarray of float64, shape (1797, 8, 8), the same pixels;
        ``target_names`` : ndarray, ``arange(10)``;
        ``feature_names`` : list of str, ``"pixel_<row>_<column>"``;
        ``DESCR`` : str, the description, source and licence.
    (data, target) : tuple, when ``return_X_y`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from csoftmax.datasets import load_digits8x8
    >>> digits = load_digits8x8()
    >>> digits.data.shape, digits.images.shape, np.unique(digits.data).tolist()
    ((1797, 64), (1797, 8, 8), [0.0, 1.0])
    >>> X, y = load_digits8x8(binary=False, return_X_y=True)
    >>> int(X.max()), y[:10].tolist()
    (16, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    """
    for name, value in (("binary", binary), ("packed", packed), ("return_X_y", return_X_y)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False; got {value!r}")
    if packed and not binary:
        raise ValueError("packed=True needs binary=True: only 0/1 pixels can be bit-packed")
    counts, target = _read_digits()
    images = (counts >= _THRESHOLD).astype(np.float64) if binary else counts.astype(np.float64)
    data = images.reshape(_N_SAMPLES, 64)
    target = target.astype(np.int64)
    if packed:
        try:
            from .._packed import pack_bits
        except ImportError:
            raise NotImplementedError(
                "packed=True needs csoftmax.PackedBits, which this version of csoftmax does not have; "
                "use the default packed=False"
            ) from None
        data = pack_bits(counts.reshape(_N_SAMPLES, 64) >= _THRESHOLD)
    if return_X_y:
        return data, target
    return Bunch(
        data=data,
        target=target,
        images=images,
        target_names=np.arange(10),
        feature_names=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
        DESCR=_DIGITS_DESCR,
    )


def _check_random_state(random_state):
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (
        isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_))
    ):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be an int, None or a numpy.random.Generator; got {random_state!r}")


def _n_test(test_size, n_samples):
    if isinstance(test_size, (bool, np.bool_)):
        raise TypeError(f"test_size must be a fraction in (0, 1) or a number of samples; got {test_size!r}")
    if isinstance(test_size, numbers.Integral):
        if not 0 < test_size < n_samples:
            raise ValueError(f"test_size={test_size} samples must be in [1, {n_samples - 1}] for {n_samples} samples")
        return int(test_size)
    if isinstance(test_size, numbers.Real):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size must be a fraction in (0, 1); got {test_size!r}")
        n_test = math.ceil(test_size * n_samples)
        if not 0 < n_test < n_samples:
            raise ValueError(
                f"test_size={test_size!r} gives {n_test} test samples out of {n_samples}; "
                "both the train and the test set need at least one"
            )
        return n_test
    raise TypeError(f"test_size must be a fraction in (0, 1) or a number of samples; got {test_size!r}")


def _allocate(n_test, class_counts):
    """Test samples per class: proportional, largest remainders first, total ``n_test``."""
    n_samples = int(class_counts.sum())
    exact = n_test * class_counts / n_samples
    take = np.floor(exact).astype(np.int64)
    remainder = exact - take
    # Largest fractional parts first; ties to the smaller class index (stable sort).
    order = np.argsort(-remainder, kind="stable")
    take[order[: n_test - int(take.sum())]] += 1
    return take


def train_test_split(X, y, *, test_size=0.25, random_state=0):
    """Split ``(X, y)`` into a stratified, reproducible train and test set.

    The procedure (fixed, so results are the same on every machine and
    NumPy version that has ``numpy.random.default_rng``):

    1. ``n_test = ceil(test_size * N)`` (or ``test_size`` itself if it is an int).
    2. Every class k (in sorted label order) gets ``n_test * N_k / N`` test
       samples rounded down; the ``n_test - sum`` samples left over go one each
       to the classes with the largest remainders (ties: smaller label first).
    3. ``rng = numpy.random.default_rng(random_state)``; for every class in
       sorted label order, ``rng.permutation`` of that class's sample indices;
       its first samples go to the test set.
    4. Both sets keep the original order of the samples.

    Parameters
    ----------
    X : array_like of shape (N, ...), PackedBits or sparse matrix
        Samples; indexed by integer arrays along the first axis.
    y : array_like of shape (N,)
        Class labels (any sortable values).
    test_size : float in (0, 1) or int, default 0.25
        Fraction (or number) of samples in the test set.
    random_state : int, numpy.random.Generator or None, default 0
        Seed; None draws a fresh split each call.

    Returns
    -------
    X_train, X_test, y_train, y_test

    Examples
    --------
    >>> import numpy as np
    >>> from csoftmax.datasets import train_test_split
    >>> X, y = np.arange(20).reshape(10, 2), np.array([0] * 6 + [1] * 4)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5)
    >>> y_test.tolist(), y_train.tolist()
    ([0, 0, 0, 1, 1], [0, 0, 0, 1, 1])
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D class labels; got shape {y.shape}")
    n_samples = y.shape[0]
    if not hasattr(X, "shape") or not hasattr(X, "__getitem__"):
        X = np.asarray(X)
    if X.shape[0] != n_samples:
        raise ValueError(f"X has {X.shape[0]} samples but y has {n_samples}")
    if n_samples < 2:
        raise ValueError(f"need at least 2 samples to split; got {n_samples}")
    n_test = _n_test(test_size, n_samples)
    rng = _check_random_state(random_state)

    classes, y_index = np.unique(y, return_inverse=True)
    y_index = y_index.ravel()
    class_counts = np.bincount(y_index, minlength=classes.size)
    take = _allocate(n_test, class_counts)
    is_test = np.zeros(n_samples, dtype=bool)
    for k in range(classes.size):
        members = np.flatnonzero(y_index == k)
        is_test[rng.permutation(members)[: take[k]]] = True
    train_index = np.flatnonzero(~is_test)
    test_index = np.flatnonzero(is_test)
    return X[train_index], X[test_index], y[train_index], y[test_index]
