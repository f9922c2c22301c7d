"""``franka://IP``: Franka Panda / FR3 through franky-control (``pip install 'armworld[franka]'``).

franky runs the 1 kHz loop in C++ and replans each new target with Ruckig, so the
bridge only streams absolute Cartesian targets (asynchronous moves pre-empt each
other). ``relative_dynamics_factor`` starts slow (0.1 by default).
"""

from __future__ import annotations

import time
from urllib.parse import SplitResult, parse_qs

import numpy as np

from armworld.envs.conventions import euler_xyz_from_matrix
from armworld.envs.real.drivers import import_vendor
from armworld.envs.real.drivers.gripper import FRANKA_HAND
from armworld.envs.real.geometry import matrix_from_quat, quat_from_matrix, tool_frame_swap
from armworld.envs.real.protocols import Command, DriverError, Health, HealthState, RobotSpec, RobotState

GRIPPER_SPEED = 0.05  # m/s
GRIPPER_DEADBAND = 0.05  # closure change that triggers a new gripper move


class FrankyRobot:
    """A :class:`~armworld.envs.real.protocols.Robot` over ``franky.Robot`` and ``franky.Gripper``.

    Args:
        host: the robot's FCI address.
        spec: limits (default: the bundled ``panda`` spec).
        dynamics_factor: franky's ``relative_dynamics_factor`` in (0, 1].
    """

    def __init__(self, host: str, spec: RobotSpec | None = None, dynamics_factor: float = 0.1):
        self.host = host
        self.spec = spec or RobotSpec.load("panda")
        self.dynamics_factor = dynamics_factor
        self._franky = import_vendor("franky", "franka")
        self._robot = None
        self._gripper = None
        self._gripper_target: float | None = None

    def connect(self) -> None:
        if self._robot is not None:
            return
        self._robot = self._franky.Robot(self.host)
        self._robot.relative_dynamics_factor = self.dynamics_factor
        self._gripper = self._franky.Gripper(self.host)

    def disconnect(self) -> None:
        if self._robot is None:
            return
        try:
            self.stop()
        finally:
            self._robot = self._gripper = None

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        robot = self._connected()
        robot.recover_from_errors()
        q = [float(v) for v in (self.spec.q_home if home is None else home)]
        robot.move(self._franky.JointMotion(q), asynchronous=True)
        if not robot.join_motion(timeout=timeout_s):
            self.stop()
            raise DriverError(f"franka: not home after {timeout_s} s")
        self._gripper.move(FRANKA_HAND.to_device(0.0), GRIPPER_SPEED)
        self._gripper_target = 0.0
        return self.get_observation()

    def get_observation(self) -> RobotState:
        robot = self._connected()
        pose = robot.current_cartesian_state.pose.end_effector_pose
        joints = robot.current_joint_state
        return RobotState(
            q=np.asarray(joints.position, dtype=np.float64),
            qd=np.asarray(joints.velocity, dtype=np.float64),
            ee_pos=np.asarray(pose.translation, dtype=np.float64),
            ee_euler=euler_xyz_from_matrix(tool_frame_swap(matrix_from_quat(pose.quaternion))),
            gripper=FRANKA_HAND.to_closure(self._gripper.width),
            t=time.monotonic(),
        )

    def send_action(self, command: Command) -> Command:
        robot, franky = self._connected(), self._franky
        quat = quat_from_matrix(tool_frame_swap(command.ee_rot))
        target = franky.Affine([float(v) for v in command.ee_pos], [float(v) for v in quat])
        robot.move(franky.CartesianMotion(target, franky.ReferenceType.Absolute), asynchronous=True)
        if self._gripper_target is None or abs(command.gripper - self._gripper_target) > GRIPPER_DEADBAND:
            self._gripper.move_async(FRANKA_HAND.to_device(command.gripper), GRIPPER_SPEED)
            self._gripper_target = command.gripper
        return command

    def stop(self) -> None:
        if self._robot is not None:
            self._robot.move(self._franky.CartesianStopMotion(), asynchronous=True)

    def health(self) -> Health:
        robot = self._connected()
        mode = robot.state.robot_mode
        if mode == self._franky.RobotMode.UserStopped:
            return Health(HealthState.EMERGENCY_STOP, "user stop pressed")
        if mode == self._franky.RobotMode.Reflex:
            return Health(HealthState.PROTECTIVE_STOP, "reflex (collision or limit)")
        if robot.has_errors:
            return Health(HealthState.FAULT, f"robot mode {mode}")
        return Health()

    def _connected(self):
        if self._robot is None:
            raise DriverError("franka: connect() first")
        return self._robot


def from_url(url: SplitResult) -> FrankyRobot:
    """``franka://IP[?dynamics=0.1]``."""
    options = parse_qs(url.query)
    return FrankyRobot(url.hostname, dynamics_factor=float(options.get("dynamics", ["0.1"])[0]))
