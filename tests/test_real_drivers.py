"""Vendor adapters against mocked vendor modules: the calls, their arguments and their order."""

from __future__ import annotations

import dataclasses
import sys
from unittest.mock import MagicMock, call

import numpy as np
import pytest

from armworld.envs.conventions import gripper_closure
from armworld.envs.panda import PANDA
from armworld.envs.real.drivers import make_kinematics, make_robot, parse_robot_url
from armworld.envs.real.drivers.gripper import FRANKA_HAND, XARM_GRIPPER, GripperMap
from armworld.envs.real.drivers.mock import MockRobot
from armworld.envs.real.kinematics import RobotIK
from armworld.envs.real.protocols import Command, DriverError, HealthState, RobotSpec
from armworld.envs.real.server import RobotClient, RobotServer
from armworld.envs.ur5e import UR5E

POS = np.array([0.5, -0.1, 0.3])
HALF_TURN_X_QUAT = [1.0, 0.0, 0.0, 0.0]  # the vendor tool frame of a gripper pointing down


def command(gripper=1.0, dof=7):
    return Command(POS.copy(), np.zeros(3), gripper, np.zeros(dof), 0.0)


def names(mock_calls):
    return [c[0] for c in mock_calls]


# ---------------------------------------------------------------- grippers


def test_gripper_conventions():
    droid_closed = 1.0  # DROID and armworld: 1 = closed
    menagerie = GripperMap(open_value=255.0, closed_value=0.0)  # Menagerie Panda: ctrl 255 = open
    assert menagerie.to_device(droid_closed) == 0.0 and menagerie.to_device(0.0) == 255.0
    assert menagerie.to_closure(255.0) == 0.0 and menagerie.to_closure(0.0) == 1.0
    assert FRANKA_HAND.to_device(1.0) == 0.0 and FRANKA_HAND.to_device(0.0) == pytest.approx(0.08)
    for width in (0.0, 0.02, 0.08):
        assert FRANKA_HAND.to_closure(width) == pytest.approx(gripper_closure(width, PANDA.gripper_max_width))
    assert XARM_GRIPPER.to_device(0.25) == pytest.approx(637.5)
    assert XARM_GRIPPER.to_device(7.0) == 0.0 and XARM_GRIPPER.to_closure(900.0) == 0.0


# ---------------------------------------------------------------- URLs


def test_robot_urls():
    assert parse_robot_url("mock").scheme == "mock"
    assert parse_robot_url("sim://127.0.0.1:5555").port == 5555
    with pytest.raises(ValueError, match="unknown robot"):
        parse_robot_url("kuka://10.0.0.1")
    with pytest.raises(ValueError, match="needs a host"):
        parse_robot_url("franka://")


@pytest.mark.parametrize("url, module, extra", [("franka://10.0.0.2", "franky", "franka"),
                                                 ("ur://10.0.0.3", "rtde_control", "ur"),
                                                 ("xarm://10.0.0.4", "xarm.wrapper", "xarm")])
def test_missing_vendor_package_names_the_extra(monkeypatch, url, module, extra):
    """Reported when the driver is made, before anything connects."""
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"{module} is missing: pip install 'armworld\[{extra}\]'"):
        make_robot(url)


# ---------------------------------------------------------------- kinematics


def test_the_bundled_ik_serves_a_panda_or_a_simulated_arm():
    assert make_kinematics(MockRobot()).solver.robot is PANDA
    with pytest.raises(ValueError, match="connect"):
        make_kinematics(RobotClient("tcp://127.0.0.1:1"))  # its spec comes from the server
    for name in ("ur5e", "xarm7"):  # a network client serving another arm has no ik of its own
        server = RobotServer(MockRobot(RobotSpec.load(name))).start()
        client = RobotClient(server.address)
        try:
            client.connect()
            with pytest.raises(ValueError, match=rf"no inverse kinematics for the {name} behind RobotClient.*ur://IP"):
                make_kinematics(client)
        finally:
            client.disconnect()
            server.close()
    from armworld.envs.real.drivers.sim import MujocoRobot

    sim = MujocoRobot("armworld/UR5eReach-v0", realtime=False)  # a UR5e that serves a sim task: the sim's model
    sim.connect()
    server = RobotServer(sim).start()
    client = RobotClient(server.address)
    try:
        client.connect()
        ik = make_kinematics(client)
        assert isinstance(ik, RobotIK) and ik.solver.robot is UR5E
        home = np.array(client.spec.q_home)
        np.testing.assert_allclose(ik.forward(home)[0], client.get_observation().ee_pos, atol=1e-6)
    finally:
        client.disconnect()
        server.close()
        sim.disconnect()


# ---------------------------------------------------------------- sim


@pytest.mark.parametrize("env_id, arm", [("armworld/FrankaReach-v0", PANDA), ("armworld/UR5eReach-v0", UR5E)],
                         ids=["panda", "ur5e"])
def test_sim_reset_homes_to_q_home_as_a_real_arm(env_id, arm):
    """Each simulated robot within its own limits file (the real drivers' spec: ``ur5e`` as ``ur://``)."""
    from armworld.envs.real.drivers.sim import MujocoRobot

    robot = MujocoRobot(env_id, realtime=False)
    robot.connect()
    try:
        assert robot.spec == RobotSpec.load(arm.name)
        connected = robot.get_observation()  # a powered-up arm rests at home, inside the workspace
        np.testing.assert_allclose(connected.q, robot.spec.q_home, atol=1e-9)
        assert np.all(connected.ee_pos >= robot.spec.workspace_min) and np.all(connected.ee_pos <= robot.spec.workspace_max)
        goal = robot.task_observation()["desired_goal"]
        np.testing.assert_array_equal(robot.reset().ee_pos, connected.ee_pos)
        np.testing.assert_array_equal(robot.task_observation()["desired_goal"], goal)  # the first reset: that episode
        for _ in range(2):  # a new seeded episode each time, the arm at home each time
            state = robot.reset()
            np.testing.assert_allclose(state.q, robot.spec.q_home, atol=1e-9)
            np.testing.assert_allclose(state.ee_pos, RobotIK(arm).forward(np.array(robot.spec.q_home))[0], atol=1e-6)
            assert state.gripper == pytest.approx(0.0, abs=1e-3)
        home = np.array(robot.spec.q_home) + 0.1
        np.testing.assert_allclose(robot.reset(home).q, home, atol=1e-9)
        with pytest.raises(DriverError, match=f"{arm.dof} finite"):
            robot.reset(np.zeros(arm.dof + 1))  # another arm's joints
    finally:
        robot.disconnect()


# ---------------------------------------------------------------- franky


@pytest.fixture
def franky(monkeypatch):
    module = MagicMock(name="franky")
    robot = module.Robot.return_value
    pose = robot.current_cartesian_state.pose.end_effector_pose
    pose.translation, pose.quaternion = list(POS), HALF_TURN_X_QUAT
    robot.current_joint_state.position = [0.1] * 7
    robot.current_joint_state.velocity = [0.0] * 7
    robot.join_motion.return_value = True
    robot.has_errors = False
    robot.state.robot_mode = module.RobotMode.Move
    module.Gripper.return_value.width = 0.08
    monkeypatch.setitem(sys.modules, "franky", module)
    return module


def test_franky_adapter(franky):
    arm = make_robot("franka://10.0.0.2?dynamics=0.05")
    arm.connect()
    arm.connect()  # idempotent
    franky.Robot.assert_called_once_with("10.0.0.2")
    robot, gripper = franky.Robot.return_value, franky.Gripper.return_value
    assert robot.relative_dynamics_factor == 0.05

    state = arm.reset()
    assert names(robot.mock_calls)[:3] == ["recover_from_errors", "move", "join_motion"]
    franky.JointMotion.assert_called_once_with(list(arm.spec.q_home))
    robot.join_motion.assert_called_once_with(timeout=30.0)
    np.testing.assert_allclose(state.ee_pos, POS)
    np.testing.assert_allclose(state.ee_euler, 0.0, atol=1e-9)  # pointing down = armworld identity
    assert state.gripper == 0.0

    robot.reset_mock()
    arm.send_action(command(gripper=1.0))
    (translation, quat), _ = franky.Affine.call_args
    np.testing.assert_allclose(translation, POS)
    np.testing.assert_allclose(np.abs(quat), HALF_TURN_X_QUAT, atol=1e-9)
    franky.CartesianMotion.assert_called_with(franky.Affine.return_value, franky.ReferenceType.Absolute)
    robot.move.assert_called_once_with(franky.CartesianMotion.return_value, asynchronous=True)
    gripper.move_async.assert_called_once_with(0.0, pytest.approx(0.05))  # closure 1 -> width 0
    arm.send_action(command(gripper=0.98))  # inside the deadband: no new gripper move
    assert gripper.move_async.call_count == 1

    assert arm.health().ok
    robot.state.robot_mode = franky.RobotMode.Reflex
    assert arm.health().state is HealthState.PROTECTIVE_STOP
    robot.state.robot_mode = franky.RobotMode.UserStopped
    assert arm.health().state is HealthState.EMERGENCY_STOP

    arm.disconnect()
    robot.move.assert_called_with(franky.CartesianStopMotion.return_value, asynchronous=True)
    arm.disconnect()
    with pytest.raises(DriverError, match="connect"):
        arm.get_observation()


def test_franky_reset_timeout_stops(franky):
    franky.Robot.return_value.join_motion.return_value = False
    arm = make_robot("franka://10.0.0.2")
    arm.connect()
    with pytest.raises(DriverError, match="not home"):
        arm.reset(timeout_s=1.0)
    franky.Robot.return_value.move.assert_called_with(franky.CartesianStopMotion.return_value, asynchronous=True)


# ---------------------------------------------------------------- ur-rtde


@pytest.fixture
def rtde(monkeypatch):
    modules = {name: MagicMock(name=name) for name in ("rtde_control", "rtde_receive", "rtde_io", "dashboard_client")}
    control = modules["rtde_control"].RTDEControlInterface.return_value
    receive = modules["rtde_receive"].RTDEReceiveInterface.return_value
    for method in ("isPoseWithinSafetyLimits", "moveJ", "isConnected", "isProgramRunning", "setWatchdog",
                   "servoStop", "servoL", "kickWatchdog", "reuploadScript"):
        getattr(control, method).return_value = True  # ur-rtde reports success with True
    modules["rtde_io"].RTDEIOInterface.return_value.setToolDigitalOut.return_value = True
    receive.isProtectiveStopped.return_value = False
    receive.isEmergencyStopped.return_value = False
    receive.getActualTCPPose.return_value = [*POS, np.pi, 0.0, 0.0]
    receive.getActualQ.return_value = [0.0] * 6
    receive.getActualQd.return_value = [0.0] * 6
    receive.getDigitalOutState.return_value = True
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return modules


def test_ur_adapter_servo_stream_and_watchdog(rtde):
    arm = make_robot("ur://10.0.0.3")
    arm.connect()
    control = rtde["rtde_control"].RTDEControlInterface.return_value
    receive = rtde["rtde_receive"].RTDEReceiveInterface.return_value
    io = rtde["rtde_io"].RTDEIOInterface.return_value
    rtde["rtde_control"].RTDEControlInterface.assert_called_once_with("10.0.0.3", 500.0)
    control.setWatchdog.assert_called_once()
    assert control.setWatchdog.call_args[0][0] < arm.spec.control_hz

    arm.reset()
    assert names(control.mock_calls)[-2:] == ["servoStop", "moveJ"]  # servoStop strictly before moveJ
    control.moveJ.assert_called_once_with(list(arm.spec.q_home), 0.25, 0.5)

    control.reset_mock()
    for _ in range(3):
        arm.send_action(command(gripper=0.7, dof=6))
    assert names(control.mock_calls) == ["isPoseWithinSafetyLimits", "servoL", "kickWatchdog"] * 3
    pose, speed, acc, duration, lookahead, gain = control.servoL.call_args[0]
    np.testing.assert_allclose(pose[:3], POS)
    np.testing.assert_allclose(np.abs(pose[3:]), [np.pi, 0, 0], atol=1e-6)  # gripper down
    assert duration == pytest.approx(arm.spec.dt) and 0.03 <= lookahead <= 0.2 and 100 <= gain <= 2000
    io.setToolDigitalOut.assert_called_with(0, True)

    state = arm.get_observation()
    np.testing.assert_allclose(state.ee_euler, 0.0, atol=1e-6)
    assert state.gripper == 1.0

    control.isPoseWithinSafetyLimits.return_value = False
    control.reset_mock()
    with pytest.raises(DriverError, match="safety limits"):
        arm.send_action(command(dof=6))
    control.servoL.assert_not_called()

    control.getInverseKinematicsHasSolution.return_value = True
    control.getInverseKinematics.return_value = [0.1] * 6
    q, ok = arm.ik(POS, np.eye(3), np.zeros(6))
    assert ok and q.shape == (6,)
    control.getInverseKinematicsHasSolution.return_value = False
    assert not arm.ik(POS, np.eye(3), np.zeros(6))[1]
    assert make_kinematics(arm) is arm

    receive.isProtectiveStopped.return_value = True
    assert arm.health().state is HealthState.PROTECTIVE_STOP
    control.isProgramRunning.return_value = False  # a protective stop ends the RTDE control script
    control.reset_mock()
    arm.reset()
    rtde["dashboard_client"].DashboardClient.return_value.unlockProtectiveStop.assert_called_once()
    assert names(control.mock_calls)[:4] == ["isProgramRunning", "reuploadScript", "servoStop", "moveJ"]
    receive.isProtectiveStopped.return_value = False
    control.isProgramRunning.return_value = True
    receive.isEmergencyStopped.return_value = True
    assert arm.health().state is HealthState.EMERGENCY_STOP

    arm.disconnect()
    assert names(control.mock_calls)[-3:] == ["servoStop", "stopScript", "disconnect"]
    receive.disconnect.assert_called_once_with()
    io.disconnect.assert_called_once_with()
    rtde["dashboard_client"].DashboardClient.return_value.disconnect.assert_called_once_with()
    arm.disconnect()
    io.disconnect.assert_called_once_with()  # idempotent


def test_ur_adapter_raises_when_a_call_fails(rtde):
    """ur-rtde answers False once its control script stopped; nothing may fail silently."""
    arm = make_robot("ur://10.0.0.3")
    arm.connect()
    control = rtde["rtde_control"].RTDEControlInterface.return_value
    io = rtde["rtde_io"].RTDEIOInterface.return_value
    arm.reset()

    control.servoL.return_value = False
    control.reset_mock()
    with pytest.raises(DriverError, match="servoL failed.*control script"):
        arm.send_action(command(dof=6))
    assert names(control.mock_calls) == ["isPoseWithinSafetyLimits", "servoL"]  # no kick after a failed servoL
    control.servoL.return_value = True

    control.kickWatchdog.return_value = False
    with pytest.raises(DriverError, match="kickWatchdog"):
        arm.send_action(command(dof=6))
    control.kickWatchdog.return_value = True

    io.setToolDigitalOut.return_value = False
    with pytest.raises(DriverError, match="setToolDigitalOut"):
        arm.send_action(command(dof=6))
    with pytest.raises(DriverError, match="setToolDigitalOut"):
        arm.reset()
    io.setToolDigitalOut.return_value = True

    control.servoStop.return_value = False
    control.reset_mock()
    with pytest.raises(DriverError, match="servoStop"):
        arm.stop()
    with pytest.raises(DriverError, match="servoStop"):
        arm.reset()
    control.moveJ.assert_not_called()  # no move while a servo stream may still run
    control.servoStop.return_value = True

    control.isProgramRunning.return_value = False
    control.reuploadScript.return_value = False
    with pytest.raises(DriverError, match="reuploadScript"):
        arm.reset()


def test_ur_adapter_refuses_a_failed_watchdog_setup(rtde):
    control = rtde["rtde_control"].RTDEControlInterface.return_value
    control.setWatchdog.return_value = False
    arm = make_robot("ur://10.0.0.3")
    with pytest.raises(DriverError, match="setWatchdog"):
        arm.connect()
    assert names(control.mock_calls)[-3:] == ["servoStop", "stopScript", "disconnect"]
    rtde["rtde_io"].RTDEIOInterface.return_value.disconnect.assert_called_once_with()
    with pytest.raises(DriverError, match="connect"):
        arm.get_observation()  # not left half connected


# ---------------------------------------------------------------- xArm


@pytest.fixture
def xarm(monkeypatch):
    wrapper = MagicMock(name="xarm.wrapper")
    api = wrapper.XArmAPI.return_value
    for method in ("set_servo_angle", "set_servo_cartesian", "set_gripper_position"):
        getattr(api, method).return_value = 0
    api.get_joint_states.return_value = (0, ([0.0] * 7, [0.0] * 7, [0.0] * 7))
    api.get_position.return_value = (0, [POS[0] * 1000, POS[1] * 1000, POS[2] * 1000, np.pi, 0.0, 0.0])
    api.get_gripper_position.return_value = (0, 850.0)
    api.error_code = 0
    package = MagicMock(name="xarm", wrapper=wrapper)
    monkeypatch.setitem(sys.modules, "xarm", package)
    monkeypatch.setitem(sys.modules, "xarm.wrapper", wrapper)
    return wrapper


def test_xarm_adapter(xarm):
    arm = make_robot("xarm://10.0.0.4")
    arm.connect()
    xarm.XArmAPI.assert_called_once_with("10.0.0.4", is_radian=True)
    api = xarm.XArmAPI.return_value

    state = arm.reset()
    assert names(api.mock_calls)[1:] == [
        "clean_error", "clean_warn", "motion_enable", "set_mode", "set_state", "set_servo_angle",
        "set_gripper_position", "set_mode", "set_state", "get_joint_states", "get_position", "get_gripper_position",
    ]
    assert api.set_mode.call_args_list == [call(0), call(1)]
    np.testing.assert_allclose(state.ee_pos, POS)
    np.testing.assert_allclose(state.ee_euler, 0.0, atol=1e-9)
    assert state.gripper == 0.0

    api.reset_mock()
    arm.send_action(command(gripper=1.0))
    (pose,), kwargs = api.set_servo_cartesian.call_args
    np.testing.assert_allclose(pose[:3], POS * 1000)
    np.testing.assert_allclose(np.abs(pose[3:]), [np.pi, 0, 0], atol=1e-9)
    assert kwargs == {"is_radian": True}
    api.set_gripper_position.assert_called_once_with(0.0, wait=False)  # closure 1 -> position 0

    api.set_servo_cartesian.return_value = 9
    with pytest.raises(DriverError, match="code 9"):
        arm.send_action(command())

    api.get_inverse_kinematics.return_value = (0, [0.2] * 7)
    q, ok = arm.ik(POS, np.eye(3), np.zeros(7))
    assert ok and np.allclose(q, 0.2)
    assert api.get_inverse_kinematics.call_args.kwargs == {"input_is_radian": True, "return_is_radian": True}
    api.get_inverse_kinematics.return_value = (-1, [])
    assert not arm.ik(POS, np.eye(3), np.zeros(7))[1]

    api.error_code = 2
    assert arm.health().state is HealthState.EMERGENCY_STOP
    api.error_code = 31
    assert arm.health().state is HealthState.PROTECTIVE_STOP
    arm.stop()
    api.set_state.assert_called_with(4)
    arm.disconnect()
    api.disconnect.assert_called_once()


def test_the_sim_driver_refuses_a_spec_that_does_not_fit_its_robot():
    from armworld.envs.real.drivers.sim import MujocoRobot

    with pytest.raises(ValueError, match=r"the panda spec has 7 joints; armworld/UR5eReach-v0 simulates the ur5e, "
                       r"which has 6"):
        MujocoRobot("armworld/UR5eReach-v0", realtime=False, spec=RobotSpec.load("panda"))
    wider = dataclasses.replace(RobotSpec.load("panda"), q_max=(3.0, *RobotSpec.load("panda").q_max[1:]))
    with pytest.raises(ValueError, match=r"the panda spec's joint ranges .* exceed the panda model's"):
        MujocoRobot("armworld/FrankaReach-v0", realtime=False, spec=wider)
    with pytest.raises(ValueError, match=r"sim: unknown env 'armworld/UR5Reach-v0'; choose one of .*UR5eReach-v0"):
        MujocoRobot("armworld/UR5Reach-v0", realtime=False)
