"""What limits the object world model's pushes? `wm:objects` planned with one part changed.

Each variant changes one thing of the shipped model (worldmodel/object_model.py) and plans
FrankaPush from the goal image alone with its recommended planner, through the evaluation
harness (``results.json`` per seed under ``--out``, comparable with ``paired.py``):

- ``true-positions``: the simulator's cube and goal positions in place of what the reader
  reads from the frame and from the goal image (a perception oracle; diagnosis only);
- ``true-cube`` / ``true-goal``: only the frame's / only the goal image's reading replaced;
- ``ensemble``: the dynamics replaced by the mean displacement of ``--members`` MLPs trained as
  ``armworld train-objects`` trains its own, from torch seeds 100, 101, ... (needs ``--data``);
- ``behind``: the hand's target in the energy ``--standoff`` m behind the cube, on the line
  from its goal, instead of the cube's centre;
- ``none``: the shipped model as it is.

Where the reader reads the frames (all but ``true-positions`` and ``true-cube``), each
action's reading of the cube is compared with the truth and summarised (``readings.txt`` per
seed): how well the cube is read with the hand at it and away from it.

    python reports/goal_image/object_model_variants.py true-positions --seeds 0 --out results/true-positions
    python reports/goal_image/object_model_variants.py ensemble --members 6 --data data/push-front.h5 --seeds 0,1 --out ...
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import EvalConfig, evaluate, write_results
from armworld.agents.loading import env_kwargs_for, load_agent
from armworld.worldmodel.object_model import ObjectDynamics, ObjectTrainConfig, read_recording, train_dynamics

TRUE = {"true-positions": ("cube", "goal"), "true-cube": ("cube",), "true-goal": ("goal",)}
NEAR = 0.06  # m: the TCP this close to the cube's centre counts as at the cube (half a side plus a finger)


class MeanDynamics(nn.Module):
    """The mean displacement of several :class:`ObjectDynamics` members."""

    rollout = ObjectDynamics.rollout

    def __init__(self, members: list[ObjectDynamics]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, obj: torch.Tensor, proprio: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(obj, proprio, action) for member in self.members]).mean(0)


def train_members(data: str, members: int) -> MeanDynamics:
    recording = read_recording([data], ObjectTrainConfig.camera)
    trained = []
    for member in range(members):
        torch.manual_seed(100 + member)
        dynamics = ObjectDynamics(256)
        print(f"member {member}: {train_dynamics(dynamics, recording, ObjectTrainConfig(progress=False))}", flush=True)
        trained.append(dynamics.eval())
    return MeanDynamics(trained)


def with_true_positions(agent, replaced: tuple[str, ...]) -> None:
    """Let ``agent`` read the simulator's positions (from the observation it acts on) where
    ``replaced`` says: the frame's cube (``cube``), the goal image's (``goal``)."""
    act, read = agent.act, agent._encode

    def remember(obs):
        agent.observation = obs
        return act(obs)

    def encode(frames: np.ndarray) -> torch.Tensor:
        obs = agent.observation
        is_goal = agent._goal_latents is None and any(np.array_equal(frames[0], image) for image in agent.goal_images)
        if ("goal" if is_goal else "cube") not in replaced:
            return read(frames)
        cube = obs["desired_goal"] if is_goal else obs["achieved_goal"]
        return torch.tensor(np.concatenate([cube, obs["proprio"][:3]]), dtype=torch.float32).view(1, 1, 6)

    agent.act, agent._encode = remember, encode


def record_readings(agent, readings: list[dict]) -> None:
    """Append to ``readings`` what ``agent`` read of the cube at each action, beside the truth."""
    act = agent.act

    def recorded(obs):
        action = act(obs)
        cube, tcp = obs["achieved_goal"], obs["proprio"][:3]
        read = agent._latents[-1][0, :3].cpu().numpy()
        readings.append({"error_m": float(np.linalg.norm(read - cube)), "tcp_to_cube_m": float(np.linalg.norm(tcp - cube))})
        return action

    agent.act = recorded


def reading_summary(readings: list[dict]) -> str:
    """Median and 90th-percentile reading error (cm) with the hand at the cube and away from it."""
    error = np.array([r["error_m"] for r in readings]) * 100
    near = np.array([r["tcp_to_cube_m"] < NEAR for r in readings])
    parts = [f"{name}: median {np.median(error[mask]):.2f} cm, p90 {np.percentile(error[mask], 90):.2f} cm ({mask.sum()} actions)"
             for name, mask in ((f"hand within {NEAR * 100:.0f} cm", near), ("hand farther", ~near)) if mask.any()]
    return "cube read, " + "; ".join(parts)


def behind_energy(standoff: float, reach_weight: float):
    """The energy with the hand's target ``standoff`` m behind the cube, away from its goal."""

    def step_energy(imagined: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        cube, tcp = imagined[..., 0, :3], imagined[..., 0, 3:]
        to_goal = goal[0, :3] - cube
        direction = nn.functional.pad(to_goal[..., :2], (0, 1))
        target = cube - standoff * direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-3)
        return to_goal.norm(dim=-1) + reach_weight * (tcp - target).norm(dim=-1)

    return step_energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=[*TRUE, "ensemble", "behind", "none"])
    parser.add_argument("--seeds", default="0", help="evaluation seeds, e.g. 0,1,2")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--members", type=int, default=6, help="ensemble: dynamics members")
    parser.add_argument("--data", help="ensemble: the recording wm:objects was trained on (data/push-front.h5)")
    parser.add_argument("--standoff", type=float, default=0.04, help="behind: m behind the cube")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dynamics = train_members(args.data, args.members) if args.variant == "ensemble" else None

    reads_frames = args.variant not in ("true-positions", "true-cube")
    readings: list[dict] = []

    def factory(env, seed):
        agent = load_agent("wm:objects", env, seed)
        model = agent.world_model
        if args.variant in TRUE:
            with_true_positions(agent, TRUE[args.variant])
        elif args.variant == "ensemble":
            model.dynamics = dynamics
        elif args.variant == "behind":
            model.step_energy = behind_energy(args.standoff, model.config.reach_weight)
        if reads_frames:
            record_readings(agent, readings)
        return agent

    for seed in map(int, args.seeds.split(",")):
        readings.clear()
        config = EvalConfig(env_id="armworld/FrankaPush-v0", seeds=(seed,), episodes=args.episodes,
                            env_kwargs=env_kwargs_for("wm:objects"))
        result = evaluate(factory, config, agent_name=f"wm:objects, {args.variant}", agent_options=vars(args))
        json_path, _ = write_results(result, f"{args.out}/seed{seed}")
        print(f"seed {seed}: {result.overall.successes} / {result.overall.episodes}", flush=True)
        if reads_frames:
            summary = reading_summary(readings)
            (json_path.parent / "readings.txt").write_text(summary + "\n")
            print(summary, flush=True)


if __name__ == "__main__":
    main()
