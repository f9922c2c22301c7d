"""Image codecs for trajectory files: bytes on disk, write and read speed, measured on sim frames.

Renders episodes of an armworld env with the mixed policy, then stores the same frames
with one-frame chunks under each codec and reads them back (whole episodes, and
clip-style strided reads of 8 frames). Prints JSON; the chosen codec is recorded in
datasets/README.md.

    python benchmarks/image_codecs.py --episodes 6 --image-size 64
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import h5py
import numpy as np

from armworld.agents.exploration import PolicySpec
from armworld.datasets.collect import CollectConfig, rollout

CODECS = {
    "none": (None, None),
    "lzf": ("lzf", None),
    "gzip-1": ("gzip", 1),
    "gzip-4": ("gzip", 4),
    "gzip-9": ("gzip", 9),
}


def sim_frames(env_id: str, episodes: int, image_size: int) -> list[np.ndarray]:
    """uint8 [N+1, H, W, 3] front-camera frames of ``episodes`` mixed-policy episodes."""
    config = CollectConfig(env_id, episodes, env_kwargs={"obs_mode": "pixels", "image_size": image_size, "cameras": ("front", "wrist")})
    env, policy = config.make_env(), PolicySpec("mixed", noise=0.1)
    frames = []
    for seed in range(episodes):
        episode = rollout(env, policy(env, seed), seed, "mixed")
        frames += [episode.obs["rgb_front"], episode.obs["rgb_wrist"]]
    env.close()
    return frames


def measure(frames: list[np.ndarray], compression: str | None, level: int | None, path: str) -> dict[str, float]:
    start = time.perf_counter()
    with h5py.File(path, "w") as file:
        for i, video in enumerate(frames):
            file.create_dataset(f"v{i}", data=video, chunks=(1, *video.shape[1:]), compression=compression, compression_opts=level)
    write_s = time.perf_counter() - start
    total = sum(len(v) for v in frames)
    with h5py.File(path, "r") as file:
        start = time.perf_counter()
        for i in range(len(frames)):
            file[f"v{i}"][()]
        read_s = time.perf_counter() - start
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        clips = 200
        for _ in range(clips):
            i = int(rng.integers(len(frames)))
            t = int(rng.integers(len(frames[i]) - 8))
            file[f"v{i}"][t : t + 8]
        clip_s = time.perf_counter() - start
    raw = sum(v.nbytes for v in frames)
    return {
        "bytes_per_frame": os.path.getsize(path) / total,
        "ratio": raw / os.path.getsize(path),
        "write_frames_per_s": total / write_s,
        "read_frames_per_s": total / read_s,
        "clips8_per_s": clips / clip_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="armworld/FrankaPush-v0")
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    frames = sim_frames(args.env, args.episodes, args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: measure(frames, *codec, os.path.join(tmp, f"{name}.h5")) for name, codec in CODECS.items()}
    print(json.dumps({"env": args.env, "image_size": args.image_size, "frames": sum(len(v) for v in frames), "codecs": results}, indent=2))


if __name__ == "__main__":
    main()
