"""The task table: the one place that says which tasks and env ids exist.

Everything that lists or looks up tasks derives from :data:`TASKS`: the Gymnasium
registration (:func:`register_envs`, run by ``import armworld``), ``armworld envs``, the
CLI's ``--env`` and ``--task`` choices, the scripted expert of a task
(``armworld.agents.make_expert``), the default RL hyperparameters
(``agents/hyperparams/<algo>.yaml``, one entry per :attr:`Task.hyperparams` profile) and the
task sentence of LeRobot exports. Adding a task is one :class:`Task` entry here plus its env
class (and, if no existing one fits, its scripted expert). Every task runs on every robot of
:data:`ROBOTS`; adding a robot is one :class:`Robot` entry plus its ``RobotModel`` and MJCF.

The table names classes by import path (``"module:attribute"``), so reading it imports
neither MuJoCo nor the agents: ``envs`` stays below ``agents`` in the layers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

ENV_NAMESPACE = "armworld"
ENV_VERSION = 0  # bumped for any change to dynamics, rewards or observations


@dataclass(frozen=True)
class Robot:
    """A robot of the simulator. name: what envs take as ``robot=``; env_prefix: its env ids'
    prefix (``armworld/<prefix><Task>-v0``); model: its ``RobotModel``, ``"module:NAME"``."""

    name: str
    env_prefix: str
    model: str


ROBOTS: dict[str, Robot] = {
    robot.name: robot
    for robot in (
        Robot("panda", "Franka", "armworld.envs.panda:PANDA"),
        Robot("ur5e", "UR5e", "armworld.envs.ur5e:UR5E"),
    )
}


@dataclass(frozen=True)
class Task:
    """One table-top task.

    name: what experts, hyperparameters and real arms key on (``pick_place``); its
    CamelCase form names the env ids (``armworld/FrankaPickPlace-v0``).
    env_class: the env class, ``"module:Class"``. max_episode_steps: the step budget
    (control steps of 0.1 s). expert: the scripted expert's class, ``"module:Class"``.
    hyperparams: the entry of ``agents/hyperparams/<algo>.yaml`` holding the default RL
    hyperparameters (tasks of one kind share an entry). instruction: the task as a sentence
    (LeRobot's ``task``).
    """

    name: str
    env_class: str
    max_episode_steps: int
    expert: str
    hyperparams: str
    instruction: str

    @property
    def title(self) -> str:
        """The name in CamelCase, as env ids spell it: ``pick_place`` -> ``PickPlace``."""
        return "".join(part.capitalize() for part in self.name.split("_"))


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("reach", "armworld.envs.tasks:ReachEnv", 30, "armworld.agents.scripted:ReachExpert", "reach",
             "move the gripper to the goal position"),
        Task("push", "armworld.envs.tasks:PushEnv", 60, "armworld.agents.scripted:PushExpert", "cube",
             "push the cube to the goal position"),
        Task("pick_place", "armworld.envs.tasks:PickPlaceEnv", 60, "armworld.agents.scripted:PickPlaceExpert", "cube",
             "pick up the cube and place it at the goal position"),
        Task("stack", "armworld.envs.tasks:StackEnv", 80, "armworld.agents.scripted:StackExpert", "cube",
             "stack the cube on the other cube"),
    )
}


@dataclass(frozen=True)
class EnvEntry:
    """A registered env: one robot doing one task."""

    env_id: str
    robot: str
    task: Task

    @property
    def max_episode_steps(self) -> int:
        return self.task.max_episode_steps


def env_id(robot: str, task: str) -> str:
    """The id of ``robot`` doing ``task``: ``env_id("panda", "push") == "armworld/FrankaPush-v0"``."""
    return f"{ENV_NAMESPACE}/{ROBOTS[robot].env_prefix}{TASKS[task].title}-v{ENV_VERSION}"


ENV_IDS: dict[str, EnvEntry] = {
    env_id(robot, task): EnvEntry(env_id(robot, task), robot, TASKS[task]) for robot in ROBOTS for task in TASKS
}


def register_envs() -> None:
    """Register every env of :data:`ENV_IDS` with Gymnasium (ids already registered are kept)."""
    import gymnasium

    for entry in ENV_IDS.values():
        if entry.env_id not in gymnasium.registry:
            gymnasium.register(id=entry.env_id, entry_point=entry.task.env_class, max_episode_steps=entry.max_episode_steps,
                               kwargs={"robot": entry.robot})


def load(path: str) -> Any:
    """The object a ``"module:attribute"`` path of the table names."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def robot_model(name: str) -> Any:
    """The ``RobotModel`` of robot ``name``; ``ValueError`` naming the robots for another name."""
    if name not in ROBOTS:
        raise ValueError(f"unknown robot {name!r}; choose one of {sorted(ROBOTS)}")
    return load(ROBOTS[name].model)


@cache
def task_of(env_class: type) -> Task:
    """The table's task for an env class or a subclass of one; ``LookupError`` for a class
    outside the table."""
    for cls in env_class.__mro__:
        for task in TASKS.values():
            if task.env_class == f"{cls.__module__}:{cls.__qualname__}":
                return task
    raise LookupError(f"{env_class.__qualname__} is no task of the table (armworld.envs.registry.TASKS): add a Task for it")
