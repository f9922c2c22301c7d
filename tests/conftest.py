"""Test-wide settings.

The models under test are tiny: one intra-op thread is as fast as two for them, and far
faster when the two cores are shared with other processes (spinning threads then wait on
each other).

Every test starts from the same global random state, so a test that draws from it (an
unseeded ``torch.randn``) sees the same numbers alone, in any order and on any machine.
"""

import random

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Every test starts on one thread, whatever an earlier one set (`--threads` of a verb)."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_global_random_state():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
