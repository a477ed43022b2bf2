"""Every input kind (dense float, uint8, bool, PackedBits) gives the dense result."""

import pickle

import numpy as np
import pytest

import csoftmax
from csoftmax import PackedBits, pack_bits


def _binary_problem(rng, n, d, k, density=0.4):
    Xb = rng.random((n, d)) < density
    if n > 2:
        Xb[0] = False  # an empty row
        Xb[1] = True  # a row with every bit set
    W = rng.normal(size=(k, d))
    b = rng.normal(size=k)
    y = rng.integers(0, k, n)
    return Xb, W, b, y


def _kinds(Xb, csr_dtype=np.float64):
    kinds = {
        "packed": pack_bits(Xb),
        "bool": Xb,
        "uint8": Xb.astype(np.uint8),
        "uint8-F": np.asfortranarray(Xb.astype(np.uint8)),
        "bool-strided": np.repeat(Xb, 2, axis=1)[:, ::2],
    }
    try:
        import scipy.sparse as sp
    except ImportError:  # scipy is optional outside the test extra
        return kinds
    kinds["csr"] = sp.csr_matrix(Xb.astype(csr_dtype))
    return kinds


SHAPES = [(5, 1, 3), (70, 7, 4), (130, 63, 10), (300, 64, 10), (2500, 65, 5), (400, 130, 3)]


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("w_dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_every_function_matches_dense(n, d, k, w_dtype, n_threads, rng):
    Xb, W, b, y = _binary_problem(rng, n, d, k)
    W = W.astype(w_dtype)
    b = b.astype(w_dtype)
    weights = rng.uniform(0.5, 2.0, n)
    X_dense = Xb.astype(w_dtype)
    # float32: the dense reference computes its dot products in float32 (the
    # order of the partial sums depends on the vector width), the other kinds
    # add float32 weights in float64, so they agree to a few float32 ulps of
    # the logits, which a small probability magnifies.
    rtol = 1e-12 if w_dtype == np.float64 else 1e-5
    ref_loss, ref_gW, ref_gb = csoftmax.loss_and_gradient(W, X_dense, y, b, sample_weight=weights, l2=0.1)
    ref_P = csoftmax.predict_proba(W, X_dense, b)
    ref_pred = csoftmax.predict(W, X_dense, b)
    ref_L = csoftmax.log_likelihood(W, X_dense, y, b)
    ref_g = csoftmax.log_likelihood_gradient(W, X_dense, y, b)
    ref_H, ref_Hb = csoftmax.hessian_product(W, X_dense, 0.5 * W, b, b, y=y)
    for name, X in _kinds(Xb, w_dtype).items():
        loss, gW, gb = csoftmax.loss_and_gradient(
            W, X, y, b, sample_weight=weights, l2=0.1, n_threads=n_threads
        )
        assert gW.dtype == w_dtype, name
        np.testing.assert_allclose(loss, ref_loss, rtol=rtol, err_msg=name)
        np.testing.assert_allclose(gW, ref_gW, rtol=rtol, atol=rtol * np.abs(ref_gW).max(), err_msg=name)
        np.testing.assert_allclose(gb, ref_gb, rtol=rtol, atol=rtol * np.abs(ref_gb).max(), err_msg=name)
        P = csoftmax.predict_proba(W, X, b, n_threads=n_threads)
        np.testing.assert_allclose(P, ref_P, rtol=rtol, atol=1e-15, err_msg=name)
        np.testing.assert_array_equal(csoftmax.predict(W, X, b, n_threads=n_threads), ref_pred)
        np.testing.assert_allclose(csoftmax.log_likelihood(W, X, y, b), ref_L, rtol=rtol, err_msg=name)
        g = csoftmax.log_likelihood_gradient(W, X, y, b)
        np.testing.assert_allclose(g, ref_g, rtol=rtol, atol=rtol * np.abs(ref_g).max(), err_msg=name)
        H, Hb = csoftmax.hessian_product(W, X, 0.5 * W, b, b, y=y, n_threads=n_threads)
        np.testing.assert_allclose(H, ref_H, rtol=rtol, atol=rtol * np.abs(ref_H).max(), err_msg=name)
        np.testing.assert_allclose(Hb, ref_Hb, rtol=rtol, atol=rtol * np.abs(ref_Hb).max(), err_msg=name)


# Bit-packed rows go through per-call tables of the weights (byte groups
# when the tables are small and N is large, nibble groups for more classes or
# fewer rows, set bits for small calls): shapes that reach each, with D not a
# multiple of the group width, several words per row, K not a multiple of 4
# and N not a multiple of 4 or of a chunk; table rows of 4, 8 and 12 classes
# (walks compiled for those lengths) and of more.
GROUPED_SHAPES = [
    (12001, 64, 10),   # byte groups
    (12001, 64, 7),    # byte groups, rows of 8
    (12001, 61, 3),    # byte groups, partial last group
    (24001, 130, 3),   # byte groups, three words per row
    (3001, 64, 17),    # nibble groups (byte tables too big for 17 classes)
    (8001, 100, 1),    # nibble groups, K = 1
    (1503, 13, 2),     # nibble groups
    (3001, 20, 6),     # nibble groups, rows of 8
    (4001, 40, 12),    # nibble groups, rows of 12
]


@pytest.mark.parametrize("n,d,k", GROUPED_SHAPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_packed_group_tables_match_dense(n, d, k, n_threads, rng):
    Xb, W, b, y = _binary_problem(rng, n, d, k)
    X_dense = Xb.astype(np.float64)
    packed = pack_bits(Xb)
    weights = rng.uniform(0.5, 2.0, n)
    V, Vb = rng.normal(size=W.shape), rng.normal(size=k)
    expected = csoftmax.loss_and_gradient(W, X_dense, y, b, sample_weight=weights, l2=0.1)
    got = csoftmax.loss_and_gradient(W, packed, y, b, sample_weight=weights, l2=0.1, n_threads=n_threads)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12 * np.abs(e).max())
    expected = csoftmax.hessian_product(W, X_dense, V, b, Vb, y=y, sample_weight=weights)
    got = csoftmax.hessian_product(W, packed, V, b, Vb, y=y, sample_weight=weights, n_threads=n_threads)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12 * np.abs(e).max())
    np.testing.assert_allclose(
        csoftmax.predict_proba(W, packed, b, n_threads=n_threads), csoftmax.predict_proba(W, X_dense, b),
        rtol=1e-12, atol=1e-15,
    )
    np.testing.assert_array_equal(csoftmax.predict(W, packed, b, n_threads=n_threads), csoftmax.predict(W, X_dense, b))


@pytest.mark.parametrize("kind", ["packed", "uint8", "bool"])
def test_bitwise_identical_across_threads(kind, rng):
    Xb, W, b, y = _binary_problem(rng, 20000, 64, 10)
    X = _kinds(Xb)[kind]
    first = csoftmax.loss_and_gradient(W, X, y, b, n_threads=1)
    for n_threads in (2, 3, 4):
        again = csoftmax.loss_and_gradient(W, X, y, b, n_threads=n_threads)
        assert again[0] == first[0]
        assert np.array_equal(again[1], first[1])
        assert np.array_equal(again[2], first[2])


def test_uint8_values_other_than_binary_are_used_as_numbers(rng):
    X = rng.integers(0, 17, size=(300, 64)).astype(np.uint8)  # digit pixels 0..16
    W = rng.normal(size=(10, 64)) * 0.1
    y = rng.integers(0, 10, 300)
    ref = csoftmax.loss_and_gradient(W, X.astype(np.float64), y)
    got = csoftmax.loss_and_gradient(W, X, y)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-14)


# uint8 rows are widened chunk by chunk to W's float dtype and take the float
# kernels: row tiles (digits-like, few classes), pair tiles (long rows),
# logits by features (long rows, many classes), several chunks and a partial one.
UINT8_SHAPES = [(1000, 64, 10), (300, 13, 3), (130, 300, 7), (200, 1100, 40)]


@pytest.mark.parametrize("n,d,k", UINT8_SHAPES)
@pytest.mark.parametrize("w_dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_uint8_and_bool_rows_give_the_float_array_results_bit_for_bit(n, d, k, w_dtype, n_threads, rng):
    X8 = rng.integers(0, 17, size=(n, d)).astype(np.uint8)
    W = (rng.normal(size=(k, d)) * 0.1).astype(w_dtype)
    b = rng.normal(size=k).astype(w_dtype)
    y = rng.integers(0, k, n)
    weights = rng.uniform(0.5, 2.0, n)
    X_float = X8.astype(w_dtype)
    Xb = X8 > 8
    cases = [
        (X8, X_float),
        (np.asfortranarray(X8), X_float),
        (np.repeat(X8, 2, axis=1)[:, ::2], X_float),
        (Xb, Xb.astype(w_dtype)),
    ]
    for X, ref in cases:
        got = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=weights, n_threads=n_threads)
        want = csoftmax.loss_and_gradient(W, ref, y, b, sample_weight=weights, n_threads=n_threads)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[2], want[2])
        np.testing.assert_array_equal(
            csoftmax.predict_proba(W, X, b, n_threads=n_threads), csoftmax.predict_proba(W, ref, b, n_threads=n_threads)
        )
        for g, w in zip(
            csoftmax.hessian_product(W, X, W, b, b, y=y, n_threads=n_threads),
            csoftmax.hessian_product(W, ref, W, b, b, y=y, n_threads=n_threads),
        ):
            np.testing.assert_array_equal(g, w)


def test_uint8_input_is_not_copied_to_float(rng):
    tracemalloc = pytest.importorskip("tracemalloc")
    X = (rng.random((100000, 64)) < 0.5).astype(np.uint8)
    W = rng.normal(size=(10, 64))
    y = rng.integers(0, 10, 100000)
    csoftmax.loss_and_gradient(W, X, y)
    tracemalloc.start()
    csoftmax.loss_and_gradient(W, X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < X.nbytes // 4


def test_pack_bits_round_trip_and_layout(rng):
    Xb = rng.random((9, 130)) < 0.5
    pb = pack_bits(Xb)
    assert pb.shape == (9, 130) and pb.n_samples == 9 and pb.n_features == 130 and len(pb) == 9
    assert pb.words.dtype == np.uint64 and pb.words.shape == (9, 3)
    np.testing.assert_array_equal(pb.unpack(), Xb.astype(np.uint8))
    # feature i is bit i % 64 of word i // 64
    i = 70
    expected = (pb.words[:, i // 64] >> np.uint64(i % 64)) & np.uint64(1)
    np.testing.assert_array_equal(expected.astype(bool), Xb[:, i])
    assert pack_bits(Xb.astype(np.float32)) == pb
    assert pack_bits(Xb.astype(np.int64)) == pb


@pytest.mark.parametrize("bitorder", ["big", "little"])
@pytest.mark.parametrize("d", [1, 7, 8, 63, 64, 65, 130])
def test_from_packbits(bitorder, d, rng):
    Xb = rng.random((6, d)) < 0.5
    A = np.packbits(Xb, axis=1, bitorder=bitorder)
    pb = PackedBits.from_packbits(A, d, bitorder=bitorder)
    np.testing.assert_array_equal(pb.unpack(), Xb.astype(np.uint8))
    assert pb == pack_bits(Xb)


def test_from_packbits_wraps_aligned_little_rows_without_copy(rng):
    Xb = rng.random((16, 128)) < 0.5
    A = np.packbits(Xb, axis=1, bitorder="little")
    pb = PackedBits.from_packbits(A, 128, bitorder="little")
    assert np.shares_memory(pb.words, A)
    assert A.flags.writeable  # the caller's array keeps its flags
    assert not pb.words.flags.writeable


def test_pack_bits_rejects_non_binary_values_naming_row_and_column():
    X = np.zeros((4, 5))
    X[2, 3] = 0.5
    with pytest.raises(ValueError, match="row 2, column 3"):
        pack_bits(X)
    with pytest.raises(ValueError, match="row 0, column 0"):
        pack_bits(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        pack_bits(np.zeros(3))
    with pytest.raises(TypeError, match="0/1"):
        pack_bits(np.array([["a", "b"]]))


def test_from_packbits_errors():
    with pytest.raises(ValueError, match="bitorder"):
        PackedBits.from_packbits(np.zeros((2, 1), np.uint8), 8, bitorder="middle")
    with pytest.raises(ValueError, match="needs 2"):
        PackedBits.from_packbits(np.zeros((2, 1), np.uint8), 9)
    with pytest.raises(TypeError, match="uint8"):
        PackedBits.from_packbits(np.zeros((2, 1), np.int32), 8)


def test_slicing_indexing_and_pickling(rng):
    Xb = rng.random((20, 70)) < 0.5
    pb = pack_bits(Xb)
    np.testing.assert_array_equal(pb[5:9].unpack(), Xb[5:9])
    np.testing.assert_array_equal(pb[[1, 7, 3]].unpack(), Xb[[1, 7, 3]])
    np.testing.assert_array_equal(pb[Xb[:, 0]].unpack(), Xb[Xb[:, 0]])
    np.testing.assert_array_equal(pb[4], Xb[4].astype(np.uint8))
    with pytest.raises(IndexError):
        pb[1, 2]
    clone = pickle.loads(pickle.dumps(pb))
    assert clone == pb and clone.shape == pb.shape
    assert "n_features=70" in repr(pb)


def test_packed_bits_is_immutable(rng):
    pb = pack_bits(rng.random((3, 10)) < 0.5)
    with pytest.raises(ValueError):
        pb.words[0, 0] = 1
    with pytest.raises(AttributeError):
        pb.extra = 1


def test_packed_with_2_to_16_features(rng):
    d = 1 << 16
    n = 40
    Xb = rng.random((n, d)) < 0.01
    W = rng.normal(size=(3, d))
    y = rng.integers(0, 3, n)
    ref = csoftmax.loss_and_gradient(W, Xb.astype(np.float64), y)
    got = csoftmax.loss_and_gradient(W, pack_bits(Xb), y)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-15)


def test_packed_shape_mismatch_names_w(rng):
    pb = pack_bits(rng.random((3, 10)) < 0.5)
    with pytest.raises(ValueError, match="W has 11 features"):
        csoftmax.predict(np.zeros((2, 11)), pb)


# ---------------------------------------------------------------------------
# Sparse CSR (and other scipy.sparse formats, converted once)
# ---------------------------------------------------------------------------

sparse = pytest.importorskip("scipy.sparse")


def _sparse_problem(rng, n=700, d=300, k=6, density=0.05, dtype=np.float64):
    A = sparse.random(n, d, density=density, format="csr", random_state=rng.integers(1 << 30), dtype=dtype)
    W = rng.normal(size=(k, d))
    b = rng.normal(size=k)
    y = rng.integers(0, k, n)
    return A, W, b, y


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("container", ["matrix", "array"])
@pytest.mark.parametrize("n_threads", [1, 3])
def test_sparse_matches_dense(fmt, container, n_threads, rng):
    A, W, b, y = _sparse_problem(rng, n=5000)
    X = A.toarray()
    S = (sparse.csr_matrix(A) if container == "matrix" else sparse.csr_array(A)).asformat(fmt)
    w = rng.uniform(0.5, 2.0, X.shape[0])
    ref = csoftmax.loss_and_gradient(W, X, y, b, sample_weight=w, l2=0.1)
    got = csoftmax.loss_and_gradient(W, S, y, b, sample_weight=w, l2=0.1, n_threads=n_threads)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-12 * np.abs(ref[1]).max())
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-12, atol=1e-12 * np.abs(ref[2]).max())
    np.testing.assert_allclose(csoftmax.predict_proba(W, S, b), csoftmax.predict_proba(W, X, b), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(csoftmax.predict(W, S, b), csoftmax.predict(W, X, b))
    np.testing.assert_allclose(csoftmax.log_likelihood(W, S, y, b), csoftmax.log_likelihood(W, X, y, b), rtol=1e-12)
    H = csoftmax.hessian_product(W, S, W, b, b, n_threads=n_threads)[0]
    np.testing.assert_allclose(H, csoftmax.hessian_product(W, X, W, b, b)[0], rtol=1e-12, atol=1e-13)


def test_sparse_float32_data_and_int64_indices(rng):
    A, W, b, y = _sparse_problem(rng, dtype=np.float32)
    A.indices = A.indices.astype(np.int64)
    A.indptr = A.indptr.astype(np.int64)
    got = csoftmax.loss_and_gradient(W, A, y, b)
    assert got[1].dtype == np.float32
    ref = csoftmax.loss_and_gradient(W, A.toarray(), y, b)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4, atol=1e-5)


def test_sparse_unsorted_indices_explicit_zeros_empty_rows(rng):
    # Row 0: unsorted indices with an explicit zero; row 1 empty; row 2 repeats a column (summed).
    data = np.array([2.0, 0.0, -1.5, 3.0, 0.5, 0.25])
    indices = np.array([4, 1, 0, 2, 2, 3])
    indptr = np.array([0, 3, 3, 6])
    S = sparse.csr_matrix((data, indices, indptr), shape=(3, 5))
    assert not S.has_sorted_indices
    X = S.toarray()  # duplicates are summed, as csoftmax does
    W = rng.normal(size=(4, 5))
    y = np.array([0, 3, 1])
    ref = csoftmax.loss_and_gradient(W, X, y)
    got = csoftmax.loss_and_gradient(W, S, y)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-13, atol=1e-15)
    assert S.data.tolist() == data.tolist() and S.indices.tolist() == indices.tolist()  # untouched


def test_sparse_bad_structure_is_a_clear_error(rng):
    A, W, b, y = _sparse_problem(rng, n=20, d=10)
    bad = A.copy()
    bad.indices = bad.indices.copy()
    bad.indices[0] = 10
    with pytest.raises(ValueError, match="column index 10 outside"):
        csoftmax.loss_and_gradient(W, bad, y, b)
    bad = A.copy()
    bad.indptr = bad.indptr.copy()
    bad.indptr[-1] += 1
    with pytest.raises(ValueError, match="inconsistent structure"):
        csoftmax.predict(W, bad, b)
