"""V-JEPA 2's pretraining augmentation: one random resized crop per clip.

V-JEPA 2 pretrains with random-resize-crop (area scale 0.3-1.0, aspect ratio 0.75-1.35,
appendix A.1); every frame of a clip gets the same crop, so motion within the clip is
kept. The crop is resampled (bilinear) back to the full ``S x S`` grid, so the encoder
sees the same number of tokens. Horizontal flips, which the paper also uses on internet
video, are left out: they swap the robot's left and right.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_resized_crop(
    pixels: torch.Tensor,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (0.75, 1.35),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop each clip of ``pixels [B, T, C, S, S]`` at random and resize it back to ``S x S``.

    A crop covers a fraction ``scale`` of the image's area with width/height ``ratio``
    (log-uniform), clipped to the image, at a uniform position. Same shape out.
    """
    if pixels.ndim != 5:
        raise ValueError(f"pixels must be clips [B, T, C, S, S], got shape {tuple(pixels.shape)}")
    B, T, C, H, W = pixels.shape
    draw = lambda low, high: low + (high - low) * torch.rand(B, generator=generator)  # noqa: E731
    area = draw(*scale)
    aspect = torch.exp(draw(math.log(ratio[0]), math.log(ratio[1])))
    width = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the image side
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    centre_x = (1.0 - width) * (2.0 * torch.rand(B, generator=generator) - 1.0)  # in [-1, 1] coordinates
    centre_y = (1.0 - height) * (2.0 * torch.rand(B, generator=generator) - 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    theta = theta.to(pixels.device, pixels.dtype).repeat_interleave(T, dim=0)  # one crop per clip
    grid = F.affine_grid(theta, [B * T, C, H, W], align_corners=False)
    out = F.grid_sample(pixels.reshape(B * T, C, H, W), grid, mode="bilinear", align_corners=False)
    return out.view(B, T, C, H, W)
