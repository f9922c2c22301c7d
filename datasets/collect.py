"""Collect episodes from an env with any agent into a trajectory file, in parallel.

Episode ``i`` of a collection is reset with seed ``seed + i`` and driven by the agent
``policy(env, seed + i)``, so its content depends on ``i`` alone, not on how many
workers ran or on which one it landed. Workers are separate processes (spawn
context: safe with GL contexts), each with its own env; the parent is the only
writer and commits episodes in index order, so the file is the same for any number
of workers and a killed collection resumes where it stopped.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from tqdm import tqdm

from armworld.datasets.collect_config import CollectConfig
from armworld.datasets.env_args import describe_env
from armworld.datasets.hdf5 import DatasetError, Episode, Exist, TrajectoryFile, TrajectoryWriter, check_exist, demo_name
from armworld.datasets.record import EpisodeRecorder
from armworld.envs.episode import Policy, run_episode


AgentLike = Policy
"""The Agent protocol (``armworld.agents.base.Agent``), as the episode loop states it, so datasets needn't import agents."""


AgentFactory = Callable[[gymnasium.Env, int], AgentLike]
"""``factory(env, seed) -> agent``: a fresh, seeded agent for one episode. Must be picklable
(a module-level function, class or ``functools.partial``) when ``workers > 1``."""


@dataclass(frozen=True)
class CollectSummary:
    """What a collection did: new episodes and env steps (frames), seconds, and the file."""

    path: str
    episodes: int
    total: int
    frames: int
    successes: int
    seconds: float
    bytes: int

    @property
    def success_rate(self) -> float:
        """Fraction of the new episodes that end in success."""
        return self.successes / self.episodes if self.episodes else float("nan")

    @property
    def fps(self) -> float:
        """Env steps recorded per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        """A one-line human summary."""
        if not self.episodes:
            return f"{self.path}: complete, nothing to collect ({self.total} episodes in file, {self.bytes / 1e6:.1f} MB)"
        return (
            f"{self.path}: {self.episodes} new episodes ({self.total} in file), {self.frames} frames, "
            f"success {self.success_rate:.0%}, {self.bytes / 1e6:.1f} MB, {self.fps:.0f} frames/s"
        )


class ClippedPolicy:
    """``agent`` with its actions clipped to an action space, as float32 (what collection records)."""

    def __init__(self, agent: AgentLike, space: gymnasium.spaces.Box) -> None:
        self.agent, self.low, self.high = agent, space.low, space.high

    def reset(self) -> None:
        self.agent.reset()

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        return np.clip(np.asarray(self.agent.act(obs), dtype=np.float32), self.low, self.high)


def rollout(env: gymnasium.Env, agent: AgentLike, seed: int, policy: str) -> Episode:
    """Run one episode from ``env.reset(seed=seed)`` to termination or truncation.

    Actions are clipped to the action space and recorded as executed.
    """
    recorder = EpisodeRecorder(env)
    run_episode(env, ClippedPolicy(agent, env.action_space), seed, observers=[recorder])
    return recorder.episode(seed, policy)


def _episode(env: gymnasium.Env, config: CollectConfig, factory: AgentFactory, index: int) -> Episode:
    """Episode ``index`` of the collection: seed ``config.seed + index`` for the reset and the agent."""
    seed = config.seed + index
    return rollout(env, factory(env, seed), seed, config.policy_name)


_worker: dict[str, Any] = {}


def _init_worker(config: CollectConfig, factory: AgentFactory) -> None:
    _worker.update(env=config.make_env(), config=config, factory=factory)


def _worker_episode(index: int) -> Episode:
    return _episode(_worker["env"], _worker["config"], _worker["factory"], index)


def _as_factory(policy: AgentLike | AgentFactory, workers: int) -> AgentFactory:
    """The agent factory of ``policy``: itself, or for an agent instance (one process only) a
    factory returning that agent, reset before each episode."""
    if hasattr(policy, "act") and not isinstance(policy, type):
        if workers > 1:
            raise ValueError("parallel workers need an agent factory (env, seed) -> agent, not an agent instance")
        return lambda env, seed: policy
    return policy


def _episodes(config: CollectConfig, factory: AgentFactory, env: gymnasium.Env, indices: range) -> Iterator[Episode]:
    """Episodes ``indices`` in order, from this process or from ``config.workers`` processes."""
    if config.workers == 1:
        for index in indices:
            yield _episode(env, config, factory, index)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.workers, initializer=_init_worker, initargs=(config, factory)) as pool:
        yield from pool.imap(_worker_episode, indices, chunksize=1)


def _check_continues(file: TrajectoryFile, config: CollectConfig) -> None:
    """Refuse to resume a file whose episodes came from another seed or policy: appending
    would mix two collections and could repeat reset seeds."""
    for index in sorted({0, file.total - 1}) if file.total else ():
        demo = demo_name(index)
        expected = {"seed": config.seed + index, "policy": config.policy_name}
        found = {"seed": file.seed(demo), "policy": file.attrs(demo).get("policy")}
        if found != expected:
            raise DatasetError(
                f"{file.path}: cannot resume, episode {index} was collected with {found}, this collection would "
                f"give it {expected}; resume with the file's --seed and --policy, or write a new file"
            )


def collect(
    path: str | os.PathLike,
    config: CollectConfig,
    policy: AgentLike | AgentFactory,
    exist: Exist = "error",
    progress: bool = True,
    on_commit: Callable[[str, Episode], None] | None = None,
) -> CollectSummary:
    """Collect ``config.episodes`` episodes into ``path`` and return a summary.

    ``policy`` is an agent factory ``(env, seed) -> agent`` (needed for ``workers > 1``;
    each episode gets a fresh agent seeded with its episode seed) or one agent instance
    (reset before each episode). ``exist`` handles an existing file as
    ``TrajectoryWriter`` does: a replaced file stays intact until the first new episode is
    committed, and a failure before that leaves ``path`` as it was. The arguments are
    checked before the file is touched. ``on_commit(demo, episode)`` runs after each
    committed episode.
    """
    check_exist(exist)
    factory = _as_factory(policy, config.workers)
    env = config.make_env()
    start = time.perf_counter()
    frames = successes = collected = 0
    try:
        check_resume = functools.partial(_check_continues, config=config)
        with TrajectoryWriter(path, describe_env(env), exist=exist, check_resume=check_resume) as writer:
            indices = range(writer.total, max(writer.total, config.episodes))
            with tqdm(total=len(indices), unit="ep", disable=not progress, desc="collect") as bar:
                for episode in _episodes(config, factory, env, indices):
                    demo = writer.append(episode)
                    collected += 1
                    frames += episode.num_samples
                    successes += bool(episode.success[-1])
                    bar.update()
                    bar.set_postfix(success=f"{successes / collected:.0%}")
                    if on_commit is not None:
                        on_commit(demo, episode)
            total = writer.total
    finally:
        env.close()
    return CollectSummary(
        path=str(path),
        episodes=collected,
        total=total,
        frames=frames,
        successes=successes,
        seconds=time.perf_counter() - start,
        bytes=os.path.getsize(path),
    )
