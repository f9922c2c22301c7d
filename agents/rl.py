"""Stable-Baselines3 baselines on the armworld envs: PPO, SAC, TD3 and TQC (sb3-contrib),
with HER for the goal-conditioned tasks, state or pixel observations, and the trained
model acting through the ``Agent`` protocol.

Hyperparameters live in ``agents/hyperparams/<algo>.yaml`` (RL Zoo style, one entry per kind
of task, which the task table names for each task (``armworld.envs.registry.Task.hyperparams``),
a ``pixels:`` block overriding it for pixel observations); ``RLConfig.hyperparams``
overrides single keys. A run directory holds::

    config.json        the RLConfig, the resolved hyperparameters and the env kwargs
    progress.json      success over training: {"points": [{"env_steps", "successes", "episodes",
                       "success_rate", "mean_final_distance", "wall_time_s", "act_time_per_step_s"}],
                       "train_wall_time_s", "finished", ...}; what ``armworld compare`` reads
    model.zip          the final model
    checkpoints/       latest.json naming the latest model_<steps>_*.zip (+ replay_buffer_<steps>_*.pkl)
                       for ``resume``; see :meth:`ProgressCallback.checkpoint`
    tb/                TensorBoard logs

Training evaluations judge success as the harness (agents/evaluate.py) does:
``info["is_success"]`` after the episode's last step (goal within 0.05 m), deterministic
actions, on the harness's evaluation seed 0 (reset seeds ``1_000_000 + i``), which never
meet the training seeds (the run's seed, one per parallel env).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import tempfile
import time
import zipfile
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import yaml
from sb3_contrib import TQC
from stable_baselines3 import PPO, SAC, TD3, HerReplayBuffer
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.preprocessing import is_image_space

from armworld.agents.evaluate import Summary, eval_seed, run_episode
from armworld.agents.rl_config import ALGO_NAMES, RLConfig
from armworld.envs.registry import ENV_IDS

ALGOS: dict[str, type[BaseAlgorithm]] = dict(zip(ALGO_NAMES, (PPO, SAC, TD3, TQC), strict=True))
CONFIG, PROGRESS, MODEL = "config.json", "progress.json", "model.zip"
CHECKPOINTS, LATEST = "checkpoints", "latest.json"


# Keys armworld reads itself; the others go to the algorithm's constructor, less those
# build_model sets (from seed, noise_type and her).
_OWN_KEYS = ("n_timesteps", "n_envs", "policy", "her", "env_kwargs", "noise_type", "noise_std")
_SET_BY_ARMWORLD = {"self", "env", "seed", "tensorboard_log", "verbose", "_init_setup_model", "action_noise", "replay_buffer_class"}
# checked values: numbers as (integer?, lowest, lowest excluded?, highest), other kinds by type
_NUMBERS: dict[str, tuple[bool, float, bool, float]] = {
    "n_timesteps": (True, 1, False, math.inf), "n_envs": (True, 1, False, math.inf),
    "buffer_size": (True, 1, False, math.inf), "batch_size": (True, 1, False, math.inf),
    "learning_starts": (True, 0, False, math.inf), "n_steps": (True, 1, False, math.inf),
    "n_epochs": (True, 1, False, math.inf), "gamma": (False, 0, False, 1), "tau": (False, 0, True, 1),
    "gae_lambda": (False, 0, False, 1), "learning_rate": (False, 0, True, math.inf),
    "noise_std": (False, 0, False, math.inf), "clip_range": (False, 0, True, math.inf),
}
_KINDS: dict[str, type] = {"policy": str, "her": bool, "env_kwargs": dict, "policy_kwargs": dict, "replay_buffer_kwargs": dict}


def check_hyperparams(algo: str, hp: dict[str, Any], source: str) -> None:
    """Raise ``ValueError`` naming ``source`` (the YAML file or the overrides), the key and what
    was expected, for a key that neither armworld nor the algorithm takes, or a value of the
    wrong kind or out of range: before any env or model is built."""
    known = {*_OWN_KEYS, *inspect.signature(ALGOS[algo].__init__).parameters} - _SET_BY_ARMWORLD
    for key, value in hp.items():
        if key not in known:
            raise ValueError(f"{source}: {algo} takes no hyperparameter {key!r}; known: {', '.join(sorted(known))}")
        if key in _NUMBERS:
            integer, low, above, high = _NUMBERS[key]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not (low < value if above else low <= value) or value > high or (integer and not isinstance(value, int)):
                bounds = f"{'>' if above else '>='} {low:g}" + (f" and <= {high:g}" if high < math.inf else "")
                raise ValueError(f"{source}: {key}={value!r}, expected {'an integer' if integer else 'a number'} {bounds}")
        elif key in _KINDS and not isinstance(value, _KINDS[key]):
            raise ValueError(f"{source}: {key}={value!r}, expected a {_KINDS[key].__name__}")
    if hp.get("noise_type") not in (None, "normal"):
        raise ValueError(f"{source}: noise_type={hp['noise_type']!r}, expected normal (with noise_std) or no key")


def load_hyperparams(algo: str, env_id: str, obs_mode: str = "state", overrides: dict | None = None) -> dict[str, Any]:
    """The entry of ``hyperparams/<algo>.yaml`` that the task table names for ``env_id``'s task
    (``Task.hyperparams``), its ``pixels:`` block applied for pixel observations, then
    ``overrides`` (keys replaced whole); each checked with :func:`check_hyperparams`."""
    if env_id not in ENV_IDS:
        raise ValueError(f"unknown env id {env_id!r}; choose from {sorted(ENV_IDS)}")
    task = ENV_IDS[env_id].task
    source = f"hyperparams/{algo}.yaml"
    text = (resources.files("armworld.agents") / "hyperparams" / f"{algo}.yaml").read_text()
    table = yaml.safe_load(text)
    if task.hyperparams not in table:
        raise ValueError(f"{source} has no entry {task.hyperparams!r} (the {task.name} task's); it has {sorted(table)}")
    hp = dict(table[task.hyperparams])
    pixels = hp.pop("pixels", {})
    where = f"{source}, {task.hyperparams}"
    check_hyperparams(algo, {**hp, **pixels}, where)
    if obs_mode == "pixels":
        hp.update(pixels)
    check_hyperparams(algo, overrides or {}, "hyperparameter override (-p)")
    hp.update(overrides or {})
    check_hyperparams(algo, hp, f"{where} with the overrides")
    return hp


def env_kwargs_for(config: RLConfig, hp: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``gymnasium.make(config.env_id, ...)``."""
    kwargs = dict(hp.get("env_kwargs", {}))
    kwargs["obs_mode"] = config.obs_mode
    if config.obs_mode == "pixels":
        kwargs.update(cameras=("front",), image_size=config.image_size)
    return kwargs


def build_model(config: RLConfig, hp: dict[str, Any], env, tensorboard_log: str | None = None) -> BaseAlgorithm:
    """An untrained SB3 model for ``env`` (a VecEnv) from resolved hyperparameters."""
    kwargs = {k: v for k, v in hp.items() if k not in ("n_timesteps", "policy", "her", "env_kwargs", "n_envs", "noise_type", "noise_std")}
    use_her = hp.get("her", False) if config.her is None else config.her
    if use_her:
        kwargs["replay_buffer_class"] = HerReplayBuffer
    else:
        kwargs.pop("replay_buffer_kwargs", None)
    if hp.get("noise_type") == "normal":
        n = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n), hp["noise_std"] * np.ones(n))
    try:
        model = ALGOS[config.algo](hp["policy"], env, seed=config.seed, tensorboard_log=tensorboard_log, verbose=0, **kwargs)
    except (AssertionError, TypeError, KeyError) as error:  # SB3 checks the nested kwargs (policy_kwargs, ...) with asserts
        raise ValueError(f"{config.algo} cannot be built from these hyperparameters: {error}") from None
    check_image_keys(model)
    return model


def check_image_keys(model: BaseAlgorithm) -> None:
    """Every ``rgb_*`` key must look like an image to SB3, so that ``MultiInputPolicy``'s
    ``CombinedExtractor`` gives it a CNN (NatureCNN) rather than flattening it into an MLP."""
    for key, space in model.observation_space.spaces.items():
        if key.startswith("rgb_") and not is_image_space(space, check_channels=False):
            raise ValueError(f"observation {key!r} ({space}) is not an image space; it would be flattened, not convolved")


class SB3Agent:
    """An SB3 model behind the ``Agent`` protocol: deterministic actions ``[A]`` float32.

    ``plan_times`` holds the seconds each ``act`` of the current episode took (the
    evaluation harness reports their median as the time per action, as for planners).
    """

    def __init__(self, model: BaseAlgorithm, deterministic: bool = True):
        self.model = model
        self.deterministic = deterministic
        self.keys = list(model.observation_space.spaces)
        self.plan_times: list[float] = []

    def reset(self) -> None:
        """The policies are memoryless: only the timings are cleared."""
        self.plan_times = []

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        start = time.perf_counter()
        action, _ = self.model.predict({k: obs[k] for k in self.keys}, deterministic=self.deterministic)
        self.plan_times.append(time.perf_counter() - start)
        return np.asarray(action, dtype=np.float32)


def _model_file(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    if not path.is_file():
        raise FileNotFoundError(f"no SB3 model at {path}; give a run directory (with {MODEL}) or a model .zip")
    return path


def _algo_of(model_file: Path) -> type[BaseAlgorithm]:
    """The algorithm that saved an SB3 zip, told by its policy class's module
    (``sac.policies``, ``td3.policies``, ``tqc.policies``; PPO's is ``common.policies``)."""
    try:
        with zipfile.ZipFile(model_file) as archive:
            module = json.loads(archive.read("data"))["policy_class"]["__module__"]
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{model_file} is not a Stable-Baselines3 model zip ({error})") from error
    for name in ("sac", "td3", "tqc"):
        if f".{name}." in module:
            return ALGOS[name]
    if module == "stable_baselines3.common.policies":
        return PPO
    raise ValueError(f"{model_file} holds a {module} policy; armworld loads {sorted(ALGOS)}")


def sb3_env_kwargs(path: str | Path) -> dict[str, Any]:
    """The env id and kwargs a run was trained with: ``{"env_id": ..., "env_kwargs": {...}}``,
    read from the run's config.json (``path``: the run directory or a model zip inside it)."""
    path = Path(path)
    for folder in (path, *path.parents[:2]):
        if (folder / CONFIG).is_file():
            config = json.loads((folder / CONFIG).read_text())
            return {"env_id": config["config"]["env_id"], "env_kwargs": config["env_kwargs"]}
    raise FileNotFoundError(f"no {CONFIG} at or above {path}; is it an `armworld rl train` run?")


def load_sb3_agent(path: str, env: gymnasium.Env) -> SB3Agent:
    """Load a trained model (run directory or .zip) as an Agent for ``env``.

    The env must offer every observation key the model reads, with the same shapes, and
    the same action shape; otherwise a ValueError says which env kwargs the run used.
    """
    model_file = _model_file(path)
    # acting needs no replay buffer (a HER buffer would even need the training env)
    no_buffer = {"buffer_size": 1, "replay_buffer_class": DictReplayBuffer, "replay_buffer_kwargs": {}}
    model = _algo_of(model_file).load(model_file, device="cpu", custom_objects=no_buffer)
    problems = []
    for key, space in model.observation_space.spaces.items():
        env_space = env.observation_space.spaces.get(key)
        if env_space is None:
            problems.append(f"observation key {key!r} missing")
        elif sorted(env_space.shape) != sorted(space.shape) if is_image_space(space) else env_space.shape != space.shape:
            problems.append(f"{key!r} has shape {env_space.shape}, the model expects {space.shape}")
    if env.action_space.shape != model.action_space.shape:
        problems.append(f"action shape {env.action_space.shape}, the model acts in {model.action_space.shape}")
    if problems:
        try:
            hint = f"make the env with {sb3_env_kwargs(model_file)}"
        except FileNotFoundError:
            hint = "make the env with the obs_mode, image_size and action_dim the model was trained with"
        raise ValueError(f"{model_file} does not fit this env: {'; '.join(problems)}; {hint}")
    return SB3Agent(model)


def evaluate_model(model: BaseAlgorithm, env: gymnasium.Env, episodes: int) -> dict[str, float]:
    """Evaluation seed 0 of the harness (reset seeds ``eval_seed(0, i)``, ``i < episodes``),
    deterministic actions: ``successes``, ``episodes``, ``success_rate``,
    ``mean_final_distance`` (m), ``act_time_per_step_s`` (median)."""
    agent = SB3Agent(model)
    max_steps = env.spec.max_episode_steps
    summary = Summary.of([run_episode(env, agent, eval_seed(0, i), max_steps) for i in range(episodes)])
    return {
        "successes": summary.successes,
        "episodes": summary.episodes,
        "success_rate": summary.success_rate,
        "mean_final_distance": summary.mean_final_distance,
        "act_time_per_step_s": summary.plan_time_per_action_s,
    }


def _write_json(path: Path, obj: object) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the logs from other users
    os.replace(tmp, path)


def _new_file(folder: Path, prefix: str, suffix: str, created: list[Path]) -> Path:
    """A new empty file ``folder/<prefix><random><suffix>`` (mode 0644), appended to ``created``."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    os.close(fd)
    path = Path(name)
    created.append(path)
    os.chmod(path, 0o644)
    return path


def _save_model(model: BaseAlgorithm, path: Path) -> None:
    """``model.save`` into a new file beside ``path``, then renamed over it: ``path`` is never half-written."""
    created: list[Path] = []
    try:
        model.save(_new_file(path.parent, f".{path.name}.", ".zip", created))
        os.replace(created[0], path)
    except BaseException:
        for tmp in created:
            tmp.unlink(missing_ok=True)
        raise


def latest_checkpoint(run_dir: str | Path) -> tuple[Path, Path | None] | None:
    """The model zip and replay buffer (None for on-policy algorithms) of a run's latest
    checkpoint, as ``checkpoints/latest.json`` names them; None if the run has none yet."""
    folder = Path(run_dir) / CHECKPOINTS
    if not (folder / LATEST).is_file():
        return None
    latest = json.loads((folder / LATEST).read_text())
    model = folder / latest["model"]
    buffer = folder / latest["replay_buffer"] if latest["replay_buffer"] else None
    for path in (model, buffer):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{folder / LATEST} names {path.name}, which is gone; the checkpoint cannot be resumed")
    return model, buffer


class ProgressCallback(BaseCallback):
    """Evaluates every ``eval_freq`` env steps (and at the start and end), appends a point to
    progress.json and TensorBoard, and checkpoints every ``checkpoint_freq`` steps.

    ``wall_time_s`` counts training only (evaluations excluded), continued across resumes.
    """

    def __init__(self, run_dir: Path, progress: dict, eval_env: gymnasium.Env, config: RLConfig):
        super().__init__()
        self.run_dir, self.progress, self.eval_env, self.config = run_dir, progress, eval_env, config
        points = progress["points"]
        self.wall_offset = points[-1]["wall_time_s"] if points else 0.0
        self.next_eval = (points[-1]["env_steps"] if points else 0) + config.eval_freq
        self.next_checkpoint = config.checkpoint_freq or float("inf")
        self.eval_time = 0.0

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()
        if self.next_checkpoint != float("inf"):
            self.next_checkpoint = self.num_timesteps + self.config.checkpoint_freq
        if not self.progress["points"]:
            self.evaluate()

    def train_wall_time(self) -> float:
        return self.wall_offset + time.perf_counter() - self.start - self.eval_time

    def evaluate(self) -> None:
        start = time.perf_counter()
        result = evaluate_model(self.model, self.eval_env, self.config.eval_episodes)
        self.eval_time += time.perf_counter() - start
        point = {"env_steps": int(self.num_timesteps), **result, "wall_time_s": self.train_wall_time()}
        self.progress["points"].append(point)
        self.progress["train_wall_time_s"] = point["wall_time_s"]
        _write_json(self.run_dir / PROGRESS, self.progress)
        self.logger.record("eval/success_rate", result["success_rate"])
        self.logger.record("eval/mean_final_distance", result["mean_final_distance"])

    def checkpoint(self) -> None:
        """Save the model (and an off-policy replay buffer) as a new pair of files in
        ``checkpoints/``, then point ``latest.json`` at them (an atomic replace) and delete
        every other file there. The pointer only ever names a complete, matching pair: a
        run killed mid-write keeps its previous checkpoint, and the next checkpoint deletes
        the partial files."""
        folder = self.run_dir / CHECKPOINTS
        folder.mkdir(exist_ok=True)
        steps = int(self.num_timesteps)
        written: list[Path] = []
        try:
            model = _new_file(folder, f"model_{steps}_", ".zip", written)
            self.model.save(model)
            buffer = None
            if isinstance(self.model, OffPolicyAlgorithm):
                buffer = _new_file(folder, f"replay_buffer_{steps}_", ".pkl", written)
                self.model.save_replay_buffer(buffer)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        pointer = {"env_steps": steps, "model": model.name, "replay_buffer": buffer.name if buffer else None}
        _write_json(folder / LATEST, pointer)
        for path in folder.iterdir():
            if path.name not in (LATEST, model.name, buffer.name if buffer else None):
                path.unlink()

    def _on_step(self) -> bool:
        # the last evaluation waits for the end of training (off-policy algorithms still
        # take their gradient steps after this call), so it judges the saved model
        if self.next_eval <= self.num_timesteps < self.model._total_timesteps:
            self.evaluate()
            self.next_eval += self.config.eval_freq
        if self.num_timesteps >= self.next_checkpoint:
            self.checkpoint()
            self.next_checkpoint += self.config.checkpoint_freq
        return True

    def _on_training_end(self) -> None:
        if self.progress["points"][-1]["env_steps"] != self.num_timesteps:
            self.evaluate()
        self.checkpoint()


def train(config: RLConfig) -> Path:
    """Train (or resume) one run; returns its directory."""
    hp = load_hyperparams(config.algo, config.env_id, config.obs_mode, config.hyperparams)
    total = int(config.steps or hp["n_timesteps"])
    env_kwargs = env_kwargs_for(config, hp)
    run_dir = Path(config.out)
    checkpoint = latest_checkpoint(run_dir) if config.resume else None
    if config.resume and checkpoint is None:
        raise FileNotFoundError(f"cannot resume: {run_dir / CHECKPOINTS / LATEST} does not exist; train without --resume first")
    if not config.resume and (run_dir / PROGRESS).exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")

    env = make_vec_env(config.env_id, n_envs=int(hp.get("n_envs", 1)), seed=config.seed, env_kwargs=env_kwargs)
    eval_env = gymnasium.make(config.env_id, **env_kwargs)
    tb = str(run_dir / "tb")
    if checkpoint is not None:
        model_file, buffer = checkpoint
        model = ALGOS[config.algo].load(model_file, env=env, tensorboard_log=tb)
        if isinstance(model, OffPolicyAlgorithm) and buffer is not None:
            model.load_replay_buffer(buffer)
        progress = json.loads((run_dir / PROGRESS).read_text())
        progress["points"] = [p for p in progress["points"] if p["env_steps"] <= model.num_timesteps]
        print(f"resuming {run_dir} at {model.num_timesteps} env steps")
    else:
        model = build_model(config, hp, env, tensorboard_log=tb)
        progress = {"points": []}
    progress.update(
        algo=config.algo, env_id=config.env_id, obs_mode=config.obs_mode, her=isinstance(getattr(model, "replay_buffer", None), HerReplayBuffer),
        seed=config.seed, total_steps=total, finished=False,
    )
    run_dir.mkdir(parents=True, exist_ok=True)  # once the env and the model are built: a refused run writes nothing
    _write_json(run_dir / CONFIG, {"config": dataclasses.asdict(config), "hyperparams": hp, "env_kwargs": env_kwargs, "armworld_version": version("armworld")})

    callback = ProgressCallback(run_dir, progress, eval_env, config)
    remaining = total - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=callback, progress_bar=config.progress_bar, reset_num_timesteps=not config.resume, tb_log_name="run")
    _save_model(model, run_dir / MODEL)
    progress["finished"] = True
    _write_json(run_dir / PROGRESS, progress)
    env.close()
    eval_env.close()
    return run_dir
