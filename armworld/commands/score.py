"""CLI verb ``armworld score``: how well representations serve planning toward a goal image.

    armworld score --repr distance pixels wm:default encoder:runs/enc --env armworld/FrankaPush-v0 \\
        --camera top --episodes 10 --candidates 32 --horizon 3 --out results/scores
"""

from __future__ import annotations

import argparse
import sys

from armworld.commands import (
    add_randomization,
    check_output,
    env_id,
    error_text,
    fail,
    image_side,
    non_negative_float,
    number,
    positive_int,
    seed,
    user_errors,
)


def register(subparsers) -> None:
    """Add ``armworld score`` to the ``armworld`` parser."""
    sc = subparsers.add_parser(
        "score",
        help="score representations for planning: oracle search through the simulator, rank correlation, probes",
        description="Score each representation on one env and camera (agents/README.md, 'Scoring a "
        "representation'): success of a search through the simulator toward the goal image, judged by the "
        "representation's distance; the rank correlation of that distance with the true goal distance along "
        "noisy-expert episodes; ridge probes of the TCP and cube positions. Writes scores.json, scores.md and scores.png.",
    )
    sc.add_argument("--repr", nargs="+", required=True, metavar="NAME",
                    help="pixels, distance (the true goal distance: the oracle's sanity check), encoder:PATH, wm:PATH, wm:default")
    sc.add_argument("--env", type=env_id, default="armworld/FrankaReach-v0", help="env id, e.g. armworld/FrankaPush-v0")
    sc.add_argument("--camera", default="top", choices=("front", "top", "wrist"))
    sc.add_argument("--image-size", type=image_side, default=64, help="side of the rendered frames (px, 8..640)")
    add_randomization(sc)
    sc.add_argument("--episodes", type=positive_int, default=10, help="oracle episodes (evaluation seed --seed)")
    sc.add_argument("--candidates", type=number(int, 2), default=32, help="action sequences simulated per control step")
    sc.add_argument("--horizon", type=positive_int, default=3, help="steps per action sequence")
    sc.add_argument("--expert-episodes", type=number(int, 2), default=40,
                    help="noisy-expert episodes for the rank correlation and the probes (half fit, half test)")
    sc.add_argument("--expert-noise", type=non_negative_float, default=0.2,
                    help="std of the noise on the expert's xyz actions (at 0.5 it mostly misses a cube)")
    sc.add_argument("--max-steps", type=positive_int, default=None, help="step budget per episode (default: the env's)")
    sc.add_argument("--seed", type=seed, default=0, help="evaluation seed (agents/README.md)")
    sc.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    sc.add_argument("--device", default=None, help="where encoders run: cpu, cuda, cuda:N or mps "
                    "(default: cuda when available, else cpu)")
    sc.add_argument("--out", required=True, help="output directory")
    sc.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    import gymnasium

    try:
        return _run_score(args)
    except user_errors(gymnasium.error.Error, OSError) as error:
        return fail(error_text(error))


def _run_score(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from armworld.agents.loading import is_shipped
    from armworld.agents.representation import score, write_scores

    torch.set_num_threads(args.threads)
    runs = [name.partition(":")[2] for name in args.repr if name.startswith(("encoder:", "wm:")) and not is_shipped(name)]
    check_output(args.out, *runs, folder=True)  # never into a run it reads
    Path(args.out).mkdir(parents=True, exist_ok=True)  # refused now, not after minutes of search
    scores = score(
        args.repr, args.env, camera=args.camera, image_size=args.image_size, episodes=args.episodes,
        candidates=args.candidates, horizon=args.horizon, expert_episodes=args.expert_episodes,
        expert_noise=args.expert_noise, seed=args.seed, randomization=args.randomization,
        max_episode_steps=args.max_steps, progress=lambda line: print(line, file=sys.stderr, flush=True),
        device=args.device,
    )
    paths = write_scores(scores, args.out)
    print(Path(paths[1]).read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
