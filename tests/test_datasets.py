"""skal.datasets: the IDX (MNIST) reader, on files written by hand."""

import gzip
import os
import struct

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from skal.datasets import load_mnist_idx, read_idx

MNIST_DIR = "/work/shared/data/mnist"


def _write_idx(path, array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / f"img{suffix}", images)
    assert_array_equal(read_idx(tmp_path / f"img{suffix}"), images)
    floats = np.array([[1.5, -2.0]], dtype=">f4")
    _write_idx(tmp_path / "floats", floats, type_code=0x0D)
    got = read_idx(tmp_path / "floats")
    assert got.dtype == np.float32 and got.dtype.isnative
    assert_array_equal(got, [[1.5, -2.0]])


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "short", np.zeros((3, 2), dtype=np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="announces shape"):
        read_idx(tmp_path / "short")


def test_load_mnist_idx_from_folder(tmp_path):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, size=(5, 28, 28)).astype(np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    X, y = load_mnist_idx(tmp_path)
    assert X.shape == (5, 784) and X.dtype == np.float32
    assert_array_equal(X[2].reshape(28, 28), images[2] / np.float32(255))
    assert_array_equal(y, labels) and y.dtype == np.int64
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist_idx(tmp_path, kind="train")
    with pytest.raises(NotADirectoryError):
        load_mnist_idx(tmp_path / "t10k-labels-idx1-ubyte")


@pytest.mark.skipif(not os.path.isdir(MNIST_DIR), reason="MNIST test files not present")
def test_load_real_mnist_test_set():
    X, y = load_mnist_idx(MNIST_DIR)
    assert X.shape == (10_000, 784) and y.shape == (10_000,)
    assert 0.0 <= X.min() and X.max() == 1.0
    assert_array_equal(np.bincount(y) > 800, True)
    assert y[:5].tolist() == [7, 2, 1, 0, 4]
