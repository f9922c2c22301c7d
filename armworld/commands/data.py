"""CLI verbs for data: ``collect`` and ``dataset info|validate|video|replay|export``."""

from __future__ import annotations

import argparse
import sys

from armworld.commands import (
    add_randomization,
    check_output,
    check_video_output,
    env_id,
    fail,
    image_side,
    non_negative_int,
    number,
    positive_float,
    positive_int,
)
from armworld.agents.policy_spec import PolicySpec
from armworld.datasets.collect_config import CollectConfig
from armworld.envs.argtypes import add_options, options_from


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    collect = subparsers.add_parser("collect", help="collect episodes into an HDF5 trajectory file")
    collect.add_argument("--env", type=env_id, required=True, help="env id, e.g. armworld/FrankaPush-v0")
    add_options(collect, PolicySpec)  # --policy, --noise, --beta, --random-fraction, declared on PolicySpec
    collect.add_argument("--episodes", type=positive_int, required=True, help="episodes the file holds when done")
    collect.add_argument("--obs-mode", default="pixels_state", choices=("state", "pixels", "pixels_state"))
    collect.add_argument("--image-size", type=image_side, default=64, help="camera image side (pixels, 8..640)")
    collect.add_argument("--cameras", default="front", help="comma-separated, e.g. front,wrist")
    add_randomization(collect)
    add_options(collect, CollectConfig)  # --seed, --workers, --max-steps, declared on CollectConfig
    collect.add_argument("--out", required=True, help="output .h5 file")
    exist = collect.add_mutually_exclusive_group()
    exist.add_argument("--resume", action="store_true", help="append to an existing file")
    exist.add_argument("--overwrite", action="store_true", help="replace an existing file")
    collect.add_argument("--no-progress", action="store_true", help="no progress bar")
    collect.set_defaults(func=run_collect)

    dataset = subparsers.add_parser("dataset", help="inspect, check, watch and replay trajectory files")
    verbs = dataset.add_subparsers(dest="dataset_command", metavar="VERB", required=True)
    info = verbs.add_parser("info", help="summary of a trajectory file or a LeRobot dataset directory")
    info.add_argument("file", help="armworld HDF5 file or LeRobotDataset v3 directory")
    info.set_defaults(func=run_info)
    validate = verbs.add_parser("validate", help="check structure, shapes, dtypes and values; non-zero exit on problems")
    validate.add_argument("file")
    validate.set_defaults(func=run_validate)
    video = verbs.add_parser("video", help="write a demo's cameras side by side to a video")
    video.add_argument("file")
    video.add_argument("--demo", type=non_negative_int, required=True, help="demo index")
    video.add_argument("--out", required=True, help="video file (.mp4, .gif)")
    video.add_argument("--cameras", default=None, help="comma-separated (default: all)")
    video.add_argument("--fps", type=positive_float, default=10.0, help="frames per second of the video")
    video.set_defaults(func=run_video)
    replay = verbs.add_parser("replay", help="re-simulate a demo from its seed and actions and compare the states")
    replay.add_argument("file")
    replay.add_argument("--demo", type=non_negative_int, required=True, help="demo index")
    replay.set_defaults(func=run_replay)
    export = verbs.add_parser("export", help="write a trajectory file in another format (a LeRobotDataset v3 directory)")
    export.add_argument("file")
    export.add_argument("--format", choices=("lerobot",), required=True, help="lerobot: LeRobotDataset v3 (parquet, MP4, meta/)")
    export.add_argument("--out", required=True, help="dataset directory to create")
    export.add_argument("--fps", type=positive_int, default=None, help="recording rate in Hz (default: armworld's control rate, 10)")
    export.add_argument("--task", default=None, help="task text of every episode (default: from the file's env)")
    export.add_argument("--crf", type=number(int, 0, 51), default=None, help="x264 video quality, 0 lossless .. 51 (default 18)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing directory")
    export.set_defaults(func=run_export)


def run_collect(args: argparse.Namespace) -> int:
    import gymnasium

    from armworld.datasets.collect import collect
    from armworld.datasets.hdf5 import DatasetError

    exist = "resume" if args.resume else "overwrite" if args.overwrite else "error"
    try:
        policy = options_from(PolicySpec, args)
        config = options_from(
            CollectConfig, args, env_id=args.env, episodes=args.episodes, policy_name=policy.label,
            env_kwargs={"obs_mode": args.obs_mode, "image_size": args.image_size, "cameras": args.cameras,
                        "randomization": args.randomization},
        )
        check_output(args.out)
        summary = collect(args.out, config, policy, exist=exist, progress=not args.no_progress)
    except (DatasetError, ValueError, TypeError, gymnasium.error.Error) as error:
        return fail(str(error))
    print(summary.line())
    return 0


def run_info(args: argparse.Namespace) -> int:
    from armworld.datasets.hdf5 import DatasetError
    from armworld.datasets.lerobot import is_lerobot_dataset

    try:
        lines = _lerobot_info(args.file) if is_lerobot_dataset(args.file) else _hdf5_info(args.file)
    except DatasetError as error:
        return fail(str(error))  # before any line: a refused file prints no partial summary
    print("\n".join(lines))
    return 0


def _hdf5_info(path: str) -> list[str]:
    import os

    import numpy as np

    from armworld.datasets.hdf5 import TrajectoryFile

    with TrajectoryFile(path) as file:
        lengths = [file.num_samples(demo) for demo in file.demos]
        successes = sum(bool(file.read(demo, "success")[-1:].any()) for demo in file.demos)  # none in an empty episode
        policies = sorted({str(file.attrs(demo).get("policy")) for demo in file.demos})
        lines = [
            f"{file.path}: {file.total} episodes, {sum(lengths)} steps, {os.path.getsize(file.path) / 1e6:.1f} MB",
            f"env: {file.env_args.get('env_name')} {file.env_args.get('env_kwargs')}",
            f"steps per episode: min {min(lengths, default=0)}, mean {np.mean(lengths or [0]):.1f}, max {max(lengths, default=0)}",
            f"success at episode end: {successes}/{file.total}; policies: {', '.join(policies) or '-'}",
            f"splits: train {len(file.split('train'))}, valid {len(file.split('valid'))}",
        ]
        for key in file.keys(file.demos[0]) if file.demos else ():
            dataset = file.dataset(file.demos[0], f"obs/{key}")
            lines.append(f"  obs/{key}: {dataset.dtype} {list(dataset.shape[1:])}")
    return lines


def _lerobot_info(path: str) -> list[str]:
    from armworld.datasets.hdf5 import split_of
    from pathlib import Path

    from armworld.datasets.lerobot import read_info, require

    _, pq, _ = require()
    info = read_info(path)
    size = sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())  # no hashing: info stays quick
    episodes, frames = int(info.get("total_episodes", 0)), int(info.get("total_frames", 0))
    try:
        tasks = pq.read_table(f"{path}/meta/tasks.parquet").column("__index_level_0__").to_pylist()
    except (OSError, KeyError, ValueError):  # pyarrow's ArrowInvalid is a ValueError
        tasks = []
    valid = sum(split_of(i) == "valid" for i in range(episodes))
    lines = [
        f"{path}: LeRobotDataset {info.get('codebase_version')}, {episodes} episodes, {frames} frames, "
        f"{info.get('fps')} fps, {size / 1e6:.1f} MB",
        f"robot: {info.get('robot_type')}; tasks ({info.get('total_tasks', len(tasks))}): "
        + ("; ".join(tasks[:3]) + (" ..." if len(tasks) > 3 else "") if tasks else "-"),
        f"splits as armworld reads them: train {episodes - valid}, valid {valid} (episode i is valid when i % 10 == 9)",
    ]
    for key, feature in info.get("features", {}).items():
        lines.append(f"  {key}: {feature.get('dtype')} {list(feature.get('shape', []))}")
    return lines


def run_validate(args: argparse.Namespace) -> int:
    from armworld.datasets.hdf5 import validate

    problems = validate(args.file)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{args.file}: valid")
    return 0


def run_video(args: argparse.Namespace) -> int:
    from armworld.datasets.hdf5 import DatasetError, demo_name
    from armworld.datasets.video import export_demo_video

    cameras = [c.strip() for c in args.cameras.split(",")] if args.cameras else None
    try:
        check_video_output(args.out, args.file)
        frames, height, width = export_demo_video(args.file, demo_name(args.demo), args.out, cameras, args.fps)
    except (DatasetError, ValueError) as error:
        return fail(str(error))
    print(f"{args.out}: {frames} frames of {width}x{height}")
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from armworld.datasets.hdf5 import DatasetError, demo_name
    from armworld.datasets.replay import replay

    try:
        result = replay(args.file, demo_name(args.demo))
    except DatasetError as error:
        return fail(str(error))
    print(result.line())
    return 0 if result.matches else 1


def run_export(args: argparse.Namespace) -> int:
    from armworld.datasets.hdf5 import DatasetError
    from armworld.datasets.lerobot import DEFAULT_CRF, export_lerobot
    from armworld.envs.conventions import CONTROL_HZ

    try:
        check_output(args.out, args.file, folder=True)
        summary = export_lerobot(
            args.file, args.out, fps=args.fps or int(CONTROL_HZ), task=args.task,
            crf=DEFAULT_CRF if args.crf is None else args.crf, overwrite=args.overwrite,
        )
    except (DatasetError, ValueError) as error:
        return fail(str(error))
    print(summary.line())
    return 0
