"""``WorldModel``: the frozen frame encoder plus the action-conditioned predictor.

What a planner needs, in the order it needs it::

    wm = load_world_model("runs/wm")                        # armworld.worldmodel.checkpoint
    with torch.no_grad():
        z = wm.encode(frames)                               # uint8 [1, T, H, W, 3] -> [1, T, N, D]
        z_goal = wm.encode(goal_frame)[:, -1]               # [1, N, D]
        ctx = wm.context(z, proprio, past_actions)          # history once: [1,T,7], [1,T-1,7]
        z_future = wm.rollout(ctx, candidates)              # [K, H, 7] -> [K, H, N, D]
        energy = wm.step_energy(z_future, z_goal)[:, -1]    # [K]: L1 of the last step's latent

:meth:`WorldModel.context` runs the predictor over the history steps (whose actions are
known) once and keeps their keys/values; :meth:`WorldModel.rollout` shares that cache
across all ``K`` candidates and extends it one imagined step at a time, so each step is
computed once. ``rollout(..., use_cache=False)`` recomputes the whole sequence at every
step (the same numbers, slower; a reference for tests and benchmarks).

All latents the model returns are normalised as the encoder's are (its ``normalize``: for
the ``vjepa2`` kind, layer norm without affine parameters for patch tokens, none for a
pooled latent), so predictions can be fed back as inputs and compared with encoded goals.
The encoder may be of any registered kind (:class:`armworld.worldmodel.encoder.Encoder`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from armworld.worldmodel.encoder import Encoder
from armworld.worldmodel.predictor import ACPredictor, KVCache


@dataclass
class Context:
    """The observed past: frame tokens ``z [B, T, N, D]``, proprio ``[B, T, 7]``, actions ``[B, T-1, 7]``.

    ``cache`` holds the predictor's keys/values of steps ``0 .. T-2`` (None when ``T == 1``).
    """

    z: torch.Tensor
    proprio: torch.Tensor
    actions: torch.Tensor
    cache: KVCache | None

    @property
    def batch_size(self) -> int:
        return self.z.shape[0]


def _matrix_from_euler_xyz(euler: torch.Tensor) -> torch.Tensor:
    """:func:`armworld.envs.conventions.matrix_from_euler_xyz` in torch: ``[..., 3]`` (rad) -> ``[..., 3, 3]``."""
    (ca, cb, cc), (sa, sb, sc) = euler.cos().unbind(-1), euler.sin().unbind(-1)
    rows = (
        (cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa),
        (sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa),
        (-sb, cb * sa, cb * ca),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def _euler_xyz_from_matrix(R: torch.Tensor) -> torch.Tensor:
    """:func:`armworld.envs.conventions.euler_xyz_from_matrix` in torch: ``[..., 3, 3]`` -> ``[..., 3]`` (rad)."""
    return torch.stack(
        [
            torch.atan2(R[..., 2, 1], R[..., 2, 2]),
            torch.asin((-R[..., 2, 0]).clamp(-1.0, 1.0)),
            torch.atan2(R[..., 1, 0], R[..., 0, 0]),
        ],
        dim=-1,
    )


def apply_delta(proprio: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """:func:`armworld.envs.conventions.apply_delta` in torch, on the tensors' device: the
    proprio ``[..., 7]`` reached by applying world-model actions ``[..., 7]``.

    Computed in float64 (float32 on MPS, which has no float64) and returned as float32, as
    the NumPy version does; on the CPU the two agree bit for bit on the values tested.
    """
    wide = torch.float32 if proprio.device.type == "mps" else torch.float64
    proprio, delta = proprio.to(wide), delta.to(wide)
    R = _matrix_from_euler_xyz(delta[..., 3:6]) @ _matrix_from_euler_xyz(proprio[..., 3:6])
    position = proprio[..., :3] + delta[..., :3]
    gripper = (proprio[..., 6:7] + delta[..., 6:7]).clamp(0.0, 1.0)
    return torch.cat([position, _euler_xyz_from_matrix(R), gripper], dim=-1).float()


def integrate_proprio(start: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """States ``[K, H, 7]`` at which ``actions [K, H, 7]`` are applied, from ``start [K, 7]``.

    ``states[:, 0] = start``, ``states[:, h] = apply_delta(states[:, h-1], actions[:, h-1])``
    (the convention of :mod:`armworld.envs.conventions`), on the actions' device, returned
    in their dtype.
    """
    states = [start.float()]
    for h in range(actions.shape[1] - 1):
        states.append(apply_delta(states[-1], actions[:, h]))
    return torch.stack(states, dim=1).to(actions.dtype)


class WorldModel(nn.Module):
    """Encoder + action-conditioned predictor; see the module docstring for the planning API."""

    def __init__(self, encoder: Encoder, predictor: ACPredictor) -> None:
        super().__init__()
        if predictor.config.embed_dim != encoder.embed_dim or predictor.config.num_patches != encoder.num_tokens:
            raise ValueError(
                f"predictor expects [{predictor.config.num_patches}, {predictor.config.embed_dim}] tokens, "
                f"encoder gives [{encoder.num_tokens}, {encoder.embed_dim}]"
            )
        self.encoder = encoder
        self.predictor = predictor

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """The encoder's normalisation of latents ``[..., D]``, applied to predictions so that
        they live where encodings do."""
        return self.encoder.normalize(z)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[B, T, H, W, 3]`` -> tokens ``[B, T, N, D]`` (each frame on its own)."""
        return self.encoder(frames)

    def predict(
        self, z: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor, cache: KVCache | None = None
    ) -> torch.Tensor:
        """Teacher-forced next latents: ``z [B,T,N,D]``, ``proprio [B,T,7]``, ``actions [B,T,7]`` -> ``[B,T,N,D]``.

        Row ``t`` of the result predicts frame ``t + 1`` from frames, states and actions up to ``t``.
        """
        return self.normalize(self.predictor(z, proprio, actions, cache=cache)[0])

    def context(self, z: torch.Tensor, proprio: torch.Tensor, actions: torch.Tensor | None = None) -> Context:
        """Prepare the observed past once: ``z [B,T,N,D]``, ``proprio [B,T,7]``, ``actions [B,T-1,7]``."""
        B, T = z.shape[:2]
        if actions is None:
            actions = z.new_zeros(B, 0, proprio.shape[-1])
        if proprio.shape[:2] != (B, T) or actions.shape[:2] != (B, T - 1):
            raise ValueError(
                f"context of {T} frames needs proprio [B, {T}, 7] and actions [B, {T - 1}, 7], "
                f"got {tuple(proprio.shape)} and {tuple(actions.shape)}"
            )
        cache = None
        if T > 1:
            cache = self.predictor(z[:, :-1], proprio[:, :-1], actions)[1]
        return Context(z=z, proprio=proprio, actions=actions, cache=cache)

    def step_energy(self, imagined: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """How far each imagined step is from the goal: ``imagined [K, H, N, D]``, ``goal [N, D]``
        -> ``[K, H]``, the L1 between latents, mean over tokens and dims (V-JEPA 2-AC's energy)."""
        return (imagined - goal).abs().mean(dim=(-1, -2))

    def rollout(
        self,
        context: Context,
        actions: torch.Tensor,
        proprio: torch.Tensor | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Imagine ``H`` steps for each of ``K`` action sequences: ``actions [K, H, 7]`` -> ``[K, H, N, D]``.

        Row ``h`` is the predicted frame after ``actions[:, h]``; each prediction is fed back
        as the next input. ``proprio [K, H, 7]`` gives the state at which each action is
        applied; by default it is integrated from the context's last state with the actions
        (as the released planner does). A context of batch 1 is shared by all ``K``.
        """
        K, H = actions.shape[:2]
        if context.batch_size not in (1, K):
            raise ValueError(f"context batch {context.batch_size} must be 1 or match the {K} action sequences")
        if proprio is None:
            proprio = integrate_proprio(context.proprio[:, -1].expand(K, -1), actions)
        z_hist = context.z.expand(K, -1, -1, -1)
        out = []
        if use_cache:
            cache = context.cache
            if cache is not None and context.batch_size == 1 and K > 1:
                cache = cache.expand(K)
            z = z_hist[:, -1:]
            for h in range(H):
                pred, cache = self.predictor(z, proprio[:, h : h + 1], actions[:, h : h + 1], cache=cache)
                z = self.normalize(pred)
                out.append(z)
            return torch.cat(out, dim=1)
        s_hist = context.proprio[:, :-1].expand(K, -1, -1)
        a_hist = context.actions.expand(K, -1, -1)
        z = z_hist
        for h in range(H):
            s = torch.cat([s_hist, proprio[:, : h + 1]], dim=1)
            a = torch.cat([a_hist, actions[:, : h + 1]], dim=1)
            pred = self.normalize(self.predictor(z, s, a)[0][:, -1:])
            out.append(pred)
            z = torch.cat([z, pred], dim=1)
        return torch.cat(out, dim=1)
