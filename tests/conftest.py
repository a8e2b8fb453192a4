"""Shared test set-up."""

import os
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def one_blas_thread():
    # The tests fit many tiny models; on a busy two-core machine two BLAS threads per fit
    # fight each other and made some tests ten times slower. Speed is measured in
    # benchmarks/, not here.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def one_torch_thread():
    """One torch thread during a test (``pytest.mark.usefixtures("one_torch_thread")``): tiny
    networks run several times faster on one thread than on two contended cores."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# MNIST's t10k files: $SKAL_MNIST_DIR, else shared/data/mnist beside the repository, else
# where this project's machines keep it (a fresh clone elsewhere still finds it).
MNIST_DIR = Path(os.environ.get("SKAL_MNIST_DIR") or next(
    (folder for folder in (Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
                           Path("/work/shared/data/mnist")) if folder.is_dir()),
    "shared/data/mnist"))


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder of MNIST's t10k IDX files; skips the test without them."""
    if not any(MNIST_DIR.glob("t10k-images-idx3-ubyte*")):
        pytest.skip(f"no MNIST t10k files in {MNIST_DIR} (set SKAL_MNIST_DIR)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_t10k(mnist_dir):
    """MNIST's 10,000 t10k images (flat float32 rows in [0, 1]) and labels; skips without
    the files."""
    from skal.datasets import load_mnist_idx

    return load_mnist_idx(mnist_dir)

