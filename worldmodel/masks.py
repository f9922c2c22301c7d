"""Multi-block 3D masks for JEPA pretraining (V-JEPA ``multiseq_multiblock3d``).

A clip's tokens form a grid ``[T', H', W']`` (tubelets x rows x columns), flattened in
that order. One mask *config* draws ``num_blocks`` boxes; the masked (target) tokens are
their union and the context is the complement. V-JEPA 2 uses two configs per clip:

- short range: 8 blocks, each covering ``spatial_scale = 0.15`` of the frame area;
- long range: 2 blocks of scale 0.7.

Blocks span all of time (``temporal_scale = 1.0``); aspect ratios are drawn in
``[0.75, 1.5]``. The block *size* is drawn once per batch, the *positions* per sample
(for the whole batch at once, as tensors: no Python loop over samples or blocks), and
index lists are cut to the batch minimum so they stack into tensors.
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

    def _draw(self, config: BlockMaskConfig, size: tuple[int, int, int], count: int, generator: torch.Generator) -> torch.Tensor:
        """Boolean masks ``[count, T' * H' * W']`` (True = target): the union of ``config.num_blocks``
        boxes of ``size`` per row, at positions drawn uniformly, all rows at once."""
        shape = (count, config.num_blocks, 1)
        inside = []
        for extent, block in zip(self.grid, size):
            first = torch.randint(0, extent - block + 1, shape, generator=generator)
            position = torch.arange(extent)
            inside.append((position >= first) & (position < first + block))  # [count, blocks, extent]
        in_t, in_h, in_w = inside
        boxes = in_t[:, :, :, None, None] & in_h[:, :, None, :, None] & in_w[:, :, None, None, :]
        return boxes.any(dim=1).flatten(1)

    def _masks(self, config: BlockMaskConfig, size: tuple[int, int, int], batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Boolean masks ``[batch_size, T' * H' * W']`` (True = target), each with at least ``min_context``
        context tokens: rows with fewer are drawn again, up to ``max_tries`` draws in all, and
        rows still short then have ``min_context`` random tokens unmasked."""
        masked = self._draw(config, size, batch_size, generator)
        for _ in range(self.max_tries - 1):
            short = torch.nonzero((~masked).sum(dim=1) < self.min_context).squeeze(1)
            if len(short) == 0:
                return masked
            masked[short] = self._draw(config, size, len(short), generator)
        # Too few context tokens after max_tries: unmask a random few so the context is never empty.
        for row in torch.nonzero((~masked).sum(dim=1) < self.min_context).squeeze(1).tolist():
            masked[row, torch.randperm(masked.shape[1], generator=generator)[: self.min_context]] = False
        return masked

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> list[Mask]:
        """One :class:`Mask` per config for a batch of ``batch_size`` clips, drawn for the whole
        batch at once; each row's indices ascend and are cut to the batch's shortest row."""
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        masks = []
        for config in self.configs:
            masked = self._masks(config, self._block_size(config, generator), batch_size, generator)
            n_context = int((~masked).sum(dim=1).min())
            n_target = int(masked.sum(dim=1).min())
            # Stable sorts put a row's context (or target) tokens first, in ascending order.
            as_int = masked.to(torch.uint8)
            context = torch.sort(as_int, dim=1, stable=True).indices[:, :n_context]
            target = torch.sort(as_int, dim=1, descending=True, stable=True).indices[:, :n_target]
            masks.append(Mask(context=context, target=target))
        return masks
