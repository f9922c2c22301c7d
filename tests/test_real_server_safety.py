"""The robot server guards the arm itself: limits, fairness, loopback, tokens, validated limit files.

Every check looks at the arm's side: the :class:`MockRobot` or :class:`MujocoRobot` the server
wraps, and what it was told to execute.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from typing import Callable

import msgpack
import numpy as np
import pytest
import yaml
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_helpers import LinearIK, assert_within_limits, make_spec

from armworld.cli import main
from armworld.envs.conventions import euler_xyz_from_matrix
from armworld.envs.panda import PANDA
from armworld.envs.real import drivers
from armworld.envs.real.drivers import make_robot
from armworld.envs.real.drivers.mock import MockRobot
from armworld.envs.real.drivers.sim import MujocoRobot
from armworld.envs.real.kinematics import RobotIK
from armworld.envs.real.protocols import (
    LIMITS_DIR,
    Command,
    DriverError,
    EnvelopeViolation,
    RobotSpec,
    RobotState,
    StaleDataError,
)
from armworld.envs.real.safety import RATE_BURST_STEPS, SafetyLayer, step_fractions
from armworld.envs.real.server import (
    COMMAND_FIELDS,
    RobotClient,
    RobotServer,
    pack,
    read_token,
    unpack,
    write_token,
)
from armworld.envs.ur5e import UR5E

IK = LinearIK()
TOKEN = "0123456789abcdef0123456789abcdef"


class RecordingArm(MockRobot):
    """The mock arm, logging what it was told to do in order: ``("reset", state)`` and ``("send", command)``.

    ``executed_at`` holds the arm's own clock when it got each command (``command.t`` is the server's stamp).
    """

    def __init__(self, spec: RobotSpec, forward=IK.forward):
        super().__init__(spec, forward=forward)
        self.events: list[tuple[str, object]] = []
        self.executed_at: list[float] = []
        self.events_lock = threading.Lock()

    def reset(self, home=None, timeout_s=30.0):
        state = super().reset(home, timeout_s)
        with self.events_lock:
            self.events.append(("reset", state))
        return state

    def send_action(self, command):
        with self.events_lock:
            self.events.append(("send", command))
            self.executed_at.append(self.clock())
        return super().send_action(command)

    def sends(self) -> list[Command]:
        with self.events_lock:
            return [command for kind, command in self.events if kind == "send"]

    def target(self) -> Command | RobotState:
        """The last command executed, or the state of the last reset (else of connecting)."""
        with self.events_lock:
            return self.events[-1][1] if self.events else self._state


@pytest.fixture
def served():
    """A recording mock arm behind a server, and a client of it (reset: the arm at home)."""
    arm = RecordingArm(make_spec())
    server = RobotServer(arm).start()
    client = RobotClient(server.address)
    client.connect()
    client.reset()
    yield arm, server, client
    client.disconnect()
    server.close()


def target(state_or_command, dpos=(0.0, 0.0, 0.0), deuler=(0.0, 0.0, 0.0), gripper=0.0) -> Command:
    """A command ``dpos`` (m) and ``deuler`` (rad) from a pose, with joints from the fake IK."""
    pos = np.asarray(state_or_command.ee_pos) + dpos
    euler = np.asarray(state_or_command.ee_euler) + deuler
    q, _ = IK.ik(pos, Command(pos, euler, 0.0, np.zeros(7), 0.0).ee_rot, None)
    return Command(pos, euler, gripper, q, time.monotonic())


def raw(client: RobotClient, op: str, args: dict) -> dict:
    """The server's reply to a request sent as is (no client-side checks)."""
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(client.address)
    try:
        socket.send(pack({"op": op, "args": args}))
        assert socket.poll(3000), f"no reply to {op}"
        return unpack(socket.recv())
    finally:
        socket.close()


def slow_down(monkeypatch, arm: MockRobot, method: str, seconds: float) -> threading.Event:
    """Make every call of ``arm.method`` take ``seconds`` longer (a real arm homing, a slow read); set as one starts."""
    started, call = threading.Event(), getattr(arm, method)

    def slow(*args, **kwargs):
        started.set()
        time.sleep(seconds)
        return call(*args, **kwargs)

    monkeypatch.setattr(arm, method, slow)
    return started


def in_thread(call: Callable, *args) -> tuple[threading.Thread, dict]:
    """Start ``call(*args)`` in a thread; the dict gets its ``result`` or ``error`` and when it ``returned``."""
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = call(*args)
        except Exception as error:
            outcome["error"] = error
        outcome["returned"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def wire(command: Command) -> dict:
    fields = dataclasses.asdict(command)
    del fields["t"]
    return fields


# ---------------------------------------------------------------- the envelope, on the arm's side


def test_commands_outside_the_limits_are_refused_and_never_reach_the_arm(served):
    arm, _, client = served
    state = client.get_observation()
    spec = arm.spec
    good = target(state, dpos=(0.01, 0.0, 0.0))
    nan_q = dataclasses.replace(good, q=np.where(np.arange(7) == 2, np.nan, good.q))
    beyond = dataclasses.replace(good, q=np.full(7, 0.95))  # inside +-1 rad, but not the 0.1 rad margin
    outside = target(state, dpos=(0.0, 0.0, spec.workspace_max[2] - state.ee_pos[2] + 0.01))
    refused = {
        "q: joint 0 at 0.9500 rad is outside its limits minus joint_margin": beyond,
        "q must be 7 finite numbers": nan_q,
        "gripper must be one finite closure": dataclasses.replace(good, gripper=float("nan")),
        "gripper closure 1.5 is outside [gripper_min, gripper_max] = [0.0, 1.0]":
            dataclasses.replace(good, gripper=1.5),
        "ee_pos must be 3 finite numbers": dataclasses.replace(good, ee_pos=np.array([0.5, np.inf, 0.3])),
        "ee_euler must be 3 finite numbers": dataclasses.replace(good, ee_euler=np.zeros(4)),
        "outside the workspace box": outside,
        "q does not reach the TCP target": dataclasses.replace(good, ee_pos=good.ee_pos + [0.0, 0.02, 0.0]),
        "times max_ee_step": target(state, dpos=(0.06, 0.0, 0.0)),
        "times max_ee_speed": target(state, dpos=(0.04, 0.04, 0.0)),
        "times max_rot_step": target(state, deuler=(0.0, 0.0, 0.2)),
        "times max_rot_speed": target(state, deuler=(0.12, 0.12, 0.0)),
    }
    for message, command in refused.items():
        with pytest.raises(EnvelopeViolation, match=re.escape(message)):
            client.send_action(command)
        with pytest.raises(EnvelopeViolation, match=re.escape(message)):  # in a whole step too: nothing read back
            client.exchange(command, hold_s=0.0)
    assert arm.sends() == []
    reply = raw(client, "send_action", {**wire(good), "speed": 9.0})
    assert not reply["ok"] and reply["error"] == "refused" and "needs exactly" in reply["message"]
    np.testing.assert_array_equal(client.send_action(good).q, good.q)  # the same arm takes a command inside
    assert len(arm.sends()) == 1


def test_joint_speed_is_capped_without_a_forward_model():
    arm = MockRobot(make_spec(), forward=None)  # TCP targets unchecked against the joints: the joints still are
    server = RobotServer(arm).start()
    client = RobotClient(server.address)
    try:
        client.connect()
        state = client.reset()
        command = Command(state.ee_pos, state.ee_euler, 0.0, state.q + [0.0, 0.0, 0.0, 0.5, 0, 0, 0], 0.0)
        with pytest.raises(EnvelopeViolation, match="times qd_max"):
            client.send_action(command)
        assert arm.sent == []
    finally:
        client.disconnect()
        server.close()


def test_commands_faster_than_the_control_rate_are_refused(served):
    arm, _, client = served
    previous = client.get_observation()
    full = arm.spec.max_ee_speed * arm.spec.dt  # one full step (m)
    sent = 0
    with pytest.raises(EnvelopeViolation, match="faster than the control rate"):
        for _ in range(4):  # a burst: full steps back to back
            previous = client.send_action(target(previous, dpos=(full * 0.999, 0.0, 0.0)))
            sent += 1
    assert sent == math.floor(RATE_BURST_STEPS / 0.999) and len(arm.sends()) == sent
    time.sleep(arm.spec.dt)  # one period later a full step is allowed again
    client.send_action(target(previous, dpos=(full * 0.999, 0.0, 0.0)))
    client.send_action(target(arm.sends()[-1]))  # holding the target uses none of the budget


def test_commands_queued_behind_a_busy_arm_do_not_reach_it_in_a_burst(monkeypatch):
    arm = RecordingArm(make_spec())
    server = RobotServer(arm, max_wait_s=2.0).start()  # long enough for every command to wait its turn
    clients = [RobotClient(server.address) for _ in range(5)]
    try:
        for client in clients:
            client.connect()
        home = clients[0].reset()
        reading = slow_down(monkeypatch, arm, "get_observation", 0.7)  # e.g. a slow camera or driver read
        slow_read, _ = in_thread(clients[0].get_observation)
        assert reading.wait(2.0)
        step = 0.45 * arm.spec.max_ee_speed * arm.spec.dt  # 0.45 of a full step, for every limit
        commands = [target(home, dpos=(step * k, 0.0, 0.0)) for k in range(1, 5)]  # each one step from the last
        sending = []
        for client, command in zip(clients[1:], commands):  # arriving one period apart
            sending.append(in_thread(client.send_action, command))
            time.sleep(arm.spec.dt)
        slow_read.join()
        for thread, _ in sending:
            thread.join()
        outcomes = [outcome for _, outcome in sending]
        assert [("error" in outcome) for outcome in outcomes] == [False, False, False, True]  # 1.35 steps, not 1.8
        with pytest.raises(EnvelopeViolation, match="commands would reach the arm faster than the control rate"):
            raise outcomes[3]["error"]
        assert [command.ee_pos[0] for command in arm.sends()] == [command.ee_pos[0] for command in commands[:3]]
        assert np.ptp(arm.executed_at) < arm.spec.dt / 2  # they did reach the arm together, behind the slow read
        assert_envelope_kept(arm, arm_clock=True)
    finally:
        for client in clients:
            client.disconnect()
        server.close()


def test_resets_to_joints_outside_the_limits_are_refused(served):
    arm, _, client = served
    for home, message in [(np.full(7, 9.0), "home: joint 0 at 9.0000 rad is outside"),
                          (np.array([0, 0, 0, 0, 0, 0, np.nan]), "home must be 7 finite numbers"),
                          (np.zeros(3), "home must be 7 finite numbers"),
                          (np.array([0.0, 0, 0, 0.95, 0, 0, 0]), "home: joint 3 at 0.9500 rad is outside its limits"),
                          (np.array([0.0, 0, 0.9, 0, 0, 0, 0]), "home's TCP [0.5, 0.0, 0.525] m is outside the "
                                                                "workspace box")]:
        with pytest.raises(EnvelopeViolation, match=re.escape(message)):
            client.reset(home)
    reply = raw(client, "reset", {"home": None, "timeout_s": float("nan")})
    assert reply["error"] == "refused" and "timeout_s must be a number in [0.0, 120.0]" in reply["message"]
    assert [kind for kind, _ in arm.events] == ["reset"]  # the fixture's only
    np.testing.assert_allclose(client.reset(np.full(7, 0.2)).q, 0.2)


def test_step_holds_at_most_one_period(served):
    arm, _, client = served
    command = target(client.get_observation())
    with pytest.raises(EnvelopeViolation, match=r"hold_s must be a number in \[0.0, 0.1\] \(s\), got 0.2"):
        client.exchange(command, hold_s=arm.spec.dt * 2)
    for hold in (-0.1, float("inf"), "0.05"):
        reply = raw(client, "step", {"command": wire(command), "hold_s": hold, "cameras": [], "task": False})
        assert reply["error"] == "refused" and "hold_s must be a number in [0.0, 0.1]" in reply["message"]
    assert arm.sends() == []


def test_the_sim_arm_never_gets_a_nan_or_a_joint_beyond_its_limits():
    robot = MujocoRobot(realtime=False)
    robot.connect()
    server = RobotServer(robot).start()  # the sim's own forward kinematics checks joints against TCP targets
    client = RobotClient(server.address)
    try:
        client.connect()
        state = client.reset()
        ctrl = robot.env.data.ctrl.copy()
        with pytest.raises(EnvelopeViolation, match="gripper must be one finite closure"):
            client.send_action(Command(state.ee_pos, state.ee_euler, float("nan"), state.q, 0.0))
        with pytest.raises(EnvelopeViolation, match="home: joint 3 at 9.0000 rad is outside"):
            client.reset(np.full(7, 9.0))
        with pytest.raises(EnvelopeViolation, match="q does not reach the TCP target"):
            client.send_action(Command(state.ee_pos + [0.03, 0, 0], state.ee_euler, 0.0, state.q, 0.0))
        np.testing.assert_array_equal(robot.env.data.ctrl, ctrl)
        np.testing.assert_allclose(client.get_observation().q, state.q, atol=1e-9)
        with pytest.raises(DriverError, match="gripper closure must be a number in"):  # the driver refuses too
            robot.send_action(Command(state.ee_pos, state.ee_euler, float("nan"), state.q, 0.0))
        with pytest.raises(DriverError, match="leaves the joint limits"):
            robot.reset(np.full(7, 9.0))
    finally:
        client.disconnect()
        server.close()
        robot.disconnect()


def test_a_simulated_ur5e_is_held_to_the_ur5e_limits_and_kinematics():
    robot = MujocoRobot("armworld/UR5eReach-v0", realtime=False)  # the ur:// driver's spec, the sim's UR5e model
    robot.connect()
    server = RobotServer(robot).start()
    client = RobotClient(server.address)
    try:
        client.connect()
        assert client.spec == RobotSpec.load("ur5e")
        state = client.reset()
        ctrl = robot.env.data.ctrl.copy()
        beyond = np.array(state.q)
        beyond[5] = 6.25  # rad: inside the joint's +-2 pi, not 0.1 rad inside it
        with pytest.raises(EnvelopeViolation, match=r"q: joint 5 at 6.2500 rad is outside its limits minus "
                           r"joint_margin \[-6.1832, 6.1832\]"):
            client.send_action(Command(state.ee_pos, state.ee_euler, 0.0, beyond, 0.0))
        with pytest.raises(EnvelopeViolation, match=r"home: joint 5 at 6.2500 rad is outside"):
            client.reset(beyond)
        with pytest.raises(EnvelopeViolation, match=r"q must be 6 finite numbers"):  # a Panda's joints
            client.send_action(Command(state.ee_pos, state.ee_euler, 0.0, np.zeros(7), 0.0))
        with pytest.raises(EnvelopeViolation, match=r"ee_pos \[0.4919, 0.1333, 0.75\] m is outside the workspace "
                           r"box \[-0.7, -0.5, 0.02\] .. \[0.7, 0.5, 0.7\]"):
            client.send_action(Command([state.ee_pos[0], state.ee_pos[1], 0.75], state.ee_euler, 0.0, state.q, 0.0))
        with pytest.raises(EnvelopeViolation, match=r"q does not reach the TCP target: 30.0 mm"):  # the UR5e's FK
            client.send_action(Command(state.ee_pos + [0.03, 0, 0], state.ee_euler, 0.0, state.q, 0.0))
        np.testing.assert_array_equal(robot.env.data.ctrl, ctrl)  # nothing refused reached the arm
        pos = state.ee_pos + [0.03, 0, 0]
        q, converged = RobotIK(UR5E).ik(pos, Command(pos, state.ee_euler, 0.0, state.q, 0.0).ee_rot, state.q)
        assert converged
        client.send_action(Command(pos, state.ee_euler, 0.0, q, time.monotonic()))
        robot.advance(1.0)
        np.testing.assert_allclose(client.get_observation().ee_pos, pos, atol=2e-3)
        wrist = np.array(state.q)
        wrist[5] = -2.0  # rad: beyond a Panda's limits, within a UR5e's
        np.testing.assert_allclose(client.reset(wrist).q, wrist, atol=1e-9)
    finally:
        client.disconnect()
        server.close()
        robot.disconnect()


def test_the_cli_checks_a_cartesian_pandas_joints_against_the_panda_model(tmp_path, monkeypatch, capsys):
    panda = RobotIK(PANDA)
    token_file = tmp_path / "robot.token"
    token = write_token(token_file)
    arm = RecordingArm(RobotSpec.load("panda"), forward=panda.forward)
    arm.connect()  # powered on at home, its TCP where the Panda model puts it
    arm.forward = None  # as franka://: it executes TCP targets and has no forward kinematics of its own
    monkeypatch.setattr(drivers, "make_robot", lambda url: arm)
    serve, refusals = RobotServer.serve_forever, []
    turn = np.array([0.05, 0, 0, 0, 0, 0, 0])  # rad: joint 0 turns the TCP about 2.5 cm

    def serve_and_drive(server: RobotServer) -> None:
        serving = threading.Thread(target=serve, args=(server,))
        serving.start()
        client = RobotClient(server.address, token=token)
        try:
            client.connect()
            home = client.get_observation()
            pos, R = panda.forward(home.q + turn)
            good = Command(pos, euler_xyz_from_matrix(R), 0.0, home.q + turn, 0.0)
            for wrong in (home.q, home.q + 2 * turn):  # joints a few cm of TCP away from the target
                try:
                    client.send_action(dataclasses.replace(good, q=wrong))
                except EnvelopeViolation as error:
                    refusals.append(str(error))
            client.send_action(good)
        finally:
            client.disconnect()
            server.close()
            serving.join()

    monkeypatch.setattr(RobotServer, "serve_forever", serve_and_drive)
    assert main(["robot-server", "--robot", "franka://172.16.0.2", "--token-file", str(token_file)]) == 0, \
        capsys.readouterr().err
    assert len(refusals) == 2 and all("q does not reach the TCP target" in message for message in refusals)
    assert len(arm.sends()) == 1 and np.allclose(arm.sends()[0].q, np.add(arm.spec.q_home, turn))
    unmodelled = RecordingArm(RobotSpec.load("panda"), forward=None)  # reports a TCP the model puts elsewhere
    monkeypatch.setattr(drivers, "make_robot", lambda url: unmodelled)
    assert main(["robot-server", "--robot", "franka://172.16.0.2", "--token-file", str(token_file)]) == 1
    err = capsys.readouterr().err
    assert "the arm's measured joints do not put the TCP where it reports it" in err and "not this arm's" in err
    assert unmodelled.sends() == []


# ---------------------------------------------------------------- fairness


def test_a_long_reset_cannot_block_other_clients(monkeypatch):
    arm = MockRobot(make_spec(), forward=None)
    homing = slow_down(monkeypatch, arm, "reset", 1.5)  # a real arm homes for seconds
    server = RobotServer(arm, max_wait_s=0.2).start()
    first, second = RobotClient(server.address), RobotClient(server.address, timeout_s=1.0)
    try:
        first.connect()
        resetting = threading.Thread(target=first.reset)
        resetting.start()
        assert homing.wait(2.0)
        second.connect()  # the spec and the task need no arm
        busy = r"busy: get_observation waited 0\.2\d s for the arm while it served reset"
        with pytest.raises(DriverError, match=busy):
            second.get_observation()  # refused within its deadline, not after the reset
        second.stop()  # a stop never waits for the arm
        assert "stop" in arm.calls and "reset" not in arm.calls
        resetting.join()
        assert arm.calls.index("stop") < arm.calls.index("reset")  # stopped while homing
        assert second.get_observation().t > 0
    finally:
        first.disconnect()
        second.disconnect()
        server.close()


def test_a_step_whose_command_ran_is_never_answered_retry(monkeypatch):
    arm = RecordingArm(make_spec(control_hz=2.0))  # a half-second hold
    server = RobotServer(arm, max_wait_s=0.3).start()
    stepper, resetter = RobotClient(server.address), RobotClient(server.address)
    try:
        stepper.connect()
        resetter.connect()
        command = target(stepper.reset(), dpos=(0.005, 0.0, 0.0))
        homing = slow_down(monkeypatch, arm, "reset", 1.2)
        stepping, step = in_thread(stepper.exchange, command, arm.spec.dt)
        while not arm.sends():
            time.sleep(0.005)
        resetting, _ = in_thread(resetter.reset)  # takes the arm during the hold, for longer than max_wait_s
        assert homing.wait(1.0)
        stepping.join()
        resetting.join()
        message = str(step["error"])
        assert "unread: step: the command was executed, but reading the arm back after the hold waited" in message
        assert "do not send the command again" in message and "retry" not in message
        assert [sent.ee_pos[0] for sent in arm.sends()] == [command.ee_pos[0]]  # it ran, once
        assert arm.events[-1][0] == "reset" and step["returned"] < arm.events[-1][1].t  # answered while it homed
    finally:
        stepper.disconnect()
        resetter.disconnect()
        server.close()


def test_the_arm_serves_other_clients_during_a_step_hold():
    spec = make_spec(control_hz=2.0)  # a half-second period, so that the hold is long
    arm = MockRobot(spec, forward=None)
    server = RobotServer(arm).start()
    first, second = RobotClient(server.address), RobotClient(server.address)
    try:
        first.connect()
        second.connect()
        state = first.reset()
        stepping = threading.Thread(target=first.exchange, args=(target(state, dpos=(0.005, 0, 0)), spec.dt))
        stepping.start()
        while "send_action" not in arm.calls:
            time.sleep(0.005)
        second.get_observation()
        stepping.join()
        after = arm.calls[arm.calls.index("send_action"):]
        assert after == ["send_action", "get_observation", "get_observation", "health"]  # the second client's first
    finally:
        first.disconnect()
        second.disconnect()
        server.close()


def test_one_request_in_flight_per_client(served):
    _, server, _ = served
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.address)
    try:
        hold = {"command": None, "hold_s": server.robot.spec.dt, "cameras": [], "task": False}
        socket.send_multipart([b"", pack({"op": "step", "args": hold})])  # in flight for a period
        socket.send_multipart([b"", pack({"op": "get_observation", "args": {}})])
        replies = []
        for _ in range(2):
            assert socket.poll(2000)
            replies.append(unpack(socket.recv_multipart()[-1]))
    finally:
        socket.close()
    assert sorted(reply["ok"] for reply in replies) == [False, True]
    assert any("one request at a time per client" in reply.get("message", "") for reply in replies)


# ---------------------------------------------------------------- addresses


def test_the_server_listens_on_loopback_unless_given_a_token():
    arm = MockRobot(make_spec(), forward=None)
    server = RobotServer(arm)
    assert server.address.startswith("tcp://127.0.0.1:")
    server.close()
    with pytest.raises(ValueError, match="listens beyond this machine: it needs a token"):
        RobotServer(arm, address="tcp://0.0.0.0:0")
    for address, message in [("tcp://127.0.0.1:70000", "port 70000 is out of range"),
                             ("tcp://127.0.0.1", "give tcp://HOST:PORT"), ("ipc:///tmp/arm", "give tcp://HOST:PORT")]:
        with pytest.raises(ValueError, match=message):
            RobotServer(arm, address=address)
    server = RobotServer(arm, address="tcp://0.0.0.0:0", token=TOKEN).start()
    client = RobotClient(server.address.replace("0.0.0.0", "127.0.0.1"), token=TOKEN)
    try:
        client.connect()
        assert client.health().ok
    finally:
        client.disconnect()
        server.close()


@pytest.mark.parametrize("arguments, message", [
    (["--sim", "--port", "70000"], "argument --port: expected an integer >= 1 and <= 65535, got '70000'"),
    (["--sim", "--image-size", "0"], "argument --image-size: expected an integer >= 8 and <= 640, got '0'"),
    (["--sim", "--latency-ms", "-5"], "argument --latency-ms: expected a number >= 0.0, got '-5'"),
    (["--sim", "--host", "0.0.0.0"], "listening on 0.0.0.0 needs a shared secret: give --token-file PATH"),
    (["--robot", "mock"], "serving mock needs a shared secret: give --token-file PATH"),
    (["--sim", "--new-token"], "--new-token writes the token to --token-file"),
])
def test_robot_server_refuses_bad_arguments(arguments, message, capsys):
    assert main(["robot-server", *arguments]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


# ---------------------------------------------------------------- authentication


def test_a_client_without_the_token_moves_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("ARMWORLD_ROBOT_TOKEN", raising=False)
    path = tmp_path / "robot.token"
    token = write_token(path)
    assert (path.stat().st_mode & 0o777) == 0o600 and read_token(path) == token and len(token) == 64
    with pytest.raises(ValueError, match="exists: drop --new-token"):
        write_token(path)
    arm = MockRobot(make_spec(), forward=None)
    server = RobotServer(arm, token=token).start()
    port = server.address.rsplit(":", 1)[1]
    try:
        for client, message in [(RobotClient(server.address), "this server needs its token"),
                                (RobotClient(server.address, token="f" * 64), "wrong token")]:
            with pytest.raises(DriverError, match=message):
                client.connect()
            with pytest.raises(DriverError, match=message):
                client.reset()
            with pytest.raises(DriverError, match=message):
                client.send_action(Command(np.zeros(3), np.zeros(3), 0.0, np.zeros(7), 0.0))
            client.disconnect()
        assert arm.calls == ["connect", "get_observation"]  # the server's own start: nothing from the clients
        by_url = make_robot(f"sim://127.0.0.1:{port}?token_file={path}")
        by_url.connect()
        assert by_url.reset().q.shape == (7,)
        by_url.disconnect()
        monkeypatch.setenv("ARMWORLD_ROBOT_TOKEN", token)
        by_env = RobotClient(server.address)
        by_env.connect()
        assert by_env.health().ok
        by_env.disconnect()
    finally:
        server.close()


def test_token_files_must_be_private_and_hold_a_token(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    path.chmod(0o644)
    with pytest.raises(ValueError, match="can be read by other users .*chmod 600"):
        read_token(path)
    path.chmod(0o600)
    assert read_token(path) == TOKEN
    path.write_text("short\n")
    with pytest.raises(ValueError, match="holds no token of at least 16 characters"):
        read_token(path)
    with pytest.raises(ValueError, match="cannot read token file .*missing.*--new-token"):
        read_token(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"only \?token_file=PATH"):
        make_robot("sim://127.0.0.1:5555?token=abc")


# ---------------------------------------------------------------- limits files and clocks


@pytest.mark.parametrize("change, message", [
    ({"joint_margin": -0.1}, "joint_margin: expected a distance >= 0 (rad)"),
    ({"max_ee_speed": float("nan")}, "max_ee_speed: expected a finite number (m/s), got nan"),
    ({"q_min": [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, 4.0, -2.8973]},
     "q_min, q_max: expected every joint range to exceed twice joint_margin (0.1 rad); joint 5"),
    ({"workspace_min": [0.25, -0.35]}, "workspace_min: expected a list of 3 finite numbers (m)"),
    ({"qd_max": 2.0}, "qd_max: expected a list of 7 finite numbers (rad/s), got 2.0"),
    ({"dof": "seven"}, "dof: expected a positive whole number"),
    ({"max_ee_step": None}, "missing keys ['max_ee_step']"),
    ({"speed": 1.0}, "unknown keys ['speed']"),
])
def test_limits_files_are_validated(tmp_path, change, message):
    data = yaml.safe_load((LIMITS_DIR / "panda.yaml").read_text())
    data.update(change)
    data = {key: value for key, value in data.items() if value is not None}
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError) as error:
        RobotSpec.load(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_limits_files_that_are_no_mapping_are_refused(tmp_path):
    path = tmp_path / "cell.yaml"
    for text, message in [("- 1\n- 2\n", "expected a mapping of limit names to values, got list"),
                          ("name: [unclosed\n", "not valid YAML")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            RobotSpec.load(path)


def test_robot_states_stamped_in_the_future_are_refused():
    arm = MockRobot(make_spec(), forward=IK.forward)
    arm.connect()
    layer = SafetyLayer(arm, IK)
    try:
        state = layer.reset()
        future = dataclasses.replace(state, t=time.monotonic() + 3600.0)
        with pytest.raises(StaleDataError, match="in the future"):
            layer.step(np.zeros(7), future)
        assert arm.sent == []
    finally:
        layer.close()


# ---------------------------------------------------------------- fuzzing the protocol

FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-2.0, 2.0))
MSGPACK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), FLOATS, st.text(max_size=8),
              st.binary(max_size=16)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=12)
ND = st.builds(lambda dtype, shape, data: {"__nd__": [dtype, shape, data]},
               st.sampled_from(["<f8", "<f4", "<i8", "|u1", "<c16", "|O", "bogus"]),
               st.lists(st.integers(-1, 8), max_size=3), st.binary(max_size=64))
OPS = ["send_action", "step", "reset", "stop", "get_observation", "health", "spec", "info", "frame", "task", "jump"]


AS_FLOAT32 = object()  # a mutation: the valid value, sent as float32


@st.composite
def mutated_command(draw, arm: RecordingArm) -> Callable[[], dict]:
    """A command near the arm's target when it is sent, often valid, often bent out of shape."""
    scale = draw(st.sampled_from([0.0, 0.001, 0.005, 0.02, 0.05, 0.2]))  # m (and three times that in rad)
    direction = np.array(draw(st.lists(st.floats(-1, 1), min_size=6, max_size=6)))
    gripper = draw(st.one_of(st.floats(0.0, 1.0), st.floats(-0.5, 1.5)))
    values = st.one_of(MSGPACK, ND, st.just(np.full(7, np.nan)), st.just(np.full(7, 3.0)), st.just(AS_FLOAT32))
    mutations = draw(st.dictionaries(st.sampled_from(COMMAND_FIELDS), values, max_size=2))
    dropped = draw(st.one_of(st.none(), st.none(), st.sampled_from(COMMAND_FIELDS)))

    def build() -> dict:
        valid = wire(target(arm.target(), dpos=direction[:3] * scale, deuler=direction[3:] * scale * 3,
                            gripper=gripper))
        fields = {**valid, **{key: np.asarray(valid[key], dtype=np.float32) if value is AS_FLOAT32 else value
                              for key, value in mutations.items()}}
        fields.pop(dropped, None)
        return fields

    return build


@st.composite
def request(draw, arm: RecordingArm) -> Callable[[], bytes]:
    """A request to build when it is sent (commands start from the arm's target then)."""
    kind = draw(st.sampled_from(["bytes", "msgpack", "command", "command", "command", "step", "step", "reset", "op"]))
    if kind == "bytes":
        data = draw(st.binary(max_size=64))
    elif kind == "msgpack":
        data = msgpack.packb(draw(MSGPACK))
    elif kind == "command":
        command = draw(mutated_command(arm))
        return lambda: pack({"op": "send_action", "args": command()})
    elif kind == "step":
        command = draw(st.one_of(st.none(), mutated_command(arm)))
        args = {"hold_s": draw(st.one_of(FLOATS, MSGPACK)), "task": draw(MSGPACK),
                "cameras": draw(st.one_of(st.just([]), MSGPACK))}
        return lambda: pack({"op": "step", "args": {**args, "command": None if command is None else command()}})
    elif kind == "reset":
        home = draw(st.one_of(st.none(), st.just(np.full(7, 9.0)), ND, MSGPACK,
                              st.lists(st.floats(-1.2, 1.2), min_size=7, max_size=7).map(np.array)))
        timeout = draw(st.one_of(st.just(30.0), FLOATS, MSGPACK))
        data = pack({"op": "reset", "args": {"home": home, "timeout_s": timeout}})
    else:
        args = draw(st.one_of(st.dictionaries(st.text(max_size=8), MSGPACK, max_size=3), MSGPACK))
        data = pack({"op": draw(st.sampled_from(OPS)), "args": args})
    return lambda: data


def assert_envelope_kept(arm: RecordingArm, arm_clock: bool = False) -> None:
    """Every command the arm executed, after the pose it started from (its state or the previous command).

    The rate is checked between resets (a reset re-anchors the envelope with a full budget, as at
    start), on the server's stamps of when it admitted each command for execution, or
    (``arm_clock``) on the arm's own clock when it got each, which reads a moment after the
    admission (so 0.02 steps of slack).
    """
    spec = arm.spec
    margin = np.array(spec.q_max) - np.array(spec.q_min)
    runs: list[list[tuple[float, float]]] = [[]]  # (time, step fraction) of each command, per run between resets
    with arm.events_lock:
        events, executed_at = list(arm.events), iter(list(arm.executed_at))
    previous = None
    for kind, item in events:
        if kind == "reset":
            assert np.all(np.abs(item.q) <= 1.0 - spec.joint_margin + 1e-9) and margin.min() > 0
            previous = Command(item.ee_pos, item.ee_euler, item.gripper, item.q, item.t)
            runs.append([])
            continue
        at = next(executed_at)
        if previous is not None:
            assert_within_limits(spec, previous, item)
            runs[-1].append((at if arm_clock else item.t, max(step_fractions(spec, previous, item).values())))
        previous = item
    slack = 0.02 if arm_clock else 1e-6
    for timeline in runs:  # over any run of commands, at most one full step per period plus the burst
        for i in range(len(timeline)):
            used = np.cumsum([fraction for _, fraction in timeline[i:]])
            allowed = (np.array([t for t, _ in timeline[i:]]) - timeline[i][0]) / spec.dt + RATE_BURST_STEPS
            assert np.all(used <= allowed + slack), f"{used.round(3)} full steps in {allowed.round(3)} allowed"


def test_fuzzed_requests_from_concurrent_clients_never_leave_the_envelope():
    arm = RecordingArm(make_spec())
    server = RobotServer(arm, max_wait_s=0.5).start()
    failures: list[str] = []

    def client(batch: list[Callable[[], bytes]]) -> None:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(server.address)
        try:
            for build in batch:
                message = build()
                socket.send(message)
                if not socket.poll(3000):
                    failures.append(f"no reply to {message!r:.200}")
                    return
                reply = unpack(socket.recv())
                if not (isinstance(reply, dict) and isinstance(reply.get("ok"), bool)):
                    failures.append(f"bad reply {reply!r:.200}")
        finally:
            socket.close()

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def three_clients(data):
        batches = [data.draw(st.lists(request(arm), min_size=1, max_size=6)) for _ in range(3)]
        threads = [threading.Thread(target=client, args=(batch,)) for batch in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
        assert_envelope_kept(arm)

    try:
        three_clients()
        # whether a fuzzed reset reaches the arm depends on timing (a busy arm answers `busy`):
        # one more, alone, must, and the envelope holds over everything executed
        client = RobotClient(server.address)
        client.connect()
        client.reset()
        client.disconnect()
        assert_envelope_kept(arm)
    finally:
        server.close()
    assert len(arm.sends()) > 3 and sum(kind == "reset" for kind, _ in arm.events) > 0  # the fuzz reached the arm
