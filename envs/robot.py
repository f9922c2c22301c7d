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
    The env calls ``step_toward`` every control step, so each iteration writes into
    preallocated arrays and does its small linear algebra with MuJoCo's ``mju_*``
    routines (a numpy call on a 6x6 matrix costs more in overhead than in arithmetic).
    One instance solves one problem at a time.
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
        arm = np.arange(len(ARM_JOINTS))
        assert np.array_equal(self.qpos_ids, arm) and np.array_equal(self.dof_ids, arm), "the arm's joints must come first in the model"
        # Damped least squares on the weighted task (W J, W e with W = diag(1, 1, 1, w, w, w))
        # needs no weighting at all in this form: (J J^T + damping^2 W^-2) z = e - J p.
        w = config.rotation_weight
        self._damping = config.damping**2 * np.array([1.0, 1.0, 1.0, w**-2, w**-2, w**-2])
        self._allocate()

    def _allocate(self) -> None:
        """The work arrays of one iteration (see ``_iterate``) and views into the scratch
        data. Vectors over all nv dofs are zero past the arm."""
        nv = self.model.nv
        self._arm_qpos = self._scratch.qpos[:7]
        self._tcp_pos = self._scratch.site_xpos[self.tcp_id]
        self._tcp_R = self._scratch.site_xmat[self.tcp_id].reshape(3, 3)
        self._jac = np.zeros((6, nv))
        self._jac_pos, self._jac_rot = self._jac[:3], self._jac[3:]
        self._A = np.empty((6, 6))
        self._A_diagonal = self._A.reshape(-1)[::7]  # a view into A
        self._error = np.empty(6)
        self._error_pos, self._error_rot = self._error[:3], self._error[3:]
        self._rotation = np.empty((3, 3))
        self._rotation_flat = self._rotation.reshape(-1)
        self._quat = np.empty(4)
        self._to_rest = np.zeros(nv)
        self._to_rest_arm = self._to_rest[:7]
        self._rhs = np.empty(6)
        self._z = np.empty(6)
        self._dq = np.empty(nv)
        self._dq_arm = self._dq[:7]

    def __setstate__(self, state: dict) -> None:
        """After a copy or unpickling: the views must point into the new arrays again (a
        view copied on its own aliases nothing)."""
        self.__dict__.update(state)
        self._allocate()

    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [3] (m) and rotation matrix [3, 3] in the base frame."""
        return data.site_xpos[self.tcp_id].copy(), data.site_xmat[self.tcp_id].reshape(3, 3).copy()

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose for arm joint angles ``q`` [7] (rad)."""
        self._scratch.qpos[:7] = q
        mujoco.mj_kinematics(self.model, self._scratch)
        return self.tcp_pose(self._scratch)

    def solve(
        self, q_init: np.ndarray, target_pos: np.ndarray, target_R: np.ndarray, iterations: int | None = None
    ) -> tuple[np.ndarray, float]:
        """Joint angles [7] that bring the TCP to ``target_pos`` [3] / ``target_R`` [3, 3].

        Starts from ``q_init`` [7]; returns the solution, clipped to the joint limits
        minus the margin, and its remaining position error (m).
        """
        q = self.step_toward(q_init, target_pos, target_R, iterations)
        pos, _ = self.forward(q)
        return q, float(np.linalg.norm(target_pos - pos))

    def step_toward(
        self, q_init: np.ndarray, target_pos: np.ndarray, target_R: np.ndarray, iterations: int | None = None
    ) -> np.ndarray:
        """``solve`` without measuring the result: joint angles [7] after ``iterations``
        (default ``config.iterations``) damped least-squares steps from ``q_init`` [7]."""
        q = self._arm_qpos  # the iterate lives in the scratch data's arm joints
        np.minimum(q_init, self.upper, out=q)
        np.maximum(q, self.lower, out=q)
        target_R = np.ascontiguousarray(target_R, dtype=np.float64)
        for _ in range(self.config.iterations if iterations is None else iterations):
            self._iterate(target_pos, target_R)
        return q.copy()

    def _iterate(self, target_pos: np.ndarray, target_R: np.ndarray) -> None:
        """One damped least-squares step on the scratch data's arm joints q [7], with a
        null-space pull.

        With the task error e [6] (position in m, then the axis-angle vector in rad that
        rotates the TCP onto ``target_R``, world frame), the TCP Jacobian J [6, nv], the
        damping D and the posture pull p = nullspace_gain (REST_QPOS - q): the weighted
        step J^T A^-1 e + (I - J^T A^-1 J) p equals J^T z + p with (J J^T + D) z = e - J p,
        one 6x6 Cholesky solve. The TCP's Jacobian is zero past the arm's 7 dofs.
        """
        model, data, jac, A, q = self.model, self._scratch, self._jac, self._A, self._arm_qpos
        gain = self.config.nullspace_gain
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)  # the Jacobian needs cdof and subtree_com
        mujoco.mj_jacSite(model, data, self._jac_pos, self._jac_rot, self.tcp_id)
        np.subtract(target_pos, self._tcp_pos, out=self._error_pos)
        mujoco.mju_mulMatMatT(self._rotation, target_R, self._tcp_R)
        mujoco.mju_mat2Quat(self._quat, self._rotation_flat)
        mujoco.mju_quat2Vel(self._error_rot, self._quat, 1.0)
        mujoco.mju_mulMatMatT(A, jac, jac)
        self._A_diagonal += self._damping
        mujoco.mju_cholFactor(A, 0.0)
        np.subtract(REST_QPOS, q, out=self._to_rest_arm)
        mujoco.mju_mulMatVec(self._rhs, jac, self._to_rest)
        mujoco.mju_addScl(self._rhs, self._error, self._rhs, -gain)  # e - J p
        mujoco.mju_cholSolve(self._z, A, self._rhs)
        mujoco.mju_mulMatTVec(self._dq, jac, self._z)
        mujoco.mju_addToScl(self._dq, self._to_rest, gain)  # J^T z + p
        q += self._dq_arm
        np.minimum(q, self.upper, out=q)
        np.maximum(q, self.lower, out=q)
