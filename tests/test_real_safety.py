"""The safety layer: each rule on its own, then the layer around a mock arm."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from real_helpers import LinearIK, assert_within_limits, make_spec

from armworld.envs.conventions import MAX_POS_DELTA, MAX_ROT_DELTA, euler_xyz_from_matrix, matrix_from_euler_xyz
from armworld.envs.real import safety
from armworld.envs.real.drivers.mock import MockFaults, MockRobot
from armworld.envs.real.geometry import rotation_angle
from armworld.envs.real.protocols import DriverError, RobotSpec, SafetyFault, StaleDataError


def make_layer(robot=None, **spec_overrides):
    robot = robot or MockRobot(make_spec(**spec_overrides))
    robot.connect()
    layer = safety.SafetyLayer(robot, LinearIK())
    state = layer.reset()
    return layer, robot, state


# ---------------------------------------------------------------- pure steps


def test_is_finite_action():
    assert safety.is_finite_action(np.zeros(7)) and safety.is_finite_action(np.zeros(4))
    assert not safety.is_finite_action(np.array([0, 0, np.nan, 0, 0, 0, 0]))
    assert not safety.is_finite_action(np.array([np.inf, 0, 0, 0]))
    assert not safety.is_finite_action(np.zeros(6))
    assert not safety.is_finite_action(np.zeros((1, 7)))


def test_scale_action_uses_the_sim_constants():
    dpos, R, grip = safety.scale_action(np.array([1.0, -0.5, 3.0, 0.0, 0.0, 1.0, 1.0]))
    np.testing.assert_allclose(dpos, [MAX_POS_DELTA, -0.5 * MAX_POS_DELTA, MAX_POS_DELTA])
    np.testing.assert_allclose(R, matrix_from_euler_xyz([0.0, 0.0, MAX_ROT_DELTA]))
    assert grip == 1.0
    dpos, R, grip = safety.scale_action(np.array([0.0, 0.0, 0.0, -1.0]))  # 4-D: orientation held
    np.testing.assert_allclose(R, np.eye(3))
    assert grip == 0.0


def test_clamp_translation_and_rotation_are_boxes_as_the_sim_scaling():
    diagonal = np.array([0.05, -0.05, 0.05])  # the sim's largest step: 0.087 m
    assert safety.clamp_translation(diagonal, 0.05) is diagonal
    np.testing.assert_allclose(safety.clamp_translation(np.array([0.3, 0.4, 0.0]), 0.05), [0.0375, 0.05, 0.0])
    np.testing.assert_allclose(safety.clamp_norm(np.array([0.3, 0.4, 0.0]), 0.05), [0.03, 0.04, 0.0])
    R_diagonal = matrix_from_euler_xyz([MAX_ROT_DELTA, -MAX_ROT_DELTA, MAX_ROT_DELTA])  # 0.27 rad
    assert safety.clamp_rotation(R_diagonal, MAX_ROT_DELTA) is R_diagonal
    clamped = safety.clamp_rotation(matrix_from_euler_xyz([0.2, -0.1, 0.0]), 0.1)
    np.testing.assert_allclose(euler_xyz_from_matrix(clamped), [0.1, -0.05, 0.0], atol=1e-12)
    clamped = safety.clamp_rotation_angle(matrix_from_euler_xyz([0.0, 0.0, 1.0]), 0.1)
    np.testing.assert_allclose(clamped, matrix_from_euler_xyz([0.0, 0.0, 0.1]), atol=1e-12)


def test_clip_to_workspace():
    lo, hi = np.array([0.2, -0.4, 0.0]), np.array([0.8, 0.4, 0.6])
    np.testing.assert_allclose(safety.clip_to_workspace(np.array([1.0, 0.0, -1.0]), lo, hi), [0.8, 0.0, 0.0])


def test_limit_translation_rate_bounds_speed_and_acceleration():
    dt = 0.1
    pos, vel = safety.limit_translation_rate(np.array([1.0, 0, 0]), np.zeros(3), np.zeros(3), dt, 0.5, 2.5, 1.0)
    assert np.linalg.norm(vel) == pytest.approx(0.25)  # acceleration-limited from rest
    np.testing.assert_allclose(pos, [0.025, 0, 0])
    pos, vel = safety.limit_translation_rate(np.array([1.0, 0, 0]), pos, np.array([0.45, 0, 0]), dt, 0.5, 2.5, 1.0)
    assert np.linalg.norm(vel) == pytest.approx(0.5)  # speed-limited
    pos, vel = safety.limit_translation_rate(np.array([1.0, 0.5, 0]), np.zeros(3), np.array([0.4, 0.2, 0]), dt,
                                             1.0, 100.0, 0.04)
    np.testing.assert_allclose(pos, [0.04, 0.02, 0])  # the step box, direction kept


def test_limit_rotation_rate():
    R = safety.limit_rotation_rate(matrix_from_euler_xyz([0.5, 0, 0]), np.eye(3), 0.1, 1.0)
    assert rotation_angle(np.eye(3), R) == pytest.approx(0.1)


def test_joint_checks_and_gripper_clamp():
    lo, hi = -np.ones(3), np.ones(3)
    assert safety.joints_within_margin(np.array([0.85, 0, -0.9]), lo, hi, 0.1)
    assert not safety.joints_within_margin(np.array([0.95, 0, 0]), lo, hi, 0.1)
    assert safety.joint_speeds_ok(np.array([0.2, 0, 0]), np.zeros(3), 0.1, np.full(3, 2.0))
    assert not safety.joint_speeds_ok(np.array([0.21, 0, 0]), np.zeros(3), 0.1, np.full(3, 2.0))
    assert safety.clamp_gripper(1.3, 0.0, 0.8) == 0.8 and safety.clamp_gripper(-2.0, 0.1, 1.0) == 0.1


# ---------------------------------------------------------------- the layer


def test_exact_scaling_when_no_limit_binds():
    layer, robot, state = make_layer(max_ee_acc=1e3)
    record = layer.step(np.array([0.5, 0, 0, 0, 0, 0, -1.0]), state)
    np.testing.assert_allclose(record.sent.ee_pos, state.ee_pos + [0.5 * MAX_POS_DELTA, 0, 0])
    np.testing.assert_allclose(record.clipped, [0.5, 0, 0, 0, 0, 0, -1.0], atol=1e-6)
    assert record.events == () and robot.sent[-1] is record.sent


def test_diagonal_steps_as_in_the_sim_when_the_speed_limits_allow():
    layer, robot, state = make_layer(max_ee_acc=1e3, max_ee_speed=1.0, max_rot_speed=3.0, qd_max=(5.0,) * 7)
    action = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0])
    record = layer.step(action, state)
    np.testing.assert_allclose(record.sent.ee_pos - state.ee_pos, [MAX_POS_DELTA, -MAX_POS_DELTA, MAX_POS_DELTA])
    R_delta = record.sent.ee_rot @ state.ee_rot.T
    np.testing.assert_allclose(euler_xyz_from_matrix(R_delta), [MAX_ROT_DELTA, -MAX_ROT_DELTA, MAX_ROT_DELTA])
    assert record.events == ()
    np.testing.assert_allclose(record.clipped, action, atol=1e-6)


def test_bundled_speed_limits_still_bind_on_diagonals():
    layer, robot, state = make_layer(max_ee_acc=1e3, qd_max=(5.0,) * 7)
    record = layer.step(np.array([1.0, 1.0, 1.0, 0, 0, 0, 0]), state)
    step = record.sent.ee_pos - state.ee_pos
    assert np.linalg.norm(step) == pytest.approx(layer.spec.max_ee_speed * layer.spec.dt)
    assert record.events == ("rate_limited",)


@pytest.mark.parametrize("bad", [[np.nan] * 7, [0, 0, np.inf, 0, 0, 0, 0], [0.0] * 5])
def test_non_finite_or_malformed_actions_hold(bad):
    layer, robot, state = make_layer()
    before = layer.last_command
    record = layer.step(np.array(bad, dtype=float), state)
    np.testing.assert_array_equal(record.sent.ee_pos, before.ee_pos)
    np.testing.assert_array_equal(record.sent.q, before.q)
    assert record.events[0].endswith("_hold")


def test_workspace_and_joint_limit_hold():
    layer, robot, state = make_layer(max_ee_acc=1e3)
    for _ in range(40):  # push down and right until the fake joints hit their margin
        record = layer.step(np.array([1.0, 0, -1.0, 0, 0, 0, 0]), robot.get_observation())
    assert "joint_limit_hold" in record.events
    assert np.all(np.abs(record.sent.q) <= 0.9 + 1e-9)
    for _ in range(40):
        record = layer.step(np.array([0.0, 1.0, 0.0, 0, 0, 0, 0]), robot.get_observation())
    assert "workspace" in record.events or "joint_limit_hold" in record.events


def test_stale_observation_is_refused_and_nothing_sent():
    layer, robot, state = make_layer()
    old = dataclasses.replace(state, t=time.monotonic() - 1.0)
    with pytest.raises(StaleDataError):
        layer.step(np.zeros(7), old)
    assert robot.sent == []


def test_protective_stop_latches_until_reset():
    robot = MockRobot(make_spec(), faults=MockFaults(protective_stop_at=2))
    layer, robot, state = make_layer(robot)
    layer.step(np.zeros(7), robot.get_observation())
    layer.step(np.zeros(7), robot.get_observation())  # the arm stops itself after this command
    with pytest.raises(SafetyFault, match="protective_stop"):
        layer.step(np.zeros(7), robot.get_observation())
    with pytest.raises(SafetyFault, match="latched"):
        layer.step(np.zeros(7), robot.get_observation())
    assert robot.calls.count("stop") == 1 and len(robot.sent) == 2
    robot.faults.protective_stop_at = None
    layer.reset()
    layer.step(np.zeros(7), robot.get_observation())
    assert len(robot.sent) == 3


def test_driver_error_latches():
    robot = MockRobot(make_spec(), faults=MockFaults(error_at=1))
    layer, robot, state = make_layer(robot)
    with pytest.raises(SafetyFault, match="injected driver error"):
        layer.step(np.zeros(7), state)
    assert layer.fault is not None and robot.calls[-1] == "stop"


def test_failed_reset_latches_and_nothing_is_sent():
    layer, robot, state = make_layer()
    layer.step(np.zeros(7), state)

    def fail(home=None, timeout_s=30.0):
        raise DriverError("arm did not reach home")

    robot.reset = fail
    with pytest.raises(SafetyFault, match="reset failed.*did not reach home"):
        layer.reset()
    assert layer.fault is not None and robot.calls[-1] == "stop"
    with pytest.raises(SafetyFault, match="latched"):
        layer.step(np.zeros(7), robot.get_observation())
    assert len(robot.sent) == 1
    with pytest.raises(SafetyFault, match="reset"):
        layer.adopt(robot.get_observation())  # a dry run cannot bypass it either
    del robot.reset  # the driver's own reset again
    layer.reset()
    layer.step(np.zeros(7), robot.get_observation())
    assert len(robot.sent) == 2


def test_step_before_reset_is_refused():
    robot = MockRobot(make_spec())
    robot.connect()
    layer = safety.SafetyLayer(robot, LinearIK())
    with pytest.raises(SafetyFault, match="reset"):
        layer.step(np.zeros(7), robot.reset())


def test_start_outside_the_workspace_is_refused():
    robot = MockRobot(make_spec(), home_pos=(0.0, 0.0, 1.5))
    robot.connect()
    with pytest.raises(SafetyFault, match="outside the workspace"):
        safety.SafetyLayer(robot, LinearIK()).reset()


def test_every_step_is_logged_and_within_limits():
    layer, robot, state = make_layer()
    rng = np.random.default_rng(0)
    previous = layer.last_command
    for _ in range(50):
        record = layer.step(rng.uniform(-3, 3, 7), robot.get_observation())
        assert_within_limits(layer.spec, previous, record.sent)
        previous = record.sent
    assert len(layer.records) == 50
    assert all(r.raw.shape == (7,) and r.clipped.shape == (7,) for r in layer.records)


def test_speed_factor_scales_limits():
    robot = MockRobot(make_spec())
    robot.connect()
    layer = safety.SafetyLayer(robot, LinearIK(), speed_factor=0.1)
    layer.reset()
    assert layer.spec.max_ee_speed == pytest.approx(0.05)
    record = layer.step(np.ones(7), robot.get_observation())
    assert np.linalg.norm(record.sent.ee_pos - robot.sent[0].ee_pos) <= 0.005
    with pytest.raises(ValueError):
        robot.spec.scaled(0.0)


def test_watchdog_stops_within_two_control_periods():
    layer, robot, state = make_layer()
    stops: list[float] = []
    robot.stop = lambda: stops.append(time.monotonic())
    for _ in range(3):
        layer.step(np.zeros(7), robot.get_observation())
        time.sleep(layer.spec.dt / 2)
    last_command = time.monotonic()
    deadline = last_command + 1.0
    while not stops and time.monotonic() < deadline:
        time.sleep(0.002)
    assert stops, "watchdog never stopped the arm"
    assert stops[0] - last_command < 2 * layer.spec.dt
    assert layer.fault is None  # the watchdog holds the arm; the next command resumes
    layer.close()


def test_watchdog_is_paused_by_reset():
    layer, robot, state = make_layer()
    fired = layer.watchdog.fired_at
    layer.step(np.zeros(7), robot.get_observation())
    layer.reset()
    time.sleep(3 * layer.spec.dt)
    assert fired == []
    layer.close()


# ---------------------------------------------------------------- limits files


def test_bundled_limits_load():
    for name in ("panda", "ur5e", "xarm7"):
        spec = RobotSpec.load(name)
        assert spec.dof == len(spec.q_min) and spec.control_hz == 10.0


def test_panda_limits_match_the_sim_model():
    from armworld.envs.panda import PANDA
    from armworld.envs.real.kinematics import RobotIK

    spec = RobotSpec.load("panda")
    np.testing.assert_allclose(np.stack([spec.q_min, spec.q_max], 1), PANDA.joint_limits)
    np.testing.assert_allclose(spec.qd_max, PANDA.joint_velocity_limits)
    model = RobotIK(PANDA).solver.model
    for i in range(7):
        np.testing.assert_allclose(model.jnt_range[model.joint(f"joint{i + 1}").id], PANDA.joint_limits[i])
    from armworld.envs.base import WORKSPACE_HIGH, WORKSPACE_LOW

    assert np.all(np.array(spec.workspace_min) >= WORKSPACE_LOW) and np.all(np.array(spec.workspace_max) <= WORKSPACE_HIGH)
    assert spec.max_ee_step == MAX_POS_DELTA and spec.max_rot_step == MAX_ROT_DELTA  # the sim's boxes


def test_bad_limits_files_are_rejected(tmp_path):
    path = tmp_path / "arm.yaml"
    path.write_text("name: x\nspeed: 3\n")
    with pytest.raises(ValueError, match="unknown keys"):
        RobotSpec.load(path)
    with pytest.raises(FileNotFoundError, match="bundled"):
        RobotSpec.load("no-such-arm")
    with pytest.raises(ValueError, match="q_home"):
        make_spec(q_home=(1.0,) * 7)
    with pytest.raises(ValueError, match="workspace_max"):
        make_spec(workspace_max=(0.0, 0.0, 0.0))
