"""A tiny synthetic clip dataset in the ``armworld.datasets.clips`` item format, for world-model tests.

A bright square moves over a dark 64 px image; its pixel position follows the proprio
xy, and each action is the difference of consecutive proprio states, so the next frame
is predictable from the current frame and the action.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class MovingSquareClips(Dataset):
    """Items ``{"frames": uint8 [T,H,W,3], "proprio": float32 [T,7], "actions": float32 [T-1,7]}``."""

    def __init__(self, n: int = 16, clip_len: int = 4, size: int = 64, seed: int = 0, frames_only: bool = False):
        rng = np.random.default_rng(seed)
        self.items = []
        for _ in range(n):
            xy = np.empty((clip_len, 2), dtype=np.float32)
            xy[0] = rng.uniform(0.2, 0.8, size=2)
            for t in range(1, clip_len):
                xy[t] = np.clip(xy[t - 1] + rng.uniform(-0.1, 0.1, size=2), 0.1, 0.9)
            proprio = np.zeros((clip_len, 7), dtype=np.float32)
            proprio[:, :2] = xy
            proprio[:, 2] = 0.3
            frames = np.full((clip_len, size, size, 3), 20, dtype=np.uint8)
            half = size // 10
            for t, (x, y) in enumerate((xy * size).astype(int)):
                frames[t, max(0, y - half) : y + half, max(0, x - half) : x + half] = (230, 200, 40)
            item = {"frames": torch.from_numpy(frames)}
            if not frames_only:
                item["proprio"] = torch.from_numpy(proprio)
                item["actions"] = torch.from_numpy(np.diff(proprio, axis=0))
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i]
