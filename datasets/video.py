"""Videos of recorded episodes: every camera of a demo side by side, written with imageio."""

from __future__ import annotations

import os
from pathlib import Path

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
    images = [file.images(demo, f"obs/rgb_{camera}") for camera in cameras]
    if len({image.shape[:2] for image in images}) > 1:
        shapes = ", ".join(f"{camera} {image.shape}" for camera, image in zip(cameras, images))
        raise DatasetError(f"{file.path}: {demo}: cameras of different frame counts or heights cannot be put side by side ({shapes})")
    return np.concatenate([image[()] for image in images], axis=2)


VIDEO_EXTENSIONS = (".mp4", ".gif")


def check_video_path(path: str | os.PathLike) -> None:
    """Raise ``ValueError`` unless ``path`` names a video file armworld can write: call it
    before the work whose frames it will hold."""
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; give the video's file name, e.g. {os.path.join(path, 'demo.mp4')}")
    if not str(path).lower().endswith(VIDEO_EXTENSIONS):
        raise ValueError(f"cannot tell the video format of {path!r}: end the file name with one of {list(VIDEO_EXTENSIONS)}")


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 10.0) -> None:
    """Write uint8 frames ``[T, H, W, 3]`` to a video, MP4 or GIF by the file's extension
    (its folder is created if missing)."""
    check_video_path(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if str(path).lower().endswith(".mp4"):
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1, codec="libx264", quality=8)
    else:
        imageio.mimwrite(path, frames, duration=1000.0 / fps)


def export_demo_video(
    path: str | os.PathLike, demo: str, out: str | os.PathLike, cameras: list[str] | None = None, fps: float = 10.0
) -> tuple[int, int, int]:
    """Write the demo's cameras side by side to ``out``; returns (frames, height, width)."""
    check_video_path(out)
    with TrajectoryFile(path) as file:
        frames = demo_frames(file, demo, cameras)
    write_video(out, frames, fps)
    return frames.shape[0], frames.shape[1], frames.shape[2]
