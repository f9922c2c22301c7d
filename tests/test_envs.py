"""The table-top envs: API contracts, determinism, control accuracy, bad input, experts, the robot model."""

import copy
import dataclasses
import importlib.util
import os
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import armworld
from armworld.agents import make_expert
from armworld.agents.evaluate import run_episode
from armworld.envs.conventions import MAX_POS_DELTA, SUCCESS_THRESHOLD
from armworld.envs.panda import PANDA

ENV_IDS = list(armworld.ENV_IDS)


def make(env_id="armworld/FrankaPush-v0", **kwargs):
    return gymnasium.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("obs_mode", ["state", "pixels", "pixels_state"])
def test_gymnasium_and_sb3_checkers_pass(env_id, obs_mode):
    env = make(env_id, obs_mode=obs_mode, image_size=40, cameras="front,wrist")
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert ("observation" in obs) == (obs_mode != "pixels")
    assert ("rgb_wrist" in obs) == (obs_mode != "state")
    env.close()


def test_mujoco_env_conventions():
    env = make()
    assert env.unwrapped.dt == pytest.approx(0.1)
    assert env.unwrapped.model.opt.timestep == pytest.approx(0.002)
    obs, _ = env.reset(seed=0)
    proprio = obs["proprio"]
    assert proprio.shape == (7,)
    np.testing.assert_allclose(proprio[3:6], 0.0, atol=1e-3)  # gripper down = identity orientation
    assert proprio[6] == pytest.approx(0.0, abs=1e-6)  # open


def rollout(env, seed, steps=8, with_goal_image=False):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames = [obs]
    for _ in range(steps):
        if with_goal_image:
            env.unwrapped.goal_image()
        obs, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        frames.append(obs)
    return frames


def assert_same(a, b):
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_same_seed_gives_bit_identical_observations():
    env = make(obs_mode="pixels_state", image_size=32, randomization="default")
    first = rollout(env, seed=3)
    rollout(env, seed=4)  # disturb every piece of state in between
    assert_same(first, rollout(env, seed=3))
    other = make(obs_mode="pixels_state", image_size=32, randomization="default")
    assert_same(first, rollout(other, seed=3))
    assert not np.array_equal(first[0]["achieved_goal"], rollout(env, seed=4)[0]["achieved_goal"])


def test_a_deep_copy_steps_exactly_like_the_original():
    env = make("armworld/FrankaPickPlace-v0").unwrapped
    env.reset(seed=0)
    copied = copy.deepcopy(env)
    rng = np.random.default_rng(0)
    for _ in range(4):
        action = rng.uniform(-1, 1, 7)
        assert_same([env.step(action)[0]], [copied.step(action)[0]])


def test_goal_image_shows_the_solved_scene_and_restores_state():
    env = make("armworld/FrankaPickPlace-v0", obs_mode="pixels", image_size=48)
    assert_same(rollout(env, seed=1), rollout(env, seed=1, with_goal_image=True))
    obs, _ = env.reset(seed=1)
    goal = env.unwrapped.goal_image("front")
    assert goal.shape == (48, 48, 3) and goal.dtype == np.uint8
    assert np.abs(goal.astype(int) - obs["rgb_front"].astype(int)).mean() > 1.0
    assert env.unwrapped.goal_image("top", size=24).shape == (24, 24, 3)
    renderer = env.unwrapped._goal_renderers[24]  # one GL context per size, kept
    assert np.array_equal(env.unwrapped.goal_image("top", size=24), env.unwrapped.goal_image("top", size=24))
    assert env.unwrapped._goal_renderers[24] is renderer
    state = env.unwrapped.get_sim_state()
    with pytest.raises(ValueError, match="8..640"):
        env.unwrapped.goal_image("top", size=4)
    assert np.array_equal(env.unwrapped.get_sim_state(), state)
    with pytest.raises(ValueError, match="unknown camera"):
        env.unwrapped.goal_image("side")


def test_goal_images_need_a_reset_and_restore_the_state_when_rendering_fails(monkeypatch):
    env = make("armworld/FrankaPush-v0")
    with pytest.raises(RuntimeError, match=r"call reset\(\) before"):
        env.unwrapped.goal_image()
    env.reset(seed=0)
    state = env.unwrapped.get_sim_state()

    def no_gl(*args):
        raise RuntimeError("could not start an OpenGL context")

    monkeypatch.setattr(env.unwrapped._renderer, "render", no_gl)
    with pytest.raises(RuntimeError, match="OpenGL"):
        env.unwrapped.goal_image()
    assert np.array_equal(env.unwrapped.get_sim_state(), state)  # the cube is not left at the goal


def test_goal_sequence_ends_with_the_goal_image_and_restores_state():
    for env_id in ENV_IDS:
        env = make(env_id, obs_mode="pixels", cameras="top", image_size=32)
        env.reset(seed=2)
        state = env.unwrapped.get_sim_state()
        sequence = env.unwrapped.goal_sequence("top")
        assert np.array_equal(env.unwrapped.get_sim_state(), state)
        stages = len(sequence.images)
        assert sequence.images.shape == (stages, 32, 32, 3) and sequence.tcp.shape == (stages, 3)
        assert len(sequence.closures) == stages and len(sequence.steps) == stages - 1
        assert np.array_equal(sequence.images[-1], env.unwrapped.goal_image("top"))
        assert sum(sequence.steps) < env.spec.max_episode_steps  # the goal keeps some actions
        for before, after in zip(range(stages - 1), range(1, stages)):  # each stage moves the hand or the gripper
            moved = np.linalg.norm(sequence.tcp[after] - sequence.tcp[before]) > 0.01
            assert moved or sequence.closures[after] != sequence.closures[before]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_following_the_goal_sequence_solves_the_task(env_id):
    """Moving the TCP toward each stage's position within its budget, the gripper open or
    closed as the stage's image shows it, solves the task: the stages are a way to do it
    (a follower this simple pushes 37 of 40 cubes; a pushed cube sometimes lags its stages)."""
    env = make(env_id)
    successes = 0
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        sequence = env.unwrapped.goal_sequence("top", size=16)
        switches = np.cumsum(sequence.steps)
        for t in range(env.spec.max_episode_steps):
            stage = int((switches <= t).sum())
            action = np.zeros(7)
            action[:3] = np.clip(0.6 * (sequence.tcp[stage] - obs["proprio"][:3]) / MAX_POS_DELTA, -1, 1)
            action[6] = -1.0 if sequence.closures[stage] < 0.1 else 1.0
            obs, _, _, _, info = env.step(action)
        successes += info["is_success"]
    assert successes >= 8, successes


@pytest.mark.parametrize("env_id", ["armworld/FrankaReach-v0", "armworld/FrankaPush-v0"])
def test_the_goal_marker_of_render_sits_at_the_goal(env_id):
    env = gymnasium.make(env_id, render_mode="rgb_array")
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        u = env.unwrapped
        np.testing.assert_allclose(u.data.site_xpos[u.model.site("goal").id], obs["desired_goal"], atol=1e-12)
    env.close()


def test_ik_tracks_commanded_deltas():
    env = make("armworld/FrankaReach-v0")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(30):
        start = env.unwrapped.proprio()[:3]
        action = np.zeros(7)
        action[:3] = rng.uniform(-0.6, 0.6, 3)
        action[2] = np.clip(action[2], -(start[2] - 0.1) / MAX_POS_DELTA, 0.6)  # stay above the table
        env.step(action)
        achieved = env.unwrapped.proprio()[:3] - start
        errors.append(np.linalg.norm(achieved - action[:3] * MAX_POS_DELTA))
    assert np.mean(errors) < 0.004 and np.max(errors) < 0.01, errors
    np.testing.assert_allclose(env.unwrapped.proprio()[3:6], 0.0, atol=0.02)  # orientation held


def test_ik_reaches_poses_of_the_arm_and_leaves_its_input_alone():
    kinematics = make().unwrapped.kinematics
    rng = np.random.default_rng(0)
    for _ in range(10):
        q_goal = np.clip(PANDA.rest_qpos + rng.uniform(-0.4, 0.4, 7), kinematics.lower, kinematics.upper)
        pos, R = kinematics.forward(q_goal)
        q_init = PANDA.rest_qpos.copy()
        q, error = kinematics.solve(q_init, pos, R, iterations=50)
        assert error < 1e-4
        np.testing.assert_array_equal(q_init, PANDA.rest_qpos)
        assert np.all(q >= kinematics.lower) and np.all(q <= kinematics.upper)
        _, reached_R = kinematics.forward(q)
        np.testing.assert_allclose(reached_R, R, atol=1e-3)
        np.testing.assert_array_equal(kinematics.step_toward(q_init, pos, R, iterations=50), q)
    # a start outside the joint limits is clipped into them first
    outside = kinematics.upper + 0.5
    assert np.all(kinematics.step_toward(outside, pos, R, iterations=0) == kinematics.upper)


def test_step_observations_are_those_of_the_state_reached():
    """A step updates only what observations read; a full mj_forward of the same state
    (what set_sim_state runs) must give the very same observation, images included."""
    env = make("armworld/FrankaPickPlace-v0", obs_mode="pixels_state", image_size=32, cameras="front,wrist")
    env.reset(seed=0)
    unwrapped = env.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(6):
        obs, *_ = env.step(rng.uniform(-1, 1, 7))
    unwrapped.set_sim_state(unwrapped.get_sim_state())
    assert_same([obs], [unwrapped._get_obs()])


def test_rotation_actions_compose_with_the_current_orientation():
    env = make("armworld/FrankaReach-v0")
    env.reset(seed=0)
    action = np.zeros(7)
    action[5] = 1.0  # yaw
    for _ in range(3):
        env.step(action)
    env.step(np.zeros(7))
    np.testing.assert_allclose(env.unwrapped.proprio()[5], 0.45, atol=0.02)


def test_reward_matches_compute_reward_batched():
    for reward_type in ("sparse", "dense"):
        env = make(reward_type=reward_type)
        obs, _ = env.reset(seed=0)
        achieved, desired, rewards = [], [], []
        for _ in range(5):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert reward == env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
            achieved.append(obs["achieved_goal"]), desired.append(obs["desired_goal"]), rewards.append(reward)
            assert not terminated
        batched = env.unwrapped.compute_reward(np.array(achieved), np.array(desired), [{}] * 5)
        np.testing.assert_allclose(batched, rewards)
    unwrapped = make().unwrapped
    goal = np.zeros((2, 3))
    near_far = np.array([[SUCCESS_THRESHOLD * 0.9, 0, 0], [SUCCESS_THRESHOLD * 1.1, 0, 0]])
    np.testing.assert_array_equal(unwrapped.compute_reward(near_far, goal, {}), [0.0, -1.0])
    # at exactly the threshold: no success, and the reward says the same
    at = np.array([[SUCCESS_THRESHOLD, 0, 0]])
    assert not unwrapped._get_info(at[0])["is_success"]
    assert unwrapped.compute_reward(at, goal[:1], {})[0] == unwrapped._reward(SUCCESS_THRESHOLD) == -1.0


def test_episode_truncates_at_the_step_budget():
    env = make("armworld/FrankaReach-v0")
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(7, dtype=np.float32))
        assert not terminated
        steps += 1
    assert steps == env.spec.max_episode_steps == armworld.ENV_IDS["armworld/FrankaReach-v0"].max_episode_steps


def test_bad_actions_raise_and_leave_the_sim_untouched():
    env = make()
    env.reset(seed=0)
    before = env.unwrapped.get_sim_state()
    for bad, message in [([np.nan] + [0] * 6, "NaN"), ([np.inf] * 7, "NaN or inf"), (np.zeros(4), "shape")]:
        with pytest.raises(ValueError, match=message):
            env.unwrapped.step(np.array(bad, dtype=np.float64))
        np.testing.assert_array_equal(env.unwrapped.get_sim_state(), before)
    # out of range values are clipped: the same as the clipped action
    big = make()
    big.reset(seed=0)
    clipped = make()
    clipped.reset(seed=0)
    action = np.array([5, -5, 0.5, 0, 0, 3, 9])
    assert_same([big.step(action)[0]], [clipped.step(np.clip(action, -1, 1))[0]])


def test_unstable_physics_truncates_without_nan():
    env = make()
    obs, _ = env.reset(seed=0)
    env.unwrapped.data.qvel[:] = 1e12  # a blow-up in the making
    obs, reward, terminated, truncated, info = env.step(np.zeros(7))
    assert truncated and info.get("sim_unstable")
    assert all(np.isfinite(v).all() for v in obs.values())


def test_bad_arguments_list_the_valid_choices():
    with pytest.raises(TypeError, match="valid arguments are .*obs_mode"):
        make(colour="red")
    with pytest.raises(ValueError, match=r"choose one of \['state', 'pixels', 'pixels_state'\]"):
        make(obs_mode="depth")
    with pytest.raises(ValueError, match="choose from .*front"):
        make(cameras=("side",))
    with pytest.raises(ValueError, match="unknown randomization"):
        make(randomization="wild")
    with pytest.raises(TypeError, match="image_size must be an integer, got '64'"):
        make(image_size="64")
    with pytest.raises(TypeError, match="action_dim must be an integer, got 4.0"):
        make(action_dim=4.0)


def test_four_dimensional_actions_hold_the_orientation():
    env = make("armworld/FrankaReach-v0", action_dim=4)
    assert env.action_space.shape == (4,)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(5):  # fast reversals tilt the hand for a moment (tracking lag), then ...
        env.step(env.action_space.sample())
    for _ in range(3):  # ... it settles back onto the orientation it was holding
        env.step(np.zeros(4))
    np.testing.assert_allclose(env.unwrapped.proprio()[3:6], 0.0, atol=0.005)


def test_randomization_changes_the_scene_per_seed():
    env = make(obs_mode="pixels", image_size=32, randomization="default")
    model = env.unwrapped.model
    cube = model.geom("cube").id
    env.reset(seed=0)
    first = model.geom_rgba[cube].copy(), model.geom_size[cube].copy()
    env.reset(seed=1)
    assert not np.array_equal(first[0], model.geom_rgba[cube])
    env.reset(seed=0)
    np.testing.assert_array_equal(first[0], model.geom_rgba[cube])
    np.testing.assert_array_equal(first[1], model.geom_size[cube])
    plain = make(obs_mode="pixels", image_size=32)
    plain.reset(seed=0)
    np.testing.assert_allclose(plain.unwrapped.model.geom_rgba[cube], [0.85, 0.15, 0.1, 1.0], rtol=1e-6)


def test_sim2real_preset_delays_actions():
    env = make("armworld/FrankaReach-v0", randomization="sim2real")
    for seed in range(20):
        env.reset(seed=seed)
        if env.unwrapped._randomizer.latency_steps == 1:
            break
    start = env.unwrapped.proprio()[:3]
    env.step(np.array([1.0, 0, 0, 0, 0, 0, -1]))
    assert np.linalg.norm(env.unwrapped.proprio()[:3] - start) < 0.005  # the first action waits a step
    env.step(np.zeros(7))
    assert env.unwrapped.proprio()[0] - start[0] > 0.03


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_scripted_experts_solve_their_tasks(env_id):
    env = make(env_id)
    expert = make_expert(env)
    successes = [run_episode(env, expert, 10_000 + seed, env.spec.max_episode_steps).success for seed in range(20)]
    assert np.mean(successes) >= 0.9, successes


def test_async_vector_env_renders_in_workers():
    # this process has rendered already: a forked child would inherit a dead GL context,
    # so the workers start fresh (spawn or forkserver)
    make(obs_mode="pixels").reset(seed=0)
    envs = gymnasium.make_vec(
        "armworld/FrankaReach-v0", num_envs=2, vectorization_mode="async", obs_mode="pixels", image_size=32,
        vector_kwargs={"context": "forkserver"},
    )
    obs, _ = envs.reset(seed=[0, 1])
    assert obs["rgb_front"].shape == (2, 32, 32, 3)
    assert obs["rgb_front"].std() > 0
    obs, *_ = envs.step(envs.action_space.sample())
    assert obs["rgb_front"].shape == (2, 32, 32, 3)
    envs.close()


def test_her_replay_buffer_accepts_the_envs():
    from stable_baselines3 import SAC, HerReplayBuffer

    env = make("armworld/FrankaReach-v0", action_dim=4)
    model = SAC(
        "MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, learning_starts=50,
        replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
        policy_kwargs={"net_arch": [32, 32]}, seed=0,
    )
    model.learn(120)
    assert model.replay_buffer.size() > 0


def test_mesh_visuals_change_the_images_not_the_dynamics():
    if importlib.util.find_spec("gymnasium_robotics") is None:
        pytest.skip("visual='mesh' needs gymnasium-robotics (pip install armworld[mesh])")
    runs = {}
    for visual in ("primitive", "mesh"):
        env = make("armworld/FrankaPickPlace-v0", obs_mode="pixels_state", image_size=48, visual=visual)
        runs[visual] = rollout(env, seed=2, steps=5)
    for primitive, mesh in zip(runs["primitive"], runs["mesh"]):
        np.testing.assert_array_equal(primitive["observation"], mesh["observation"])
    assert np.abs(runs["primitive"][-1]["rgb_front"].astype(int) - runs["mesh"][-1]["rgb_front"].astype(int)).mean() > 2


def test_import_changes_no_environment_variable_and_rendering_defaults_the_user_can_override():
    script = (
        "import os, gymnasium, armworld, armworld.agents.planners; settings = lambda: [os.environ.get(k, '-') for k in "
        "('MUJOCO_GL', 'LP_NUM_THREADS')]; print(*settings()); env = gymnasium.make('armworld/FrankaReach-v0', "
        "obs_mode='pixels', image_size=16); env.reset(seed=0); print(*settings())"
    )

    def settings(env: dict) -> list[str]:
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    clean = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "LP_NUM_THREADS")}
    assert settings(clean) == ["-", "-", "egl", "0"]  # set on the first render, not on import
    assert settings({**clean, "MUJOCO_GL": "egl", "LP_NUM_THREADS": "4"}) == ["egl", "4", "egl", "4"]


def test_envs_and_rollout_verbs(tmp_path, capsys):
    from armworld.cli import main

    assert main(["envs"]) == 0
    listed = capsys.readouterr().out
    assert all(env_id in listed for env_id in ENV_IDS) and "rgb" not in listed  # state observations
    video = tmp_path / "reach.mp4"
    assert main(["rollout", "--env", "armworld/FrankaReach-v0", "--episodes", "1", "--size", "32", "--out", str(video)]) == 0
    assert "1/1 succeeded" in capsys.readouterr().out
    frames = imageio_frames(video)
    assert frames.shape[1:] == (32, 32, 3) and len(frames) == 1 + armworld.ENV_IDS["armworld/FrankaReach-v0"].max_episode_steps
    for argv, message in [
        (["--env", "FrankaReach"], "unknown env 'FrankaReach'"),
        (["--size", "1000"], "argument --size: expected an integer >= 8 and <= 640, got '1000'"),
        (["--out", str(tmp_path / "x.avi")], "cannot tell the video format"),
    ]:
        assert main(["rollout", *argv]) == 1
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reach.mp4"]


def imageio_frames(path) -> np.ndarray:
    import imageio.v2 as imageio

    return np.stack(imageio.mimread(path, memtest=False))


def test_the_robot_is_a_model_given_to_the_env_and_misuse_is_refused():
    by_name = gymnasium.make("armworld/FrankaReach-v0")
    by_model = gymnasium.make("armworld/FrankaReach-v0", robot=PANDA)
    assert by_name.unwrapped.robot is PANDA and by_name.spec.kwargs["robot"] == "panda"
    np.testing.assert_array_equal(by_name.reset(seed=3)[0]["observation"], by_model.reset(seed=3)[0]["observation"])
    with pytest.raises(ValueError, match=r"unknown robot 'ur10'; choose one of \['panda', 'ur5e'\]"):
        gymnasium.make("armworld/FrankaReach-v0", robot="ur10")
    with pytest.raises(ValueError, match="has no visual meshes"):
        gymnasium.make("armworld/FrankaReach-v0", robot=dataclasses.replace(PANDA, meshes=None), visual="mesh")
    with pytest.raises(ValueError, match=r"rest_qpos has shape \(6,\), expected \(7,\)"):
        dataclasses.replace(PANDA, rest_qpos=np.zeros(6))
    with pytest.raises(ValueError, match="outside the joint limits"):
        dataclasses.replace(PANDA, rest_qpos=np.zeros(7))  # joint 4 must be negative
