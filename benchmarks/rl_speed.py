"""Env steps per second while training the SB3 baselines, against the bare env in the same run.

- SAC+HER on FrankaReach-v0 with state observations (the sac.yaml hyperparameters: [64, 64]
  nets, batch 256, one gradient step per env step), timed after ``learning_starts``.
- PPO on FrankaReach-v0 with 64x64 ``rgb_front`` pixels and 2 envs (ppo.yaml's pixel entry:
  NatureCNN, n_steps 256 per env, 10 epochs of batch 64), rollouts and updates together.
- Reference: the same vectorised envs stepped with random actions and no learning.

    python benchmarks/rl_speed.py --sac-steps 2000 --ppo-steps 1024
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from armworld.agents.rl import RLConfig, build_model, env_kwargs_for, load_hyperparams


class StepClock(BaseCallback):
    """Records the wall time at which training passed ``start_at`` env steps."""

    def __init__(self, start_at: int):
        super().__init__()
        self.start_at, self.started = start_at, None

    def _on_step(self) -> bool:
        if self.started is None and self.num_timesteps >= self.start_at:
            self.started = (time.perf_counter(), self.num_timesteps)
        return True


def bare_env_rate(env, steps: int) -> float:
    """Env steps/s of ``env`` (a VecEnv) under random actions."""
    env.reset()
    actions = np.random.default_rng(0).uniform(-1, 1, (steps // env.num_envs + 1, env.num_envs, *env.action_space.shape))
    start = time.perf_counter()
    for a in actions:
        env.step(a.astype(np.float32))
    return len(actions) * env.num_envs / (time.perf_counter() - start)


def training_rate(config: RLConfig, steps: int, warmup: int) -> dict:
    """Env steps/s of ``model.learn`` between ``warmup`` and ``warmup + steps`` env steps,
    and of the bare envs it trains on."""
    hp = load_hyperparams(config.algo, config.env_id, config.obs_mode)
    env = make_vec_env(config.env_id, n_envs=int(hp.get("n_envs", 1)), seed=0, env_kwargs=env_kwargs_for(config, hp))
    bare = bare_env_rate(env, min(steps, 1000))
    model = build_model(config, hp, env)
    clock = StepClock(warmup)
    model.learn(warmup + steps, callback=clock)
    started, at = clock.started
    rate = (model.num_timesteps - at) / (time.perf_counter() - started)
    env.close()
    return {"train_steps_per_s": rate, "bare_env_steps_per_s": bare, "envs": env.num_envs, "timed_steps": model.num_timesteps - at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sac-steps", type=int, default=2000, help="timed SAC env steps after learning_starts")
    parser.add_argument("--ppo-steps", type=int, default=1024, help="timed PPO env steps (after one warm-up rollout)")
    args = parser.parse_args()

    sac = RLConfig(algo="sac", env_id="armworld/FrankaReach-v0", her=True, progress_bar=False)
    ppo = RLConfig(algo="ppo", env_id="armworld/FrankaReach-v0", obs_mode="pixels", image_size=64, progress_bar=False)
    warmup = load_hyperparams("sac", sac.env_id)["learning_starts"]
    result = {
        "sac_her_state": training_rate(sac, args.sac_steps, warmup),
        "ppo_pixels64_2envs": training_rate(ppo, args.ppo_steps, 2 * load_hyperparams("ppo", ppo.env_id, "pixels")["n_steps"]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        "load_average_1min": os.getloadavg()[0],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
