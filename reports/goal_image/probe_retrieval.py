"""Sub-goals retrieved by positions read from the images: does a cube-aware search find pushes that work?

A small CNN reads the TCP and the cube positions (m) from one 64 px ``top`` image; it is
trained on the recorded Push episodes' ``obs/proprio`` (TCP xyz) and ``obs/achieved_goal``
(cube xyz), 3,000 steps of 128 frames (episodes i % 10 == 9 held out). Its six numbers then
replace the world model's latent in the agent's stretch search (armworld.agents.retrieval:
the L1 of the current image's and the goal image's positions to a recorded stretch's first
and last frames, in metres), and the retrieved frames are the sub-goals the world model
plans toward. Nothing of the simulator is read at evaluation time; the recorded positions
of the data train the probe.

    python reports/goal_image/probe_retrieval.py train --data push.h5 --out probe.pt          # 11 min, 1 thread
    python reports/goal_image/probe_retrieval.py quality --probe probe.pt -- --data push.h5 --episodes 20
    python reports/goal_image/probe_retrieval.py eval --probe probe.pt -- --agent wm:default \\
        --env armworld/FrankaPush-v0 --episodes 10 --seeds 0 --retrieve push.h5 --gripper goal --threads 1 --out OUT
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from torch import nn

from armworld.datasets.hdf5 import TrajectoryFile


class PositionProbe(nn.Module):
    """uint8 images ``[B, 64, 64, 3]`` -> TCP and cube xyz ``[B, 6]``, normalised by the data's mean and std."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 5, 2, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(128 * 16, 256), nn.ReLU(), nn.Linear(256, 6),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.permute(0, 3, 1, 2).float() / 255.0 - 0.5)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    frames, targets, held_out = [], [], []
    with TrajectoryFile(args.data) as file:
        for k, demo in enumerate(file.split(None)):
            images = np.asarray(file.images(demo, f"obs/rgb_{args.camera}")[()])
            positions = np.concatenate([file.read(demo, "obs/proprio")[:, :3], file.read(demo, "obs/achieved_goal")[:, :3]], 1)
            frames.append(images)
            targets.append(positions.astype(np.float32))
            held_out.append(np.full(len(images), k % 10 == 9))
    x, y = torch.from_numpy(np.concatenate(frames)), torch.from_numpy(np.concatenate(targets))
    valid = torch.from_numpy(np.concatenate(held_out))
    mean, std = y[~valid].mean(0), y[~valid].std(0)
    model = PositionProbe()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=args.steps, pct_start=0.1)
    train_rows, valid_rows = torch.nonzero(~valid).flatten(), torch.nonzero(valid).flatten()
    start = time.time()
    for step in range(1, args.steps + 1):
        rows = train_rows[torch.randint(len(train_rows), (128,))]
        loss = ((model(x[rows]) - (y[rows] - mean) / std) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        model.eval()
        predicted = torch.cat([model(x[valid_rows[k : k + 1024]]) for k in range(0, len(valid_rows), 1024)]) * std + mean
    error = (predicted - y[valid_rows]).view(-1, 2, 3).norm(dim=-1)  # [M, 2]: TCP, cube
    print(f"{args.steps} steps in {time.time() - start:.0f} s; held-out median error: TCP {100 * error[:, 0].median():.1f} cm, "
          f"cube {100 * error[:, 1].median():.1f} cm")
    torch.save({"state": model.state_dict(), "mean": mean, "std": std}, args.out)


def probe_encoder(path: str):
    """``frames [T, 64, 64, 3] -> [T, 6]`` TCP and cube xyz in metres, from the probe saved at ``path``."""
    saved = torch.load(path)
    model = PositionProbe()
    model.load_state_dict(saved["state"])
    model.eval()

    def encode(frames: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            chunks = [model(torch.from_numpy(np.ascontiguousarray(frames[k : k + 1024]))) for k in range(0, len(frames), 1024)]
        return torch.cat(chunks) * saved["std"] + saved["mean"]

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    fit = verbs.add_parser("train")
    fit.add_argument("--data", required=True)
    fit.add_argument("--camera", default="top")
    fit.add_argument("--steps", type=int, default=3000)
    fit.add_argument("--out", required=True)
    for name in ("quality", "eval"):
        verb = verbs.add_parser(name)
        verb.add_argument("--probe", required=True)
        verb.add_argument("rest", nargs=argparse.REMAINDER, help="quality: retrieval_quality.py's flags; eval: armworld eval's")
    args = parser.parse_args()
    if args.verb == "train":
        return train(args)
    encode = probe_encoder(args.probe)
    rest = [a for a in args.rest if a != "--"]
    if args.verb == "quality":  # the world model's latent search, with the probe's positions as the latent
        import retrieval_quality

        retrieval_quality.model_path = retrieval_quality.load_world_model = lambda spec: None
        retrieval_quality.world_model_encoder = lambda world_model: encode
        sys.argv = ["retrieval_quality.py", "--repr", "position-probe", *rest]
        return retrieval_quality.main()
    import armworld.agents.retrieval

    armworld.agents.retrieval.world_model_encoder = lambda world_model, batch=256: encode
    from armworld.cli import main as armworld_main

    sys.exit(armworld_main(["eval", *rest]))


if __name__ == "__main__":
    main()
