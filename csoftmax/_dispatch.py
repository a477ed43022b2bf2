"""Choice of the compiled dense kernels for this CPU.

setup.py builds the same kernels for several instruction-set levels
(``_dense`` for the baseline of the platform, plus ``_dense_avx2`` and
``_dense_avx512`` on x86-64).  The best level that both was built and is
supported by the CPU (and the operating system) is imported once, here.
``CSOFTMAX_ISA=baseline|avx2|avx512`` overrides the choice, e.g. to compare
levels or to rule one out; a level that cannot run falls back with a warning.
"""

import importlib
import os
import warnings

# Best first: (name, module, CPU features numpy must report).
_LEVELS = (
    ("avx512", "csoftmax._dense_avx512", ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL", "FMA3", "AVX2")),
    ("avx2", "csoftmax._dense_avx2", ("AVX2", "FMA3")),
    ("baseline", "csoftmax._dense", ()),
)


def _cpu_features():
    # NumPy detects features (including OS support for the wide registers)
    # at import; reuse its table instead of running cpuid ourselves.
    for path in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(importlib.import_module(path).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def _load(module_name):
    try:
        return importlib.import_module(module_name)
    except ImportError:
        return None


def _select():
    features = _cpu_features()
    runnable = []
    for name, module_name, needs in _LEVELS:
        if all(features.get(flag, False) for flag in needs):
            module = _load(module_name)
            if module is not None:
                runnable.append((name, module))
    if not runnable or runnable[-1][0] != "baseline":
        here = os.path.dirname(os.path.abspath(__file__))
        raise ImportError(
            f"csoftmax: the compiled kernels are missing from {here}. If this is the source "
            "checkout, build them with `pip install .` or `python setup.py build_ext --inplace`, "
            "or run Python from another directory to use the installed csoftmax."
        )
    requested = os.environ.get("CSOFTMAX_ISA", "").strip().lower()
    if requested and requested != "auto":
        for name, module in runnable:
            if name == requested:
                return name, module, [n for n, _ in runnable]
        warnings.warn(
            f"CSOFTMAX_ISA={requested!r} cannot be used here (runnable levels: "
            f"{', '.join(n for n, _ in runnable)}); using {runnable[0][0]!r}",
            RuntimeWarning,
            stacklevel=2,
        )
    name, module = runnable[0]
    return name, module, [n for n, _ in runnable]


ISA, kernels, RUNNABLE_ISAS = _select()
