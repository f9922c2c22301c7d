"""Is the goal-image energy good enough to plan with, before any predictor is trained?

A world-model agent minimises ``L1(encode(predicted frame), encode(goal image))``. Its
success is bounded by two things: how well the predictor imagines frames, and whether the
energy itself leads toward the goal. This script measures the second alone with the oracle
of ``armworld.agents.representation``: the predictor is replaced by the simulator. At each
step ``--candidates`` random action sequences of ``--horizon`` steps are simulated in the
env itself (restoring the exact state after each), the camera is rendered at the end of
each, and the first action of the one closest to the goal image under the chosen energy is
executed. Perfect dynamics, so a failure is the energy's fault.

Energies: ``pixels``, ``encoder:PATH``, ``wm:PATH``, ``wm:default`` and ``distance`` (the
true goal distance: the sanity check). ``--horizon 1`` is a greedy one-step search; pushing
needs a few steps (``--horizon 3``). ``armworld score`` runs the same oracle together with
the rank correlation and the linear probes and writes a table and a figure.

    python examples/energy_oracle.py --env armworld/FrankaReach-v0 --camera top \\
        --energy distance pixels encoder:runs/enc --episodes 20
"""

from __future__ import annotations

import argparse
import json

import gymnasium
import torch

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.representation import Camera, load_representation, oracle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="armworld/FrankaReach-v0")
    parser.add_argument("--camera", default="front")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--energy", nargs="+", default=["pixels"], help="pixels, distance, encoder:PATH, wm:PATH, wm:default")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=32, help="action sequences tried per step")
    parser.add_argument("--horizon", type=int, default=1, help="steps per action sequence")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (agents/README.md): episodes never meet training data")
    args = parser.parse_args()
    torch.set_num_threads(1)

    env = gymnasium.make(args.env, obs_mode="state")
    camera = Camera(env, args.camera, args.image_size)
    results = {}
    for energy in args.energy:
        results[energy] = oracle(env, camera, load_representation(energy), args.episodes, args.candidates, args.horizon, args.seed)
        print(energy, json.dumps(results[energy]), flush=True)
    summary = {"env": args.env, "camera": args.camera, "episodes": args.episodes, "candidates": args.candidates}
    print(json.dumps({**summary, "horizon": args.horizon, "results": results}, indent=2))


if __name__ == "__main__":
    main()
