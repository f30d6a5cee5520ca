import os
import pytest
import torch

from robust_nb.data import find_dataset


@pytest.fixture(scope='session')
def fmnist_available():
    if find_dataset('fashion_mnist', 'test') is None:
        pytest.fail("Fashion-MNIST is missing: run `make data` (the tests rely on it)")
    return True


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
