"""``ur://IP``: Universal Robots e-Series / CB3 through ur-rtde (``pip install 'armworld[ur]'``).

Targets stream as ``servoL`` commands spanning one control period, each followed by
``kickWatchdog``: the controller's own RTDE watchdog stops the arm if the kicks stop
(a backstop behind the safety layer's watchdog). Poses pass ``isPoseWithinSafetyLimits``
first. The gripper is a binary tool digital output (closed when closure >= 0.5). Every
ur-rtde call that reports success is checked: one that returns ``False`` (the RTDE control
script stopped: a protective stop, the pendant, a lost connection) raises
:class:`~armworld.envs.real.protocols.DriverError`; ``reset()`` re-uploads the script.
"""

from __future__ import annotations

import time
from urllib.parse import SplitResult

import numpy as np

from armworld.envs.conventions import euler_xyz_from_matrix
from armworld.envs.real.drivers import import_vendor
from armworld.envs.real.geometry import matrix_from_rotvec, rotvec_from_matrix, tool_frame_swap
from armworld.envs.real.protocols import Command, DriverError, Health, HealthState, RobotSpec, RobotState

TOOL_OUTPUT = 0  # tool digital output driving the gripper
TOOL_OUTPUT_BIT = 16  # the same output in getDigitalOutState numbering
HOME_SPEED = 0.25  # rad/s for moveJ
HOME_ACC = 0.5  # rad/s^2
VENDOR_MODULES = ("rtde_control", "rtde_receive", "rtde_io", "dashboard_client")  # ur-rtde's, as connect() uses them


class URRobot:
    """A :class:`~armworld.envs.real.protocols.Robot` over ur-rtde.

    Args:
        host: the controller's address.
        spec: limits (default: the bundled ``ur5e`` spec).
        rtde_hz: RTDE frequency (500 e-Series, 125 CB3).
        lookahead_s: ``servoL`` lookahead time (0.03-0.2 s; adds about that much latency).
        gain: ``servoL`` proportional gain (100-2000).
    """

    def __init__(self, host: str, spec: RobotSpec | None = None, rtde_hz: float = 500.0,
                 lookahead_s: float = 0.1, gain: float = 300.0):
        self.host = host
        self.spec = spec or RobotSpec.load("ur5e")
        self.rtde_hz, self.lookahead_s, self.gain = rtde_hz, lookahead_s, gain
        self._vendor = [import_vendor(module, "ur") for module in VENDOR_MODULES]
        self._control = self._receive = self._io = self._dashboard = None

    def connect(self) -> None:
        if self._control is not None:
            return
        control, receive, io, dashboard = self._vendor
        self._control = control.RTDEControlInterface(self.host, self.rtde_hz)
        self._receive = receive.RTDEReceiveInterface(self.host)
        self._io = io.RTDEIOInterface(self.host)
        self._dashboard = dashboard.DashboardClient(self.host)
        self._dashboard.connect()
        # A kick per control period is expected; allow the safety layer's watchdog to act first.
        if not self._control.setWatchdog(self.spec.control_hz / (2.0 * self.spec.watchdog_periods)):
            self.disconnect()  # never left connected without the controller's watchdog
            _check(False, "setWatchdog")

    def disconnect(self) -> None:
        if self._control is None:
            return
        try:
            self._control.servoStop()
            self._control.stopScript()
        finally:
            self._control.disconnect()
            self._receive.disconnect()
            self._io.disconnect()
            self._dashboard.disconnect()
            self._control = self._receive = self._io = self._dashboard = None

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        control = self._connected()
        if self._receive.isProtectiveStopped():
            self._dashboard.unlockProtectiveStop()
        if not control.isProgramRunning():  # stopped by a protective stop, the pendant or an error
            _check(control.reuploadScript(), "reuploadScript")
        _check(control.servoStop(), "servoStop")  # a servo stream must end before a move
        q = [float(v) for v in (self.spec.q_home if home is None else home)]
        _check(control.moveJ(q, HOME_SPEED, HOME_ACC), "moveJ home")
        _check(self._io.setToolDigitalOut(TOOL_OUTPUT, False), "setToolDigitalOut (open the gripper)")
        return self.get_observation()

    def get_observation(self) -> RobotState:
        self._connected()
        tcp = np.asarray(self._receive.getActualTCPPose(), dtype=np.float64)
        closed = self._receive.getDigitalOutState(TOOL_OUTPUT_BIT)
        return RobotState(
            q=np.asarray(self._receive.getActualQ(), dtype=np.float64),
            qd=np.asarray(self._receive.getActualQd(), dtype=np.float64),
            ee_pos=tcp[:3],
            ee_euler=euler_xyz_from_matrix(tool_frame_swap(matrix_from_rotvec(tcp[3:]))),
            gripper=1.0 if closed else 0.0,
            t=time.monotonic(),
        )

    def send_action(self, command: Command) -> Command:
        control = self._connected()
        pose = self._pose(command.ee_pos, command.ee_rot)
        if not control.isPoseWithinSafetyLimits(pose):
            raise DriverError(f"ur: pose {np.round(pose, 3)} outside the controller's safety limits")
        _check(control.servoL(pose, 0.0, 0.0, self.spec.dt, self.lookahead_s, self.gain), "servoL")
        _check(control.kickWatchdog(), "kickWatchdog")
        _check(self._io.setToolDigitalOut(TOOL_OUTPUT, command.gripper >= 0.5), "setToolDigitalOut (gripper)")
        return command

    def ik(self, pos: np.ndarray, rot: np.ndarray, q_init: np.ndarray) -> tuple[np.ndarray, bool]:
        """The controller's own IK (:class:`~armworld.envs.real.protocols.Kinematics`): joints [6] (rad), found."""
        control = self._connected()
        pose = self._pose(pos, rot)
        qnear = [float(v) for v in q_init]
        if not control.getInverseKinematicsHasSolution(pose, qnear):
            return np.asarray(q_init, dtype=np.float64), False
        return np.asarray(control.getInverseKinematics(pose, qnear), dtype=np.float64), True

    @staticmethod
    def _pose(pos: np.ndarray, rot: np.ndarray) -> list[float]:
        """A UR pose [x, y, z, rx, ry, rz] (m, rotation vector of the tool frame)."""
        return [float(v) for v in (*pos, *rotvec_from_matrix(tool_frame_swap(rot)))]

    def stop(self) -> None:
        if self._control is not None:
            _check(self._control.servoStop(), "servoStop")

    def health(self) -> Health:
        self._connected()
        if self._receive.isEmergencyStopped():
            return Health(HealthState.EMERGENCY_STOP, "emergency stop")
        if self._receive.isProtectiveStopped():
            return Health(HealthState.PROTECTIVE_STOP, "protective stop")
        if not self._control.isConnected():
            return Health(HealthState.FAULT, "RTDE control connection lost")
        return Health()

    def _connected(self):
        if self._control is None:
            raise DriverError("ur: connect() first")
        return self._control


def _check(ok: bool, call: str) -> None:
    """Raise :class:`DriverError` when the ur-rtde ``call`` returned ``False``."""
    if not ok:
        raise DriverError(f"ur: {call} failed: the RTDE control script may have stopped (protective stop, "
                          "program stopped on the pendant, lost connection); check the pendant, then reset() "
                          "to re-upload it")


def from_url(url: SplitResult) -> URRobot:
    """``ur://IP``."""
    return URRobot(url.hostname)
