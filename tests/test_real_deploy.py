"""End to end: ``armworld deploy`` against the sim robot server over loopback, and dry runs."""

from __future__ import annotations

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
from armworld.envs.real.server import RobotClient


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
    out = capsys.readouterr().out
    assert code == 0, out
    assert "success=True" in out and "period_jitter_std_s" in out
    assert validate(record) == []
    with TrajectoryFile(record) as file:
        episode = next(iter(file))
    assert episode.success[-1] and episode.obs["rgb_front"].shape[1:] == (64, 64, 3)
    assert np.all(np.abs(episode.actions) <= 1.0)


def test_dry_run_prints_and_sends_nothing(monkeypatch, capsys):
    robots: list[MockRobot] = []

    def make(url):
        robots.append(MockRobot(forward=None))
        return robots[-1]

    monkeypatch.setattr(mock, "from_url", make)
    code = main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.6,0.1,0.2",
                 "--max-steps", "3", "--dry-run"])
    out = capsys.readouterr().out
    assert out.count("step ") == 3 and "clipped" in out and code == 1  # three steps cannot reach the goal
    assert robots[0].sent == [] and "reset" not in robots[0].calls


def test_deploy_never_leaves_the_robot_connected_on_a_setup_error(monkeypatch, tmp_path):
    from armworld.envs.real.protocols import DriverError

    robots: list[MockRobot] = []

    def make(url):
        robots.append(MockRobot(forward=None))
        return robots[-1]

    monkeypatch.setattr(mock, "from_url", make)
    with pytest.raises(SystemExit, match="NAME=DEVICE"):  # a bad --cameras value: checked before connecting
        main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.6,0.1,0.2", "--cameras", "front"])
    assert robots[-1].calls == []
    missing = tmp_path / "no-such-video.mp4"
    with pytest.raises(DriverError, match="cannot open"):  # fails while the env connects its cameras
        main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.6,0.1,0.2",
              "--cameras", f"front={missing}"])
    assert robots[-1].calls[0] == "connect" and robots[-1].calls[-1] == "disconnect"


def test_deploy_runs_a_world_model_agent_toward_a_goal_image(sim_server, tmp_path, capsys):
    """``--agent wm:RUN`` loads through ``armworld.agents.loading`` and sees the model's camera at its size."""
    from test_world_model_agent import tiny_world_model

    from armworld.worldmodel.checkpoint import save_checkpoint
    from armworld.worldmodel.train import ACTraining

    wm = tiny_world_model()
    save_checkpoint(tmp_path / "wm", 0, dict(ACTraining(wm).checkpoint_config(), train={"camera": "front"}),
                    wm.state_dict(), metadata={})
    goal = tmp_path / "goal.png"
    Image.fromarray(np.full((64, 64, 3), 128, dtype=np.uint8)).save(goal)
    code = main(["deploy", "--robot", f"sim://127.0.0.1:{sim_server}", "--agent", f"wm:{tmp_path / 'wm'}",
                 "--goal", str(goal), "--max-steps", "1", "--speed", "1.0"])
    out = capsys.readouterr().out
    assert code == 1 and "steps=1" in out  # an untrained model does not reach the goal in one step
    with pytest.raises(SystemExit, match="--goal"):
        main(["deploy", "--robot", "mock", "--agent", f"wm:{tmp_path / 'wm'}", "--max-steps", "2"])
    with pytest.raises(SystemExit, match="lacks"):
        main(["deploy", "--robot", "mock", "--agent", f"wm:{tmp_path / 'wm'}", "--goal", str(goal),
              "--cameras", "wrist=0", "--max-steps", "2"])


def test_deploy_rejects_bad_arguments():
    with pytest.raises(SystemExit, match="unknown agent"):
        main(["deploy", "--robot", "mock", "--agent", "oracle", "--max-steps", "3", "--yes"])
    with pytest.raises(SystemExit, match="no SB3 model|config.json"):
        main(["deploy", "--robot", "mock", "--agent", "sb3:/nonexistent/run", "--max-steps", "3", "--yes"])
    with pytest.raises(SystemExit, match="no checkpoint at .*nonexistent"):
        main(["deploy", "--robot", "mock", "--agent", "wm:/nonexistent/run", "--goal", "goal.png", "--yes"])
    with pytest.raises(ValueError, match="unknown robot"):
        main(["deploy", "--robot", "kuka://1.2.3.4", "--agent", "expert", "--yes"])
    with pytest.raises(SystemExit, match="x,y,z"):
        main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "1,2"])
