"""LeRobotDataset v3, both ways: export armworld trajectory files, read LeRobot directories for training.

A LeRobotDataset v3 directory (the layout ``lerobot`` 0.4 writes and reads, ``codebase_version``
``v3.0``)::

    meta/info.json                                   fps, features, path templates, totals
    meta/stats.json                                  per-feature min, max, mean, std, count, q01..q99
    meta/tasks.parquet                               task text (the index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, where its rows
                                                     and video segments are, its stats
    data/chunk-CCC/file-FFF.parquet                  one row per frame: numeric features and indices
    videos/<video key>/chunk-CCC/file-FFF.mp4        one camera's frames, episodes one after another

Export (:func:`export_lerobot`) writes an armworld episode of N actions as N + 1 frames, so the
observation after the last action (the goal frame of a success) is kept:

================================  ============================================================
``observation.images.<camera>``   video of ``obs/rgb_<camera>`` (H.264, ``yuv420p``; ``yuv444p``
                                  when a side is odd), one MP4 per camera and file index
``observation.state``             float32 [7], ``obs/proprio`` (armworld's proprio convention)
``action``                        float32 [A], ``actions`` (env actions in [-1, 1]); frame t holds
                                  the action taken after observation t, the last frame repeats
                                  the episode's last action (zeros for an episode without one)
``next.reward``                   float32, ``rewards`` (0 on the last frame)
``next.done``                     bool, ``dones`` (true on the last frame)
``next.success``                  bool, ``success`` (the last frame repeats the final value)
``timestamp``                     float32, frame_index / fps (s)
``frame_index``, ``episode_index``, ``index``, ``task_index``   int64, as LeRobot defines them
================================  ============================================================

Reading (:class:`LeRobotReader`) maps a directory's features onto the keys of armworld's clip
datasets through a :class:`KeyMap`: cameras -> ``obs/rgb_<camera>``, state keys concatenated ->
``obs/proprio`` [7], the action key -> ``actions``. Frame t's action moves the robot from frame
t to t + 1, so an episode of L frames has L - 1 actions (the last frame's action is not read).
Episode ``i`` is validation when ``i % 10 == 9``, as in armworld's own files.

Needs ``pyarrow`` and ``av`` (PyAV): ``pip install 'armworld[lerobot]'``. ``lerobot`` itself is
not required (its pins exclude the torch armworld runs on); the tests read armworld's exports
with ``lerobot``'s ``LeRobotDataset`` wherever it is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np

from armworld.datasets.env_args import robot_of
from armworld.datasets.hdf5 import DatasetError, TrajectoryFile, split_of
from armworld.envs.conventions import CONTROL_HZ, PROPRIO_DIM
from armworld.envs.registry import ENV_IDS, ROBOTS, TASKS

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk folder
DATA_FILE_SIZE_MB = 100  # a data file is closed once its frames reach this size (uncompressed)
VIDEO_FILE_SIZE_MB = 200  # a video file is closed once it reaches this size
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
CAMERA_PREFIX = "observation.images."
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # LeRobot's q01, q10, q50, q90, q99
VIDEO_CODEC = "libx264"
KEYFRAME_EVERY = 2  # LeRobot's GOP size: any frame is at most one frame from a keyframe
DEFAULT_CRF = 18  # x264 quality (0 lossless .. 51); 18 keeps 64x64 renders within a few levels
TIMESTAMP_TOLERANCE_S = 1e-4  # LeRobot's default tolerance between a frame's timestamp and the video's
INSTALL_HINT = "pip install 'armworld[lerobot]'"

PROPRIO_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
ACTION_NAMES = {7: PROPRIO_NAMES, 4: ["x", "y", "z", "gripper"]}


def require() -> tuple[ModuleType, ModuleType, ModuleType]:
    """``(pyarrow, pyarrow.parquet, av)``; ``DatasetError`` naming the extra to install when missing."""
    try:
        import av
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise DatasetError(
            f"LeRobot datasets need pyarrow and PyAV ({error.name} is missing); install them with {INSTALL_HINT}"
        ) from None
    return pyarrow, pyarrow.parquet, av


def is_lerobot_dataset(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a LeRobot dataset directory (it holds ``meta/info.json``)."""
    return os.path.isfile(os.path.join(path, INFO_PATH))


def open_dataset(path: str | os.PathLike, lerobot_keys: str | KeyMap = "armworld") -> TrajectoryFile | LeRobotReader:
    """A reader of ``path``: a :class:`LeRobotReader` of a LeRobot dataset directory (features mapped
    by ``lerobot_keys``), else a :class:`TrajectoryFile` of an armworld HDF5 file."""
    if is_lerobot_dataset(path):
        return LeRobotReader(path, lerobot_keys)
    if os.path.isdir(path):
        raise DatasetError(f"{path}: is a directory without {INFO_PATH}: neither an armworld HDF5 file nor a LeRobot dataset")
    return TrajectoryFile(path)


def read_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta/info.json`` of a LeRobot v3 dataset directory; ``DatasetError`` if unreadable or of another version."""
    try:
        with open(os.path.join(path, INFO_PATH)) as file:
            info = json.load(file)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable LeRobot dataset ({INFO_PATH}: {error})") from None
    version = str(info.get("codebase_version", "?")) if isinstance(info, dict) else "?"
    if not version.startswith("v3."):
        raise DatasetError(
            f"{path}: LeRobot dataset {version}; armworld reads {CODEBASE_VERSION} "
            "(convert it with lerobot's convert_dataset_v21_to_v30)"
        )
    return info


def describe_lerobot(path: str | os.PathLike) -> dict[str, Any]:
    """``{"path", "bytes", "sha256", "episodes", "env_steps"}`` of a LeRobot dataset directory, for
    training metadata. The sha256 covers the names and contents of its ``meta/`` and ``data/``
    files and the names and sizes of its videos (hashing every video of a large dataset such as
    DROID would take hours at each start); ``env_steps`` counts the transitions (frames minus episodes)."""
    import hashlib

    info = read_info(path)
    digest, size = hashlib.sha256(), 0
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        name = file.relative_to(path).as_posix()
        stat = file.stat()
        size += stat.st_size
        digest.update(f"{name}\0{stat.st_size}\0".encode())
        if not name.startswith("videos/"):
            digest.update(file.read_bytes())
    return {"path": str(path), "bytes": size, "sha256": digest.hexdigest(), "episodes": int(info["total_episodes"]),
            "env_steps": int(info["total_frames"]) - int(info["total_episodes"])}


# -- key maps


@dataclass(frozen=True)
class KeyMap:
    """Which features of a LeRobot dataset armworld reads as what.

    Attributes:
        cameras: armworld camera name -> video feature; ``None``: every ``observation.images.<name>``
            video feature is camera ``<name>`` (armworld's own exports).
        proprio: features concatenated (in this order, along the last axis) into ``obs/proprio``,
            which must give armworld's 7 values: TCP xyz (m), extrinsic XYZ Euler angles (rad),
            gripper closure 0..1.
        action: the feature read as ``actions`` (env actions, for ``ClipDataset(action="command")``);
            ``None`` when the dataset's actions are not armworld env actions.
    """

    cameras: dict[str, str] | None = None
    proprio: tuple[str, ...] = ("observation.state",)
    action: str | None = "action"

    @classmethod
    def from_json(cls, value: Any, where: str) -> KeyMap:
        """A key map from its JSON object (the fields above); ``DatasetError`` naming ``where`` and the field."""
        if not isinstance(value, dict) or set(value) - {"cameras", "proprio", "action"}:
            raise DatasetError(f"{where}: a key map is a JSON object with 'cameras', 'proprio' and 'action' only")
        cameras, proprio, action = value.get("cameras"), value.get("proprio", ["observation.state"]), value.get("action", "action")
        if cameras is not None and not (isinstance(cameras, dict) and all(isinstance(v, str) for v in cameras.values())):
            raise DatasetError(f"{where}: 'cameras' is an object of camera name -> video feature, or null")
        if not (isinstance(proprio, list) and proprio and all(isinstance(k, str) for k in proprio)):
            raise DatasetError(f"{where}: 'proprio' is a non-empty list of feature names")
        if action is not None and not isinstance(action, str):
            raise DatasetError(f"{where}: 'action' is a feature name or null")
        return cls(cameras=cameras, proprio=tuple(proprio), action=action)


KEY_MAPS: dict[str, KeyMap] = {
    "armworld": KeyMap(),
    # DROID (lerobot/droid_1.0.1): its Cartesian state is armworld's proprio, as V-JEPA 2-AC reads it;
    # its actions are joint velocities, not armworld env actions.
    "droid": KeyMap(
        cameras={
            "front": "observation.images.exterior_1_left",
            "side": "observation.images.exterior_2_left",
            "wrist": "observation.images.wrist_left",
        },
        proprio=("observation.state.cartesian_position", "observation.state.gripper_position"),
        action=None,
    ),
}


def key_map(spec: str | KeyMap) -> KeyMap:
    """The key map ``spec`` names: one of :data:`KEY_MAPS` or a JSON file of :meth:`KeyMap.from_json`'s fields."""
    if isinstance(spec, KeyMap):
        return spec
    if spec in KEY_MAPS:
        return KEY_MAPS[spec]
    if not os.path.isfile(spec):
        raise DatasetError(f"unknown key map {spec!r}: give one of {', '.join(KEY_MAPS)} or a JSON file")
    try:
        with open(spec) as file:
            value = json.load(file)
    except (OSError, ValueError) as error:
        raise DatasetError(f"{spec}: not a readable JSON key map ({error})") from None
    return KeyMap.from_json(value, spec)


# -- export


@dataclass
class ExportSummary:
    """What :func:`export_lerobot` wrote."""

    out: str
    episodes: int
    frames: int
    cameras: list[str]
    fps: int
    bytes: int

    def line(self) -> str:
        """One-line summary for the CLI."""
        return (f"{self.out}: LeRobotDataset {CODEBASE_VERSION}, {self.episodes} episodes, {self.frames} frames at "
                f"{self.fps} fps, cameras {', '.join(self.cameras) or 'none'}, {self.bytes / 1e6:.1f} MB")


def task_text(env_args: dict[str, Any]) -> str:
    """The task sentence (``Task.instruction``) of a trajectory file's env: from its
    ``env_kwargs["task"]`` (real arms) or its env id's task (armworld envs); the env name when
    neither is known."""
    task = (env_args.get("env_kwargs") or {}).get("task")
    name = str(env_args.get("env_name", ""))
    if task is None and name in ENV_IDS:
        task = ENV_IDS[name].task.name
    return TASKS[task].instruction if task in TASKS else name or "unknown task"


def _robot_type(env_args: dict[str, Any]) -> str:
    """A real arm's name (``real:ur5e``), else the sim robot's env-id prefix in lower case
    (``franka``, ``ur5e``), ``unknown`` for an env id armworld does not know."""
    name = str(env_args.get("env_name", ""))
    if name.startswith("real:"):
        return name.split(":", 1)[1]
    robot = robot_of(env_args)
    return ROBOTS[robot].env_prefix.lower() if robot else "unknown"


def export_lerobot(
    source: str | os.PathLike,
    out: str | os.PathLike,
    fps: int = int(CONTROL_HZ),
    task: str | None = None,
    crf: int = DEFAULT_CRF,
    overwrite: bool = False,
) -> ExportSummary:
    """Write the committed episodes of the trajectory file ``source`` as a LeRobotDataset v3 at ``out``.

    Args:
        source: an armworld HDF5 trajectory file (simulated or recorded on a real arm).
        out: the dataset directory to create.
        fps: the rate the episodes were recorded at (frames per second; armworld envs and the
            shipped arm limits run at 10 Hz).
        task: the task text of every episode (default: from the file's env, see :func:`task_text`).
        crf: x264 quality of the videos (0 lossless .. 51; lower is larger and closer).
        overwrite: replace an existing ``out``.

    The dataset is written into a temporary directory beside ``out`` and renamed to ``out`` when
    complete, so a failed export leaves no partial dataset and an existing one untouched.
    Raises ``DatasetError`` (a missing extra, an unreadable file, an existing ``out``) or ``ValueError``.
    """
    pa, pq, av = require()
    if not isinstance(fps, int) or fps < 1:
        raise ValueError(f"fps must be a positive integer (LeRobot stores an integer frame rate), got {fps!r}")
    if not 0 <= crf <= 51:
        raise ValueError(f"crf must be in 0..51 (x264's quality scale), got {crf}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"{out}: exists; replace it with overwrite=True (--overwrite) or give another directory")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: is a file; the LeRobot dataset is a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        with TrajectoryFile(source) as file:
            summary = _Exporter(file, tmp, fps, task or task_text(file.env_args), crf, pa, pq, av).run()
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / "dataset")
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary.out = str(out)
    return summary


class _Exporter:
    """One export: episodes are written one by one into open data, video and stats writers."""

    def __init__(self, file: TrajectoryFile, root: Path, fps: int, task: str, crf: int, pa, pq, av):
        self.file, self.root, self.fps, self.task, self.crf = file, root, fps, task, crf
        self.pa, self.pq, self.av = pa, pq, av
        demos = file.demos
        keys = file.keys(demos[0]) if demos else []
        self.cameras = sorted(key[len("rgb_"):] for key in keys if key.startswith("rgb_"))
        if demos and "proprio" not in keys:
            raise DatasetError(f"{file.path}: {demos[0]}: missing 'obs/proprio' (LeRobot's observation.state)")
        self.action_dim = file.dataset(demos[0], "actions").shape[1] if demos else 7
        self.features = self._features(demos)
        self.episodes: list[dict[str, Any]] = []
        self.frames = 0
        self.data_writer: Any = None
        self.data_file = (0, 0)
        self.data_bytes = 0
        self.videos: dict[str, _VideoWriter] = {}

    def _features(self, demos: list[str]) -> dict[str, dict]:
        features: dict[str, dict] = {}
        for camera in self.cameras:
            _, height, width, _ = self.file.images(demos[0], f"obs/rgb_{camera}").shape
            features[CAMERA_PREFIX + camera] = {
                "dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
                "info": {"video.height": height, "video.width": width, "video.codec": "h264",
                         "video.pix_fmt": _pix_fmt(height, width), "video.is_depth_map": False,
                         "video.fps": self.fps, "video.channels": 3, "has_audio": False},
            }
        features["observation.state"] = {"dtype": "float32", "shape": [PROPRIO_DIM], "names": PROPRIO_NAMES}
        features["action"] = {"dtype": "float32", "shape": [self.action_dim],
                              "names": ACTION_NAMES.get(self.action_dim)}
        features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
        features["next.done"] = {"dtype": "bool", "shape": [1], "names": None}
        features["next.success"] = {"dtype": "bool", "shape": [1], "names": None}
        features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
        for name in ("frame_index", "episode_index", "index", "task_index"):
            features[name] = {"dtype": "int64", "shape": [1], "names": None}
        return features

    def run(self) -> ExportSummary:
        try:
            for index, demo in enumerate(self.file.demos):
                self._episode(index, demo)
        finally:
            if self.data_writer is not None:
                self.data_writer.close()
            for writer in self.videos.values():
                writer.close()
        self._write_meta()
        size = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())
        return ExportSummary(str(self.root), len(self.episodes), self.frames, self.cameras, self.fps, size)

    def _columns(self, index: int, demo: str) -> dict[str, np.ndarray]:
        """The parquet columns of one episode (N + 1 rows)."""
        read = self.file.read
        proprio = read(demo, "obs/proprio")
        length = len(proprio)
        n = length - 1
        actions = read(demo, "actions").astype(np.float32)
        if actions.shape != (n, self.action_dim):
            raise DatasetError(f"{self.file.path}: {demo}: 'actions' is {actions.shape}, expected ({n}, {self.action_dim})")
        last = actions[-1:] if n else np.zeros((1, self.action_dim), np.float32)
        success = read(demo, "success").astype(bool)
        frame_index = np.arange(length, dtype=np.int64)
        return {
            "observation.state": proprio.astype(np.float32),
            "action": np.concatenate([actions, last]),
            "next.reward": np.append(read(demo, "rewards").astype(np.float32), np.float32(0)),
            "next.done": np.append(read(demo, "dones").astype(bool), True),
            "next.success": np.append(success, success[-1] if n else False),
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index,
            "episode_index": np.full(length, index, dtype=np.int64),
            "index": np.arange(self.frames, self.frames + length, dtype=np.int64),
            "task_index": np.zeros(length, dtype=np.int64),
        }

    def _episode(self, index: int, demo: str) -> None:
        columns = self._columns(index, demo)
        length = len(columns["frame_index"])
        record: dict[str, Any] = {"episode_index": index, "tasks": [self.task], "length": length}
        record.update(self._write_data(columns))
        stats = {key: _stats(values) for key, values in columns.items() if values.dtype != np.bool_}
        for camera in self.cameras:
            key = CAMERA_PREFIX + camera
            frames = self.file.images(demo, f"obs/rgb_{camera}")[()]
            if len(frames) != length:
                raise DatasetError(f"{self.file.path}: {demo}: 'obs/rgb_{camera}' has {len(frames)} rows, expected {length}")
            record.update(self._write_video(key, frames))
            stats[key] = _image_stats(frames)
        record["meta/episodes/chunk_index"], record["meta/episodes/file_index"] = 0, 0
        record["stats"] = stats
        self.episodes.append(record)
        self.frames += length

    def _write_data(self, columns: dict[str, np.ndarray]) -> dict[str, int]:
        pa = self.pa
        arrays = {}
        for key, values in columns.items():
            shape = self.features[key]["shape"]
            flat = pa.array(values.reshape(-1))
            arrays[key] = flat if shape == [1] else pa.FixedSizeListArray.from_arrays(flat, shape[0])
        table = pa.table(arrays)
        if self.data_writer is not None and self.data_bytes + table.nbytes > DATA_FILE_SIZE_MB * 1e6:
            self.data_writer.close()
            self.data_writer, self.data_file, self.data_bytes = None, _next_file(*self.data_file), 0
        if self.data_writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.data_file[0], file_index=self.data_file[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            self.data_writer = self.pq.ParquetWriter(path, table.schema, compression="snappy")
        self.data_writer.write_table(table)
        self.data_bytes += table.nbytes
        return {"data/chunk_index": self.data_file[0], "data/file_index": self.data_file[1],
                "dataset_from_index": self.frames, "dataset_to_index": self.frames + len(table)}

    def _write_video(self, key: str, frames: np.ndarray) -> dict[str, Any]:
        writer = self.videos.get(key)
        if writer is not None and writer.size() >= VIDEO_FILE_SIZE_MB * 1e6:
            writer.close()
            writer = None
            chunk, index = _next_file(*self.videos[key].file)
        else:
            chunk, index = (0, 0) if writer is None else writer.file
        if writer is None:
            path = self.root / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=index)
            writer = self.videos[key] = _VideoWriter(self.av, path, (chunk, index), frames.shape[1:3], self.fps, self.crf)
        start = writer.frames
        writer.write(frames)
        return {f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": index,
                f"videos/{key}/from_timestamp": start / self.fps, f"videos/{key}/to_timestamp": writer.frames / self.fps}

    def _write_meta(self) -> None:
        pa, pq = self.pa, self.pq
        meta = self.root / "meta"
        meta.mkdir(parents=True, exist_ok=True)
        tasks = [self.task] if self.episodes else []
        table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "__index_level_0__": pa.array(tasks, pa.string())})
        pq.write_table(table.replace_schema_metadata({"pandas": _PANDAS_TASKS_METADATA}), meta / "tasks.parquet")
        rows = []
        for record in self.episodes:
            row = {k: v for k, v in record.items() if k != "stats"}
            for feature, stats in record["stats"].items():
                row.update({f"stats/{feature}/{name}": value.tolist() for name, value in stats.items()})
            rows.append(row)
        path = self.root / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({"episode_index": pa.array([], pa.int64())}), path)
        stats = _aggregate([record["stats"] for record in self.episodes])
        (meta / "stats.json").write_text(json.dumps({k: {n: v.tolist() for n, v in s.items()} for k, s in stats.items()}, indent=4))
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": _robot_type(self.file.env_args),
            "total_episodes": len(self.episodes),
            "total_frames": self.frames,
            "total_tasks": len(tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_SIZE_MB,
            "video_files_size_in_mb": VIDEO_FILE_SIZE_MB,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.cameras else None,
            "features": self.features,
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))


# What pandas writes for LeRobot's tasks table, a DataFrame of ``task_index`` indexed by the task text:
# ``pd.read_parquet(meta/tasks.parquet)`` then gives that DataFrame back (lerobot looks tasks up by index).
_PANDAS_TASKS_METADATA = json.dumps({
    "index_columns": ["__index_level_0__"],
    "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                        "metadata": {"encoding": "UTF-8"}}],
    "columns": [
        {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64", "metadata": None},
        {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
    ],
    "attributes": {},
    "creator": {"library": "pyarrow", "version": "armworld"},
    "pandas_version": "2.2.0",
})


def _next_file(chunk: int, index: int) -> tuple[int, int]:
    """The (chunk, file) indices after ``(chunk, index)``: ``CHUNKS_SIZE`` files per chunk."""
    return (chunk + 1, 0) if index == CHUNKS_SIZE - 1 else (chunk, index + 1)


def _pix_fmt(height: int, width: int) -> str:
    """4:2:0 chroma needs even sides; odd ones keep full chroma."""
    return "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"


class _VideoWriter:
    """One MP4 file of one camera: H.264 at ``fps``, frame k of the file at k / fps seconds."""

    def __init__(self, av: ModuleType, path: Path, file: tuple[int, int], size: tuple[int, int], fps: int, crf: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.file, self.frames = path, file, 0
        self.container = av.open(str(path), "w", format="mp4")
        self.stream = self.container.add_stream(VIDEO_CODEC, rate=fps, options={"crf": str(crf), "g": str(KEYFRAME_EVERY)})
        self.stream.height, self.stream.width = size
        self.stream.pix_fmt = _pix_fmt(*size)
        self.stream.codec_context.time_base = Fraction(1, fps)
        self.av = av

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 frames ``[T, H, W, 3]``."""
        for image in frames:
            frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            self.container.mux(self.stream.encode(frame))
            self.frames += 1

    def size(self) -> int:
        """Bytes written so far."""
        return self.path.stat().st_size

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode(None))
            self.container.close()
            self.container = None


# -- statistics (LeRobot's meta/stats.json and per-episode stats/...)


def _stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min, max, mean, std, count, q01..q99 of a column ``[L]`` or ``[L, D]`` (per dimension)."""
    x = values.reshape(len(values), -1).astype(np.float64)
    stats = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0), "count": np.array([len(x)])}
    quantiles = np.quantile(x, QUANTILES, axis=0)
    stats.update({f"q{round(q * 100):02d}": quantiles[i] for i, q in enumerate(QUANTILES)})
    return stats


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 frames ``[T, H, W, 3]`` in [0, 1], shaped ``[3, 1, 1]`` as LeRobot's;
    ``count`` is the number of frames. Exact (quantiles from the 256-bin histogram)."""
    pixels = frames.reshape(-1, 3)
    stats: dict[str, np.ndarray] = {"min": pixels.min(0) / 255.0, "max": pixels.max(0) / 255.0,
                                    "mean": pixels.mean(0) / 255.0, "std": pixels.std(0) / 255.0}
    cumulative = np.stack([np.cumsum(np.bincount(pixels[:, c], minlength=256)) for c in range(3)])
    for q in QUANTILES:
        level = np.array([np.searchsorted(row, q * row[-1]) for row in cumulative])
        stats[f"q{round(q * 100):02d}"] = level / 255.0
    stats = {k: v.reshape(3, 1, 1) for k, v in stats.items()}
    stats["count"] = np.array([len(frames)])
    return stats


def _aggregate(episodes: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Dataset stats from per-episode stats, as LeRobot aggregates them: min of mins, max of maxes,
    count-weighted mean, pooled std, summed count, count-weighted mean of each quantile."""
    if not episodes:
        return {}
    out = {}
    for key in episodes[0]:
        parts = [e[key] for e in episodes]
        weights = np.array([p["count"][0] for p in parts], dtype=np.float64)
        shape = (-1,) + (1,) * (parts[0]["mean"].ndim)
        w = weights.reshape(shape) / weights.sum()
        mean = (np.stack([p["mean"] for p in parts]) * w).sum(0)
        second = (np.stack([p["std"] ** 2 + p["mean"] ** 2 for p in parts]) * w).sum(0)
        stats = {"min": np.min([p["min"] for p in parts], axis=0), "max": np.max([p["max"] for p in parts], axis=0),
                 "mean": mean, "std": np.sqrt(np.maximum(second - mean**2, 0.0)), "count": np.array([int(weights.sum())])}
        for name in parts[0]:
            if name.startswith("q"):
                stats[name] = (np.stack([p[name] for p in parts]) * w).sum(0)
        out[key] = stats
    return out


# -- reading


@dataclass
class _Episode:
    """One episode of a LeRobot dataset as the reader holds it: numeric columns in memory,
    where its frames are in each camera's video."""

    index: int
    length: int
    timestamps: np.ndarray  # float64 [L] (s, within the episode)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # "obs/proprio" [L, 7], "actions" [L-1, A]
    videos: dict[str, tuple[str, float]] = field(default_factory=dict)  # camera -> (video file, from_timestamp)


class LeRobotReader:
    """Read-only access to a LeRobot v3 dataset directory with the interface the clip datasets use.

    Demos are named ``episode_<i>``; keys are ``obs/rgb_<camera>`` (uint8 ``[L, H, W, 3]``, decoded
    from the videos on demand), ``obs/proprio`` (float32 ``[L, 7]``) and ``actions`` (float32
    ``[L-1, A]``), mapped through ``keys`` (a :class:`KeyMap` or a name of :data:`KEY_MAPS`).
    The state and action columns are read into memory when the reader opens (4 bytes a value);
    ``DatasetError`` names the directory, the episode and the problem.
    """

    def __init__(self, path: str | os.PathLike, keys: str | KeyMap = "armworld"):
        self.path = str(path)
        self.keys_map = key_map(keys)
        _, self._pq, self._av = require()
        self.info = read_info(self.path)
        self.fps = int(self.info["fps"])
        self.features: dict[str, dict] = self.info.get("features", {})
        self.cameras = self._cameras()
        self._episodes = self._read_episodes()
        self.demos = [f"episode_{e.index}" for e in self._episodes]
        self._by_name = dict(zip(self.demos, self._episodes))
        self.total = len(self.demos)
        self._containers: dict[str, Any] = {}

    def _cameras(self) -> dict[str, str]:
        """armworld camera -> video feature."""
        videos = [k for k, f in self.features.items() if f.get("dtype") == "video"]
        if self.keys_map.cameras is None:
            return {k[len(CAMERA_PREFIX):]: k for k in videos if k.startswith(CAMERA_PREFIX)}
        missing = [k for k in self.keys_map.cameras.values() if k not in videos]
        if missing:
            raise DatasetError(f"{self.path}: no video feature {', '.join(missing)} (video features: {', '.join(videos) or 'none'}); "
                               "pick another key map (see datasets/README.md)")
        return dict(self.keys_map.cameras)

    def _check_feature(self, key: str, role: str) -> None:
        if key not in self.features:
            names = ", ".join(k for k, f in self.features.items() if f.get("dtype") != "video")
            raise DatasetError(f"{self.path}: no feature '{key}' for {role} (features: {names}); "
                               "pick another key map (see datasets/README.md)")

    def _read_episodes(self) -> list[_Episode]:
        pq = self._pq
        paths = sorted(Path(self.path, "meta", "episodes").glob("*/*.parquet"))
        if not paths:
            raise DatasetError(f"{self.path}: no episode metadata (meta/episodes/*/*.parquet)")
        columns = ["episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"]
        for video in self.cameras.values():
            columns += [f"videos/{video}/chunk_index", f"videos/{video}/file_index", f"videos/{video}/from_timestamp"]
        try:
            rows = [row for p in paths for row in pq.read_table(p, columns=columns).to_pylist()]
        except (OSError, KeyError, ValueError) as error:
            raise DatasetError(f"{self.path}: unreadable episode metadata ({' '.join(str(error).split())})") from None
        rows.sort(key=lambda r: r["episode_index"])
        for key in self.keys_map.proprio:
            self._check_feature(key, "proprio")
        if self.keys_map.action is not None:
            self._check_feature(self.keys_map.action, "actions")
        by_file: dict[tuple[int, int], list[dict]] = {}
        for row in rows:
            by_file.setdefault((row["data/chunk_index"], row["data/file_index"]), []).append(row)
        episodes = []
        for (chunk, index), members in sorted(by_file.items()):
            table = self._data_table(chunk, index)
            start = int(table["index"][0])
            for row in members:
                rows_ = slice(row["dataset_from_index"] - start, row["dataset_to_index"] - start)
                episodes.append(self._episode(row, table, rows_))
        episodes.sort(key=lambda e: e.index)
        return episodes

    def _data_table(self, chunk: int, index: int) -> dict[str, np.ndarray]:
        """The needed columns of one data file as numpy arrays ``[rows, ...]``."""
        path = os.path.join(self.path, self.info.get("data_path", DATA_PATH).format(chunk_index=chunk, file_index=index))
        needed = ["index", "episode_index", "timestamp", *self.keys_map.proprio]
        if self.keys_map.action is not None:
            needed.append(self.keys_map.action)
        try:
            table = self._pq.read_table(path, columns=needed)
        except (OSError, KeyError, ValueError) as error:
            raise DatasetError(f"{path}: unreadable data file ({' '.join(str(error).split())})") from None
        if table.num_rows == 0:
            raise DatasetError(f"{path}: no rows, though meta/episodes names episodes in it; re-export the dataset")
        return {name: _column(table.column(name)) for name in needed}

    def _episode(self, row: dict, table: dict[str, np.ndarray], rows: slice) -> _Episode:
        index, length = int(row["episode_index"]), int(row["length"])
        where = f"{self.path}: episode_{index}"
        if not (np.asarray(table["episode_index"][rows]) == index).all() or rows.stop - rows.start != length:
            raise DatasetError(f"{where}: its rows in the data file do not match meta/episodes (length {length})")
        proprio = np.concatenate([table[k][rows].reshape(length, -1) for k in self.keys_map.proprio], axis=1)
        if proprio.shape[1] != PROPRIO_DIM:
            raise DatasetError(f"{where}: {' + '.join(self.keys_map.proprio)} give {proprio.shape[1]} values, "
                               f"expected armworld's {PROPRIO_DIM}-D proprio (xyz, Euler XYZ, gripper); pick another key map")
        episode = _Episode(index, length, table["timestamp"][rows].reshape(-1).astype(np.float64))
        episode.arrays["obs/proprio"] = proprio.astype(np.float32)
        if self.keys_map.action is not None:
            actions = table[self.keys_map.action][rows].reshape(length, -1)[:-1].astype(np.float32)
            if actions.shape[1] not in ACTION_NAMES:
                raise DatasetError(f"{where}: '{self.keys_map.action}' has {actions.shape[1]} values, expected armworld env "
                                   "actions (4 or 7 in [-1, 1]); set the key map's action to null to train on proprio deltas")
            episode.arrays["actions"] = actions
        template = self.info.get("video_path") or VIDEO_PATH
        for camera, video in self.cameras.items():
            path = os.path.join(self.path, template.format(
                video_key=video, chunk_index=row[f"videos/{video}/chunk_index"], file_index=row[f"videos/{video}/file_index"]))
            episode.videos[camera] = (path, float(row[f"videos/{video}/from_timestamp"]))
        return episode

    def __enter__(self) -> LeRobotReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the open video files (they reopen on the next read)."""
        for container in self._containers.values():
            container.close()
        self._containers = {}

    def split(self, name: Literal["train", "valid"] | None) -> list[str]:
        """Episode names of a split (episode i is validation when i % 10 == 9), or all for ``None``."""
        return [d for d, e in zip(self.demos, self._episodes) if name is None or split_of(e.index) == name]

    def _get(self, demo: str) -> _Episode:
        if demo not in self._by_name:
            raise DatasetError(f"{self.path}: {demo}: no such episode (the dataset holds {self.total})")
        return self._by_name[demo]

    def num_samples(self, demo: str) -> int:
        """The transitions of ``demo`` (its frames minus one)."""
        return self._get(demo).length - 1

    def has(self, demo: str, key: str) -> bool:
        """Whether ``key`` (``obs/rgb_<camera>``, ``obs/proprio``, ``actions``) is mapped for ``demo``."""
        episode = self._get(demo)
        return key in episode.arrays or (key.startswith("obs/rgb_") and key[len("obs/rgb_"):] in episode.videos)

    def keys(self, demo: str) -> list[str]:
        """The observation keys of ``demo``: ``rgb_<camera>`` for each mapped camera, ``proprio``."""
        return [f"rgb_{camera}" for camera in self._get(demo).videos] + ["proprio"]

    def rows(self, demo: str, key: str) -> int:
        """The number of rows of ``key``: the episode's frames, one fewer for ``actions``."""
        episode = self._get(demo)
        if key in episode.arrays:
            return len(episode.arrays[key])
        if self.has(demo, key):
            return episode.length
        raise DatasetError(f"{self.path}: {demo}: no '{key}' (mapped: {', '.join(self.keys(demo))}"
                           f"{', actions' if 'actions' in episode.arrays else ''})")

    def read(self, demo: str, key: str, index: slice = slice(None)) -> np.ndarray:
        """Rows ``index`` (a slice, possibly strided) of ``key``; frames are uint8 ``[T, H, W, 3]``.
        Rows out of range raise ``DatasetError`` (a slice is not shortened)."""
        episode, rows = self._get(demo), self.rows(demo, key)
        if any(b is not None and not -rows <= b <= rows for b in (index.start, index.stop)):
            raise DatasetError(f"{self.path}: {demo}: rows {index.start}:{index.stop} of '{key}' are out of range ({rows} rows)")
        if key in episode.arrays:
            return episode.arrays[key][index]
        return self._frames(episode, key[len("obs/rgb_"):], np.arange(rows)[index])

    def _frames(self, episode: _Episode, camera: str, rows: np.ndarray) -> np.ndarray:
        """Decode frames ``rows`` of the episode's video: seek to the keyframe before the first,
        decode forward, keep the frames whose times match the rows' timestamps."""
        path, offset = episode.videos[camera]
        where = f"{self.path}: episode_{episode.index}: {camera}"
        wanted = offset + episode.timestamps[rows]
        if not len(wanted):
            return np.zeros((0, *self.features[self.cameras[camera]]["shape"]), dtype=np.uint8)
        found: dict[int, np.ndarray] = {}
        try:
            container = self._containers.get(path)
            if container is None:
                container = self._containers[path] = self._av.open(path)
            stream = container.streams.video[0]
            container.seek(max(int(wanted.min() / stream.time_base), 0), stream=stream, backward=True)
            last = wanted.max() + TIMESTAMP_TOLERANCE_S
            for frame in container.decode(stream):
                time = float(frame.pts * stream.time_base)
                for i in np.flatnonzero(np.abs(wanted - time) < TIMESTAMP_TOLERANCE_S):
                    found.setdefault(int(i), frame.to_ndarray(format="rgb24"))
                if time > last or len(found) == len(wanted):
                    break
        except (OSError, self._av.error.FFmpegError) as error:
            raise DatasetError(f"{where}: cannot decode {path} ({error})") from None
        if len(found) < len(wanted):
            missing = [f"{wanted[i]:.4f}" for i in range(len(wanted)) if i not in found][:5]
            raise DatasetError(f"{where}: {path} has no frame at {', '.join(missing)} s (within {TIMESTAMP_TOLERANCE_S} s)")
        return np.stack([found[i] for i in range(len(wanted))])


def _column(column: Any) -> np.ndarray:
    """A parquet column as numpy: scalars ``[rows]``, fixed or variable-size lists ``[rows, D]``."""
    import pyarrow as pa

    array = column.combine_chunks()
    if pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) or pa.types.is_large_list(array.type):
        values = array.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(array), -1)
    return array.to_numpy(zero_copy_only=False)
