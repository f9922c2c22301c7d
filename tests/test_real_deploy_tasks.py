"""``armworld deploy --task``: every sim task, and the cube tasks refused where no cube pose is served."""

from __future__ import annotations

import pytest

from armworld.cli import main
from armworld.envs.real.drivers.sim import MujocoRobot
from armworld.envs.real.server import RobotServer


def test_deploy_stacks_with_a_served_stack_sim(capsys):
    robot = MujocoRobot("armworld/FrankaStack-v0")
    robot.connect()
    server = RobotServer(robot).start()
    try:
        port = server.address.rsplit(":", 1)[1]
        code = main(["deploy", "--robot", f"sim://127.0.0.1:{port}", "--agent", "expert", "--task", "stack",
                     "--max-steps", "80", "--speed", "1.0"])
    finally:
        server.close()
        robot.disconnect()
    out = capsys.readouterr().out
    assert code == 0 and "success=True" in out, out


def test_cube_task_experts_need_a_served_cube_pose():
    # the mock arm serves no task observation: its achieved goal would be the TCP, not the cube
    with pytest.raises(SystemExit, match="perception stack"):
        main(["deploy", "--robot", "mock", "--agent", "expert", "--task", "stack", "--max-steps", "2", "--dry-run"])
