"""Agents by name, wherever the CLI or a script names one.

| spec | agent |
|---|---|
| ``expert`` | the task's scripted expert (``armworld.agents.make_expert``) |
| ``random`` | coloured-noise exploration (``armworld.agents.exploration.ColoredNoiseAgent``) |
| ``wm:PATH`` | a :class:`WorldModelAgent` over the world model at ``PATH`` (an ``armworld train`` run or checkpoint) |
| ``wm:default`` | the same over the world model shipped in ``armworld.worldmodel`` / ``weights/default`` |
| ``sb3:PATH`` | a Stable-Baselines3 policy, loaded by ``armworld.agents.rl.load_sb3_agent(PATH, env)`` |

World-model agents plan from camera images: :func:`env_kwargs_for` gives the env
arguments they need (``obs_mode``, ``cameras``, ``image_size``), read from the checkpoint.
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

from armworld.agents.base import Agent
from armworld.agents.planners import CEM, MPPI, ActionBounds, CEMConfig, MPPIConfig

SPECS = "expert, random, wm:PATH, wm:default or sb3:PATH"


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
    if spec in ("expert", "random") or (spec.startswith(("wm:", "sb3:")) and spec.split(":", 1)[1]):
        return
    raise AgentSpecError(f"unknown agent {spec!r}; name one of {SPECS}")


def env_kwargs_for(spec: str) -> dict[str, Any]:
    """Env arguments the agent ``spec`` needs: a world model's camera and image size, an
    SB3 run's training env kwargs (``{}`` for the expert and random agents)."""
    if spec.startswith("sb3:"):
        from armworld.agents.rl import sb3_env_kwargs

        return sb3_env_kwargs(spec[len("sb3:") :])["env_kwargs"]
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

    def make(self, seed: int | None) -> CEM | MPPI:
        if self.name == "cem":
            return CEM(self.cem, self.bounds, seed=seed)
        return MPPI(self.mppi, self.bounds, seed=seed)


@functools.lru_cache(maxsize=2)
def episode_library(path: str, files: tuple[str, ...], camera: str):
    """The :class:`armworld.agents.retrieval.EpisodeLibrary` of ``files`` under the world model
    at ``path``, encoded once per process (evaluation builds one agent per seed)."""
    from armworld.agents.retrieval import EpisodeLibrary, world_model_encoder
    from armworld.worldmodel.checkpoint import load_world_model

    return EpisodeLibrary(files, world_model_encoder(load_world_model(path)), camera)


def load_world_model_agent(
    path: str | Path,
    env: gymnasium.Env,
    seed: int | None = None,
    goal: Any = "env",
    planner: PlannerOptions = PlannerOptions(),
    retrieve_from: Sequence[str] = (),
    **config: Any,
) -> Agent:
    """A :class:`WorldModelAgent` over the world model at ``path``; ``config`` overrides
    :class:`WorldModelAgentConfig` fields (the camera defaults to the model's).
    ``retrieve_from``: trajectory files to retrieve sub-goals from on the way to the env's
    goal image (``goal="retrieve"``, :mod:`armworld.agents.retrieval`)."""
    from armworld.agents.world_model_agent import WorldModelAgent, WorldModelAgentConfig
    from armworld.worldmodel.checkpoint import load_world_model

    camera, _ = model_settings(path)
    world_model = load_world_model(path)
    agent_config = WorldModelAgentConfig(**{"camera": camera, **config})
    library = None
    if retrieve_from:
        if goal not in ("env", "retrieve"):
            raise ValueError("sub-goals are retrieved on the way to the env's goal image: give no other goal with them")
        goal, library = "retrieve", episode_library(str(path), tuple(map(str, retrieve_from)), agent_config.camera)
    return WorldModelAgent(world_model, planner.make(seed), goal=goal, env=env, config=agent_config, library=library)


def load_agent(spec: str, env: gymnasium.Env, seed: int | None = None, **wm_options: Any) -> Agent:
    """The agent ``spec`` names (see the module docstring) for ``env``; ``seed`` seeds its randomness.

    ``wm_options`` go to :func:`load_world_model_agent` (``goal``, ``planner``, agent config fields).
    """
    check_spec(spec)
    if spec == "expert":
        from armworld.agents.scripted import make_expert

        return make_expert(env, seed=seed)
    if spec == "random":
        from armworld.agents.exploration import ColoredNoiseAgent

        return ColoredNoiseAgent.for_env(env, seed=seed)
    if spec.startswith("wm:"):
        return load_world_model_agent(model_path(spec), env, seed=seed, **wm_options)
    try:  # sb3:PATH
        rl = importlib.import_module("armworld.agents.rl")
    except ModuleNotFoundError as error:
        raise AgentSpecError(f"sb3 agents need armworld.agents.rl, which this install lacks ({error})") from None
    if not hasattr(rl, "load_sb3_agent"):
        raise AgentSpecError("armworld.agents.rl has no load_sb3_agent(path, env): sb3 agents cannot be loaded")
    return rl.load_sb3_agent(spec[4:], env)
