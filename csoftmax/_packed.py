"""Bit-packed binary features: :class:`PackedBits` and :func:`pack_bits`.

Layout: row-major, each row padded to whole 64-bit words; feature ``i`` of a
row is bit ``i % 64`` (least significant first) of word ``i // 64``.  Padding
bits are ignored by every kernel.  As bytes on a little-endian machine this is
exactly ``np.packbits(X, axis=1, bitorder="little")`` padded to a multiple of
8 bytes, which is what :meth:`PackedBits.from_packbits` can wrap without a copy.
"""

import numbers
import sys

import numpy as np

from ._validation import contiguous

_LITTLE = sys.byteorder == "little"
# _REVERSED[v] is byte v with its bit order reversed (big <-> little bitorder).
_REVERSED = np.array([int(f"{v:08b}"[::-1], 2) for v in range(256)], dtype=np.uint8)


def _words_from_bytes(B, copy):
    """(N, n_bytes) uint8 rows in little bitorder -> (N, ceil(n_bytes/8)) uint64 words."""
    n_rows, n_bytes = B.shape
    n_words = (n_bytes + 7) // 8
    if (
        not copy
        and n_bytes == 8 * n_words
        and B.flags.c_contiguous
        and B.ctypes.data % 8 == 0
        and _LITTLE
        and n_rows > 0
    ):
        words = B.view(np.uint64)
    else:
        padded = np.zeros((n_rows, 8 * n_words), dtype=np.uint8)
        padded[:, :n_bytes] = B
        words = padded.view("<u8").astype(np.uint64, copy=False).reshape(n_rows, n_words)
    return words


class PackedBits:
    """An immutable set of N rows x D binary features stored 64 to a word.

    Every function of csoftmax that takes ``X`` accepts a ``PackedBits`` and
    gives the same result as the dense 0/1 array (computed in float64, or in
    float32 when ``W`` is float32), reading 64x less memory than float64 X.

    Build one with :func:`pack_bits` or :meth:`from_packbits`.

    Attributes
    ----------
    shape : tuple of int
        ``(n_samples, n_features)``.
    words : ndarray of uint64, shape (n_samples, ceil(n_features / 64))
        The packed rows (read-only).

    Examples
    --------
    >>> import numpy as np, csoftmax
    >>> X = np.array([[1, 0, 1], [0, 1, 1]])
    >>> pb = csoftmax.pack_bits(X)
    >>> pb.shape, len(pb)
    ((2, 3), 2)
    >>> pb.unpack()
    array([[1, 0, 1],
           [0, 1, 1]], dtype=uint8)
    >>> pb[1:].unpack()
    array([[0, 1, 1]], dtype=uint8)
    """

    __slots__ = ("_words", "_n_features")

    def __init__(self, words, n_features):
        words = np.asarray(words)
        if words.dtype != np.uint64 or words.ndim != 2:
            raise TypeError(
                f"words must be a 2-D uint64 array; got dtype {words.dtype} with ndim {words.ndim}"
            )
        if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral) or n_features < 0:
            raise ValueError(f"n_features must be a non-negative integer; got {n_features!r}")
        n_features = int(n_features)
        if words.shape[1] != (n_features + 63) // 64:
            raise ValueError(
                f"words must have ceil(n_features / 64) = {(n_features + 63) // 64} columns "
                f"for n_features={n_features}; got {words.shape[1]}"
            )
        # A read-only view: the caller's array keeps its own flags.
        words = contiguous(words).view()
        words.flags.writeable = False
        self._words = words
        self._n_features = n_features

    @classmethod
    def from_packbits(cls, A, n_features, bitorder="big"):
        """Wrap the output of ``np.packbits(X, axis=1, bitorder=bitorder)``.

        Parameters
        ----------
        A : array_like of uint8, shape (N, ceil(n_features / 8)) or wider
        n_features : int
            D, the number of features (bits) per row.
        bitorder : {"big", "little"}, default "big"
            As given to ``np.packbits``.  ``"little"`` rows of a multiple of 8
            bytes, C-contiguous and 8-byte aligned, are used without a copy.

        Returns
        -------
        PackedBits
        """
        if bitorder not in ("big", "little"):
            raise ValueError(f"bitorder must be 'big' or 'little'; got {bitorder!r}")
        A = np.asarray(A)
        if A.dtype != np.uint8 or A.ndim != 2:
            raise TypeError(f"A must be a 2-D uint8 array from np.packbits; got dtype {A.dtype} with ndim {A.ndim}")
        if isinstance(n_features, bool) or not isinstance(n_features, numbers.Integral) or n_features < 0:
            raise ValueError(f"n_features must be a non-negative integer; got {n_features!r}")
        n_bytes = (int(n_features) + 7) // 8
        if A.shape[1] < n_bytes:
            raise ValueError(
                f"A has {A.shape[1]} bytes per row but n_features={n_features} needs {n_bytes}"
            )
        n_words = (int(n_features) + 63) // 64
        A = A[:, : 8 * n_words] if A.shape[1] > 8 * n_words else A
        if bitorder == "big":
            A = _REVERSED[A]
        return cls(_words_from_bytes(A, copy=False), n_features)

    @property
    def words(self):
        return self._words

    @property
    def shape(self):
        return (self._words.shape[0], self._n_features)

    @property
    def n_samples(self):
        return self._words.shape[0]

    @property
    def n_features(self):
        return self._n_features

    @property
    def nbytes(self):
        return self._words.nbytes

    def __len__(self):
        return self._words.shape[0]

    def unpack(self):
        """The dense 0/1 array, uint8 of shape (n_samples, n_features)."""
        words = self._words if _LITTLE else self._words.astype("<u8")
        as_bytes = np.ascontiguousarray(words).view(np.uint8).reshape(words.shape[0], -1)
        return np.unpackbits(as_bytes, axis=1, count=self._n_features, bitorder="little")

    def __getitem__(self, key):
        if isinstance(key, tuple):
            raise IndexError("PackedBits supports indexing rows only (pb[rows])")
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            return PackedBits(self._words[[key]], self._n_features).unpack()[0]
        return PackedBits(self._words[key], self._n_features)

    def __eq__(self, other):
        if not isinstance(other, PackedBits):
            return NotImplemented
        return self.shape == other.shape and np.array_equal(self.unpack(), other.unpack())

    __hash__ = None

    def __reduce__(self):
        return (PackedBits, (np.array(self._words), self._n_features))

    def __repr__(self):
        return f"PackedBits(n_samples={self.n_samples}, n_features={self.n_features}, nbytes={self.nbytes})"


def pack_bits(X):
    """Pack an (N, D) array of zeros and ones into a :class:`PackedBits`.

    Parameters
    ----------
    X : array_like of shape (N, D)
        Bool, integer or float values that are all 0 or 1.

    Returns
    -------
    PackedBits

    Raises
    ------
    ValueError
        If a value is not 0 or 1 (the message names the first row and column).

    Examples
    --------
    >>> import csoftmax
    >>> csoftmax.pack_bits([[0, 1, 1, 0, 1]]).words
    array([[22]], dtype=uint64)
    """
    if isinstance(X, PackedBits):
        return X
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"X must be array-like of 0/1 values; got {type(X).__name__}")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n_samples, n_features); got ndim={X.ndim} with shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold 0/1 values (bool, integer or float); got dtype {X.dtype}")
    if X.dtype != np.bool_:
        bad = (X != 0) & (X != 1)
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"X must hold only 0 and 1; got {X[r, c]} at row {r}, column {c}")
    packed = np.packbits(X != 0, axis=1, bitorder="little")
    return PackedBits(_words_from_bytes(packed, copy=True), X.shape[1])
