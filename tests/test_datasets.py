"""The built-in digits and the stratified split."""

import hashlib
import importlib.resources

import numpy as np
import pytest

import csoftmax
from csoftmax.datasets import Bunch, load_digits8x8, train_test_split

# Samples per digit 0..9 in the UCI test set (optdigits.tes).
UCI_TEST_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_data_file_is_a_small_package_resource():
    resource = importlib.resources.files("csoftmax.datasets").joinpath("digits8x8.npz")
    assert resource.is_file()
    size = len(resource.read_bytes())
    assert 0 < size <= 50 * 1024


def test_data_file_checksums_match_the_documented_ones():
    resource = importlib.resources.files("csoftmax.datasets").joinpath("digits8x8.npz")
    with resource.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
        images, target = archive["images"], archive["target"]
    assert images.dtype == np.uint8 and target.dtype == np.uint8
    readme = importlib.resources.files("csoftmax.datasets").joinpath("README.md").read_text()
    assert hashlib.sha256(images.tobytes()).hexdigest() in readme
    assert hashlib.sha256(target.tobytes()).hexdigest() in readme


def test_binary_digits():
    digits = load_digits8x8()
    assert isinstance(digits, Bunch)
    assert digits.data.shape == (1797, 64) and digits.data.dtype == np.float64
    assert digits.images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(digits.images.reshape(1797, 64), digits.data)
    assert set(np.unique(digits.data).tolist()) == {0.0, 1.0}
    assert digits.target.shape == (1797,) and digits.target.dtype == np.int64
    assert np.bincount(digits.target).tolist() == UCI_TEST_COUNTS
    np.testing.assert_array_equal(digits.target_names, np.arange(10))
    assert digits.feature_names[:2] == ["pixel_0_0", "pixel_0_1"] and len(digits.feature_names) == 64
    assert digits["data"] is digits.data
    for word in ("CC BY 4.0", "10.24432/C50P49", "Alpaydin", "Kaynak"):
        assert word in digits.DESCR
    for word in ("CC BY 4.0", "10.24432/C50P49", "Alpaydin"):
        assert word in load_digits8x8.__doc__


def test_raw_digits_and_binarisation_threshold():
    X_raw, y_raw = load_digits8x8(binary=False, return_X_y=True)
    X_bin, y_bin = load_digits8x8(return_X_y=True)
    assert X_raw.shape == (1797, 64)
    assert X_raw.min() == 0 and X_raw.max() == 16
    assert set(np.unique(X_raw).tolist()) == set(range(17))
    np.testing.assert_array_equal(X_bin, (X_raw >= 8).astype(np.float64))
    np.testing.assert_array_equal(y_raw, y_bin)


def test_each_call_returns_fresh_arrays():
    a = load_digits8x8()
    a.data[:] = 5
    assert load_digits8x8().data.max() == 1


def test_matches_scikit_learn_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    reference = datasets.load_digits()
    X_raw, y = load_digits8x8(binary=False, return_X_y=True)
    np.testing.assert_array_equal(X_raw, reference.data)
    np.testing.assert_array_equal(y, reference.target)
    assert np.bincount(reference.target).tolist() == UCI_TEST_COUNTS


def test_packed():
    if not hasattr(csoftmax, "PackedBits"):
        with pytest.raises(NotImplementedError, match="PackedBits"):
            load_digits8x8(packed=True)
        return
    X_packed, y = load_digits8x8(packed=True, return_X_y=True)
    assert isinstance(X_packed, csoftmax.PackedBits)
    assert X_packed.shape == (1797, 64)
    X, y_dense = load_digits8x8(return_X_y=True)
    np.testing.assert_array_equal(X_packed.unpack(), X)
    np.testing.assert_array_equal(y, y_dense)
    bunch = load_digits8x8(packed=True)
    assert isinstance(bunch.data, csoftmax.PackedBits)
    assert bunch.images.shape == (1797, 8, 8)


def test_bad_arguments():
    with pytest.raises(ValueError, match="binary=True"):
        load_digits8x8(binary=False, packed=True)
    with pytest.raises(TypeError, match="binary"):
        load_digits8x8(binary="yes")
    with pytest.raises(TypeError):
        load_digits8x8(True)  # keyword-only


# ---------------------------------------------------------------------------
# train_test_split
# ---------------------------------------------------------------------------


def test_split_of_the_digits_is_stratified_and_reproducible():
    X, y = load_digits8x8(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y)
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert y_train.shape == (1347,) and y_test.shape == (450,)
    counts = np.bincount(y)
    test_counts = np.bincount(y_test, minlength=10)
    # Every class within one sample of its proportional share.
    assert np.all(np.abs(test_counts - 0.25 * counts) < 1)
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10) + test_counts, counts)
    # Same split every time; a different seed gives a different one.
    again = train_test_split(X, y, test_size=0.25, random_state=0)
    for a, b in zip((X_train, X_test, y_train, y_test), again):
        np.testing.assert_array_equal(a, b)
    other = train_test_split(X, y, random_state=1)
    assert not np.array_equal(other[3], y_test) or not np.array_equal(other[1], X_test)


def test_split_is_a_partition_in_the_original_order():
    y = np.repeat(np.arange(3), [10, 20, 30])
    X = np.arange(60)[:, None] * np.ones((1, 2))
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=7)
    train_rows, test_rows = X_train[:, 0].astype(int), X_test[:, 0].astype(int)
    assert np.all(np.diff(train_rows) > 0) and np.all(np.diff(test_rows) > 0)
    assert sorted(np.concatenate([train_rows, test_rows]).tolist()) == list(range(60))
    np.testing.assert_array_equal(y_train, y[train_rows])
    np.testing.assert_array_equal(y_test, y[test_rows])
    assert np.bincount(y_test).tolist() == [3, 6, 9]


def test_split_sizes_and_remainders():
    y = np.array([0] * 5 + [1] * 3 + [2] * 2)
    X = np.zeros((10, 1))
    _, X_test, _, y_test = train_test_split(X, y, test_size=0.35)  # ceil(3.5) = 4
    assert len(y_test) == 4
    # Shares 2.0, 1.2, 0.8: floors 2, 1, 0; the one left goes to class 2 (largest remainder).
    assert np.bincount(y_test, minlength=3).tolist() == [2, 1, 1]
    _, _, y_train, y_test = train_test_split(X, y, test_size=3)
    assert len(y_test) == 3 and len(y_train) == 7


def test_split_accepts_string_labels_lists_and_generators():
    y = ["b", "a", "b", "a", "b", "a", "b", "a"]
    X = [[i] for i in range(8)]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, random_state=np.random.default_rng(3))
    assert isinstance(X_train, np.ndarray)
    assert sorted(y_test.tolist()) == ["a", "a", "b", "b"]


def test_split_of_packed_bits():
    if not hasattr(csoftmax, "PackedBits"):
        pytest.skip("this version of csoftmax has no PackedBits")
    X_packed, y = load_digits8x8(packed=True, return_X_y=True)
    X, _ = load_digits8x8(return_X_y=True)
    P_train, P_test, y_train, y_test = train_test_split(X_packed, y)
    X_train, X_test, y_train2, _ = train_test_split(X, y)
    np.testing.assert_array_equal(P_train.unpack(), X_train)
    np.testing.assert_array_equal(P_test.unpack(), X_test)
    np.testing.assert_array_equal(y_train, y_train2)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"test_size": 0.0}, ValueError, "test_size"),
        ({"test_size": 1.0}, ValueError, "test_size"),
        ({"test_size": 10}, ValueError, "test_size"),
        ({"test_size": "half"}, TypeError, "test_size"),
        ({"test_size": True}, TypeError, "test_size"),
        ({"random_state": "seed"}, TypeError, "random_state"),
        ({"random_state": 1.5}, TypeError, "random_state"),
    ],
)
def test_split_bad_arguments(kwargs, error, match):
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    with pytest.raises(error, match=match):
        train_test_split(X, y, **kwargs)


def test_split_shape_mismatch():
    with pytest.raises(ValueError, match="samples"):
        train_test_split(np.zeros((5, 2)), np.arange(6))
    with pytest.raises(ValueError, match="1-D"):
        train_test_split(np.zeros((5, 2)), np.zeros((5, 2)))
