"""The bridge's wire protocol: a robot-side server and the client drivers speak it.

ZeroMQ REQ/REP with msgpack messages ``{"op": name, "args": {...}}`` answered by
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": kind, "message": text}``.
Numpy arrays travel as ``{"__nd__": [dtype, shape, bytes]}``. Timestamps travel as
ages (s), and the client re-stamps them on its own monotonic clock (minus half the
round trip), so the two machines need no clock synchronisation.

The server wraps any :class:`~armworld.envs.real.protocols.Robot` plus cameras
(``armworld robot-server --sim`` wraps :class:`~armworld.envs.real.drivers.sim.MujocoRobot`),
runs its own watchdog (the arm stops when commands stop arriving, e.g. on network
loss) and can inject latency for tests. It binds 127.0.0.1 unless told otherwise.
Its ``info`` op names the sim task it runs (a robot's optional ``task`` attribute), or
``None`` for a real arm.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Sequence

import msgpack
import numpy as np
import zmq

from armworld.envs.real.protocols import (
    Camera,
    Command,
    DriverError,
    Frame,
    Health,
    HealthState,
    Reading,
    Robot,
    RobotSpec,
    RobotState,
    StaleDataError,
    check_fresh,
)
from armworld.envs.real.safety import Watchdog

log = logging.getLogger(__name__)
POLL_MS = 50


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {"__nd__": [array.dtype.str, list(array.shape), array.tobytes()]}
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot send {type(value).__name__}")


def _decode(value: dict) -> Any:
    if "__nd__" in value:
        dtype, shape, data = value["__nd__"]
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape).copy()
    return value


def pack(message: Any) -> bytes:
    """msgpack bytes of a message that may hold numpy arrays."""
    return msgpack.packb(message, default=_encode, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """The message :func:`pack` encoded."""
    return msgpack.unpackb(data, object_hook=_decode, raw=False)


def _state_to_wire(state: RobotState, now: float) -> dict:
    fields = dataclasses.asdict(state)
    fields["age"] = now - fields.pop("t")
    return fields


class RobotServer:
    """Serves ``robot`` and ``cameras`` at ``address`` (``tcp://127.0.0.1:0`` picks a free port).

    Args:
        robot: the arm to serve (connected here).
        cameras: cameras by name (connected here, disconnected by the serving thread).
        address: ZeroMQ bind address.
        latency_s: delay added before every reply (s), to test latency budgets.
        watchdog_s: stop the arm when no command arrives for this long once commands flowed
            (default: the spec's watchdog time).
    """

    def __init__(self, robot: Robot, cameras: dict[str, Camera] | None = None,
                 address: str = "tcp://127.0.0.1:0", latency_s: float = 0.0, watchdog_s: float | None = None):
        self.robot = robot
        self.cameras = dict(cameras or {})
        self.latency_s = latency_s
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        if address.endswith(":0"):
            port = self._socket.bind_to_random_port(address.rsplit(":", 1)[0])
            address = f"{address.rsplit(':', 1)[0]}:{port}"
        else:
            self._socket.bind(address)
        self.address = address
        timeout = watchdog_s if watchdog_s is not None else robot.spec.watchdog_periods * robot.spec.dt
        self.watchdog = Watchdog(timeout, robot.stop)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.robot.connect()
        for camera in self.cameras.values():
            camera.connect()

    def start(self) -> RobotServer:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="armworld-robot-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Answer requests until :meth:`close` (or Ctrl-C in the calling thread)."""
        log.info("robot server on %s", self.address)
        try:
            while not self._stop.is_set():
                if not self._socket.poll(POLL_MS):
                    continue
                reply = self._handle(self._socket.recv())
                if self.latency_s:
                    time.sleep(self.latency_s)
                self._socket.send(reply)
        finally:
            self.watchdog.close()
            self.robot.stop()
            for camera in self.cameras.values():
                camera.disconnect()
            self._socket.close()

    def close(self) -> None:
        """Stop serving, stop the arm (the robot is left connected to its owner)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def _handle(self, data: bytes) -> bytes:
        """The packed reply to one packed request.

        Every failure goes back to the client, a malformed request included; the server keeps serving.
        """
        op = None
        try:
            request = unpack(data)
            if not (isinstance(request, dict) and isinstance(request.get("op"), str)
                    and isinstance(request.get("args") or {}, dict)):
                raise DriverError(f"malformed request {request!r:.100}: send {{'op': str, 'args': dict}}")
            op = request["op"]
            return pack({"ok": True, "result": self._dispatch(op, request.get("args") or {})})
        except StaleDataError as error:
            return pack({"ok": False, "error": "stale", "message": str(error)})
        except Exception as error:
            log.warning("robot server: %s failed: %r", op or "request", error)
            return pack({"ok": False, "error": type(error).__name__, "message": str(error)})

    def _dispatch(self, op: str, args: dict) -> Any:
        robot = self.robot
        if op == "spec":
            return dataclasses.asdict(robot.spec)
        if op == "info":
            return {"task": getattr(robot, "task", None)}
        if op == "health":
            health = robot.health()
            return {"state": health.state.value, "message": health.message}
        if op == "get_observation":
            return _state_to_wire(robot.get_observation(), time.monotonic())
        if op == "send_action":
            command = robot.send_action(Command(**{**args, "t": time.monotonic()}))
            self.watchdog.kick()
            fields = dataclasses.asdict(command)
            del fields["t"]
            return fields
        if op == "reset":
            self.watchdog.pause()
            return _state_to_wire(robot.reset(args.get("home"), args.get("timeout_s", 30.0)), time.monotonic())
        if op == "stop":
            self.watchdog.pause()
            robot.stop()
            return None
        if op == "step":
            return self._step(args)
        if op == "frame":
            if args["camera"] not in self.cameras:
                raise DriverError(f"no camera {args['camera']!r}; this server has {sorted(self.cameras)}")
            frame = self.cameras[args["camera"]].read_latest(float("inf"))
            return {"image": frame.image, "age": time.monotonic() - frame.t}
        if op == "task":
            if not hasattr(robot, "task_observation"):
                raise DriverError("this robot has no privileged task observation")
            return robot.task_observation()
        if op in ("connect", "disconnect"):
            return None  # the server owns the robot's lifetime
        raise DriverError(f"unknown op {op!r}")

    def _step(self, args: dict) -> dict:
        """One control step in one exchange: execute the command (if any), wait ``hold_s``, read everything back."""
        robot, sent = self.robot, None
        for name in args["cameras"]:
            if name not in self.cameras:
                raise DriverError(f"no camera {name!r}; this server has {sorted(self.cameras)}")
        if args["command"] is not None:
            sent = robot.send_action(Command(**args["command"], t=time.monotonic()))
            self.watchdog.kick()
        if args["hold_s"] > 0:
            time.sleep(args["hold_s"])
        state, health = robot.get_observation(), robot.health()
        frames = {name: self.cameras[name].read_latest(float("inf")) for name in args["cameras"]}
        task = robot.task_observation() if args["task"] else None
        now = time.monotonic()
        if sent is not None:
            sent = {**dataclasses.asdict(sent), "age": now - sent.t}
            del sent["t"]
        return {
            "sent": sent,
            "state": _state_to_wire(state, now),
            "health": {"state": health.state.value, "message": health.message},
            "frames": {name: {"image": f.image, "age": now - f.t} for name, f in frames.items()},
            "task": task,
        }


class RobotClient:
    """A :class:`~armworld.envs.real.protocols.Robot` talking to a :class:`RobotServer` (thread-safe).

    Args:
        address: the server's ZeroMQ address, e.g. ``tcp://127.0.0.1:5555``.
        timeout_s: reply timeout per request (s); a timeout raises :class:`DriverError`.

    Attributes:
        spec: the served robot's limits, known once connected.
        task: the sim task the server runs (``reach``, ``push``, ...; its :meth:`task_observation`),
            ``None`` for a served real arm; known once connected.
    """

    def __init__(self, address: str, timeout_s: float = 2.0):
        self.address, self.timeout_s = address, timeout_s
        self.spec: RobotSpec | None = None
        self.task: str | None = None
        self._socket: zmq.Socket | None = None
        self._lock = threading.Lock()
        self.round_trips: list[float] = []

    def connect(self) -> None:
        with self._lock:
            if self._socket is None:
                self._open()
        if self.spec is None:
            spec = RobotSpec(**self._call("spec"))
            self.task = self._call("info")["task"]
            self.spec = spec

    def disconnect(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        args = {"home": None if home is None else np.asarray(home, dtype=np.float64), "timeout_s": timeout_s}
        return self._state(*self._timed("reset", args, timeout_s=timeout_s + self.timeout_s))

    def get_observation(self) -> RobotState:
        return self._state(*self._timed("get_observation"))

    def send_action(self, command: Command) -> Command:
        fields = dataclasses.asdict(command)
        t = fields.pop("t")
        return Command(**self._call("send_action", fields), t=t)

    def stop(self) -> None:
        self._call("stop")

    def health(self) -> Health:
        result = self._call("health")
        return Health(HealthState(result["state"]), result["message"])

    def exchange(self, command: Command | None, hold_s: float = 0.0, cameras: Sequence[str] = (),
                 task: bool = False) -> tuple[Command | None, Reading]:
        """A whole control step in one round trip.

        The server executes ``command`` (if any), waits ``hold_s`` (s) so that the reading
        shows the arm moving toward it, then reads the state, health, frames of the served
        ``cameras`` and (``task``) the task observation. Returns the command as executed,
        stamped when the arm got it, and the reading, both on this machine's clock.
        """
        fields = None
        if command is not None:
            fields = dataclasses.asdict(command)
            del fields["t"]
        args = {"command": fields, "hold_s": float(hold_s), "cameras": list(cameras), "task": task}
        result, received, rtt = self._timed("step", args, timeout_s=self.timeout_s + hold_s)
        stamp = lambda age: received - age - (rtt - hold_s) / 2  # noqa: E731  (the hold is not transit)
        sent = None
        if result["sent"] is not None:
            age = result["sent"].pop("age")
            sent = Command(**result["sent"], t=stamp(age))
        state = result["state"]
        age = state.pop("age")
        reading = Reading(
            state=RobotState(**state, t=stamp(age)),
            health=Health(HealthState(result["health"]["state"]), result["health"]["message"]),
            frames={name: Frame(f["image"], stamp(f["age"])) for name, f in result["frames"].items()},
            task=result["task"],
        )
        return sent, reading

    def task_observation(self) -> dict[str, np.ndarray]:
        """The server's privileged task observation (sim servers only)."""
        return self._call("task")

    def frame(self, camera: str) -> Frame:
        """The latest frame of a server camera, re-stamped on this clock."""
        result, received, rtt = self._timed("frame", {"camera": camera})
        return Frame(result["image"], received - result["age"] - rtt / 2)

    def _state(self, result: dict, received: float, rtt: float) -> RobotState:
        age = result.pop("age")
        return RobotState(**result, t=received - age - rtt / 2)

    def _timed(self, op: str, args: dict | None = None, timeout_s: float | None = None):
        sent = time.monotonic()
        result = self._call(op, args, timeout_s)
        received = time.monotonic()
        self.round_trips.append(received - sent)
        return result, received, received - sent

    def _call(self, op: str, args: dict | None = None, timeout_s: float | None = None) -> Any:
        with self._lock:
            if self._socket is None:
                raise DriverError(f"{self.address}: connect() first")
            self._socket.send(pack({"op": op, "args": args or {}}))
            if not self._socket.poll(int(1000 * (timeout_s or self.timeout_s))):
                self._socket.close()  # a REQ socket without its reply is stuck: start over
                self._open()
                raise DriverError(f"{self.address}: no reply to {op} within {timeout_s or self.timeout_s} s")
            reply = unpack(self._socket.recv())
        if not reply["ok"]:
            error = StaleDataError if reply["error"] == "stale" else DriverError
            raise error(f"{self.address} {op}: {reply['error']}: {reply['message']}")
        return reply["result"]

    def _open(self) -> None:
        self._socket = zmq.Context.instance().socket(zmq.REQ)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(self.address)


class RemoteCamera:
    """A :class:`~armworld.envs.real.protocols.Camera` served by a :class:`RobotServer`."""

    def __init__(self, client: RobotClient, name: str):
        self.client, self.name = client, name

    def connect(self) -> None:
        self.client.connect()

    def disconnect(self) -> None:
        """The client's connection is shared with the robot; nothing to close here."""

    def read_latest(self, max_age_s: float) -> Frame:
        frame = self.client.frame(self.name)
        check_fresh(frame.t, time.monotonic(), max_age_s, f"camera {self.name}")
        return frame
