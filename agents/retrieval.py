"""Sub-goals retrieved from recorded episodes: what to aim for on the way to one goal image.

From a single goal image a latent planner searches locally: to push a cube, the hand must
first go behind it, away from where the goal image shows the hand, and no short plan
that does so lowers the energy. Recorded episodes show how the task is done.
:class:`EpisodeLibrary` encodes their frames once; at the start of an episode
:meth:`EpisodeLibrary.retrieve` finds the recorded stretch whose first frame looks most
like the current camera image and whose last frame looks most like the goal image::

    cost(e, i, j) = L1(z[e, i], z_now) + L1(z[e, j], z_goal),    i < j, minimised over e, i, j

(latent L1, the planner's own distance) and returns evenly spaced frames of that stretch
as sub-goals, with the gripper closure recorded at each and the recorded number of actions
between them. Nothing of the simulator is read: the current image, the goal image and the
data. The library should be the episodes the model learned from (never evaluation seeds).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

Encode = Callable[[np.ndarray], torch.Tensor]
"""uint8 frames ``[T, H, W, 3]`` -> latents ``[T, L]`` (flattened tokens)."""


@dataclass(frozen=True)
class Retrieved:
    """Sub-goals from one recorded stretch: ``images [G, H, W, 3]`` in order, the gripper
    ``closures`` recorded with them ``[G]`` (0 open .. 1 closed), ``steps``: recorded actions
    before each (``[G]``, the first counted from the matched start frame). ``source`` names
    the stretch (file, demo, first and last frame), ``cost`` its latent distance sum."""

    images: np.ndarray
    closures: tuple[float, ...]
    steps: tuple[int, ...]
    source: tuple[str, str, int, int]
    cost: float


class EpisodeLibrary:
    """The frames of recorded episodes, encoded once, searched for sub-goals.

    Args:
        paths: armworld HDF5 trajectory files recorded with ``camera``.
        encode: frames -> latents (e.g. :func:`world_model_encoder`); they stay on its device.
        camera: which ``rgb_<camera>`` frames to use (the model's camera).
        max_episodes: use at most this many episodes of each file (the first ones).
    """

    def __init__(self, paths: Sequence[str | Path], encode: Encode, camera: str, max_episodes: int | None = None):
        from armworld.datasets.hdf5 import TrajectoryFile

        if not paths:
            raise ValueError("an episode library needs at least one trajectory file")
        if max_episodes is not None and max_episodes < 1:
            raise ValueError(f"max_episodes must be at least 1, got {max_episodes}")
        self.camera = camera
        self.encode = encode
        self.episodes: list[tuple[str, str]] = []
        latents, closures = [], []
        for path in paths:
            with TrajectoryFile(path) as file:
                for demo in file.split(None)[:max_episodes]:
                    frames = np.asarray(file.images(demo, f"obs/rgb_{camera}")[()])
                    with torch.inference_mode():
                        latents.append(encode(frames).float())
                    closures.append(file.read(demo, "obs/proprio")[:, -1].astype(np.float32))
                    self.episodes.append((str(path), demo))
        lengths = [len(z) for z in latents]
        self.lengths = torch.tensor(lengths)
        padded = torch.full((len(latents), max(lengths), latents[0].shape[-1]), float("nan"), device=latents[0].device)
        for e, z in enumerate(latents):
            padded[e, : len(z)] = z
        self.latents = padded  # [E, T, L] on the encoder's device, NaN past each episode's end
        self.closures = closures

    def __len__(self) -> int:
        return len(self.episodes)

    def retrieve_images(self, now: np.ndarray, goal: np.ndarray, subgoals: int = 4) -> Retrieved:
        """:meth:`retrieve` from the current image and the goal image (uint8 ``[H, W, 3]``,
        the library's camera), encoded as the library's frames are."""
        with torch.inference_mode():
            now_latent, goal_latent = self.encode(np.stack([now, goal])).float()
        return self.retrieve(now_latent, goal_latent, subgoals)

    def retrieve(self, now: torch.Tensor, goal: torch.Tensor, subgoals: int = 4) -> Retrieved:
        """The best stretch from ``now [L]`` to ``goal [L]`` (see the module docstring), cut into
        at most ``subgoals`` evenly spaced sub-goal frames ending with its last frame."""
        from armworld.datasets.hdf5 import TrajectoryFile

        if subgoals < 1:
            raise ValueError(f"subgoals must be at least 1, got {subgoals}")
        device = self.latents.device
        to_now = (self.latents - now.float().to(device)).abs().mean(-1).nan_to_num(float("inf"))  # [E, T]
        to_goal = (self.latents - goal.float().to(device)).abs().mean(-1).nan_to_num(float("inf"))
        best_start = torch.cummin(to_now, dim=1).values  # best i <= j for each j
        cost = best_start[:, :-1] + to_goal[:, 1:]  # [E, T-1]: end frame j = column + 1, start i < j
        flat = int(cost.argmin())
        e, j = divmod(flat, cost.shape[1])
        j += 1
        i = int(to_now[e, :j].argmin())
        count = min(subgoals, j - i)
        index = [i + round((k + 1) * (j - i) / count) for k in range(count)]
        path, demo = self.episodes[e]
        with TrajectoryFile(path) as file:
            images = np.asarray(file.images(demo, f"obs/rgb_{self.camera}")[index])
        return Retrieved(
            images=images,
            closures=tuple(float(self.closures[e][k]) for k in index),
            steps=tuple(int(b - a) for a, b in zip([i, *index[:-1]], index)),
            source=(path, demo, i, j),
            cost=float(cost[e, j - 1]),
        )


def world_model_encoder(world_model: torch.nn.Module, batch: int = 256) -> Encode:
    """``frames [T, H, W, 3] -> [T, L]``: a world model's latents, flattened, in batches of ``batch`` frames."""
    device = next(world_model.parameters()).device

    def encode(frames: np.ndarray) -> torch.Tensor:
        chunks = [torch.from_numpy(np.ascontiguousarray(frames[k : k + batch])) for k in range(0, len(frames), batch)]
        return torch.cat([world_model.encode(c[None].to(device))[0].flatten(1) for c in chunks])

    return encode
