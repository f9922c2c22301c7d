"""The small protocols every arm and camera behind the bridge implements.

Units: metres, radians, seconds; poses in the robot base frame (x forward, y left,
z up); orientations as extrinsic XYZ Euler angles; gripper closure in [0, 1]
(0 open, 1 closed). Timestamps are ``time.monotonic()`` seconds on the machine
that runs the policy (network drivers re-stamp what they receive).

A driver never decides what is safe: :class:`~armworld.envs.real.safety.SafetyLayer`
turns policy actions into :class:`Command` targets inside the limits of a
:class:`RobotSpec`, a robot server checks them again against its own robot's spec
(:class:`~armworld.envs.real.safety.Envelope`), and the driver only executes them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import yaml

from armworld.envs.conventions import matrix_from_euler_xyz

LIMITS_DIR = Path(__file__).parent / "limits"

ForwardKinematics = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Forward kinematics: joint angles ``[dof]`` (rad) -> TCP position ``[3]`` (m) and rotation ``[3, 3]``."""


class RealRobotError(RuntimeError):
    """Base class of every error the bridge raises on purpose."""


class SafetyFault(RealRobotError):
    """A latched fault: nothing is sent until ``reset()``."""


class DriverError(RealRobotError):
    """The driver or the arm failed to execute a call."""


class StaleDataError(RealRobotError):
    """An observation or camera frame older than the allowed age."""


class EnvelopeViolation(RealRobotError):
    """A request the arm's side refuses: it would leave the robot's limits (nothing was executed)."""


class HealthState(str, enum.Enum):
    """What the arm reports about itself."""

    OK = "ok"
    PROTECTIVE_STOP = "protective_stop"
    EMERGENCY_STOP = "emergency_stop"
    FAULT = "fault"


@dataclass(frozen=True)
class Health:
    """The arm's state and, when not OK, a human-readable reason."""

    state: HealthState = HealthState.OK
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.state is HealthState.OK


def _floats(values, n: int, name: str, unit: str) -> tuple[float, ...]:
    """``values`` as ``n`` finite floats; a ``ValueError`` naming ``name`` and what was expected otherwise."""
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        out = None
    if out is None or len(out) != n or not all(np.isfinite(out)):
        raise ValueError(f"{name}: expected a list of {n} finite numbers ({unit}), got {values!r}")
    return out


def _scalar(value, name: str, unit: str) -> float:
    """``value`` as a finite float; a ``ValueError`` naming ``name`` otherwise."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = float("nan")
    if isinstance(value, bool) or not np.isfinite(out):
        raise ValueError(f"{name}: expected a finite number ({unit}), got {value!r}")
    return out


_SCALARS = {  # the scalar limits and their units
    "joint_margin": "rad", "control_hz": "Hz", "max_ee_step": "m", "max_rot_step": "rad", "max_ee_speed": "m/s",
    "max_ee_acc": "m/s^2", "max_rot_speed": "rad/s", "gripper_min": "closure", "gripper_max": "closure",
    "max_obs_age": "s", "watchdog_periods": "control periods",
}


@dataclass(frozen=True)
class RobotSpec:
    """Per-robot limits, loaded from ``limits/<name>.yaml``.

    Attributes:
        name: robot model name.
        dof: number of arm joints.
        q_min, q_max: joint position limits (rad).
        qd_max: joint speed limits (rad/s).
        q_home: home configuration (rad).
        joint_margin: distance (rad) kept from the joint limits by every target.
        control_hz: control rate (Hz) the limits per step are computed at.
        workspace_min, workspace_max: TCP position box (m, base frame).
        max_ee_step: half-width (m) of the per-axis box each TCP step stays in (from the measured
            TCP and between consecutive targets), as the sim scales actions: each axis at most
            ``MAX_POS_DELTA``, so up to sqrt(3) times that diagonally.
        max_rot_step: bound (rad) on each extrinsic XYZ Euler angle of the rotation between
            consecutive targets, as the sim scales actions (each at most ``MAX_ROT_DELTA``).
        max_ee_speed: TCP speed (norm) between consecutive targets (m/s); below
            sqrt(3) ``max_ee_step`` / ``dt`` it binds before the box on diagonal steps.
        max_ee_acc: TCP acceleration (norm) between consecutive targets (m/s^2).
        max_rot_speed: TCP angular speed between consecutive targets (rad/s); below
            sqrt(3) ``max_rot_step`` / ``dt`` (about) it binds before the box on rotations about
            several axes.
        gripper_min, gripper_max: allowed gripper closure range (0 open, 1 closed).
        max_obs_age: oldest robot state or camera frame accepted (s).
        watchdog_periods: control periods without a command before the arm is stopped.
    """

    name: str
    dof: int
    q_min: tuple[float, ...]
    q_max: tuple[float, ...]
    qd_max: tuple[float, ...]
    q_home: tuple[float, ...]
    joint_margin: float
    control_hz: float
    workspace_min: tuple[float, float, float]
    workspace_max: tuple[float, float, float]
    max_ee_step: float
    max_rot_step: float
    max_ee_speed: float
    max_ee_acc: float
    max_rot_speed: float
    gripper_min: float = 0.0
    gripper_max: float = 1.0
    max_obs_age: float = 0.2
    watchdog_periods: float = 1.5

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected the robot model's name, got {self.name!r}")
        if isinstance(self.dof, bool) or not isinstance(self.dof, int) or self.dof <= 0:
            raise ValueError(f"dof: expected a positive whole number of arm joints, got {self.dof!r}")
        for name, unit in (("q_min", "rad"), ("q_max", "rad"), ("qd_max", "rad/s"), ("q_home", "rad")):
            object.__setattr__(self, name, _floats(getattr(self, name), self.dof, name, unit))
        for name in ("workspace_min", "workspace_max"):
            object.__setattr__(self, name, _floats(getattr(self, name), 3, name, "m"))
        for name, unit in _SCALARS.items():
            object.__setattr__(self, name, _scalar(getattr(self, name), name, unit))
        positive = ("control_hz", "max_ee_step", "max_rot_step", "max_ee_speed", "max_ee_acc",
                    "max_rot_speed", "max_obs_age", "watchdog_periods")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive number ({_SCALARS[name]}), got {getattr(self, name)}")
        if self.joint_margin < 0:
            raise ValueError(f"joint_margin: expected a distance >= 0 (rad) kept from every joint limit, "
                             f"got {self.joint_margin}")
        q_min, q_max, home = np.array(self.q_min), np.array(self.q_max), np.array(self.q_home)
        for j in np.flatnonzero(q_max - q_min <= 2 * self.joint_margin):
            raise ValueError(f"q_min, q_max: expected every joint range to exceed twice joint_margin "
                             f"({self.joint_margin} rad); joint {j} spans [{q_min[j]}, {q_max[j]}]")
        for j in np.flatnonzero((home < q_min + self.joint_margin) | (home > q_max - self.joint_margin)):
            raise ValueError(f"q_home: expected every joint inside its limits minus joint_margin; joint {j} is "
                             f"{home[j]} rad, allowed [{q_min[j] + self.joint_margin}, {q_max[j] - self.joint_margin}]")
        if np.any(np.array(self.workspace_max) <= np.array(self.workspace_min)):
            raise ValueError(f"workspace_min, workspace_max: expected workspace_max above workspace_min on every "
                             f"axis, got {list(self.workspace_min)} and {list(self.workspace_max)}")
        if np.any(np.array(self.qd_max) <= 0):
            raise ValueError(f"qd_max: expected positive joint speeds (rad/s), got {list(self.qd_max)}")
        if not 0.0 <= self.gripper_min <= self.gripper_max <= 1.0:
            raise ValueError(f"gripper_min, gripper_max: expected 0 <= gripper_min <= gripper_max <= 1, got "
                             f"{self.gripper_min} and {self.gripper_max}")

    @property
    def dt(self) -> float:
        """Control period (s)."""
        return 1.0 / self.control_hz

    @classmethod
    def load(cls, name_or_path: str | Path) -> RobotSpec:
        """The spec in ``limits/<name>.yaml`` (a bundled name such as ``panda``) or a YAML path."""
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            path = LIMITS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            bundled = sorted(p.stem for p in LIMITS_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no robot limits at {path}; bundled: {bundled}")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of limit names to values, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; the keys are {sorted(fields)}")
        missing = sorted(name for name, f in fields.items()
                         if name not in data and f.default is dataclasses.MISSING)
        if missing:
            raise ValueError(f"{path}: missing keys {missing} (see limits/panda.yaml for their meaning and units)")
        try:
            return cls(**data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def scaled(self, speed_factor: float) -> RobotSpec:
        """This spec with every step, speed and acceleration limit times ``speed_factor`` in (0, 1]."""
        if not 0.0 < speed_factor <= 1.0:
            raise ValueError(f"speed_factor must be in (0, 1], got {speed_factor}")
        f = speed_factor
        return dataclasses.replace(
            self,
            qd_max=tuple(v * f for v in self.qd_max),
            max_ee_step=self.max_ee_step * f,
            max_rot_step=self.max_rot_step * f,
            max_ee_speed=self.max_ee_speed * f,
            max_ee_acc=self.max_ee_acc * f,
            max_rot_speed=self.max_rot_speed * f,
        )


@dataclass(frozen=True)
class RobotState:
    """One reading of the arm.

    Attributes:
        q: joint positions ``[dof]`` (rad).
        qd: joint velocities ``[dof]`` (rad/s).
        ee_pos: TCP position ``[3]`` (m).
        ee_euler: TCP orientation ``[3]`` (extrinsic XYZ Euler, rad).
        gripper: closure in [0, 1] (0 open, 1 closed).
        t: ``time.monotonic()`` when the reading was taken (s).
    """

    q: np.ndarray
    qd: np.ndarray
    ee_pos: np.ndarray
    ee_euler: np.ndarray
    gripper: float
    t: float

    @property
    def ee_rot(self) -> np.ndarray:
        """TCP rotation matrix ``[3, 3]``."""
        return matrix_from_euler_xyz(self.ee_euler)

    @property
    def proprio(self) -> np.ndarray:
        """The shared 7-D ``proprio`` vector (float32): xyz, Euler XYZ, gripper closure."""
        return np.concatenate([self.ee_pos, self.ee_euler, [self.gripper]]).astype(np.float32)


@dataclass(frozen=True)
class Command:
    """An absolute target the safety layer allows the driver to execute.

    Attributes:
        ee_pos: TCP target position ``[3]`` (m).
        ee_euler: TCP target orientation ``[3]`` (extrinsic XYZ Euler, rad).
        gripper: gripper closure target in [0, 1] (0 open, 1 closed).
        q: joint configuration ``[dof]`` (rad) that reaches the target, from IK.
        t: ``time.monotonic()`` when the command was made (s).
    """

    ee_pos: np.ndarray
    ee_euler: np.ndarray
    gripper: float
    q: np.ndarray
    t: float

    @property
    def ee_rot(self) -> np.ndarray:
        """TCP target rotation matrix ``[3, 3]``."""
        return matrix_from_euler_xyz(self.ee_euler)


@dataclass(frozen=True)
class Frame:
    """A camera image, uint8 ``[H, W, 3]`` RGB, and ``time.monotonic()`` at capture (s)."""

    image: np.ndarray
    t: float


@dataclass(frozen=True)
class Reading:
    """Everything one control step reads back from the arm's side.

    Attributes:
        state: the arm's state.
        health: the arm's health, read with ``state``.
        frames: frames of the cameras served with the arm, by name (network drivers).
        task: the privileged task observation (``observation``, ``achieved_goal``,
            ``desired_goal``) when the robot serves one (the sim), else ``None``.
    """

    state: RobotState
    health: Health
    frames: dict[str, Frame] = dataclasses.field(default_factory=dict)
    task: dict[str, np.ndarray] | None = None


@runtime_checkable
class Robot(Protocol):
    """An arm the bridge can drive (LeRobot-style lifecycle)."""

    spec: RobotSpec

    def connect(self) -> None:
        """Open the connection; calling it again is harmless."""

    def disconnect(self) -> None:
        """Stop and close; always safe, idempotent."""

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        """Clear recoverable errors, move slowly to ``home`` (default ``spec.q_home``), return the state."""

    def get_observation(self) -> RobotState:
        """The latest state, stamped."""

    def send_action(self, command: Command) -> Command:
        """Execute ``command``; return what was actually commanded."""

    def stop(self) -> None:
        """Decelerate and hold the current pose."""

    def health(self) -> Health:
        """OK, protective stop, emergency stop or fault."""


@runtime_checkable
class Kinematics(Protocol):
    """Inverse kinematics used by the safety layer's joint-limit check."""

    def ik(self, pos: np.ndarray, rot: np.ndarray, q_init: np.ndarray) -> tuple[np.ndarray, bool]:
        """Joint configuration ``[dof]`` reaching TCP ``pos`` [3] (m), ``rot`` [3, 3]; and whether it converged."""


@runtime_checkable
class Camera(Protocol):
    """A camera that keeps its latest frame."""

    name: str

    def connect(self) -> None:
        """Open the device; idempotent."""

    def disconnect(self) -> None:
        """Close the device; idempotent."""

    def read_latest(self, max_age_s: float) -> Frame:
        """The newest frame; raises :class:`StaleDataError` if it is older than ``max_age_s``."""


def check_fresh(t: float, now: float, max_age_s: float, what: str) -> None:
    """Raise :class:`StaleDataError` if a reading taken at ``t`` is older than ``max_age_s`` at ``now`` (s),
    or stamped after ``now`` (a clock that cannot be trusted)."""
    age = now - t
    if not np.isfinite(age) or age > max_age_s:
        raise StaleDataError(f"{what} is {age * 1e3:.0f} ms old (limit {max_age_s * 1e3:.0f} ms)")
    if age < 0:
        raise StaleDataError(f"{what} is stamped {-age * 1e3:.1f} ms in the future: its clock cannot be trusted")


__all__ = [
    "Camera", "Command", "DriverError", "EnvelopeViolation", "ForwardKinematics", "Frame", "Health", "HealthState",
    "Kinematics", "Reading", "RealRobotError",
    "Robot",
    "RobotSpec", "RobotState", "SafetyFault", "StaleDataError", "check_fresh",
]
