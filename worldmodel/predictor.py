"""The action-conditioned predictor (V-JEPA 2-AC ``VisionTransformerPredictorAC``).

For every time step ``t`` the sequence holds an action token, a state token (and an
optional camera-extrinsics token) followed by the ``N`` patch tokens of frame ``t``::

    [a_0, s_0, z_0^1..z_0^N,  a_1, s_1, z_1^1..z_1^N,  ...]      T * (K + N) tokens, K = 2

Attention is block-causal: a token of step ``t`` sees every token of steps ``<= t``.
The output at the patch tokens of step ``t`` is the prediction of frame ``t + 1``.
Positions use the released model's 3D RoPE: patches rotate (time, row, column)
segments of each head, action/state tokens only the time segment (equivalently: row and
column 0, since a rotation by angle 0 is the identity).

Key/value cache. Because attention is block-causal, the keys and values of steps
``< t`` never depend on anything at or after ``t``. :meth:`ACPredictor.forward` takes a
:class:`KVCache` of earlier steps and returns the cache extended by the new ones, so

    out_a, cache = predictor(z[:, :2], s[:, :2], a[:, :2])
    out_b, _ = predictor(z[:, 2:], s[:, 2:], a[:, 2:], cache=cache)

equals ``predictor(z, s, a)[0]`` split at step 2. A planner computes the history once
(batch 1), :meth:`KVCache.expand` s it to all candidates, and an autoregressive rollout
processes each imagined step once instead of re-running the whole sequence.

Module and parameter names follow the released checkpoint (``predictor_embed``,
``action_encoder``, ``state_encoder``, ``extrinsics_encoder``,
``predictor_blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``,
``predictor_norm``, ``predictor_proj``), so :data:`OFFICIAL_AC` loads it strictly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from armworld.envs.conventions import ACTION_DIM, PROPRIO_DIM


@dataclass(frozen=True)
class PredictorConfig:
    """Sizes of the action-conditioned predictor; ``embed_dim``/``grid_size`` come from the encoder."""

    embed_dim: int = 128  # encoder token width D
    grid_size: int = 4  # encoder patches per image side, N = grid_size ** 2
    hidden_size: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    use_extrinsics: bool = False

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.head_dim < 6:
            raise ValueError("head_dim must be at least 6 for 3D RoPE")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def cond_tokens(self) -> int:
        """Tokens before the patches in each step: action, state (, extrinsics)."""
        return 3 if self.use_extrinsics else 2

    @classmethod
    def from_dict(cls, values: dict) -> PredictorConfig:
        """Inverse of ``dataclasses.asdict``; unknown keys are an error."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown predictor config keys: {sorted(unknown)}")
        return cls(**values)


# The released V-JEPA 2-AC predictor (on ViT-g/16 at 256 px).
OFFICIAL_AC = PredictorConfig(embed_dim=1408, grid_size=16, hidden_size=1024, depth=24, num_heads=16)


@dataclass
class KVCache:
    """Keys and values of the first ``steps`` time steps, one ``(k, v)`` per block, each ``[B, heads, L, head_dim]``."""

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    steps: int

    def expand(self, batch_size: int) -> KVCache:
        """The cache of a batch of 1 broadcast (without copying) to ``batch_size``."""
        if self.layers[0][0].shape[0] != 1:
            raise ValueError("only a cache of batch size 1 can be expanded")
        layers = [(k.expand(batch_size, -1, -1, -1), v.expand(batch_size, -1, -1, -1)) for k, v in self.layers]
        return KVCache(layers, self.steps)


def rope_tables(head_dim: int, t: torch.Tensor, h: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin ``[L, 3 * d]`` for token positions ``[L]``; ``d = 2 * (head_dim // 3 // 2)`` per axis.

    Frequencies ``10000^(-i / (d/2))``; the ``[f_0..f_{d/2-1}, f_0..]`` layout (``.repeat``
    rather than ``repeat_interleave``) is the released models' and must be kept for them.
    """
    d = 2 * ((head_dim // 3) // 2)
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float32, device=t.device) / (d / 2))
    angles = [pos.float()[:, None] * omega[None] for pos in (t, h, w)]  # 3 x [L, d/2]
    angles = torch.cat([a.repeat(1, 2) for a in angles], dim=-1)  # [L, 3d]
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs of the first ``cos.shape[-1]`` dims of ``x [B, heads, L, head_dim]``."""
    r = cos.shape[-1]
    rot, rest = x[..., :r], x[..., r:]
    x1, x2 = rot.unflatten(-1, (-1, 2)).unbind(-1)
    swapped = torch.stack((-x2, x1), dim=-1).flatten(-2)
    return torch.cat([rot * cos + swapped * sin, rest], dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE, a boolean mask and optional past keys/values."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x [B, L, C]``, ``mask [L, L_past + L]`` (True = may attend) -> ``[B, L, C]`` and the past + new ``(k, v)``."""
        B, L, C = x.shape
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)  # 3 x [B, h, L, hd]
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if past is not None:
            past_k, past_v = past
            k = torch.cat([past_k.expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([past_v.expand(B, -1, -1, -1), v], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(B, L, C)), (k, v)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block (the released ``ACBlock`` with GELU MLP)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x, rope, mask, past):
        y, kv = self.attn(self.norm1(x), rope, mask, past)
        x = x + y
        return x + self.mlp(self.norm2(x)), kv


class ACPredictor(nn.Module):
    """Block-causal transformer over ``[action, state, patches]`` per step; see the module docstring."""

    def __init__(self, config: PredictorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.predictor_embed = nn.Linear(c.embed_dim, c.hidden_size)
        self.action_encoder = nn.Linear(ACTION_DIM, c.hidden_size)
        self.state_encoder = nn.Linear(PROPRIO_DIM, c.hidden_size)
        # Present (and loaded) as in the released model; trained and used only with use_extrinsics.
        self.extrinsics_encoder = nn.Linear(PROPRIO_DIM - 1, c.hidden_size).requires_grad_(c.use_extrinsics)
        self.predictor_blocks = nn.ModuleList(Block(c.hidden_size, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.predictor_norm = nn.LayerNorm(c.hidden_size, eps=1e-6)
        self.predictor_proj = nn.Linear(c.hidden_size, c.embed_dim)
        self.apply(self._init_weights)
        for layer_id, block in enumerate(self.predictor_blocks, start=1):
            block.attn.proj.weight.data.div_(math.sqrt(2.0 * layer_id))
            block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer_id))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def _positions(self, first_step: int, steps: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """(time, row, column) of each token of steps ``first_step .. first_step + steps - 1``, each ``[L]``."""
        c = self.config
        patch = torch.arange(c.num_patches, device=device)
        row = torch.cat([torch.zeros(c.cond_tokens, dtype=torch.long, device=device), patch // c.grid_size])
        col = torch.cat([torch.zeros(c.cond_tokens, dtype=torch.long, device=device), patch % c.grid_size])
        per_step = c.cond_tokens + c.num_patches
        t = torch.arange(first_step, first_step + steps, device=device).repeat_interleave(per_step)
        return t, row.repeat(steps), col.repeat(steps)

    def forward(
        self,
        z: torch.Tensor,
        states: torch.Tensor,
        actions: torch.Tensor,
        extrinsics: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> tuple[torch.Tensor, KVCache]:
        """Predict the next frame's tokens for each step.

        Args:
            z: frame tokens ``[B, T, N, D]`` of steps ``s .. s+T-1`` (``s = cache.steps``, else 0).
            states: proprio ``[B, T, 7]``.
            actions: world-model actions ``[B, T, 7]``; ``actions[:, t]`` leads from frame t to t+1.
            extrinsics: camera pose ``[B, T, 6]``, only with ``use_extrinsics``.
            cache: keys/values of the steps before ``s`` (batch 1 broadcasts).

        Returns:
            predictions ``[B, T, N, D]`` (row t predicts frame t+1; not layer-normed) and the
            cache extended to ``s + T`` steps.
        """
        c = self.config
        B, T, N, D = z.shape
        if N != c.num_patches or D != c.embed_dim:
            raise ValueError(f"z must be [B, T, {c.num_patches}, {c.embed_dim}], got {tuple(z.shape)}")
        if states.shape != (B, T, PROPRIO_DIM) or actions.shape != (B, T, ACTION_DIM):
            raise ValueError(
                f"states and actions must be [B, T, 7] = [{B}, {T}, 7], got {tuple(states.shape)} and {tuple(actions.shape)}"
            )
        if c.use_extrinsics != (extrinsics is not None):
            raise ValueError("extrinsics are required exactly when the config has use_extrinsics")
        cond = [self.action_encoder(actions), self.state_encoder(states)]
        if extrinsics is not None:
            cond.append(self.extrinsics_encoder(extrinsics))
        x = torch.cat([t.unsqueeze(2) for t in cond] + [self.predictor_embed(z)], dim=2)  # [B, T, K+N, C]
        x = x.flatten(1, 2)

        first = cache.steps if cache is not None else 0
        t, row, col = self._positions(first, T, z.device)
        rope = rope_tables(c.head_dim, t, row, col)
        per_step = c.cond_tokens + N
        key_steps = torch.arange(first + T, device=z.device).repeat_interleave(per_step)
        mask = key_steps[None, :] <= t[:, None]  # [L, L_past + L], block-causal

        layers = []
        for i, block in enumerate(self.predictor_blocks):
            past = cache.layers[i] if cache is not None else None
            x, kv = block(x, rope, mask, past)
            layers.append(kv)

        x = x.view(B, T, per_step, -1)[:, :, c.cond_tokens :]
        return self.predictor_proj(self.predictor_norm(x)), KVCache(layers, first + T)
