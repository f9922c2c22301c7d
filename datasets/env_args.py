"""``env_args``: the JSON record of the env a trajectory file was collected in, and back.

robomimic's fields (``env_name``, ``type`` = 2 for gym envs, ``env_kwargs``) plus the step
budget and the versions of armworld and MuJoCo, so any episode can be re-simulated. The env id
names the robot (``armworld/UR5ePush-v0``: the UR5e); an env made with another robot than its
id's (``gymnasium.make(id, robot="ur5e")``) records it in ``env_kwargs["robot"]`` (by name), and
only then, so that the files of an id's own robot keep the env_args they always had.
"""

from __future__ import annotations

import dataclasses
from importlib.metadata import version
from typing import Any

import gymnasium

from armworld.envs.registry import ENV_IDS, ROBOTS

GYM_ENV_TYPE = 2  # robomimic's EnvType.GYM_TYPE


def describe_env(env: gymnasium.Env) -> dict[str, Any]:
    """The ``env_args`` dict (JSON-serialisable) of a made armworld env."""
    return {
        "env_name": env.spec.id,
        "type": GYM_ENV_TYPE,
        "env_kwargs": {**dataclasses.asdict(env.unwrapped.config), **_robot_override(env)},
        "max_episode_steps": env.spec.max_episode_steps,
        "armworld_version": version("armworld"),
        "mujoco_version": version("mujoco"),
    }


def _robot_override(env: gymnasium.Env) -> dict[str, str]:
    """``{"robot": name}`` where ``env`` runs another robot than its id names, else ``{}``."""
    robot = env.unwrapped.robot.name
    entry = ENV_IDS.get(env.spec.id)
    return {} if entry is not None and entry.robot == robot else {"robot": robot}


def robot_of(env_args: dict[str, Any]) -> str | None:
    """The simulated robot (a name of ``ROBOTS``) an armworld file was collected with; ``None``
    for a real arm's recording or an env id armworld does not know."""
    robot = (env_args.get("env_kwargs") or {}).get("robot")
    entry = ENV_IDS.get(str(env_args.get("env_name", "")))
    if robot is None and entry is not None:
        robot = entry.robot
    return robot if robot in ROBOTS else None


def make_env(env_args: dict[str, Any]) -> gymnasium.Env:
    """A fresh env built from ``env_args`` (as ``describe_env`` wrote it)."""
    from armworld.envs.randomization import RandomizationConfig  # MuJoCo: readers of env_args import this module

    kwargs = dict(env_args["env_kwargs"])
    if isinstance(kwargs.get("randomization"), dict):
        kwargs["randomization"] = RandomizationConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in kwargs["randomization"].items()}
        )
    return gymnasium.make(env_args["env_name"], max_episode_steps=env_args.get("max_episode_steps"), **kwargs)
