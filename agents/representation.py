"""Scoring a representation for planning: is the distance to a goal image in this latent
space one a planner can descend?

A world-model agent minimises ``L1(latent of an imagined frame, latent of the goal image)``
(mean over tokens and dims). Whether that can succeed depends on the predictor and on the
representation; the scores here judge the representation alone, on one env and camera:

- :func:`oracle`: planning with perfect dynamics. At every control step, ``candidates``
  smooth random action sequences of ``horizon`` steps are simulated in the env itself from
  a snapshot of its state, the camera is rendered at the end of each, and the first action
  of the sequence whose frame is closest to the goal image is executed. Success rate over
  evaluation-seed episodes, with a Wilson 95% interval. A failure is the representation's
  fault (or the search's: ``distance`` is its sanity check).
- :func:`rank_correlation`: along noisy-expert episodes, the Spearman correlation over time
  between a frame's latent distance to the goal image and the true goal distance
  (``|achieved_goal - desired_goal|``); the mean over episodes.
- :func:`probes`: ridge regression from a frame's flattened latent to the TCP position
  (``proprio[:3]``) and, for tasks with a cube, the cube position (``achieved_goal``),
  fitted on the frames of the first half of the noisy-expert episodes and scored (R^2) on
  the other half.

Representations by name (:func:`load_representation`): ``pixels`` (raw frames scaled to
[0, 1]), ``distance`` (the true goal distance; the oracle only), ``encoder:PATH`` (the
encoder of an ``armworld pretrain`` run or of a world model), ``wm:PATH`` and ``wm:default``
(a world model's encoder). :func:`score` runs all three scores for a list of names;
:func:`write_scores` writes ``scores.json``, ``scores.md`` and ``scores.png``
(``armworld score``).

Frames are rendered by a renderer of the scorer's own on the env's model and data, so the
env runs in ``obs_mode="state"`` and simulated steps render nothing. Sim-state snapshots
hold no commanded orientation, so every candidate holds the orientation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
import torch
from scipy.stats import spearmanr

from armworld.agents.evaluate import EPISODES_PER_SEED_MAX, eval_seed, wilson_interval
from armworld.agents.loading import model_path, resolve_device
from armworld.agents.scripted import make_expert
from armworld.envs.conventions import SUCCESS_THRESHOLD
from armworld.envs.rendering import CameraRenderer
from armworld.worldmodel.checkpoint import load_encoder

NAMES = "pixels, distance, encoder:PATH, wm:PATH or wm:default"
CUBE_TASKS = ("push", "pick_place", "stack")  # tasks whose achieved goal is a cube's position
EXPERT_NOISE = 0.2  # std of the noise on the expert's xyz actions (action units); at 0.5 it mostly misses the cube
JITTER = 0.3  # std of the per-step noise around each candidate sequence's mean action

Latents = Callable[[np.ndarray], torch.Tensor]
"""uint8 frames ``[M, H, W, 3]`` -> float latents ``[M, N, D]``."""


@dataclass(frozen=True)
class Representation:
    """A named way to compare frames; ``latents`` is None for ``distance`` (the true goal distance)."""

    name: str
    latents: Latents | None


def _pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[M, H, W, 3]`` -> ``[M, H * W, 3]`` in [0, 1]: each pixel a token."""
    return torch.from_numpy(frames).flatten(1, 2).float() / 255.0


def load_representation(name: str, device: str | torch.device | None = None) -> Representation:
    """The representation called ``name`` (see the module docstring). An encoder runs on
    ``device`` (:func:`armworld.agents.loading.resolve_device`: CUDA when available, else the
    CPU) and its latents come back to the CPU, one batch of frames at a time. Raises
    ``ValueError`` for an unknown name or device and ``CheckpointError`` for a path that
    holds no checkpoint."""
    kind, _, path = name.partition(":")
    if name in ("pixels", "distance"):
        return Representation(name, _pixels if name == "pixels" else None)
    if kind in ("encoder", "wm") and path:
        target = resolve_device(device)
        encoder = load_encoder(path if kind == "encoder" else model_path(name)).to(target)

        @torch.inference_mode()
        def latents(frames: np.ndarray) -> torch.Tensor:
            return encoder(torch.from_numpy(frames)[None].to(target))[0].cpu()

        return Representation(name, latents)
    raise ValueError(f"unknown representation {name!r}; use {NAMES}")


def energies(representation: Representation, frames: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """L1 between each frame's latent and the goal image's, mean over tokens and dims, as the
    planner's energy: frames uint8 ``[M, H, W, 3]``, goal ``[H, W, 3]`` -> ``[M]``."""
    z_goal = representation.latents(goal[None])
    return (representation.latents(frames) - z_goal).abs().mean(dim=(-1, -2)).numpy()


class Camera:
    """Renders ``camera`` of ``env`` at ``size`` px, whatever the env's obs mode; ``goal()``
    is its goal image (the solved scene)."""

    def __init__(self, env: gymnasium.Env, camera: str, size: int) -> None:
        self.env, self.camera, self.size = env.unwrapped, camera, size
        self.renderer = CameraRenderer(self.env.model, size, size)

    def frame(self) -> np.ndarray:
        """uint8 ``[size, size, 3]`` of the current state."""
        return self.renderer.render(self.env.data, self.camera)

    def goal(self) -> np.ndarray:
        """uint8 ``[size, size, 3]`` of the solved scene."""
        return self.env.goal_image(self.camera, self.size)

    def close(self) -> None:
        self.renderer.close()


def goal_distance(obs: dict[str, np.ndarray]) -> float:
    """``|achieved_goal - desired_goal|`` (m)."""
    return float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))


# -- the oracle: planning through the simulator ------------------------------------------


def sample_sequences(
    rng: np.random.Generator, previous: np.ndarray, gripper: float, candidates: int
) -> np.ndarray:
    """Candidate action sequences ``[K, H, A]`` in [-1, 1]: one uniform random action per
    sequence with Gaussian jitter (std ``JITTER``) at each step, so each sequence heads one
    way; candidate 0 is ``previous`` (the last best sequence ``[H, A]``) shifted by one step,
    candidate 1 holds still with the gripper at ``gripper`` (-1 open, 1 closed). Orientation
    deltas are zero."""
    horizon, action_dim = previous.shape
    means = rng.uniform(-1.0, 1.0, (candidates, 1, action_dim))
    sequences = np.clip(means + JITTER * rng.normal(size=(candidates, horizon, action_dim)), -1.0, 1.0)
    sequences[0] = np.concatenate([previous[1:], previous[-1:]])
    sequences[1] = 0.0
    sequences[1, :, -1] = gripper
    sequences[:, :, 3:-1] = 0.0
    return sequences.astype(np.float32)


def oracle_episode(
    env: gymnasium.Env, camera: Camera, representation: Representation, candidates: int, horizon: int, seed: int
) -> float:
    """One episode of receding-horizon search through the simulator toward the goal image,
    for the env's step budget; returns the final goal distance (m)."""
    sim = env.unwrapped
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    goal = camera.goal()
    best = np.zeros((horizon, env.action_space.shape[0]), dtype=np.float32)
    for _ in range(env.spec.max_episode_steps):
        sequences = sample_sequences(rng, best, 2.0 * obs["proprio"][-1] - 1.0, candidates)
        snapshot = sim.get_sim_state()
        frames, distances = [], []
        for sequence in sequences:
            sim.set_sim_state(snapshot)
            for action in sequence:
                reached, *_ = sim.step(action)
            distances.append(goal_distance(reached))
            if representation.latents is not None:
                frames.append(camera.frame())
        sim.set_sim_state(snapshot)
        scores = np.array(distances) if representation.latents is None else energies(representation, np.stack(frames), goal)
        best = sequences[int(np.argmin(scores))]
        obs, *_ = env.step(best[0])
    return goal_distance(obs)


def oracle(
    env: gymnasium.Env, camera: Camera, representation: Representation, episodes: int, candidates: int = 32,
    horizon: int = 3, seed: int = 0,
) -> dict:
    """Success of :func:`oracle_episode` over ``episodes`` episodes of evaluation seed ``seed``:
    ``success_rate``, ``success_ci`` (Wilson 95%), ``successes``, ``episodes``,
    ``mean_final_distance`` (m), and the search's ``candidates`` and ``horizon``."""
    finals = np.array(
        [oracle_episode(env, camera, representation, candidates, horizon, eval_seed(seed, i)) for i in range(episodes)]
    )
    successes = int(np.sum(finals < SUCCESS_THRESHOLD))
    return {
        "success_rate": successes / episodes, "success_ci": wilson_interval(successes, episodes),
        "successes": successes, "episodes": episodes, "mean_final_distance": float(finals.mean()),
        "candidates": candidates, "horizon": horizon,
    }


# -- noisy-expert episodes: rank correlation and probes -----------------------------------


@dataclass
class Episode:
    """One noisy-expert episode, every step before each action: ``frames`` uint8
    ``[T, H, W, 3]``, ``goal`` the goal image ``[H, W, 3]``, ``tcp`` ``[T, 3]`` and
    ``achieved`` ``[T, 3]`` (m), ``distance`` ``[T]`` (m, to the desired goal)."""

    frames: np.ndarray
    goal: np.ndarray
    tcp: np.ndarray
    achieved: np.ndarray
    distance: np.ndarray


def collect_expert_episodes(
    env: gymnasium.Env, camera: Camera, episodes: int, first_seed: int, noise: float = EXPERT_NOISE
) -> list[Episode]:
    """``episodes`` episodes of the task's scripted expert with Gaussian noise ``noise`` on its
    xyz actions, reset with seeds ``first_seed + i``, each for the env's step budget."""
    result = []
    for i in range(episodes):
        obs, _ = env.reset(seed=first_seed + i)
        expert = make_expert(env, noise=noise, seed=first_seed + i)
        expert.reset()
        steps = []
        for _ in range(env.spec.max_episode_steps):
            steps.append((camera.frame(), obs["proprio"][:3], obs["achieved_goal"], goal_distance(obs)))
            obs, *_ = env.step(expert.act(obs))
        frames, tcp, achieved, distance = (np.stack(column) for column in zip(*steps))
        result.append(Episode(frames, camera.goal(), tcp, achieved, distance))
    return result


def bootstrap_interval(
    per_episode: np.ndarray, statistic: Callable[[np.ndarray], float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ``statistic(per_episode[resampled episodes])``, episodes
    (rows of ``per_episode``) drawn with replacement."""
    rng = np.random.default_rng(seed)
    draws = [statistic(per_episode[rng.integers(0, len(per_episode), len(per_episode))]) for _ in range(resamples)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def rank_correlation(representation: Representation, episodes: list[Episode]) -> dict:
    """Spearman correlation over each episode's steps between the latent distance to the goal
    image and the true goal distance: ``mean``, ``ci`` (bootstrap over episodes, 95%),
    ``episodes`` (those where the true distance varies; the others have no ranking)."""
    rhos = np.array([
        spearmanr(energies(representation, e.frames, e.goal), e.distance).statistic
        for e in episodes if np.ptp(e.distance) > 0
    ])
    rhos = np.nan_to_num(rhos)  # a latent distance that never changes ranks nothing: 0
    if len(rhos) == 0:
        return {"mean": None, "ci": None, "episodes": 0}
    return {"mean": float(rhos.mean()), "ci": bootstrap_interval(rhos, np.mean), "episodes": len(rhos)}


RIDGE_SCALES = 10.0 ** np.arange(-6, 3)  # ridge penalties tried, times the mean squared norm of a centred feature row


def ridge_predictions(x_fit: np.ndarray, y_fit: np.ndarray, x_eval: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """Closed-form ridge regression with an intercept, in its dual form (features outnumber
    frames): fitted on ``x_fit [n, F]``, ``y_fit [n, k]``, predicting for ``x_eval [m, F]``
    with each of ``penalties [L]``; returns ``[L, m, k]``. In float64 torch, which keeps to
    torch's thread count."""
    x_fit, y_fit, x_eval = (torch.as_tensor(a, dtype=torch.float64) for a in (x_fit, y_fit, x_eval))
    x_mean, y_mean = x_fit.mean(0), y_fit.mean(0)
    centred = x_fit - x_mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centred @ centred.T)  # the n x n Gram matrix
    projected = eigenvectors.T @ (y_fit - y_mean)
    cross = (x_eval - x_mean) @ centred.T @ eigenvectors  # [m, n]
    return torch.stack([cross @ (projected / (eigenvalues + penalty)[:, None]) + y_mean for penalty in penalties]).numpy()


def probe(features: list[np.ndarray], targets: list[np.ndarray]) -> dict:
    """Ridge probe from per-episode ``features [T, F]`` to ``targets [T, k]``: fitted on the
    first half of the episodes, with the penalty chosen by 2-fold validation on them (their
    frames split in two contiguous halves, whole episodes when there are several), scored on
    the rest: ``r2`` (pooled over the k outputs), ``ci`` (bootstrap over test episodes, 95%),
    ``rmse_m`` (root mean squared error per frame, m), ``fit_episodes``, ``test_episodes``."""
    split = len(features) // 2
    if split == 0:
        raise ValueError(f"a probe needs at least 2 episodes (one to fit, one to test), got {len(features)}")
    x_fit, y_fit = np.concatenate(features[:split]), np.concatenate(targets[:split])
    penalties = RIDGE_SCALES * np.mean(np.sum((x_fit - x_fit.mean(0)) ** 2, axis=1))
    half = len(x_fit) // 2
    folds = [(slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))]
    errors = sum(
        ((ridge_predictions(x_fit[fit], y_fit[fit], x_fit[held], penalties) - y_fit[held]) ** 2).sum(axis=(1, 2))
        for fit, held in folds
    )
    penalty = penalties[int(np.argmin(errors))]
    test_targets = targets[split:]
    predictions = ridge_predictions(x_fit, y_fit, np.concatenate(features[split:]), np.array([penalty]))[0]
    mean = np.concatenate(test_targets).mean(0)
    ends = np.cumsum([len(t) for t in test_targets])[:-1]
    sums = np.array([  # per test episode: squared error, squared deviation from the test mean
        [((p - t) ** 2).sum(), ((t - mean) ** 2).sum()] for p, t in zip(np.split(predictions, ends), test_targets)
    ])
    r2 = lambda s: float(1.0 - s[:, 0].sum() / s[:, 1].sum())  # noqa: E731
    return {
        "r2": r2(sums), "ci": bootstrap_interval(sums, r2), "rmse_m": float(np.sqrt(sums[:, 0].sum() / len(predictions))),
        "fit_episodes": split, "test_episodes": len(test_targets),
    }


def probes(representation: Representation, episodes: list[Episode], cube: bool) -> dict:
    """:func:`probe` of the TCP position and, when ``cube``, of the cube position
    (``achieved_goal``) from flattened latents ``[T, N * D]``."""
    features = [representation.latents(e.frames).flatten(1).numpy() for e in episodes]
    result = {"tcp": probe(features, [e.tcp for e in episodes])}
    if cube:
        result["cube"] = probe(features, [e.achieved for e in episodes])
    return result


# -- all scores, and the report ----------------------------------------------------------


def score(
    names: list[str], env_id: str, camera: str = "top", image_size: int = 64, episodes: int = 10,
    candidates: int = 32, horizon: int = 3, expert_episodes: int = 40, expert_noise: float = EXPERT_NOISE,
    seed: int = 0, randomization: str | None = None, max_episode_steps: int | None = None,
    progress: Callable[[str], None] = lambda line: None, device: str | torch.device | None = None,
) -> dict:
    """Every score of every representation in ``names`` on ``env_id`` seen by ``camera`` at
    ``image_size`` px: the oracle over ``episodes`` episodes of evaluation seed ``seed``
    (``candidates`` sequences of ``horizon`` steps per action); rank correlation and probes
    over ``expert_episodes`` episodes of the expert with noise ``expert_noise``, reset with
    the next evaluation seeds of ``seed`` (``distance`` has only the oracle), in scenes drawn
    from the ``randomization`` preset at every reset (None: the plain scene).
    ``max_episode_steps`` replaces the env's step budget. ``progress`` is called with a line
    per finished representation. Encoders run on ``device`` (default: CUDA when available).
    Every name is loaded before any work starts, so a bad one fails fast."""
    if episodes < 1 or candidates < 2 or horizon < 1 or expert_episodes < 2:
        raise ValueError("need episodes >= 1, candidates >= 2, horizon >= 1 and expert episodes >= 2")
    if episodes + expert_episodes > EPISODES_PER_SEED_MAX:
        raise ValueError(f"episodes and expert episodes share one evaluation seed: at most {EPISODES_PER_SEED_MAX} together")
    representations = [load_representation(name, device) for name in names]
    env = gymnasium.make(env_id, obs_mode="state", randomization=randomization, max_episode_steps=max_episode_steps)
    view = Camera(env, camera, image_size)
    try:
        expert = collect_expert_episodes(env, view, expert_episodes, eval_seed(seed, episodes), expert_noise)
        cube = env.unwrapped.task in CUBE_TASKS
        results = {}
        for representation in representations:
            result = {"oracle": oracle(env, view, representation, episodes, candidates, horizon, seed)}
            if representation.latents is not None:
                result["rank_correlation"] = rank_correlation(representation, expert)
                result["probes"] = probes(representation, expert, cube)
            results[representation.name] = result
            progress(f"{representation.name}: {json.dumps(result)}")
    finally:
        view.close()
        env.close()
    return {
        "env": env_id, "camera": camera, "image_size": image_size, "seed": seed, "randomization": randomization,
        "step_budget": env.spec.max_episode_steps, "expert_episodes": expert_episodes,
        "expert_noise": expert_noise, "results": results,
    }


def table(scores: dict) -> tuple[list[str], dict[str, list[tuple[float, tuple[float, float]] | None]]]:
    """The column titles of a :func:`score` result and, per representation, each column's
    value and 95% interval (None where the score does not apply)."""
    targets = ["tcp", "cube"] if any("cube" in r.get("probes", {}) for r in scores["results"].values()) else ["tcp"]
    titles = ["oracle success", "rank correlation", *(f"{target.replace('tcp', 'TCP')} probe R^2" for target in targets)]
    rows = {}
    for name, result in scores["results"].items():
        rank, probed = result.get("rank_correlation", {}), result.get("probes", {})
        rows[name] = [
            (result["oracle"]["success_rate"], result["oracle"]["success_ci"]),
            (rank["mean"], rank["ci"]) if rank.get("mean") is not None else None,
            *((probed[t]["r2"], probed[t]["ci"]) if t in probed else None for t in targets),
        ]
    return titles, rows


def write_scores(scores: dict, out: str | Path) -> tuple[Path, Path, Path]:
    """Write ``scores.json`` (``scores`` as is), ``scores.md`` (representation x score, values
    with 95% intervals) and ``scores.png`` (a bar per score and representation, interval as
    error bars) into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    titles, rows = table(scores)
    oracle_settings = next(iter(scores["results"].values()))["oracle"]
    (out / "scores.json").write_text(json.dumps(scores, indent=1))
    lines = [
        f"# Representations for planning: {scores['env']}, camera `{scores['camera']}`, {scores['image_size']} px"
        + (f", scenes randomised (`{scores['randomization']}`)" if scores.get("randomization") else ""),
        "",
        f"Oracle: search through the simulator, {oracle_settings['candidates']} candidate sequences of "
        f"{oracle_settings['horizon']} steps per action, {oracle_settings['episodes']} episodes of evaluation seed "
        f"{scores['seed']}, step budget {scores['step_budget']}, Wilson 95% intervals. Rank correlation and probes: "
        f"{scores['expert_episodes']} expert episodes with noise {scores['expert_noise']}, bootstrap 95% intervals "
        "over episodes.",
        "",
        "| representation | " + " | ".join(titles) + " |",
        "|---|" + "---:|" * len(titles),
    ]
    for name, cells in rows.items():
        text = ["-" if c is None else f"{c[0]:.2f} [{c[1][0]:.2f}, {c[1][1]:.2f}]" for c in cells]
        lines.append(f"| `{name}` | " + " | ".join(text) + " |")
    (out / "scores.md").write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(2.0 + 0.5 * len(titles) * len(rows), 3.4), dpi=110)
    width = 0.8 / len(rows)
    for k, (name, cells) in enumerate(rows.items()):
        shown = [(j, c) for j, c in enumerate(cells) if c is not None]
        x = np.array([j for j, _ in shown]) + (k - (len(rows) - 1) / 2) * width
        values = np.array([c[0] for _, c in shown])
        errors = np.abs(np.array([c[1] for _, c in shown]).reshape(-1, 2).T - values)
        ax.bar(x, values, width, yerr=errors, capsize=2, label=name, color=f"C{k}")
    ax.set_xticks(range(len(titles)), titles, fontsize=7)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set(ylabel="score (1 is best)", title=f"{scores['env']}, camera {scores['camera']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "scores.png")
    plt.close(fig)
    return out / "scores.json", out / "scores.md", out / "scores.png"
