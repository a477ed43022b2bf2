"""Build and runtime configuration: what was compiled, and what a call would use."""

import os
import platform
import sys

import numpy as np

from . import _dispatch
from ._openmp import openmp_enabled
from ._threads import default_n_threads
from ._version import __version__

try:
    from . import _build_info
except ImportError:  # built by a tool that did not run setup.py's build_ext
    _build_info = None


def config():
    """The configuration as a dict (what :func:`show_config` prints)."""
    info = _build_info
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "openmp": openmp_enabled(),
        "openmp_build": getattr(info, "OPENMP_NOTE", "unknown"),
        "threads": default_n_threads(),
        "compiler": getattr(info, "COMPILER", "unknown"),
        "compile_flags": getattr(info, "COMPILE_FLAGS", "unknown"),
        "debug_build": getattr(info, "DEBUG", False),
        "isa": _dispatch.ISA,
        "isa_runnable": tuple(_dispatch.RUNNABLE_ISAS),
        "isa_built": tuple(getattr(info, "ISA_LEVELS", ("baseline",))),
    }


def get_include():
    """Directory to put on Cython's include path to ``cimport csoftmax.capi``.

    It holds the ``csoftmax`` package with its ``.pxd`` files (``capi.pxd``
    declares the C-level API) and C headers.  Nothing needs linking: the
    functions are found in the installed ``csoftmax`` when the consumer
    module is imported.

    Returns
    -------
    str

    Examples
    --------
    >>> import os, csoftmax
    >>> os.path.isfile(os.path.join(csoftmax.get_include(), "csoftmax", "capi.pxd"))
    True
    """
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def show_config(file=None):
    """Print version, OpenMP status, threads, instruction set, compiler, flags and NumPy version.

    Parameters
    ----------
    file : file-like, optional
        Where to print (default ``sys.stdout``).

    Examples
    --------
    >>> import csoftmax
    >>> csoftmax.show_config()  # doctest: +ELLIPSIS
    csoftmax ...
      python          : ...
      OpenMP          : ...
    """
    c = config()
    lines = [
        f"csoftmax {c['version']}",
        f"  python          : {c['python']} ({c['platform']})",
        f"  numpy           : {c['numpy']}",
        f"  OpenMP          : {'on' if c['openmp'] else 'off'} ({c['openmp_build']})",
        f"  threads         : {c['threads']} (n_threads=None; OMP_NUM_THREADS and CPU affinity respected)",
        f"  kernels         : {c['isa']} (runnable here: {', '.join(c['isa_runnable'])}; "
        f"built: {', '.join(c['isa_built'])}; override with CSOFTMAX_ISA)",
        f"  compiler        : {c['compiler']}",
        f"  compile flags   : {c['compile_flags']}{' (debug build)' if c['debug_build'] else ''}",
    ]
    print("\n".join(lines), file=file if file is not None else sys.stdout)


__all__ = ["config", "get_include", "show_config", "openmp_enabled"]
