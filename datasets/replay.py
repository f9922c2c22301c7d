"""Re-simulate a recorded episode from its reset seed and actions, and compare the states."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from armworld.datasets.env_args import make_env
from armworld.datasets.hdf5 import TrajectoryFile


@dataclass(frozen=True)
class ReplayResult:
    """How closely a replay followed the recording.

    steps: actions replayed; max_error: the largest absolute difference between recorded
    and re-simulated MuJoCo states (state units: m, rad, m/s, ...); first_mismatch: the
    first observation row whose state differs by more than the tolerance, or None.
    """

    demo: str
    steps: int
    max_error: float
    first_mismatch: int | None

    @property
    def matches(self) -> bool:
        """Whether every state agreed within the tolerance."""
        return self.first_mismatch is None

    def line(self) -> str:
        """A one-line human report."""
        verdict = "states match" if self.matches else f"states diverge from row {self.first_mismatch}"
        return f"{self.demo}: replayed {self.steps} actions, {verdict} (max |error| {self.max_error:.3g})"


def replay(path: str | os.PathLike, demo: str, atol: float = 1e-9) -> ReplayResult:
    """Reset a fresh env with the demo's seed, step its actions, compare each state [S] with ``states``."""
    with TrajectoryFile(path) as file:
        recorded = file.read(demo, "states")
        actions = file.read(demo, "actions")
        seed = int(file.attrs(demo)["seed"])
        env = make_env(file.env_args)
    try:
        env.reset(seed=seed)
        simulated = [env.unwrapped.get_sim_state()]
        for action in actions:
            env.step(action)
            simulated.append(env.unwrapped.get_sim_state())
    finally:
        env.close()
    errors = np.abs(np.stack(simulated) - recorded).max(axis=1)
    bad = np.flatnonzero(errors > atol)
    return ReplayResult(
        demo=demo,
        steps=len(actions),
        max_error=float(errors.max()),
        first_mismatch=int(bad[0]) if len(bad) else None,
    )
