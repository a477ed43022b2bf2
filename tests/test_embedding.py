"""The C-level API (``csoftmax.capi``) as an embedding library uses it.

A tiny consumer extension (``embed_consumer.pyx``, the README's "Embedding"
example) is compiled in a temporary folder against the importable csoftmax
(found through ``csoftmax.get_include()``), then compared with the Python API.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import importlib.util

import numpy as np
import pytest

import csoftmax

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = """
import csoftmax
from Cython.Build import cythonize
from setuptools import Extension, setup

ext = Extension("embed_consumer", ["embed_consumer.pyx"])
setup(ext_modules=cythonize([ext], include_path=[csoftmax.get_include()],
                            compiler_directives={"language_level": 3}, quiet=True))
"""


def _compiler_missing():
    cc = sysconfig.get_config_var("CC") or "cc"
    return shutil.which(cc.split()[0]) is None and sys.platform != "win32"


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    pytest.importorskip("Cython", reason="Cython is needed to build the consumer extension")
    if _compiler_missing():
        pytest.skip("no C compiler to build the consumer extension")
    folder = tmp_path_factory.mktemp("consumer")
    shutil.copy(os.path.join(HERE, "embed_consumer.pyx"), folder)
    (folder / "setup.py").write_text(SETUP)
    # The build runs with the same csoftmax importable as this process.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(csoftmax.__file__))]
                                        + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=folder,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = [p for p in os.listdir(folder) if p.startswith("embed_consumer") and p.endswith((".so", ".pyd"))]
    spec = importlib.util.spec_from_file_location("embed_consumer", folder / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_get_include_has_the_pxd():
    assert os.path.isfile(os.path.join(csoftmax.get_include(), "csoftmax", "capi.pxd"))
    from csoftmax import capi

    assert capi.API_VERSION == 1


def _problem(rng, dtype, n=3000, d=7, k=4):
    # Strided X (every other column of a wider array) and n above one partition.
    X = rng.standard_normal((n, 2 * d)).astype(dtype)[:, ::2]
    y = rng.integers(0, k, n).astype(np.int64)
    W = (0.3 * rng.standard_normal((k, d))).astype(dtype)
    b = (0.1 * rng.standard_normal(k)).astype(dtype)
    return X, y, W, b


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_step_matches_python_api(consumer, rng, n_threads):
    X, y, W, b = _problem(rng, np.float64)
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b)
    W2, b2 = W.copy(), b.copy()
    loss_c = consumer.step_f64(X, y, W2, b2, 0.5, n_threads)
    np.testing.assert_allclose(loss_c, loss, rtol=1e-13)
    np.testing.assert_allclose(W2, W - 0.5 * gW, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b2, b - 0.5 * gb, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_float32_weighted_matches_python_api(consumer, rng, n_threads):
    X, y, W, b = _problem(rng, np.float32)
    w = rng.uniform(0.5, 2.0, X.shape[0])
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=0.01)
    status, loss_c, gW_c, gb_c = consumer.loss_gradient_f32_weighted(X, y, w, W, b, 0.01, n_threads)
    assert status == 0
    assert gW_c.dtype == np.float32
    np.testing.assert_allclose(loss_c, loss, rtol=1e-6)
    np.testing.assert_allclose(gW_c, gW, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gb_c, gb, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_softmax_matches_python_api(consumer, rng, dtype, n_threads):
    Z = (5 * rng.standard_normal((40000, 9))).astype(dtype).T.copy().T  # Fortran order
    status, P = consumer.softmax_rows(Z, n_threads)
    assert status == 0 and P.dtype == dtype
    np.testing.assert_allclose(P, csoftmax.softmax(Z), rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_predict_matches_python_api(consumer, rng, n_threads):
    X, _, W, b = _problem(rng, np.float64, n=20000)
    out = np.empty(X.shape[0], dtype=np.int64)
    assert consumer.predict(X, W, b, out, n_threads) == 0
    np.testing.assert_array_equal(out, csoftmax.predict(W, X, b))


def test_status_codes(consumer, rng):
    X, y, W, b = _problem(rng, np.float32, n=10)
    w = np.ones(10)
    bad = y.copy()
    bad[3] = 7
    assert consumer.loss_gradient_f32_weighted(X, bad, w, W, b, 0.0, 1)[0] == 2        # CSM_BAD_LABEL
    assert consumer.loss_gradient_f32_weighted(X, y, w, W, b, 0.0, 0)[0] == 16         # n_threads < 1
    assert consumer.loss_gradient_f32_weighted(X, y, w, W, b, -1.0, 1)[0] == 16        # l2 < 0
    assert consumer.loss_gradient_f32_weighted(X, y, 0 * w, W, b, 0.0, 1)[0] == 16     # no weight
    W[0, 0] = np.nan
    assert consumer.loss_gradient_f32_weighted(X, y, w, W, b, 0.0, 1)[0] == 4          # CSM_NONFINITE
    Z = np.zeros((3, 2))
    Z[1, 0] = np.inf
    assert consumer.softmax_rows(Z, 1)[0] == 4


def test_readme_shows_the_consumer_code():
    readme = os.path.join(os.path.dirname(HERE), "README.md")
    if not os.path.isfile(readme):
        pytest.skip("README.md is not next to the tests (installed package)")
    text = open(readme, encoding="utf-8").read()
    section = text[text.index("## Embedding"):]
    code = section[section.index("```cython\n") + len("```cython\n"):]
    code = code[:code.index("```")]
    with open(os.path.join(HERE, "embed_consumer.pyx"), encoding="utf-8") as f:
        assert code in f.read()
