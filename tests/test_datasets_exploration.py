"""Exploration policies used for data collection: coloured noise and the expert/random mix."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import armworld  # noqa: F401
from armworld.agents.exploration import ColoredNoiseAgent, MixedAgent, PolicySpec, colored_noise


def lag_one_correlation(x: np.ndarray) -> float:
    return float(np.mean([np.corrcoef(row[:-1], row[1:])[0, 1] for row in x]))


def test_colored_noise_is_smoother_as_beta_grows():
    rng = np.random.default_rng(0)
    white, pink, red = (colored_noise(beta, (16, 200), rng) for beta in (0.0, 1.0, 2.0))
    assert abs(lag_one_correlation(white)) < 0.1
    assert lag_one_correlation(white) < lag_one_correlation(pink) < lag_one_correlation(red)
    np.testing.assert_allclose(pink.std(axis=1), 1.0)


def test_colored_noise_agent_is_seeded_and_in_range():
    def episode(agent):
        agent.reset()
        return np.stack([agent.act({}) for _ in range(30)])

    a, b, c = (ColoredNoiseAgent(7, horizon=20, seed=s) for s in (1, 1, 2))
    first = episode(a)
    assert first.shape == (30, 7) and first.dtype == np.float32  # runs past its horizon
    assert np.abs(first).max() <= 1.0
    np.testing.assert_array_equal(first, episode(b))
    assert not np.array_equal(first, episode(c))
    assert not np.array_equal(first, episode(a))  # each episode draws a new sequence


class Constant:
    def __init__(self, value: float):
        self.value = value
        self.calls = 0

    def reset(self) -> None:
        self.calls = 0

    def act(self, obs) -> np.ndarray:
        self.calls += 1
        return np.full(7, self.value, dtype=np.float32)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_mixed_agent_hands_whole_segments_to_the_explorer(fraction):
    expert, explorer = Constant(0.5), Constant(-0.5)
    agent = MixedAgent(expert, explorer, random_fraction=fraction, segment_len=4, seed=0)
    agent.reset()
    actions = np.stack([agent.act({})[0] for _ in range(400)])
    random_steps = (actions < 0).reshape(100, 4)
    assert np.all(random_steps.all(axis=1) | ~random_steps.any(axis=1))
    assert abs(random_steps.mean() - fraction) < 0.15
    assert expert.calls == explorer.calls == 400


@pytest.mark.parametrize("name", ["expert", "random", "mixed"])
def test_policy_spec_builds_seeded_agents_for_an_env(name):
    env = gymnasium.make("armworld/FrankaReach-v0", max_episode_steps=5)
    spec = PolicySpec(name, noise=0.1)

    def run(seed):
        obs, _ = env.reset(seed=0)
        agent = spec(env, seed)
        agent.reset()
        actions = []
        for _ in range(5):
            actions.append(agent.act(obs))
            obs, *_ = env.step(actions[-1])
        return np.stack(actions)

    np.testing.assert_array_equal(run(7), run(7))
    assert not np.array_equal(run(7), run(8))
    assert name in spec.label
    with pytest.raises(ValueError, match=r"^name \(--policy\) is one of \[.expert., .random., .mixed.\], got .greedy.$"):
        PolicySpec("greedy")
