"""Does a longer horizon make the image energy push? Planning with perfect dynamics over a whole push.

`armworld score`'s oracle searches 3 steps ahead. Here FrankaPush is planned through the
simulator itself over ``--segments`` x ``--length`` steps (3 x 5 = 15 by default, a quarter
of the episode, enough to reach the cube and push it): each candidate holds one xyz
direction per segment with the gripper closed; CEM over those directions (``--iterations``
x ``--samples``, ``--elites``), scored by the energy of the frame the candidate ends on
against the goal image; the first segment is executed and the plan, shifted by one segment,
warm-starts the next search. Only the energy can be at fault: ``distance`` (the true cube
distance) is the search's own check. Energies: the L1 of `armworld score` (mean over
tokens), or ``--top-patches K``, the mean of the K most different 8x8-px patches of raw
pixels (a distance that cannot average a cube's few pixels away). ``--goal-arm start``
replaces the env's goal image (the arm behind the cube at its goal) by one with the cube at
its goal and the arm where the episode started it.

    python reports/goal_image/long_horizon_oracle.py --repr distance --out results/lh-distance.json
    python reports/goal_image/long_horizon_oracle.py --repr pixels --camera front --top-patches 4 --out ...
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium
import numpy as np
import torch

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import eval_seed, wilson_interval
from armworld.agents.representation import Camera, Representation, energies, goal_distance, load_representation
from armworld.envs.conventions import SUCCESS_THRESHOLD

PATCH = 8  # px, the side of the patches of --top-patches


def top_patch_energies(frames: np.ndarray, goal: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` largest per-patch mean absolute differences (pixels in [0, 1]):
    frames uint8 ``[M, H, W, 3]``, goal ``[H, W, 3]`` -> ``[M]``."""
    difference = (torch.from_numpy(frames).float() - torch.from_numpy(goal).float()).abs().mean(-1) / 255.0
    patches = difference.unflatten(1, (-1, PATCH)).unflatten(3, (-1, PATCH)).mean(dim=(2, 4)).flatten(1)
    return patches.topk(k, dim=1).values.mean(1).numpy()


class SegmentSearch:
    """CEM over ``[segments, 3]`` xyz directions in [-1, 1], each held ``length`` steps."""

    def __init__(self, env: gymnasium.Env, camera: Camera, representation: Representation, args: argparse.Namespace):
        self.env, self.sim, self.camera, self.representation, self.args = env, env.unwrapped, camera, representation, args

    def action(self, direction: np.ndarray) -> np.ndarray:
        """The env action ``[7]``: ``direction`` [3], no rotation, gripper closed."""
        action = np.zeros(self.env.action_space.shape, dtype=np.float32)
        action[:3], action[-1] = direction, 1.0
        return action

    def scores(self, candidates: np.ndarray, snapshot: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """Energy of each candidate ``[K, segments, 3]`` simulated from ``snapshot`` -> ``[K]``."""
        true_distance = self.representation.latents is None
        outcomes = []  # per candidate: its final cube distance (m), or the frame it ends on
        for directions in candidates:
            self.sim.set_sim_state(snapshot)
            for direction in directions:
                for _ in range(self.args.length):
                    reached, *_ = self.sim.step(self.action(direction))
            outcomes.append(goal_distance(reached) if true_distance else self.camera.frame())
        self.sim.set_sim_state(snapshot)
        if true_distance:
            return np.array(outcomes)
        frames = np.stack(outcomes)
        if self.args.top_patches:
            return top_patch_energies(frames, goal, self.args.top_patches)
        return energies(self.representation, frames, goal)

    def plan(self, mean: np.ndarray, goal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The best candidate ``[segments, 3]`` found from ``mean``."""
        snapshot, std = self.sim.get_sim_state(), np.full_like(mean, 0.8)
        best, best_energy = mean, np.inf
        for _ in range(self.args.iterations):
            candidates = np.clip(mean + std * rng.normal(size=(self.args.samples, *mean.shape)), -1.0, 1.0)
            candidates[0] = np.clip(mean, -1.0, 1.0)
            energy = self.scores(candidates, snapshot, goal)
            order = np.argsort(energy)
            if energy[order[0]] < best_energy:
                best, best_energy = candidates[order[0]], energy[order[0]]
            elites = candidates[order[: self.args.elites]]
            mean, std = elites.mean(0), elites.std(0) + 0.05
        return best

    def goal_image(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The env's goal image, or with ``--goal-arm start`` the cube at its goal and the arm
        where the episode started it (the TCP of ``obs``, the reset's), fingers closed."""
        if self.args.goal_arm == "solved":
            return self.camera.goal()

        def arrange() -> tuple[np.ndarray, float]:  # posed as the env poses its goal images (envs/base.py)
            self.sim._place_cube(self.sim.goal[:2])
            return obs["proprio"][:3].copy(), 1.0
        return self.sim._posed_image(self.args.camera, self.camera.size, arrange)[0]

    def episode(self, seed: int) -> float:
        """One episode of evaluation reset seed ``seed``; the final cube distance to the goal (m)."""
        rng = np.random.default_rng(seed)
        obs, _ = self.env.reset(seed=seed)
        goal, plan, steps = self.goal_image(obs), np.zeros((self.args.segments, 3)), 0
        while steps < self.env.spec.max_episode_steps:
            plan = self.plan(plan, goal, rng)
            for _ in range(min(self.args.length, self.env.spec.max_episode_steps - steps)):
                obs, *_ = self.env.step(self.action(plan[0]))
                steps += 1
            plan = np.concatenate([plan[1:], np.zeros((1, 3))])
        return goal_distance(obs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repr", default="distance", help="distance, pixels, encoder:PATH, wm:PATH or wm:default")
    parser.add_argument("--camera", default="top", choices=["top", "front"])
    parser.add_argument("--top-patches", type=int, default=0, help="pixels only: mean of this many most different patches")
    parser.add_argument("--goal-arm", default="solved", choices=["solved", "start"],
                        help="the arm in the goal image: the env's (behind the cube at its goal) or where the episode starts it")
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--length", type=int, default=5, help="steps per segment")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--elites", type=int, default=6)
    parser.add_argument("--episodes", type=int, default=10, help="episodes of evaluation seed 0")
    parser.add_argument("--out", required=True, help="JSON file of the results")
    args = parser.parse_args()
    if args.top_patches and args.repr != "pixels":
        parser.error("--top-patches scores raw pixels: use it with --repr pixels")
    torch.set_num_threads(1)
    env = gymnasium.make("armworld/FrankaPush-v0", obs_mode="state")
    camera = Camera(env, args.camera, 64)
    search = SegmentSearch(env, camera, load_representation(args.repr, "cpu"), args)
    start, finals = time.perf_counter(), []
    try:
        for episode in range(args.episodes):
            finals.append(search.episode(eval_seed(0, episode)))
            print(f"episode {episode}: final distance {finals[-1]:.3f} m", flush=True)
    finally:
        camera.close()
        env.close()
    successes = int(np.sum(np.array(finals) < SUCCESS_THRESHOLD))
    result = {
        **vars(args), "successes": successes, "success_ci": wilson_interval(successes, args.episodes),
        "mean_final_distance": float(np.mean(finals)), "final_distances": finals,
        "seconds": time.perf_counter() - start,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("repr", "camera", "top_patches", "goal_arm", "successes", "success_ci", "mean_final_distance")}))


if __name__ == "__main__":
    main()
