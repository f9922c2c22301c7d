"""Synthetic episodes for the dataset tests that need no simulator."""

from __future__ import annotations

import numpy as np

from armworld.datasets.hdf5 import Episode

ENV_ARGS = {"env_name": "armworld/FrankaPush-v0", "type": 2, "env_kwargs": {"image_size": 32}, "max_episode_steps": 8}


def synthetic_episode(n: int, seed: int, image_size: int = 32, action_dim: int = 7) -> Episode:
    """An episode of ``n`` actions with random but well-formed fields (two cameras)."""
    rng = np.random.default_rng(seed)
    terminated = np.zeros(n, dtype=bool)
    truncated = np.zeros(n, dtype=bool)
    truncated[-1] = True
    return Episode(
        obs={
            "rgb_front": rng.integers(0, 256, (n + 1, image_size, image_size, 3), dtype=np.uint8),
            "rgb_wrist": rng.integers(0, 256, (n + 1, image_size, image_size, 3), dtype=np.uint8),
            "proprio": rng.normal(0, 0.3, (n + 1, 7)).astype(np.float32),
            "desired_goal": rng.normal(0, 0.1, (n + 1, 3)).astype(np.float32),
        },
        states=rng.normal(size=(n + 1, 20)),
        actions=rng.uniform(-1, 1, (n, action_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        terminated=terminated,
        truncated=truncated,
        success=rng.random(n) < 0.5,
        seed=seed,
        policy="synthetic",
    )
