"""Exploration for data collection: smooth random actions and an expert/random mix.

- ``ColoredNoiseAgent``: actions drawn from coloured noise, power spectrum ~ 1/f^beta
  (beta 0: white, 1: pink, 2: red/Brownian-like), so motions are smooth and wander
  over the workspace instead of jittering in place (Eberhard et al., "Pink noise is
  all you need", ICLR 2023).
- ``MixedAgent``: follows the expert, with random segments of the episode handed to
  the explorer, so the data covers both purposeful and off-distribution motion.
- ``PolicySpec`` (:mod:`armworld.agents.policy_spec`, re-exported here): a picklable
  ``(env, seed) -> agent`` factory by name (``expert``, ``random``, ``mixed``), as
  ``armworld.datasets.collect`` takes for parallel workers.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from armworld.agents.base import Agent
from armworld.agents.policy_spec import PolicySpec  # noqa: F401  (re-exported)


def colored_noise(beta: float, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise ``[D, T]`` with power spectrum ~ 1/f^beta along T, unit std per row."""
    dims, steps = shape
    freqs = np.fft.rfftfreq(steps)
    freqs[0] = freqs[1] if steps > 1 else 1.0  # keep a random offset instead of an infinite one
    amplitude = freqs ** (-beta / 2.0)
    spectrum = amplitude * (rng.normal(size=(dims, len(freqs))) + 1j * rng.normal(size=(dims, len(freqs))))
    signal = np.fft.irfft(spectrum, n=steps, axis=-1) if steps > 1 else rng.normal(size=(dims, 1))
    return signal / np.maximum(signal.std(axis=-1, keepdims=True), 1e-12)


class ColoredNoiseAgent:
    """Random actions ``[A]`` in [-1, 1]: ``scale`` x coloured noise (a fresh sequence each episode).

    horizon: steps per generated sequence (the episode length; a longer episode draws a
    new sequence when it runs out). The gripper dimension gets the same kind of noise.
    """

    def __init__(self, action_dim: int, horizon: int, beta: float = 1.0, scale: float = 0.6, seed: int | None = None):
        self.action_dim = action_dim
        self.horizon = horizon
        self.beta = beta
        self.scale = scale
        self.rng = np.random.default_rng(seed)
        self._noise = np.zeros((action_dim, 0))
        self._t = 0

    @classmethod
    def for_env(cls, env: gymnasium.Env, seed: int | None = None, **kwargs: Any) -> ColoredNoiseAgent:
        """An explorer sized to ``env``'s action space and step budget."""
        horizon = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 100
        return cls(env.action_space.shape[0], horizon, seed=seed, **kwargs)

    def reset(self) -> None:
        self._noise = colored_noise(self.beta, (self.action_dim, self.horizon), self.rng)
        self._t = 0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self._t >= self._noise.shape[1]:
            self.reset()
        action = self._noise[:, self._t]
        self._t += 1
        return np.clip(self.scale * action, -1.0, 1.0).astype(np.float32)


class MixedAgent:
    """The expert's actions, except in segments of ``segment_len`` steps that are handed to the
    explorer, each with probability ``random_fraction``. Both agents see every observation."""

    def __init__(self, expert: Agent, explorer: Agent, random_fraction: float = 0.3, segment_len: int = 5, seed: int | None = None):
        if not 0.0 <= random_fraction <= 1.0 or segment_len < 1:
            raise ValueError(f"need random_fraction in [0, 1] and segment_len >= 1, got {random_fraction}, {segment_len}")
        self.expert = expert
        self.explorer = explorer
        self.random_fraction = random_fraction
        self.segment_len = segment_len
        self.rng = np.random.default_rng(seed)
        self._t = 0
        self._random = False

    def reset(self) -> None:
        self.expert.reset()
        self.explorer.reset()
        self._t = 0

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        if self._t % self.segment_len == 0:
            self._random = bool(self.rng.random() < self.random_fraction)
        self._t += 1
        expert_action = self.expert.act(obs)
        random_action = self.explorer.act(obs)
        return random_action if self._random else expert_action
