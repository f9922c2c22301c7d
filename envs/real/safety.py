"""The safety layer between any policy and any arm.

A policy emits the env action (``Box(-1, 1, (7,))``, see
:mod:`armworld.envs.conventions`); :class:`SafetyLayer` turns it into an absolute
:class:`~armworld.envs.real.protocols.Command` that stays inside the robot's
:class:`~armworld.envs.real.protocols.RobotSpec`, sends it, and logs what it did.
Each rule is a small pure function below, applied in this order:

1. non-finite actions hold the last safe target (:func:`is_finite_action`);
2. scaling with the sim's constants ``MAX_POS_DELTA`` / ``MAX_ROT_DELTA`` (:func:`scale_action`);
   as in the sim, the position delta applies to the measured TCP position and the rotation
   delta to the last target orientation;
3. per-step translation and rotation clamp, boxes as the sim's action scaling
   (:func:`clamp_translation`: every axis within ``max_ee_step``; :func:`clamp_rotation`: every
   Euler angle of the rotation delta within ``max_rot_step``);
4. workspace box (:func:`clip_to_workspace`);
5. speed and acceleration between consecutive targets (:func:`limit_translation_rate`, which also
   keeps the step box between targets, and :func:`limit_rotation_rate`), the workspace box
   applied again (a projection, so speeds only shrink). Speeds are norms: with the bundled
   limits (``max_ee_speed`` 0.5 m/s, ``max_rot_speed`` 1.5 rad/s at 10 Hz) they bind before the
   boxes on diagonal moves, which the sim allows up to sqrt(3) times longer;
6. IK: the target must be reachable with every joint ``joint_margin`` inside its limits
   and no joint faster than ``qd_max`` (:func:`joints_within_margin`, :func:`joint_speeds_ok`),
   otherwise the last safe target is held;
7. gripper clamp (:func:`clamp_gripper`).

Around them: observations older than ``max_obs_age`` (or stamped in the future) are refused
(:class:`~armworld.envs.real.protocols.StaleDataError`, nothing sent); a
:class:`Watchdog` calls ``robot.stop()`` when no command arrives for
``watchdog_periods`` control periods; a robot that reports anything but OK, or a driver
that raises (on a command or on reset), latches a
:class:`~armworld.envs.real.protocols.SafetyFault` until a :meth:`SafetyLayer.reset` succeeds.

:class:`Envelope` is the second, independent check on the arm's side
(:class:`~armworld.envs.real.server.RobotServer` applies it to every request): it corrects
nothing, it refuses every command that leaves the robot's limits, whatever sent it.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, NoReturn

import numpy as np

from armworld.envs.conventions import (
    MAX_POS_DELTA,
    MAX_ROT_DELTA,
    euler_xyz_from_matrix,
    expand_action,
    matrix_from_euler_xyz,
)
from armworld.envs.real.geometry import matrix_from_rotvec, rotation_angle, rotvec_from_matrix
from armworld.envs.real.protocols import (
    Command,
    EnvelopeViolation,
    ForwardKinematics,
    Health,
    Kinematics,
    Robot,
    RobotSpec,
    RobotState,
    SafetyFault,
    check_fresh,
)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- pure steps


def is_finite_action(action: np.ndarray) -> bool:
    """Whether ``action`` is a 7-D (or 4-D) vector of finite numbers."""
    action = np.asarray(action)
    return action.ndim == 1 and action.shape[0] in (4, 7) and bool(np.all(np.isfinite(action)))


def scale_action(action: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """A normalised env action ``[7]`` or ``[4]`` -> (position delta [3] m, rotation delta [3, 3], gripper closure).

    Values are clipped to [-1, 1] and scaled exactly as the sim does
    (``MAX_POS_DELTA``, ``MAX_ROT_DELTA``; gripper -1 open -> 0, +1 closed -> 1).
    """
    a = expand_action(np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0))
    return a[:3] * MAX_POS_DELTA, matrix_from_euler_xyz(a[3:6] * MAX_ROT_DELTA), float((a[6] + 1.0) / 2.0)


def clamp_norm(vector: np.ndarray, max_norm: float) -> np.ndarray:
    """``vector`` shortened to norm ``max_norm`` if longer; direction kept."""
    norm = float(np.linalg.norm(vector))
    return vector * (max_norm / norm) if norm > max_norm else vector


def clamp_translation(delta: np.ndarray, max_step: float) -> np.ndarray:
    """``delta`` [3] (m) shortened, direction kept, until no axis exceeds ``max_step`` (m).

    A box as the sim's action scaling: each axis up to ``MAX_POS_DELTA``, so up to sqrt(3)
    times that on a diagonal.
    """
    largest = float(np.max(np.abs(delta)))
    return delta * (max_step / largest) if largest > max_step else delta


def clamp_rotation(R_delta: np.ndarray, max_angle: float) -> np.ndarray:
    """Rotation ``R_delta`` [3, 3] with its Euler angles scaled down together until none exceeds ``max_angle`` (rad).

    A box as the sim's action scaling, which builds ``R_delta`` from extrinsic XYZ Euler angles
    of up to ``MAX_ROT_DELTA`` each (a rotation of up to about sqrt(3) times that).
    """
    euler = euler_xyz_from_matrix(R_delta)
    largest = float(np.max(np.abs(euler)))
    return matrix_from_euler_xyz(euler * (max_angle / largest)) if largest > max_angle else R_delta


def clamp_rotation_angle(R: np.ndarray, max_angle: float) -> np.ndarray:
    """Rotation ``R`` [3, 3] reduced to at most ``max_angle`` (rad) about the same axis."""
    rotvec = rotvec_from_matrix(R)
    angle = float(np.linalg.norm(rotvec))
    return matrix_from_rotvec(rotvec * (max_angle / angle)) if angle > max_angle else R


def clip_to_workspace(pos: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``pos`` [3] (m) projected into the box ``[lo, hi]``."""
    return np.clip(pos, lo, hi)


def limit_translation_rate(
    pos: np.ndarray, prev_pos: np.ndarray, prev_vel: np.ndarray, dt: float, max_speed: float, max_acc: float,
    max_step: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Move from ``prev_pos`` toward ``pos`` (m) within the step box, the speed and the acceleration limits.

    The step is first shortened into the box of half-width ``max_step`` (m, per axis, see
    :func:`clamp_translation`); then its velocity changes by at most ``max_acc`` * ``dt``
    (m/s^2 * s) from ``prev_vel`` [3] (m/s), the velocity of the previous step, and its speed
    is at most ``max_speed`` (m/s). Both shrink a velocity inside the box toward
    ``prev_vel`` or zero, so the step stays in the box when ``prev_vel`` was a step of this
    function. Returns the new target [3] (m) and its velocity [3] (m/s).
    """
    vel = clamp_translation(pos - prev_pos, max_step) / dt
    vel = prev_vel + clamp_norm(vel - prev_vel, max_acc * dt)
    vel = clamp_norm(vel, max_speed)
    return prev_pos + vel * dt, vel


def limit_rotation_rate(R: np.ndarray, prev_R: np.ndarray, dt: float, max_speed: float) -> np.ndarray:
    """Rotation from ``prev_R`` toward ``R`` (both [3, 3]) limited to ``max_speed`` (rad/s) over ``dt`` (s)."""
    return clamp_rotation_angle(R @ prev_R.T, max_speed * dt) @ prev_R


def joints_within_margin(q: np.ndarray, q_min: np.ndarray, q_max: np.ndarray, margin: float) -> bool:
    """Whether every joint of ``q`` (rad) is at least ``margin`` (rad) inside ``[q_min, q_max]``."""
    return bool(np.all(q >= q_min + margin) and np.all(q <= q_max - margin))


def joint_speeds_ok(q: np.ndarray, prev_q: np.ndarray, dt: float, qd_max: np.ndarray) -> bool:
    """Whether going from ``prev_q`` to ``q`` (rad) in ``dt`` (s) keeps every joint under ``qd_max`` (rad/s)."""
    return bool(np.all(np.abs(q - prev_q) <= qd_max * dt + 1e-9))


def clamp_gripper(closure: float, lo: float, hi: float) -> float:
    """Gripper closure clamped to ``[lo, hi]`` (0 open, 1 closed)."""
    return float(np.clip(closure, lo, hi))


def step_fractions(spec: RobotSpec, previous: Command, command: Command) -> dict[str, float]:
    """The move from target ``previous`` to target ``command`` as a fraction of each per-step limit of ``spec``.

    Keys name the limits: ``max_ee_step`` (largest TCP axis step), ``max_ee_speed`` (TCP step
    norm over one period ``dt``), ``max_rot_step`` (largest extrinsic XYZ Euler angle of the
    rotation), ``max_rot_speed`` (rotation angle over ``dt``), ``qd_max`` (fastest joint over
    ``dt``). A value above 1 exceeds that limit.
    """
    step = np.asarray(command.ee_pos) - np.asarray(previous.ee_pos)
    R_delta = command.ee_rot @ previous.ee_rot.T
    joints = np.abs(np.asarray(command.q) - np.asarray(previous.q)) / (np.array(spec.qd_max) * spec.dt)
    return {
        "max_ee_step": float(np.max(np.abs(step))) / spec.max_ee_step,
        "max_ee_speed": float(np.linalg.norm(step)) / (spec.max_ee_speed * spec.dt),
        "max_rot_step": float(np.max(np.abs(euler_xyz_from_matrix(R_delta)))) / spec.max_rot_step,
        "max_rot_speed": rotation_angle(previous.ee_rot, command.ee_rot) / (spec.max_rot_speed * spec.dt),
        "qd_max": float(np.max(joints)),
    }


def _changed(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a rule moved a value by more than rounding."""
    return float(np.max(np.abs(a - b))) > 1e-12


def command_as_action(command: Command, state: RobotState) -> np.ndarray:
    """The normalised env action ``[7]`` (float32) that ``command`` amounts to from ``state``.

    Not clipped: a held target far from a lagging arm can exceed 1.
    """
    R_delta = command.ee_rot @ state.ee_rot.T
    return np.concatenate(
        [
            (command.ee_pos - state.ee_pos) / MAX_POS_DELTA,
            euler_xyz_from_matrix(R_delta) / MAX_ROT_DELTA,
            [2.0 * command.gripper - 1.0],
        ]
    ).astype(np.float32)


# ----------------------------------------------------------------------------- watchdog


class Watchdog:
    """Calls ``on_timeout`` once when :meth:`kick` has not been called for ``timeout_s`` seconds.

    Armed by the first :meth:`kick`; disarmed by :meth:`pause` or after firing; polled at
    ``timeout_s / 20``.
    """

    def __init__(self, timeout_s: float, on_timeout: Callable[[], None], clock: Callable[[], float] = time.monotonic):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._clock = clock
        self._last_kick: float | None = None
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self.fired_at: list[float] = []
        self._thread = threading.Thread(target=self._run, name="armworld-watchdog", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """A command went out: (re)arm and restart the countdown."""
        with self._lock:
            self._last_kick = self._clock()

    def pause(self) -> None:
        """Disarm until the next :meth:`kick` (during resets and between episodes)."""
        with self._lock:
            self._last_kick = None

    def close(self) -> None:
        """Stop the thread."""
        self._closed.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        while not self._closed.wait(self.timeout_s / 20):
            with self._lock:
                expired = self._last_kick is not None and self._clock() - self._last_kick > self.timeout_s
                if expired:
                    self._last_kick = None
            if expired:
                self.fired_at.append(self._clock())
                try:
                    self._on_timeout()
                except Exception:  # the watchdog thread must survive a failing stop
                    log.exception("watchdog: stop() failed")


# ----------------------------------------------------------------------------- the arm-side envelope

RATE_BURST_STEPS = 1.5  # full steps of motion a burst of commands may use (refilled at one step per period)
FK_POS_TOL_M = 5e-3  # largest distance (m) between a command's TCP target and where its joints put the TCP
FK_ROT_TOL_RAD = 0.05  # the same for the orientation (rad)
_TOLERANCE = 1e-6  # relative rounding allowed on each limit


@dataclass(frozen=True)
class _RateBudget:
    """Full steps of motion left at time ``t`` (s): one step more per period, at most :data:`RATE_BURST_STEPS`."""

    t: float
    steps: float = RATE_BURST_STEPS

    def at(self, t: float, dt: float) -> _RateBudget:
        """The budget at time ``t`` (s), a control period being ``dt`` (s); time never runs back."""
        t = max(t, self.t)
        return _RateBudget(t, min(RATE_BURST_STEPS, self.steps + (t - self.t) / dt))

    def spend(self, steps: float) -> _RateBudget:
        return _RateBudget(self.t, self.steps - steps)


def _numbers(value) -> np.ndarray | None:
    """``value`` as a float64 array if it holds real numbers only (no bools, complex, strings), else ``None``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    return array.astype(np.float64) if array.dtype.kind in "iuf" else None


def _vector(value, n: int, name: str, unit: str) -> np.ndarray:
    """``value`` as ``n`` finite float64s, or an :class:`EnvelopeViolation` naming ``name``."""
    array = _numbers(value)
    if array is None or array.shape != (n,) or not np.all(np.isfinite(array)):
        raise EnvelopeViolation(f"{name} must be {n} finite numbers ({unit}), got {value!r:.200}")
    return array


def _closure(value) -> float:
    """``value`` as a finite gripper closure, or an :class:`EnvelopeViolation`."""
    closure = _numbers(value)
    if closure is None or closure.shape != () or not np.isfinite(closure):
        raise EnvelopeViolation(f"gripper must be one finite closure (0 open, 1 closed), got {value!r:.100}")
    return float(closure)


class Envelope:
    """The limits of ``spec`` that every command an arm executes stays in, checked on the arm's side.

    Where :class:`SafetyLayer` corrects a policy's actions, the envelope only checks commands
    and refuses, with an :class:`~armworld.envs.real.protocols.EnvelopeViolation` naming the
    limit, any command that would leave the limits: non-finite or malformed numbers, a joint
    target less than ``joint_margin`` inside its limits, a TCP target outside the workspace box,
    a gripper closure outside ``[gripper_min, gripper_max]``, joints that do not reach the TCP
    target (within :data:`FK_POS_TOL_M` and :data:`FK_ROT_TOL_RAD`, when ``forward`` is given), a
    step from the previous target beyond ``max_ee_step``, ``max_ee_speed * dt``,
    ``max_rot_step``, ``max_rot_speed * dt`` or ``qd_max * dt`` (:func:`step_fractions`), and
    commands coming faster than one full step per control period: each command uses its step
    (its largest fraction of a step limit) from a budget refilled by one step per period and
    capped at :data:`RATE_BURST_STEPS`, so over any interval ``T`` (s) the targets move at most
    ``T / dt + 1.5`` full steps. Two such budgets are kept, one on the times the commands
    arrived (``command.t``) and one on the envelope's clock when each is admitted, just before
    it is executed; a command must fit both. The first tolerates a client's jitter, the second
    keeps commands that arrived a period apart but waited behind a busy arm from reaching it in
    a burst. Acceleration is left to :class:`SafetyLayer`.

    Args:
        spec: the served robot's limits (unscaled).
        forward: forward kinematics of the arm, to check that a command's joints reach its TCP
            target (drivers that execute joint targets, as the sim does); ``None`` skips that check.
        clock: monotonic clock (s).
    """

    def __init__(self, spec: RobotSpec, forward: ForwardKinematics | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.spec, self.forward, self._clock = spec, forward, clock
        self._lo, self._hi = np.array(spec.workspace_min), np.array(spec.workspace_max)
        self._q_min, self._q_max = np.array(spec.q_min), np.array(spec.q_max)
        self._previous: Command | None = None
        self._arrived = _RateBudget(clock())  # on the times commands arrived
        self._executed = _RateBudget(clock())  # on this clock, when commands are admitted for execution

    @property
    def previous(self) -> Command | None:
        """The last target admitted (or the measured pose it was anchored to)."""
        return self._previous

    def anchor(self, state: RobotState) -> None:
        """Take the arm's measured pose as the previous target, with a full budget (at start, after a reset)."""
        self._previous = Command(np.array(state.ee_pos, dtype=np.float64), np.array(state.ee_euler, dtype=np.float64),
                                 float(state.gripper), np.array(state.q, dtype=np.float64), self._clock())
        self._arrived, self._executed = _RateBudget(self._clock()), _RateBudget(self._clock())

    def check_home(self, home) -> np.ndarray:
        """The home configuration ``[dof]`` (rad) a reset may move to (``None``: ``spec.q_home``), or a refusal."""
        if home is None:
            return np.array(self.spec.q_home)
        q = _vector(home, self.spec.dof, "home", "rad")
        self._check_joints(q, "home")
        if self.forward is not None:
            self._check_workspace(self.forward(q)[0], "home's TCP")
        return q

    def admit(self, command: Command) -> Command:
        """``command`` with float64 fields, stamped now, if it stays in the envelope (then the previous target).

        Call it just before executing the command. ``command.t`` is when the command arrived (s,
        on ``clock``); the rate is held on both that time and now (the returned command's ``t``).

        Raises:
            EnvelopeViolation: the first limit the command breaks, named with its value.
        """
        spec = self.spec
        if self._previous is None:
            raise EnvelopeViolation("no reference pose yet: anchor() the envelope to the arm's state first")
        checked = Command(_vector(command.ee_pos, 3, "ee_pos", "m"), _vector(command.ee_euler, 3, "ee_euler", "rad"),
                          _closure(command.gripper),
                          _vector(command.q, spec.dof, "q", "rad"), command.t)
        self._check_joints(checked.q, "q")
        self._check_workspace(checked.ee_pos, "ee_pos")
        if clamp_gripper(checked.gripper, spec.gripper_min, spec.gripper_max) != checked.gripper:
            raise EnvelopeViolation(f"gripper closure {checked.gripper} is outside [gripper_min, gripper_max] = "
                                    f"[{spec.gripper_min}, {spec.gripper_max}]")
        self.check_reaches(checked, "q does not reach the TCP target")
        fractions = step_fractions(spec, self._previous, checked)
        limit, fraction = max(fractions.items(), key=lambda item: item[1])
        if fraction > 1 + _TOLERANCE:
            cap = {"max_ee_step": f"{spec.max_ee_step} m per axis", "max_ee_speed": f"{spec.max_ee_speed} m/s",
                   "max_rot_step": f"{spec.max_rot_step} rad per Euler angle",
                   "max_rot_speed": f"{spec.max_rot_speed} rad/s", "qd_max": f"{list(spec.qd_max)} rad/s"}[limit]
            raise EnvelopeViolation(f"the step from the previous target is {fraction:.2f} times {limit} ({cap} "
                                    f"at {spec.control_hz} Hz)")
        now = self._clock()
        arrived, executed = self._arrived.at(command.t, spec.dt), self._executed.at(now, spec.dt)
        budget = min(arrived.steps, executed.steps)
        if fraction > budget + _TOLERANCE:
            when = "arrive" if arrived.steps < executed.steps else "would reach the arm"
            raise EnvelopeViolation(f"commands {when} faster than the control rate: this one moves {fraction:.2f} "
                                    f"of a full step and {budget:.2f} is left (one step per {spec.dt * 1e3:.0f} ms "
                                    f"period)")
        self._arrived, self._executed = arrived.spend(fraction), executed.spend(fraction)
        self._previous = dataclasses.replace(checked, t=now)
        return self._previous

    def check_reaches(self, pose: Command | RobotState, what: str) -> None:
        """Refuse (``what``, the distance) a ``pose`` whose joints ``q`` put the TCP away from ``ee_pos``, ``ee_rot``.

        Within :data:`FK_POS_TOL_M` and :data:`FK_ROT_TOL_RAD`; nothing to check without ``forward``.
        """
        if self.forward is None:
            return
        pos, R = self.forward(np.asarray(pose.q, dtype=np.float64))
        error, angle = float(np.linalg.norm(pos - pose.ee_pos)), rotation_angle(R, pose.ee_rot)
        if error > FK_POS_TOL_M or angle > FK_ROT_TOL_RAD:
            raise EnvelopeViolation(f"{what}: {error * 1e3:.1f} mm and {angle:.3f} rad away (at most "
                                    f"{FK_POS_TOL_M * 1e3:.0f} mm and {FK_ROT_TOL_RAD} rad)")

    def _check_joints(self, q: np.ndarray, name: str) -> None:
        margin = self.spec.joint_margin
        if not joints_within_margin(q, self._q_min, self._q_max, margin):
            j = int(np.argmax(np.maximum(self._q_min + margin - q, q - self._q_max + margin)))
            raise EnvelopeViolation(f"{name}: joint {j} at {q[j]:.4f} rad is outside its limits minus joint_margin "
                                    f"[{self._q_min[j] + margin:.4f}, {self._q_max[j] - margin:.4f}]")

    def _check_workspace(self, pos: np.ndarray, name: str) -> None:
        if _changed(clip_to_workspace(pos, self._lo, self._hi), pos):
            raise EnvelopeViolation(f"{name} {np.round(pos, 4).tolist()} m is outside the workspace box "
                                    f"{list(self.spec.workspace_min)} .. {list(self.spec.workspace_max)}")


# ----------------------------------------------------------------------------- the layer


@dataclass(frozen=True)
class SafetyRecord:
    """What the layer did with one policy action.

    Attributes:
        t: ``time.monotonic()`` of the decision (s).
        raw: the action as the policy gave it, float64 ``[7]`` (4-D actions expanded; may be non-finite).
        clipped: the normalised action the sent command amounts to from the observed state ``[7]``.
        sent: the command handed to the driver (``None`` in a dry run).
        events: the rules that changed the action, e.g. ``("translation_clamped", "workspace")``.
    """

    t: float
    raw: np.ndarray
    clipped: np.ndarray
    sent: Command | None
    events: tuple[str, ...]


class SafetyLayer:
    """Filters every action sent to ``robot`` (see the module docstring for the rules).

    Args:
        robot: any :class:`~armworld.envs.real.protocols.Robot`; connected by the caller.
        kinematics: IK used for the joint-limit check.
        speed_factor: in (0, 1]; scales every step, speed and acceleration limit of ``robot.spec``.
        clock: monotonic clock (s), replaceable in tests.
        log_size: number of :class:`SafetyRecord` kept in :attr:`records`.
    """

    def __init__(
        self,
        robot: Robot,
        kinematics: Kinematics,
        speed_factor: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        log_size: int = 100_000,
    ):
        self.robot = robot
        self.kinematics = kinematics
        self.spec: RobotSpec = robot.spec.scaled(speed_factor)
        self._clock = clock
        self._lock = threading.RLock()
        self.records: collections.deque[SafetyRecord] = collections.deque(maxlen=log_size)
        self._fault: str | None = "not reset yet"
        self._last: Command | None = None
        self._vel = np.zeros(3)
        self._lo = np.array(self.spec.workspace_min)
        self._hi = np.array(self.spec.workspace_max)
        self._q_min, self._q_max = np.array(self.spec.q_min), np.array(self.spec.q_max)
        self._qd_max = np.array(self.spec.qd_max)
        self.watchdog = Watchdog(self.spec.watchdog_periods * self.spec.dt, self._on_watchdog, clock)

    # -- lifecycle

    @property
    def fault(self) -> str | None:
        """The latched fault, or ``None`` when commands may be sent."""
        return self._fault

    @property
    def last_command(self) -> Command | None:
        """The last command sent (the target held on violations)."""
        return self._last

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        """Reset the robot (clears its recoverable errors, moves home), then clear the latched fault.

        Raises :class:`SafetyFault` (and keeps it latched) if the driver's ``reset`` raises (the
        arm is then told to stop; the driver's error is the cause), or the arm is not healthy
        afterwards, or it rests outside the workspace box.
        """
        with self._lock:
            self.watchdog.pause()
            try:
                state = self.robot.reset(home, timeout_s)
            except Exception as error:  # nothing is sent until a reset succeeds
                self._latch(f"reset failed: {error!r}", cause=error)
            health = self.robot.health()
            if not health.ok:
                self._fault = f"{health.state.value} after reset: {health.message}"
                raise SafetyFault(self._fault)
            if np.any(state.ee_pos < self._lo - 1e-6) or np.any(state.ee_pos > self._hi + 1e-6):
                self._fault = f"TCP at {np.round(state.ee_pos, 3)} is outside the workspace box"
                raise SafetyFault(self._fault)
            self._last = Command(state.ee_pos.copy(), state.ee_euler.copy(), state.gripper, state.q.copy(), self._clock())
            self._vel = np.zeros(3)
            self._fault = None
            return state

    def adopt(self, state: RobotState) -> None:
        """Start from the arm's current pose without moving it (dry runs, which send nothing).

        Refused while a fault from a previous run is latched: that needs :meth:`reset`.
        """
        with self._lock:
            if self._last is not None and self._fault is not None:
                raise SafetyFault(f"latched fault, reset() first: {self._fault}")
            self._last = Command(state.ee_pos.copy(), state.ee_euler.copy(), state.gripper, state.q.copy(), self._clock())
            self._vel = np.zeros(3)
            self._fault = None

    def pause(self) -> None:
        """Disarm the watchdog (before a deliberate wait, e.g. between episodes)."""
        self.watchdog.pause()

    def close(self) -> None:
        """Stop the watchdog thread and the robot."""
        self.watchdog.close()
        with self._lock:
            self.robot.stop()

    # -- the rules

    def plan(self, action: np.ndarray, state: RobotState) -> SafetyRecord:
        """What :meth:`step` would send for ``action`` from ``state``; sends nothing, changes nothing."""
        with self._lock:
            record, _ = self._plan(action, state)
            return record

    def _plan(self, action: np.ndarray, state: RobotState) -> tuple[SafetyRecord, np.ndarray]:
        if self._last is None:
            raise SafetyFault("reset() the safety layer before sending actions")
        spec, dt, last, events = self.spec, self.spec.dt, self._last, []
        raw = np.asarray(action, dtype=np.float64).reshape(-1)
        raw_record = expand_action(raw) if raw.shape[0] in (4, 7) else raw
        if not is_finite_action(raw):
            events.append("non_finite_hold" if raw.shape[0] in (4, 7) else "bad_shape_hold")
            command = Command(last.ee_pos, last.ee_euler, last.gripper, last.q, self._clock())
            return SafetyRecord(command.t, raw_record, command_as_action(command, state), command, tuple(events)), np.zeros(3)

        dpos, R_delta, gripper = scale_action(raw)
        clamped = clamp_translation(dpos, spec.max_ee_step)
        if _changed(clamped, dpos):
            events.append("translation_clamped")
        R_clamped = clamp_rotation(R_delta, spec.max_rot_step)
        if _changed(R_clamped, R_delta):
            events.append("rotation_clamped")

        pos = state.ee_pos + clamped
        boxed = clip_to_workspace(pos, self._lo, self._hi)
        if _changed(boxed, pos):
            events.append("workspace")
        limited, vel = limit_translation_rate(boxed, last.ee_pos, self._vel, dt, spec.max_ee_speed, spec.max_ee_acc,
                                              spec.max_ee_step)
        if _changed(limited, boxed):
            events.append("rate_limited")
        pos = clip_to_workspace(limited, self._lo, self._hi)
        vel = (pos - last.ee_pos) / dt

        R_target = R_clamped @ last.ee_rot  # composed with the held target orientation, as the sim does
        R_limited = limit_rotation_rate(R_target, last.ee_rot, dt, spec.max_rot_speed)
        if _changed(R_limited, R_target):
            events.append("rotation_rate_limited")

        closure = clamp_gripper(gripper, spec.gripper_min, spec.gripper_max)
        if closure != gripper:
            events.append("gripper_clamped")

        q, converged = self.kinematics.ik(pos, R_limited, last.q)
        if not converged:
            events.append("ik_failed_hold")
        elif not joints_within_margin(q, self._q_min, self._q_max, spec.joint_margin):
            events.append("joint_limit_hold")
        elif not joint_speeds_ok(q, last.q, dt, self._qd_max):
            events.append("joint_speed_hold")
        if events and events[-1].endswith("_hold"):
            command = Command(last.ee_pos, last.ee_euler, closure, last.q, self._clock())
            vel = np.zeros(3)
        else:
            command = Command(pos, euler_xyz_from_matrix(R_limited), closure, q, self._clock())
        record = SafetyRecord(command.t, raw_record, command_as_action(command, state), command, tuple(events))
        return record, vel

    # -- sending

    def step(self, action: np.ndarray, state: RobotState, health: Health | None = None,
             send: Callable[[Command], Command] | None = None) -> SafetyRecord:
        """Filter ``action`` given the observed ``state``, send it, log it and kick the watchdog.

        Args:
            action: the policy's action ``[7]`` or ``[4]``.
            state: the arm's state the action is applied to.
            health: the arm's health read with ``state`` (default: asked now).
            send: delivers the command and returns what was sent (default ``robot.send_action``);
                :class:`~armworld.envs.real.env.RealArmEnv` passes one that reads the arm back in
                the same network exchange.

        Raises:
            SafetyFault: a fault is latched, the robot is not healthy, or the driver failed.
            StaleDataError: ``state`` is older than ``spec.max_obs_age`` (nothing is sent).
        """
        with self._lock:
            if self._fault is not None:
                raise SafetyFault(f"latched fault, reset() first: {self._fault}")
            check_fresh(state.t, self._clock(), self.spec.max_obs_age, "robot state")
            health = self.robot.health() if health is None else health
            if not health.ok:
                self._latch(f"{health.state.value}: {health.message}")
            record, vel = self._plan(action, state)
            self.watchdog.kick()  # now: a network send may also wait for the reading that follows
            try:
                sent = (send or self.robot.send_action)(record.sent)
            except Exception as error:  # any driver failure latches; nothing else is sent
                self._latch(f"driver error: {error!r}", cause=error)
            self._last, self._vel = sent, vel
            self.records.append(record)
            log.debug("safety t=%.3f raw=%s clipped=%s sent=%s events=%s", record.t, record.raw, record.clipped,
                      sent.ee_pos, record.events)
            return record

    def _latch(self, reason: str, cause: BaseException | None = None) -> NoReturn:
        """Latch ``reason``, disarm the watchdog, tell the arm to stop, raise :class:`SafetyFault`."""
        self._fault = reason
        self.watchdog.pause()
        try:
            self.robot.stop()
        except Exception:
            log.exception("stop() after fault failed")
        raise SafetyFault(reason) from cause

    def _on_watchdog(self) -> None:
        with self._lock:
            log.warning("watchdog: no command for %.0f ms, stopping", self.watchdog.timeout_s * 1e3)
            self.robot.stop()
            self._vel = np.zeros(3)
