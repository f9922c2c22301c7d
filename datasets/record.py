"""Recording an episode of the episode loop (``armworld.envs.episode.run_episode``) in the
dataset format: an observer that any env with a state vector can be recorded through.

The state of each observation row is the simulator state (``SimStates.get_sim_state``) or,
for an arm, its joint positions and velocities (``JointStates.joint_state``); the action of
each step is the one the env executed (``ExecutedActions.executed_action``, e.g. after a
safety layer) where the env says, else the one stepped. An episode that ends neither
terminated nor truncated by the env (cut short by its user: a step budget, a success, an
interruption) has its last step marked truncated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

from armworld.datasets.hdf5 import Episode
from armworld.envs.episode import EpisodeObserver, ExecutedActions, JointStates, SimStates, capability


class EpisodeRecorder(EpisodeObserver):
    """Keeps the observations, states, actions, rewards and flags of the episode in progress.

    Args:
        env: the env the episode runs in; it must have ``SimStates`` or ``JointStates``.

    Raises:
        TypeError: the env has no state vector to record.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        sim, arm = capability(env, SimStates), capability(env, JointStates)
        if sim is None and arm is None:
            raise TypeError(f"recording needs an env with get_sim_state (SimStates) or joint_state (JointStates); {env} has neither")
        self._state: Callable[[], np.ndarray] = sim.get_sim_state if sim is not None else arm.joint_state
        executed = capability(env, ExecutedActions)
        self._executed = executed.executed_action if executed is not None else None
        self.clear()

    def clear(self) -> None:
        """Forget the episode in progress."""
        self._obs: list[dict[str, Any]] = []
        self.states: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._rewards: list[float] = []
        self._terminated: list[bool] = []
        self._truncated: list[bool] = []
        self._success: list[bool] = []

    @property
    def num_steps(self) -> int:
        """Actions recorded in the episode in progress."""
        return len(self._actions)

    def on_reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.clear()
        self._obs.append(obs)
        self.states.append(self._state())

    def on_step(
        self, action: np.ndarray, obs: dict[str, Any], reward: float, terminated: bool, truncated: bool,
        info: dict[str, Any],
    ) -> None:
        self._obs.append(obs)
        self.states.append(self._state())
        self._actions.append(action if self._executed is None else self._executed(action, info))
        self._rewards.append(reward)
        self._terminated.append(terminated)
        self._truncated.append(truncated)
        self._success.append(bool(info.get("is_success", False)))

    def episode(self, seed: int, policy: str) -> Episode:
        """The episode in progress as an :class:`~armworld.datasets.hdf5.Episode` (reset seed
        ``seed``, -1 for none; ``policy`` names what acted).

        Raises:
            ValueError: no action was recorded yet.
        """
        if not self._actions:
            raise ValueError("no step recorded: run an episode with this recorder among its observers first")
        truncated = np.asarray(self._truncated, dtype=bool)
        terminated = np.asarray(self._terminated, dtype=bool)
        truncated[-1] |= not terminated[-1]
        return Episode(
            obs={key: np.stack([o[key] for o in self._obs]) for key in self._obs[0]},
            states=np.stack(self.states).astype(np.float64),
            actions=np.stack(self._actions).astype(np.float32),
            rewards=np.asarray(self._rewards, dtype=np.float32),
            terminated=terminated,
            truncated=truncated,
            success=np.asarray(self._success, dtype=bool),
            seed=seed,
            policy=policy,
        )
