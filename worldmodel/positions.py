"""The ``positions`` encoder kind: where the object and the hand are, read from one image.

A small CNN reads the object's and the TCP's xyz (m) from one camera image; its latent is
those six numbers, one token per frame::

    reader = PositionReader(PositionReaderConfig())
    z = reader(frames)        # uint8 [B, T, 64, 64, 3] -> [B, T, 1, 6]: object xyz, TCP xyz (m)

It is trained by regression on the positions recorded with the frames of armworld datasets
(``obs/achieved_goal``, ``obs/proprio``; :func:`armworld.worldmodel.object_model.train_object_model`),
so it sees what a global image distance averages away: a 5 cm cube among thousands of arm
pixels. It reads images only; nothing of the simulator is read when it encodes. The
positions' mean and standard deviation over the training frames are buffers saved with the
weights. Meant for :class:`armworld.worldmodel.object_model.ObjectWorldModel`, whose latent
it is; it satisfies the :class:`armworld.worldmodel.encoder.Encoder` protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POSITIONS = 6  # object xyz, TCP xyz (m)


@dataclass(frozen=True)
class PositionReaderConfig:
    """image_size: frames are resized to it (px, square); width: channels of the first
    convolution (doubled twice); hidden: the regression head's width."""

    image_size: int = 64
    width: int = 32
    hidden: int = 256


class PositionReader(nn.Module):
    """uint8 frames ``[B, T, H, W, 3]`` -> positions ``[B, T, 1, 6]``: object xyz, TCP xyz (m)."""

    def __init__(self, config: PositionReaderConfig) -> None:
        super().__init__()
        if config.image_size % 16:
            raise ValueError(f"the position reader needs an image size divisible by 16, got {config.image_size}")
        self.config = config
        w = config.width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 5, 2, 2), nn.ReLU(), nn.Conv2d(w, 2 * w, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1), nn.ReLU(), nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(4 * w * (config.image_size // 16) ** 2, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, POSITIONS),
        )
        self.register_buffer("position_mean", torch.zeros(POSITIONS))
        self.register_buffer("position_std", torch.ones(POSITIONS))

    embed_dim = POSITIONS
    latent_grid = 1
    num_tokens = 1

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Positions are metres: no normalisation."""
        return z

    def standardized(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``[M, H, W, 3]`` -> positions ``[M, 6]`` in units of the training data's standard
        deviation about its mean (what the regression fits)."""
        if frames.dtype != torch.uint8 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [..., H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        x = frames.permute(0, 3, 1, 2).float().div(255.0) - 0.5
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return self.net(x)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5:
            raise ValueError(f"frames must be [B, T, H, W, 3], got shape {tuple(frames.shape)}")
        B, T = frames.shape[:2]
        positions = self.standardized(frames.flatten(0, 1)) * self.position_std + self.position_mean
        return positions.view(B, T, 1, POSITIONS)
