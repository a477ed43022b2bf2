"""Static typing: the stubs accept typed usage under ``mypy --strict`` and agree
with the runtime (``mypy.stubtest``).  Skipped when mypy is not installed
(it is in the ``typecheck`` extra)."""

import os
import subprocess
import sys

import pytest

import csoftmax

HERE = os.path.dirname(os.path.abspath(__file__))

# The Python implementation modules are not annotated; the public API is typed
# by csoftmax/__init__.pyi, so they are only loaded, not checked.
MYPY_CONFIG = """
[mypy]
ignore_missing_imports = True

[mypy-csoftmax._estimator,csoftmax._packed,csoftmax._config,csoftmax._cli,csoftmax.datasets]
ignore_errors = True
"""

# try/except imports of optional scikit-learn classes look like redefinitions.
ALLOWLIST = r"csoftmax\._estimator\.\w+-redefinition" + "\n"


def _run(args, tmp_path):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install csoftmax[typecheck])")
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(csoftmax.__file__))]
                                        + [p for p in [env.get("PYTHONPATH")] if p])
    env["MYPY_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.run([sys.executable, "-m", *args, "--config-file" if args[0] == "mypy" else "--mypy-config-file",
                           str(config)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_mypy_strict_on_typed_usage(tmp_path):
    _run(["mypy", "--strict", os.path.join(HERE, "typing_usage.py")], tmp_path)


def test_stubs_agree_with_runtime(tmp_path):
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text(ALLOWLIST)
    _run(["mypy.stubtest", "csoftmax", "--ignore-missing-stub", "--allowlist", str(allowlist)], tmp_path)
