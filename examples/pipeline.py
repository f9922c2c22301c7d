"""armworld's whole pipeline at small scale, the script to read first.

    python examples/pipeline.py --out runs/pipeline        # a few minutes on 2 CPU cores (38 s with --episodes 6 --steps 5)

1. collect   trajectories with camera images from the sim (expert + coloured-noise segments)
2. pretrain  the video encoder without actions (JEPA: masked-token prediction, EMA target)
3. train     the action-conditioned predictor on the frozen encoder's latents
4. evaluate  the world-model planner with the evaluation harness (success, Wilson interval)
5. plan      toward a goal image *file*: the way a user points the arm at a picture

Each step is the ``armworld`` command it prints (run in-process through ``armworld.cli``),
so the same pipeline runs from a shell. A rerun starts over: it recollects the data
(``--overwrite``) and deletes the encoder and world-model runs first, since ``armworld
pretrain`` and ``armworld train`` would otherwise resume them (models of the old data).
At this scale the model is far from good: it shows the mechanics. The shipped default
model (MODEL_CARD.md) is this recipe with more data and steps; ``armworld demo`` runs it.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path

import gymnasium
import numpy as np
from PIL import Image

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import eval_seed
from armworld.agents.loading import env_kwargs_for, load_agent
from armworld.cli import main as armworld_cli

ENV = "armworld/FrankaReach-v0"
CAMERA = "top"  # the shipped model's camera: its goal-image energy leads the hand best (MODEL_CARD.md)


def step(title: str, argv: list[str]) -> None:
    """Print the shell command of ``argv`` and run it; stop on failure."""
    print(f"\n== {title}\n$ armworld {shlex.join(argv)}", flush=True)
    if armworld_cli(argv) != 0:
        raise SystemExit(f"`armworld {argv[0]}` failed")


def plan_toward_image_file(run: Path, seed: int) -> None:
    """Save a goal image as a PNG, then drive the arm toward it with the world-model agent."""
    spec = f"wm:{run}"
    env = gymnasium.make(ENV, **env_kwargs_for(spec))  # pixels + proprio at the model's camera and size
    goal_env = gymnasium.make(ENV, **env_kwargs_for(spec))
    goal_obs, _ = goal_env.reset(seed=seed + 1)  # another episode: its goal is where the hand should go
    goal_file = run / "goal.png"
    Image.fromarray(goal_env.unwrapped.goal_image(CAMERA)).save(goal_file)  # any square RGB picture works
    goal_env.close()
    print(f"\n== plan toward {goal_file}")

    agent = load_agent(spec, env, seed=seed, goal=str(goal_file))
    obs, _ = env.reset(seed=seed)
    agent.reset()
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, _ = env.step(agent.act(obs))
        if terminated or truncated:
            break
    image = np.asarray(Image.open(goal_file))
    error = np.abs(obs[f"rgb_{CAMERA}"].astype(int) - image.astype(int)).mean()
    distance = np.linalg.norm(obs["achieved_goal"] - goal_obs["desired_goal"])
    print(f"after {len(agent.plan_times)} actions: hand {distance:.3f} m from the pictured goal, mean pixel "
          f"difference {error:.1f} / 255, planning {np.median(agent.plan_times):.2f} s per action (median)")
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pipeline", help="directory for the data, runs and results")
    parser.add_argument("--episodes", type=int, default=60, help="episodes collected")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps of pretraining and of training")
    args = parser.parse_args()
    out = Path(args.out)
    data, enc, wm = out / "reach.h5", out / "enc", out / "wm"
    for run in (enc, wm):  # pretrain and train resume a run they find: start these afresh, like the data
        if run.exists():
            print(f"$ rm -r {shlex.quote(str(run))}")
            shutil.rmtree(run)

    step("1. collect", ["collect", "--env", ENV, "--policy", "mixed", "--episodes", str(args.episodes),
                        "--obs-mode", "pixels_state", "--image-size", "64", "--cameras", CAMERA,
                        "--workers", "2", "--out", str(data), "--overwrite"])
    step("2. pretrain the encoder on frames alone", ["pretrain", "--data", str(data), "--camera", CAMERA, "--preset", "tiny",
                                                     "--steps", str(args.steps), "--out", str(enc)])
    step("3. train the action-conditioned predictor", ["train", "--data", str(data), "--camera", CAMERA, "--encoder", str(enc),
                                                       "--steps", str(args.steps), "--out", str(wm)])
    step("4. evaluate the planner (the protocol asks 50 episodes x 3 seeds; 2 x 1 here)",
         ["eval", "--agent", f"wm:{wm}", "--env", ENV, "--episodes", "2", "--seeds", "0",
          "--dataset", str(data), "--out", str(out / "results")])
    plan_toward_image_file(wm, seed=eval_seed(1, 0))


if __name__ == "__main__":
    main()
