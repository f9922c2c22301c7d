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

Two ways to read, giving the same clips (the same tensors for the same indices):

- streaming (the default): each clip is read from its file when asked for, so the data may be
  larger than memory; :meth:`~_ClipIndex.clips` reads a batch clip by clip and stacks it.
- in memory (:meth:`~_ClipIndex.load`, or ``preload=True``): every episode's arrays are decoded
  once into one tensor per array (frames uint8 ``[R, H, W, 3]``, proprio and per-step actions
  float32 ``[R, 7]`` over all R observations), on the CPU (in shared memory, if asked, so that
  loader processes read it without a copy each) or on a GPU; a batch of clips is then one
  gather per array (:meth:`~_ClipIndex.clips`), on the tensors' device.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from armworld.datasets.hdf5 import TRANSITION_KEYS, DatasetError, TrajectoryFile
from armworld.datasets.lerobot import KeyMap, LeRobotReader, open_dataset
from armworld.envs.conventions import expand_action, proprio_delta

Split = Literal["train", "valid"] | None


class _ClipIndex(Dataset):
    """The (file, demo, start) index shared by the clip datasets, with lazy per-process file handles,
    streaming or in-memory reads (:meth:`load`) and batched clips (:meth:`clips`).

    ``needs``: the keys read besides the camera's images; each must have as many rows as the
    images (one fewer for per-transition keys such as ``actions``), checked while indexing.
    Subclasses read one clip from the files (``_read_clip``) and one episode's arrays for memory
    (``_episode_arrays``); arrays named in ``_PER_STEP`` hold, in row t, the step from observation
    t to t + frame_skip, so a clip takes its first T - 1 rows of them.
    """

    _PER_STEP: tuple[str, ...] = ()
    _VECTORS: tuple[str, ...] = ()  # float32 arrays of 7 values per observation, besides the frames

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
        self._observations: list[int] = []  # rows of each demo in self._demos
        starts: list[np.ndarray] = []
        for file_index, path in enumerate(self.paths):
            with open_dataset(path, lerobot_keys) as file:
                for demo in file.split(split):
                    observations = _check_rows(file, demo, self.image_key, needs)
                    count = observations - span
                    if count > 0:
                        starts.append(np.stack([np.full(count, len(self._demos)), np.arange(count)], axis=1))
                        self._demos.append((file_index, demo))
                        self._observations.append(observations)
        self._clips = np.concatenate(starts) if starts else np.zeros((0, 2), dtype=np.int64)
        self._files: dict[int, TrajectoryFile | LeRobotReader] = {}
        self._pid = os.getpid()
        self._memory: dict[str, torch.Tensor] | None = None  # arrays of all observations, once loaded
        self._clip_rows: torch.Tensor | None = None  # [clips] row of each clip's first observation in memory
        self._offsets: torch.Tensor | None = None  # [T] rows of a clip's observations after its first

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

    @property
    def memory_device(self) -> torch.device | None:
        """Where the arrays lie once :meth:`load` ed (``None``: streaming from the files)."""
        return None if self._memory is None else self._memory["frames"].device

    def memory_bytes(self) -> int:
        """Bytes the arrays take once decoded into memory by :meth:`load` (every observation of every
        episode with a clip; frames sized as the first one)."""
        if not self._demos:
            return 0
        file_index, demo = self._demos[0]
        frame = self._file(file_index).read(demo, self.image_key, slice(0, 1))
        return sum(self._observations) * (frame.nbytes + 7 * 4 * len(self._VECTORS))

    def load(self, device: str | torch.device = "cpu", shared: bool = False) -> None:
        """Decode every episode's arrays once into tensors on ``device`` (:meth:`memory_bytes` of them),
        so that clips are gathered from memory from then on; ``shared`` puts CPU tensors in shared
        memory, where loader processes (fork, spawn or forkserver) read them without a copy each.

        ``DatasetError`` names the episode when its frames differ in size from the first episode's.
        """
        device = torch.device(device)
        if self._memory is not None:
            raise ValueError(f"the clips are already in memory (on {self.memory_device})")
        first_rows = np.concatenate([[0], np.cumsum(self._observations)])
        memory: dict[str, torch.Tensor] = {}
        for (file_index, demo), row in zip(self._demos, first_rows[:-1].tolist()):
            arrays = self._episode_arrays(file_index, demo)
            if not memory:
                memory = {
                    name: torch.empty((int(first_rows[-1]), *array.shape[1:]), dtype=_TORCH_DTYPES[array.dtype.str], device=device)
                    for name, array in arrays.items()
                }
                if shared and device.type == "cpu":
                    memory = {name: tensor.share_memory_() for name, tensor in memory.items()}
            for name, array in arrays.items():
                if array.shape[1:] != memory[name].shape[1:]:
                    raise DatasetError(
                        f"{self.paths[file_index]}: {demo}: '{name}' rows have shape {array.shape[1:]}, but the first "
                        f"episode's have {tuple(memory[name].shape[1:])}; clips of one dataset need one frame size"
                    )
                memory[name][row : row + len(array)].copy_(torch.from_numpy(array))
        self.close()
        if not memory:  # no clips at all: an empty frames tensor marks the (empty) data as loaded
            memory = {"frames": torch.empty((0, 0, 0, 3), dtype=torch.uint8, device=device)}
        first = torch.from_numpy(first_rows[self._clips[:, 0]] + self._clips[:, 1])
        self._memory = memory
        self._clip_rows = first.to(device)
        self._offsets = (torch.arange(self.clip_len) * self.frame_skip).to(device)

    def clips(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """Clips ``indices`` (``B`` of them) as one batch: every item's tensors stacked, ``[B, ...]``
        (e.g. frames uint8 ``[B, T, H, W, 3]``). In memory: one gather per array, on the memory's
        device; streaming: one read per clip, stacked on the CPU."""
        index = torch.as_tensor(indices, dtype=torch.long)
        if index.ndim != 1 or len(index) == 0:
            raise ValueError(f"clips() takes a non-empty list of clip indices, got shape {tuple(index.shape)}")
        if self._memory is None:
            items = [self._read_clip(int(i)) for i in index]
            return {key: torch.stack([item[key] for item in items]) for key in items[0]}
        low, high = int(index.min()), int(index.max())
        if low < 0 or high >= len(self):
            raise IndexError(f"clip {low if low < 0 else high} out of range ({len(self)} clips)")
        rows = self._clip_rows[index.to(self._clip_rows.device)][:, None] + self._offsets  # [B, T]
        return {name: _gather(array, rows[:, :-1] if name in self._PER_STEP else rows) for name, array in self._memory.items()}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self._memory is None:
            return self._read_clip(index)
        return {key: value[0] for key, value in self.clips([index]).items()}

    def _read_clip(self, index: int) -> dict[str, torch.Tensor]:
        """Clip ``index`` read from its file."""
        raise NotImplementedError

    def _episode_arrays(self, file_index: int, demo: str) -> dict[str, np.ndarray]:
        """The arrays of ``demo`` that :meth:`load` keeps, one row per observation (per-step arrays
        padded with zero rows where the step would leave the episode)."""
        raise NotImplementedError

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

    def _read(self, file_index: int, demo: str, key: str, rows: slice = slice(None)) -> np.ndarray:
        return self._file(file_index).read(demo, key, rows)

    def _rows(self, start: int) -> slice:
        return slice(start, start + (self.clip_len - 1) * self.frame_skip + 1, self.frame_skip)


def _gather(array: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``array[rows]`` for rows ``[B, T]``: ``[B, T, ...]`` (``index_select`` of the flat rows, several times
    faster than advanced indexing with a 2-D index)."""
    return array.index_select(0, rows.flatten()).view(*rows.shape, *array.shape[1:])


_TORCH_DTYPES = {np.dtype(np.uint8).str: torch.uint8, np.dtype(np.float32).str: torch.float32}


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
    ``preload`` decodes every episode into memory first (:meth:`load` on the CPU).
    """

    def __init__(
        self,
        paths: list[str],
        clip_len: int,
        frame_skip: int = 1,
        split: Split = "train",
        camera: str = "front",
        preload: bool = False,
        lerobot_keys: str | KeyMap = "armworld",
    ):
        super().__init__(paths, clip_len, frame_skip, split, camera, needs=(), lerobot_keys=lerobot_keys)
        if preload:
            self.load()

    def _read_clip(self, index: int) -> dict[str, torch.Tensor]:
        file_index, demo, start = self._locate(index)
        return {"frames": torch.from_numpy(self._read(file_index, demo, self.image_key, self._rows(start)))}

    def _episode_arrays(self, file_index: int, demo: str) -> dict[str, np.ndarray]:
        return {"frames": self._read(file_index, demo, self.image_key)}


class ClipDataset(_ClipIndex):
    """Action-conditioned clips for training the predictor.

    Items: ``{"frames": uint8 [T, H, W, 3], "proprio": float32 [T, 7], "actions": float32 [T-1, 7]}``
    with ``action`` ``"delta"`` (proprio difference) or ``"command"`` (env actions), see the
    module docstring. ``preload`` decodes every episode into memory first (:meth:`load` on the CPU).
    """

    _PER_STEP = ("actions",)
    _VECTORS = ("proprio", "actions")

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
        if preload:
            self.load()

    def _read_clip(self, index: int) -> dict[str, torch.Tensor]:
        file_index, demo, start = self._locate(index)
        rows = self._rows(start)
        proprio = self._read(file_index, demo, "obs/proprio", rows).astype(np.float32)
        if self.action == "delta":
            actions = _proprio_steps(proprio[:-1], proprio[1:])
        else:
            k = self.frame_skip
            commanded = self._read(file_index, demo, "actions", slice(start, start + (self.clip_len - 1) * k))
            actions = _command_steps(commanded.reshape(self.clip_len - 1, k, -1))
        return {
            "frames": torch.from_numpy(self._read(file_index, demo, self.image_key, rows)),
            "proprio": torch.from_numpy(proprio),
            "actions": torch.from_numpy(actions),
        }

    def _episode_arrays(self, file_index: int, demo: str) -> dict[str, np.ndarray]:
        proprio = self._read(file_index, demo, "obs/proprio").astype(np.float32)
        k = self.frame_skip
        if self.action == "delta":
            steps = _proprio_steps(proprio[:-k], proprio[k:])
        else:
            commanded = self._read(file_index, demo, "actions")  # [N, A]: windows of k consecutive commands
            steps = _command_steps(np.lib.stride_tricks.sliding_window_view(commanded, k, axis=0).transpose(0, 2, 1))
        actions = np.zeros((len(proprio), 7), dtype=np.float32)
        actions[: len(steps)] = steps
        return {"frames": self._read(file_index, demo, self.image_key), "proprio": proprio, "actions": actions}


def _proprio_steps(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """World-model actions float32 ``[M, 7]`` from the proprio rows ``before [M, 7]`` to ``after [M, 7]``."""
    return proprio_delta(np.stack([before, after], axis=1))[:, 0]


def _command_steps(commanded: np.ndarray) -> np.ndarray:
    """One action float32 ``[M, 7]`` per group of k env actions ``[M, k, 7 or 4]``: the position and
    orientation commands summed, the last gripper target."""
    expanded = expand_action(commanded.astype(np.float32))
    return np.ascontiguousarray(np.concatenate([expanded[:, :, :6].sum(axis=1), expanded[:, -1, 6:]], axis=1))
