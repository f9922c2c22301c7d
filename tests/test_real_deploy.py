"""End to end: ``armworld deploy`` against the sim robot server over loopback, and dry runs."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from armworld.cli import main
from armworld.datasets.hdf5 import TrajectoryFile, validate
from armworld.envs.real.drivers import mock
from armworld.envs.real.drivers.mock import MockRobot
from armworld.envs.panda import PANDA
from armworld.envs.real.kinematics import RobotIK
from armworld.envs.real.protocols import Frame
from armworld.envs.real.server import RobotClient, RobotServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sim_server():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "armworld.cli", "robot-server", "--sim", "--port", str(port), "--latency-ms", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    client = RobotClient(f"tcp://127.0.0.1:{port}", timeout_s=1.0)
    client._open()
    deadline = time.monotonic() + 30
    while True:  # wait until it answers
        try:
            client.health()
            break
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"robot server did not start: {process.communicate()[0]}")
    client.disconnect()
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_deploy_expert_reaches_the_goal_over_loopback(sim_server, tmp_path, capsys):
    record = tmp_path / "real.hdf5"
    code = main(["deploy", "--robot", f"sim://127.0.0.1:{sim_server}", "--agent", "expert", "--cameras", "front",
                 "--max-steps", "40", "--speed", "1.0", "--record", str(record)])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out + captured.err
    assert "success=True" in out and "period_jitter_std_s" in out
    assert validate(record) == []
    with TrajectoryFile(record) as file:
        episode = next(iter(file))
    assert episode.success[-1] and episode.obs["rgb_front"].shape[1:] == (64, 64, 3)
    assert np.all(np.abs(episode.actions) <= 1.0)


@pytest.fixture
def mock_robots(monkeypatch) -> list[MockRobot]:
    """The mock arms ``--robot mock`` makes, to check the calls made to them."""
    robots: list[MockRobot] = []

    def make(url):
        robots.append(MockRobot(forward=None))
        return robots[-1]

    monkeypatch.setattr(mock, "from_url", make)
    return robots


def test_dry_run_prints_and_sends_nothing(mock_robots, capsys):
    code = main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.6,0.1,0.2",
                 "--max-steps", "3", "--dry-run"])
    out = capsys.readouterr().out
    assert out.count("step ") == 3 and "clipped" in out
    assert code == 0  # it ran cleanly: that the unmoved arm is not at the goal is no failure
    assert "dry run: nothing sent; safety_events=" in out and "steps=3" in out and "success=" not in out
    assert mock_robots[0].sent == [] and "reset" not in mock_robots[0].calls


def test_the_readme_dry_run_against_the_sim_server_exits_zero_and_moves_nothing(sim_server):
    """`armworld deploy --robot sim://... --agent expert --dry-run` as a script runs it: exit status 0."""
    url = f"sim://127.0.0.1:{sim_server}"
    client = RobotClient(f"tcp://127.0.0.1:{sim_server}", timeout_s=2.0)
    client.connect()
    try:
        before = client.get_observation().ee_pos.copy()
        run = subprocess.run([sys.executable, "-m", "armworld.cli", "deploy", "--robot", url, "--agent", "expert",
                              "--max-steps", "5", "--dry-run"], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.stdout.count("step ") == 5 and "dry run: nothing sent" in run.stdout and run.stderr == ""
        np.testing.assert_allclose(client.get_observation().ee_pos, before, atol=1e-4)  # the arm did not move
    finally:
        client.disconnect()


def test_deploy_never_leaves_the_robot_connected_on_a_setup_error(mock_robots, tmp_path, capsys):
    # a bad --cameras value: checked before connecting
    assert main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.6,0.1,0.2",
                 "--cameras", "front"]) == 1
    assert "error: camera 'front': give NAME=DEVICE" in capsys.readouterr().err
    assert mock_robots[-1].calls == []
    missing = tmp_path / "no-such-video.mp4"
    assert main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.6,0.1,0.2",
                 "--cameras", f"front={missing}"]) == 1  # fails while the env connects its cameras
    assert "cannot open" in capsys.readouterr().err
    assert mock_robots[-1].calls[0] == "connect" and mock_robots[-1].calls[-1] == "disconnect"


@pytest.fixture
def tiny_wm(tmp_path):
    """An untrained world-model run that sees the front camera, and a goal image for it."""
    from test_world_model_agent import tiny_world_model

    from armworld.worldmodel.checkpoint import save_checkpoint
    from armworld.worldmodel.train import ACTraining

    wm = tiny_world_model()
    save_checkpoint(tmp_path / "wm", 0, dict(ACTraining(wm).checkpoint_config(), train={"camera": "front"}),
                    wm.state_dict(), metadata={})
    goal = tmp_path / "goal.png"
    Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8)).save(goal)
    return f"wm:{tmp_path / 'wm'}", str(goal)


def test_deploy_runs_a_world_model_agent_toward_a_goal_image(sim_server, tiny_wm, capsys):
    """``--agent wm:RUN`` loads through ``armworld.agents.loading`` and sees the model's camera at its size."""
    agent, goal = tiny_wm
    code = main(["deploy", "--robot", f"sim://127.0.0.1:{sim_server}", "--agent", agent,
                 "--goal", goal, "--max-steps", "1", "--speed", "1.0"])
    out = capsys.readouterr().out
    assert code == 1 and "steps=1" in out  # an untrained model does not reach the goal in one step
    assert main(["deploy", "--robot", "mock", "--agent", agent, "--max-steps", "2"]) == 1
    assert "give --goal goal.png" in capsys.readouterr().err
    assert main(["deploy", "--robot", "mock", "--agent", agent, "--goal", goal,
                 "--cameras", "wrist=0", "--max-steps", "2"]) == 1
    assert "--cameras lacks ['front']" in capsys.readouterr().err


class GreyCamera:
    """A served camera that is not here: a fresh grey frame at every read."""

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def read_latest(self, max_age_s: float) -> Frame:
        return Frame(np.full((64, 64, 3), 100, dtype=np.uint8), time.monotonic())


def test_an_arm_serving_no_goal_needs_a_goal_position_except_for_image_goals(mock_robots, tiny_wm, capsys, monkeypatch):
    """Without --goal-pos, an arm that serves no task goal runs only image-goal agents, and success is unknown."""
    assert main(["deploy", "--robot", "mock", "--agent", "expert", "--max-steps", "3", "--dry-run"]) == 1
    assert "error: mock serves no task goal: give --goal-pos" in capsys.readouterr().err
    assert mock_robots[-1].calls == []  # refused before connecting

    arm = MockRobot(forward=RobotIK(PANDA).forward)  # an arm served by `armworld robot-server --robot ...`
    server = RobotServer(arm, {"front": GreyCamera()}).start()
    try:
        robot = f"sim://127.0.0.1:{server.address.rsplit(':', 1)[1]}"
        assert main(["deploy", "--robot", robot, "--agent", "expert", "--max-steps", "3", "--dry-run"]) == 1
        assert "serves no task goal: give --goal-pos" in capsys.readouterr().err
        agent, goal = tiny_wm
        assert main(["deploy", "--robot", robot, "--agent", agent, "--goal", goal, "--max-steps", "1",
                     "--dry-run"]) == 0  # a dry run judges nothing, so it needs no goal position to exit 0
        out = capsys.readouterr().out
        assert "step 0:" in out and "dry run: nothing sent" in out and "success=" not in out
        prompts = []  # a real arm behind a server: asked before it moves, as a local one is
        monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or "n")
        assert main(["deploy", "--robot", robot, "--agent", agent, "--goal", goal, "--max-steps", "1"]) == 1
        assert len(prompts) == 1 and "Move sim://127.0.0.1" in prompts[0] and "aborted" in capsys.readouterr().out
    finally:
        server.close()
    assert arm.sent == []  # dry runs, and a refusal


@pytest.mark.parametrize("arguments, message", [
    (["--agent", "oracle"], "unknown agent"),
    (["--agent", "sb3:/nonexistent/run"], "no SB3 model|config.json"),
    (["--agent", "wm:/nonexistent/run", "--goal", "goal.png"], "no checkpoint at .*nonexistent"),
    (["--robot", "kuka://1.2.3.4"], "unknown robot 'kuka://1.2.3.4'"),
    (["--robot", "sim://127.0.0.1"], "sim URL needs a port"),
    (["--goal-pos", "1,2"], "--goal-pos takes x,y,z"),
    (["--goal-pos", "a,b,c"], "--goal-pos takes x,y,z"),
    (["--speed", "2"], r"argument --speed: expected a number > 0.0 and <= 1.0"),
    (["--image-size", "0"], "argument --image-size: expected an integer >= 8 and <= 640"),
    (["--max-steps", "0"], "argument --max-steps: expected an integer >= 1"),
])
def test_deploy_rejects_bad_arguments_before_connecting(mock_robots, capsys, arguments, message):
    base = {"--robot": "mock", "--agent": "expert", "--goal-pos": "0.6,0.1,0.2", "--max-steps": "3"}
    options = dict(zip(arguments[::2], arguments[1::2]))
    argv = ["deploy", *(item for pair in {**base, **options}.items() for item in pair), "--yes"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err
    assert all(robot.calls == [] for robot in mock_robots)


def test_a_missing_vendor_package_is_reported_before_the_prompt(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "franky", None)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail(f"asked {prompt!r} before the check"))
    assert main(["deploy", "--robot", "franka://10.0.0.2", "--agent", "expert", "--goal-pos", "0.5,0,0.2"]) == 1
    assert capsys.readouterr().err == (
        "error: armworld deploy needs the module franky (franky-control, from the optional 'franka' extra), which "
        "is not installed: pip install 'armworld[franka]' (in a clone: pip install -e '.[franka]')\n")
