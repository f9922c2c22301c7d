"""What :func:`armworld.datasets.collect.collect` collects (:class:`CollectConfig`), declared once
for the library and for ``armworld collect``'s ``--seed``, ``--workers`` and ``--max-steps``;
free of h5py, MuJoCo and torch so that ``armworld --help`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium

from armworld.envs.argtypes import check_options, option, positive_int, seed


@dataclass(frozen=True)
class CollectConfig:
    """What to collect.

    env_id: a registered id (``armworld.ENV_IDS``); env_kwargs: passed to ``gymnasium.make``;
    max_episode_steps: overrides the id's step budget; episodes: the number the file holds
    when done (with ``exist="resume"``, only the missing ones are collected); seed: episode
    ``i`` uses ``seed + i``; workers: processes (1 = in this process); policy_name: recorded
    in each episode's ``policy`` attribute. ``seed``, ``workers`` and ``max_episode_steps`` are
    also the flags of ``armworld collect`` (:func:`armworld.envs.argtypes.option`).
    """

    env_id: str
    episodes: int
    seed: int = option(0, "episode i is reset with seed + i", seed)
    workers: int = option(1, "collection processes", positive_int)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = option(
        None, "step budget per episode (default: the env's)", positive_int, flag="--max-steps"
    )
    policy_name: str = "policy"

    def __post_init__(self) -> None:
        check_options(self)
        if self.episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {self.episodes}")

    def make_env(self) -> gymnasium.Env:
        """A fresh env of this collection."""
        return gymnasium.make(self.env_id, max_episode_steps=self.max_episode_steps, **self.env_kwargs)
