"""libFuzzer harness (atheris) over csoftmax's argument handling.

Each input is decoded by a ``FuzzedDataProvider`` into a call of one public
function: the kind of every argument (array, nested list, scalar, None,
string, dict, ``PackedBits``, sparse CSR with possibly corrupt structure),
its shape, dtype, memory layout and values (any float, NaN and infinities
included), and the keyword arguments (``out``, ``n_threads``, ``l2``,
``reduction``, ``sample_weight``).  The documented outcomes are a result or
a ``ValueError``/``TypeError``; any other exception (a NumPy warning
included, as warnings are errors here) is a finding, and so is a crash.

Run (``pip install atheris``)::

    python tests/fuzz/fuzz_api.py -max_total_time=60      # a minute
    python tests/fuzz/fuzz_api.py -runs=2000 -seed=1       # a fixed number of inputs
    python tests/fuzz/fuzz_api.py CORPUS_DIR -max_total_time=3600

Any libFuzzer option works; a failing input is written to ``crash-*`` in the
current directory and can be replayed with ``python tests/fuzz/fuzz_api.py crash-...``.
"""

import os
import sys
import warnings

import atheris

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

with atheris.instrument_imports(include=["csoftmax"]):
    import csoftmax

import numpy as np  # noqa: E402

try:
    from scipy import sparse
except ImportError:  # sparse X is one argument kind less
    sparse = None

DTYPES = ("float64", "float32", "float16", "int64", "int32", "uint8", "bool", "complex128", "object",
          "datetime64[s]", "longdouble", ">f8")
LAYOUTS = ("C", "F", "reversed", "strided", "broadcast")
KINDS = ("array", "array", "array", "array", "list", "scalar", "none", "string", "dict", "packed", "sparse")
FUNCTIONS = ("softmax", "log_softmax", "logsumexp", "predict_proba", "predict", "log_likelihood",
             "log_likelihood_gradient", "loss_and_gradient", "hessian_product", "pack_bits", "PackedBits")
DOCUMENTED = (ValueError, TypeError)


def _pick(fdp, values):
    return fdp.PickValueInList(list(values))


def _layout(fdp, arr):
    layout = _pick(fdp, LAYOUTS)
    if arr.ndim == 0 or arr.size == 0:
        return arr
    if layout == "F":
        return np.asfortranarray(arr)
    if layout == "reversed":
        return np.ascontiguousarray(arr[::-1])[::-1]
    if layout == "strided":
        big = np.zeros((2 * arr.shape[0],) + arr.shape[1:], dtype=arr.dtype)
        big[::2] = arr
        return big[::2]
    if layout == "broadcast":
        return np.broadcast_to(arr[:1], arr.shape)
    return arr


def _array(fdp, shape):
    size = int(np.prod(shape))
    values = np.array(fdp.ConsumeFloatList(size) + [0.0] * size, dtype=np.float64)[:size].reshape(shape)
    dtype = _pick(fdp, DTYPES)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype in ("int64", "int32", "uint8", "datetime64[s]"):
            values = np.nan_to_num(values, nan=0.0, posinf=3.0, neginf=-3.0).clip(-5, 5)
            if dtype == "uint8":
                values = np.abs(values)
        arr = values.astype(dtype)
    return _layout(fdp, arr)


def _argument(fdp, shape):
    """An argument of (usually) ``shape``, of a drawn kind."""
    if fdp.ConsumeProbability() < 0.15:  # a wrong shape
        shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(fdp.ConsumeIntInRange(0, 3)))
    kind = _pick(fdp, KINDS)
    if kind == "none":
        return None
    if kind == "scalar":
        return fdp.ConsumeFloat()
    if kind == "string":
        return fdp.ConsumeUnicodeNoSurrogates(4)
    if kind == "dict":
        return {"a": 1}
    arr = _array(fdp, shape)
    if kind == "list":
        return arr.tolist()
    if kind == "packed" and arr.ndim == 2:
        bits = np.nan_to_num(np.asarray(arr, dtype=np.float64)) > 0 if arr.dtype.kind in "biuf" else arr
        try:
            packed = csoftmax.pack_bits(bits)
        except DOCUMENTED:
            return arr
        words = np.array(packed.words)
        if words.size and fdp.ConsumeBool():  # padding bits beyond n_features set
            words[:, -1] |= np.uint64(fdp.ConsumeIntInRange(0, 2**63 - 1))
        return csoftmax.PackedBits(words, packed.n_features)
    if kind == "sparse" and sparse is not None and arr.ndim == 2 and arr.dtype.kind in "biuf" \
            and arr.dtype.itemsize <= 8 and arr.dtype != np.float16:
        matrix = sparse.csr_matrix(np.asarray(arr, dtype=arr.dtype.newbyteorder("=")))
        if matrix.nnz and fdp.ConsumeBool():  # corrupt the structure
            part = _pick(fdp, ["indices", "indptr"])
            values = getattr(matrix, part).copy()
            values[fdp.ConsumeIntInRange(0, len(values) - 1)] = fdp.ConsumeIntInRange(-3, 2 * max(arr.shape) + 3)
            setattr(matrix, part, values)
        return matrix
    return arr


def _keywords(fdp, names, shapes):
    kwargs = {}
    for name in names:
        if not fdp.ConsumeBool():
            continue
        if name == "n_threads":
            kwargs[name] = _pick(fdp, [0, 1, 2, -1, -(2**40), 2**40, 1.5, "2", True, None])
        elif name == "l2":
            kwargs[name] = _pick(fdp, [0.0, 0.5, -1.0, float("nan"), float("inf"), 1e308, "0.1", None])
        elif name == "reduction":
            kwargs[name] = _pick(fdp, ["mean", "sum", "avg", None, 1])
        else:  # out-buffers and sample_weight
            kwargs[name] = _argument(fdp, shapes[name])
    return kwargs


def decode_call(fdp):
    """Decode one call from ``fdp``: ``(function, args, kwargs)``."""
    name = _pick(fdp, FUNCTIONS)
    n, d, k = fdp.ConsumeIntInRange(0, 6), fdp.ConsumeIntInRange(0, 5), fdp.ConsumeIntInRange(0, 5)
    func = getattr(csoftmax, name)
    if name in ("softmax", "log_softmax", "logsumexp"):
        out = (n,) if name == "logsumexp" else (n, k)
        return func, (_argument(fdp, (n, k)),), _keywords(fdp, ["out", "n_threads"], {"out": out})
    if name == "pack_bits":
        return func, (_argument(fdp, (n, d)),), {}
    if name == "PackedBits":
        words = _argument(fdp, (n, (d + 63) // 64))
        return func, (words, _pick(fdp, [d, d + 64, -1, 1.5, True])), {}
    W, X, b = _argument(fdp, (k, d)), _argument(fdp, (n, d)), _argument(fdp, (k,))
    shapes = {"out": (n, k), "grad_W_out": (k, d), "grad_b_out": (k,), "sample_weight": (n,)}
    if name in ("predict_proba", "predict"):
        names = ["n_threads"] + (["out"] if name == "predict_proba" else [])
        return func, (W, X, b), _keywords(fdp, names, shapes)
    y = _argument(fdp, (n,) if fdp.ConsumeBool() else (n, k))
    if name == "hessian_product":
        V, Vb = _argument(fdp, (k, d)), _argument(fdp, (k,))
        kwargs = _keywords(fdp, ["sample_weight", "l2", "reduction", "n_threads"], shapes)
        return func, (W, X, V, b, Vb), dict(kwargs, y=y)
    names = ["sample_weight", "n_threads"]
    if name == "log_likelihood_gradient":
        names.append("out")
        shapes["out"] = (k, d)
    if name == "loss_and_gradient":
        names += ["l2", "reduction", "grad_W_out", "grad_b_out"]
    return func, (W, X, y, b), _keywords(fdp, names, shapes)


def TestOneInput(data):  # noqa: N802 - the name atheris looks for
    func, args, kwargs = decode_call(atheris.FuzzedDataProvider(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            func(*args, **kwargs)
        except DOCUMENTED as exc:
            if not str(exc):
                raise AssertionError(f"{type(exc).__name__} without a message") from exc


def main(argv=None):
    atheris.Setup(sys.argv if argv is None else argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
