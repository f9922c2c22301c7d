"""CLI verbs for the sim-to-real bridge: ``robot-server`` and ``deploy``."""

from __future__ import annotations

import argparse
import sys


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
    deploy_parser.add_argument("--agent", required=True, help="expert | wm:RUN_DIR | sb3:PATH")
    deploy_parser.add_argument("--task", default="reach", choices=("reach", "push", "pick_place"))
    deploy_parser.add_argument("--goal", help="goal image (PNG) for world-model agents")
    deploy_parser.add_argument("--goal-pos", help="desired TCP position x,y,z (m) when the robot serves no task state")
    deploy_parser.add_argument("--max-steps", type=int, default=100)
    deploy_parser.add_argument("--cameras", default="", help="comma-separated cameras: served ones for sim://, "
                               "else NAME=DEVICE (OpenCV index or path)")
    deploy_parser.add_argument("--image-size", type=int, default=64)
    deploy_parser.add_argument("--speed", type=float, default=0.25, help="speed factor in (0, 1] (starts slow)")
    deploy_parser.add_argument("--dry-run", action="store_true", help="print what would be sent; send nothing")
    deploy_parser.add_argument("--yes", action="store_true", help="skip the confirmation prompt")
    deploy_parser.add_argument("--record", help="append the episode to this HDF5 trajectory file")
    deploy_parser.set_defaults(func=deploy)


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


def _agent(spec: str, env):
    kind, _, target = spec.partition(":")
    if kind == "expert":
        from armworld.agents import make_expert

        return make_expert(env)
    if kind in ("wm", "sb3"):
        raise SystemExit(f"agent kind {kind!r} has no loader in armworld.agents yet; use --agent expert")
    raise SystemExit(f"unknown agent {spec!r}: use expert, wm:RUN_DIR or sb3:PATH")


def deploy(args: argparse.Namespace) -> int:
    """``armworld deploy``: one episode of an agent on a robot, through the safety layer."""
    import numpy as np

    from armworld.envs.real.drivers import make_kinematics, make_robot
    from armworld.envs.real.env import RealArmEnv, RealArmEnvConfig
    from armworld.envs.real.protocols import RealRobotError

    if args.max_steps <= 0:
        raise SystemExit("--max-steps must be positive")
    goal = tuple(float(v) for v in args.goal_pos.split(",")) if args.goal_pos else None
    if goal is not None and len(goal) != 3:
        raise SystemExit("--goal-pos takes x,y,z in metres")
    robot = make_robot(args.robot)
    if not args.dry_run and not args.yes and not args.robot.startswith(("mock", "sim://")):
        answer = input(f"Move {args.robot} at speed factor {args.speed}? Keep the E-stop in reach. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("aborted")
            return 1
    recorder = None
    config = RealArmEnvConfig(task=args.task, image_size=args.image_size, speed_factor=args.speed, goal=goal,
                              dry_run=args.dry_run)
    robot.connect()
    env = RealArmEnv(robot, _cameras(robot, args.cameras), make_kinematics(robot), config)
    if args.record:
        from armworld.datasets.hdf5 import TrajectoryWriter

        recorder = env.recorder = TrajectoryWriter(args.record, env.env_args(), exist="resume")
    agent = _agent(args.agent, env)
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
    finally:
        env.close()
        if recorder is not None:
            recorder.close()
    timing = env.timing()
    print(f"success={info['is_success']} distance={info['distance']:.4f} m steps={int(timing['steps'])} "
          + " ".join(f"{k}={v:.4f}" for k, v in timing.items() if k != "steps"))
    return status if status else (0 if info["is_success"] else 1)
