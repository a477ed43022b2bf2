#!/bin/sh
# Build csoftmax with AddressSanitizer + UndefinedBehaviorSanitizer in a
# scratch copy of the tree and run the test suite against it.
#
#   .ci/sanitize.sh                 # whole suite
#   .ci/sanitize.sh tests/test_errors.py -x   # arguments go to pytest
#
# The sanitizer runtime must be loaded before Python itself, hence LD_PRELOAD.
# Leak detection is off: CPython keeps interned objects alive at exit.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$here" ls-files -z | (cd "$here" && xargs -0 cp --parents -t "$work")
cd "$work"
CSOFTMAX_SANITIZE=1 python setup.py build_ext --inplace > build.log 2>&1 || { tail -40 build.log; exit 1; }
cc=${CC:-cc}
LD_PRELOAD="$($cc -print-file-name=libasan.so) $($cc -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
PYTHONPATH=. python -m pytest -q -p no:cacheprovider ${*:-tests}
