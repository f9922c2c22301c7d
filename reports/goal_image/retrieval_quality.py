"""Does a latent search of the recorded episodes find a push that matches the task?

For evaluation episodes of FrankaPush, three searches pick a recorded stretch (i, j) from
the current image toward the goal image, and the cube's recorded positions at its ends are
compared with the episode's cube and goal (the simulator's state, read here only to judge
the searches):

- ``stretch``: the agent's search (armworld.agents.retrieval): min over e, i < j of
  L1(z[e, i], z_now) + L1(z[e, j], z_goal);
- ``first_frame``: the episode whose first frame is nearest the current image (the arm starts
  near its rest pose in every episode, so only the cube should differ), to its end;
- ``shortlist_K``: among the K start frames nearest the current image, the stretch whose end
  is nearest the goal image.

For scale: the episode whose true cube positions match best (start + nearest frame to the
goal), and a random recorded episode (its first and last cube positions, library mean).

    python reports/goal_image/retrieval_quality.py --repr wm:default --data push.h5 --episodes 10
"""

from __future__ import annotations

import argparse
import json

import gymnasium
import numpy as np
import torch

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import eval_seed
from armworld.agents.loading import model_path
from armworld.agents.retrieval import EpisodeLibrary, world_model_encoder
from armworld.datasets.hdf5 import TrajectoryFile
from armworld.worldmodel.checkpoint import load_world_model

SHORTLISTS = (5, 20, 100)


def pixels(frames: np.ndarray) -> torch.Tensor:
    """Raw pixels as a latent, every other row and column (memory): uint8 [T, H, W, 3] -> [T, H*W*3/4] in [0, 1]."""
    return torch.from_numpy(frames[:, ::2, ::2].astype(np.float32) / 255.0).flatten(1)


def searches(library: EpisodeLibrary, now: torch.Tensor, goal: torch.Tensor) -> dict[str, tuple[int, int, int]]:
    """Each search's stretch (episode, first frame, last frame) from ``now [L]`` toward ``goal [L]``."""
    to_now = (library.latents - now).abs().mean(-1).nan_to_num(float("inf"))  # [E, T]
    to_goal = (library.latents - goal).abs().mean(-1).nan_to_num(float("inf"))
    _, demo, i, j = library.retrieve(now, goal).source
    found = {"stretch": ([d for _, d in library.episodes].index(demo), i, j)}
    e = int(to_now[:, 0].argmin())
    found["first_frame"] = (e, 0, int(library.lengths[e]) - 1)
    for k in SHORTLISTS:
        starts = to_now <= to_now.flatten().kthvalue(k).values  # [E, T]: the k nearest frames
        best = (float("inf"), (0, 0, 0))
        for e in torch.nonzero(starts[:, :-1].any(1)).flatten().tolist():
            i = int(torch.nonzero(starts[e]).flatten()[0])
            j = i + 1 + int(to_goal[e, i + 1 :].argmin())
            best = min(best, (float(to_goal[e, j]), (e, i, j)))
        found[f"shortlist_{k}"] = best[1]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repr", required=True, help="pixels or wm:PATH / wm:default")
    parser.add_argument("--data", required=True, help="FrankaPush trajectories recorded with --camera")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--camera", default="top")
    args = parser.parse_args()

    encode = pixels if args.repr == "pixels" else world_model_encoder(load_world_model(model_path(args.repr)))
    library = EpisodeLibrary([args.data], encode, args.camera)
    with TrajectoryFile(args.data) as file:
        cubes = [file.read(demo, "obs/achieved_goal")[:, :2] for _, demo in library.episodes]
    env = gymnasium.make("armworld/FrankaPush-v0", obs_mode="pixels_state", image_size=64, cameras=(args.camera,))
    errors: dict[str, list[tuple[float, float]]] = {}
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=eval_seed(0, episode))
        now, goal = encode(np.stack([obs[f"rgb_{args.camera}"], env.unwrapped.goal_image(args.camera, size=64)]))
        cube, target = obs["achieved_goal"][:2], obs["desired_goal"][:2]
        found = searches(library, now, goal)
        e = min(range(len(cubes)), key=lambda e: np.linalg.norm(cubes[e][0] - cube) + np.linalg.norm(cubes[e] - target, axis=1).min())
        found["best_in_data"] = (e, 0, int(np.linalg.norm(cubes[e] - target, axis=1).argmin()))
        for name, (e, i, j) in found.items():
            errors.setdefault(name, []).append((np.linalg.norm(cubes[e][i] - cube), np.linalg.norm(cubes[e][j] - target)))
        errors.setdefault("random_episode", []).append(
            (np.mean([np.linalg.norm(c[0] - cube) for c in cubes]), np.mean([np.linalg.norm(c[-1] - target) for c in cubes]))
        )
    print(json.dumps({
        "repr": args.repr, "camera": args.camera, "episodes": args.episodes, "library_episodes": len(library),
        "cube_error_m": {
            name: {"start": round(float(np.mean([s for s, _ in v])), 4), "end": round(float(np.mean([t for _, t in v])), 4),
                   "end_within_5cm": int(sum(t < 0.05 for _, t in v))}
            for name, v in errors.items()
        },
    }, indent=1))


if __name__ == "__main__":
    main()
