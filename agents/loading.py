"""Agents by name, wherever the CLI or a script names one, and the device they run on.

| spec | agent |
|---|---|
| ``expert`` | the task's scripted expert (``armworld.agents.make_expert``) |
| ``random`` | coloured-noise exploration (``armworld.agents.exploration.ColoredNoiseAgent``) |
| ``wm:PATH`` | a :class:`WorldModelAgent` over the world model at ``PATH`` (an ``armworld train`` run or checkpoint) |
| ``wm:default`` | the same over the world model shipped in ``armworld.worldmodel`` / ``weights/default`` |
| ``vjepa2-ac:FILE.pt`` | the same over Meta's released V-JEPA 2-AC checkpoint (:mod:`armworld.worldmodel.official`) |
| ``sb3:PATH`` | a Stable-Baselines3 policy, loaded by ``armworld.agents.rl.load_sb3_agent(PATH, env)`` |

World-model agents plan from camera images: :func:`env_kwargs_for` gives the env
arguments they need (``obs_mode``, ``cameras``, ``image_size``), read from the checkpoint
(for ``vjepa2-ac:``, the ``front`` camera at the frame size asked for, 256 px by default).
They run on the device :func:`resolve_device` names (CUDA when available, else the CPU),
their planner with them.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium
import torch

from armworld.agents.base import Agent
from armworld.agents.planners import CEM, MPPI, ActionBounds, CEMConfig, MPPIConfig

SPECS = "expert, random, wm:PATH, wm:default, vjepa2-ac:FILE.pt or sb3:PATH"
WORLD_MODEL_PREFIXES = ("wm:", "vjepa2-ac:")
RELEASED_CAMERA = "front"  # the view a vjepa2-ac: agent plans from (an exocentric one, as DROID's)
DEVICES = "cpu, cuda, cuda:N or mps"


class DeviceError(ValueError):
    """A device that is malformed or not available on this machine."""


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """The device ``name`` names: ``cpu``, ``cuda`` (the first GPU), ``cuda:N`` or ``mps``;
    ``None`` or ``""``: ``cuda:0`` when CUDA is available, else the CPU.

    Raises :class:`DeviceError` for another name or a device this machine lacks.
    """
    if name is None or name == "":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {str(name)!r}; name one of {DEVICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {str(name)!r} asked for, but CUDA is not available here; use --device cpu")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(name)!r} asked for, but this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {str(name)!r} asked for, but MPS (Apple GPU) is not available here; use --device cpu")
        return torch.device("mps", 0)  # indexed, as the tensors on it report their device
    raise DeviceError(f"unknown device {str(name)!r}; name one of {DEVICES}")


class AgentSpecError(ValueError):
    """An agent name that does not resolve to an agent."""


def default_model_path() -> Path:
    """Where the shipped default world model lives (``armworld.worldmodel`` / ``weights/default``)."""
    path = Path(str(resources.files("armworld.worldmodel") / "weights" / "default"))
    if not ((path / "latest").is_file() or (path / "config.json").is_file()):
        raise AgentSpecError(
            "the default world model (wm:default) is not shipped in this version of armworld yet; train one with "
            "`armworld collect`, `armworld pretrain` and `armworld train`, then pass --agent wm:RUN_DIR"
        )
    return path


def model_path(spec: str) -> Path:
    """The checkpoint path a ``wm:`` spec names."""
    if not spec.startswith("wm:") or not spec[3:]:
        raise AgentSpecError(f"{spec!r} is not a world-model agent; write wm:PATH or wm:default")
    return default_model_path() if spec == "wm:default" else Path(spec[3:])


def model_settings(path: str | Path) -> tuple[str, int]:
    """The camera a world model was trained on and its encoder's image size."""
    from armworld.worldmodel.checkpoint import CONFIG, CheckpointError, resolve

    checkpoint = resolve(path)
    try:
        config = json.loads((checkpoint / CONFIG).read_text())
        return str(config.get("train", {}).get("camera", "front")), int(config["encoder"]["image_size"])
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{checkpoint} has no readable world-model config ({error})") from None


def check_spec(spec: str) -> None:
    """Refuse a malformed agent name before any work starts (the agent itself loads later)."""
    if spec in ("expert", "random") or (spec.startswith((*WORLD_MODEL_PREFIXES, "sb3:")) and spec.split(":", 1)[1]):
        return
    raise AgentSpecError(f"unknown agent {spec!r}; name one of {SPECS}")


def is_world_model(spec: str) -> bool:
    """Whether ``spec`` names a world-model agent (``wm:`` or ``vjepa2-ac:``), which plans toward goal images."""
    return spec.startswith(WORLD_MODEL_PREFIXES)


def released_image_size(image_size: int | None) -> int:
    """The frame side (px) of a ``vjepa2-ac:`` agent: ``image_size``, or the released 256."""
    from armworld.worldmodel.official import RELEASED_IMAGE_SIZE

    return RELEASED_IMAGE_SIZE if image_size is None else image_size


def env_kwargs_for(spec: str, image_size: int | None = None) -> dict[str, Any]:
    """Env arguments the agent ``spec`` needs: a world model's camera and image size, an
    SB3 run's training env kwargs (``{}`` for the expert and random agents).
    ``image_size``: the frame side of a ``vjepa2-ac:`` agent (default 256); refused for the
    others, whose models fix their own."""
    if spec.startswith("sb3:"):
        from armworld.agents.rl import sb3_env_kwargs

        return sb3_env_kwargs(spec[len("sb3:") :])["env_kwargs"]
    if spec.startswith("vjepa2-ac:"):
        return {"obs_mode": "pixels_state", "cameras": (RELEASED_CAMERA,), "image_size": released_image_size(image_size)}
    if image_size is not None:
        raise AgentSpecError(f"{spec} fixes its own image size; an image size is chosen for vjepa2-ac: agents only")
    if not spec.startswith("wm:"):
        return {}
    camera, size = model_settings(model_path(spec))
    return {"obs_mode": "pixels_state", "cameras": (camera,), "image_size": size}


@dataclass(frozen=True)
class PlannerOptions:
    """Which planner a world-model agent uses, and how (see :mod:`armworld.agents.planners`)."""

    name: str = "cem"
    cem: CEMConfig = field(default_factory=CEMConfig)
    mppi: MPPIConfig = field(default_factory=MPPIConfig)
    bounds: ActionBounds = field(default_factory=ActionBounds.world_model)

    def __post_init__(self) -> None:
        if self.name not in ("cem", "mppi"):
            raise ValueError(f"unknown planner {self.name!r}; choose cem or mppi")

    def make(self, seed: int | None, device: str | torch.device = "cpu") -> CEM | MPPI:
        """The planner, seeded with ``seed``, sampling on ``device`` (the world model's)."""
        if self.name == "cem":
            return CEM(self.cem, self.bounds, seed=seed, device=device)
        return MPPI(self.mppi, self.bounds, seed=seed, device=device)


@functools.lru_cache(maxsize=1)
def _released_world_model(path: str, encoder: str, image_size: int, device: torch.device):
    """A released V-JEPA 2-AC model on ``device``, loaded once per process (evaluation builds
    one agent per seed; reading a ViT-g takes long)."""
    from armworld.worldmodel.official import world_model_from_official

    return world_model_from_official(path, encoder=encoder, image_size=image_size).to(device)


def load_world_model_for(
    spec: str, device: str | torch.device | None = None, image_size: int | None = None, encoder: str | None = None
) -> tuple[torch.nn.Module, str]:
    """The world model a ``wm:`` or ``vjepa2-ac:`` spec names, in eval mode on ``device``
    (:func:`resolve_device`), and the camera it plans from.

    ``image_size`` and ``encoder`` are for ``vjepa2-ac:`` (refused otherwise): the frame side
    (default 256) and the checkpoint entry holding the encoder (default ``target_encoder``)
    or a local Hugging Face V-JEPA 2 directory (see
    :func:`armworld.worldmodel.official.world_model_from_official`).
    """
    target = resolve_device(device)
    if spec.startswith("vjepa2-ac:") and spec[len("vjepa2-ac:") :]:
        path = spec[len("vjepa2-ac:") :]
        model = _released_world_model(path, encoder or "target_encoder", released_image_size(image_size), target)
        return model, RELEASED_CAMERA
    if image_size is not None or encoder is not None:
        raise AgentSpecError(f"{spec}: the image size and the encoder are chosen for vjepa2-ac: agents; wm: models fix their own")
    from armworld.worldmodel.checkpoint import load_world_model

    path = model_path(spec)
    camera, _ = model_settings(path)
    return load_world_model(path).to(target).eval(), camera


@functools.lru_cache(maxsize=2)
def episode_library(
    spec: str, files: tuple[str, ...], camera: str, device: torch.device, image_size: int | None, encoder: str | None
):
    """The :class:`armworld.agents.retrieval.EpisodeLibrary` of ``files`` under the world model
    ``spec`` names, encoded once per process on ``device`` (evaluation builds one agent per seed)."""
    from armworld.agents.retrieval import EpisodeLibrary, world_model_encoder

    world_model, _ = load_world_model_for(spec, device, image_size, encoder)
    return EpisodeLibrary(files, world_model_encoder(world_model), camera)


def load_world_model_agent(
    spec: str,
    env: gymnasium.Env,
    seed: int | None = None,
    goal: Any = "env",
    planner: PlannerOptions = PlannerOptions(),
    retrieve_from: Sequence[str] = (),
    device: str | torch.device | None = None,
    image_size: int | None = None,
    encoder: str | None = None,
    **config: Any,
) -> Agent:
    """A :class:`WorldModelAgent` over the world model ``spec`` names (``wm:PATH``,
    ``wm:default``, ``vjepa2-ac:FILE.pt``), it and its planner on ``device``
    (:func:`resolve_device`: CUDA when available, else the CPU). ``config`` overrides
    :class:`WorldModelAgentConfig` fields (the camera defaults to the model's).
    ``retrieve_from``: trajectory files to retrieve sub-goals from on the way to the env's
    goal image (``goal="retrieve"``, :mod:`armworld.agents.retrieval`). ``image_size``,
    ``encoder``: see :func:`load_world_model_for`."""
    from armworld.agents.world_model_agent import WorldModelAgent, WorldModelAgentConfig

    target = resolve_device(device)
    world_model, camera = load_world_model_for(spec, target, image_size, encoder)
    agent_config = WorldModelAgentConfig(**{"camera": camera, **config})
    library = None
    if retrieve_from:
        if goal not in ("env", "retrieve"):
            raise ValueError("sub-goals are retrieved on the way to the env's goal image: give no other goal with them")
        files = tuple(map(str, retrieve_from))
        goal, library = "retrieve", episode_library(spec, files, agent_config.camera, target, image_size, encoder)
    return WorldModelAgent(
        world_model, planner.make(seed, target), goal=goal, env=env, config=agent_config, library=library
    )


def load_agent(spec: str, env: gymnasium.Env, seed: int | None = None, **wm_options: Any) -> Agent:
    """The agent ``spec`` names (see the module docstring) for ``env``; ``seed`` seeds its randomness.

    ``wm_options`` go to :func:`load_world_model_agent` (``device``, ``goal``, ``planner``,
    ``image_size`` and ``encoder`` for ``vjepa2-ac:``, agent config fields).
    """
    check_spec(spec)
    if spec == "expert":
        from armworld.agents.scripted import make_expert

        return make_expert(env, seed=seed)
    if spec == "random":
        from armworld.agents.exploration import ColoredNoiseAgent

        return ColoredNoiseAgent.for_env(env, seed=seed)
    if is_world_model(spec):
        return load_world_model_agent(spec, env, seed=seed, **wm_options)
    try:  # sb3:PATH
        rl = importlib.import_module("armworld.agents.rl")
    except ModuleNotFoundError as error:
        raise AgentSpecError(f"sb3 agents need armworld.agents.rl, which this install lacks ({error})") from None
    if not hasattr(rl, "load_sb3_agent"):
        raise AgentSpecError("armworld.agents.rl has no load_sb3_agent(path, env): sb3 agents cannot be loaded")
    return rl.load_sb3_agent(spec[4:], env)
