"""Planning time per action of the world-model agent, printed as JSON.

The agent drives a pixel env for a few episodes with its context reused across
candidates and iterations (``reuse_context=True``: frames encoded once, history keys and
values computed once per action, rollouts extend a shared KV cache) and, as the reference
measured in the same run, without reuse (every energy call re-encodes the frames and
recomputes the whole imagined sequence). Both use the same planner, seed and episodes.
The time per action covers everything between observation and action.

    python benchmarks/plan_speed.py [--model runs/wm | --preset tiny-pooled] [--env armworld/FrankaPush-v0] [--threads 2]

Without ``--model`` the world model is freshly initialised from the encoder ``--preset``
(``tiny`` by default; ``tiny-p8`` has 64 tokens per frame, ``tiny-pooled`` one latent)
with the ``tiny`` predictor: the speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

import gymnasium
import numpy as np
import torch

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import eval_seed, run_episode
from armworld.agents.planners import PLANNERS, PlannerOptions
from armworld.agents.world_model_agent import WorldModelAgent, WorldModelAgentConfig
from armworld.agents.world_model_agent_config import DEFAULT_PLANNER


def fresh_model(preset: str):
    from armworld.worldmodel.train import build_world_model

    return build_world_model(None, None, "tiny", seed=0, encoder_preset=preset).eval()


def spread(times: list[float]) -> dict[str, float]:
    """Median and spread (s) of per-action times."""
    t = np.asarray(times)
    return {
        "median_s": float(np.median(t)),
        "p10_s": float(np.percentile(t, 10)),
        "p90_s": float(np.percentile(t, 90)),
        "min_s": float(t.min()),
        "max_s": float(t.max()),
        "actions": int(t.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="world-model run or checkpoint (default: a fresh model)")
    parser.add_argument("--preset", default="tiny", help="encoder preset of the fresh model (default %(default)s)")
    parser.add_argument("--env", default="armworld/FrankaPush-v0")
    parser.add_argument("--planner", choices=tuple(PLANNERS), default=DEFAULT_PLANNER)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=10, help="actions per episode")
    parser.add_argument("--context-frames", type=int, default=1)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--horizon", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.model:
        from armworld.agents.loading import model_settings
        from armworld.worldmodel.checkpoint import load_world_model

        wm, model_name = load_world_model(args.model), args.model
        camera, _ = model_settings(args.model)
    else:
        wm, model_name, camera = fresh_model(args.preset), f"fresh {args.preset} (untrained)", "front"
    given = (("samples", args.samples), ("iterations", args.iterations), ("horizon", args.horizon))
    overrides = {k: v for k, v in given if v is not None}  # zero is passed on, for the config to refuse
    planner = PlannerOptions(args.planner, PLANNERS[args.planner].config(**overrides))
    env = gymnasium.make(args.env, obs_mode="pixels_state", cameras=(camera,), image_size=wm.encoder.config.image_size)

    result = {
        "device": f"cpu ({platform.processor() or platform.machine()}), {args.threads} torch threads, {os.cpu_count()} cores",
        "load_average_1min": os.getloadavg()[0],
        "model": model_name,
        "tokens_per_frame": wm.encoder.num_tokens,
        "camera": camera,
        "env": args.env,
        "planner": {"name": args.planner, **dataclasses.asdict(planner.config)},
        "context_frames": args.context_frames,
        "energy": WorldModelAgentConfig().energy,
    }
    for reuse in (True, False):
        config = WorldModelAgentConfig(camera=camera, context_frames=args.context_frames, reuse_context=reuse)
        agent = WorldModelAgent(wm, planner.make(seed=0), env=env, config=config)
        run_episode(env, agent, eval_seed(0, 999), 2)  # warm-up
        times, start = [], time.perf_counter()
        for i in range(args.episodes):
            times += run_episode(env, agent, eval_seed(0, i), args.max_steps).plan_times
        result["with_reuse" if reuse else "without_reuse"] = dict(spread(times), wall_s=time.perf_counter() - start)
    result["speedup_median"] = result["without_reuse"]["median_s"] / result["with_reuse"]["median_s"]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
