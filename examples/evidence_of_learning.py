"""Evidence that the world model learns: the figures and numbers of worldmodel/README.md.

Reads an ``armworld pretrain`` run, an ``armworld train`` run and their datasets, and
writes to ``--out``:

- ``pretrain_loss.png``: the JEPA loss (train, smoothed, and validation) against steps;
- ``predictor_l1.png``: the predictor's validation L1 (teacher forcing and rollout)
  against the copy-the-last-frame baseline, against steps;
- ``rollout_horizon.png``: the L1 of an autoregressive rollout from one frame, with the
  true actions, against the horizon, next to the copy-the-first-frame baseline;
- ``evidence.json``: the numbers behind the plots, plus three planner-facing checks:
  ``rollout[<file>]["true_action_beats_other"]`` (for held-out transitions, how often the
  true action's predicted latent is closer to the true next latent than that of another
  action from the data), ``reach_energy`` (in fresh FrankaReach episodes, the rank correlation between the
  planner's energy to the goal image and the true distance to the goal after a candidate
  one-step move), and ``goal_alignment`` (along noisy-expert FrankaReach episodes, the rank
  correlation between the latent L1 to the goal image and the true distance to the goal,
  for the world model's encoder, the ``--encoder`` run's and raw pixels: ``armworld
  score``'s rank correlation, from ``armworld.agents.representation``).

Everything uses the camera the world model was trained on.

    python examples/evidence_of_learning.py --encoder runs/enc --world-model runs/wm \\
        --data runs/data/reach.h5 runs/data/push.h5 --out worldmodel/figures
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import spearmanr
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.representation import Camera, collect_expert_episodes, load_representation, rank_correlation
from armworld.datasets.clips import ClipDataset
from armworld.envs.conventions import MAX_POS_DELTA
from armworld.agents.loading import model_settings
from armworld.worldmodel import load_world_model


def scalars(run: str, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of a TensorBoard scalar over every event file of ``run``."""
    steps: dict[int, float] = {}
    for events in sorted(Path(run).glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags()["scalars"]:
            steps.update({e.step: e.value for e in acc.Scalars(tag)})  # a resumed run overwrites
    keys = sorted(steps)
    return np.array(keys), np.array([steps[k] for k in keys])


def smooth(values: np.ndarray, window: int = 20) -> np.ndarray:
    """Running mean over ``window`` points (shorter at the start)."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    n = np.minimum(np.arange(1, len(values) + 1), window)
    return (c[1:] - c[1:][np.arange(len(values)) - n + 1] + values[np.arange(len(values)) - n + 1]) / n


def plot_pretraining(run: str, out: Path) -> dict:
    s, v = scalars(run, "train/loss")
    vs, vv = scalars(run, "valid/loss")
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    ax.plot(s, v, color="C0", alpha=0.25, lw=0.8)
    ax.plot(s, smooth(v), color="C0", label="train (running mean)")
    ax.plot(vs, vv, "o-", color="C1", label="validation")
    ax.set(xlabel="step", ylabel="L1 on masked tokens", title="JEPA pretraining (tiny encoder)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pretrain_loss.png")
    plt.close(fig)
    return {"steps": int(s[-1]), "train_loss_first": float(smooth(v)[9]), "train_loss_last": float(smooth(v)[-1]),
            "valid": {int(a): float(b) for a, b in zip(vs, vv)}}


def plot_predictor(run: str, out: Path) -> dict:
    tags = {"valid/loss_teacher": "predictor, teacher forcing", "valid/loss_rollout": "predictor, 2-step rollout",
            "valid/copy_last_baseline": "copy the last frame"}
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    result = {}
    for tag, label in tags.items():
        s, v = scalars(run, tag)
        ax.plot(s, v, "o-" if "copy" not in tag else "s--", label=label)
        result[tag] = {int(a): float(b) for a, b in zip(s, v)}
    ax.set(xlabel="step", ylabel="validation L1 (next-frame latent)", title="Action-conditioned predictor")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "predictor_l1.png")
    plt.close(fig)
    return result


@torch.no_grad()
def rollout_errors(wm, data: str, camera: str, horizon: int, clips: int, seed: int) -> dict:
    """Mean rollout and copy-first-frame L1 per horizon step, and the true-action ranking."""
    ds = ClipDataset([data], clip_len=horizon + 1, split="valid", camera=camera)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds), size=min(clips, len(ds)), replace=False)
    batch = [ds[int(i)] for i in idx]
    frames = torch.stack([b["frames"] for b in batch])
    proprio = torch.stack([b["proprio"] for b in batch])
    actions = torch.stack([b["actions"] for b in batch])
    z = wm.encode(frames)  # [B, H+1, N, D]
    ctx = wm.context(z[:, :1], proprio[:, :1])
    imagined = wm.rollout(ctx, actions, proprio=proprio[:, :-1])  # [B, H, N, D]
    model = (imagined - z[:, 1:]).abs().mean(dim=(0, 2, 3))
    copy = (z[:, :1] - z[:, 1:]).abs().mean(dim=(0, 2, 3))
    # One-step ranking: the true action against every other clip's first action, at this clip's state.
    B = len(batch)
    wins = []
    for i in range(B):
        cand = actions[:, :1].clone()  # [B, 1, 7]: index i is the true action
        one = wm.context(z[i : i + 1, :1], proprio[i : i + 1, :1])
        pred = wm.rollout(one, cand, proprio=proprio[i : i + 1, :1].expand(B, -1, -1))[:, 0]
        energy = (pred - z[i, 1]).abs().mean(dim=(-1, -2))
        others = torch.cat([energy[:i], energy[i + 1 :]])
        wins.append(float((energy[i] < others).float().mean()))
    return {"horizon": list(range(1, horizon + 1)), "model": model.tolist(), "copy_first": copy.tolist(),
            "true_action_beats_other": float(np.mean(wins)), "clips": B}


def plot_rollouts(results: dict[str, dict], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=110)
    for k, (name, r) in enumerate(results.items()):
        ax.plot(r["horizon"], r["model"], "o-", color=f"C{k}", label=f"{name}: rollout")
        ax.plot(r["horizon"], r["copy_first"], "s--", color=f"C{k}", alpha=0.6, label=f"{name}: copy first frame")
    ax.set(xlabel="horizon (steps of 0.1 s)", ylabel="validation L1 to true latent", title="Rollout error vs horizon")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "rollout_horizon.png")
    plt.close(fig)


@torch.no_grad()
def reach_energy(wm, camera: str, episodes: int, candidates: int, seed: int) -> dict:
    """Energy to the goal image vs the true goal distance after one-step xyz moves in FrankaReach."""
    env = gymnasium.make("armworld/FrankaReach-v0", obs_mode="pixels_state", image_size=64, cameras=[camera])
    rng = np.random.default_rng(seed)
    correlations, improves = [], []
    for e in range(episodes):
        obs, _ = env.reset(seed=seed + e)
        goal = torch.from_numpy(env.unwrapped.goal_image(camera, 64))[None, None]
        z = wm.encode(torch.from_numpy(obs[f"rgb_{camera}"])[None, None])
        z_goal = wm.encode(goal)[:, -1]
        proprio = torch.from_numpy(obs["proprio"]).float()[None, None]
        deltas = np.zeros((candidates, 1, 7), dtype=np.float32)
        deltas[:, 0, :3] = rng.uniform(-MAX_POS_DELTA, MAX_POS_DELTA, size=(candidates, 3))
        pred = wm.rollout(wm.context(z, proprio), torch.from_numpy(deltas))[:, 0]
        energy = (pred - z_goal).abs().mean(dim=(-1, -2)).numpy()
        distance = np.linalg.norm(obs["achieved_goal"] + deltas[:, 0, :3] - obs["desired_goal"], axis=-1)
        correlations.append(spearmanr(energy, distance).statistic)
        now = np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"])
        improves.append(bool(distance[np.argmin(energy)] < now))
    env.close()
    return {"episodes": episodes, "candidates": candidates, "spearman_mean": float(np.mean(correlations)),
            "argmin_energy_moves_closer": float(np.mean(improves))}


def goal_alignment(representations: list[str], camera: str, episodes: int, seed: int) -> dict:
    """Does distance in latent space track distance in the world? Along FrankaReach episodes
    driven by the expert with noise 0.5, the rank correlation over time between a frame's
    latent L1 to the goal image's and the hand's true distance to the goal (mean over
    episodes; ``armworld score``'s rank correlation), for each of ``representations``."""
    env = gymnasium.make("armworld/FrankaReach-v0", obs_mode="state")
    view = Camera(env, camera, 64)
    runs = collect_expert_episodes(env, view, episodes, first_seed=seed, noise=0.5)
    view.close()
    env.close()
    return {"episodes": episodes, **{name: rank_correlation(load_representation(name), runs)["mean"] for name in representations}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", required=True, help="armworld pretrain run (its loss curve; its encoder in the goal alignment)")
    parser.add_argument("--world-model", required=True, help="armworld train run")
    parser.add_argument("--data", nargs="+", required=True, help="datasets whose validation split is used")
    parser.add_argument("--out", default="worldmodel/figures")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--clips", type=int, default=64, help="validation clips per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reach-seed", type=int, default=5_000_000, help="first env seed of the energy check")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    evidence = {"pretraining": plot_pretraining(args.encoder, out), "predictor": plot_predictor(args.world_model, out)}
    wm = load_world_model(args.world_model)
    camera, _ = model_settings(args.world_model)
    rollouts = {Path(d).stem: rollout_errors(wm, d, camera, args.horizon, args.clips, args.seed) for d in args.data}
    plot_rollouts(rollouts, out)
    evidence["rollout"] = rollouts
    evidence["reach_energy"] = reach_energy(wm, camera, episodes=20, candidates=128, seed=args.reach_seed)
    representations = [f"wm:{args.world_model}", f"encoder:{args.encoder}", "pixels"]
    evidence["goal_alignment"] = goal_alignment(representations, camera, episodes=10, seed=7_000_000)
    (out / "evidence.json").write_text(json.dumps(evidence, indent=1))
    print(json.dumps({k: evidence[k] for k in ("rollout", "reach_energy", "goal_alignment")}, indent=1))


if __name__ == "__main__":
    main()
