"""How much of the cube each camera shows in FrankaPush's first frames and goal images.

Counts the cube's red pixels in 64x64 images of evaluation seed 0 and draws three
episodes' first frames above their goal images (worldmodel/figures/push_goal_top.png).

    python reports/goal_image/cube_visibility.py --episodes 50 --figure worldmodel/figures/push_goal_top.png
"""

from __future__ import annotations

import argparse
import json

import gymnasium
import matplotlib
import numpy as np

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import eval_seed

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def cube_pixels(image: np.ndarray) -> int:
    """Pixels of the red cube in a uint8 ``[H, W, 3]`` image (the table and arm hold none)."""
    return int(((image[..., 0] > 150) & (image[..., 1] < 110) & (image[..., 2] < 110)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--figure", default=None, help="PNG of the top camera's first frames and goal images")
    args = parser.parse_args()
    table = {}
    for camera in ("top", "front"):
        env = gymnasium.make("armworld/FrankaPush-v0", obs_mode="pixels_state", image_size=64, cameras=(camera,))
        first, goal, shown = [], [], []
        for episode in range(args.episodes):
            obs, _ = env.reset(seed=eval_seed(0, episode))
            goal_image = env.unwrapped.goal_image(camera, size=64)
            first.append(cube_pixels(obs[f"rgb_{camera}"]))
            goal.append(cube_pixels(goal_image))
            shown.append((obs[f"rgb_{camera}"], goal_image))
        first, goal = np.array(first), np.array(goal)
        table[camera] = {
            "first_frame_median_px": float(np.median(first)), "first_frame_hidden": int((first < 2).sum()),
            "goal_image_median_px": float(np.median(goal)), "goal_image_hidden": int((goal < 2).sum()),
            "episodes": args.episodes,
        }
        if camera == "top" and args.figure:
            fig, axes = plt.subplots(2, 3, figsize=(7.5, 5.4))
            for k, (frame, goal_image) in enumerate(shown[:3]):
                axes[0, k].imshow(frame)
                axes[0, k].set_title(f"episode {k}: first frame", fontsize=9)
                axes[1, k].imshow(goal_image)
                axes[1, k].set_title("goal image", fontsize=9)
            for ax in axes.flat:
                ax.axis("off")
            fig.suptitle("FrankaPush-v0, top camera, 64 px: the goal image shows the hand over the cube, hiding it", fontsize=9)
            fig.tight_layout()
            fig.savefig(args.figure, dpi=80)
        env.close()
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
