"""Input conversion: dtypes, Python lists, read-only and memory-mapped arrays, odd memory."""

import numpy as np
import pytest

import csoftmax
from reference import assert_close, ref_loss_and_gradient, soft_targets

N, D, K = 3000, 6, 4


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "X": rng.normal(size=(N, D)),
        "W": rng.normal(scale=0.5, size=(K, D)),
        "b": rng.normal(size=K),
        "y": rng.integers(0, K, N),
        "Y": soft_targets(rng, N, K),
        "w": rng.uniform(0.0, 2.0, N),
        "Z": rng.normal(scale=3, size=(N, K)),
    }


def all_results(W, X, y, b=None, w=None, Z=None, n_threads=2):
    """Every public function's results for one set of inputs."""
    res = {
        "predict_proba": csoftmax.predict_proba(W, X, b, n_threads=n_threads),
        "predict": csoftmax.predict(W, X, b, n_threads=n_threads),
        "log_likelihood": csoftmax.log_likelihood(W, X, y, b, sample_weight=w, n_threads=n_threads),
        "log_likelihood_gradient": csoftmax.log_likelihood_gradient(W, X, y, b, sample_weight=w, n_threads=n_threads),
    }
    for reduction in ("mean", "sum"):
        loss, gW, gb = csoftmax.loss_and_gradient(
            W, X, y, b, sample_weight=w, l2=0.25, reduction=reduction, n_threads=n_threads
        )
        res[f"loss_{reduction}"] = loss
        res[f"grad_W_{reduction}"] = gW
        res[f"grad_b_{reduction}"] = gb
    if Z is not None:
        for name in ("softmax", "log_softmax", "logsumexp"):
            res[name] = getattr(csoftmax, name)(Z, n_threads=n_threads)
    return res


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if a[key] is None:
            assert b[key] is None, key
        elif isinstance(a[key], float):
            assert type(b[key]) is float and a[key] == b[key], key
        else:
            assert a[key].dtype == b[key].dtype, key
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("xdtype", [np.int8, np.int32, np.int64, np.uint16])
@pytest.mark.parametrize("wdtype", [np.float32, np.float64, np.int64])
def test_integer_X_computed_in_float64(xdtype, wdtype):
    rng = np.random.default_rng(1)
    X = (rng.integers(0, 2, (N, D)) if xdtype == np.bool_ else rng.integers(0, 5, (N, D))).astype(xdtype)
    p = _problem()
    W = (p["W"] * 4).astype(wdtype)
    b = p["b"].astype(wdtype)
    Z = rng.integers(-10, 10, (N, K)).astype(xdtype)
    got = all_results(W, X, p["y"], b, p["w"], Z)
    expected = all_results(W.astype(np.float64), X.astype(np.float64), p["y"], b.astype(np.float64), p["w"],
                           Z.astype(np.float64))
    assert_identical(got, expected)
    assert got["predict_proba"].dtype == np.float64
    assert got["grad_W_mean"].dtype == np.float64


@pytest.mark.parametrize("xdtype", [np.uint8, np.bool_])
@pytest.mark.parametrize("wdtype", [np.float32, np.float64])
def test_uint8_and_bool_X_read_natively(xdtype, wdtype):
    """uint8 and bool X are read without a float copy, in float64 unless W is float32."""
    rng = np.random.default_rng(1)
    X = (rng.integers(0, 2, (N, D)) if xdtype == np.bool_ else rng.integers(0, 5, (N, D))).astype(xdtype)
    p = _problem()
    W = (p["W"] * 4).astype(wdtype)
    b = p["b"].astype(wdtype)
    got = csoftmax.loss_and_gradient(W, X, p["y"], b, sample_weight=p["w"])
    expected = csoftmax.loss_and_gradient(W, X.astype(wdtype), p["y"], b, sample_weight=p["w"])
    assert got[1].dtype == wdtype and got[2].dtype == wdtype
    rtol = 1e-12 if wdtype == np.float64 else 1e-5
    np.testing.assert_allclose(got[0], expected[0], rtol=rtol)
    np.testing.assert_allclose(got[1], expected[1], rtol=rtol, atol=rtol * np.abs(expected[1]).max())
    P = csoftmax.predict_proba(W, X, b)
    assert P.dtype == wdtype
    np.testing.assert_allclose(P, csoftmax.predict_proba(W, X.astype(wdtype), b), rtol=rtol, atol=1e-14)


def test_float32_X_makes_float32_outputs_and_casts_W():
    p = _problem()
    X32 = p["X"].astype(np.float32)
    got = all_results(p["W"], X32, p["y"], p["b"], p["w"], p["Z"].astype(np.float32))
    for key in ("predict_proba", "log_likelihood_gradient", "grad_W_mean", "grad_b_sum", "softmax", "logsumexp"):
        assert got[key].dtype == np.float32, key
    assert type(got["loss_mean"]) is float and type(got["log_likelihood"]) is float
    assert got["predict"].dtype == np.int64
    # Casting W and b to float32 first changes nothing: W is computed in X's precision.
    expected = all_results(p["W"].astype(np.float32), X32, p["y"], p["b"].astype(np.float32), p["w"],
                           p["Z"].astype(np.float32))
    assert_identical(got, expected)
    # float64 X with float32 W: float64 results, W widened exactly.
    got64 = all_results(p["W"].astype(np.float32), p["X"], p["y"], p["b"].astype(np.float32), p["w"])
    exp64 = all_results(p["W"].astype(np.float32).astype(np.float64), p["X"], p["y"],
                        p["b"].astype(np.float32).astype(np.float64), p["w"])
    assert_identical(got64, exp64)
    assert got64["grad_W_mean"].dtype == np.float64


def test_python_lists_accepted():
    p = _problem()
    n = 200
    X, y, Y, w = p["X"][:n], p["y"][:n], p["Y"][:n], p["w"][:n]
    got = all_results(p["W"].tolist(), X.tolist(), y.tolist(), p["b"].tolist(), w.tolist(), p["Z"][:n].tolist())
    expected = all_results(p["W"], X, y, p["b"], w, p["Z"][:n])
    assert_identical(got, expected)
    got = all_results(p["W"].tolist(), X.tolist(), Y.tolist(), p["b"].tolist(), list(w))
    expected = all_results(p["W"], X, Y, p["b"], w)
    assert_identical(got, expected)
    # Tuples and nested integer lists too.
    P = csoftmax.predict_proba(((1, 0), (0, 1)), ((2, 0), (0, 0)))
    np.testing.assert_allclose(P[0], [1 / (1 + np.exp(-2)), 1 / (1 + np.exp(2))], rtol=1e-15)


def test_read_only_memmap_inputs(tmp_path):
    p = _problem()
    maps = {}
    for key in ("X", "W", "b", "y", "Y", "w", "Z"):
        path = tmp_path / f"{key}.dat"
        mm = np.memmap(path, dtype=p[key].dtype, mode="w+", shape=p[key].shape)
        mm[...] = p[key]
        mm.flush()
        del mm
        maps[key] = np.memmap(path, dtype=p[key].dtype, mode="r", shape=p[key].shape)
        assert not maps[key].flags.writeable
    for targets in ("y", "Y"):
        got = all_results(maps["W"], maps["X"], maps[targets], maps["b"], maps["w"], maps["Z"])
        expected = all_results(p["W"], p["X"], p[targets], p["b"], p["w"], p["Z"])
        assert_identical(got, expected)
    # A float32 memmap with F order and a strided view of it.
    path = tmp_path / "X32.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(N, D), order="F")
    mm[...] = p["X"]
    mm.flush()
    del mm
    X32 = np.memmap(path, dtype=np.float32, mode="r", shape=(N, D), order="F")
    for view in (X32, X32[::3, ::2]):
        expected = all_results(p["W"][:, : view.shape[1]] if view.shape[1] != D else p["W"], np.array(view),
                               p["y"][: view.shape[0]], p["b"])
        got = all_results(p["W"][:, : view.shape[1]] if view.shape[1] != D else p["W"], view,
                          p["y"][: view.shape[0]], p["b"])
        assert_identical(got, expected)
    # A read-only memmap is no out-buffer.
    path = tmp_path / "out.dat"
    np.memmap(path, dtype=np.float64, mode="w+", shape=(N, K)).flush()
    ro = np.memmap(path, dtype=np.float64, mode="r", shape=(N, K))
    with pytest.raises(ValueError, match=r"\bout\b"):
        csoftmax.softmax(p["Z"], out=ro)


def test_read_only_arrays():
    p = _problem()
    for arr in p.values():
        arr.setflags(write=False)
    got = all_results(p["W"], p["X"], p["y"], p["b"], p["w"], p["Z"])
    for arr in p.values():
        arr.setflags(write=True)
    assert_identical(got, all_results(p["W"], p["X"], p["y"], p["b"], p["w"], p["Z"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_byte_swapped_parameters_targets_weights(dtype):
    p = _problem()
    X = p["X"].astype(dtype)
    expected = all_results(p["W"], X, p["y"], p["b"], p["w"])
    swapped = {k: p[k].astype(p[k].dtype.newbyteorder(">")) for k in ("W", "b", "y", "Y", "w")}
    assert_identical(all_results(swapped["W"], X, swapped["y"], swapped["b"], swapped["w"]), expected)
    assert_identical(all_results(swapped["W"], X, swapped["Y"], swapped["b"], swapped["w"]),
                     all_results(p["W"], X, p["Y"], p["b"], p["w"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_byte_swapped_X_and_Z(dtype):
    p = _problem()
    X = p["X"].astype(dtype)
    Z = p["Z"].astype(dtype)
    expected = all_results(p["W"], X, p["y"], p["b"], p["w"], Z)
    swap = np.dtype(dtype).newbyteorder(">")
    got = all_results(p["W"], X.astype(swap), p["y"], p["b"], p["w"], Z.astype(swap))
    assert_identical(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_inputs(dtype):
    p = _problem()
    X = p["X"].astype(dtype)
    expected = all_results(p["W"], X, p["y"], p["b"], p["w"], p["Z"].astype(dtype))

    # Unaligned: the data start one byte into a buffer.
    def unaligned(a):
        raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
        raw[1:] = np.frombuffer(np.ascontiguousarray(a).tobytes(), dtype=np.uint8)
        out = np.frombuffer(raw.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        return out

    Xu = unaligned(X)
    assert not Xu.flags.aligned
    got = all_results(unaligned(p["W"]), Xu, unaligned(p["y"]), unaligned(p["b"]), unaligned(p["w"]),
                      unaligned(p["Z"].astype(dtype)))
    assert_identical(got, expected)
    # A strided, unaligned view (a field of a packed record array).
    rec = np.zeros(N, dtype=np.dtype([("pad", "u1"), ("x", dtype, (D,))], align=False))
    rec["x"] = X
    assert_identical(all_results(p["W"], rec["x"], p["y"], p["b"], p["w"]),
                     all_results(p["W"], X, p["y"], p["b"], p["w"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_never_modified_on_success(dtype):
    p = _problem()
    inputs = {
        "W": p["W"], "W32": p["W"].astype(np.float32), "X": p["X"].astype(dtype), "XF": np.asfortranarray(p["X"]),
        "b": p["b"], "y": p["y"], "y32": p["y"].astype(np.int32), "Y": p["Y"], "w": p["w"], "Z": p["Z"].astype(dtype),
    }
    copies = {k: v.copy() for k, v in inputs.items()}
    i = inputs
    for X, rows in ((i["X"], slice(None)), (i["XF"], slice(None)), (i["X"][::2], slice(None, None, 2)),
                    (i["X"][::-1], slice(None, None, -1))):
        for W in (i["W"], i["W32"]):
            for y in (i["y"][rows], i["y32"][rows], i["Y"][rows]):
                all_results(W, X, y, i["b"], i["w"][rows], i["Z"])
    gW, gb = np.empty((K, D), dtype), np.empty(K, dtype)
    csoftmax.loss_and_gradient(i["W"], i["X"], i["y"], i["b"], grad_W_out=gW, grad_b_out=gb)
    for k, v in inputs.items():
        np.testing.assert_array_equal(v, copies[k], err_msg=f"{k} was modified")


def test_zero_features():
    """D = 0: the logits are b alone."""
    b = np.array([1.0, 2.0, 3.0])
    X = np.empty((5, 0))
    W = np.empty((3, 0))
    y = np.array([0, 1, 2, 2, 1])
    P = csoftmax.predict_proba(W, X, b)
    np.testing.assert_allclose(P, np.tile(np.exp(b) / np.exp(b).sum(), (5, 1)), rtol=1e-14)
    loss, gW, gb = csoftmax.loss_and_gradient(W, X, y, b)
    ref = ref_loss_and_gradient(W, X, y, b)
    np.testing.assert_allclose(loss, ref[0], rtol=1e-14)
    assert gW.shape == (3, 0)
    assert_close(gb, ref[2], np.float64, scale=np.ones(3))
