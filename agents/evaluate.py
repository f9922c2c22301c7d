"""The evaluation harness: any agent, any env id, one protocol.

- Seeds: for evaluation seed ``s``, episode ``i`` resets the env with
  ``eval_seed(s, i) = 1_000_000 + 1000 * s + i`` (``i < 1000``). Collection uses seeds
  ``0, 1, 2, ...`` by default (``armworld collect --seed 0``), so the two never meet unless
  a collection asks for a million episodes or a seed that large; pass the seeds of the
  datasets an agent learned from (``dataset_seeds``) and any overlap is refused.
- ``episodes`` per seed, each run for a fixed step budget (the env's ``max_episode_steps``,
  or ``max_steps``, which replaces the env's time limit, longer or shorter); success is
  ``info["is_success"]`` after the last step, the final distance is
  ``|achieved_goal - desired_goal|`` (m) then.
- Every agent, per seed, is made by ``factory(env, seed)`` and reset after each env reset.

Results: the success rate with a Wilson 95% interval, the mean final distance, the mean
episode length and, for agents that record ``plan_times`` (world-model planners: planning
time; SB3 policies: inference time), the median time per action; overall and per seed. :func:`write_results` writes them
as ``results.json`` and ``results.md``; chosen episodes are filmed as MP4s (the front view,
what the agent sees and its goal image, with the task, step, distance and outcome written on
them: :mod:`armworld.agents.film`).
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from armworld.agents.base import Agent
from armworld.agents.eval_config import EPISODES_PER_SEED_MAX, EVAL_SEED_BASE, EvalConfig, eval_seed  # noqa: F401  (re-exported)
from armworld.agents.film import FilmConfig, FilmRecorder
from armworld.envs.episode import run_episode as run_episode_loop

Z_95 = 1.959963984540054

AgentFactory = Callable[[gymnasium.Env, int], Agent]
"""``factory(env, seed) -> agent``: a fresh agent for evaluation seed ``seed``."""


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95% by default); (0, 1) when ``n == 0``."""
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class EpisodeResult:
    """One episode: its seeds, outcome at the last step, length and planning times."""

    seed: int  # evaluation seed (-1 for an episode run outside `evaluate`)
    reset_seed: int
    success: bool
    final_distance: float  # m
    length: int  # actions taken
    sim_unstable: bool = False  # the env cut the episode short: its physics went unstable
    plan_times: list[float] = field(default_factory=list)  # s per action, agents that record plan_times
    frames: np.ndarray | None = field(default=None, repr=False)  # uint8 [T, H, W, 3], the film when recorded


def run_episode(
    env: gymnasium.Env, agent: Agent, reset_seed: int, max_steps: int, film: FilmConfig | None = None
) -> EpisodeResult:
    """Reset ``env`` with ``reset_seed``, drive it with ``agent`` for up to ``max_steps`` actions
    (the episode loop, :func:`armworld.envs.episode.run_episode`), and judge the outcome.

    With ``film``, the episode is filmed into the result's ``frames``
    (:class:`armworld.agents.film.FilmRecorder`): one frame per observation, captured after
    the agent acted on it (so each shows the goal its action was planned toward), one of the
    last observation, then that one held with the outcome. Filming changes nothing the
    agent sees or the env does.
    """
    recorder = FilmRecorder(env, agent, film, reset_seed, max_steps) if film is not None else None
    try:
        end = run_episode_loop(env, agent, reset_seed, max_steps, observers=[recorder] if recorder is not None else [])
        obs, info, length = end.obs, end.info, end.length
        success = bool(info.get("is_success", False))
        distance = float(np.linalg.norm(np.asarray(obs["achieved_goal"]) - np.asarray(obs["desired_goal"])))
        frames = None
        if recorder is not None:
            recorder.capture(obs, length)
            frames = recorder.finish(success, distance, length)
    finally:
        if recorder is not None:
            recorder.close()
    return EpisodeResult(
        seed=-1,
        reset_seed=reset_seed,
        success=success,
        final_distance=distance,
        length=length,
        sim_unstable=bool(info.get("sim_unstable", False)),
        plan_times=list(getattr(agent, "plan_times", []) or []),
        frames=frames,
    )


@dataclass
class Summary:
    """Aggregates of a set of episodes (JSON-ready)."""

    episodes: int
    successes: int
    success_rate: float
    success_ci: tuple[float, float]
    mean_final_distance: float
    mean_episode_length: float
    sim_unstable: int  # episodes the env cut short for unstable physics (counted as they ended)
    plan_time_per_action_s: float | None  # median over all actions of all episodes
    plan_time_per_action_p90_s: float | None

    @classmethod
    def of(cls, results: Sequence[EpisodeResult]) -> Summary:
        n = len(results)
        successes = sum(r.success for r in results)
        times = [t for r in results for t in r.plan_times]
        return cls(
            episodes=n,
            successes=successes,
            success_rate=successes / n if n else 0.0,
            success_ci=wilson_interval(successes, n),
            mean_final_distance=float(np.mean([r.final_distance for r in results])) if n else float("nan"),
            mean_episode_length=float(np.mean([r.length for r in results])) if n else float("nan"),
            sim_unstable=sum(r.sim_unstable for r in results),
            plan_time_per_action_s=float(np.median(times)) if times else None,
            plan_time_per_action_p90_s=float(np.percentile(times, 90)) if times else None,
        )


@dataclass
class EvalResult:
    """Everything an evaluation produced: overall and per-seed summaries, the episodes, videos."""

    agent: str
    config: EvalConfig
    overall: Summary
    per_seed: dict[int, Summary]
    episodes: list[EpisodeResult]
    videos: list[str]
    wall_s: float
    max_steps: int  # the step budget each episode had (the config's, or the env's own)
    agent_options: dict[str, Any] = field(default_factory=dict)  # how the agent was configured (JSON-able)

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` content: the overall summary at the top level."""
        return {
            "agent": self.agent,
            "agent_options": self.agent_options,
            "env_id": self.config.env_id,
            **asdict(self.overall),
            "seeds": list(self.config.seeds),
            "episodes_per_seed": self.config.episodes,
            "max_steps": self.max_steps,
            "env_kwargs": self.config.env_kwargs,
            "reset_seeds": f"{EVAL_SEED_BASE} + {EPISODES_PER_SEED_MAX} * seed + episode",
            "success_rule": "info['is_success'] after the last step",
            "per_seed": {str(seed): asdict(summary) for seed, summary in self.per_seed.items()},
            "episode_results": [
                {
                    "seed": e.seed,
                    "reset_seed": e.reset_seed,
                    "success": e.success,
                    "final_distance": e.final_distance,
                    "length": e.length,
                    "sim_unstable": e.sim_unstable,
                    "plan_time_per_action_s": float(np.median(e.plan_times)) if e.plan_times else None,
                }
                for e in self.episodes
            ],
            "videos": self.videos,
            "wall_s": self.wall_s,
            "machine": f"{platform.machine()}, {platform.system()}, python {platform.python_version()}",
        }

    def markdown(self) -> str:
        """A markdown table: overall and per-seed rows."""
        head = (
            f"Agent `{self.agent}` on `{self.config.env_id}`: {self.config.episodes} episodes x "
            f"{len(self.config.seeds)} seeds, at most {self.max_steps} steps each, success judged after the last step.\n\n"
            "| seeds | episodes | success | Wilson 95% CI | final distance (m) | episode length | plan time / action (s) |\n"
            "|---|---:|---:|---|---:|---:|---:|\n"
        )
        rows = [_row("all", self.overall)] + [_row(str(seed), s) for seed, s in self.per_seed.items()]
        unstable = self.overall.sim_unstable
        note = f"\n{unstable} episode(s) ended early: the simulation went unstable (`sim_unstable`).\n" if unstable else ""
        return head + "\n".join(rows) + "\n" + note


def _row(label: str, s: Summary) -> str:
    plan = f"{s.plan_time_per_action_s:.3f}" if s.plan_time_per_action_s is not None else "-"
    return (
        f"| {label} | {s.episodes} | {s.success_rate:.1%} ({s.successes}) | "
        f"[{s.success_ci[0]:.1%}, {s.success_ci[1]:.1%}] | {s.mean_final_distance:.3f} | "
        f"{s.mean_episode_length:.1f} | {plan} |"
    )


def check_disjoint(config: EvalConfig, dataset_seeds: Collection[int]) -> None:
    """Refuse an evaluation whose reset seeds overlap ``dataset_seeds``."""
    overlap = sorted(set(config.reset_seeds()) & {int(s) for s in dataset_seeds})
    if overlap:
        raise ValueError(
            f"{len(overlap)} evaluation reset seeds (e.g. {overlap[:3]}) were used to collect the training data; "
            "evaluate with other --seeds so that evaluation and training episodes never overlap"
        )


def evaluate(
    factory: AgentFactory,
    config: EvalConfig,
    agent_name: str = "agent",
    out: str | Path | None = None,
    dataset_seeds: Collection[int] | None = None,
    progress: Callable[[EpisodeResult], None] | None = None,
    agent_options: dict[str, Any] | None = None,
) -> EvalResult:
    """Evaluate the agents ``factory`` makes. ``agent_options``: how they are configured (the
    planner and its settings, the energy, ...), JSON-able, recorded in ``results.json``.

    The films of ``config.videos`` episodes per seed are written as MP4s under ``out``, or,
    without ``out``, kept in those episodes' ``frames``.
    """
    if dataset_seeds is not None:
        check_disjoint(config, dataset_seeds)
    start = time.perf_counter()
    # the env's own time limit would cut a longer max_steps short: make it with that budget
    budget = {"max_episode_steps": config.max_steps} if config.max_steps else {}
    env = gymnasium.make(config.env_id, **budget, **config.env_kwargs)
    max_steps = config.max_steps or (env.spec.max_episode_steps if env.spec else None)
    if max_steps is None:
        raise ValueError(f"{config.env_id} has no step budget (max_episode_steps); give max_steps")
    episodes: list[EpisodeResult] = []
    videos: list[str] = []
    film = FilmConfig(height=config.video_height, caption=agent_name)
    try:
        for seed in config.seeds:
            agent = factory(env, seed)
            for i in range(config.episodes):
                record = i < config.videos
                result = run_episode(env, agent, eval_seed(seed, i), max_steps, film if record else None)
                result.seed = seed
                if record and out is not None:
                    path = Path(out) / f"{_slug(config.env_id)}_seed{seed}_ep{i}.mp4"
                    write_episode_video(path, result.frames, film.fps)
                    videos.append(str(path))
                    result.frames = None
                episodes.append(result)
                if progress is not None:
                    progress(result)
    finally:
        env.close()
    per_seed = {seed: Summary.of([e for e in episodes if e.seed == seed]) for seed in config.seeds}
    wall_s = time.perf_counter() - start
    return EvalResult(
        agent_name, config, Summary.of(episodes), per_seed, episodes, videos, wall_s, max_steps, dict(agent_options or {})
    )


def write_episode_video(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> None:
    """An MP4 (or GIF, by extension) of uint8 frames ``[T, H, W, 3]``."""
    from armworld.datasets.video import write_video

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps)


def write_results(result: EvalResult, out: str | Path) -> tuple[Path, Path]:
    """``out/results.json`` and ``out/results.md``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(result.to_json(), indent=2))
    md_path.write_text(result.markdown())
    return json_path, md_path


def _slug(env_id: str) -> str:
    return env_id.split("/")[-1].replace("-", "_")
