"""Is the goal-image energy good enough to plan with, before any predictor is trained?

A world-model agent minimises ``L1(encode(predicted next frame), encode(goal image))``.
Its success is bounded by two things: how well the predictor imagines the next frame,
and whether the energy itself leads toward the goal. This script measures the second
alone by replacing the predictor with the simulator: at each step it tries
``--candidates`` random actions in the real env (restoring the exact state after each),
renders what each one leads to, and executes the one whose frame is closest to the goal
image under the chosen energy. A greedy planner with perfect dynamics, so a failure is
the energy's fault.

Energies: ``pixels`` (L1 on raw uint8 frames), ``encoder:PATH`` (the encoder of an
``armworld pretrain`` run or of a world model, compared token by token as the planner
does), and ``distance`` (the true goal distance: the sanity check, ~100%).

    python examples/energy_oracle.py --env armworld/FrankaReach-v0 --camera top \\
        --energy distance pixels encoder:runs/enc --episodes 20
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import gymnasium
import numpy as np
import torch

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import eval_seed, wilson_interval
from armworld.envs.conventions import SUCCESS_THRESHOLD
from armworld.worldmodel.checkpoint import load_encoder

Features = Callable[[np.ndarray], torch.Tensor]  # uint8 [K, H, W, 3] -> [K, ...]


def make_features(energy: str) -> Features:
    """The feature map behind an energy name (see the module docstring)."""
    kind, _, path = energy.partition(":")
    if kind == "pixels":
        return lambda frames: torch.from_numpy(frames).float()
    if kind == "encoder":
        encoder = load_encoder(path)

        def features(frames: np.ndarray) -> torch.Tensor:
            with torch.inference_mode():
                return encoder(torch.from_numpy(frames)[None])[0]

        return features
    raise ValueError(f"unknown energy {energy!r}: use pixels, encoder:PATH or distance")


def greedy_episode(env: gymnasium.Env, camera: str, features: Features | None, candidates: int, seed: int) -> float:
    """One episode of greedy one-step search through the simulator; the final goal distance (m)."""
    unwrapped = env.unwrapped
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    goal = None if features is None else features(unwrapped.goal_image(camera)[None])
    for _ in range(env.spec.max_episode_steps):
        actions = rng.uniform(-1.0, 1.0, (candidates, env.action_space.shape[0]))
        actions[:, 3:-1] = 0.0  # orientation held
        actions[0, :-1] = 0.0  # staying put is always a candidate
        state = unwrapped.get_sim_state()
        frames, distances = [], []
        for action in actions:
            unwrapped.set_sim_state(state)
            tried, *_ = unwrapped.step(action)
            frames.append(tried[f"rgb_{camera}"])
            distances.append(np.linalg.norm(tried["achieved_goal"] - tried["desired_goal"]))
        unwrapped.set_sim_state(state)
        if features is None:
            energies = np.array(distances)
        else:
            energies = (features(np.stack(frames)) - goal).abs().flatten(1).mean(1).numpy()
        obs, *_ = env.step(actions[int(np.argmin(energies))])
    return float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="armworld/FrankaReach-v0")
    parser.add_argument("--camera", default="front")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--energy", nargs="+", default=["pixels"], help="pixels, encoder:PATH, distance")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=32, help="random actions tried per step")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (agents/README.md): episodes never meet training data")
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = gymnasium.make(args.env, obs_mode="pixels_state", image_size=args.image_size, cameras=[args.camera])
    results = {}
    for energy in args.energy:
        features = None if energy == "distance" else make_features(energy)
        finals = [
            greedy_episode(env, args.camera, features, args.candidates, eval_seed(args.seed, i)) for i in range(args.episodes)
        ]
        successes = int(np.sum(np.array(finals) < SUCCESS_THRESHOLD))
        results[energy] = {
            "success_rate": successes / args.episodes,
            "success_ci": wilson_interval(successes, args.episodes),
            "mean_final_distance": float(np.mean(finals)),
        }
        print(energy, json.dumps(results[energy]), flush=True)
    summary = {"env": args.env, "camera": args.camera, "episodes": args.episodes, "candidates": args.candidates}
    print(json.dumps({**summary, "results": results}, indent=2))


if __name__ == "__main__":
    main()
