"""``armworld deploy --task``: every sim task, the served task by default, and the cube tasks refused where no cube
pose is served."""

from __future__ import annotations

import pytest

from armworld.cli import main
from armworld.envs.registry import ENV_IDS, env_id
from armworld.envs.real.drivers.sim import MujocoRobot
from armworld.envs.real.server import RobotServer


@pytest.fixture
def served():
    """Serves a sim env in process: ``served(env_id)`` -> its ``sim://`` URL."""
    started: list[tuple[RobotServer, MujocoRobot]] = []

    def serve(env_id: str) -> str:
        robot = MujocoRobot(env_id)
        robot.connect()
        server = RobotServer(robot).start()
        started.append((server, robot))
        return f"sim://127.0.0.1:{server.address.rsplit(':', 1)[1]}"

    yield serve
    for server, robot in started:
        server.close()
        robot.disconnect()


def test_deploy_runs_the_served_task_by_default(served, capsys):
    url = served("armworld/FrankaStack-v0")  # no --task: the stack expert, as the server runs stack
    code = main(["deploy", "--robot", url, "--agent", "expert", "--max-steps", "80", "--speed", "1.0"])
    out = capsys.readouterr().out
    assert code == 0 and "success=True" in out, out


def test_deploy_refuses_a_task_or_goal_the_server_contradicts(served, capsys):
    url = served("armworld/FrankaPush-v0")
    assert main(["deploy", "--robot", url, "--agent", "expert", "--task", "reach", "--dry-run"]) == 1
    assert f"error: {url} runs the push task, not reach" in capsys.readouterr().err
    assert main(["deploy", "--robot", url, "--agent", "expert", "--goal-pos", "0.5,0,0.2", "--dry-run"]) == 1
    assert f"error: {url} serves the push task's goal: drop --goal-pos" in capsys.readouterr().err


def test_cube_task_experts_need_a_served_cube_pose(capsys):
    # the mock arm serves no task observation: its achieved goal would be the TCP, not the cube
    assert main(["deploy", "--robot", "mock", "--agent", "expert", "--task", "stack", "--max-steps", "2",
                 "--dry-run"]) == 1
    assert "perception stack" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["reach", "push", "pick_place", "stack"])
def test_deploy_runs_the_expert_on_a_simulated_ur5e(served, capsys, task: str):
    """Each task on the UR5e served in the sim, within the ur:// driver's limits file: a dry run, then the expert
    succeeds through the bridge within the task's step budget."""
    entry = ENV_IDS[env_id("ur5e", task)]
    url = served(entry.env_id)
    base = ["deploy", "--robot", url, "--agent", "expert", "--task", task]
    assert main([*base, "--max-steps", "5", "--dry-run"]) == 0
    assert "dry run: nothing sent" in capsys.readouterr().out
    code = main([*base, "--max-steps", str(entry.max_episode_steps), "--speed", "1.0"])
    out = capsys.readouterr().out
    assert code == 0 and "success=True" in out, out
