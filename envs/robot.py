"""Robots in the simulator: what the table-top env needs of an arm (:class:`RobotModel`), and
differential inverse kinematics for any of them (:class:`ArmKinematics`).

The controller turns a desired TCP pose into joint position targets by damped least
squares on MuJoCo's site Jacobian, with a null-space pull toward the robot's rest posture
and joint targets kept inside the joint limits (minus a margin) and the joint velocity
limits. The same solver serves the sim envs, goal-image posing and the real-arm safety
layer's joint-limit check. Robots: ``armworld.envs.panda.PANDA``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import mujoco
import numpy as np

TABLETOP_XML = "tabletop.xml"  # the table, walls, lights and fixed cameras (envs/assets)


@dataclass(frozen=True, eq=False)
class RobotModel:
    """An arm with a parallel gripper, as the table-top env drives it.

    ``mjcf`` names a file in ``envs/assets`` holding the robot at the origin of the base
    frame (x forward, y left, z up; the table top is the plane z = 0): the arm's hinge joints
    ``arm_joints`` (base to flange), before any other joint; position actuators for them in
    that order, then one gripper actuator whose control is the opening of each finger (m);
    the two finger slide joints ``finger_joints`` (each finger's opening, m); a site ``tcp``
    between the finger pads, aligned with the base frame when the gripper points straight
    down (envs/conventions.py); and a camera ``wrist``.

    joint_limits ``[n, 2]`` (rad) and joint_velocity_limits ``[n]`` (rad/s): the published
    limits, which the controller keeps to. rest_qpos ``[n]`` (rad): a posture with the gripper
    pointing down over the table, the IK's null-space rest pose and the start of its solves.
    finger_open: each finger's opening when the gripper is open (m). meshes: ``"module:function"``
    adding visual meshes to the scene spec for ``visual="mesh"`` (None: primitives only).
    """

    name: str
    mjcf: str
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, str]
    joint_limits: np.ndarray
    joint_velocity_limits: np.ndarray
    rest_qpos: np.ndarray
    finger_open: float
    meshes: str | None = None

    def __post_init__(self) -> None:
        n = len(self.arm_joints)
        shapes = {"joint_limits": (n, 2), "joint_velocity_limits": (n,), "rest_qpos": (n,)}
        for field, shape in shapes.items():
            if np.shape(getattr(self, field)) != shape:
                raise ValueError(f"{self.name}: {field} has shape {np.shape(getattr(self, field))}, expected {shape} ({n} arm joints)")
        if len(self.finger_joints) != 2 or self.finger_open <= 0:
            raise ValueError(f"{self.name}: a parallel gripper needs two finger joints and a positive opening")
        if np.any(self.rest_qpos < self.joint_limits[:, 0]) or np.any(self.rest_qpos > self.joint_limits[:, 1]):
            raise ValueError(f"{self.name}: rest_qpos {self.rest_qpos} lies outside the joint limits")

    @property
    def dof(self) -> int:
        """Number of arm joints."""
        return len(self.arm_joints)

    @property
    def gripper_max_width(self) -> float:
        """Opening between the finger pads when open (m): what gripper closure 0 means."""
        return 2 * self.finger_open

    def scene(self) -> mujoco.MjSpec:
        """The table-top scene (``tabletop.xml``) with this robot at the origin, uncompiled."""
        assets = resources.files("armworld.envs") / "assets"
        include = {name: (assets / name).read_bytes() for name in (self.mjcf, TABLETOP_XML)}
        xml = f'<mujoco model="armworld_scene"><include file="{self.mjcf}"/><include file="{TABLETOP_XML}"/></mujoco>'
        return mujoco.MjSpec.from_string(xml, include=include)


@dataclass(frozen=True)
class IKConfig:
    """Damped least-squares settings.

    damping: Levenberg-Marquardt damping (m); iterations: Gauss-Newton steps per solve;
    nullspace_gain: pull toward the robot's ``rest_qpos`` per step; limit_margin: rad kept
    from each joint limit; rotation_weight: weight of the orientation error (m/rad) against
    the position error.
    """

    damping: float = 0.02
    iterations: int = 3
    nullspace_gain: float = 0.1
    limit_margin: float = 0.02
    rotation_weight: float = 0.5


class ArmKinematics:
    """Forward and inverse kinematics of a robot's arm inside a compiled MuJoCo model.

    Works on its own scratch ``MjData`` so that solving never disturbs the simulation.
    The env calls ``step_toward`` every control step, so each iteration writes into
    preallocated arrays and does its small linear algebra with MuJoCo's ``mju_*``
    routines (a numpy call on a 6x6 matrix costs more in overhead than in arithmetic).
    One instance solves one problem at a time. Joint vectors are ``[n]`` (rad), n =
    ``robot.dof``.
    """

    def __init__(self, model: mujoco.MjModel, robot: RobotModel, config: IKConfig = IKConfig()):
        self.model = model
        self.robot = robot
        self.config = config
        self._scratch = mujoco.MjData(model)
        self.qpos_ids = np.array([model.jnt_qposadr[model.joint(j).id] for j in robot.arm_joints])
        self.dof_ids = np.array([model.jnt_dofadr[model.joint(j).id] for j in robot.arm_joints])
        self.tcp_id = model.site("tcp").id
        self.lower = robot.joint_limits[:, 0] + config.limit_margin
        self.upper = robot.joint_limits[:, 1] - config.limit_margin
        arm = np.arange(robot.dof)
        if not (np.array_equal(self.qpos_ids, arm) and np.array_equal(self.dof_ids, arm)):
            raise ValueError(f"{robot.name}: the arm's joints {robot.arm_joints} must come first in the model, in order")
        # Damped least squares on the weighted task (W J, W e with W = diag(1, 1, 1, w, w, w))
        # needs no weighting at all in this form: (J J^T + damping^2 W^-2) z = e - J p.
        w = config.rotation_weight
        self._damping = config.damping**2 * np.array([1.0, 1.0, 1.0, w**-2, w**-2, w**-2])
        self._allocate()

    def _allocate(self) -> None:
        """The work arrays of one iteration (see ``_iterate``) and views into the scratch
        data. Vectors over all nv dofs are zero past the arm."""
        nv = self.model.nv
        n = self.robot.dof
        self._arm_qpos = self._scratch.qpos[:n]
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
        self._to_rest_arm = self._to_rest[:n]
        self._rhs = np.empty(6)
        self._z = np.empty(6)
        self._dq = np.empty(nv)
        self._dq_arm = self._dq[:n]

    def __setstate__(self, state: dict) -> None:
        """After a copy or unpickling: the views must point into the new arrays again (a
        view copied on its own aliases nothing)."""
        self.__dict__.update(state)
        self._allocate()

    def tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [3] (m) and rotation matrix [3, 3] in the base frame."""
        return data.site_xpos[self.tcp_id].copy(), data.site_xmat[self.tcp_id].reshape(3, 3).copy()

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP pose for arm joint angles ``q`` [n] (rad)."""
        self._arm_qpos[:] = q
        mujoco.mj_kinematics(self.model, self._scratch)
        return self.tcp_pose(self._scratch)

    def solve(
        self, q_init: np.ndarray, target_pos: np.ndarray, target_R: np.ndarray, iterations: int | None = None
    ) -> tuple[np.ndarray, float]:
        """Joint angles [n] that bring the TCP to ``target_pos`` [3] / ``target_R`` [3, 3].

        Starts from ``q_init`` [n]; returns the solution, clipped to the joint limits
        minus the margin, and its remaining position error (m).
        """
        q = self.step_toward(q_init, target_pos, target_R, iterations)
        pos, _ = self.forward(q)
        return q, float(np.linalg.norm(target_pos - pos))

    def step_toward(
        self, q_init: np.ndarray, target_pos: np.ndarray, target_R: np.ndarray, iterations: int | None = None
    ) -> np.ndarray:
        """``solve`` without measuring the result: joint angles [n] after ``iterations``
        (default ``config.iterations``) damped least-squares steps from ``q_init`` [n]."""
        q = self._arm_qpos  # the iterate lives in the scratch data's arm joints
        np.minimum(q_init, self.upper, out=q)
        np.maximum(q, self.lower, out=q)
        target_R = np.ascontiguousarray(target_R, dtype=np.float64)
        for _ in range(self.config.iterations if iterations is None else iterations):
            self._iterate(target_pos, target_R)
        return q.copy()

    def _iterate(self, target_pos: np.ndarray, target_R: np.ndarray) -> None:
        """One damped least-squares step on the scratch data's arm joints q [n], with a
        null-space pull.

        With the task error e [6] (position in m, then the axis-angle vector in rad that
        rotates the TCP onto ``target_R``, world frame), the TCP Jacobian J [6, nv], the
        damping D and the posture pull p = nullspace_gain (rest_qpos - q): the weighted
        step J^T A^-1 e + (I - J^T A^-1 J) p equals J^T z + p with (J J^T + D) z = e - J p,
        one 6x6 Cholesky solve. The TCP's Jacobian is zero past the arm's n dofs.
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
        np.subtract(self.robot.rest_qpos, q, out=self._to_rest_arm)
        mujoco.mju_mulMatVec(self._rhs, jac, self._to_rest)
        mujoco.mju_addScl(self._rhs, self._error, self._rhs, -gain)  # e - J p
        mujoco.mju_cholSolve(self._z, A, self._rhs)
        mujoco.mju_mulMatTVec(self._dq, jac, self._z)
        mujoco.mju_addToScl(self._dq, self._to_rest, gain)  # J^T z + p
        q += self._dq_arm
        np.minimum(q, self.upper, out=q)
        np.maximum(q, self.lower, out=q)
