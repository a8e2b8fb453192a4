"""Dataset readers used by skal's experiments and benchmarks."""

from skal.datasets._digits import mnist_as_digits
from skal.datasets._mnist import load_mnist_idx, read_idx

__all__ = ["load_mnist_idx", "read_idx", "mnist_as_digits"]
