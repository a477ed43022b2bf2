"""Build script for the compiled kernels of csoftmax.

What it does, and why:

* OpenMP is probed per compiler by compiling and linking a tiny program with
  the flag that compiler family understands (gcc/clang ``-fopenmp``, MSVC
  ``/openmp``, Apple clang ``-Xpreprocessor -fopenmp -lomp``).  Without a
  working OpenMP the build still succeeds, serial, and says so.
* The dense kernels are compiled once per instruction-set level (baseline, and
  on x86-64 also AVX2+FMA and AVX-512) into separate extension modules built
  from the same Cython source; ``csoftmax._dispatch`` picks one at import
  time from the CPU's features.  This keeps the default build portable (no
  ``-march=native``) while the hot loops still get wide vectors.
* The compiled modules are copied into the source tree too (git-ignored), so
  that a checkout where ``pip install .`` ran can also be used in place.
* Never ``-ffast-math``: it lets the compiler assume no inf/NaN, which breaks
  the non-finite detection that the wrappers rely on.

Environment switches: ``CSOFTMAX_NO_OPENMP=1`` forces the serial build,
``CSOFTMAX_DEBUG=1`` builds with ``-O0 -g``.
``CSOFTMAX_SANITIZE=1`` builds with AddressSanitizer and UndefinedBehaviorSanitizer
(``-O1 -g -fsanitize=address,undefined``; GCC or Clang only); run the tests with
``.ci/sanitize.sh``, which preloads the sanitizer runtime into Python.
"""

import glob
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0);
        return omp_get_max_threads() > 0 ? 0 : 1;
    }
    """
)

ISA_TEST = textwrap.dedent(
    """
    int main(void) { return 0; }
    """
)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _is_x86_64():
    machine = platform.machine().lower()
    # cibuildwheel cross-builds macOS wheels through ARCHFLAGS / _PYTHON_HOST_PLATFORM.
    host = os.environ.get("_PYTHON_HOST_PLATFORM", sysconfig.get_platform()).lower()
    archflags = os.environ.get("ARCHFLAGS", "")
    if "arm64" in archflags or "arm64" in host or "aarch64" in host:
        return False
    return machine in ("x86_64", "amd64", "x64")


def _try_compile(compiler, source, compile_args, link_args, run=False):
    """Compile (and link) ``source``; return True when it works."""
    tmpdir = tempfile.mkdtemp(prefix="csoftmax-probe-")
    try:
        src = os.path.join(tmpdir, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([src], output_dir=tmpdir, extra_postargs=compile_args)
            exe = os.path.join(tmpdir, "probe")
            compiler.link_executable(objects, exe, extra_postargs=link_args)
        except Exception:
            return False
        if run:
            candidates = [exe, exe + ".exe"]
            for path in candidates:
                if os.path.exists(path):
                    try:
                        subprocess.run([path], check=True, capture_output=True, timeout=60)
                    except Exception:
                        return False
                    return True
            return False
        return True
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _openmp_candidates(compiler):
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        return [
            (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
            (["-fopenmp"], ["-fopenmp"]),
        ]
    return [(["-fopenmp"], ["-fopenmp"])]


def _isa_variants(compiler):
    """Instruction-set levels to build the dense kernels for: (suffix, flags)."""
    if not _is_x86_64():
        return []
    if compiler.compiler_type == "msvc":
        return [("avx2", ["/arch:AVX2"]), ("avx512", ["/arch:AVX512"])]
    return [
        ("avx2", ["-mavx2", "-mfma"]),
        (
            "avx512",
            [
                "-mavx2",
                "-mfma",
                "-mavx512f",
                "-mavx512cd",
                "-mavx512vl",
                "-mavx512dq",
                "-mavx512bw",
                "-mprefer-vector-width=512",
            ],
        ),
    ]


class BuildExt(build_ext):
    """build_ext that probes OpenMP, sets flags, and records the build configuration."""

    def build_extensions(self):
        compiler = self.compiler
        debug = _env_flag("CSOFTMAX_DEBUG")
        if compiler.compiler_type == "msvc":
            base_flags = ["/Od", "/Zi"] if debug else ["/O2"]
        else:
            base_flags = ["-O0", "-g"] if debug else ["-O3"]
            # -Wno-psabi: the kernels pass 32-byte vectors only between always-inlined
            # functions, so GCC's note that this changes the ABI where AVX is off
            # (the baseline build) concerns no call that is ever made.
            base_flags += ["-fno-math-errno", "-Wno-unreachable-code", "-Wno-psabi"]
        sanitize = []
        if _env_flag("CSOFTMAX_SANITIZE") and compiler.compiler_type != "msvc":
            sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
            base_flags = ["-O1", "-g"] + base_flags[2 if debug else 1 :] + sanitize

        omp_compile, omp_link = [], []
        if _env_flag("CSOFTMAX_NO_OPENMP"):
            openmp_note = "disabled by CSOFTMAX_NO_OPENMP"
        else:
            openmp_note = "not found: building serial kernels"
            for cflags, lflags in _openmp_candidates(compiler):
                if _try_compile(compiler, OPENMP_TEST, cflags, lflags, run=True):
                    omp_compile, omp_link = cflags, lflags
                    openmp_note = "enabled (" + " ".join(dict.fromkeys(cflags + lflags)) + ")"
                    break
        print("csoftmax: OpenMP " + openmp_note)

        isa_flags = {"": []}
        for suffix, flags in _isa_variants(compiler):
            if compiler.compiler_type == "msvc" or _try_compile(compiler, ISA_TEST, flags, []):
                isa_flags[suffix] = flags
            else:
                print(f"csoftmax: compiler rejects {flags}; skipping the {suffix} kernels")

        kept = []
        for ext in self.extensions:
            isa = getattr(ext, "csoftmax_isa", "")
            if isa not in isa_flags:
                continue
            ext.extra_compile_args = base_flags + omp_compile + isa_flags[isa]
            ext.extra_link_args = omp_link + (["-g"] if debug and compiler.compiler_type != "msvc" else []) + sanitize
            kept.append(ext)
        self.extensions = kept
        build_ext.build_extensions(self)

        self._write_build_info(
            openmp=bool(omp_compile),
            openmp_note=openmp_note,
            flags=base_flags + omp_compile,
            isa_levels=["baseline"] + [s for s in isa_flags if s],
        )

    def _write_build_info(self, openmp, openmp_note, flags, isa_levels):
        compiler = self.compiler
        cc = getattr(compiler, "compiler_so", None) or getattr(compiler, "cc", None) or [compiler.compiler_type]
        if isinstance(cc, str):
            cc = [cc]
        version = ""
        try:
            out = subprocess.run([cc[0], "--version"], capture_output=True, text=True, timeout=30)
            version = out.stdout.splitlines()[0] if out.stdout else ""
        except Exception:
            pass
        content = (
            '"""Build configuration, written by setup.py at build time."""\n\n'
            f"OPENMP = {openmp!r}\n"
            f"OPENMP_NOTE = {openmp_note!r}\n"
            f"COMPILER = {(cc[0] + (' (' + version + ')' if version else ''))!r}\n"
            f"COMPILE_FLAGS = {' '.join(flags)!r}\n"
            f"ISA_LEVELS = {tuple(isa_levels)!r}\n"
            f"DEBUG = {_env_flag('CSOFTMAX_DEBUG')!r}\n"
        )
        self._build_info = content
        self._write_file(os.path.join(self.build_lib, "csoftmax", "_build_info.py"), content)

    def run(self):
        build_ext.run(self)
        # The compiled modules are also copied next to the sources (as an
        # in-place build would), so that ``python -m csoftmax`` run from the
        # checkout, where the current directory comes first on sys.path, finds
        # a working package after ``pip install .``.  They are git-ignored.
        if not self.inplace:
            self.copy_extensions_to_source()
        content = getattr(self, "_build_info", None)
        if content is not None:
            here = os.path.dirname(os.path.abspath(__file__))
            self._write_file(os.path.join(here, "csoftmax", "_build_info.py"), content)

    @staticmethod
    def _write_file(path, content):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)


class SDist(sdist):
    """sdist with the sources a build and the tests need, and no build products.

    Adds tests/, benchmarks/ and .ci/ to setuptools' defaults (the package,
    its package data with the .pyx/.pxd/.pxi/.h/.pyi files, README, LICENSE)
    and drops what a build leaves in the tree: the C files cythonize writes
    next to the .pyx sources, compiled modules and ``_build_info.py``.  A
    wheel built from the sdist runs Cython again.
    """

    def make_distribution(self):
        # setuptools fills self.filelist in egg_info; amend it just before the archive is made.
        for folder, patterns in (("tests", ("*.py", "*.pyx", "*.pyi")), ("benchmarks", ("*.py", "*.md")), (".ci", ("*",))):
            for pattern in patterns:
                self.filelist.include_pattern(pattern, prefix=folder)
        self.filelist.exclude_pattern(r"\.(c|so|pyd|dylib|dll|html)$", is_regex=True)
        self.filelist.exclude_pattern("csoftmax/_build_info.py")
        self.filelist.exclude_pattern(r"(^|/)__pycache__/", is_regex=True)
        super().make_distribution()


def _extensions():
    import numpy
    from Cython.Build import cythonize

    directives = {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
        "nonecheck": False,
        "embedsignature": True,
        "freethreading_compatible": True,
    }
    sources = [("csoftmax._dense", "csoftmax/_dense.pyx", "")]
    for suffix in ("avx2", "avx512"):
        sources.append((f"csoftmax._dense_{suffix}", f"csoftmax/_dense_{suffix}.pyx", suffix))
    sources.append(("csoftmax._openmp", "csoftmax/_openmp.pyx", ""))
    # The cimportable C-level API (capi.pxd); forwards to the chosen kernels.
    sources.append(("csoftmax.capi", "csoftmax/capi.pyx", ""))
    exts = []
    for name, path, isa in sources:
        # The C headers are included by the generated C, out of Cython's
        # sight: listing them makes a header edit rebuild the extensions.
        # NumPy's headers: the training-loop entry point reads array
        # pointers through the NumPy C API rather than typed memoryviews.
        ext = Extension(name, [path], include_dirs=["csoftmax", numpy.get_include()],
                        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                        depends=sorted(glob.glob(os.path.join("csoftmax", "*.h"))))
        ext.csoftmax_isa = isa
        exts.append(ext)
    cythonized = cythonize(exts, compiler_directives=directives, quiet=True)
    for ext, (_, _, isa) in zip(cythonized, sources):
        ext.csoftmax_isa = isa
    return cythonized


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt, "sdist": SDist})
