"""Run a Python snippet in a fresh interpreter that imports this checkout of csoftmax."""

import os
import subprocess
import sys

import csoftmax


def run_python(script, timeout=120):
    """``subprocess.run`` of ``python -c script`` with csoftmax's root on PYTHONPATH."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(csoftmax.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)
