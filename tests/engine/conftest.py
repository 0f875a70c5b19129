"""Fixtures shared by the engine tests."""
import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread: on tiny tensors extra threads only contend for the shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
