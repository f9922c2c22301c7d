"""Checkpoints: safetensors weights, a JSON config and JSON training metadata.

A run directory looks like::

    runs/wm/
        latest                  the name of the newest checkpoint (replaced atomically)
        step-000500/
            model.safetensors   weights
            config.json         {"kind": "world_model" | "encoder", "encoder": {"kind": "vjepa2", ...}, "predictor": {...},
                                "train": {...}}; an object world model (object_model.py): {"kind": "object_model",
                                "encoder": {"kind": "positions", ...}, "object_model": {...}, "planner": {...} (the
                                settings it recommends),
                                "train": {...}}
            metadata.json       step, metrics, data files with sha256, weights size and sha256,
                                trainer.pt's sha256, versions, lineage (``init``, ``encoder``)
            trainer.pt          optimizer state and step, for resuming
        events.out.tfevents.*   TensorBoard scalars

Each checkpoint is written to a temporary directory whose files and the directory itself
are fsynced before it is renamed into place; only then does ``latest`` move (also via a
temporary file and ``os.replace``, with the run directory fsynced after each rename), so
a crash or power loss never leaves a half-written checkpoint where a reader looks. The
hidden temporary entries a crash leaves behind (``.step-XXXXXX.*``, ``.latest.*``) are
removed the next time the run is saved or resumed. After each save, checkpoints newer than
the one just written (left by a timeline that resuming stepped back from) are removed, and
of the others the newest ``keep`` are kept.

The metadata records the weights' size and sha256 and trainer.pt's sha256; readers check
them and say what is wrong (missing file, truncated or altered weights, config and weights
that disagree, JSON files of the wrong shape, a ``latest`` that names no checkpoint). No
checkpoint with NaN or inf in its weights or optimizer state is written, read or exported.
Resuming (:func:`newest_valid_checkpoint`) skips, with a warning,
checkpoints that fail these checks and takes the newest one that passes.

``load_world_model(path)`` and ``load_encoder(path)`` accept a run directory (follows
``latest``) or one checkpoint directory. The encoder is built as its recorded kind says
(:func:`armworld.worldmodel.encoder.encoder_config_from_dict`: ``vjepa2`` when none is recorded).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METADATA = "metadata.json"
TRAINER = "trainer.pt"
LATEST = "latest"
KINDS = ("encoder", "world_model", "object_model")
STEP_DIR = re.compile(r"step-(\d{6,})")
# What save_checkpoint's temporary files look like (tempfile adds 8 characters of [a-z0-9_]).
LEFTOVER = re.compile(r"\.step-\d{6,}\.(old\.)?[a-z0-9_]{8}|\.latest\.[a-z0-9_]{8}")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupt or does not fit the model."""


# The JSON types of the keys readers use, by file (other keys are free).
JSON_KEYS: dict[str, dict[str, type]] = {
    CONFIG: {"kind": str, "encoder": dict, "predictor": dict, "train": dict},
    METADATA: {"step": int, "weights_bytes": int, "weights_sha256": str, "trainer_sha256": str, "data": list,
               "init": dict, "encoder": dict},
}
JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number",
              bool: "true or false", type(None): "null"}


def _json_name(value: object) -> str:
    return JSON_NAMES.get(type(value), type(value).__name__)


def read_json(checkpoint: str | Path, name: str) -> dict:
    """The JSON object in ``checkpoint/name`` (:data:`CONFIG` or :data:`METADATA`), its keys of
    :data:`JSON_KEYS` of their type; :class:`CheckpointError` naming the file, key and what was expected."""
    path = Path(checkpoint) / name
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not readable JSON ({e})") from e
    if not isinstance(value, dict):
        raise CheckpointError(f"{path} holds {_json_name(value)}, expected a JSON object")
    for key, expected in JSON_KEYS[name].items():
        if key in value and type(value[key]) is not expected:  # `type is`: true is no integer here
            raise CheckpointError(f"{path}: '{key}' is {_json_name(value[key])}, expected {JSON_NAMES[expected]}")
    for i, entry in enumerate(value.get("data", []) if name == METADATA else []):
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("path", "sha256"))):
            raise CheckpointError(f"{path}: 'data'[{i}] is {_json_name(entry)}, expected an object with strings 'path' and 'sha256'")
    return value


def non_finite(tensors: object, name: str = "") -> list[str]:
    """The names of the floating-point tensors holding NaN or inf in ``tensors``: a tensor or
    nested dicts and lists of them, such as a state dict or an optimizer state (``state.3.exp_avg``)."""
    if isinstance(tensors, torch.Tensor):
        return [name] if tensors.is_floating_point() and not bool(torch.isfinite(tensors).all()) else []
    if isinstance(tensors, dict):
        items = tensors.items()
    elif isinstance(tensors, (list, tuple)):
        items = enumerate(tensors)
    else:
        return []
    return [bad for key, value in items for bad in non_finite(value, f"{name}.{key}" if name else str(key))]


def _refuse_non_finite(tensors: object, what: str, advice: str) -> None:
    """:class:`CheckpointError` ``"<what>: NaN or inf in N tensor(s) (e.g. [names]); <advice>"``
    when ``tensors`` hold any (see :func:`non_finite`)."""
    bad = non_finite(tensors)
    if bad:
        raise CheckpointError(f"{what}: NaN or inf in {len(bad)} tensor(s) (e.g. {bad[:3]}); {advice}")


DIVERGED = "the run diverged: start again with a lower learning rate or a longer warm-up"
WRITTEN_BY_A_DIVERGED_RUN = "a run that diverged wrote it: use an earlier checkpoint"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_files(paths: list[str]) -> list[dict]:
    """``[{"path", "bytes", "sha256"}]`` of files a model depends on."""
    return [{"path": str(p), "bytes": os.path.getsize(p), "sha256": file_sha256(p)} for p in paths]


def describe_data(paths: list[str]) -> list[dict]:
    """``describe_files`` of the trajectory files a model was trained on, with ``episodes`` and
    ``env_steps`` (the actions in them: what the data cost to collect, counted without the files),
    ``env`` and ``robot`` (the env id and simulated robot it was collected in, ``None`` where unknown);
    a LeRobot dataset directory is described by ``armworld.datasets.lerobot.describe_lerobot``."""
    from armworld.datasets.env_args import robot_of
    from armworld.datasets.hdf5 import TrajectoryFile
    from armworld.datasets.lerobot import describe_lerobot, is_lerobot_dataset

    described = [describe_lerobot(p) if is_lerobot_dataset(p) else describe_files([p])[0] for p in paths]
    for entry in described:
        if "episodes" in entry:
            continue
        with TrajectoryFile(entry["path"]) as f:
            demos = f.split(None)
            entry.update(episodes=len(demos), env_steps=sum(f.num_samples(demo) for demo in demos),
                         env=f.env_args.get("env_name"), robot=robot_of(f.env_args))
    return described


def lineage(path: str | Path) -> dict:
    """``{"path", "step", "weights_sha256"}`` of the checkpoint ``path`` names, for the metadata of
    models started from it; a Hugging Face directory gives ``{"path", "files"}`` (its safetensors
    files with sha256)."""
    ckpt = resolve(path)
    if not (ckpt / METADATA).is_file():
        return {"path": str(ckpt), "files": describe_files(sorted(str(f) for f in ckpt.glob("*.safetensors")))}
    meta = read_json(ckpt, METADATA)
    return {"path": str(ckpt), "step": meta.get("step"), "weights_sha256": meta.get("weights_sha256")}


def _fsync(path: Path) -> None:
    """Flush a file's or a directory's entries to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj: object) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync(path.parent)


def _sync_into_place(tmp: Path, final: Path) -> None:
    """fsync ``tmp``'s files and ``tmp``, rename it to ``final`` (replacing it) and fsync the parent.

    An existing ``final`` is moved aside first (directories cannot be swapped atomically): a
    crash in between leaves no ``final``, which :func:`newest_valid_checkpoint` steps over.
    """
    for f in tmp.iterdir():
        _fsync(f)
    _fsync(tmp)
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.old."))
        os.replace(final, old / final.name)
    os.replace(tmp, final)
    _fsync(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _step_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, directory)`` of the ``step-XXXXXX`` checkpoints of ``run_dir``, oldest first."""
    if not run_dir.is_dir():
        return []
    found = ((STEP_DIR.fullmatch(p.name), p) for p in run_dir.iterdir() if p.is_dir())
    return sorted((int(m.group(1)), p) for m, p in found if m)


def remove_leftovers(run_dir: str | Path) -> None:
    """Remove the temporary files and directories an interrupted save left in ``run_dir`` (only
    names of :data:`LEFTOVER`'s pattern; call it only while no other process writes there).

    A checkpoint moved aside by :func:`_sync_into_place` whose replacement never arrived is
    the only copy of that step: it is put back, not removed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for p in run_dir.iterdir():
        match = LEFTOVER.fullmatch(p.name)
        if not match:
            continue
        step_dir = run_dir / p.name.split(".")[1]  # .step-000002.old.abcd1234 -> step-000002
        if match.group(1) and (p / step_dir.name).is_dir() and not step_dir.exists():
            os.replace(p / step_dir.name, step_dir)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    config: dict,
    state_dict: dict[str, torch.Tensor],
    metadata: dict,
    trainer_state: dict | None = None,
    keep: int = 2,
) -> Path:
    """Write ``run_dir/step-XXXXXX`` atomically and point ``latest`` at it; then remove the
    checkpoints newer than ``step`` and all but the newest ``keep`` of the others. A newer one
    can only be there when resuming stepped over it (:func:`newest_valid_checkpoint` resumes
    from the newest that verifies): it failed verification, and the run has moved past it."""
    if config.get("kind") not in KINDS:
        raise ValueError(f"config['kind'] must be one of {KINDS}")
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (the checkpoint just written), got {keep}")
    run_dir = Path(run_dir)
    name = f"step-{step:06d}"
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    _refuse_non_finite(tensors, f"refusing to save {run_dir / name}: its weights", DIVERGED)
    _refuse_non_finite(trainer_state, f"refusing to save {run_dir / name}: its optimizer state", DIVERGED)
    run_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(run_dir)
    final = run_dir / name
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{name}."))
    try:
        save_file(tensors, tmp / WEIGHTS)
        meta = dict(metadata, step=step, weights_bytes=os.path.getsize(tmp / WEIGHTS), weights_sha256=file_sha256(tmp / WEIGHTS))
        if trainer_state is not None:
            torch.save(trainer_state, tmp / TRAINER)
            meta["trainer_sha256"] = file_sha256(tmp / TRAINER)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True))
        _sync_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_json_atomic(run_dir / LATEST, {"checkpoint": name})
    superseded = [p for s, p in _step_dirs(run_dir) if s > step]
    older = [p for s, p in _step_dirs(run_dir) if s <= step]
    for p in superseded + older[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final


EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
EXPORT_FILES = sorted([CONFIG, METADATA, WEIGHTS])  # all an exported checkpoint holds


def _check_export_target(out: Path, sources: list[Path]) -> None:
    """Refuse an export ``out`` that is, holds or lies in a source, or that holds more than an export."""
    target = out.resolve()
    for source in sources:
        source = source.resolve()
        if target == source or target in source.parents or source in target.parents:
            raise CheckpointError(
                f"cannot export into {out}: it is, holds or lies inside the checkpoint being exported ({source}); "
                "choose a new path"
            )
    if not out.exists() and not out.is_symlink():
        return
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    earlier_export = names == EXPORT_FILES and all((out / name).is_file() for name in names)
    if names != [] and not earlier_export:
        raise CheckpointError(
            f"cannot export into {out}: it exists and is not an earlier export (only {', '.join(EXPORT_FILES)}), "
            "so replacing it could delete a training run or other files; choose a new path"
        )


def export_checkpoint(path: str | Path, out: str | Path, dtype: str = "float16") -> Path:
    """Write the checkpoint ``path`` names as a stand-alone checkpoint directory ``out`` to ship.

    Refused, writing nothing, when the checkpoint does not load (weights that do not fit its
    config, NaN or inf) or its weights overflow ``dtype``; what was written is loaded back
    before it is renamed into place.

    Floating-point weights are stored as ``dtype`` (loading casts them back to the model's
    float32); the optimizer state is left out; the metadata keeps the training record and
    adds ``exported_from`` (step and sha256 of the source weights) and ``dtype``. ``out`` must
    be a new path, an empty directory or an earlier export (exactly its three files), which is
    replaced atomically, so an interrupted export leaves it intact; anything else is refused.
    """
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(EXPORT_DTYPES)}")
    ckpt = read_checkpoint(path)
    out = Path(out)
    _check_export_target(out, [Path(path), ckpt.path])
    model_of(ckpt)  # config and weights agree
    tensors = {
        k: (v.to(EXPORT_DTYPES[dtype]) if v.is_floating_point() else v).contiguous() for k, v in ckpt.state_dict.items()
    }
    _refuse_non_finite(tensors, f"cannot export {ckpt.path} as {dtype}: its weights", "export as float32 or bfloat16")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        save_file(tensors, tmp / WEIGHTS)
        source = {"path": str(path), "step": ckpt.metadata.get("step"), "weights_sha256": ckpt.metadata.get("weights_sha256")}
        meta = {k: v for k, v in ckpt.metadata.items() if k != "trainer_sha256"}  # no trainer.pt here
        meta.update(exported_from=source, dtype=dtype)
        meta.update(weights_bytes=os.path.getsize(tmp / WEIGHTS), weights_sha256=file_sha256(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(json.dumps(ckpt.config, indent=2, sort_keys=True))
        (tmp / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True))
        for f in tmp.iterdir():  # readable by everyone, like any installed package data
            f.chmod(0o644)
        tmp.chmod(0o755)
        try:
            model_of(read_checkpoint(tmp))
        except CheckpointError as e:
            raise CheckpointError(f"the export of {ckpt.path} does not load back ({e}); nothing was written to {out}") from e
        _sync_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def resolve(path: str | Path) -> Path:
    """The checkpoint directory that ``path`` (a run directory or a checkpoint) names."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: it does not exist")
    if (path / LATEST).is_file():
        return _named_by_latest(path)
    if (path / CONFIG).is_file() or (path / WEIGHTS).is_file():
        return path
    raise CheckpointError(f"{path} is neither a run directory (no '{LATEST}') nor a checkpoint (no {CONFIG})")


def _named_by_latest(run_dir: Path) -> Path:
    """The checkpoint directory ``run_dir/latest`` names: ``{"checkpoint": "step-XXXXXX"}``, a
    directory of ``run_dir``; :class:`CheckpointError` saying what is there otherwise."""
    latest = run_dir / LATEST
    try:
        value = json.loads(latest.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{latest} is not readable JSON ({e})") from e
    name = value.get("checkpoint") if isinstance(value, dict) else None
    steps = ", ".join(p.name for _, p in _step_dirs(run_dir)) or "none"
    if not (isinstance(name, str) and STEP_DIR.fullmatch(name) and (run_dir / name).is_dir()):
        raise CheckpointError(
            f"{latest} names no checkpoint of {run_dir}: expected {{\"checkpoint\": \"step-XXXXXX\"}} naming one of its "
            f"checkpoints ({steps}), got {json.dumps(value)[:100]}; give one checkpoint directory instead"
        )
    return run_dir / name


@dataclass
class Checkpoint:
    """A verified checkpoint: its directory, config, metadata and weights."""

    path: Path
    config: dict
    metadata: dict
    state_dict: dict[str, torch.Tensor]

    @property
    def kind(self) -> str:
        return self.config["kind"]

    def trainer_state(self) -> dict | None:
        """Optimizer state and step saved for resuming, if any (checked against the metadata's sha256)."""
        f = self.path / TRAINER
        if not f.is_file():
            if "trainer_sha256" in self.metadata:
                raise CheckpointError(f"checkpoint {self.path} is incomplete: {TRAINER} is missing")
            return None
        if "trainer_sha256" in self.metadata and file_sha256(f) != self.metadata["trainer_sha256"]:
            raise CheckpointError(f"{f} is corrupt: its sha256 differs from the metadata's")
        state = torch.load(f, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "optimizer" not in state:
            raise CheckpointError(f"{f} holds no trainer state: expected a dict with 'optimizer' and an integer 'step'")
        _refuse_non_finite(state, str(f), WRITTEN_BY_A_DIVERGED_RUN)
        return state


def read_checkpoint(path: str | Path, verify_hash: bool = True) -> Checkpoint:
    """Read and verify a checkpoint (see the module docstring for the checks)."""
    ckpt = resolve(path)
    for name in (WEIGHTS, CONFIG, METADATA):
        if not (ckpt / name).is_file():
            raise CheckpointError(f"checkpoint {ckpt} is incomplete: {name} is missing")
    config, metadata = read_json(ckpt, CONFIG), read_json(ckpt, METADATA)
    if config.get("kind") not in KINDS:
        raise CheckpointError(f"{ckpt / CONFIG}: 'kind' is {config.get('kind')!r}, expected one of {KINDS}")
    size = os.path.getsize(ckpt / WEIGHTS)
    if "weights_bytes" in metadata and size != metadata["weights_bytes"]:
        raise CheckpointError(
            f"{ckpt / WEIGHTS} is truncated or altered: {size} bytes, metadata says {metadata['weights_bytes']}"
        )
    if verify_hash and "weights_sha256" in metadata and file_sha256(ckpt / WEIGHTS) != metadata["weights_sha256"]:
        raise CheckpointError(f"{ckpt / WEIGHTS} is corrupt: its sha256 differs from the metadata's")
    try:
        state_dict = load_file(ckpt / WEIGHTS)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{ckpt / WEIGHTS} is not a readable safetensors file ({e})") from e
    _refuse_non_finite(state_dict, str(ckpt / WEIGHTS), WRITTEN_BY_A_DIVERGED_RUN)
    return Checkpoint(ckpt, config, metadata, state_dict)


def newest_valid_checkpoint(run_dir: str | Path) -> tuple[Checkpoint, dict | None] | None:
    """The newest checkpoint of ``run_dir`` that verifies, with its trainer state (for resuming).

    Tries the ``step-*`` directories from the newest down (a crash between writing a
    checkpoint and pointing ``latest`` at it leaves ``latest`` one behind); each one that fails
    verification is skipped with a warning that says why. Returns None when ``run_dir`` holds
    no checkpoint (a fresh run) and raises :class:`CheckpointError` when it holds some but
    none verifies.
    """
    run_dir = Path(run_dir)
    candidates = [p for _, p in reversed(_step_dirs(run_dir))]
    if not candidates and not (run_dir / LATEST).is_file():
        return None
    problems = []
    for path in candidates:
        try:
            ckpt = read_checkpoint(path)
            return ckpt, ckpt.trainer_state()
        except CheckpointError as e:
            problems.append(str(e))
            warnings.warn(f"skipping checkpoint {path}: {e}; trying an older one", stacklevel=2)
    raise CheckpointError(
        f"{run_dir} holds checkpoints but none verifies ({'; '.join(problems) or f'{LATEST} is unreadable'}); "
        "move the directory aside to start a fresh run there"
    )


def load_state_checked(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """``module.load_state_dict(strict=True)`` with an error that lists what does not fit."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if own[k].shape != state_dict[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches (e.g. {shapes[:2]})")
        raise CheckpointError(f"{where} does not match the model it configures: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=True)


def _built(ckpt: Checkpoint, key: str, build):
    """``build(config[key])``, or a :class:`CheckpointError` naming the config file and ``key``."""
    section = ckpt.config.get(key)
    if section is None:
        raise CheckpointError(f"{ckpt.path / CONFIG}: no '{key}', expected an object of the {key}'s sizes")
    try:
        return build(section)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{ckpt.path / CONFIG}: '{key}' is not a valid {key} config ({e})") from e


def _fresh_encoder(ckpt: Checkpoint):
    """An encoder of the kind and config ``ckpt`` records, with fresh weights."""
    from armworld.worldmodel.encoder import build_encoder, encoder_config_from_dict

    return _built(ckpt, "encoder", lambda c: build_encoder(encoder_config_from_dict(c)))


def _encoder_of(ckpt: Checkpoint):
    prefix = "target." if ckpt.kind == "encoder" else "encoder."
    encoder = _fresh_encoder(ckpt)
    weights = {k[len(prefix) :]: v for k, v in ckpt.state_dict.items() if k.startswith(prefix)}
    load_state_checked(encoder, weights, f"checkpoint {ckpt.path}")
    return encoder.eval()


def _world_model_of(ckpt: Checkpoint):
    from armworld.worldmodel.predictor import ACPredictor, PredictorConfig
    from armworld.worldmodel.world_model import WorldModel

    if ckpt.kind == "object_model":
        return _object_model_of(ckpt)
    if ckpt.kind != "world_model":
        raise CheckpointError(f"{ckpt.path} holds an {ckpt.kind}, not a world model (made by `armworld pretrain`?)")
    model = WorldModel(
        _fresh_encoder(ckpt),
        _built(ckpt, "predictor", lambda c: ACPredictor(PredictorConfig.from_dict(c))),
    )
    load_state_checked(model, ckpt.state_dict, f"checkpoint {ckpt.path}")
    return model.eval()


def _object_model_of(ckpt: Checkpoint):
    from armworld.worldmodel.object_model import ObjectModelConfig, ObjectWorldModel

    model = ObjectWorldModel(_fresh_encoder(ckpt), _built(ckpt, "object_model", lambda c: ObjectModelConfig(**c)))
    load_state_checked(model, ckpt.state_dict, f"checkpoint {ckpt.path}")
    return model.eval()


def load_encoder(path: str | Path):
    """The frame encoder of an encoder run (its EMA target encoder) or of a world-model run.

    Returns an encoder of the kind the checkpoint records
    (:class:`armworld.worldmodel.encoder.Encoder`), in eval mode.
    """
    return _encoder_of(read_checkpoint(path))


def load_world_model(path: str | Path):
    """The :class:`armworld.worldmodel.world_model.WorldModel` of a ``train`` run, in eval mode."""
    return _world_model_of(read_checkpoint(path))


def model_of(ckpt: Checkpoint):
    """What loading ``ckpt`` gives: its world model, or the encoder of an encoder run."""
    return _encoder_of(ckpt) if ckpt.kind == "encoder" else _world_model_of(ckpt)
