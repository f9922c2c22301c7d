"""Record an agent's own episodes as an armworld dataset, to train a model on what it does.

The episodes the planner of a world model drives are the ones its reader and dynamics must
get right; the recorded positions that come with them (``obs/achieved_goal``) let
``armworld train-objects`` learn from them too (data aggregation, as DAgger and model-based
RL loops do). Episode ``i`` is reset with ``--seed + i``: keep the seeds clear of the
evaluation seeds (1,000,000 and up).

    python reports/goal_image/planner_episodes.py --agent wm:objects --env armworld/FrankaPush-v0 \\
        --episodes 200 --seed 500000 --out data/push-planner.h5
"""

from __future__ import annotations

import argparse

import torch

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.loading import env_kwargs_for, load_agent
from armworld.datasets.collect import collect
from armworld.datasets.collect_config import CollectConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agent", default="wm:objects", help="an agent spec, as `armworld eval --agent` takes")
    parser.add_argument("--env", default="armworld/FrankaPush-v0")
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--seed", type=int, default=500_000, help="episode i is reset with seed + i")
    parser.add_argument("--out", required=True, help="the HDF5 file written (resumed if it exists)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = CollectConfig(env_id=args.env, episodes=args.episodes, seed=args.seed,
                           env_kwargs=env_kwargs_for(args.agent), policy_name=args.agent)
    print(collect(args.out, config, lambda env, seed: load_agent(args.agent, env, seed), exist="resume"))


if __name__ == "__main__":
    main()
