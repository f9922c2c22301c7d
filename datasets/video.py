"""Videos of recorded episodes: every camera of a demo side by side, written with imageio."""

from __future__ import annotations

import os

import imageio.v2 as imageio
import numpy as np

from armworld.datasets.hdf5 import DatasetError, TrajectoryFile


def demo_frames(file: TrajectoryFile, demo: str, cameras: list[str] | None = None) -> np.ndarray:
    """uint8 ``[N+1, H, W * C, 3]``: the demo's ``C`` cameras (all by default) side by side."""
    available = [key[len("rgb_"):] for key in file.keys(demo) if key.startswith("rgb_")]
    cameras = cameras or available
    missing = [camera for camera in cameras if camera not in available]
    if not cameras or missing:
        raise DatasetError(f"{file.path}: {demo}: no images of camera(s) {missing or 'any'} (cameras: {available})")
    return np.concatenate([file.read(demo, f"obs/rgb_{camera}") for camera in cameras], axis=2)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 10.0) -> None:
    """Write uint8 frames ``[T, H, W, 3]`` to a video (format from the extension: .mp4, .gif, ...)."""
    if str(path).endswith(".mp4"):
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1, codec="libx264", quality=8)
    else:
        imageio.mimwrite(path, frames, duration=1000.0 / fps)


def export_demo_video(
    path: str | os.PathLike, demo: str, out: str | os.PathLike, cameras: list[str] | None = None, fps: float = 10.0
) -> tuple[int, int, int]:
    """Write the demo's cameras side by side to ``out``; returns (frames, height, width)."""
    with TrajectoryFile(path) as file:
        frames = demo_frames(file, demo, cameras)
    write_video(out, frames, fps)
    return frames.shape[0], frames.shape[1], frames.shape[2]
