"""Shared test set-up."""

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
