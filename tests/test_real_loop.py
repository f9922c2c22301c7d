"""The control loop over the wire: one request per step, and the server's own watchdog."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq
from real_helpers import LinearIK, make_spec

from armworld.envs.real.drivers.mock import MockRobot
from armworld.envs.real.drivers.sim import MujocoRobot, SimCamera
from armworld.envs.real.env import RealArmEnv
from armworld.envs.panda import PANDA
from armworld.envs.real.kinematics import RobotIK
from armworld.envs.real.protocols import Command
from armworld.envs.real.server import RemoteCamera, RobotClient, RobotServer, pack, unpack

LATENCY_S = 0.03


@pytest.fixture
def served_sim():
    robot = MujocoRobot("armworld/FrankaReach-v0")
    robot.connect()
    server = RobotServer(robot, {"front": SimCamera(robot, "front")}, latency_s=LATENCY_S).start()
    client = RobotClient(server.address)
    yield client
    server.close()
    robot.disconnect()


def test_one_request_per_step_with_injected_latency(served_sim):
    client = served_sim
    env = RealArmEnv(client, {"front": RemoteCamera(client, "front")}, RobotIK(PANDA))
    obs, _ = env.reset()
    start = obs["proprio"][:3].copy()
    action = np.array([1.0, 0, 0, 0, 0, 0, 1.0])  # forward, gripper closing
    env.step(action)  # the first reading may be old (the server's first frame starts its renderer): read again
    before, steps = len(client.round_trips), 6
    for _ in range(steps):
        obs, _, _, _, info = env.step(action)
    env.close()
    env.close()  # idempotent: the client is disconnected and the arm already stopped
    assert len(client.round_trips) - before == steps  # command, hold, state, health, frame, task: one exchange
    assert obs["rgb_front"].shape == (64, 64, 3) and set(obs) >= {"observation", "achieved_goal", "desired_goal"}
    assert obs["proprio"][0] - start[0] > 0.05  # the arm moved forward, and the readings show it
    timing = env.timing()
    assert timing["steps"] == steps + 1 and timing["period_mean_s"] > 0 and timing["obs_to_action_latency_mean_s"] > 0


def test_server_watchdog_stops_the_arm_within_two_periods():
    """The robot-side watchdog holds the arm when the client goes silent (e.g. the network drops)."""
    robot = MockRobot(make_spec(), forward=None)
    stops: list[float] = []
    robot.stop = lambda: stops.append(time.monotonic())
    server = RobotServer(robot).start()
    client = RobotClient(server.address)
    client.connect()
    state = client.reset()
    dt = robot.spec.dt
    for i in range(3):
        pos = state.ee_pos + [0.0, 0.0, -0.005 * (i + 1)]
        q, _ = LinearIK().ik(pos, state.ee_rot, state.q)
        sent, reading = client.exchange(Command(pos, state.ee_euler, 0.0, q, time.monotonic()))
        assert np.allclose(sent.ee_pos, pos) and reading.health.ok
        time.sleep(dt / 2)
    last_command = sent.t
    deadline = time.monotonic() + 1.0
    while not stops and time.monotonic() < deadline:
        time.sleep(0.002)
    client.disconnect()
    server.close()
    assert stops, "the server's watchdog never stopped the arm"
    assert stops[0] - last_command < 2 * dt


def test_malformed_requests_are_answered_and_the_server_keeps_serving():
    robot = MockRobot(make_spec(), forward=None)
    server = RobotServer(robot).start()
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(server.address)
    client = RobotClient(server.address)
    try:
        for request, error in [(msgpack.packb([1, 2, 3]), "malformed request"),
                               (b"\xc1", ""),  # not msgpack at all
                               (pack({"op": 5}), "malformed request"),
                               (pack({"op": "health", "args": [1]}), "malformed request"),
                               (pack({"op": "frame", "args": {}}), "camera"),
                               (pack({"op": "jump"}), "unknown op")]:
            socket.send(request)
            assert socket.poll(2000), f"no reply to {request!r}: the server stopped serving"
            reply = unpack(socket.recv())
            assert reply["ok"] is False and error in reply["message"], reply
        client.connect()
        assert client.health().ok and client.task is None  # a mock arm serves no sim task
    finally:
        client.disconnect()
        socket.close()
        server.close()
