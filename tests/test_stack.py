"""FrankaStack-v0: the two-cube scene, its goal, randomisation, goal image and expert.

The checks every env id gets (Gymnasium and SB3 checkers in each obs mode, the expert's
success rate) are parametrised over ``armworld.ENV_IDS`` in test_envs.py.
"""

import gymnasium
import numpy as np
import pytest

import armworld  # noqa: F401  (registers the envs)
from armworld.agents import make_expert
from armworld.envs.tasks import MIN_GOAL_DISTANCE

STACK = "armworld/FrankaStack-v0"


def half_size(env, geom):
    model = env.unwrapped.model
    return float(model.geom_size[model.geom(geom).id, 0])


def run_expert(env, seed, goal_image=False):
    """One expert episode; returns the last observation and info (and the goal image)."""
    expert = make_expert(env)
    obs, _ = env.reset(seed=seed)
    goal = env.unwrapped.goal_image() if goal_image else None
    expert.reset()
    truncated = False
    while not truncated:
        obs, _, _, truncated, info = env.step(expert.act(obs))
    return obs, info, goal


@pytest.mark.parametrize("randomization", [None, "default"])
def test_goal_is_on_top_of_the_base_cube(randomization):
    env = gymnasium.make(STACK, randomization=randomization)
    assert env.spec.max_episode_steps == 80
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        cube, base = obs["observation"][11:14], obs["observation"][26:29]
        cube_half, base_half = half_size(env, "cube"), half_size(env, "base_cube")
        assert obs["observation"].shape == (11 + 30,)
        np.testing.assert_allclose(obs["achieved_goal"], cube)
        np.testing.assert_allclose([cube[2], base[2]], [cube_half, base_half], atol=1e-3)  # both on the table
        assert np.linalg.norm(cube[:2] - base[:2]) > MIN_GOAL_DISTANCE
        np.testing.assert_allclose(obs["desired_goal"], base + [0, 0, base_half + cube_half], atol=1e-3)


def test_randomization_covers_both_cubes():
    env = gymnasium.make(STACK, randomization="default")
    model = env.unwrapped.model
    geoms = [model.geom(name).id for name in ("cube", "base_cube")]
    nominal_rgba = model.geom_rgba[geoms].copy()
    draws = []
    for seed in range(2):
        env.reset(seed=seed)
        draws.append((model.geom_rgba[geoms].copy(), model.geom_size[geoms, 0].copy()))
        assert np.all(np.abs(draws[-1][0] - nominal_rgba).sum(axis=1) > 0)  # each cube recoloured
        assert draws[-1][1][0] == draws[-1][1][1]  # one size for both: they still stack squarely
    assert not np.array_equal(draws[0][1], draws[1][1])


def test_same_seed_gives_identical_observations_and_matching_rewards():
    def rollout(env, seed):
        obs, _ = env.reset(seed=seed)
        expert, frames, rewards = make_expert(env, noise=0.3, seed=seed), [obs], []
        for _ in range(12):
            obs, reward, _, _, info = env.step(expert.act(obs))
            frames.append(obs)
            rewards.append(reward)
            assert reward == env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        return frames, rewards

    env = gymnasium.make(STACK, obs_mode="pixels_state", image_size=32, randomization="default", reward_type="dense")
    first, rewards = rollout(env, 3)
    rollout(env, 4)
    again, _ = rollout(gymnasium.make(STACK, obs_mode="pixels_state", image_size=32, randomization="default",
                                      reward_type="dense"), 3)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    batched = env.unwrapped.compute_reward(
        np.array([f["achieved_goal"] for f in first[1:]]), np.array([f["desired_goal"] for f in first[1:]]), [{}] * 12
    )
    np.testing.assert_allclose(batched, rewards)


def test_expert_stacks_the_cube_and_lets_go():
    env = gymnasium.make(STACK)
    for seed in range(3):
        obs, info, _ = run_expert(env, seed=20_000 + seed)
        cube, base = obs["observation"][11:14], obs["observation"][26:29]
        assert info["is_success"] and info["distance"] < 0.01
        np.testing.assert_allclose(cube - base, [0, 0, 2 * half_size(env, "cube")], atol=0.01)  # resting on it
        assert np.linalg.norm(obs["observation"][20:26]) < 0.01  # still
        assert env.unwrapped.finger_width() > 2 * half_size(env, "cube") + 0.01  # released
        assert obs["proprio"][2] > cube[2] + 0.05  # the hand has risen clear


def test_goal_image_shows_what_the_expert_achieves_and_restores_state():
    env = gymnasium.make(STACK, obs_mode="pixels", image_size=48)
    start, _ = env.reset(seed=5)
    obs, info, goal = run_expert(env, seed=5, goal_image=True)
    assert info["is_success"]
    to_goal = lambda image: np.abs(image.astype(int) - goal.astype(int)).mean()  # noqa: E731
    assert to_goal(obs["rgb_front"]) < 0.5 * to_goal(start["rgb_front"])
    # the goal image leaves the episode exactly as it was
    expert = make_expert(env)
    runs = []
    for with_goal_image in (False, True):
        obs, _ = env.reset(seed=6)
        expert.reset()
        frames = []
        for _ in range(6):
            if with_goal_image:
                env.unwrapped.goal_image("top", size=24)
            obs, *_ = env.step(expert.act(obs))
            frames.append(obs["rgb_front"])
        runs.append(frames)
    np.testing.assert_array_equal(runs[0], runs[1])
