"""Where models run: the device names the CLI takes, and the proprio integration in torch
(the planner's rollouts integrate it on the model's device) against the NumPy convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from armworld.agents.loading import DeviceError, resolve_device
from armworld.envs import conventions
from armworld.worldmodel.world_model import apply_delta, integrate_proprio


def test_device_names_resolve_or_are_refused_with_the_choices():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None) == resolve_device("") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    for name in ("tpu", "gpu", "cuda:x"):
        with pytest.raises(DeviceError, match="name one of cpu, cuda, cuda:N or mps"):
            resolve_device(name)
    if torch.cuda.is_available():
        assert resolve_device("cuda") == torch.device("cuda", 0)
        with pytest.raises(DeviceError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")
    if not torch.backends.mps.is_available():
        with pytest.raises(DeviceError, match="MPS"):
            resolve_device("mps")


def random_states(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proprio = rng.normal(size=(count, 7)).astype(np.float32)
    proprio[:, 6] = rng.uniform(0, 1, count)
    delta = (0.2 * rng.normal(size=(count, 7))).astype(np.float32)
    return proprio, delta


def test_apply_delta_in_torch_is_the_numpy_convention_bit_for_bit():
    proprio, delta = random_states(20_000)
    expected = conventions.apply_delta(proprio, delta)
    got = apply_delta(torch.from_numpy(proprio), torch.from_numpy(delta))
    assert got.dtype == torch.float32 and np.array_equal(got.numpy(), expected)


def test_integrate_proprio_chains_the_deltas_from_the_start_state():
    proprio, delta = random_states(12, seed=1)
    actions = torch.from_numpy(delta).view(4, 3, 7)
    states = integrate_proprio(torch.from_numpy(proprio[:4]), actions)
    expected = [proprio[:4]]
    for h in range(2):
        expected.append(conventions.apply_delta(expected[-1], delta.reshape(4, 3, 7)[:, h]))
    assert states.shape == (4, 3, 7) and np.array_equal(states.numpy(), np.stack(expected, axis=1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_integrate_proprio_runs_on_the_gpu_and_agrees_with_the_cpu():
    proprio, delta = random_states(64, seed=2)
    start, actions = torch.from_numpy(proprio[:16]), torch.from_numpy(delta).view(16, 4, 7)
    on_gpu = integrate_proprio(start.cuda(), actions.cuda())
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), integrate_proprio(start, actions), atol=1e-6)
