"""Collection and loading speed: frames/s collecting pixel episodes with 1 and with K workers,
and clips/s read through a DataLoader. Prints JSON (the reference is the 1-worker run).

    python benchmarks/collect_speed.py --episodes 24 --workers 2 --image-size 64

Wall time includes starting the worker processes (about a second each) and writing the file; the speed-up
is bounded by the CPU cores actually free (``os.sched_getaffinity`` and the load average
are printed with the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from armworld.agents.exploration import PolicySpec
from armworld.datasets.collect import CollectConfig, collect


def collect_fps(path: str, args: argparse.Namespace, workers: int) -> dict[str, float]:
    config = CollectConfig(
        args.env,
        args.episodes,
        workers=workers,
        env_kwargs={"obs_mode": "pixels_state", "image_size": args.image_size, "cameras": ("front", "wrist")},
        policy_name="expert",
    )
    summary = collect(path, config, PolicySpec("expert", noise=0.1), exist="overwrite", progress=False)
    return {"workers": workers, "frames": summary.frames, "seconds": summary.seconds, "frames_per_s": summary.fps,
            "bytes": summary.bytes}


def clips_per_s(path: str, loader_workers: int, batches: int = 20) -> float:
    from torch.utils.data import DataLoader  # not at the top: spawned collection workers re-import this script

    from armworld.datasets.clips import ClipDataset

    data = ClipDataset([path], clip_len=8, frame_skip=1, split=None)
    loader = DataLoader(data, batch_size=16, shuffle=True, num_workers=loader_workers, persistent_workers=loader_workers > 0)
    iterator = iter(loader)
    next(iterator)  # workers started
    start = time.perf_counter()
    count = 0
    for _ in range(batches):
        try:
            count += len(next(iterator)["frames"])
        except StopIteration:
            break
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="armworld/FrankaPush-v0")
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = collect_fps(os.path.join(tmp, "one.h5"), args, 1)
        many = collect_fps(os.path.join(tmp, "many.h5"), args, args.workers)
        loading = {f"clips8_per_s_loader_workers_{n}": clips_per_s(os.path.join(tmp, "one.h5"), n) for n in (0, 2)}
    print(json.dumps({
        "env": args.env,
        "image_size": args.image_size,
        "cameras": ["front", "wrist"],
        "cpus_available": len(os.sched_getaffinity(0)),
        "load_average_1min": os.getloadavg()[0],
        "collect": [one, many],
        "speedup": many["frames_per_s"] / one["frames_per_s"],
        **loading,
    }, indent=2))


if __name__ == "__main__":
    main()
