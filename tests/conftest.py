"""Test-wide settings.

The models under test are tiny: one intra-op thread is as fast as two for them, and far
faster when the two cores are shared with other processes (spinning threads then wait on
each other).
"""

import torch

torch.set_num_threads(1)
