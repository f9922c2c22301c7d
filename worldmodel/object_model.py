"""An object world model: plan toward a goal image by where the object is in it.

A latent L1 toward the goal image asks for the whole picture, and the arm fills most of it:
with every image energy measured, even planned through the simulator itself, the hand goes
where the goal image shows it and leaves the cube (reports/goal_image, section 2). This
model plans on what the task is about instead:

- latent of a frame: the object's and the TCP's xyz (m), read from one camera image by the
  ``positions`` encoder (:class:`armworld.worldmodel.positions.PositionReader`), ``[B, T, 1, 6]``;
- dynamics: the object's displacement per action, an MLP of (object - TCP, gripper
  closure, the action's xyz and gripper) (:class:`ObjectDynamics`); the TCP follows the
  actions (:func:`armworld.worldmodel.world_model.integrate_proprio`, as the planner assumes
  for any world model);
- energy of an imagined step: ``|object - goal object| + reach_weight * |TCP - object|`` (m):
  the object where the goal image shows it, the hand at the object on the way.

The planning API is :class:`armworld.worldmodel.world_model.WorldModel`'s (``encode``,
``context``, ``rollout``, ``step_energy``), so agents, planners, the harness and the CLI use
it as any world model (``wm:PATH``). Both parts are trained on the positions recorded with
the frames of armworld datasets (``obs/achieved_goal``, ``obs/proprio``); while planning,
only images and the arm's proprio are read::

    armworld train-objects --data data/push-front.h5 --camera front --out runs/objects

trains the reader (``reader_steps`` of ``batch_size`` frames, squared error on standardised
positions) and then the dynamics (``dynamics_steps`` of ``dynamics_batch_size`` windows,
squared error over ``rollout_steps`` steps fed back, inputs perturbed by
``position_noise`` (m) as the reader's readings are), on the datasets' training episodes,
reports the validation errors and writes one checkpoint (``checkpoint.py``, kind
``object_model``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from armworld.envs.conventions import proprio_delta
from armworld.worldmodel.object_model_config import ObjectTrainConfig
from armworld.worldmodel.positions import PositionReader, PositionReaderConfig
from armworld.worldmodel.world_model import Context, apply_delta, integrate_proprio

SCALE = 0.05  # m: the dynamics' input positions and moves in units of one planner step's largest move
MOTION = 0.01  # m: the unit of the displacement the dynamics predict (the object moves little per step)
PLANNER = {"horizon": 10, "samples": 256}
"""The planner settings an object world model's checkpoint recommends (``config.json``'s ``planner``,
:func:`armworld.agents.loading.planner_settings`): a push needs the steps to reach the object and
move it (three do not), and rollouts of an MLP cost little (reports/goal_image, section 10)."""


@dataclass(frozen=True)
class ObjectModelConfig:
    """What an object world model is, beside its reader: ``width`` of the dynamics MLP and the
    ``reach_weight`` of the hand's distance to the object in the energy."""

    width: int = 256
    reach_weight: float = 0.5


class ObjectDynamics(nn.Module):
    """One step of the object: ``object [K, 3]``, ``proprio [K, 7]`` at which ``action [K, 7]``
    (a world-model action, a proprio delta) is applied -> the object's displacement ``[K, 3]`` (m)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(8, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
            nn.Linear(width, width), nn.GELU(), nn.Linear(width, 3),
        )

    def forward(self, obj: torch.Tensor, proprio: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        inputs = [(obj - proprio[..., :3]) / SCALE, proprio[..., 6:7], action[..., :3] / SCALE, action[..., 6:7]]
        return self.net(torch.cat(inputs, dim=-1)) * MOTION

    def rollout(self, start: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The object ``[K, H, 3]`` after each of ``actions [K, H, 7]``, applied at ``proprio
        [K, H, 7]``, from ``start [K, 3]``; each prediction fed back."""
        obj, out = start, []
        for h in range(actions.shape[1]):
            obj = obj + self(obj, proprio[:, h], actions[:, h])
            out.append(obj)
        return torch.stack(out, dim=1)


class ObjectWorldModel(nn.Module):
    """Position reader + object dynamics behind the planning API of ``WorldModel`` (module docstring)."""

    def __init__(self, encoder: PositionReader, config: ObjectModelConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.dynamics = ObjectDynamics(config.width)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[B, T, H, W, 3]`` -> ``[B, T, 1, 6]``: object xyz, TCP xyz (m)."""
        return self.encoder(frames)

    def context(self, z: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor | None = None) -> Context:
        """The observed past, ``z [B, T, 1, 6]``, ``proprio [B, T, 7]``; the dynamics look at the last step only."""
        if actions is None:
            actions = z.new_zeros(z.shape[0], 0, proprio.shape[-1])
        return Context(z=z, proprio=proprio, actions=actions, cache=None)

    def rollout(
        self, context: Context, actions: torch.Tensor, proprio: torch.Tensor | None = None, use_cache: bool = True
    ) -> torch.Tensor:
        """``actions [K, H, 7]`` -> ``[K, H, 1, 6]``: the object and the TCP after each action.

        The object starts where the reader sees it in the context's last frame; the TCP where
        the proprio puts it (exact, unlike the reader's estimate). ``use_cache`` is accepted
        for the agent's sake: there is no cache to use.
        """
        K, H = actions.shape[:2]
        if context.batch_size not in (1, K):
            raise ValueError(f"context batch {context.batch_size} must be 1 or match the {K} action sequences")
        if proprio is None:
            proprio = integrate_proprio(context.proprio[:, -1].expand(K, -1), actions)
        obj = self.dynamics.rollout(context.z[:, -1, 0, :3].expand(K, 3), proprio, actions)
        tcp = apply_delta(proprio, actions)[..., :3]
        return torch.cat([obj, tcp], dim=-1)[:, :, None]

    def step_energy(self, imagined: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """``imagined [K, H, 1, 6]``, ``goal [1, 6]`` -> ``[K, H]`` (m): the object's distance to
        the goal's object, plus ``reach_weight`` times the TCP's distance to the object."""
        obj, tcp = imagined[..., 0, :3], imagined[..., 0, 3:]
        return (obj - goal[0, :3]).norm(dim=-1) + self.config.reach_weight * (tcp - obj).norm(dim=-1)


@dataclass
class Recording:
    """The episodes of the data, concatenated: frames ``uint8 [F, H, W, 3]``, proprio ``[F, 7]``,
    object ``[F, 3]`` (m), the episode of each frame ``[F]`` and whether it is a validation episode."""

    frames: np.ndarray
    proprio: np.ndarray
    objects: np.ndarray
    episode: np.ndarray
    valid: np.ndarray

    def on_the_table(self) -> Recording:
        """The frames whose object is not below the table top (``z >= 0`` m): one pushed off the
        table falls without end (the scene has no floor), and a position tens of metres away
        would swamp the reader's standardisation and teach the dynamics a fall. An episode
        loses only its frames from the fall on, so its remaining frames stay consecutive."""
        keep = self.objects[:, 2] >= 0.0
        return Recording(*(column[keep] for column in (self.frames, self.proprio, self.objects, self.episode, self.valid)))


def read_recording(paths: list[str], camera: str) -> Recording:
    """Frames of ``camera`` with their recorded positions from armworld HDF5 files (every episode;
    the file's validation split is held out)."""
    from armworld.datasets.hdf5 import DatasetError, TrajectoryFile

    columns: dict[str, list[np.ndarray]] = {k: [] for k in ("frames", "proprio", "objects", "episode", "valid")}
    key = f"rgb_{camera}"
    for path in paths:
        with TrajectoryFile(path) as file:
            valid = set(file.split("valid"))
            for demo in file.split(None):
                if not file.has(demo, f"obs/{key}") or not file.has(demo, "obs/achieved_goal"):
                    raise DatasetError(
                        f"{path}: {demo} has no obs/{key} or obs/achieved_goal; collect with --obs-mode pixels_state "
                        f"--cameras {camera}"
                    )
                frames = np.asarray(file.images(demo, f"obs/{key}")[()])
                columns["frames"].append(frames)
                columns["proprio"].append(file.read(demo, "obs/proprio").astype(np.float32))
                columns["objects"].append(file.read(demo, "obs/achieved_goal").astype(np.float32))
                columns["episode"].append(np.full(len(frames), len(columns["episode"])))
                columns["valid"].append(np.full(len(frames), demo in valid))
    return Recording(**{k: np.concatenate(v) for k, v in columns.items()})


def _optimizer(module: nn.Module, config: ObjectTrainConfig, steps: int):
    optimizer = torch.optim.AdamW(module.parameters(), weight_decay=1e-4)
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps, pct_start=0.05)


def _check_finite(loss: torch.Tensor, what: str, step: int) -> None:
    if not torch.isfinite(loss):
        raise FloatingPointError(f"the {what} loss became {loss.item()} at step {step}; nothing was saved: lower --lr")


def train_reader(reader: PositionReader, data: Recording, config: ObjectTrainConfig) -> dict[str, float]:
    """Fit ``reader`` to the recorded positions of the training frames; median validation errors (m)."""
    frames = torch.from_numpy(data.frames)
    targets = torch.from_numpy(np.concatenate([data.objects, data.proprio[:, :3]], axis=1))
    train_rows = torch.from_numpy(np.flatnonzero(~data.valid))
    reader.position_mean.copy_(targets[train_rows].mean(0))
    reader.position_std.copy_(targets[train_rows].std(0).clamp_min(1e-3))
    standardized = (targets - reader.position_mean) / reader.position_std
    optimizer, schedule = _optimizer(reader, config, config.reader_steps)
    reader.train()
    steps = tqdm(range(config.reader_steps), desc="position reader", disable=not config.progress, dynamic_ncols=True)
    for step in steps:
        rows = train_rows[torch.randint(len(train_rows), (config.batch_size,))]
        loss = (reader.standardized(frames[rows]) - standardized[rows]).pow(2).mean()
        _check_finite(loss, "position reader", step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    reader.eval()
    rows = torch.from_numpy(np.flatnonzero(data.valid))
    if not len(rows):
        return {}
    with torch.no_grad():
        read = torch.cat([reader(frames[rows[k : k + 1024]][None])[0, :, 0] for k in range(0, len(rows), 1024)])
    error = (read - targets[rows]).view(-1, 2, 3).norm(dim=-1)
    return {"object_error_m": float(error[:, 0].median()), "tcp_error_m": float(error[:, 1].median())}


def _windows(data: Recording, split: bool, length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every run of ``length`` actions inside one episode of the split: proprio ``[M, L+1, 7]``,
    object ``[M, L+1, 3]``, world-model actions ``[M, L, 7]``."""
    proprio, objects, actions = [], [], []
    for episode in np.unique(data.episode[data.valid == split]):
        rows = np.flatnonzero(data.episode == episode)
        p, o = data.proprio[rows], data.objects[rows]
        a = proprio_delta(p).astype(np.float32)
        for t in range(len(a) - length + 1):
            proprio.append(p[t : t + length + 1])
            objects.append(o[t : t + length + 1])
            actions.append(a[t : t + length])
    if not proprio:
        return torch.zeros(0, length + 1, 7), torch.zeros(0, length + 1, 3), torch.zeros(0, length, 7)
    return tuple(torch.from_numpy(np.stack(x)) for x in (proprio, objects, actions))


def train_dynamics(dynamics: ObjectDynamics, data: Recording, config: ObjectTrainConfig) -> dict[str, float]:
    """Fit ``dynamics`` to the recorded object motion over ``rollout_steps``; validation errors (m)
    of the last step on the windows where the object moves, and of leaving the object where it is."""
    L = config.rollout_steps
    proprio, objects, actions = _windows(data, False, L)
    if not len(proprio):
        raise ValueError(f"no training episode has {L} actions: lower --rollout-steps or record longer episodes")
    moves = (objects[:, 1:] - objects[:, :-1]).norm(dim=-1).amax(1) > 1e-3
    moving, every = torch.nonzero(moves).flatten(), torch.arange(len(proprio))
    if not len(moving):
        raise ValueError("the object never moves in the training episodes: there is no dynamics to learn")
    optimizer, schedule = _optimizer(dynamics, config, config.dynamics_steps)
    half = config.dynamics_batch_size // 2
    dynamics.train()
    steps = tqdm(range(config.dynamics_steps), desc="object dynamics", disable=not config.progress, dynamic_ncols=True)
    for step in steps:
        rest = config.dynamics_batch_size - half
        rows = torch.cat([moving[torch.randint(len(moving), (half,))], every[torch.randint(len(every), (rest,))]])
        start = objects[rows, 0] + config.position_noise * torch.randn(len(rows), 3)
        predicted = dynamics.rollout(start, proprio[rows], actions[rows])
        loss = ((predicted - objects[rows, 1:]) / SCALE).pow(2).sum(-1).mean()
        _check_finite(loss, "object dynamics", step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    dynamics.eval()
    proprio, objects, actions = _windows(data, True, L)
    moves = (objects[:, 1:] - objects[:, :-1]).norm(dim=-1).amax(1) > 1e-3
    if not moves.any():
        return {}
    with torch.no_grad():
        end = dynamics.rollout(objects[moves, 0], proprio[moves], actions[moves])[:, -1]
    truth = objects[moves, -1]
    return {
        "moving_windows": int(moves.sum()),
        "object_end_error_m": float((end - truth).norm(dim=-1).mean()),
        "object_end_error_if_still_m": float((objects[moves, 0] - truth).norm(dim=-1).mean()),
    }


def train_object_model(data: list[str], out: str | Path, config: ObjectTrainConfig = ObjectTrainConfig()) -> Path:
    """Train an :class:`ObjectWorldModel` on the recordings ``data`` and write it to the run
    directory ``out`` (one checkpoint, ``latest`` pointing at it); returns the checkpoint."""
    from armworld.worldmodel.checkpoint import describe_data, save_checkpoint
    from armworld.worldmodel.encoder import encoder_config_to_dict
    from armworld.worldmodel.engine import seed_everything

    seed_everything(config.seed)
    start = time.perf_counter()
    read = read_recording(list(data), config.camera)
    recording = read.on_the_table()
    image_size = recording.frames.shape[1]
    reader = PositionReader(PositionReaderConfig(image_size=image_size))
    model = ObjectWorldModel(reader, ObjectModelConfig(reach_weight=config.reach_weight))
    metrics = {"reader": train_reader(model.encoder, recording, config)}
    metrics["dynamics"] = train_dynamics(model.dynamics, recording, config)
    checkpoint_config = {
        "kind": "object_model",
        "encoder": encoder_config_to_dict(model.encoder.config),
        "object_model": dataclasses.asdict(model.config),
        "planner": PLANNER,
        "train": dataclasses.asdict(config),
    }
    metadata = {
        "data": describe_data(list(map(str, data))),
        "armworld_version": version("armworld"),
        "torch_version": torch.__version__,
        "frames": len(recording.frames),
        "frames_off_the_table": len(read.frames) - len(recording.frames),
        "valid_metrics": metrics,
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    return save_checkpoint(out, config.reader_steps + config.dynamics_steps, checkpoint_config, model.state_dict(), metadata)
