"""``RealArmEnv`` around the in-process mock arm: construction, reset timing, recording through the episode loop, close."""

from __future__ import annotations

import time

import numpy as np
import pytest
from real_helpers import LinearIK, make_spec

from armworld.datasets.hdf5 import TrajectoryFile, TrajectoryWriter, validate
from armworld.datasets.record import EpisodeRecorder
from armworld.envs.episode import run_episode
from armworld.envs.real.drivers.mock import MockRobot
from armworld.envs.real.env import RealArmEnv, RealArmEnvConfig


class SlowHomingRobot(MockRobot):
    """A mock arm whose reset takes ``homing_s`` seconds, as a real arm moving home does."""

    homing_s = 0.3

    def reset(self, home=None, timeout_s=30.0):
        time.sleep(self.homing_s)
        return super().reset(home, timeout_s)


class RecordingCamera:
    """A camera that is not here: records its connection calls in a shared list."""

    def __init__(self, calls: list[str]):
        self.calls = calls

    def connect(self) -> None:
        self.calls.append("camera connect")

    def disconnect(self) -> None:
        self.calls.append("camera disconnect")

    def read_latest(self, max_age_s: float):
        raise AssertionError("no frame is read in these tests")


class PushServingRobot(MockRobot):
    """A mock arm that claims to serve the push task's observation, as a sim server does."""

    task = "push"


def test_bad_settings_are_refused_before_connecting():
    for settings, message in [(dict(action_dim=5), "action_dim must be 4 or 7, got 5"),
                              (dict(speed_factor=2.0), r"speed_factor must be in \(0, 1\]"),
                              (dict(image_size=0), "image_size must be positive"),
                              (dict(goal=(0.5, 0.0)), "goal must be 3")]:
        with pytest.raises(ValueError, match=message):
            RealArmEnvConfig(**settings)


def test_a_failed_setup_disconnects_the_cameras_and_the_robot():
    robot = PushServingRobot(make_spec())
    with pytest.raises(ValueError, match="runs the push task, not reach"):
        RealArmEnv(robot, {"front": RecordingCamera(robot.calls)}, LinearIK(), RealArmEnvConfig(task="reach"))
    assert robot.calls == ["connect", "camera connect", "camera disconnect", "disconnect"]
    robot.calls.clear()
    with pytest.raises(ValueError, match="serves the push task's goal"):  # a goal position it would ignore
        RealArmEnv(robot, {}, LinearIK(), RealArmEnvConfig(goal=(0.5, 0.0, 0.2)))
    assert robot.calls == ["connect", "disconnect"]


def test_without_a_goal_position_success_is_unknown():
    """A robot serving no task goal and no goal position given: no desired_goal, distance NaN, never a success."""
    env = RealArmEnv(MockRobot(make_spec()), {}, LinearIK())
    assert "desired_goal" not in env.observation_space.spaces and env.task == "reach"
    obs, info = env.reset()
    assert "desired_goal" not in obs and np.isnan(info["distance"]) and info["is_success"] is False
    obs, _, _, _, info = env.step(np.zeros(7))
    assert env.observation_space.contains(obs) and np.isnan(info["distance"]) and info["is_success"] is False
    env.close()


def test_homing_does_not_count_as_agent_time():
    """The first step after a slow reset still reads the arm back late in the period (hold > 0)."""
    env = RealArmEnv(SlowHomingRobot(make_spec()), {}, LinearIK())
    dt = env.dt
    for _ in range(2):  # every episode, not only the first
        env.reset()
        started = time.monotonic()
        env.step(np.zeros(7))
        # the next tick is dt after reset() returned; the reading comes hold = dt - 5 ms later
        assert time.monotonic() - started > 1.5 * dt
    env.close()


def test_close_stops_the_arm_and_the_watchdog_once():
    robot = MockRobot(make_spec())
    env = RealArmEnv(robot, {}, LinearIK())
    env.reset(seed=3)
    for _ in range(2):
        env.step(np.zeros(7))
    env.close()
    assert robot.calls[-2:] == ["stop", "disconnect"]
    time.sleep(3 * env.dt)
    assert env.safety.watchdog.fired_at == [] and robot.calls.count("stop") == 1  # the watchdog is closed
    env.close()  # nothing more: the arm is not stopped or disconnected again
    assert robot.calls.count("stop") == 1 and robot.calls.count("disconnect") == 1


class Actions:
    """A policy that takes the given actions in turn."""

    def __init__(self, actions):
        self.actions = [np.array(action) for action in actions]

    def reset(self) -> None:
        self.step = 0

    def act(self, obs):
        self.step += 1
        return self.actions[self.step - 1]


def test_recorded_episodes_follow_the_dataset_format(tmp_path):
    """Recorded through the episode loop: 4-D actions 4 wide as executed, the joints as states, no reset seed as -1."""
    path = tmp_path / "real.hdf5"
    robot = MockRobot(make_spec())
    env = RealArmEnv(robot, {}, LinearIK(), RealArmEnvConfig(action_dim=4, goal=(0.5, 0.0, 0.2)))
    recorder = EpisodeRecorder(env)
    run_episode(env, Actions([[1.0, 0.0, -1.0, 1.0], [5.0, 0.0, 0.0, -1.0]]), None, 2, observers=[recorder])
    env.close()
    with TrajectoryWriter(path, env.env_args()) as writer:
        writer.append(recorder.episode(seed=-1, policy="real"))
    assert validate(path) == []
    with TrajectoryFile(path) as file:
        episode = next(iter(file))
    assert episode.actions.shape == (2, 4) and episode.seed == -1
    assert episode.states.shape == (3, 2 * robot.spec.dof)  # joint positions and velocities
    assert np.all(np.abs(episode.actions) <= 1.0)
    assert episode.actions[0, 3] == pytest.approx(1.0) and episode.actions[1, 3] == pytest.approx(-1.0)  # gripper
    assert not episode.terminated.any() and episode.truncated.tolist() == [False, True]
