"""The one interface every armworld agent shares: world-model planners, SB3 policies,
scripted experts and random exploration are all driven by the same loop::

    agent.reset()
    action = agent.act(obs)   # obs: the env's flat observation dict; action: [A] float32 in [-1, 1]
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Agent(Protocol):
    """Anything with ``reset()`` and ``act(obs) -> action``."""

    def reset(self) -> None:
        """Forget the previous episode (plans, noise state). Called after every ``env.reset``."""

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The next env action ``[A]`` (float32, in [-1, 1]) for the observation dict ``obs``."""
