"""Multi-block 3D masks for JEPA pretraining (V-JEPA ``multiseq_multiblock3d``).

A clip's tokens form a grid ``[T', H', W']`` (tubelets x rows x columns), flattened in
that order. One mask *config* draws ``num_blocks`` boxes; the masked (target) tokens are
their union and the context is the complement. V-JEPA 2 uses two configs per clip:

- short range: 8 blocks, each covering ``spatial_scale = 0.15`` of the frame area;
- long range: 2 blocks of scale 0.7.

Blocks span all of time (``temporal_scale = 1.0``); aspect ratios are drawn in
``[0.75, 1.5]``. The block *size* is drawn once per batch, the *positions* per sample,
and index lists are cut to the batch minimum so they stack into tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockMaskConfig:
    """One family of blocks whose union is masked."""

    num_blocks: int
    spatial_scale: float  # fraction of the H' x W' area covered by one block
    temporal_scale: float = 1.0  # fraction of T' covered by one block
    aspect_ratio: tuple[float, float] = (0.75, 1.5)

    def __post_init__(self) -> None:
        if self.num_blocks < 1:
            raise ValueError("a mask config needs at least one block")
        if not (0.0 < self.spatial_scale <= 1.0 and 0.0 < self.temporal_scale <= 1.0):
            raise ValueError("mask scales must lie in (0, 1]")


SHORT_RANGE = BlockMaskConfig(num_blocks=8, spatial_scale=0.15)
LONG_RANGE = BlockMaskConfig(num_blocks=2, spatial_scale=0.7)
VJEPA2_MASKS = (SHORT_RANGE, LONG_RANGE)


@dataclass
class Mask:
    """Token indices of one mask config for a batch: context ``[B, Nc]``, target ``[B, Nt]``."""

    context: torch.Tensor
    target: torch.Tensor


class MultiBlockMasker:
    """Draws :class:`Mask` es for clips whose tokens form the grid ``(T', H', W')``."""

    def __init__(
        self,
        grid: tuple[int, int, int],
        configs: tuple[BlockMaskConfig, ...] = VJEPA2_MASKS,
        min_context: int = 4,
        max_tries: int = 20,
    ) -> None:
        if min(grid) < 1:
            raise ValueError(f"grid must be positive, got {grid}")
        if min_context >= math.prod(grid):
            raise ValueError(f"min_context {min_context} leaves nothing to mask in a grid of {math.prod(grid)} tokens")
        self.grid = grid
        self.configs = configs
        self.min_context = min_context
        self.max_tries = max_tries

    def _block_size(self, config: BlockMaskConfig, generator: torch.Generator) -> tuple[int, int, int]:
        T, H, W = self.grid
        u = torch.rand(2, generator=generator).tolist()
        lo, hi = (math.log(r) for r in config.aspect_ratio)
        aspect = math.exp(lo + (hi - lo) * u[0])
        area = config.spatial_scale * H * W
        h = min(H, max(1, round(math.sqrt(area * aspect))))
        w = min(W, max(1, round(math.sqrt(area / aspect))))
        t = min(T, max(1, round(config.temporal_scale * T)))
        return t, h, w

    def _one_sample(self, config: BlockMaskConfig, size: tuple[int, int, int], generator: torch.Generator) -> torch.Tensor:
        """A boolean ``[T' * H' * W']`` mask (True = target) with at least ``min_context`` context tokens."""
        T, H, W = self.grid
        t, h, w = size
        for _ in range(self.max_tries):
            masked = torch.zeros(T, H, W, dtype=torch.bool)
            for _ in range(config.num_blocks):
                t0 = int(torch.randint(0, T - t + 1, (1,), generator=generator))
                h0 = int(torch.randint(0, H - h + 1, (1,), generator=generator))
                w0 = int(torch.randint(0, W - w + 1, (1,), generator=generator))
                masked[t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
            if (~masked).sum() >= self.min_context:
                return masked.flatten()
        # Too few context tokens after max_tries: unmask a random few so the context is never empty.
        masked = masked.flatten()
        free = torch.randperm(masked.numel(), generator=generator)[: self.min_context]
        masked[free] = False
        return masked

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> list[Mask]:
        """One :class:`Mask` per config for a batch of ``batch_size`` clips."""
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        masks = []
        for config in self.configs:
            size = self._block_size(config, generator)
            samples = [self._one_sample(config, size, generator) for _ in range(batch_size)]
            n_context = min(int((~m).sum()) for m in samples)
            n_target = min(int(m.sum()) for m in samples)
            context = torch.stack([torch.nonzero(~m).squeeze(1)[:n_context] for m in samples])
            target = torch.stack([torch.nonzero(m).squeeze(1)[:n_target] for m in samples])
            masks.append(Mask(context=context, target=target))
        return masks
