"""CLI verbs for the sim-to-real bridge: ``robot-server``, ``deploy`` and ``calibrate``."""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from armworld.commands import (
    check_output,
    fail,
    image_side,
    non_negative_float,
    number,
    positive_float,
    positive_int,
    seed,
    user_errors,
)
from armworld.envs.episode import EpisodeObserver
from armworld.envs.registry import TASKS

if TYPE_CHECKING:
    from armworld.envs.real.env import RealArmEnv


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    from armworld.agents.loading import agent_help

    server = subparsers.add_parser(
        "robot-server", help="serve a robot (or the real-time sim with --sim) over the bridge protocol")
    source = server.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", action="store_true", help="serve the simulated arm of --env in real time, within "
                        "that robot's limits file (the Panda's, or the UR5e's as ur:// uses)")
    source.add_argument("--robot", help="serve a local driver: franka://IP, ur://IP, xarm://IP, mock")
    server.add_argument("--env", default="armworld/FrankaReach-v0", help="sim env id (with --sim); it names the "
                        "robot: armworld/Franka*-v0 the Panda, armworld/UR5e*-v0 the UR5e")
    server.add_argument("--seed", type=seed, default=0, help="seed of the first sim reset")
    server.add_argument("--cameras", default="front", help="comma-separated sim cameras to serve")
    server.add_argument("--image-size", type=image_side, default=64, help="sim camera image side (pixels, 8..640)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only; any other "
                        "needs --token-file)")
    server.add_argument("--port", type=number(int, 1, 65535), default=5555, help="TCP port, 1-65535")
    server.add_argument("--latency-ms", type=non_negative_float, default=0.0, help="delay added to every reply (testing)")
    server.add_argument("--token-file", help="file holding the shared secret every client must send (mode 0600); "
                        "required with --robot and off loopback")
    server.add_argument("--new-token", action="store_true", help="write a new random token to --token-file first")
    server.set_defaults(func=robot_server)

    deploy_parser = subparsers.add_parser(
        "deploy", help="run an agent on a robot behind the safety layer",
        description="Run one episode of an agent on a robot, every action through the safety layer.",
        epilog=DEPLOY_EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    deploy_parser.add_argument("--robot", required=True, help="mock | sim://HOST:PORT | franka://IP | ur://IP | xarm://IP")
    deploy_parser.add_argument("--agent", required=True, help=agent_help())
    deploy_parser.add_argument("--task", choices=tuple(TASKS),
                               help="what the scripted expert does (default: the task a sim server runs, else "
                               "reach); all but reach need the cube pose and goal that a robot serving a task "
                               "observation (sim://) provides")
    deploy_parser.add_argument("--goal", help="goal image (PNG) for world-model agents")
    deploy_parser.add_argument("--goal-pos", help="desired TCP position x,y,z (m, base frame) for a robot that serves "
                               "no task goal (needed there by every agent but wm:)")
    deploy_parser.add_argument("--max-steps", type=positive_int, default=100)
    deploy_parser.add_argument("--cameras", default="", help="comma-separated cameras: served ones for sim://, "
                               "else NAME=DEVICE (OpenCV index or path)")
    deploy_parser.add_argument("--image-size", type=image_side, default=None, help="image side (pixels) for agents "
                               "that do not fix it: 256 for vjepa2-ac: (the released size), else 64 (wm: models and "
                               "pixel policies use their own)")
    deploy_parser.add_argument("--device", default=None, help="where a world model runs: cpu, cuda, cuda:N or mps "
                               "(default: cuda when available, else cpu)")
    deploy_parser.add_argument("--encoder", default=None, metavar="ENTRY|HF_DIR", help="vjepa2-ac: the checkpoint "
                               "entry holding the encoder (default target_encoder), or a Hugging Face V-JEPA 2 directory")
    deploy_parser.add_argument("--seed", type=seed, default=0, help="seed of the agent's randomness")
    deploy_parser.add_argument("--speed", type=number(float, 0.0, 1.0, above=True), default=0.25,
                               help="speed factor in (0, 1] (starts slow)")
    deploy_parser.add_argument("--dry-run", action="store_true", help="print what would be sent at each step and "
                               "send nothing (the arm is not even homed); exit 0 when the episode runs to its end")
    deploy_parser.add_argument("--yes", action="store_true", help="skip the confirmation prompt")
    deploy_parser.add_argument("--record", help="append the episode to this HDF5 trajectory file")
    deploy_parser.set_defaults(func=deploy)

    calibrate_parser = subparsers.add_parser("calibrate", help="ChArUco board images and hand-eye camera calibration")
    calibrate_parser.add_argument("--squares", default="9x14", help="board squares, columns x rows")
    calibrate_parser.add_argument("--square-mm", type=positive_float, default=20.0, help="chessboard square side (mm)")
    calibrate_parser.add_argument("--marker-mm", type=positive_float, default=16.0, help="ArUco marker side (mm)")
    calibrate_parser.add_argument("--dictionary", default="DICT_5X5_100", help="a cv2.aruco.DICT_* name")
    steps = calibrate_parser.add_subparsers(dest="step", required=True)
    board = steps.add_parser("board", help="write the board image to print (check the printed square size)")
    board.add_argument("--out", required=True, help="PNG file")
    board.add_argument("--pixels-per-square", type=positive_int, default=200)
    eye = steps.add_parser("hand-eye", help="camera pose from board images taken at several robot poses")
    eye.add_argument("--images", nargs="+", required=True, help="one image per robot pose, in order")
    eye.add_argument("--poses", required=True, help=".npy file of T_base_gripper [N, 4, 4] (m), the TCP poses")
    eye.add_argument("--mount", required=True, choices=("wrist", "fixed"),
                     help="wrist: camera on the gripper, board fixed; fixed: camera fixed, board in the gripper")
    intrinsics = eye.add_mutually_exclusive_group(required=True)
    intrinsics.add_argument("--fovy", type=number(float, 0.0, 180.0, above=True, below=True),
                            help="vertical field of view (deg) of an undistorted camera")
    intrinsics.add_argument("--intrinsics", help="YAML with K (3x3, pixels) and dist (OpenCV order)")
    eye.add_argument("--out", required=True, help="YAML file for the result")
    calibrate_parser.set_defaults(func=calibrate)


DEPLOY_EXIT_STATUS = """\
exit status:
  0    the goal was reached; with --dry-run: the episode ran to its end (nothing was
       sent, so the unmoved arm is not judged)
  1    the goal was not reached, or the command was refused (one `error:` line)
  2    the safety layer or the arm stopped the run (dry runs too)
  3    success could not be judged: no goal position (an image goal on a robot serving none)
  130  interrupted (Ctrl-C)"""


def _errors() -> tuple[type[BaseException], ...]:
    """What the real verbs report as ``error: ...``: bad arguments and files, refusals of the
    robot. A missing extra (ZeroMQ, msgpack, OpenCV, a vendor driver) reaches ``armworld.cli.main``,
    which names the extra to install."""
    import gymnasium
    import yaml

    from armworld.envs.real.protocols import RealRobotError

    errors = user_errors(OSError, RealRobotError, gymnasium.error.Error, yaml.YAMLError)
    try:
        import zmq
    except ImportError:
        return errors
    return (*errors, zmq.ZMQError)


def robot_server(args: argparse.Namespace) -> int:
    """``armworld robot-server``: serve until Ctrl-C."""
    try:
        return _robot_server(args)
    except _errors() as error:
        return fail(str(error))


def _server_token(args: argparse.Namespace) -> str | None:
    """The token the server requires (``None`` for a sim on loopback without ``--token-file``).

    A real arm (``--robot``) and any address other than loopback need one: refused otherwise.
    """
    from armworld.envs.real.server import is_loopback, read_token, write_token

    if args.new_token and not args.token_file:
        raise ValueError("--new-token writes the token to --token-file: give --token-file PATH")
    if args.token_file is None:
        if args.robot is not None or not is_loopback(args.host):
            where = f"serving {args.robot}" if args.robot is not None else f"listening on {args.host}"
            raise ValueError(f"{where} needs a shared secret: give --token-file PATH (add --new-token to create "
                             "it), and give clients sim://HOST:PORT?token_file=PATH")
        return None
    return write_token(args.token_file) if args.new_token else read_token(args.token_file)


def _robot_server(args: argparse.Namespace) -> int:
    from armworld.envs.real.drivers import make_robot
    from armworld.envs.real.drivers.sim import MujocoRobot, SimCamera
    from armworld.envs.real.kinematics import envelope_forward
    from armworld.envs.real.server import RobotServer

    token = _server_token(args)
    if args.sim:
        robot = MujocoRobot(args.env, seed=args.seed)
        robot.connect()
        cameras = {name: SimCamera(robot, name, args.image_size) for name in _names(args.cameras)}
    else:
        robot, cameras = make_robot(args.robot), {}
    try:
        server = RobotServer(robot, cameras, f"tcp://{args.host}:{args.port}", latency_s=args.latency_ms / 1e3,
                             token=token, forward=envelope_forward(robot))
        access = (f"clients need the token in {args.token_file} (sim://HOST:PORT?token_file=PATH)" if token
                  else "no token: any process on this machine can connect")
        served = f"sim {args.env} ({robot.spec.name} limits)" if args.sim else args.robot
        print(f"serving {served} on {server.address}; {access}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        robot.disconnect()
    return 0


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _cameras(robot, spec: str) -> dict:
    from armworld.envs.real.server import RemoteCamera, RobotClient

    cameras = {}
    for item in _names(spec):
        if isinstance(robot, RobotClient):
            cameras[item] = RemoteCamera(robot, item)
        else:
            from armworld.envs.real.cameras import OpenCVCamera

            name, _, device = item.partition("=")
            if not device:
                raise ValueError(f"camera {item!r}: give NAME=DEVICE (an OpenCV index or path)")
            cameras[name] = OpenCVCamera(name, int(device) if device.isdigit() else device)
    return cameras


def _agent_env_settings(args: argparse.Namespace) -> tuple[str, int, int]:
    """Cameras, image size and action size the agent was trained with (the command line's where the agent has none)."""
    from armworld.agents.loading import agent_kind, env_kwargs_for

    trained = env_kwargs_for(args.agent, args.image_size if agent_kind(args.agent).image_size else None)
    cameras, size = args.cameras, args.image_size or 64
    if trained.get("obs_mode", "state") != "state":
        needed = tuple(trained.get("cameras", ("front",)))
        given = _names(cameras)
        missing = [name for name in needed if name not in {item.partition("=")[0] for item in given}]
        if given and missing:
            raise ValueError(f"{args.agent} sees cameras {list(needed)}; --cameras lacks {missing}")
        cameras = cameras or ",".join(needed)
        size = int(trained.get("image_size", size))
    return cameras, size, int(trained.get("action_dim", 7))


def _goal_pos(text: str | None) -> tuple[float, float, float] | None:
    """``--goal-pos x,y,z`` (m) as a tuple, or ``None`` when not given."""
    if text is None:
        return None
    try:
        goal = tuple(float(value) for value in text.split(","))
    except ValueError:
        goal = ()
    if len(goal) != 3 or not all(math.isfinite(value) for value in goal):
        raise ValueError(f"--goal-pos takes x,y,z in metres, e.g. 0.5,0.1,0.2; got {text!r}")
    return goal


def _check_task(args: argparse.Namespace, served: str | None) -> None:
    """Refuse a run whose goal is unknown, or whose ``--task`` or ``--goal-pos`` contradicts the robot.

    ``served`` is the task whose observation (cube poses and goal) the robot serves (a sim
    server's), ``None`` for an arm that serves none.
    """
    from armworld.agents.loading import is_world_model

    if served is not None:
        if args.task not in (None, served):
            raise ValueError(f"{args.robot} runs the {served} task, not {args.task}: drop --task, or serve a "
                             f"{args.task} env (armworld robot-server --sim --env ...)")
        if args.goal_pos is not None:
            raise ValueError(f"{args.robot} serves the {served} task's goal: drop --goal-pos")
        return
    task = args.task or "reach"
    if args.agent == "expert" and task != "reach":
        raise ValueError(f"the {task} expert needs the cube's pose and its goal, which {args.robot} does not "
                         "serve (no task observation; a real arm needs a perception stack serving them): "
                         "use a sim:// robot or --task reach with --goal-pos")
    if args.goal_pos is None and not is_world_model(args.agent):
        raise ValueError(f"{args.robot} serves no task goal: give --goal-pos x,y,z, the TCP target (m, robot base "
                         "frame); only a wm: agent, heading for its goal image, runs without one")


def deploy(args: argparse.Namespace) -> int:
    """``armworld deploy``: one episode of an agent on a robot, through the safety layer.

    Everything that can fail on the command line (arguments, agent, goal, cameras, the driver's
    vendor package) is checked before the robot connects; what the robot serves (a sim server's
    task) right after it connects, before anything moves. Once it is connected, the arm is
    stopped and disconnected whatever happens. Exit status (:data:`DEPLOY_EXIT_STATUS`): 0 when
    the goal is reached, or when a dry run ran to its end (it moves nothing, so success is not
    judged); 1 when the goal is not reached, or on an error; 2 when the safety layer or the arm
    stopped the run; 3 when no goal position is known to judge it (an image goal on a robot
    serving none); 130 on Ctrl-C.
    """
    try:
        return _deploy(args)
    except _errors() as error:
        return fail(str(error))


def _deploy(args: argparse.Namespace) -> int:
    from armworld.agents.loading import agent_specs, is_world_model, resolve_device
    from armworld.envs.real.drivers import make_kinematics, make_robot
    from armworld.envs.real.env import RealArmEnv, RealArmEnvConfig
    from armworld.envs.real.server import RobotClient

    if args.record:
        check_output(args.record, *([args.goal] if args.goal else []))
    if is_world_model(args.agent) and not args.goal:
        raise ValueError(f"{args.agent} plans toward a goal image: give --goal goal.png (taken by the deploy camera)")
    if not is_world_model(args.agent) and (args.device or args.encoder):
        raise ValueError(f"--device and --encoder are for world-model agents ({agent_specs(world_models=True)})")
    if is_world_model(args.agent):
        resolve_device(args.device)  # an unavailable device is refused before the robot connects
    cameras, image_size, action_dim = _agent_env_settings(args)
    config = RealArmEnvConfig(task=args.task, action_dim=action_dim, image_size=image_size, speed_factor=args.speed,
                              goal=_goal_pos(args.goal_pos), dry_run=args.dry_run)
    robot = make_robot(args.robot)
    camera_devices = _cameras(robot, cameras)  # a bad --cameras value fails before anything connects
    if not isinstance(robot, RobotClient):  # a network client learns what its server serves when it connects
        _check_task(args, getattr(robot, "task", None))
    if not args.robot.startswith(("mock", "sim://")) and not _confirmed(args):
        return 1
    robot.connect()  # a network client learns its robot's spec (and so its kinematics) and task here
    try:
        _check_task(args, getattr(robot, "task", None))
        if isinstance(robot, RobotClient) and robot.task is None and not _confirmed(args):  # a real arm behind a server
            robot.disconnect()
            return 1
        env = RealArmEnv(robot, camera_devices, make_kinematics(robot), config)
    except BaseException:
        robot.disconnect()
        raise
    writer = recorder = None
    try:
        if args.record:
            from armworld.datasets.hdf5 import TrajectoryWriter
            from armworld.datasets.record import EpisodeRecorder

            writer = TrajectoryWriter(args.record, env.env_args(), exist="resume")
            recorder = EpisodeRecorder(env)
        status, info, events = _run_episode(args, env, [recorder] if recorder is not None else [])
    finally:
        try:
            env.close()  # stops and disconnects the arm first
        finally:  # then the episode is appended, interrupted or not, even when closing failed
            try:
                if recorder is not None and recorder.num_steps:
                    writer.append(recorder.episode(seed=-1, policy="real"))
            finally:
                if writer is not None:
                    writer.close()
    timing = env.timing()
    timing_text = f"steps={int(timing['steps'])} " + " ".join(f"{k}={v:.4f}" for k, v in timing.items() if k != "steps")
    if args.dry_run:  # nothing moved: whether the goal was reached says nothing about the agent
        applied = ",".join(f"{name}:{count}" for name, count in sorted(events.items())) or "none"
        print(f"dry run: nothing sent; safety_events={applied} {timing_text}")
        return status
    judged = "desired_goal" in env.observation_space.spaces  # else an image goal on a robot serving no goal position
    outcome = (f"success={info['is_success']} distance={info['distance']:.4f} m" if judged
               else "success=unknown distance=unknown (no goal position)")
    print(f"{outcome} {timing_text}")
    return status if status else (3 if not judged else 0 if info["is_success"] else 1)


def _confirmed(args: argparse.Namespace) -> bool:
    """Whether the user lets a real arm move (always for --dry-run, which moves nothing, and --yes)."""
    if args.dry_run or args.yes:
        return True
    answer = input(f"Move {args.robot} at speed factor {args.speed}? Keep the E-stop in reach. [y/N] ")
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("aborted")
    return False


def _run_episode(
    args: argparse.Namespace, env: RealArmEnv, observers: list[EpisodeObserver]
) -> tuple[int, dict[str, Any], Counter[str]]:
    """Load the agent and run one episode of it on ``env`` (without a reset seed), seen by ``observers``.

    Returns the exit status (0; 130 on Ctrl-C; 2 when the safety layer or the arm stopped the
    run), the last step's info and how often each safety event changed an action.
    """
    from armworld.agents.loading import agent_kind, is_world_model, load_agent
    from armworld.envs.episode import run_episode
    from armworld.envs.real.protocols import RealRobotError
    from armworld.worldmodel.checkpoint import CheckpointError

    try:
        options = {"goal": args.goal, "device": args.device, "encoder": args.encoder} if is_world_model(args.agent) else {}
        if agent_kind(args.agent).image_size:
            options["image_size"] = args.image_size
        agent = load_agent(args.agent, env, seed=args.seed, **options)
    except (ValueError, CheckpointError, FileNotFoundError) as error:
        raise ValueError(f"cannot run {args.agent} on this robot: {error}") from None
    log = _DeployLog(args.dry_run)
    status = 0
    try:
        run_episode(env, agent, None, args.max_steps, observers=[log, *observers], until=lambda info: info["is_success"])
    except KeyboardInterrupt:
        print("interrupted: stopping the arm", file=sys.stderr)
        status = 130
    except RealRobotError as error:
        print(f"stopped: {error}", file=sys.stderr)
        status = 2
    return status, log.info, log.events


class _DeployLog(EpisodeObserver):
    """Keeps the last info and counts the safety events of a deploy episode; in a dry run, prints each step."""

    def __init__(self, dry_run: bool) -> None:
        self.dry_run = dry_run
        self.info: dict[str, Any] = {"is_success": False, "distance": float("nan")}
        self.events: Counter[str] = Counter()
        self.steps = 0

    def on_reset(self, obs: dict[str, Any], info: dict[str, Any]) -> None:
        self.info = info

    def on_step(self, action, obs, reward, terminated, truncated, info) -> None:
        import numpy as np

        self.info = info
        self.events.update(info["safety_events"])
        if self.dry_run:
            sent = info["sent"]
            print(f"step {self.steps}: action {np.round(action, 3).tolist()} -> clipped "
                  f"{np.round(info['clipped_action'], 3).tolist()} target {np.round(sent.ee_pos, 4).tolist()} "
                  f"events {list(info['safety_events'])}")
        self.steps += 1


def calibrate(args: argparse.Namespace) -> int:
    """``armworld calibrate board|hand-eye``."""
    try:
        return _calibrate(args)
    except _errors() as error:
        return fail(str(error))


def _calibrate(args: argparse.Namespace) -> int:
    import os

    import cv2
    import numpy as np
    import yaml

    from armworld.envs.real.calibration import CharucoBoardConfig, Intrinsics, detect_board, hand_eye

    inputs = [] if args.step == "board" else [*args.images, args.poses, *([args.intrinsics] if args.intrinsics else [])]
    check_output(args.out, *inputs)
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):  # refused now, not after the board images are read and solved
        raise ValueError(f"cannot write {args.out}: the folder {folder} does not exist; create it first")
    columns, _, rows = args.squares.partition("x")
    if not (columns.isdigit() and rows.isdigit()):
        raise ValueError(f"--squares takes COLUMNSxROWS, e.g. 9x14, got {args.squares!r}")
    if not 0 < args.marker_mm < args.square_mm:
        raise ValueError(f"--marker-mm ({args.marker_mm}) must be positive and smaller than --square-mm "
                         f"({args.square_mm}): the marker sits inside a square")
    board = CharucoBoardConfig(int(columns), int(rows), args.square_mm / 1e3, args.marker_mm / 1e3, args.dictionary)
    if args.step == "board":
        try:
            written = cv2.imwrite(args.out, board.image(args.pixels_per_square))
        except cv2.error:  # a file type OpenCV cannot write
            written = False
        if not written:
            raise ValueError(f"cannot write {args.out}: give a .png path in an existing, writable folder")
        width, height = board.size_m
        print(f"wrote {args.out}: print it so that the board measures {width * 1e3:.0f} x {height * 1e3:.0f} mm")
        return 0

    poses = np.load(args.poses)
    if poses.shape != (len(args.images), 4, 4):
        raise ValueError(f"{args.poses} holds {poses.shape}; need [{len(args.images)}, 4, 4], one pose per image")
    images = []
    for path in args.images:
        bgr = cv2.imread(path)
        if bgr is None:
            raise ValueError(f"cannot read image {path}")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    height, width = images[0].shape[:2]
    if args.fovy is not None:
        camera = Intrinsics.from_fovy(args.fovy, width, height)
    else:
        with open(args.intrinsics) as file:
            data = yaml.safe_load(file)
        K = np.array(data["K"], dtype=np.float64) if isinstance(data, dict) and "K" in data else None
        if K is None or K.shape != (3, 3):
            raise ValueError(f"{args.intrinsics} needs K, the 3x3 camera matrix (pixels), and may give dist "
                             "(OpenCV order)")
        camera = Intrinsics(K, np.array(data.get("dist", [0.0] * 5), dtype=np.float64), width, height)
    seen = [detect_board(image, board, camera) for image in images]
    result = hand_eye(list(poses), [s.T_camera_board for s in seen], args.mount)
    frame = "T_gripper_camera" if args.mount == "wrist" else "T_base_camera"
    report = {
        "mount": args.mount,
        frame: np.round(result.T, 6).tolist(),
        "board_position_spread_m": result.position_spread_m,
        "board_rotation_spread_deg": float(np.degrees(result.rotation_spread_rad)),
        "reprojection_px_max": max(s.reprojection_px for s in seen),
    }
    with open(args.out, "w") as file:
        yaml.safe_dump(report, file, sort_keys=False)
    print(f"{frame} written to {args.out}; the board poses agree within {result.position_spread_m * 1e3:.1f} mm "
          f"and {report['board_rotation_spread_deg']:.2f} deg")
    return 0
