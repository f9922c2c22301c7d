"""``env_args``: the JSON record of the env a trajectory file was collected in, and back.

robomimic's fields (``env_name``, ``type`` = 2 for gym envs, ``env_kwargs``) plus the step
budget and the versions of armworld and MuJoCo, so any episode can be re-simulated.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import version
from typing import Any

import gymnasium

from armworld.envs.randomization import RandomizationConfig

GYM_ENV_TYPE = 2  # robomimic's EnvType.GYM_TYPE


def describe_env(env: gymnasium.Env) -> dict[str, Any]:
    """The ``env_args`` dict (JSON-serialisable) of a made armworld env."""
    return {
        "env_name": env.spec.id,
        "type": GYM_ENV_TYPE,
        "env_kwargs": dataclasses.asdict(env.unwrapped.config),
        "max_episode_steps": env.spec.max_episode_steps,
        "armworld_version": version("armworld"),
        "mujoco_version": version("mujoco"),
    }


def make_env(env_args: dict[str, Any]) -> gymnasium.Env:
    """A fresh env built from ``env_args`` (as ``describe_env`` wrote it)."""
    kwargs = dict(env_args["env_kwargs"])
    if isinstance(kwargs.get("randomization"), dict):
        kwargs["randomization"] = RandomizationConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs["randomization"].items()}
        )
    return gymnasium.make(env_args["env_name"], max_episode_steps=env_args.get("max_episode_steps"), **kwargs)
