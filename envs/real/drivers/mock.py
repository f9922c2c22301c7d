"""``mock``: an in-process kinematic arm with fault injection, for tests and dry runs.

The TCP jumps a fraction ``tracking`` of the way to each commanded target; joints take
the commanded IK solution. :class:`MockFaults` injects latency, dropped (stale)
observations, driver errors and protective stops; :attr:`MockRobot.calls` records every
call made, in order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import SplitResult

import numpy as np

from armworld.envs.conventions import euler_xyz_from_matrix
from armworld.envs.real.protocols import (
    Command,
    DriverError,
    ForwardKinematics,
    Health,
    HealthState,
    RobotSpec,
    RobotState,
)

@dataclass
class MockFaults:
    """Faults to inject; change the fields at any time.

    Attributes:
        latency_s: delay added to every observation and command (s).
        stale_every: every n-th observation repeats the previous one with its old timestamp (0: never).
        error_at: the n-th ``send_action`` (1-based) raises :class:`DriverError` (``None``: never).
        protective_stop_at: from the n-th ``send_action`` on, ``health()`` reports a protective stop.
    """

    latency_s: float = 0.0
    stale_every: int = 0
    error_at: int | None = None
    protective_stop_at: int | None = None


class MockRobot:
    """A :class:`~armworld.envs.real.protocols.Robot` with no hardware.

    Args:
        spec: limits (default: the bundled ``panda`` spec).
        forward: forward kinematics ``q -> (pos [3] m, R [3, 3])`` used at reset; without it
            the TCP starts at ``home_pos`` pointing down.
        faults: faults to inject.
        tracking: fraction in (0, 1] of each commanded motion the TCP makes.
        home_pos: TCP position (m) at reset when no ``forward`` is given.
    """

    def __init__(
        self,
        spec: RobotSpec | None = None,
        forward: ForwardKinematics | None = None,
        faults: MockFaults | None = None,
        tracking: float = 1.0,
        home_pos: tuple[float, float, float] = (0.45, 0.0, 0.33),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.spec = spec or RobotSpec.load("panda")
        self.forward = forward
        self.faults = faults or MockFaults()
        self.tracking = tracking
        self.home_pos = np.array(home_pos, dtype=np.float64)
        self.clock = clock
        self.calls: list[str] = []
        self.sent: list[Command] = []
        self.connected = False
        self._health = Health()
        self._observations = 0
        self._state: RobotState | None = None
        self._previous: RobotState | None = None

    def connect(self) -> None:
        self.calls.append("connect")
        self.connected = True
        if self._state is None:  # a powered arm has a pose before any reset: home
            self._state = self._previous = self._home_state(self.spec.q_home)

    def disconnect(self) -> None:
        self.calls.append("disconnect")
        self.connected = False

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        self.calls.append("reset")
        self._require_connected()
        self._health = Health()
        self._state = self._previous = self._home_state(self.spec.q_home if home is None else home)
        return self._state

    def _home_state(self, home) -> RobotState:
        q = np.array(home, dtype=np.float64)
        if self.forward is not None:
            pos, R = self.forward(q)
            euler = euler_xyz_from_matrix(R)
        else:
            pos, euler = self.home_pos.copy(), np.zeros(3)
        return RobotState(q, np.zeros_like(q), pos, euler, 0.0, self.clock())

    def get_observation(self) -> RobotState:
        self.calls.append("get_observation")
        self._require_connected()
        self._delay()
        self._observations += 1
        if self.faults.stale_every and self._observations % self.faults.stale_every == 0:
            return self._previous
        self._previous = self._stamped()
        return self._previous

    def send_action(self, command: Command) -> Command:
        self.calls.append("send_action")
        self._require_connected()
        self._delay()
        n = len(self.sent) + 1
        if self.faults.error_at == n:
            raise DriverError(f"injected driver error at command {n}")
        if self.faults.protective_stop_at is not None and n >= self.faults.protective_stop_at:
            self._health = Health(HealthState.PROTECTIVE_STOP, "injected protective stop")
        self.sent.append(command)
        s, a = self._state, self.tracking
        self._state = RobotState(
            q=command.q.copy(),
            qd=(command.q - s.q) * self.spec.control_hz,
            ee_pos=s.ee_pos + a * (command.ee_pos - s.ee_pos),
            ee_euler=command.ee_euler.copy() if a == 1.0 else s.ee_euler + a * (command.ee_euler - s.ee_euler),
            gripper=float(command.gripper),
            t=self.clock(),
        )
        return command

    def stop(self) -> None:
        self.calls.append("stop")

    def health(self) -> Health:
        self.calls.append("health")
        return self._health

    def _delay(self) -> None:
        if self.faults.latency_s > 0:
            time.sleep(self.faults.latency_s)

    def _stamped(self) -> RobotState:
        s = self._state
        return RobotState(s.q, s.qd, s.ee_pos, s.ee_euler, s.gripper, self.clock())

    def _require_connected(self) -> None:
        if not self.connected:
            raise DriverError("mock robot: connect() first")



def from_url(url: SplitResult) -> MockRobot:
    """``mock://`` -> a Panda-limited mock whose reset pose comes from the Panda model."""
    from armworld.envs.panda import PANDA
    from armworld.envs.real.kinematics import RobotIK

    return MockRobot(forward=RobotIK(PANDA).forward)
