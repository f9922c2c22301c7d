"""The passive-video experiment: does actionless video cut the action data a world model needs,
and where does RL stand at equal data? (``armworld experiment passive-video``)

The experiment is a list of *points*, each its own directory under the output folder:

- ``pool/<task>-<policy>-<scene>``: actionless video, episodes of every task from several
  policies, with and without domain-randomised visuals. armworld's HDF5 format keeps every
  episode's actions, so the pool is stored as ordinary collected files; only their frames
  are ever read (``armworld pretrain`` reads ``obs/rgb_<camera>`` alone).
- ``data/<task>-A<size>``: the action-labelled episodes (mixed policy); the sets are nested
  (the first 25 episodes of A = 50 are A = 25), each file grown from the previous one.
- ``encoder/pool-s<seed>`` (arm 1) and ``encoder/<task>-A<size>-s<seed>`` (arm 3):
  ``armworld pretrain`` on the pool, or on the A episodes' frames only.
- ``wm/<task>-A<size>-arm<k>-s<seed>``: ``armworld train`` of arms 1-4 (see :data:`ARMS`),
  the same predictor budget for every arm.
- ``eval/<task>-A<size>-arm<k>-s<seed>-<goal>``: ``armworld eval`` from the goal image alone
  (``image``) and, for the scale's sub-goal tasks, through the simulator's sub-goal images
  (``subgoals``, reported apart).
- ``rl/<task>-<algo>-s<seed>/steps-<budget>``: arm 5, ``armworld rl train`` continued up
  to each budget (the env steps each A holds, and beyond), a copy of the model at that
  budget and its ``armworld eval``.

A point is finished when its ``done.json`` exists; it is written last, atomically, and holds
the point's record (what :func:`gather` reads). Rerunning the experiment skips finished
points and redoes unfinished ones; the commands underneath resume what they can (a
collection its committed episodes, training its newest checkpoint). Each point holds a lock
while it runs, so several processes may share one output folder (``--only`` splits the
work; a point another process is running is waited for).

Seeds: action-labelled episode ``i`` is reset with seed ``i``, pool component ``k`` with
``POOL_SEED_BASE + POOL_SEED_STRIDE * k + i``; both stay below the evaluation seeds
(``1_000_000`` and up, agents/evaluate.py), and every evaluation passes the files to
``armworld eval --dataset``, which refuses any overlap. The model of training seed ``s``
is evaluated on evaluation seed ``s``.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import math
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from armworld.agents.evaluate import EVAL_SEED_BASE, wilson_interval
from armworld.agents.exploration import PolicySpec
from armworld.agents.world_model_agent_config import DEFAULT_PLANNER
from armworld.envs.registry import ENV_IDS, env_id

REACH, PUSH, PICK_PLACE, STACK = (env_id("panda", task) for task in ("reach", "push", "pick_place", "stack"))
EPISODE_STEPS = {env: ENV_IDS[env].max_episode_steps for env in (REACH, PUSH, PICK_PLACE, STACK)}
ARMS: dict[str, str] = {
    "arm1": "encoder pretrained on the actionless pool, frozen",
    "arm2": "encoder at its initialisation, frozen",
    "arm3": "encoder pretrained on the A episodes' frames only, frozen",
    "arm4": "encoder and predictor trained end to end on the A episodes",
}
TARGET_SUCCESS = {REACH: 0.8, PUSH: 0.5}  # the success each arm's action data is measured at (0.5 elsewhere)
POOL_SEED_BASE, POOL_SEED_STRIDE = 100_000, 10_000
DONE, LOCK, MANIFEST = "done.json", ".lock", "experiment.json"


@dataclass(frozen=True)
class RLArm:
    """An RL baseline of arm 5: SB3 ``algo`` (with HER replay if ``her``) on ``obs_mode``
    observations (``state``, or ``pixels``: the front camera plus proprio and goal vectors)."""

    algo: str
    obs_mode: str
    her: bool = False

    @property
    def name(self) -> str:
        """e.g. ``sac-her-state``."""
        return f"{self.algo}{'-her' if self.her else ''}-{self.obs_mode}"


@dataclass(frozen=True)
class Scale:
    """Everything that sizes the experiment; one instance per scale in :data:`SCALES`.

    tasks: env ids with action-labelled data, trained and evaluated; sizes: the A values
    (episodes per task); seeds: training seeds (model of seed ``s`` evaluated on evaluation
    seed ``s``). pool_*: the actionless pool is every (task, policy, scene randomisation) of
    ``pool_tasks x pool_policies x pool_randomizations`` (None: the plain scene), with
    ``pool_episodes`` episodes each. data_policy: the action-labelled episodes' policy.
    image_size (px) and camera: what is recorded and what the world models see.
    episode_steps: step budget of collected and evaluated episodes (None: each env's own).
    encoder_preset: arms 1-3; end_to_end_preset: arm 4. pretrain_*/train_*: optimizer steps,
    clips per step, frames per clip and extra ``armworld pretrain`` options. eval_episodes:
    per model (one evaluation seed); planner, plan_samples, plan_iterations: the planner, its
    population and iterations, the same for every arm (None: the planner's defaults; iCEM's
    are 128 and 4); subgoal_tasks: tasks also evaluated through the sub-goal images.
    rl_arms: arm 5's baselines, each trained to the env steps of every A of a task and on to
    ``rl_beyond[task]``; rl_eval_episodes: episodes of its training evaluations;
    rl_checkpoint_every: env steps between its checkpoints; rl_overrides: ``-p KEY=VALUE``.
    """

    name: str
    summary: str
    tasks: tuple[str, ...]
    sizes: tuple[int, ...]
    seeds: tuple[int, ...]
    pool_tasks: tuple[str, ...]
    pool_policies: tuple[PolicySpec, ...]
    pool_randomizations: tuple[str | None, ...]
    pool_episodes: int
    data_policy: PolicySpec = PolicySpec("mixed", noise=0.2)
    image_size: int = 64
    camera: str = "front"
    episode_steps: int | None = None
    encoder_preset: str = "tiny"
    end_to_end_preset: str = "tiny-pooled"
    pretrain_steps: int = 1000
    pretrain_batch: int = 8
    pretrain_clip_len: int = 8
    pretrain_options: tuple[str, ...] = ("--objective", "sigreg", "--augment")
    train_steps: int = 1000
    train_batch: int = 8
    eval_episodes: int = 50
    planner: str = DEFAULT_PLANNER
    plan_samples: int | None = None
    plan_iterations: int | None = None
    subgoal_tasks: tuple[str, ...] = (PUSH,)
    rl_arms: tuple[RLArm, ...] = (RLArm("sac", "state", her=True),)
    rl_beyond: dict[str, tuple[int, ...]] = field(default_factory=dict)
    rl_eval_episodes: int = 20
    rl_checkpoint_every: int = 10_000
    rl_overrides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        components = len(self.pool_tasks) * len(self.pool_policies) * len(self.pool_randomizations)
        if max(self.sizes) > POOL_SEED_BASE or self.pool_episodes > POOL_SEED_STRIDE:
            raise ValueError(f"scale {self.name}: at most {POOL_SEED_BASE} labelled and {POOL_SEED_STRIDE} pool episodes")
        if POOL_SEED_BASE + POOL_SEED_STRIDE * components > EVAL_SEED_BASE:
            raise ValueError(f"scale {self.name}: {components} pool components would reach the evaluation seeds")
        if list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"scale {self.name}: sizes must increase, got {self.sizes}")

    def steps_per_episode(self, task: str) -> int:
        """Env steps (actions) of one collected or evaluated episode of ``task``."""
        return self.episode_steps or EPISODE_STEPS[task]

    def planner_options(self) -> list[str]:
        """The ``armworld eval`` options of the planner."""
        given = (("--planner", self.planner), ("--samples", self.plan_samples), ("--iterations", self.plan_iterations))
        return [text for flag, value in given if value is not None for text in (flag, str(value))]

    def plan_cost(self) -> float:
        """Planning time per action relative to the default planner's: the samples x iterations
        over the planner's defaults (which take about as long for CEM, iCEM and MPPI with the
        ``tiny`` model on two cores; benchmarks/README.md)."""
        from armworld.agents.planners import planner_kind

        defaults = planner_kind(self.planner).config()
        work = (self.plan_samples or defaults.samples) * (self.plan_iterations or defaults.iterations)
        return work / (defaults.samples * defaults.iterations)

    def rl_budgets(self, task: str) -> list[int]:
        """Env steps arm 5 is evaluated at on ``task``: those of every A, then ``rl_beyond``."""
        return sorted({size * self.steps_per_episode(task) for size in self.sizes} | set(self.rl_beyond.get(task, ())))


_POOL_POLICIES = (PolicySpec("expert", noise=0.3), PolicySpec("random", beta=1.0), PolicySpec("mixed", noise=0.2, random_fraction=0.5))
SCALES: dict[str, Scale] = {
    scale.name: scale
    for scale in (
        Scale(
            name="smoke",
            summary="seconds: the test's scale; shows the mechanics, measures nothing",
            tasks=(REACH,), sizes=(10, 20), seeds=(0,), pool_tasks=(REACH,), pool_policies=(PolicySpec("random"),),
            pool_randomizations=(None, "default"), pool_episodes=2, image_size=16, episode_steps=5,
            end_to_end_preset="tiny", pretrain_steps=2, pretrain_batch=2, pretrain_clip_len=4, pretrain_options=(),
            train_steps=2, train_batch=2, eval_episodes=1, planner="cem", plan_samples=8, plan_iterations=1,
            subgoal_tasks=(), rl_eval_episodes=1, rl_checkpoint_every=0,
            rl_overrides=("buffer_size=1000", "learning_starts=40", "batch_size=8"),
        ),
        Scale(
            name="small",
            summary="about two hours on a 2-core CPU: 2 sizes, 1 seed, 10 evaluation episodes, a cheaper planner",
            tasks=(REACH, PUSH), sizes=(25, 100), seeds=(0,), pool_tasks=(REACH, PUSH, PICK_PLACE, STACK),
            pool_policies=_POOL_POLICIES, pool_randomizations=(None, "default"), pool_episodes=10,
            pretrain_steps=300, train_steps=400, eval_episodes=10, planner="cem", plan_samples=128, plan_iterations=3,
            rl_beyond={REACH: (10_000,), PUSH: (12_000,)}, rl_eval_episodes=5,
        ),
        Scale(
            name="full",
            summary="several sittings on a GPU machine: 6 sizes, 3 seeds, 50 evaluation episodes, the default planner",
            tasks=(REACH, PUSH), sizes=(25, 50, 100, 200, 400, 800), seeds=(0, 1, 2),
            pool_tasks=(REACH, PUSH, PICK_PLACE, STACK), pool_policies=_POOL_POLICIES,
            pool_randomizations=(None, "default"), pool_episodes=500, pretrain_steps=3000, pretrain_batch=64,
            train_steps=3000, train_batch=32, rl_arms=(RLArm("sac", "state", her=True), RLArm("sac", "pixels", her=True)),
            rl_beyond={REACH: (50_000,), PUSH: (100_000, 200_000, 300_000)},
        ),
    )
}

# Rough rates on 2 shared CPU cores, from the measurements in datasets/, worldmodel/, agents/
# and reports/ (for --plan's estimate only; a GPU is much faster at training, not at simulating).
COLLECT_FRAMES_PER_S = 300.0  # 64 px pixel env, one process
PRETRAIN_FRAMES_PER_S = 100.0  # JEPA, tiny
TRAIN_CLIPS_PER_S = 50.0  # predictor, tiny, clips of 4 frames; end to end about 3x slower
PLAN_S_PER_ACTION = {"tiny": 0.4, "tiny-p8": 1.8, "tiny-pooled": 0.09}  # CEM 256 x 4, one step (the default iCEM: alike for tiny)
RL_STEPS_PER_S = {"state": 15.0, "pixels": 5.0}  # SAC+HER training env steps per second


def short(task: str) -> str:
    """``armworld/FrankaPush-v0`` -> ``FrankaPush``."""
    return task.split("/")[-1].removesuffix("-v0")


def _label(policy: PolicySpec) -> str:
    return {"expert": f"expert{policy.noise}", "random": f"random{policy.beta}"}.get(
        policy.name, f"mixed{policy.noise}-{policy.random_fraction}"
    )


@dataclass(frozen=True)
class Point:
    """One unit of work: ``run(directory) -> record`` (JSON-able) in ``out/name``, after ``needs``."""

    name: str
    stage: str
    needs: tuple[str, ...]
    cost_s: float
    run: Callable[[Path], dict[str, Any]]


def write_json_atomic(path: Path, obj: object) -> None:
    """Write ``obj`` as JSON to ``path`` through a fsynced temporary file renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        json.dump(obj, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_record(out: Path, name: str) -> dict[str, Any] | None:
    """The record of finished point ``name`` (None while it is unfinished)."""
    done = out / name / DONE
    return json.loads(done.read_text())["record"] if done.is_file() else None


Verb = Callable[[list[str]], int]
"""Runs ``armworld ARGV`` in this process and returns its exit status: the CLI's ``main``,
given to :class:`Experiment` by the ``armworld experiment`` verb (this layer does not import the CLI)."""


class Experiment:
    """The points of one scale written under ``out``; ``device`` goes to pretrain and train
    (empty: theirs, a GPU when there is one); ``workers``: collection processes; ``verb`` runs
    the ``armworld`` verbs the points are made of (needed to run points, not to plan them)."""

    def __init__(self, scale: Scale, out: str | Path, device: str = "", workers: int = 1, verb: Verb | None = None):
        self.scale, self.out, self.device, self.workers, self.verb = scale, Path(out), device, workers, verb

    def armworld(self, argv: list[str]) -> str:
        """Run ``armworld ARGV`` in this process; returns the command line. Raises ``RuntimeError``
        when it fails (its ``error:`` line is already on stderr)."""
        if self.verb is None:
            raise RuntimeError("this Experiment was made without verb= (the armworld CLI's main): it can plan, not run")
        command = shlex.join(["armworld", *argv])
        tqdm.write(f"$ {command}")
        if self.verb(argv) != 0:
            raise RuntimeError(f"`{command}` failed (its error is printed above)")
        return command

    # ---- the points ----------------------------------------------------------------------

    def pool_points(self) -> list[Point]:
        """One collection per (task, policy, scene) of the actionless pool."""
        s = self.scale
        points = []
        components = [(t, p, r) for t in s.pool_tasks for p in s.pool_policies for r in s.pool_randomizations]
        for k, (task, policy, scene) in enumerate(components):
            seed = POOL_SEED_BASE + POOL_SEED_STRIDE * k
            name = f"pool/{short(task)}-{_label(policy)}-{scene or 'plain'}"
            cost = s.pool_episodes * (s.steps_per_episode(task) + 1) / COLLECT_FRAMES_PER_S / self.workers
            points.append(Point(name, "pool", (), cost, lambda d, a=(task, policy, scene, seed): self._collect(d, *a, s.pool_episodes)))
        return points

    def data_points(self) -> list[Point]:
        """The action-labelled sets of each task, each grown from the one before."""
        s = self.scale
        points = []
        for task in s.tasks:
            previous: str | None = None
            for before, size in zip((0, *s.sizes), s.sizes):
                name = f"data/{short(task)}-A{size}"
                cost = (size - before) * (s.steps_per_episode(task) + 1) / COLLECT_FRAMES_PER_S / self.workers
                points.append(Point(name, "data", (previous,) if previous else (), cost,
                                    lambda d, a=(task, size, previous): self._labelled(d, *a)))
                previous = name
        return points

    def encoder_points(self) -> list[Point]:
        """JEPA pretraining: on the pool (arm 1), and on each A set's frames (arm 3), per seed."""
        s = self.scale
        cost = s.pretrain_steps * s.pretrain_batch * s.pretrain_clip_len / PRETRAIN_FRAMES_PER_S
        pool = tuple(p.name for p in self.pool_points())
        points = [Point(f"encoder/pool-s{seed}", "encoder", pool, cost, lambda d, a=(pool, seed): self._pretrain(d, *a))
                  for seed in s.seeds]
        for task in s.tasks:
            for size in s.sizes:
                data = (f"data/{short(task)}-A{size}",)
                points += [Point(f"encoder/{short(task)}-A{size}-s{seed}", "encoder", data, cost,
                                 lambda d, a=(data, seed): self._pretrain(d, *a)) for seed in s.seeds]
        return points

    def wm_points(self) -> list[Point]:
        """Predictor (or end-to-end) training of arms 1-4 per task, A and seed."""
        s = self.scale
        points = []
        for task, size, seed, arm in self._world_models():
            encoder = {"arm1": f"encoder/pool-s{seed}", "arm3": f"encoder/{short(task)}-A{size}-s{seed}"}.get(arm)
            needs = (f"data/{short(task)}-A{size}", *([encoder] if encoder else []))
            cost = s.train_steps * s.train_batch / TRAIN_CLIPS_PER_S * (3 if arm == "arm4" else 1)
            points.append(Point(f"wm/{short(task)}-A{size}-{arm}-s{seed}", "wm", needs, cost,
                                lambda d, a=(task, size, arm, seed, encoder): self._train(d, *a)))
        return points

    def _world_models(self) -> Iterator[tuple[str, int, int, str]]:
        """(task, A, seed, arm) of every world model trained, in the order they are run."""
        s = self.scale
        for task in s.tasks:
            for size in s.sizes:
                for seed in s.seeds:
                    for arm in ARMS:
                        yield task, size, seed, arm

    def eval_points(self) -> list[Point]:
        """The harness on every world model: goal image, and sub-goal images for the sub-goal tasks."""
        s = self.scale
        points = []
        for task, size, seed, arm in self._world_models():
            model = f"wm/{short(task)}-A{size}-{arm}-s{seed}"
            preset = s.end_to_end_preset if arm == "arm4" else s.encoder_preset
            cost = s.eval_episodes * s.steps_per_episode(task) * (PLAN_S_PER_ACTION.get(preset, 0.4) * s.plan_cost() + 0.01)
            for goal in ("image", "subgoals") if task in s.subgoal_tasks else ("image",):
                points.append(Point(f"eval/{short(task)}-A{size}-{arm}-s{seed}-{goal}", "eval",
                                    (model, f"data/{short(task)}-A{size}"), cost,
                                    lambda d, a=(task, size, arm, seed, goal, model): self._evaluate(d, *a)))
        return points

    def rl_points(self) -> list[Point]:
        """Arm 5: each RL run's budgets in increasing order, each after the one before."""
        s = self.scale
        points = []
        for task in s.tasks:
            for rl in s.rl_arms:
                for seed in s.seeds:
                    chain = f"rl/{short(task)}-{rl.name}-s{seed}"
                    done = 0
                    previous: tuple[str, ...] = ()
                    for budget in s.rl_budgets(task):
                        name = f"{chain}/steps-{budget:07d}"
                        cost = (budget - done) / RL_STEPS_PER_S[rl.obs_mode] + s.eval_episodes * s.steps_per_episode(task) * 0.01
                        points.append(Point(name, "rl", previous, cost, lambda d, a=(task, rl, seed, budget, chain): self._rl(d, *a)))
                        done, previous = budget, (name,)
        return points

    def points(self) -> list[Point]:
        """Every point, each after the points it needs."""
        return [*self.pool_points(), *self.data_points(), *self.encoder_points(), *self.wm_points(),
                *self.eval_points(), *self.rl_points()]

    # ---- what each point does --------------------------------------------------------------

    def _record(self, name: str) -> dict[str, Any]:
        record = read_record(self.out, name)
        if record is None:
            raise RuntimeError(f"{self.out / name} is not finished; run the points it needs first")
        return record

    def _collect(self, directory: Path, task: str, policy: PolicySpec, scene: str | None, seed: int, episodes: int) -> dict[str, Any]:
        """Collect (or finish collecting) ``episodes`` episodes into ``directory/episodes.h5``."""
        from armworld.datasets.collect import CollectConfig, collect
        from armworld.datasets.hdf5 import TrajectoryFile

        s = self.scale
        env_kwargs = {"obs_mode": "pixels_state", "image_size": s.image_size, "cameras": s.camera,
                      **({"randomization": scene} if scene else {})}
        config = CollectConfig(task, episodes=episodes, seed=seed, workers=self.workers, env_kwargs=env_kwargs,
                               max_episode_steps=s.episode_steps, policy_name=policy.label)
        path = directory / "episodes.h5"
        tqdm.write(f"collect {path}: {episodes} episodes of {task}, {policy.label}, scene {scene or 'plain'}, seeds {seed}+")
        collect(path, config, policy, exist="resume")
        with TrajectoryFile(path) as file:
            actions = sum(file.num_samples(demo) for demo in file.demos)
            return {"file": str(path.relative_to(self.out)), "task": task, "policy": policy.label, "randomization": scene,
                    "episodes": file.total, "env_steps": actions, "frames": actions + file.total, "first_seed": seed,
                    "camera": s.camera, "image_size": s.image_size}

    def _labelled(self, directory: Path, task: str, size: int, previous: str | None) -> dict[str, Any]:
        """The first ``size`` action-labelled episodes: the previous size's file grown to ``size``."""
        path = directory / "episodes.h5"
        if previous is not None and not path.exists():
            copy = directory / ".episodes.h5.copy"
            shutil.copyfile(self.out / self._record(previous)["file"], copy)
            os.replace(copy, path)
        return self._collect(directory, task, self.scale.data_policy, None, 0, size)

    def _files(self, names: Sequence[str]) -> list[str]:
        """The trajectory files of finished collection points ``names``."""
        return [str(self.out / self._record(name)["file"]) for name in names]

    def _loop(self, steps: int, batch: int, seed: int) -> list[str]:
        """Optimisation options of pretrain and train: validation and a checkpoint every quarter."""
        every = str(max(1, steps // 4))
        return ["--steps", str(steps), "--batch-size", str(batch), "--seed", str(seed), "--eval-every", every,
                "--save-every", every, *(["--device", self.device] if self.device else [])]

    def _pretrain(self, directory: Path, data: tuple[str, ...], seed: int) -> dict[str, Any]:
        s = self.scale
        command = self.armworld(["pretrain", "--data", *self._files(data), "--preset", s.encoder_preset, "--camera", s.camera,
                            "--clip-len", str(s.pretrain_clip_len), *s.pretrain_options,
                            *self._loop(s.pretrain_steps, s.pretrain_batch, seed), "--out", str(directory / "run")])
        return {"command": command, "run": str((directory / "run").relative_to(self.out)), "seed": seed}

    def _train(self, directory: Path, task: str, size: int, arm: str, seed: int, encoder: str | None) -> dict[str, Any]:
        s = self.scale
        start = {"arm2": ["--preset", s.encoder_preset], "arm4": ["--preset", s.end_to_end_preset, "--end-to-end"]}.get(
            arm, ["--encoder", str(self.out / self._record(encoder)["run"])] if encoder else []
        )
        command = self.armworld(["train", "--data", *self._files([f"data/{short(task)}-A{size}"]), *start, "--camera", s.camera,
                            *self._loop(s.train_steps, s.train_batch, seed), "--out", str(directory / "run")])
        return {"command": command, "run": str((directory / "run").relative_to(self.out)), "task": task, "size": size,
                "arm": arm, "seed": seed}

    def _harness(self, directory: Path, agent: str, task: str, seed: int, options: Sequence[str]) -> tuple[str, dict]:
        """``armworld eval`` of ``agent`` on evaluation seed ``seed`` into ``directory/eval``."""
        s = self.scale
        budget = ["--max-steps", str(s.episode_steps)] if s.episode_steps else []
        command = self.armworld(["eval", "--agent", agent, "--env", task, "--episodes", str(s.eval_episodes), "--seeds", str(seed),
                            *budget, *options, "--out", str(directory / "eval")])
        return command, json.loads((directory / "eval" / "results.json").read_text())

    def _evaluate(self, directory: Path, task: str, size: int, arm: str, seed: int, goal: str, model: str) -> dict[str, Any]:
        data = [p.name for p in self.pool_points()] + [f"data/{short(task)}-A{size}"]  # every file a model may have seen
        options = [*self.scale.planner_options(), "--dataset", *self._files(data)]
        options += ["--subgoals", "--gripper", "goal"] if goal == "subgoals" else []
        command, results = self._harness(directory, f"wm:{self.out / self._record(model)['run']}", task, seed, options)
        env_steps = self._record(f"data/{short(task)}-A{size}")["env_steps"]
        return _outcome(results, command=command, task=task, arm=arm, goal=goal, size=size, budget=env_steps,
                        env_steps=env_steps, seed=seed)

    def _rl(self, directory: Path, task: str, rl: RLArm, seed: int, budget: int, chain: str) -> dict[str, Any]:
        """Continue the run ``chain/run`` to ``budget`` env steps, copy its model, evaluate the copy."""
        from armworld.agents.rl import CONFIG, CHECKPOINTS, LATEST, MODEL, latest_checkpoint

        s = self.scale
        run, snapshot = self.out / chain / "run", directory / "run"
        command = None
        if not (snapshot / MODEL).is_file():
            resume = latest_checkpoint(run) is not None
            if run.exists() and not resume:  # interrupted before its first checkpoint: nothing to continue
                shutil.rmtree(run)
            command = self.armworld([
                "rl", "train", "--algo", rl.algo, "--her" if rl.her else "--no-her", "--env", task, "--obs-mode", rl.obs_mode,
                "--image-size", str(s.image_size), "--steps", str(budget), "--seed", str(seed), "--out", str(run),
                "--eval-freq", str(budget), "--eval-episodes", str(s.rl_eval_episodes),
                "--checkpoint-freq", str(s.rl_checkpoint_every), *(["-p", *s.rl_overrides] if s.rl_overrides else []),
                *(["--resume"] if resume else []),
            ])
            partial = directory / ".run.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            for name in (MODEL, CONFIG):
                shutil.copyfile(run / name, partial / name)
            shutil.copyfile(run / CHECKPOINTS / LATEST, partial / "steps.json")
            os.replace(partial, snapshot)
        env_steps = json.loads((snapshot / "steps.json").read_text())["env_steps"]
        eval_command, results = self._harness(directory, f"sb3:{snapshot}", task, seed, ())
        return _outcome(results, command=eval_command, train_command=command, task=task, arm=rl.name, goal="vector",
                        size=None, budget=budget, env_steps=env_steps, seed=seed)


def _outcome(results: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A point's record: ``fields`` plus the evaluation's counts from its ``results.json``."""
    keys = ("successes", "episodes", "success_rate", "mean_final_distance", "plan_time_per_action_s")
    return {**fields, **{key: results[key] for key in keys}}


# ---- running ---------------------------------------------------------------------------------


def select(points: list[Point], only: Sequence[str]) -> list[Point]:
    """The points whose name matches one of the globs ``only`` (all when empty), with every
    point they need, in the experiment's order."""
    if not only:
        return points
    by_name = {p.name: p for p in points}
    wanted = {p.name for p in points if any(fnmatch.fnmatchcase(p.name, pattern) for pattern in only)}
    if not wanted:
        raise ValueError(f"--only {' '.join(only)} matches no point; `--plan` lists them")
    stack = list(wanted)
    while stack:
        for need in by_name[stack.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                stack.append(need)
    return [p for p in points if p.name in wanted]


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` (released by the OS if the process dies); waits for another holder."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_manifest(scale: Scale, out: Path) -> None:
    """Write ``out/experiment.json`` (the scale's settings), or check that an existing one
    is this scale's: one output folder holds one experiment."""
    manifest = {"experiment": "passive-video", "scale": asdict(scale)}
    manifest = json.loads(json.dumps(manifest))  # tuples as lists, as they read back
    path = out / MANIFEST
    if path.is_file():
        existing = json.loads(path.read_text())
        if isinstance(existing.get("scale"), dict):
            existing["scale"].setdefault("planner", "cem")  # written before scales named their planner: all planned with CEM
        if existing != manifest:
            differing = sorted(k for k in manifest["scale"] if existing.get("scale", {}).get(k) != manifest["scale"][k])
            raise ValueError(f"{out} holds a passive-video experiment of other settings ({', '.join(differing) or 'another kind'}); "
                             "resume it with the same --scale or write to another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, manifest)


def run(experiment: Experiment, only: Sequence[str] = ()) -> dict[str, Any]:
    """Run every unfinished point (those matching ``only`` and what they need), then gather
    the finished ones (:func:`write_report`); returns the gathered results."""
    out = experiment.out
    points = select(experiment.points(), only)
    check_manifest(experiment.scale, out)
    finished = 0
    with tqdm(total=len(points), unit="point", desc="passive-video", dynamic_ncols=True) as bar:
        for index, point in enumerate(points, 1):
            directory = out / point.name
            if (directory / DONE).is_file():
                finished += 1
                bar.update()
                continue
            with _locked(directory):
                if not (directory / DONE).is_file():  # another process may have finished it meanwhile
                    bar.set_description(point.name)
                    tqdm.write(f"== point {index}/{len(points)}: {point.name}")
                    start = time.perf_counter()
                    record = point.run(directory)
                    write_json_atomic(directory / DONE, {"record": record, "seconds": time.perf_counter() - start})
            bar.update()
    tqdm.write(f"{finished} of {len(points)} points were already finished and skipped")
    return write_report(out)


def plan(experiment: Experiment, only: Sequence[str] = ()) -> str:
    """The points and a rough CPU estimate of their cost, as text; finished ones marked."""
    points = select(experiment.points(), only)
    s = experiment.scale
    lines = [f"passive-video, scale {s.name} ({s.summary}), {len(points)} points:"]
    for point in points:
        state = "done" if (experiment.out / point.name / DONE).is_file() else f"~{point.cost_s / 60:.1f} min"
        lines.append(f"  {point.name:<48} {state}")
    pending = [p for p in points if not (experiment.out / p.name / DONE).is_file()]
    for stage in dict.fromkeys(p.stage for p in points):
        todo = [p for p in pending if p.stage == stage]
        lines.append(f"{stage:>8}: {len(todo)} to run, ~{sum(p.cost_s for p in todo) / 3600:.2f} h")
    per_scene_and_policy = sum(s.pool_episodes * (s.steps_per_episode(task) + 1) for task in s.pool_tasks)
    frames = per_scene_and_policy * len(s.pool_policies) * len(s.pool_randomizations)
    lines.append(f"actionless pool: {frames:,} frames = {frames / 36_000:.2f} h of 10 Hz video; "
                 f"rough total left on 2 CPU cores: ~{sum(p.cost_s for p in pending) / 3600:.1f} h")
    return "\n".join(lines)


# ---- results -----------------------------------------------------------------------------------


def _finished(out: Path, stage: str) -> list[dict[str, Any]]:
    return [json.loads(done.read_text())["record"] for done in sorted((out / stage).glob(f"**/{DONE}"))]


def curves(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]]:
    """``{task: {goal: {arm: [point, ...]}}}`` with one point per budget (the env steps of A, or
    RL's budget; ``env_steps`` is what was trained on, which PPO's rollouts may overshoot),
    successes and episodes summed over training seeds, sorted by env steps, with Wilson 95%, and
    the mean final distance to the goal (m) over all their episodes."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["task"], r["goal"], r["arm"], r["budget"]), []).append(r)
    result: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    for (task, goal, arm, budget), group in sorted(groups.items(), key=lambda item: str(item[0])):
        successes, episodes = sum(r["successes"] for r in group), sum(r["episodes"] for r in group)
        point = {
            "budget": budget, "env_steps": sum(r["env_steps"] for r in group) / len(group), "size": group[0]["size"],
            "successes": successes, "episodes": episodes, "success_rate": successes / episodes,
            "wilson_95": list(wilson_interval(successes, episodes)), "seeds": sorted(r["seed"] for r in group),
            "mean_final_distance": sum(r["mean_final_distance"] * r["episodes"] for r in group) / episodes,
        }
        result.setdefault(task, {}).setdefault(goal, {}).setdefault(arm, []).append(point)
    for by_goal in result.values():
        for by_arm in by_goal.values():
            for line in by_arm.values():
                line.sort(key=lambda p: p["env_steps"])
    return result


def steps_to_reach(line: list[dict[str, Any]], threshold: float) -> float | None:
    """Env steps at which a curve first reaches ``threshold`` success, interpolated linearly in
    log(env steps) from the budget before; the first budget if it starts there; None if never."""
    for i, p in enumerate(line):
        if p["success_rate"] >= threshold:
            if i == 0:
                return p["env_steps"]
            q = line[i - 1]
            fraction = (threshold - q["success_rate"]) / (p["success_rate"] - q["success_rate"])
            return math.exp(math.log(q["env_steps"]) + fraction * (math.log(p["env_steps"]) - math.log(q["env_steps"])))
    return None


def data_to_reach(headline: dict[str, list[dict[str, Any]]], target: float) -> dict[str, Any]:
    """Action data each arm needs on one task (goal image; RL with its goal vector): at the
    ``target`` success, and at a common threshold, the target if arms 1 and 2 both reach it,
    else the highest success both reach (None when one of them never succeeds), with the
    ratio arm 1 / arm 2 there."""
    reached = [max(p["success_rate"] for p in headline[arm]) for arm in ("arm1", "arm2") if arm in headline]
    common = min(target, *reached) if len(reached) == 2 and min(reached) > 0 else None
    at_target = {arm: steps_to_reach(line, target) for arm, line in headline.items()}
    at_common = {arm: steps_to_reach(line, common) for arm, line in headline.items()} if common else {}
    ratio = None
    if at_common.get("arm1") and at_common.get("arm2"):
        ratio = at_common["arm1"] / at_common["arm2"]
    return {"target": target, "env_steps_at_target": at_target, "common_threshold": common,
            "env_steps_at_common": at_common, "ratio_arm1_to_arm2": ratio,
            "target_ratio_at_most_half": None if ratio is None else ratio <= 0.5}


def ahead_of_rl(headline: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Is arm 1 ahead of each RL arm at every budget both were measured at?"""
    world_model = {p["budget"]: p["success_rate"] for p in headline.get("arm1", [])}
    verdicts = {}
    for arm, line in headline.items():
        if arm in ARMS:
            continue
        shared = [(p["budget"], world_model[p["budget"]], p["success_rate"]) for p in line if p["budget"] in world_model]
        verdicts[arm] = {"budgets": [b for b, _, _ in shared],
                         "arm1_ahead_at_every_budget": all(w > r for _, w, r in shared) if shared else None}
    return verdicts


def gather(out: str | Path) -> dict[str, Any]:
    """Every finished point of the experiment in ``out``: the pool's size, the curves per task
    and goal, the action data needed to reach the target success, and the comparison with RL."""
    out = Path(out)
    pool = _finished(out, "pool")
    frames = sum(r["frames"] for r in pool)
    records = _finished(out, "eval") + _finished(out, "rl")
    by_task = curves(records)
    summary: dict[str, Any] = {}
    for task, by_goal in by_task.items():
        headline = {**by_goal.get("image", {}), **by_goal.get("vector", {})}
        summary[task] = {**data_to_reach(headline, TARGET_SUCCESS.get(task, 0.5)), "arm1_against_rl": ahead_of_rl(headline)}
    manifest = json.loads((out / MANIFEST).read_text()) if (out / MANIFEST).is_file() else {}
    return {
        "experiment": "passive-video", "scale": manifest.get("scale", {}).get("name"), "arms": ARMS,
        "pool": {"files": len(pool), "episodes": sum(r["episodes"] for r in pool), "frames": frames,
                 "hours_at_10_hz": frames / 36_000, "components": pool},
        "curves": by_task, "data_to_reach": summary, "points": records,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """Success against action-labelled env steps (log x), one panel per task and goal, one line
    per arm with its Wilson 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(task, goal) for task, by_goal in results["curves"].items() for goal in by_goal if goal != "vector"]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.2 * max(1, len(panels)), 4.2), squeeze=False)
    for ax, (task, goal) in zip(axes[0], panels):
        lines = dict(results["curves"][task][goal])
        if goal == "image":
            lines.update(results["curves"][task].get("vector", {}))
        for arm, line in lines.items():
            steps = [p["env_steps"] for p in line]
            label = f"{arm}: {ARMS[arm]}" if arm in ARMS else f"{arm} (goal as a vector)"
            (drawn,) = ax.plot(steps, [p["success_rate"] for p in line], marker="o", markersize=4, label=label)
            ax.fill_between(steps, [p["wilson_95"][0] for p in line], [p["wilson_95"][1] for p in line],
                            color=drawn.get_color(), alpha=0.15)
        ax.set_xscale("log")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("action-labelled env steps")
        ax.set_ylabel("success rate")
        ax.set_title(f"{short(task)}, {'goal image' if goal == 'image' else 'sub-goal images (simulator help)'}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _steps(by_arm: dict[str, float | None]) -> str:
    """``arm1 1,200, arm2 -, ...``: env steps per arm, ``-`` where the success was never reached."""
    return ", ".join(f"{arm} {'-' if v is None else f'{v:,.0f}'}" for arm, v in by_arm.items())


def markdown(results: dict[str, Any]) -> str:
    """The results as tables: success per arm and budget, and the data needed to reach the target."""
    pool = results["pool"]
    lines = [f"# passive-video, scale {results['scale']}", "",
             f"Actionless pool: {pool['episodes']} episodes, {pool['frames']:,} frames "
             f"({pool['hours_at_10_hz']:.2f} h of 10 Hz video).", ""]
    for task, by_goal in results["curves"].items():
        for goal, by_arm in by_goal.items():
            lines += [f"## {short(task)}, goal: {goal}", "",
                      "| arm | env steps | successes | success | Wilson 95% | final distance (m) |",
                      "|---|---:|---:|---:|---|---:|"]
            for arm, line in by_arm.items():
                lines += [f"| {arm} | {p['env_steps']:,.0f} | {p['successes']}/{p['episodes']} | {p['success_rate']:.1%} | "
                          f"[{p['wilson_95'][0]:.1%}, {p['wilson_95'][1]:.1%}] | {p['mean_final_distance']:.3f} |" for p in line]
            lines.append("")
        reach = results["data_to_reach"][task]
        lines += [f"Action data to reach {reach['target']:.0%} success on {short(task)}: {_steps(reach['env_steps_at_target'])}.", ""]
        if reach["common_threshold"] is not None:
            ratio = reach["ratio_arm1_to_arm2"]
            lines += [f"At {reach['common_threshold']:.0%} (reached by arms 1 and 2): {_steps(reach['env_steps_at_common'])}; "
                      f"arm 1 / arm 2 = {'-' if ratio is None else f'{ratio:.2f}'}.", ""]
    return "\n".join(lines)


def write_report(out: str | Path) -> dict[str, Any]:
    """Gather ``out``'s finished points into ``results.json``, ``results.md`` and ``success.png``."""
    out = Path(out)
    results = gather(out)
    write_json_atomic(out / "results.json", results)
    (out / "results.md").write_text(markdown(results))
    plot(results, out / "success.png")
    return results
