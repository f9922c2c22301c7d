"""One episode loop for every user (collection, evaluation, films, replay, demo, deploy), and the
capabilities it and the agents may ask of an env.

:func:`run_episode` resets the env (with a seed, or none), resets the policy, then alternates
``policy.act(obs)`` and ``env.step`` until the env terminates or truncates, the step budget is
spent, or ``until(info)`` holds. :class:`EpisodeObserver` objects see each reset, each action
before it is stepped, and each step; what a user does with an episode (record it, film it,
print it) is an observer, so the loop itself never changes.

Capabilities are small runtime-checkable protocols (:class:`HasGoalImage`, :class:`HasGoalSequence`, :class:`SimStates`,
:class:`JointStates`, :class:`ExecutedActions`, :class:`MujocoScene`, :class:`HasTask`), found by :func:`capability` on the env or any env it
wraps: a loop or an agent asks what an env can do, never which class it is, so a real arm
(``RealArmEnv``) is served by the same code wherever it has the capability.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import gymnasium
import numpy as np


class Policy(Protocol):
    """What the loop drives an env with: the Agent protocol (``armworld.agents.base.Agent``)."""

    def reset(self) -> None: ...

    def act(self, obs: dict[str, Any]) -> np.ndarray: ...


@runtime_checkable
class HasGoalImage(Protocol):
    """An env that renders its goal as an image (uint8 [S, S, 3] of ``camera``)."""

    def goal_image(self, camera: str, size: int | None = None) -> np.ndarray: ...


@runtime_checkable
class HasGoalSequence(Protocol):
    """An env that renders the task's stages, ending with the goal, as images with their
    TCP positions, gripper closures and step budgets (``envs.base.GoalSequence``)."""

    def goal_sequence(self, camera: str, size: int | None = None) -> Any: ...


@runtime_checkable
class SimStates(Protocol):
    """An env whose full simulator state can be read as a vector [S] and restored."""

    def get_sim_state(self) -> np.ndarray: ...

    def set_sim_state(self, state: np.ndarray) -> None: ...


@runtime_checkable
class JointStates(Protocol):
    """An env that reads an arm's joints: positions and velocities [2J] of the last observation."""

    def joint_state(self) -> np.ndarray: ...


@runtime_checkable
class ExecutedActions(Protocol):
    """An env that may change an action before executing it (a safety layer): ``executed_action``
    gives, from a step's ``info``, the env action [A] that was executed in place of ``action``."""

    def executed_action(self, action: np.ndarray, info: dict[str, Any]) -> np.ndarray: ...


@runtime_checkable
class MujocoScene(Protocol):
    """An env backed by a MuJoCo model and data (which can be rendered from any camera)."""

    model: Any
    data: Any


@runtime_checkable
class HasTask(Protocol):
    """An env that names its task (a key of ``armworld.envs.registry.TASKS``)."""

    task: str | None


C = TypeVar("C")


def capability(env: gymnasium.Env, kind: type[C]) -> C | None:
    """The first of ``env`` and the envs it wraps (outermost first) that has ``kind``, or ``None``."""
    current: Any = env
    while current is not None:
        if isinstance(current, kind):
            return current
        inner = getattr(current, "env", None)
        current = inner if inner is not current else None
    return None


def require(env: gymnasium.Env, kind: type[C], purpose: str) -> C:
    """:func:`capability`, or ``TypeError`` naming what ``purpose`` needs and the env that lacks it."""
    found = capability(env, kind)
    if found is None:
        names = {*vars(kind).get("__annotations__", {}), *(name for name, value in vars(kind).items() if callable(value))}
        members = ", ".join(sorted(name for name in names if not name.startswith("_")))
        raise TypeError(f"{purpose} needs an env with {members} ({kind.__name__}); {env} has none")
    return found


class EpisodeObserver:
    """Sees an episode of :func:`run_episode`; subclasses override what they need (each does nothing here)."""

    def on_reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        """After ``env.reset`` and the policy's reset."""

    def on_action(self, obs: dict[str, Any], action: np.ndarray, step: int) -> None:
        """After the policy chose ``action`` from ``obs`` (``step`` actions taken before it), before it is stepped."""

    def on_step(
        self, action: np.ndarray, obs: dict[str, Any], reward: float, terminated: bool, truncated: bool,
        info: dict[str, Any],
    ) -> None:
        """After ``env.step(action)`` returned."""


class RenderEach(EpisodeObserver):
    """Hands ``env.render()`` to ``sink`` after the reset and after each step (a film of the episode)."""

    def __init__(self, env: gymnasium.Env, sink: Callable[[np.ndarray], Any]) -> None:
        self.env, self.sink = env, sink

    def on_reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.sink(self.env.render())

    def on_step(
        self, action: np.ndarray, obs: dict[str, Any], reward: float, terminated: bool, truncated: bool,
        info: dict[str, Any],
    ) -> None:
        self.sink(self.env.render())


@dataclass
class EpisodeEnd:
    """How an episode of :func:`run_episode` ended: the last observation and info, and the actions taken."""

    obs: dict[str, Any]
    info: dict[str, Any]
    length: int
    terminated: bool = False
    truncated: bool = False


def run_episode(
    env: gymnasium.Env,
    policy: Policy,
    seed: int | None,
    max_steps: int | None = None,
    observers: Sequence[EpisodeObserver] = (),
    until: Callable[[dict[str, Any]], bool] | None = None,
) -> EpisodeEnd:
    """Run one episode of ``policy`` in ``env`` from ``env.reset(seed=seed)``.

    Steps until the env terminates or truncates, ``max_steps`` actions were taken (``None``:
    no budget but the env's), or ``until(info)`` holds after a step. ``observers`` see the
    reset, each action and each step, in their order.
    """
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0 or None, got {max_steps}")
    obs, info = env.reset(seed=seed)
    policy.reset()
    for observer in observers:
        observer.on_reset(obs, info)
    end = EpisodeEnd(obs, info, 0)
    while max_steps is None or end.length < max_steps:
        action = policy.act(obs)
        for observer in observers:
            observer.on_action(obs, action, end.length)
        obs, reward, terminated, truncated, info = env.step(action)
        end = EpisodeEnd(obs, info, end.length + 1, bool(terminated), bool(truncated))
        for observer in observers:
            observer.on_step(action, obs, reward, terminated, truncated, info)
        if terminated or truncated or (until is not None and until(info)):
            break
    return end
