"""The armworld trajectory file: robomimic's HDF5 layout plus what armworld adds.

N is the number of actions in an episode. Arrays indexed by observation have N + 1
rows (the last row is the observation after the final action, so a successful
episode keeps its goal frame); arrays indexed by transition have N rows::

    /                        attrs: armworld_format_version
    data/                    attrs: total (committed episodes), env_args (JSON)
      demo_<i>/              attrs: num_samples (N), seed (reset and policy seed; -1: none), policy (str)
        obs/<key>            [N+1, ...] the env's observation keys:
                             rgb_<camera> uint8 [N+1, H, W, 3], proprio float64 [N+1, 7],
                             observation (the flat privileged state), achieved_goal, desired_goal
        states               float64 [N+1, S] flattened MuJoCo state at each observation
        actions              float32 [N, A] env actions in [-1, 1], as executed
        rewards              float32 [N]
        dones                uint8 [N] terminated or truncated (robomimic's field)
        terminated, truncated, success   bool [N]
    mask/train, mask/valid   demo names (every ``VALID_EVERY``-th episode is validation)

Crash safety: an episode is written whole, under a temporary name, then renamed to
``demo_<i>``, listed in its mask, counted in ``data.attrs["total"]`` and flushed.
A new file, or one replacing an existing file, is written as ``<path>.partial`` and
renamed to ``path`` once its first episode is committed, so an existing file is
never lost before new data is safely there.
Readers see only ``demo_0 .. demo_<total-1>``. The writer keeps HDF5 from writing
metadata before that flush (metadata cache evictions off) and from reusing freed
space (file-space strategy "none"), so a process killed between flushes leaves the
file as of the last flush. With evictions off the metadata cache only grows, so the
writer reopens the file every ``REOPEN_EVERY`` episodes. HDF5 has no journal: a kill during the flush itself (a
few milliseconds per episode) can still damage the file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import h5py
import numpy as np

FORMAT_VERSION = 1
VERSION_ATTR = "armworld_format_version"
VALID_EVERY = 10  # episode i is in mask/valid when i % VALID_EVERY == VALID_EVERY - 1
IMAGE_COMPRESSION = "gzip"  # chosen by measurement: see datasets/README.md
IMAGE_COMPRESSION_OPTS = 4
TRANSITION_KEYS = ("actions", "rewards", "dones", "terminated", "truncated", "success")
_PENDING = "pending"
REOPEN_EVERY = 20  # episodes between reopenings of a file being written (bounds the writer's memory)
REOPEN_TIMEOUT = 60.0  # s to wait for a reader that opened the file in between
PARTIAL_SUFFIX = ".partial"  # a new file is written as <path>.partial until its first commit
Exist = Literal["error", "resume", "overwrite"]
EXIST_CHOICES: tuple[str, ...] = get_args(Exist)


class DatasetError(Exception):
    """A trajectory file that cannot be used; the message names the file, the demo and the problem."""


class _BeingWritten(DatasetError):
    """The file is locked by another process's writer."""


def check_exist(exist: str) -> None:
    """Raise ``ValueError`` unless ``exist`` (what to do with an existing file) is one of ``EXIST_CHOICES``."""
    if exist not in EXIST_CHOICES:
        raise ValueError(f"exist must be one of {', '.join(EXIST_CHOICES)}, got {exist!r}")


@dataclass
class Episode:
    """One episode in memory (N actions).

    obs: key -> [N+1, ...] (images uint8 [N+1, H, W, 3]); states: float64 [N+1, S];
    actions: float32 [N, A]; rewards: float32 [N]; terminated, truncated, success: bool [N];
    seed: the reset seed (also used to seed the policy); policy: what produced it.
    """

    obs: dict[str, np.ndarray]
    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    seed: int
    policy: str

    @property
    def num_samples(self) -> int:
        """N, the number of actions."""
        return len(self.actions)


def demo_name(index: int) -> str:
    """``demo_<index>``, robomimic's name for the index-th episode."""
    return f"demo_{index}"


def split_of(index: int) -> Literal["train", "valid"]:
    """The deterministic split of the index-th episode (stable as episodes are appended)."""
    return "valid" if index % VALID_EVERY == VALID_EVERY - 1 else "train"


def open_h5(path: str | os.PathLike, mode: str = "r", **kwargs: Any) -> h5py.File:
    """``h5py.File(path, mode)`` with the failure named in plain words (``DatasetError``)."""
    path = str(path)
    if mode in ("r", "r+") and not os.path.exists(path):
        raise DatasetError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DatasetError(f"{path}: is a directory, expected an HDF5 file")
    try:
        return h5py.File(path, mode, **kwargs)
    except (OSError, ValueError) as error:
        text = str(error)
        if "unable to lock" in text or "already open" in text:
            raise _BeingWritten(f"{path}: is open for writing by another process (a collection still running?)") from None
        if "signature" in text or "truncated" in text or "superblock" in text:
            reason = "is not a readable HDF5 file (truncated, corrupted or another format)"
        else:
            reason = f"cannot be opened ({' '.join(text.split())})"  # h5py's messages may span lines
        raise DatasetError(f"{path}: {reason}") from None


def _check_version(path: str, file: h5py.File) -> None:
    version = file.attrs.get(VERSION_ATTR)
    if version is None or not isinstance(file.get("data"), h5py.Group):
        raise DatasetError(
            f"{path}: not an armworld trajectory file (no '{VERSION_ATTR}' attribute or no 'data' group)"
        )
    if not isinstance(version, (int, np.integer)):
        raise DatasetError(f"{path}: attribute '{VERSION_ATTR}' is {_plain(version)!r}, expected an integer (the format version)")
    if int(version) != FORMAT_VERSION:
        age = "newer" if int(version) > FORMAT_VERSION else "older"
        raise DatasetError(
            f"{path}: written in armworld dataset format {int(version)}, {age} than the format "
            f"{FORMAT_VERSION} this armworld reads; use the armworld release that wrote it"
        )


def _read_header(path: str, file: h5py.File) -> tuple[int, dict[str, Any]]:
    """The committed episode count (``data.attrs["total"]``) and ``env_args`` of an open file,
    checked: ``DatasetError`` naming the attribute and what was expected."""
    _check_version(path, file)
    data = file["data"]
    total = data.attrs.get("total", 0)
    if not isinstance(total, (int, np.integer)) or not 0 <= total <= len(data):
        raise DatasetError(
            f"{path}: attribute data/total is {_plain(total)!r}, expected the number of committed episodes, "
            f"an integer in 0..{len(data)} (the members of 'data')"
        )
    try:
        env_args = json.loads(data.attrs.get("env_args", "{}"))
    except (TypeError, ValueError) as error:
        raise DatasetError(f"{path}: attribute data/env_args is not valid JSON ({error})") from None
    if not isinstance(env_args, dict):
        raise DatasetError(f"{path}: attribute data/env_args is a JSON {type(env_args).__name__}, expected an object")
    return int(total), env_args


class TrajectoryFile:
    """Read-only access to the committed episodes of a trajectory file.

    Use as a context manager or call ``close()``. Every failure raises ``DatasetError``
    naming the file, the demo and the key.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._file = open_h5(self.path, "r")
        try:
            self.total, self.env_args = _read_header(self.path, self._file)
        except DatasetError:
            self._file.close()
            raise
        except (OSError, KeyError) as error:
            self._file.close()
            raise DatasetError(f"{self.path}: unreadable header ({error})") from None
        self.demos = [demo_name(i) for i in range(self.total)]
        self._committed = frozenset(self.demos)

    def __enter__(self) -> TrajectoryFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the underlying HDF5 file."""
        self._file.close()

    def split(self, name: Literal["train", "valid"] | None) -> list[str]:
        """Committed demo names in ``mask/<name>`` (all demos for ``None``), in episode order."""
        if name is None:
            return list(self.demos)
        mask = self._file.get(f"mask/{name}")
        if mask is None:
            raise DatasetError(f"{self.path}: no split 'mask/{name}'")
        if not isinstance(mask, h5py.Dataset) or mask.ndim != 1 or mask.dtype.kind not in "SOU":
            raise DatasetError(f"{self.path}: 'mask/{name}' is {_describe(mask)}, expected a list of demo names")
        listed = {n.decode() if isinstance(n, bytes) else str(n) for n in mask[()]}
        return [demo for demo in self.demos if demo in listed]

    def group(self, demo: str) -> h5py.Group:
        """The HDF5 group of a committed demo."""
        if demo not in self._committed:
            raise DatasetError(f"{self.path}: {demo}: no such committed demo (the file holds {self.total})")
        try:
            group = self._file[f"data/{demo}"]
        except (KeyError, OSError) as error:
            raise DatasetError(f"{self.path}: {demo}: missing or unreadable ({error})") from None
        if not isinstance(group, h5py.Group):
            raise DatasetError(f"{self.path}: 'data/{demo}' is {_describe(group)}, expected a group (an episode)")
        return group

    def attrs(self, demo: str) -> dict[str, Any]:
        """The demo's attributes (num_samples, seed, policy)."""
        return {key: _plain(value) for key, value in self.group(demo).attrs.items()}

    def num_samples(self, demo: str) -> int:
        """N, the number of actions of a demo."""
        samples = self._int_attr(demo, "num_samples")
        if samples is None or samples < 0:
            raise DatasetError(f"{self.path}: {demo}: no 'num_samples' attribute, or a negative one")
        return samples

    def seed(self, demo: str) -> int | None:
        """The demo's reset seed (-1: reset without a seed), None when it has no ``seed`` attribute."""
        return self._int_attr(demo, "seed")

    def _int_attr(self, demo: str, name: str) -> int | None:
        value = self.group(demo).attrs.get(name)
        if value is None:
            return None
        if not isinstance(value, (int, np.integer)):
            raise DatasetError(f"{self.path}: {demo}: attribute '{name}' is {_plain(value)!r}, expected an integer")
        return int(value)

    def has(self, demo: str, key: str) -> bool:
        """Whether the demo holds ``key`` (e.g. ``"actions"``, ``"obs/rgb_front"``)."""
        return key in self.group(demo)

    def keys(self, demo: str, group: str = "obs") -> list[str]:
        """The dataset names in a demo's subgroup (by default its observation keys)."""
        found = self.group(demo).get(group)
        if not isinstance(found, h5py.Group):
            raise DatasetError(f"{self.path}: {demo}: '{group}' is {_describe(found)}, expected a group")
        return list(found.keys())

    def dataset(self, demo: str, key: str) -> h5py.Dataset:
        """The HDF5 dataset ``data/<demo>/<key>`` (for shape and dtype without reading)."""
        found = self.group(demo).get(key)
        if found is None:
            raise DatasetError(f"{self.path}: {demo}: missing '{key}'")
        if not isinstance(found, h5py.Dataset):
            raise DatasetError(f"{self.path}: {demo}: '{key}' is {_describe(found)}, expected an array")
        return found

    def images(self, demo: str, key: str) -> h5py.Dataset:
        """:meth:`dataset` for a camera's frames, which must be uint8 ``[N+1, H, W, 3]``."""
        found = self.dataset(demo, key)
        if found.dtype != np.uint8 or found.ndim != 4 or found.shape[-1] != 3:
            raise DatasetError(f"{self.path}: {demo}: '{key}' is {_describe(found)}, expected uint8 images [N+1, H, W, 3]")
        return found

    def read(self, demo: str, key: str, index: slice | np.ndarray = slice(None)) -> np.ndarray:
        """Rows ``index`` of ``data/<demo>/<key>`` as a numpy array; rows out of range raise
        ``DatasetError`` (a slice is not shortened to the rows there are)."""
        dataset = self.dataset(demo, key)
        if isinstance(index, slice):
            rows = dataset.shape[0] if dataset.shape else 0
            if any(bound is not None and not -rows <= bound <= rows for bound in (index.start, index.stop)):
                span = ":".join("" if bound is None else str(bound) for bound in (index.start, index.stop))
                raise DatasetError(f"{self.path}: {demo}: rows {span} of '{key}' are out of range (it has {rows} rows)")
        try:
            return dataset[index]
        except (OSError, ValueError, IndexError) as error:
            raise DatasetError(f"{self.path}: {demo}: cannot read '{key}' rows {index} ({error})") from None

    def episode(self, demo: str) -> Episode:
        """The whole demo as an ``Episode``."""
        attrs = self.attrs(demo)
        arrays = {key: self.read(demo, key) for key in ("states", *TRANSITION_KEYS) if key != "dones"}
        seed = self.seed(demo)
        return Episode(
            obs={key: self.read(demo, f"obs/{key}") for key in self.keys(demo)},
            seed=-1 if seed is None else seed,
            policy=str(attrs.get("policy", "")),
            **arrays,
        )

    def __iter__(self) -> Iterator[Episode]:
        return (self.episode(demo) for demo in self.demos)


def _describe(node: h5py.HLObject | None) -> str:
    """What an HDF5 node is, for messages: ``missing``, ``a group``, ``a float64 array of shape (3,)``."""
    if node is None:
        return "missing"
    if isinstance(node, h5py.Dataset):
        return f"a {node.dtype} array of shape {node.shape}"
    return "a group"


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same_env(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("env_name", "env_kwargs", "max_episode_steps")
    return json.dumps([a.get(k) for k in keys], sort_keys=True) == json.dumps([b.get(k) for k in keys], sort_keys=True)


class TrajectoryWriter:
    """Appends episodes to a trajectory file, one committed and flushed episode at a time.

    ``exist`` says what to do with an existing file: ``"error"`` refuses, ``"resume"``
    appends (its ``env_args`` must name the same env, kwargs and step budget, and
    ``check_resume(file)``, if given, must not raise), ``"overwrite"`` replaces it; any
    other value is a ``ValueError``. A file is checked for resuming through a read-only
    ``TrajectoryFile``, so a refused resume leaves it byte for byte as it was.

    A new file (also one replacing an existing file) is written as ``<path>.partial``
    and renamed to ``path`` when its first episode is committed; from then on episodes
    are appended in place. An existing file therefore stays intact until new data is
    safely there. ``close()`` before the first episode puts an empty trajectory file at
    ``path``; leaving a ``with`` block on an exception before it deletes the partial
    file and leaves ``path`` as it was.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        env_args: dict[str, Any],
        exist: Exist = "error",
        check_resume: Callable[[TrajectoryFile], None] | None = None,
    ):
        check_exist(exist)
        self.path = str(path)
        self.total = 0
        self._target = os.path.realpath(self.path)  # through a symbolic link, the file it names is replaced
        self._partial: str | None = None
        if os.path.isdir(self.path):
            raise DatasetError(f"{self.path}: is a directory; give the trajectory file's name, e.g. {os.path.join(self.path, 'data.h5')}")
        partial = self._target + PARTIAL_SUFFIX
        if os.path.exists(partial):  # another writer's new file, before its first episode, or one a killed writer left
            _refuse_if_being_written(partial, f"{self.path}: is being written by another process (its first episode is not committed yet)")
        exists = os.path.exists(self.path)
        if exists and exist == "error":
            raise DatasetError(f"{self.path}: exists; append to it with exist='resume' (--resume) or replace it with exist='overwrite' (--overwrite)")
        if exists and exist == "resume":
            with TrajectoryFile(self.path) as existing:
                _check_resumable(existing, env_args)
                if check_resume is not None:
                    check_resume(existing)
                self.total = existing.total
            self._file = open_h5(self.path, "r+")
            self._open_existing()
        else:
            if exists:
                _refuse_if_being_written(self.path)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            if os.path.exists(partial):
                os.remove(partial)  # left by a writer killed before its first episode
            self._partial = partial
            self._file = open_h5(partial, "w-", fs_strategy="none")  # exclusive: a writer racing this one fails here
            try:
                self._create(env_args)
            except BaseException:
                self.close(abandon=True)
                raise
        self._disable_evictions()

    def _create(self, env_args: dict[str, Any]) -> None:
        self._file.attrs[VERSION_ATTR] = FORMAT_VERSION
        data = self._file.create_group("data")
        data.attrs["env_args"] = json.dumps(env_args)
        for split in ("train", "valid"):
            self._file.create_dataset(
                f"mask/{split}", shape=(0,), maxshape=(None,), chunks=(256,), dtype=h5py.string_dtype("ascii")
            )
        data.attrs["total"] = 0
        self._file.flush()

    def _open_existing(self) -> None:
        """Clear what a killed collection left after the committed episodes (checked by
        :func:`_check_resumable` before the file was opened for writing)."""
        data = self._file["data"]
        committed = {demo_name(i) for i in range(self.total)}
        for name in [n for n in data if n not in committed]:  # leftovers of a killed collection
            del data[name]
        for split in ("train", "valid"):
            mask = self._file[f"mask/{split}"]
            mask.resize((sum(1 for i in range(self.total) if split_of(i) == split),))
        self._file.flush()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(abandon=exc_type is not None)

    def close(self, abandon: bool = False) -> None:
        """Flush and close the file.

        A new file still without a committed episode is renamed to ``path`` (an empty
        trajectory file) or, with ``abandon``, deleted, leaving ``path`` as it was.
        """
        if self._file.id.valid:
            self._file.close()
        if self._partial is not None and abandon and self.total == 0:
            os.remove(self._partial)
            self._partial = None
        self._publish()

    def _publish(self) -> None:
        """Put a new file, written as ``<path>.partial``, at ``path`` (replacing any file there)."""
        if self._partial is not None:
            os.replace(self._partial, self._target)
            self._partial = None

    def _disable_evictions(self) -> None:
        """Keep HDF5 from writing metadata to the file before a flush (see the module docstring)."""
        config = self._file.id.get_mdc_config()
        config.evictions_enabled = False
        config.incr_mode = config.flash_incr_mode = config.decr_mode = 0  # required with evictions off
        self._file.id.set_mdc_config(config)

    def _reopen(self) -> None:
        """Close and reopen the file, which frees the metadata cache (it only grows with evictions off)."""
        self._file.close()
        deadline = time.monotonic() + REOPEN_TIMEOUT
        while True:
            try:
                self._file = open_h5(self.path, "r+")
                break
            except DatasetError as error:  # a reader slipped in between close and open
                if time.monotonic() > deadline:
                    raise DatasetError(f"{error}; {self.total} episodes are committed, resume later") from None
                time.sleep(0.5)
        self._disable_evictions()

    def append(self, episode: Episode) -> str:
        """Write, commit and flush one episode; returns its demo name."""
        _check_episode(self.path, episode)
        data = self._file["data"]
        if _PENDING in data:
            del data[_PENDING]
        group = data.create_group(_PENDING)
        for key, array in episode.obs.items():
            if array.dtype == np.uint8 and array.ndim == 4:
                group.create_dataset(
                    f"obs/{key}",
                    data=array,
                    chunks=(1, *array.shape[1:]),
                    compression=IMAGE_COMPRESSION,
                    compression_opts=IMAGE_COMPRESSION_OPTS,
                )
            else:
                group.create_dataset(f"obs/{key}", data=array)
        group.create_dataset("states", data=np.asarray(episode.states, dtype=np.float64))
        group.create_dataset("actions", data=np.asarray(episode.actions, dtype=np.float32))
        group.create_dataset("rewards", data=np.asarray(episode.rewards, dtype=np.float32))
        group.create_dataset("dones", data=(episode.terminated | episode.truncated).astype(np.uint8))
        for key in ("terminated", "truncated", "success"):
            group.create_dataset(key, data=np.asarray(getattr(episode, key), dtype=bool))
        group.attrs["num_samples"] = episode.num_samples
        group.attrs["seed"] = episode.seed
        group.attrs["policy"] = episode.policy
        name = demo_name(self.total)
        data.move(_PENDING, name)
        mask = self._file[f"mask/{split_of(self.total)}"]
        mask.resize((len(mask) + 1,))
        mask[-1] = name
        data.attrs["total"] = self.total + 1
        self._file.flush()
        self.total += 1
        self._publish()
        if self.total % REOPEN_EVERY == 0:
            self._reopen()
        return name


def _check_resumable(file: TrajectoryFile, env_args: dict[str, Any]) -> None:
    """``DatasetError`` unless ``file`` can be appended to by a writer of ``env_args``: the
    same env, kwargs and step budget, and masks that are growable lists of demo names.
    Called before the file is opened for writing, so a refused file is left as it was."""
    for split in ("train", "valid"):
        file.split(split)  # present, 1-D, strings
        mask = file._file[f"mask/{split}"]
        string = h5py.check_string_dtype(mask.dtype)
        if mask.maxshape != (None,):
            problem = f"cannot grow (its maxshape is {mask.maxshape}, appending needs (None,))"
        elif string is None or string.length is not None:
            problem = f"holds {mask.dtype} values (appending needs variable-length strings)"
        else:
            continue
        raise DatasetError(
            f"{file.path}: cannot resume, 'mask/{split}' {problem}; collect into a new file or overwrite this one"
        )
    if not _same_env(file.env_args, env_args):
        raise DatasetError(
            f"{file.path}: cannot resume, the file was collected with a different env: "
            f"{json.dumps(file.env_args, sort_keys=True)} vs {json.dumps(env_args, sort_keys=True)}"
        )


def _refuse_if_being_written(path: str, message: str | None = None) -> None:
    """Raise ``DatasetError`` (``message``, or one naming ``path``) if another process is
    writing ``path`` (HDF5's file lock keeps it from being opened); any other file there,
    readable or not, may be replaced."""
    try:
        open_h5(path, "r").close()
    except _BeingWritten as error:
        raise (error if message is None else _BeingWritten(message)) from None
    except DatasetError:
        pass


def _check_episode(path: str, episode: Episode) -> None:
    n = episode.num_samples
    rows = {f"obs/{k}": (len(v), n + 1) for k, v in episode.obs.items()}
    rows["states"] = (len(episode.states), n + 1)
    for key in ("rewards", "terminated", "truncated", "success"):
        rows[key] = (len(getattr(episode, key)), n)
    wrong = [f"{key} has {got} rows, expected {want}" for key, (got, want) in rows.items() if got != want]
    if wrong:
        raise DatasetError(f"{path}: refusing to write an inconsistent episode: {'; '.join(wrong)}")


def validate(path: str | os.PathLike) -> list[str]:
    """Every problem found in a trajectory file (empty when it is sound).

    Checks the header, the structure of each committed demo, row counts, dtypes and
    shapes (consistent across demos), finiteness of float arrays, actions in [-1, 1],
    ``dones`` = terminated or truncated, and that the masks partition the demos.
    Each problem reads ``<file>: <demo>/<key>: <what is wrong>``.
    """
    try:
        file = TrajectoryFile(path)
    except DatasetError as error:
        return [str(error)]
    with file:
        problems = _validate_header(file)
        reference: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for demo in file.demos:
            try:
                problems += [f"{file.path}: {demo}/{p}" for p in _validate_demo(file, demo, reference)]
            except DatasetError as error:
                problems.append(str(error))
        return problems


def _validate_header(file: TrajectoryFile) -> list[str]:
    problems: list[str] = []
    for key, kind, expected in (("env_name", str, "a string, the env id"),
                                ("env_kwargs", dict, "a JSON object of env arguments")):
        if key not in file.env_args:
            problems.append(f"{file.path}: env_args lacks '{key}'")
        elif not isinstance(file.env_args[key], kind):
            problems.append(
                f"{file.path}: env_args['{key}'] is {json.dumps(file.env_args[key])} "
                f"(a JSON {_json_type(file.env_args[key])}), expected {expected}"
            )
    splits: dict[str, set[str]] = {}
    for split in ("train", "valid"):
        try:
            splits[split] = set(file.split(split))
        except DatasetError as error:
            problems.append(str(error))
    if len(splits) == 2:
        if splits["train"] & splits["valid"]:
            problems.append(f"{file.path}: mask: demos in both train and valid: {sorted(splits['train'] & splits['valid'])}")
        missing = set(file.demos) - splits["train"] - splits["valid"]
        if missing:
            problems.append(f"{file.path}: mask: demos in no split: {sorted(missing)}")
    return problems


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type: ``object``, ``array``, ``string``, ``number``, ``boolean``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string"}.get(type(value), "number")


_DTYPES = {
    "states": np.float64,
    "actions": np.float32,
    "rewards": np.float32,
    "dones": np.uint8,
    "terminated": np.bool_,
    "truncated": np.bool_,
    "success": np.bool_,
}


def _validate_demo(
    file: TrajectoryFile, demo: str, reference: dict[str, tuple[tuple[int, ...], np.dtype]]
) -> list[str]:
    """Problems of one demo; ``reference`` holds the per-row shape and dtype of the first demo seen."""
    group = file.group(demo)
    problems = [f"missing attribute '{a}'" for a in ("num_samples", "seed", "policy") if a not in group.attrs]
    missing = [key for key in ("obs", "states", *TRANSITION_KEYS) if key not in group]
    problems += [f"{key}: missing" for key in missing]
    if problems:
        return problems
    n = file.num_samples(demo)
    file.seed(demo)  # a DatasetError (one problem of the demo) unless the seed is an integer
    keys = {f"obs/{key}": n + 1 for key in file.keys(demo)} | {"states": n + 1} | dict.fromkeys(TRANSITION_KEYS, n)
    problems += [f"{key}: missing (other demos have it)" for key in reference if key not in keys]
    for key, rows in keys.items():
        dataset = file.dataset(demo, key)
        if dataset.shape[:1] != (rows,):
            problems.append(f"{key}: {dataset.shape[0] if dataset.shape else 0} rows, expected {rows} (num_samples {n})")
        expected = _DTYPES.get(key)
        if key.startswith("obs/rgb_") and (dataset.dtype != np.uint8 or dataset.ndim != 4 or dataset.shape[-1] != 3):
            problems.append(f"{key}: {dataset.dtype} {dataset.shape}, expected uint8 [N+1, H, W, 3]")
        elif expected is not None and dataset.dtype != expected:
            problems.append(f"{key}: dtype {dataset.dtype}, expected {np.dtype(expected)}")
        per_row = (dataset.shape[1:], dataset.dtype)
        if reference.setdefault(key, per_row) != per_row:
            problems.append(f"{key}: rows of {per_row[0]} {per_row[1]}, other demos have {reference[key][0]} {reference[key][1]}")
        if dataset.dtype.kind == "f":
            values = file.read(demo, key)
            if not np.isfinite(values).all():
                problems.append(f"{key}: {int((~np.isfinite(values)).sum())} non-finite values")
            elif key == "actions" and values.size and np.abs(values).max() > 1.0:
                problems.append(f"actions: values outside [-1, 1] (max |a| = {np.abs(values).max():.3g})")
    if not problems:
        done = file.read(demo, "terminated") | file.read(demo, "truncated")
        if not np.array_equal(file.read(demo, "dones").astype(bool), done):
            problems.append("dones: differs from terminated or truncated")
    return problems
