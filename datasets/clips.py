"""Torch datasets of fixed-length clips cut from trajectory files, for world-model training.

A clip of ``clip_len`` T with ``frame_skip`` k starting at observation t uses the
observations t, t+k, ..., t+(T-1)k; every start with t+(T-1)k <= N is a clip (the
N + 1 observations of an episode include the one after its last action).

Actions between consecutive sampled frames (``[T-1, 7]`` float32):

- ``"delta"``: the world-model action, the proprio difference between the sampled
  frames (``armworld.envs.conventions.proprio_delta``), as V-JEPA 2-AC uses.
- ``"command"``: the env actions commanded in between (4-D actions are expanded to
  7-D). For k > 1 the k position and orientation commands are summed (the total
  commanded motion in action units, so values reach up to +-k) and the gripper is
  the last commanded target (it is a target, not a motion).

Each path is an armworld HDF5 trajectory file or a LeRobotDataset v3 directory, whose
features are mapped onto armworld's keys by ``lerobot_keys`` (a name of
``armworld.datasets.lerobot.KEY_MAPS``, e.g. ``"droid"``, a JSON key-map file, or a ``KeyMap``;
see datasets/README.md). Files open lazily, one handle per process, so both datasets work
with ``DataLoader(num_workers>0)`` under fork, spawn or forkserver.
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from armworld.datasets.hdf5 import TRANSITION_KEYS, DatasetError, TrajectoryFile
from armworld.datasets.lerobot import KeyMap, LeRobotReader, open_dataset
from armworld.envs.conventions import expand_action, proprio_delta

Split = Literal["train", "valid"] | None


class _ClipIndex(Dataset):
    """The (file, demo, start) index shared by the clip datasets, with lazy per-process file handles.

    ``needs``: the keys read besides the camera's images; each must have as many rows as the
    images (one fewer for per-transition keys such as ``actions``), checked while indexing.
    """

    def __init__(
        self,
        paths: list[str],
        clip_len: int,
        frame_skip: int,
        split: Split,
        camera: str,
        needs: tuple[str, ...],
        lerobot_keys: str | KeyMap = "armworld",
    ):
        if clip_len < 1 or frame_skip < 1:
            raise ValueError(f"clip_len and frame_skip must be >= 1, got {clip_len} and {frame_skip}")
        self.paths = [str(p) for p in paths]
        self.clip_len = clip_len
        self.frame_skip = frame_skip
        self.camera = camera
        self.lerobot_keys = lerobot_keys
        self.image_key = f"obs/rgb_{camera}"
        span = (clip_len - 1) * frame_skip
        self._demos: list[tuple[int, str]] = []
        starts: list[np.ndarray] = []
        for file_index, path in enumerate(self.paths):
            with open_dataset(path, lerobot_keys) as file:
                for demo in file.split(split):
                    observations = _check_rows(file, demo, self.image_key, needs)
                    count = observations - span
                    if count > 0:
                        starts.append(np.stack([np.full(count, len(self._demos)), np.arange(count)], axis=1))
                        self._demos.append((file_index, demo))
        self._clips = np.concatenate(starts) if starts else np.zeros((0, 2), dtype=np.int64)
        self._files: dict[int, TrajectoryFile | LeRobotReader] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._clips)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

    def close(self) -> None:
        """Close this process's file handles (they reopen on the next read)."""
        for file in self._files.values():
            file.close()
        self._files = {}

    def _locate(self, index: int) -> tuple[int, str, int]:
        """(file index, demo, first observation row) of clip ``index``."""
        if not 0 <= index < len(self._clips):
            raise IndexError(f"clip {index} out of range ({len(self._clips)} clips)")
        demo_index, start = self._clips[index]
        file_index, demo = self._demos[demo_index]
        return file_index, demo, int(start)

    def _file(self, file_index: int) -> TrajectoryFile | LeRobotReader:
        if self._pid != os.getpid():  # a forked DataLoader worker must not share the parent's handles
            self._files, self._pid = {}, os.getpid()
        if file_index not in self._files:
            self._files[file_index] = open_dataset(self.paths[file_index], self.lerobot_keys)
        return self._files[file_index]

    def _read(self, file_index: int, demo: str, key: str, rows: slice) -> np.ndarray:
        return self._file(file_index).read(demo, key, rows)

    def _rows(self, start: int) -> slice:
        return slice(start, start + (self.clip_len - 1) * self.frame_skip + 1, self.frame_skip)


def _check_rows(file: TrajectoryFile | LeRobotReader, demo: str, image_key: str, needs: tuple[str, ...]) -> int:
    """The number of observations (image rows) of ``demo``; ``DatasetError`` naming the key when
    the images or a needed key are missing or malformed, a needed key's rows do not match the
    images, or it holds non-finite values (nothing non-finite is trained on)."""
    where = f"{file.path}: {demo}"
    if not file.has(demo, image_key):
        cameras = [key[len("rgb_"):] for key in file.keys(demo) if key.startswith("rgb_")]
        raise DatasetError(f"{where}: missing '{image_key}' (cameras: {', '.join(cameras) or 'none'})")
    observations = _rows(file, demo, image_key)
    hint = "`armworld dataset validate` lists the file's problems"
    for key in needs:
        if not file.has(demo, key):
            unmapped = " (the LeRobot key map reads no action feature; train on proprio deltas)" if isinstance(file, LeRobotReader) else ""
            raise DatasetError(f"{where}: missing '{key}'{unmapped}")
        expected = observations - 1 if key in TRANSITION_KEYS else observations
        rows = _rows(file, demo, key)
        if rows != expected:
            raise DatasetError(f"{where}: '{key}' has {rows} rows, expected {expected} ('{image_key}' has {observations}); {hint}")
        values = file.read(demo, key)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise DatasetError(f"{where}: '{key}' holds {int((~np.isfinite(values)).sum())} non-finite values; {hint}")
    return observations


def _rows(file: TrajectoryFile | LeRobotReader, demo: str, key: str) -> int:
    """The rows of ``key`` in ``demo`` (an HDF5 file's images must be uint8 ``[N+1, H, W, 3]``)."""
    if isinstance(file, LeRobotReader):
        return file.rows(demo, key)
    dataset = file.images(demo, key) if key.startswith("obs/rgb_") else file.dataset(demo, key)
    return dataset.shape[0] if dataset.shape else 0


class FrameDataset(_ClipIndex):
    """Frames-only clips for self-supervised pretraining on actionless video.

    Items: ``{"frames": uint8 [T, H, W, 3]}`` from camera ``camera``; files need only
    ``obs/rgb_<camera>``. ``split`` picks ``mask/train`` or ``mask/valid`` (``None``: all).
    """

    def __init__(
        self,
        paths: list[str],
        clip_len: int,
        frame_skip: int = 1,
        split: Split = "train",
        camera: str = "front",
        lerobot_keys: str | KeyMap = "armworld",
    ):
        super().__init__(paths, clip_len, frame_skip, split, camera, needs=(), lerobot_keys=lerobot_keys)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        file_index, demo, start = self._locate(index)
        return {"frames": torch.from_numpy(self._read(file_index, demo, self.image_key, self._rows(start)))}


class ClipDataset(_ClipIndex):
    """Action-conditioned clips for training the predictor.

    Items: ``{"frames": uint8 [T, H, W, 3], "proprio": float32 [T, 7], "actions": float32 [T-1, 7]}``
    with ``action`` ``"delta"`` (proprio difference) or ``"command"`` (env actions), see the
    module docstring. ``preload`` reads the needed arrays of every file into memory first.
    """

    def __init__(
        self,
        paths: list[str],
        clip_len: int,
        frame_skip: int = 1,
        action: Literal["delta", "command"] = "delta",
        split: Split = "train",
        camera: str = "front",
        preload: bool = False,
        lerobot_keys: str | KeyMap = "armworld",
    ):
        if action not in ("delta", "command"):
            raise ValueError(f"action is 'delta' or 'command', got {action!r}")
        if clip_len < 2:
            raise ValueError(f"a clip with actions needs clip_len >= 2, got {clip_len}")
        self.action = action
        needs = ("obs/proprio", "actions") if action == "command" else ("obs/proprio",)
        super().__init__(paths, clip_len, frame_skip, split, camera, needs=needs, lerobot_keys=lerobot_keys)
        self._cache: dict[tuple[int, str, str], np.ndarray] | None = None
        if preload:
            self._cache = {
                (file_index, demo, key): self._file(file_index).read(demo, key)
                for file_index, demo in self._demos
                for key in (self.image_key, *needs)
            }
            self.close()

    def _read(self, file_index: int, demo: str, key: str, rows: slice) -> np.ndarray:
        if self._cache is not None:
            return self._cache[(file_index, demo, key)][rows]
        return super()._read(file_index, demo, key, rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        file_index, demo, start = self._locate(index)
        rows = self._rows(start)
        proprio = self._read(file_index, demo, "obs/proprio", rows).astype(np.float32)
        if self.action == "delta":
            actions = proprio_delta(proprio)
        else:
            k = self.frame_skip
            commanded = self._read(file_index, demo, "actions", slice(start, start + (self.clip_len - 1) * k))
            commanded = expand_action(commanded.astype(np.float32)).reshape(self.clip_len - 1, k, -1)
            actions = np.concatenate([commanded[:, :, :6].sum(axis=1), commanded[:, -1, 6:]], axis=1)
        return {
            "frames": torch.from_numpy(self._read(file_index, demo, self.image_key, rows)),
            "proprio": torch.from_numpy(proprio),
            "actions": torch.from_numpy(np.ascontiguousarray(actions, dtype=np.float32)),
        }
