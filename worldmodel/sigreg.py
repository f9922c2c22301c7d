"""SIGReg: pull a batch of embeddings toward an isotropic Gaussian (LeJEPA, arXiv 2511.08544).

A collapse-free regulariser with one weight and no EMA or stop-gradient. The batch
``z [M, D]`` is projected onto ``num_directions`` random unit directions (redrawn at every
call, from torch's global RNG, which the training loop reseeds every step); for each 1-D
projection the Epps-Pulley statistic compares its empirical characteristic function with
the standard normal's::

    T(u) = M * integral over t of |mean_m exp(i t u_m) - exp(-t^2 / 2)|^2 exp(-t^2 / 2) dt

on ``knots`` points of ``t`` in ``[0, t_max]`` with trapezoid weights, doubled for the
symmetric half. The loss is the mean of ``T`` over the directions: about 0 for Gaussian
embeddings of unit variance, large for collapsed or degenerate ones. Cost linear in ``M``.

Single process: under DDP each process regularises its own batch (the statistic would
need the batch gathered across processes to be exact).
"""

from __future__ import annotations

import torch
from torch import nn


class SIGReg(nn.Module):
    """``forward(z [M, D]) -> scalar``; ``num_directions`` random projections, ``knots`` points of ``t``."""

    def __init__(self, num_directions: int = 1024, knots: int = 17, t_max: float = 3.0) -> None:
        super().__init__()
        if num_directions < 1 or knots < 2 or t_max <= 0:
            raise ValueError(f"SIGReg needs num_directions >= 1, knots >= 2, t_max > 0; got {num_directions}, {knots}, {t_max}")
        self.num_directions = num_directions
        t = torch.linspace(0.0, t_max, knots)
        trapezoid = torch.full((knots,), 2.0 * t_max / (knots - 1))  # x2: the integral is symmetric in t
        trapezoid[[0, -1]] /= 2.0
        gaussian = torch.exp(-t.square() / 2.0)  # the standard normal's characteristic function
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("target", gaussian, persistent=False)
        self.register_buffer("weights", trapezoid * gaussian, persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Mean Epps-Pulley statistic of ``z [M, D]`` (any leading dims are flattened into ``M``)."""
        z = z.reshape(-1, z.shape[-1]).float()
        if z.shape[0] < 2:
            raise ValueError(f"SIGReg needs a batch of at least 2 embeddings, got {z.shape[0]}")
        directions = torch.randn(z.shape[-1], self.num_directions, device=z.device)
        directions = directions / directions.norm(dim=0, keepdim=True)
        with torch.autocast(z.device.type, enabled=False):  # float32 whatever the autocast policy
            x = (z @ directions).unsqueeze(-1) * self.t  # [M, P, knots]
            error = (x.cos().mean(0) - self.target).square() + x.sin().mean(0).square()  # [P, knots]
            return (error @ self.weights).mul(z.shape[0]).mean()
