"""CLI verbs for the sim-to-real bridge: ``robot-server``, ``deploy`` and ``calibrate``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from armworld.envs.real.env import RealArmEnv


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    server = subparsers.add_parser(
        "robot-server", help="serve a robot (or the real-time sim with --sim) over the bridge protocol")
    source = server.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", action="store_true", help="serve the MuJoCo Franka in real time")
    source.add_argument("--robot", help="serve a local driver: franka://IP, ur://IP, xarm://IP, mock")
    server.add_argument("--env", default="armworld/FrankaReach-v0", help="sim env id (with --sim)")
    server.add_argument("--seed", type=int, default=0, help="seed of the first sim reset")
    server.add_argument("--cameras", default="front", help="comma-separated sim cameras to serve")
    server.add_argument("--image-size", type=int, default=64, help="sim camera image side (pixels)")
    server.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    server.add_argument("--port", type=int, default=5555)
    server.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every reply (testing)")
    server.set_defaults(func=robot_server)

    deploy_parser = subparsers.add_parser("deploy", help="run an agent on a robot behind the safety layer")
    deploy_parser.add_argument("--robot", required=True, help="mock | sim://HOST:PORT | franka://IP | ur://IP | xarm://IP")
    deploy_parser.add_argument("--agent", required=True, help="expert | random | wm:RUN_DIR | wm:default | sb3:PATH")
    deploy_parser.add_argument("--task", default="reach", choices=("reach", "push", "pick_place", "stack"),
                               help="what the scripted expert does; all but reach need the cube pose and goal "
                               "that a robot serving a task observation (sim://) provides")
    deploy_parser.add_argument("--goal", help="goal image (PNG) for world-model agents")
    deploy_parser.add_argument("--goal-pos", help="desired TCP position x,y,z (m) when the robot serves no task state")
    deploy_parser.add_argument("--max-steps", type=int, default=100)
    deploy_parser.add_argument("--cameras", default="", help="comma-separated cameras: served ones for sim://, "
                               "else NAME=DEVICE (OpenCV index or path)")
    deploy_parser.add_argument("--image-size", type=int, default=64, help="image side (pixels) for agents "
                               "that do not fix it (world models and pixel policies use their own)")
    deploy_parser.add_argument("--seed", type=int, default=0, help="seed of the agent's randomness")
    deploy_parser.add_argument("--speed", type=float, default=0.25, help="speed factor in (0, 1] (starts slow)")
    deploy_parser.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    deploy_parser.add_argument("--yes", action="store_true", help="skip the confirmation prompt")
    deploy_parser.add_argument("--record", help="append the episode to this HDF5 trajectory file")
    deploy_parser.set_defaults(func=deploy)

    calibrate_parser = subparsers.add_parser("calibrate", help="ChArUco board images and hand-eye camera calibration")
    calibrate_parser.add_argument("--squares", default="9x14", help="board squares, columns x rows")
    calibrate_parser.add_argument("--square-mm", type=float, default=20.0, help="chessboard square side (mm)")
    calibrate_parser.add_argument("--marker-mm", type=float, default=16.0, help="ArUco marker side (mm)")
    calibrate_parser.add_argument("--dictionary", default="DICT_5X5_100", help="a cv2.aruco.DICT_* name")
    steps = calibrate_parser.add_subparsers(dest="step", required=True)
    board = steps.add_parser("board", help="write the board image to print (check the printed square size)")
    board.add_argument("--out", required=True, help="PNG file")
    board.add_argument("--pixels-per-square", type=int, default=200)
    eye = steps.add_parser("hand-eye", help="camera pose from board images taken at several robot poses")
    eye.add_argument("--images", nargs="+", required=True, help="one image per robot pose, in order")
    eye.add_argument("--poses", required=True, help=".npy file of T_base_gripper [N, 4, 4] (m), the TCP poses")
    eye.add_argument("--mount", required=True, choices=("wrist", "fixed"),
                     help="wrist: camera on the gripper, board fixed; fixed: camera fixed, board in the gripper")
    intrinsics = eye.add_mutually_exclusive_group(required=True)
    intrinsics.add_argument("--fovy", type=float, help="vertical field of view (deg) of an undistorted camera")
    intrinsics.add_argument("--intrinsics", help="YAML with K (3x3, pixels) and dist (OpenCV order)")
    eye.add_argument("--out", required=True, help="YAML file for the result")
    calibrate_parser.set_defaults(func=calibrate)


def robot_server(args: argparse.Namespace) -> int:
    """``armworld robot-server``: serve until Ctrl-C."""
    from armworld.envs.real.drivers import make_robot
    from armworld.envs.real.drivers.sim import MujocoRobot, SimCamera
    from armworld.envs.real.server import RobotServer

    if args.sim:
        robot = MujocoRobot(args.env, seed=args.seed)
        robot.connect()
        cameras = {name: SimCamera(robot, name, args.image_size) for name in _names(args.cameras)}
    else:
        robot, cameras = make_robot(args.robot), {}
    server = RobotServer(robot, cameras, f"tcp://{args.host}:{args.port}", latency_s=args.latency_ms / 1e3)
    print(f"serving {'sim ' + args.env if args.sim else args.robot} on {server.address}", flush=True)
    try:
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
                raise SystemExit(f"camera {item!r}: give NAME=DEVICE (an OpenCV index or path)")
            cameras[name] = OpenCVCamera(name, int(device) if device.isdigit() else device)
    return cameras


def _agent_env_settings(args: argparse.Namespace) -> tuple[str, int, int]:
    """Cameras, image size and action size the agent was trained with (the command line's where the agent has none)."""
    from armworld.agents.loading import AgentSpecError, check_spec, env_kwargs_for
    from armworld.worldmodel.checkpoint import CheckpointError

    try:
        check_spec(args.agent)
        trained = env_kwargs_for(args.agent)
    except (AgentSpecError, CheckpointError, FileNotFoundError) as error:
        raise SystemExit(str(error)) from None
    cameras, size = args.cameras, args.image_size
    if trained.get("obs_mode", "state") != "state":
        needed = tuple(trained.get("cameras", ("front",)))
        given = _names(cameras)
        missing = [name for name in needed if name not in {item.partition("=")[0] for item in given}]
        if given and missing:
            raise SystemExit(f"{args.agent} sees cameras {list(needed)}; --cameras lacks {missing}")
        cameras = cameras or ",".join(needed)
        size = int(trained.get("image_size", size))
    return cameras, size, int(trained.get("action_dim", 7))


def deploy(args: argparse.Namespace) -> int:
    """``armworld deploy``: one episode of an agent on a robot, through the safety layer.

    Everything that can fail on the command line (agent, goal, cameras) is checked before the
    robot connects; once it is connected, the arm is stopped and disconnected whatever happens.
    """
    from armworld.envs.real.drivers import make_kinematics, make_robot
    from armworld.envs.real.env import RealArmEnv, RealArmEnvConfig

    if args.max_steps <= 0:
        raise SystemExit("--max-steps must be positive")
    if args.agent.startswith("wm:") and not args.goal:
        raise SystemExit(f"{args.agent} plans toward a goal image: give --goal goal.png (taken by the deploy camera)")
    cameras, image_size, action_dim = _agent_env_settings(args)
    goal = tuple(float(v) for v in args.goal_pos.split(",")) if args.goal_pos else None
    if goal is not None and len(goal) != 3:
        raise SystemExit("--goal-pos takes x,y,z in metres")
    robot = make_robot(args.robot)
    camera_devices = _cameras(robot, cameras)  # a bad --cameras value fails before anything connects
    if not args.dry_run and not args.yes and not args.robot.startswith(("mock", "sim://")):
        answer = input(f"Move {args.robot} at speed factor {args.speed}? Keep the E-stop in reach. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted")
            return 1
    config = RealArmEnvConfig(task=args.task, action_dim=action_dim, image_size=image_size, speed_factor=args.speed,
                              goal=goal, dry_run=args.dry_run)
    robot.connect()  # a network client learns its robot's spec (and so its kinematics) here
    try:
        env = RealArmEnv(robot, camera_devices, make_kinematics(robot), config)
    except BaseException:
        robot.disconnect()
        raise
    recorder = None
    try:
        if args.agent == "expert" and args.task != "reach" and "observation" not in env.observation_space.spaces:
            raise SystemExit(f"the {args.task} expert needs the cube's pose and its goal, which {args.robot} does not "
                             "serve (no task observation; a real arm needs a perception stack serving them): "
                             "use a sim:// robot or --task reach with --goal-pos")
        if args.record:
            from armworld.datasets.hdf5 import TrajectoryWriter

            recorder = env.recorder = TrajectoryWriter(args.record, env.env_args(), exist="resume")
        status, info = _run_episode(args, env)
    finally:
        try:
            env.close()  # stops and disconnects the arm, then appends the episode
        finally:
            if recorder is not None:
                recorder.close()
    timing = env.timing()
    print(f"success={info['is_success']} distance={info['distance']:.4f} m steps={int(timing['steps'])} "
          + " ".join(f"{k}={v:.4f}" for k, v in timing.items() if k != "steps"))
    return status if status else (0 if info["is_success"] else 1)


def _run_episode(args: argparse.Namespace, env: RealArmEnv) -> tuple[int, dict[str, Any]]:
    """Load the agent and run one episode of it on ``env``.

    Returns the exit status (0; 130 on Ctrl-C; 2 when the safety layer or the arm stopped the
    run) and the last step's info.
    """
    import numpy as np

    from armworld.agents.loading import load_agent
    from armworld.envs.real.protocols import RealRobotError
    from armworld.worldmodel.checkpoint import CheckpointError

    try:
        agent = load_agent(args.agent, env, seed=args.seed, **({"goal": args.goal} if args.agent.startswith("wm:") else {}))
    except (ValueError, CheckpointError, FileNotFoundError) as error:
        raise SystemExit(f"cannot run {args.agent} on this robot: {error}") from None
    status, info = 0, {"is_success": False, "distance": float("nan")}
    try:
        obs, info = env.reset()
        agent.reset()
        for step in range(args.max_steps):
            action = agent.act(obs)
            obs, _, _, _, info = env.step(action)
            if args.dry_run:
                sent = info["sent"]
                print(f"step {step}: action {np.round(action, 3).tolist()} -> clipped "
                      f"{np.round(info['clipped_action'], 3).tolist()} target {np.round(sent.ee_pos, 4).tolist()} "
                      f"events {list(info['safety_events'])}")
            if info["is_success"]:
                break
    except KeyboardInterrupt:
        print("interrupted: stopping the arm", file=sys.stderr)
        status = 130
    except RealRobotError as error:
        print(f"stopped: {error}", file=sys.stderr)
        status = 2
    return status, info


def calibrate(args: argparse.Namespace) -> int:
    """``armworld calibrate board|hand-eye``."""
    import cv2
    import numpy as np
    import yaml

    from armworld.envs.real.calibration import CharucoBoardConfig, Intrinsics, detect_board, hand_eye

    columns, _, rows = args.squares.partition("x")
    if not (columns.isdigit() and rows.isdigit()):
        raise SystemExit(f"--squares takes COLUMNSxROWS, e.g. 9x14, got {args.squares!r}")
    board = CharucoBoardConfig(int(columns), int(rows), args.square_mm / 1e3, args.marker_mm / 1e3, args.dictionary)
    if args.step == "board":
        cv2.imwrite(args.out, board.image(args.pixels_per_square))
        width, height = board.size_m
        print(f"wrote {args.out}: print it so that the board measures {width * 1e3:.0f} x {height * 1e3:.0f} mm")
        return 0

    poses = np.load(args.poses)
    if poses.shape != (len(args.images), 4, 4):
        raise SystemExit(f"{args.poses} holds {poses.shape}; need [{len(args.images)}, 4, 4], one pose per image")
    images = []
    for path in args.images:
        bgr = cv2.imread(path)
        if bgr is None:
            raise SystemExit(f"cannot read image {path}")
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    height, width = images[0].shape[:2]
    if args.fovy is not None:
        camera = Intrinsics.from_fovy(args.fovy, width, height)
    else:
        data = yaml.safe_load(open(args.intrinsics))
        camera = Intrinsics(np.array(data["K"], dtype=np.float64), np.array(data.get("dist", [0.0] * 5)), width, height)
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
