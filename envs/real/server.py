"""The bridge's wire protocol: a robot-side server and the client drivers speak it.

ZeroMQ (a ROUTER socket serving REQ clients) with msgpack messages
``{"op": name, "args": {...}, "token": secret}`` answered by ``{"ok": true, "result": ...}``
or ``{"ok": false, "error": kind, "message": text}``. Numpy arrays travel as
``{"__nd__": [dtype, shape, bytes]}``. Timestamps travel as ages (s), and the client
re-stamps them on its own monotonic clock (minus half the round trip), so the two machines
need no clock synchronisation.

The server wraps any :class:`~armworld.envs.real.protocols.Robot` plus cameras
(``armworld robot-server --sim`` wraps :class:`~armworld.envs.real.drivers.sim.MujocoRobot`)
and guards it, whatever the client:

- every command (``send_action``, ``step``) and every reset target passes the arm-side
  :class:`~armworld.envs.real.safety.Envelope` of the robot's own spec; a request outside it
  is refused (error ``refused``, the limit named) and nothing moves;
- with a token, every request must carry it (error ``unauthorized`` otherwise); binding
  anything but loopback without a token is refused;
- one thread makes every call to the robot and its cameras, in arrival order; a client has
  at most one request in flight, a request that waited more than ``max_wait_s`` for the arm is
  refused (error ``busy``), ``step`` holds at most one control period and releases the arm
  while it waits (a read-back that then waits too long is answered ``unread``: its command
  ran, never ``busy``), and ``stop`` never waits for the arm;
- its own watchdog stops the arm when commands stop arriving (e.g. on network loss).

It binds 127.0.0.1 unless told otherwise, can inject latency for tests, and its ``info`` op
names the sim task it runs (a robot's optional ``task`` attribute), or ``None`` for a real arm.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import heapq
import hmac
import ipaddress
import itertools
import logging
import math
import os
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import msgpack
import numpy as np
import zmq

from armworld.envs.real.protocols import (
    Camera,
    Command,
    DriverError,
    EnvelopeViolation,
    ForwardKinematics,
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
from armworld.envs.real.safety import Envelope, Watchdog

log = logging.getLogger(__name__)
POLL_MS = 50
MAX_WAIT_S = 0.5  # longest a request waits for the arm before it is refused as busy (s)
MAX_REQUEST_BYTES = 1 << 20  # a peer sending a larger message is disconnected
MAX_RESET_TIMEOUT_S = 120.0  # longest homing a reset may ask for (s)
TOKEN_ENV = "ARMWORLD_ROBOT_TOKEN"  # the token itself, for clients given no token
MIN_TOKEN_CHARS = 16
COMMAND_FIELDS = ("ee_pos", "ee_euler", "gripper", "q")
_ERROR_KINDS = {"stale": StaleDataError, "refused": EnvelopeViolation}


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


def _error(kind: str, message: str) -> bytes:
    return pack({"ok": False, "error": kind, "message": message})


# ----------------------------------------------------------------------------- addresses and tokens


def parse_tcp_address(address: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (host, port); port 0 asks for a free port. ``ValueError`` otherwise."""
    scheme, _, rest = address.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not host or not port.isdigit():
        raise ValueError(f"bad server address {address!r}: give tcp://HOST:PORT")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range: give 1-65535 (or 0 for a free port)")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on this machine's loopback interface only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name, an interface or '*': reachable from elsewhere
        return False


def read_token(path: str | Path) -> str:
    """The shared secret in ``path``, a file only its owner may read (mode 0600).

    Raises:
        ValueError: the file is missing, unreadable, readable by other users, or holds no token.
    """
    path = Path(path).expanduser()
    try:
        mode, token = path.stat().st_mode, path.read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not a text file"
        raise ValueError(f"cannot read token file {path}: {reason} (create one with armworld robot-server "
                         f"--token-file {path} --new-token)") from None
    if mode & 0o077:
        raise ValueError(f"token file {path} can be read by other users (mode {mode & 0o777:o}): chmod 600 {path}")
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"token file {path} holds no token of at least {MIN_TOKEN_CHARS} characters: "
                         f"write a new one with --new-token")
    return token


def write_token(path: str | Path) -> str:
    """Write a new random token (64 hex characters) to ``path``, mode 0600; return it. Never overwrites."""
    path = Path(path).expanduser()
    token = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ValueError(f"token file {path} exists: drop --new-token to use it, or remove it first") from None
    except OSError as error:
        raise ValueError(f"cannot write token file {path}: {error.strerror}") from None
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


# ----------------------------------------------------------------------------- request arguments


def _number(args: dict, key: str, lo: float, hi: float, unit: str, default: float | None = None) -> float:
    """``args[key]`` as a finite float in ``[lo, hi]``, or an :class:`EnvelopeViolation` naming it."""
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise EnvelopeViolation(f"{key} must be a number in [{lo}, {hi}] ({unit}), got {value!r:.100}")
    return float(value)


def _command(fields: Any, t: float) -> Command:
    """A :class:`Command` from its wire fields (checked by the envelope), stamped ``t`` (when it arrived)."""
    if not isinstance(fields, dict) or sorted(fields) != sorted(COMMAND_FIELDS):
        got = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
        raise EnvelopeViolation(f"a command needs exactly {list(COMMAND_FIELDS)}, got {got}")
    return Command(**fields, t=t)


def _names(names: Any, served: dict[str, Camera]) -> list[str]:
    """``names``, a list of cameras the server serves, or a :class:`DriverError` naming what it has."""
    if not isinstance(names, list):
        raise DriverError(f"cameras must be a list of names, got {names!r:.50}")
    for name in names:
        if not isinstance(name, str) or name not in served:
            raise DriverError(f"no camera {name!r:.50}; this server has {sorted(served)}")
    return names


@dataclass(frozen=True)
class _Later:
    """The rest of a request, to run on the arm's thread after ``delay_s`` (s) without holding it meanwhile.

    ``executed`` is the command the request already executed, if any: the rest then only reads.
    """

    delay_s: float
    then: Callable[[], Any]
    executed: Command | None = None


@dataclass(frozen=True, eq=False)
class _Job:
    """A request, or the rest of one, waiting for the arm thread since ``queued`` (s, monotonic)."""

    route: list[bytes]
    op: str
    call: Callable[[], Any]
    queued: float
    executed: Command | None = None  # what the request already executed: its rest is never answered "retry"


class RobotServer:
    """Serves ``robot`` and ``cameras`` at ``address`` (``tcp://127.0.0.1:0`` picks a free port).

    Args:
        robot: the arm to serve (connected here); its ``spec`` is the envelope every request is held to.
        cameras: cameras by name (connected here, disconnected by the server's arm thread).
        address: ZeroMQ bind address ``tcp://HOST:PORT``; a host other than loopback needs ``token``.
        latency_s: delay added before every reply (s), to test latency budgets.
        watchdog_s: stop the arm when no command arrives for this long once commands flowed
            (default: the spec's watchdog time).
        token: shared secret every request must carry (``None``: none required, loopback only).
        max_wait_s: longest a request waits for the arm before it is refused as busy (s).
        forward: the arm's forward kinematics, to check that commanded joints reach the
            commanded TCP (default: the robot's ``forward`` attribute, if any; see
            :func:`~armworld.envs.real.kinematics.envelope_forward`).

    Raises:
        ValueError: a bad address, port or setting, a non-loopback address without a token, or
            an arm whose measured pose disagrees with ``forward`` (wrong model or tool frame).
    """

    def __init__(self, robot: Robot, cameras: dict[str, Camera] | None = None,
                 address: str = "tcp://127.0.0.1:0", latency_s: float = 0.0, watchdog_s: float | None = None,
                 token: str | None = None, max_wait_s: float = MAX_WAIT_S, forward: ForwardKinematics | None = None):
        host, port = parse_tcp_address(address)
        if token is None and not is_loopback(host):
            raise ValueError(f"{address} listens beyond this machine: it needs a token (--token-file PATH, "
                             "--new-token to create one)")
        if token is not None and len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"the token needs at least {MIN_TOKEN_CHARS} characters")
        if not (math.isfinite(latency_s) and latency_s >= 0):
            raise ValueError(f"latency_s must be a finite number >= 0 (s), got {latency_s}")
        if not (math.isfinite(max_wait_s) and max_wait_s > 0):
            raise ValueError(f"max_wait_s must be a positive number (s), got {max_wait_s}")
        self.robot = robot
        self.cameras = dict(cameras or {})
        self.latency_s, self.max_wait_s = latency_s, max_wait_s
        self._token = None if token is None else token.encode()
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        if host.startswith("["):
            self._socket.setsockopt(zmq.IPV6, 1)
        if port == 0:
            port = self._socket.bind_to_random_port(f"tcp://{host}")
        else:
            self._socket.bind(f"tcp://{host}:{port}")
        self.address = f"tcp://{host}:{port}"
        timeout = watchdog_s if watchdog_s is not None else robot.spec.watchdog_periods * robot.spec.dt
        self.watchdog = Watchdog(timeout, robot.stop)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending: collections.deque[_Job] = collections.deque()  # waiting for the arm
        self._busy_with: str | None = None  # the op the arm thread is running
        self._jobs: queue.Queue = queue.Queue()  # one (route, op, call) at a time for the arm thread; None ends it
        self._done: queue.Queue = queue.Queue()  # (route, op, reply bytes or _Later) back from it
        self._timers: list = []  # heap of (due, seq, kind, payload): replies to send, jobs to queue
        self._seq = itertools.count()
        self._in_flight: set[bytes] = set()  # clients with a request being served
        self._wake_address = f"inproc://armworld-robot-server-{id(self)}"
        self._wake = self._context.socket(zmq.PULL)  # the arm thread's "done" signals
        self._wake.setsockopt(zmq.LINGER, 0)
        self._wake.bind(self._wake_address)
        self.robot.connect()
        for camera in self.cameras.values():
            camera.connect()
        self.envelope = Envelope(robot.spec, forward or getattr(robot, "forward", None))
        state = robot.get_observation()
        try:
            self.envelope.check_reaches(state, "the arm's measured joints do not put the TCP where it reports it")
        except EnvelopeViolation as error:  # every command would be refused: the model is not this arm's
            raise ValueError(f"{error}: the forward kinematics is not this arm's (a Franka's end-effector frame "
                             "must be the hand's TCP, 0.1034 m beyond the flange, as in the bundled Panda model)"
                             ) from None
        self.envelope.anchor(state)

    def start(self) -> RobotServer:
        """Serve in a background thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="armworld-robot-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Answer requests until :meth:`close` (or Ctrl-C in the calling thread)."""
        log.info("robot server on %s", self.address)
        arm = threading.Thread(target=self._arm_loop, name="armworld-robot-arm", daemon=True)
        arm.start()
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                deadlines = [self._timers[0][0]] if self._timers else []
                deadlines += [job.queued + self.max_wait_s for job in self._pending]
                wait_ms = min([POLL_MS, *((due - time.monotonic()) * 1e3 for due in deadlines)])
                ready = dict(poller.poll(max(0, math.ceil(wait_ms))))
                if self._socket in ready:
                    self._receive()
                while self._wake.poll(0):
                    self._wake.recv()
                self._collect()
                self._fire_timers()
                self._schedule()
        finally:
            self._jobs.put(None)
            arm.join(timeout=2.0)
            self.watchdog.close()
            self.robot.stop()
            self._socket.close()
            self._wake.close()

    def close(self) -> None:
        """Stop serving, stop the arm (the robot is left connected to its owner)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)

    # -- the socket's thread

    def _receive(self) -> None:
        """Take every request waiting on the socket: answer it, or queue it for the arm thread."""
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            route, client = frames[:-1], frames[0]
            if client in self._in_flight:
                self._reply(route, _error("busy", "one request at a time per client: wait for the reply"),
                            release=False)
                continue
            self._in_flight.add(client)
            try:
                op, args = self._parse(frames[-1])
            except PermissionError as error:
                log.warning("robot server: refused a request: %s", error)
                self._reply(route, _error("unauthorized", str(error)))
                continue
            except Exception as error:
                self._reply(route, _error(type(error).__name__, str(error)))
                continue
            if op in ("spec", "info", "stop", "connect", "disconnect"):  # never wait for the arm
                self._reply(route, self._run(op, functools.partial(self._immediate, op)))
            else:
                received = time.monotonic()
                call = functools.partial(self._dispatch, op, args, received)
                self._pending.append(_Job(route, op, call, received))

    def _parse(self, data: bytes) -> tuple[str, dict]:
        """The op and arguments of a packed request, once its token is checked."""
        request = unpack(data)
        if not (isinstance(request, dict) and isinstance(request.get("op"), str)
                and isinstance(request.get("args") or {}, dict)):
            raise DriverError(f"malformed request {request!r:.100}: send {{'op': str, 'args': dict, 'token': str}}")
        if self._token is not None:
            token = request.get("token")
            if not isinstance(token, str):
                raise PermissionError(f"this server needs its token: give the client the server's token file "
                                      f"(sim://HOST:PORT?token_file=PATH) or set {TOKEN_ENV}")
            if not hmac.compare_digest(token.encode(), self._token):
                raise PermissionError("wrong token: give the client the token file the server was started with")
        return request["op"], request.get("args") or {}

    def _immediate(self, op: str) -> Any:
        """The ops answered without the arm thread: the spec, the task, and ``stop``."""
        if op == "spec":
            return dataclasses.asdict(self.robot.spec)
        if op == "info":
            return {"task": getattr(self.robot, "task", None)}
        if op == "stop":
            self.watchdog.pause()
            self.robot.stop()
        return None  # connect, disconnect: the server owns the robot's lifetime

    def _reply(self, route: list[bytes], data: bytes, release: bool = True) -> None:
        """Send ``data`` to ``route`` after the injected latency; ``release`` ends the client's request."""
        heapq.heappush(self._timers, (time.monotonic() + self.latency_s, next(self._seq), "reply",
                                      (route, data, release)))

    def _collect(self) -> None:
        """Replies and continuations back from the arm thread."""
        while True:
            try:
                route, op, outcome = self._done.get_nowait()
            except queue.Empty:
                return
            self._busy_with = None
            if isinstance(outcome, _Later):
                heapq.heappush(self._timers, (time.monotonic() + outcome.delay_s, next(self._seq), "job",
                                              (route, op, outcome)))
            else:
                self._reply(route, outcome)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, payload = heapq.heappop(self._timers)
            if kind == "job":  # the rest of a request under way goes first
                route, op, later = payload
                self._pending.appendleft(_Job(route, op, later.then, now, later.executed))
                continue
            route, data, release = payload
            if release:
                self._in_flight.discard(route[0])
            self._socket.send_multipart([*route, data])

    def _schedule(self) -> None:
        """Answer the requests that waited too long for the arm; hand the next one to the arm thread when it is free.

        A request that waited too long before reaching the arm is refused as ``busy`` (retry); the
        read of a step whose command was executed is answered ``unread`` (the command ran: resending
        it would move the arm again).
        """
        now = time.monotonic()
        for job in [job for job in self._pending if now - job.queued > self.max_wait_s]:
            self._pending.remove(job)
            waited = (f"waited {now - job.queued:.2f} s for the arm while it served "
                      f"{self._busy_with or 'other requests'} (limit {self.max_wait_s} s)")
            if job.executed is None:
                self._reply(job.route, _error("busy", f"{job.op} {waited}: retry"))
            else:
                self._reply(job.route, _error("unread", f"{job.op}: the command was executed, but reading the arm "
                                                        f"back after the hold {waited}: read its state, do not send "
                                                        "the command again"))
        if self._busy_with is None and self._pending:
            job = self._pending.popleft()
            self._busy_with = job.op
            self._jobs.put((job.route, job.op, job.call))

    def _run(self, op: str, call: Callable[[], Any]) -> bytes | _Later:
        """The packed reply to ``call()`` (or its continuation); every failure goes back to the client."""
        try:
            result = call()
            return result if isinstance(result, _Later) else pack({"ok": True, "result": result})
        except StaleDataError as error:
            return _error("stale", str(error))
        except EnvelopeViolation as error:
            log.warning("robot server: refused %s: %s", op, error)
            return _error("refused", str(error))
        except Exception as error:
            log.warning("robot server: %s failed: %r", op, error)
            return _error(type(error).__name__, str(error))

    # -- the arm thread: every call to the robot (but stop) and the cameras

    def _arm_loop(self) -> None:
        wake = self._context.socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.connect(self._wake_address)
        try:
            while (job := self._jobs.get()) is not None:
                route, op, call = job
                self._done.put((route, op, self._run(op, call)))
                wake.send(b"", zmq.NOBLOCK)
        finally:
            wake.close()
            for camera in self.cameras.values():
                camera.disconnect()

    def _dispatch(self, op: str, args: dict, received: float) -> Any:
        """The result of request ``op`` that arrived at ``received`` (s, monotonic; a command's arrival time)."""
        robot = self.robot
        if op == "health":
            health = robot.health()
            return {"state": health.state.value, "message": health.message}
        if op == "get_observation":
            return _state_to_wire(robot.get_observation(), time.monotonic())
        if op == "send_action":
            fields = dataclasses.asdict(self._execute(_command(args, received)))
            del fields["t"]
            return fields
        if op == "reset":
            return self._reset(args)
        if op == "step":
            return self._step(args, received)
        if op == "frame":
            (name,) = _names([args.get("camera")], self.cameras)
            frame = self.cameras[name].read_latest(float("inf"))
            return {"image": frame.image, "age": time.monotonic() - frame.t}
        if op == "task":
            if not hasattr(robot, "task_observation"):
                raise DriverError("this robot has no privileged task observation")
            return robot.task_observation()
        raise DriverError(f"unknown op {op!r:.50}")

    def _execute(self, command: Command) -> Command:
        """Send ``command`` if the envelope admits it (stamped then); a driver failure re-anchors the envelope."""
        admitted = self.envelope.admit(command)
        try:
            sent = self.robot.send_action(admitted)
        except Exception:
            self.envelope.anchor(self.robot.get_observation())  # the arm may not have the target: start from it
            raise
        self.watchdog.kick()
        return sent

    def _reset(self, args: dict) -> dict:
        home = args.get("home")
        checked = self.envelope.check_home(home)
        timeout_s = _number(args, "timeout_s", 0.0, MAX_RESET_TIMEOUT_S, "s", default=30.0)
        self.watchdog.pause()
        try:
            state = self.robot.reset(None if home is None else checked, timeout_s)
        except Exception:
            self.envelope.anchor(self.robot.get_observation())
            raise
        self.envelope.anchor(state)
        return _state_to_wire(state, time.monotonic())

    def _step(self, args: dict, received: float) -> dict | _Later:
        """One control step in one exchange: execute the command (if any), wait ``hold_s``, read everything back.

        The arm is free for other requests during the hold, which is at most one control period.
        """
        names = _names(args.get("cameras", []), self.cameras)
        hold_s = _number(args, "hold_s", 0.0, self.robot.spec.dt, "s", default=0.0)
        task = bool(args.get("task", False))
        if task and not hasattr(self.robot, "task_observation"):
            raise DriverError("this robot has no privileged task observation")
        sent = None if args.get("command") is None else self._execute(_command(args["command"], received))
        read = lambda: self._read(sent, names, task)  # noqa: E731
        return _Later(hold_s, read, sent) if hold_s > 0 else read()

    def _read(self, sent: Command | None, names: list[str], task: bool) -> dict:
        robot = self.robot
        state, health = robot.get_observation(), robot.health()
        frames = {name: self.cameras[name].read_latest(float("inf")) for name in names}
        observation = robot.task_observation() if task else None
        now = time.monotonic()
        if sent is not None:
            sent = {**dataclasses.asdict(sent), "age": now - sent.t}
            del sent["t"]
        return {
            "sent": sent,
            "state": _state_to_wire(state, now),
            "health": {"state": health.state.value, "message": health.message},
            "frames": {name: {"image": f.image, "age": now - f.t} for name, f in frames.items()},
            "task": observation,
        }


def _seconds(value: float, name: str) -> float:
    """``value`` (s) as a finite float >= 0, or a ``ValueError`` naming ``name``."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


class RobotClient:
    """A :class:`~armworld.envs.real.protocols.Robot` talking to a :class:`RobotServer` (thread-safe).

    Args:
        address: the server's ZeroMQ address, e.g. ``tcp://127.0.0.1:5555``.
        timeout_s: reply timeout per request (s); a timeout raises :class:`DriverError`.
        token: the server's shared secret, sent with every request (default: the
            ``ARMWORLD_ROBOT_TOKEN`` environment variable, if set; see :func:`read_token` for a token file).

    A request the server refuses raises :class:`~armworld.envs.real.protocols.EnvelopeViolation`
    (outside the robot's limits), :class:`~armworld.envs.real.protocols.StaleDataError`, or
    :class:`DriverError` (anything else: a missing or wrong token, a busy arm, a driver failure).

    Attributes:
        spec: the served robot's limits, known once connected.
        task: the sim task the server runs (``reach``, ``push``, ...; its :meth:`task_observation`),
            ``None`` for a served real arm; known once connected.
    """

    def __init__(self, address: str, timeout_s: float = 2.0, token: str | None = None):
        self.address, self.timeout_s = address, timeout_s
        self._token = token if token is not None else os.environ.get(TOKEN_ENV) or None
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
        args = {"home": None if home is None else np.asarray(home, dtype=np.float64),
                "timeout_s": _seconds(timeout_s, "timeout_s")}
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
        args = {"command": fields, "hold_s": _seconds(hold_s, "hold_s"), "cameras": list(cameras), "task": task}
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
            request = {"op": op, "args": args or {}}
            if self._token is not None:
                request["token"] = self._token
            self._socket.send(pack(request))
            if not self._socket.poll(int(1000 * (timeout_s or self.timeout_s))):
                self._socket.close()  # a REQ socket without its reply is stuck: start over
                self._open()
                raise DriverError(f"{self.address}: no reply to {op} within {timeout_s or self.timeout_s} s")
            reply = unpack(self._socket.recv())
        if not reply["ok"]:
            error = _ERROR_KINDS.get(reply["error"], DriverError)
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
