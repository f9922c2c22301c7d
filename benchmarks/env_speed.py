"""Env steps per second for every task, against the raw physics rate of the same model.

For each task: control steps/s with state observations, with one 64x64 camera, with two
128x128 cameras, and the raw physics rate: ``mj_step`` over the same substeps per control
step, on the same model, replaying the joint targets the env produced (so the physics does
the same motion), with no control, observation or wrapper work. Prints JSON.

    python benchmarks/env_speed.py [--steps 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import armworld  # first: sets the headless GL default before MuJoCo is imported
import gymnasium
import mujoco
import numpy as np

SETTINGS = {
    "state": dict(obs_mode="state"),
    "pixels_64_front": dict(obs_mode="pixels", image_size=64, cameras=("front",)),
    "pixels_128_front_wrist": dict(obs_mode="pixels", image_size=128, cameras=("front", "wrist")),
}


def env_rate(env_id: str, steps: int, **kwargs) -> tuple[float, np.ndarray]:
    """Control steps per second through ``gymnasium.make`` (wrappers included) over one long
    episode of smooth random actions; also returns the controls it sent ``[steps, nu]``."""
    env = gymnasium.make(env_id, max_episode_steps=steps, **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = np.cumsum(rng.normal(0, 0.3, (steps,) + env.action_space.shape), axis=0)
    actions = np.clip(np.sin(actions), -1, 1).astype(np.float32)  # wanders without pinning to the walls
    data = env.unwrapped.data
    controls = np.empty((steps, env.unwrapped.model.nu))
    start = time.perf_counter()
    for t, action in enumerate(actions):
        env.step(action)
        controls[t] = data.ctrl
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate, controls


def physics_rate(env_id: str, controls: np.ndarray) -> float:
    """Control steps per second of bare ``mj_step`` replaying ``controls``, same model and start."""
    env = gymnasium.make(env_id)
    env.reset(seed=0)
    model, data, substeps = env.unwrapped.model, env.unwrapped.data, env.unwrapped.n_substeps
    start = time.perf_counter()
    for control in controls:
        data.ctrl[:] = control
        mujoco.mj_step(model, data, substeps)
    return len(controls) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="control steps per measurement")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = {}
    for env_id in armworld.ENV_IDS:
        row = {}
        for name, kwargs in SETTINGS.items():
            steps = args.steps if name == "state" else args.steps // 4
            rate, controls = env_rate(env_id, steps, **kwargs)
            if name == "state":
                physics = physics_rate(env_id, controls)
                row["raw_physics_steps_per_s"] = round(physics, 1)
            row[f"{name}_steps_per_s"] = round(rate, 1)
            row[f"{name}_vs_physics"] = round(rate / physics, 3)
        results[env_id] = row
    report = {
        "machine": platform.processor() or platform.machine(),
        "mujoco": mujoco.__version__,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
