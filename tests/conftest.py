import os
import pytest
import torch
from hypothesis import settings

from robust_nb.data import find_dataset

# hypothesis: in CI (CI=true, as GitHub Actions sets it) every run tries the same examples, derived from each test's
# source, and keeps no example database, so a red build is reproducible and never the luck of a draw; locally it
# explores new examples each run. Either way a failure prints the `@reproduce_failure` blob, and a failing example it
# finds becomes an `@example` on the test. HYPOTHESIS_PROFILE=ci selects the CI profile anywhere.
settings.register_profile('ci', derandomize=True, database=None, print_blob=True)
settings.register_profile('dev', print_blob=True)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE') or ('ci' if os.environ.get('CI', '').lower() in ('true', '1') else 'dev'))


@pytest.fixture(scope='session')
def fmnist_available():
    if find_dataset('fashion_mnist', 'test') is None:
        pytest.fail("Fashion-MNIST is missing: run `make data` (the tests rely on it)")
    return True


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
