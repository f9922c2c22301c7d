"""Does the latent search of armworld.agents.retrieval find a recorded push that matches the task?

For evaluation episodes of FrankaPush, retrieve the recorded stretch (i, j) from the current
image to the goal image, as the agent does, and compare the cube's recorded positions at
its ends with the episode's cube and goal (the simulator's state, read here only to judge
the search). For scale: the best stretch the data holds by true cube positions, and a
random recorded episode (its first and last cube positions, averaged over the library).

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


def pixels(frames: np.ndarray) -> torch.Tensor:
    """Raw pixels as a latent, every other row and column (memory): uint8 [T, H, W, 3] -> [T, H*W*3/4] in [0, 1]."""
    return torch.from_numpy(frames[:, ::2, ::2].astype(np.float32) / 255.0).flatten(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repr", required=True, help="pixels or wm:PATH / wm:default")
    parser.add_argument("--data", required=True, help="FrankaPush trajectories recorded with the top camera")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--camera", default="top")
    args = parser.parse_args()

    encode = pixels if args.repr == "pixels" else world_model_encoder(load_world_model(model_path(args.repr)))
    library = EpisodeLibrary([args.data], encode, args.camera)
    with TrajectoryFile(args.data) as file:
        cubes = {demo: file.read(demo, "obs/achieved_goal")[:, :2] for demo in file.split(None)}
    env = gymnasium.make("armworld/FrankaPush-v0", obs_mode="pixels_state", image_size=64, cameras=(args.camera,))
    start_errors, end_errors, best, random_start, random_end = [], [], [], [], []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=eval_seed(0, episode))
        goal_image = env.unwrapped.goal_image(args.camera, size=64)
        now, goal = encode(np.stack([obs[f"rgb_{args.camera}"], goal_image]))
        _, demo, i, j = library.retrieve(now, goal).source
        cube, target = obs["achieved_goal"][:2], obs["desired_goal"][:2]
        start_errors.append(float(np.linalg.norm(cubes[demo][i] - cube)))
        end_errors.append(float(np.linalg.norm(cubes[demo][j] - target)))
        random_start.append(np.mean([np.linalg.norm(c[0] - cube) for c in cubes.values()]))
        random_end.append(np.mean([np.linalg.norm(c[-1] - target) for c in cubes.values()]))
        best.append(min(np.linalg.norm(c - cube, axis=1).min() + np.linalg.norm(c - target, axis=1).min() for c in cubes.values()))
    print(json.dumps({
        "repr": args.repr, "episodes": args.episodes, "library_episodes": len(library),
        "retrieved_cube_start_error_m": np.mean(start_errors), "retrieved_cube_end_error_m": np.mean(end_errors),
        "best_in_data_start_plus_end_m": float(np.mean(best)),
        "random_episode_start_error_m": float(np.mean(random_start)),
        "random_episode_end_error_m": float(np.mean(random_end)),
    }, indent=1))


if __name__ == "__main__":
    main()
