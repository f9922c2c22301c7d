"""Shared fixtures for the sim-to-real tests: a cheap fake IK and spec checks."""

from __future__ import annotations

import dataclasses

import numpy as np

from armworld.envs.conventions import euler_xyz_from_matrix, matrix_from_euler_xyz
from armworld.envs.real.geometry import rotation_angle
from armworld.envs.real.protocols import Command, RobotSpec

CENTER = np.array([0.5, 0.0, 0.3])


class LinearIK:
    """A fake 7-joint arm: q = 4 (pos - CENTER), Euler angles, 0. Joint limits bite inside the box."""

    def ik(self, pos, rot, q_init):
        return np.concatenate([4.0 * (pos - CENTER), euler_xyz_from_matrix(rot), [0.0]]), True

    def forward(self, q):
        """The TCP pose the joints ``q`` stand for (the inverse of :meth:`ik`)."""
        q = np.asarray(q, dtype=np.float64)
        return CENTER + q[:3] / 4.0, matrix_from_euler_xyz(q[3:6])


def make_spec(**overrides) -> RobotSpec:
    """The bundled Panda limits with simple +-1 rad joint ranges (matching :class:`LinearIK`)."""
    spec = RobotSpec.load("panda")
    fields = dict(q_min=(-1.0,) * 7, q_max=(1.0,) * 7, q_home=(0.0,) * 7, qd_max=(2.0,) * 7)
    fields.update(overrides)
    return dataclasses.replace(spec, **fields)


def assert_within_limits(spec: RobotSpec, previous: Command, command: Command) -> None:
    """Every limit the safety layer promises, for one command after ``previous``."""
    eps = 1e-9
    for value in (command.ee_pos, command.ee_euler, command.q, [command.gripper]):
        assert np.all(np.isfinite(value))
    assert np.all(command.ee_pos >= np.array(spec.workspace_min) - eps)
    assert np.all(command.ee_pos <= np.array(spec.workspace_max) + eps)
    step = command.ee_pos - previous.ee_pos  # the step box (as the sim's actions), then the speed norm
    assert np.all(np.abs(step) <= spec.max_ee_step + eps)
    assert np.linalg.norm(step) <= spec.max_ee_speed * spec.dt + eps
    rotation = euler_xyz_from_matrix(command.ee_rot @ previous.ee_rot.T)
    assert np.all(np.abs(rotation) <= spec.max_rot_step + 1e-6)
    assert rotation_angle(previous.ee_rot, command.ee_rot) <= spec.max_rot_speed * spec.dt + 1e-6
    q_min, q_max = np.array(spec.q_min), np.array(spec.q_max)
    assert np.all(command.q >= q_min + spec.joint_margin - eps)
    assert np.all(command.q <= q_max - spec.joint_margin + eps)
    assert np.all(np.abs(command.q - previous.q) <= np.array(spec.qd_max) * spec.dt + 1e-6)
    assert spec.gripper_min <= command.gripper <= spec.gripper_max
