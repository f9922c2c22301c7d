"""The Franka Panda: published limits, the TCP pose, and differential inverse kinematics.

The controller turns a desired TCP pose into joint position targets by damped least
squares on MuJoCo's site Jacobian, with a null-space pull toward a comfortable posture
and joint targets kept inside the joint limits (minus a margin) and the joint velocity
limits. The same solver serves the sim envs, goal-image posing and the real-arm safety
layer's joint-limit check.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_joint1", "finger_joint2")
# Franka datasheet: joint position limits (rad) and velocity limits (rad/s).
JOINT_LIMITS = np.array(
    [
        [-2.8973, 2.8973],
        [-1.7628, 1.7628],
        [-2.8973, 2.8973],
        [-3.0718, -0.0698],
        [-2.8973, 2.8973],
        [-0.0175, 3.7525],
        [-2.8973, 2.8973],
    ]
)
JOINT_VELOCITY_LIMITS = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])
# A posture with the gripper pointing down over the table; the IK's null-space rest pose.
REST_QPOS = np.array([0.0, -0.3, 0.0, -2.4, 0.0, 2.1, np.pi / 4])
FINGER_OPEN = 0.04  # m per finger


def rotation_error(target_R: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Axis-angle vector [3] (rad, world frame) rotating ``R`` onto ``target_R``."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (target_R @ R.T).ravel())
    error = np.empty(3)
    mujoco.mju_quat2Vel(error, quat, 1.0)
    return error


@dataclass(frozen=True)
class IKConfig:
    """Damped least-squares settings.

    damping: Levenberg-Marquardt damping (m); iterations: Gauss-Newton steps per solve;
    nullspace_gain: pull toward ``REST_QPOS`` per step; limit_margin: rad kept from each
    joint limit.
    """

    damping: float = 0.02
    iterations: int = 3
    nullspace_gain: float = 0.1
    limit_margin: float = 0.02
    rotation_weight: float = 0.5


class PandaKinematics:
    """Forward and inverse kinematics of the Panda inside a compiled MuJoCo model.

    Works on its own scratch ``MjData`` so that solving never disturbs the simulation.
    """

    def __init__(self, model: mujoco.MjModel, config: IKConfig = IKConfig()):
        self.model = model
        self.config = config
        self._scratch = mujoco.MjData(model)
        self.qpos_ids = np.array([model.jnt_qposadr[model.joint(j).id] for j in ARM_JOINTS])
        self.dof_ids = np.array([model.jnt_dofadr[model.joint(j).id] for j in ARM_JOINTS])
        self.tcp_id = model.site("tcp").id
        self.lower = JOINT_LIMITS[:, 0] + config.limit_margin
        self.upper = JOINT_LIMITS[:, 1] - config.limit_margin
        assert np.array_equal(self.dof_ids, np.arange(7)), "the arm's joints must come first in the model"
        self._jac = np.zeros((6, model.nv))
        self._weights = np.array([1, 1, 1, config.rotation_weight, config.rotation_weight, config.rotation_weight])
        self._damping = config.damping**2 * np.eye(6)

    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [3] (m) and rotation matrix [3, 3] in the base frame."""
        return data.site_xpos[self.tcp_id].copy(), data.site_xmat[self.tcp_id].reshape(3, 3).copy()

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose for arm joint angles ``q`` [7] (rad)."""
        self._scratch.qpos[self.qpos_ids] = q
        mujoco.mj_kinematics(self.model, self._scratch)
        return self.tcp_pose(self._scratch)

    def solve(
        self, q_init: np.ndarray, target_pos: np.ndarray, target_R: np.ndarray, iterations: int | None = None
    ) -> tuple[np.ndarray, float]:
        """Joint angles [7] that bring the TCP to ``target_pos`` [3] / ``target_R`` [3, 3].

        Starts from ``q_init`` [7]; returns the solution, clipped to the joint limits
        minus the margin, and its remaining position error (m).
        """
        cfg = self.config
        q = np.clip(np.asarray(q_init, dtype=np.float64), self.lower, self.upper)
        data, jac = self._scratch, self._jac
        for _ in range(cfg.iterations if iterations is None else iterations):
            data.qpos[self.qpos_ids] = q
            mujoco.mj_kinematics(self.model, data)
            mujoco.mj_comPos(self.model, data)
            pos, R = data.site_xpos[self.tcp_id], data.site_xmat[self.tcp_id].reshape(3, 3)
            error = np.concatenate([target_pos - pos, rotation_error(target_R, R)]) * self._weights
            mujoco.mj_jacSite(self.model, data, jac[:3], jac[3:], self.tcp_id)
            J = jac[:, :7] * self._weights[:, None]
            # one solve gives both the task step and the null-space projector
            solved = np.linalg.solve(J @ J.T + self._damping, np.column_stack([error, J]))
            posture = cfg.nullspace_gain * (REST_QPOS - q)
            dq = J.T @ solved[:, 0] + posture - J.T @ (solved[:, 1:] @ posture)
            q = np.clip(q + dq, self.lower, self.upper)
        pos, _ = self.forward(q)
        return q, float(np.linalg.norm(target_pos - pos))
