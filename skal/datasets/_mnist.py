"""Readers for the MNIST files in the IDX format (as distributed, optionally gzipped)."""

import gzip
import os

import numpy as np

# The third header byte gives the element type of an IDX file.
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path):
    """Read one IDX file (``.gz`` or plain) into an array of the shape its header gives.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    array : ndarray
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    n_dims = data[3]
    header = 4 + 4 * n_dims
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=n_dims, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: the header announces shape {shape} ({expected} bytes) but "
            f"{len(data) - header} bytes follow."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        candidate = os.path.join(directory, name)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"Neither {stem} nor {stem}.gz is in {directory}.")


def load_mnist_idx(path, kind="t10k"):
    """Load MNIST (or Fashion-MNIST) images and labels from a folder of IDX files.

    Parameters
    ----------
    path : str or path-like
        The folder holding ``{kind}-images-idx3-ubyte`` and ``{kind}-labels-idx1-ubyte``,
        each optionally gzipped (``.gz``), as distributed.
    kind : {"t10k", "train"}, default="t10k"
        Which split to read.

    Returns
    -------
    X : ndarray of shape (n_images, 784), float32
        Pixels scaled to [0, 1], each image flattened row by row (reshape to
        ``(-1, 1, 28, 28)`` for images).
    y : ndarray of shape (n_images,), int64
        The digits.

    Examples
    --------
    >>> from skal.datasets import load_mnist_idx
    >>> X, y = load_mnist_idx("/path/to/mnist")  # doctest: +SKIP
    >>> X.shape, y.shape  # doctest: +SKIP
    ((10000, 784), (10000,))
    """
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"{directory} is not a folder of MNIST IDX files.")
    images = read_idx(_find(directory, f"{kind}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{kind}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"Expected images of shape (n, rows, cols) and n labels, got {images.shape} and "
            f"{labels.shape}."
        )
    X = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
    return X, labels.astype(np.int64)
