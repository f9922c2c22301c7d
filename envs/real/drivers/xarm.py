"""``xarm://IP``: UFACTORY xArm 7 through xarm-python-sdk (``pip install 'armworld[xarm]'``).

Targets stream in servo mode (mode 1) with ``set_servo_cartesian`` (millimetres,
radians); only the latest command runs. ``stop()`` sets state 4; ``reset()`` clears
errors, re-enables motion and moves home in position mode before servoing again.
"""

from __future__ import annotations

import time
from urllib.parse import SplitResult

import numpy as np

from armworld.envs.conventions import euler_xyz_from_matrix, matrix_from_euler_xyz
from armworld.envs.real.drivers import import_vendor
from armworld.envs.real.drivers.gripper import XARM_GRIPPER
from armworld.envs.real.geometry import tool_frame_swap
from armworld.envs.real.protocols import Command, DriverError, Health, HealthState, RobotSpec, RobotState

MODE_POSITION, MODE_SERVO = 0, 1
STATE_READY, STATE_STOP = 0, 4
EMERGENCY_CODES = {1, 2}  # emergency stop button / control-box emergency IO
PROTECTIVE_CODES = {22, 31, 35}  # self-collision, collision current, safety boundary
HOME_SPEED = 0.35  # rad/s


class XArmRobot:
    """A :class:`~armworld.envs.real.protocols.Robot` over ``xarm.wrapper.XArmAPI``.

    Args:
        host: the controller's address.
        spec: limits (default: the bundled ``xarm7`` spec).
    """

    def __init__(self, host: str, spec: RobotSpec | None = None):
        self.host = host
        self.spec = spec or RobotSpec.load("xarm7")
        self._wrapper = import_vendor("xarm.wrapper", "xarm")
        self._arm = None

    def connect(self) -> None:
        if self._arm is not None:
            return
        self._arm = self._wrapper.XArmAPI(self.host, is_radian=True)
        self._arm.set_gripper_enable(True)

    def disconnect(self) -> None:
        if self._arm is None:
            return
        try:
            self._arm.set_state(STATE_STOP)
        finally:
            self._arm.disconnect()
            self._arm = None

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        arm = self._connected()
        arm.clean_error()
        arm.clean_warn()
        arm.motion_enable(enable=True)
        arm.set_mode(MODE_POSITION)
        arm.set_state(STATE_READY)
        q = [float(v) for v in (self.spec.q_home if home is None else home)]
        self._check(arm.set_servo_angle(angle=q, speed=HOME_SPEED, is_radian=True, wait=True, timeout=timeout_s),
                    "move home")
        self._check(arm.set_gripper_position(XARM_GRIPPER.to_device(0.0), wait=True), "open gripper")
        arm.set_mode(MODE_SERVO)
        arm.set_state(STATE_READY)
        return self.get_observation()

    def get_observation(self) -> RobotState:
        arm = self._connected()
        code, (q, qd, _effort) = arm.get_joint_states(is_radian=True)
        self._check(code, "read joints")
        code, pose = arm.get_position(is_radian=True)
        self._check(code, "read pose")
        code, width = arm.get_gripper_position()
        self._check(code, "read gripper")
        R = tool_frame_swap(matrix_from_euler_xyz(np.asarray(pose[3:6], dtype=np.float64)))
        return RobotState(
            q=np.asarray(q[: self.spec.dof], dtype=np.float64),
            qd=np.asarray(qd[: self.spec.dof], dtype=np.float64),
            ee_pos=np.asarray(pose[:3], dtype=np.float64) / 1000.0,
            ee_euler=euler_xyz_from_matrix(R),
            gripper=XARM_GRIPPER.to_closure(width),
            t=time.monotonic(),
        )

    def send_action(self, command: Command) -> Command:
        arm = self._connected()
        self._check(arm.set_servo_cartesian(self._pose(command.ee_pos, command.ee_rot), is_radian=True), "servo")
        self._check(arm.set_gripper_position(XARM_GRIPPER.to_device(command.gripper), wait=False), "gripper")
        return command

    def ik(self, pos: np.ndarray, rot: np.ndarray, q_init: np.ndarray) -> tuple[np.ndarray, bool]:
        """The controller's own IK (:class:`~armworld.envs.real.protocols.Kinematics`): joints [7] (rad), found."""
        code, q = self._connected().get_inverse_kinematics(self._pose(pos, rot), input_is_radian=True,
                                                            return_is_radian=True)
        if code != 0:
            return np.asarray(q_init, dtype=np.float64), False
        return np.asarray(q[: self.spec.dof], dtype=np.float64), True

    @staticmethod
    def _pose(pos: np.ndarray, rot: np.ndarray) -> list[float]:
        """An xArm pose [x, y, z (mm), roll, pitch, yaw (rad)] of the tool frame."""
        rpy = euler_xyz_from_matrix(tool_frame_swap(rot))
        return [float(v) for v in (*(np.asarray(pos) * 1000.0), *rpy)]

    def stop(self) -> None:
        if self._arm is not None:
            self._arm.set_state(STATE_STOP)

    def health(self) -> Health:
        code = self._connected().error_code
        if code in EMERGENCY_CODES:
            return Health(HealthState.EMERGENCY_STOP, f"error code {code}")
        if code in PROTECTIVE_CODES:
            return Health(HealthState.PROTECTIVE_STOP, f"error code {code}")
        if code:
            return Health(HealthState.FAULT, f"error code {code}")
        return Health()

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            raise DriverError(f"xarm: {what} failed with code {code}")

    def _connected(self):
        if self._arm is None:
            raise DriverError("xarm: connect() first")
        return self._arm


def from_url(url: SplitResult) -> XArmRobot:
    """``xarm://IP``."""
    return XArmRobot(url.hostname)
