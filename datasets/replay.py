"""Re-simulate a recorded episode from its reset seed and actions, and compare the states."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from armworld.datasets.env_args import make_env
from armworld.datasets.hdf5 import DatasetError, TrajectoryFile
from armworld.datasets.record import EpisodeRecorder
from armworld.envs.episode import SimStates, require, run_episode


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
    """Reset a fresh env with the demo's seed, step its actions, compare each state [S] with ``states``.

    A demo that cannot be re-simulated (recorded on a real arm, without a reset seed, with
    states or actions that do not fit the env or are not finite) raises ``DatasetError``
    before simulating.
    """
    with TrajectoryFile(path) as file:
        where = f"{file.path}: {demo}"
        recorded = file.read(demo, "states")
        actions = file.read(demo, "actions")
        seed = file.seed(demo)
        env_args = file.env_args
    env_name = str(env_args.get("env_name"))
    if env_name.startswith("real:"):
        raise DatasetError(f"{where} was recorded on a real arm ({env_name}) and cannot be re-simulated")
    if seed is None:
        raise DatasetError(f"{where} has no 'seed' attribute: it cannot be replayed")
    if seed < 0:
        raise DatasetError(f"{where} has no reset seed ({seed}): it cannot be replayed")
    if recorded.ndim != 2 or actions.ndim != 2 or len(recorded) != len(actions) + 1:
        raise DatasetError(
            f"{where}: states of shape {recorded.shape} and actions of shape {actions.shape} do not fit "
            f"(expected [N+1, S] and [N, A])"
        )
    for key, values in (("states", recorded), ("actions", actions)):
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if len(bad):
            raise DatasetError(f"{where}: '{key}' holds non-finite values in {len(bad)} row(s), the first row {bad[0]}; it cannot be replayed")
    env = _rebuild(where, env_args)
    try:
        _check_fits(where, env, recorded, actions)
        recorder = EpisodeRecorder(env)
        end = run_episode(env, _Replay(actions), int(seed), max_steps=len(actions), observers=[recorder])
    finally:
        env.close()
    if end.length < len(actions):
        raise DatasetError(f"{where}: the env ended the episode after {end.length} of its {len(actions)} actions")
    simulated = recorder.states
    errors = np.abs(np.stack(simulated) - recorded).max(axis=1)
    bad = np.flatnonzero(errors > atol)
    return ReplayResult(
        demo=demo,
        steps=len(actions),
        max_error=float(errors.max()),
        first_mismatch=int(bad[0]) if len(bad) else None,
    )


class _Replay:
    """A policy that takes the recorded actions [N, A] in turn."""

    def __init__(self, actions: np.ndarray) -> None:
        self.actions, self.step = actions, 0

    def reset(self) -> None:
        self.step = 0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        self.step += 1
        return self.actions[self.step - 1]


def _rebuild(where: str, env_args: dict[str, Any]) -> gymnasium.Env:
    """The env of ``env_args``, or ``DatasetError`` when this armworld cannot build it."""
    try:
        return make_env(env_args)
    except (KeyError, TypeError, ValueError, gymnasium.error.Error) as error:
        raise DatasetError(
            f"{where}: cannot rebuild the env {env_args.get('env_name')} it was recorded in ({error}); "
            f"recorded with armworld {env_args.get('armworld_version', '?')}"
        ) from None


def _check_fits(where: str, env: gymnasium.Env, recorded: np.ndarray, actions: np.ndarray) -> None:
    """``DatasetError`` unless the recorded states and actions have this env's widths."""
    width = require(env, SimStates, "replaying").get_sim_state().shape[0]
    if recorded.shape[1] != width:
        raise DatasetError(
            f"{where}: states have {recorded.shape[1]} columns, this env has {width} "
            "(recorded with another armworld/MuJoCo version?)"
        )
    if actions.shape[1:] != env.action_space.shape:
        raise DatasetError(f"{where}: actions of shape {actions.shape[1:]} per step, this env takes {env.action_space.shape}")
