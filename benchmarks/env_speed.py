"""Env steps per second for every task, against the raw physics rate of the same model.

For each task: control steps/s with state observations, with one 64x64 camera, with two
128x128 cameras, and the raw physics rate: ``mj_step`` over the same substeps per control
step, on the same model, replaying the joint targets the env produced from the same state
(so the physics does the same motion), with no control, observation or wrapper work.

The two are timed in alternating blocks of ``--block`` control steps, so that a change in
the machine's speed during the run (other tenants of a shared host) falls on both alike:
each block of env steps is followed at once by its physics replay. The ratio is the median
over blocks of physics time / env time, with its 10th and 90th percentiles; the rates are
steps over the summed time of all blocks. Prints JSON.

    python benchmarks/env_speed.py [--steps 2000] [--block 25]
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


def smooth_actions(steps: int, shape: tuple[int, ...]) -> np.ndarray:
    """Random actions ``[steps, *shape]`` that wander without pinning to the walls."""
    rng = np.random.default_rng(0)
    return np.clip(np.sin(np.cumsum(rng.normal(0, 0.3, (steps,) + shape), axis=0)), -1, 1).astype(np.float32)


def paired_rates(env_id: str, steps: int, block: int, **kwargs) -> dict[str, float]:
    """One long episode through ``gymnasium.make`` (wrappers included), each block of
    ``block`` env steps followed by bare ``mj_step`` replaying its controls from the state
    the block started in, on a second ``MjData`` of the same model."""
    env = gymnasium.make(env_id, max_episode_steps=steps + 1, **kwargs)
    env.reset(seed=0)
    model, data, substeps = env.unwrapped.model, env.unwrapped.data, env.unwrapped.n_substeps
    replay = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    start_state = np.empty(mujoco.mj_stateSize(model, spec))
    controls = np.empty((block, model.nu))
    actions = smooth_actions(steps, env.action_space.shape)
    env_times, physics_times = [], []
    for first in range(0, steps - block + 1, block):
        mujoco.mj_getState(model, data, start_state, spec)
        ctrl = data.ctrl
        start = time.perf_counter()
        for t, action in enumerate(actions[first : first + block]):
            env.step(action)
            controls[t] = ctrl
        env_times.append(time.perf_counter() - start)

        mujoco.mj_setState(model, replay, start_state, spec)
        replay_ctrl = replay.ctrl
        start = time.perf_counter()
        for control in controls:
            replay_ctrl[:] = control
            mujoco.mj_step(model, replay, substeps)
        physics_times.append(time.perf_counter() - start)
    env.close()
    ratios = np.array(physics_times) / np.array(env_times)
    measured = block * len(env_times)
    return {
        "steps_per_s": round(measured / sum(env_times), 1),
        "raw_physics_steps_per_s": round(measured / sum(physics_times), 1),
        "vs_physics": round(float(np.median(ratios)), 3),
        "vs_physics_p10_p90": [round(float(p), 3) for p in np.percentile(ratios, [10, 90])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="control steps with state observations (a quarter with pixels)")
    parser.add_argument("--block", type=int, default=25, help="control steps per timed block")
    args = parser.parse_args()
    if args.steps // 4 < args.block or args.block < 1:
        parser.error(f"--steps / 4 ({args.steps // 4}) must be at least --block ({args.block}), which must be positive")
    load_before = os.getloadavg()[0]
    results = {}
    for env_id in armworld.ENV_IDS:
        results[env_id] = {
            name: paired_rates(env_id, args.steps if name == "state" else args.steps // 4, args.block, **kwargs)
            for name, kwargs in SETTINGS.items()
        }
    report = {
        "machine": platform.processor() or platform.machine(),
        "mujoco": mujoco.__version__,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "block": args.block,
        "results": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
