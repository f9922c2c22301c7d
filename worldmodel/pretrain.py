"""Self-supervised video pretraining of the encoder (V-JEPA, Eq. 1 of the V-JEPA 2 paper).

For a clip ``x`` and a multi-block mask (:mod:`armworld.worldmodel.masks`):

1. the context encoder ``E_theta`` sees only the unmasked tokens (the context);
2. the JEPA predictor (``VJEPA2Model``'s own, fed the context and the target positions)
   predicts the masked tokens;
3. the target encoder ``E_theta_bar`` (an EMA of the context encoder, never trained by
   gradients) sees the whole clip; its tokens, layer-normed without affine parameters, are
   the regression targets;
4. loss = mean L1 over masked tokens, averaged over the mask configs.

The encoder that downstream code uses is the EMA target encoder (``load_encoder``).

``objective="sigreg"`` (LeJEPA) replaces the EMA target: the targets are the online
encoder's own tokens on the whole clip, with gradients, and
``loss = (1 - w) * L1 + w * SIGReg(tokens)`` (:mod:`armworld.worldmodel.sigreg`) keeps
them from collapsing; no EMA, no stop-gradient, one weight ``w``. The target encoder is
then a copy of the online one after every step, so ``load_encoder`` reads the trained
weights either way.

Training masks are drawn from torch's global RNG, which the training loop reseeds from
``(seed, rank, step)`` before every step; validation masks come from a generator of their
own, reset to ``seed`` whenever the module enters eval mode, so every evaluation scores
the same masks and evaluating never shifts the training masks.

Run it as ``armworld pretrain --data FILE.h5 --preset tiny --steps N --out runs/enc`` or,
on several processes, ``torchrun --nproc-per-node 2 -m armworld.cli pretrain ...``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from armworld.worldmodel.augment import random_resized_crop
from armworld.envs.argtypes import options_from
from armworld.worldmodel.configs import PretrainConfig
from armworld.worldmodel.encoder import FrameEncoder, encoder_config_to_dict, preset
from armworld.worldmodel.engine import fit, seed_everything
from armworld.worldmodel.masks import MultiBlockMasker
from armworld.worldmodel.sigreg import SIGReg

class JEPA(nn.Module):
    """Context encoder (+ its JEPA predictor) and target encoder (an EMA, or the online
    encoder itself with ``sigreg_weight``); ``forward(batch) -> (loss, metrics)``."""

    kind = "encoder"

    def __init__(
        self,
        encoder: FrameEncoder,
        ema: float = 0.998,
        seed: int = 0,
        sigreg_weight: float | None = None,
        augment: bool = False,
    ) -> None:
        """``seed`` fixes the validation masks (training masks come from torch's global RNG);
        ``sigreg_weight`` selects the SIGReg objective (no EMA target) with that weight;
        ``augment`` crops each training clip at random (validation clips are left whole)."""
        super().__init__()
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema momentum must lie in [0, 1), got {ema}")
        self.encoder = encoder
        self.target = copy.deepcopy(encoder).requires_grad_(False)
        self.ema = 0.0 if sigreg_weight is not None else ema
        self.sigreg_weight = sigreg_weight
        self.sigreg = SIGReg() if sigreg_weight is not None else None
        self.augment = augment
        c = encoder.config
        grid = (c.frames_per_clip // c.tubelet_size, c.grid_size, c.grid_size)
        self.masker = MultiBlockMasker(grid)
        self.seed = seed
        self.valid_generator = torch.Generator().manual_seed(seed)

    def train(self, mode: bool = True) -> JEPA:
        super().train(mode)
        if not mode:  # every evaluation starts from the same validation masks
            self.valid_generator.manual_seed(self.seed)
        return self

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch["frames"]``: uint8 ``[B, T, H, W, 3]`` with ``T = frames_per_clip``."""
        frames = batch["frames"]
        c = self.encoder.config
        if frames.ndim != 5 or frames.shape[1] != c.frames_per_clip:
            raise ValueError(f"frames must be [B, {c.frames_per_clip}, H, W, 3], got {tuple(frames.shape)}")
        B = frames.shape[0]
        pixels = self.encoder.pixels(frames)  # [B, T, 3, S, S]
        if self.augment and self.training:
            pixels = random_resized_crop(pixels)
        if self.sigreg is not None:
            target = self.encoder.encode_clip(pixels)  # [B, M, D], with gradients
        else:
            with torch.no_grad():
                target = self.target.encode_clip(pixels)
                target = F.layer_norm(target.float(), (target.shape[-1],))  # [B, M, D], float32 under any autocast
        losses = []
        metrics = {}
        generator = torch.default_generator if self.training else self.valid_generator
        for i, mask in enumerate(self.masker(B, generator)):
            ctx_idx, tgt_idx = mask.context.to(frames.device), mask.target.to(frames.device)
            context = self.encoder.encode_clip(pixels, ctx_idx)  # [B, Nc, D]
            # The HF predictor gathers the context from a full-length sequence by index.
            full = context.new_zeros(target.shape).scatter(1, ctx_idx[..., None].expand_as(context), context)
            pred = self.encoder.vjepa.predictor(
                encoder_hidden_states=full, context_mask=[ctx_idx], target_mask=[tgt_idx]
            ).last_hidden_state  # [B, Nt, D]
            wanted = torch.gather(target, 1, tgt_idx[..., None].expand(-1, -1, target.shape[-1]))
            losses.append((pred.float() - wanted.float()).abs().mean())
            metrics[f"loss_mask{i}"] = float(losses[-1].detach())
            metrics[f"masked_fraction{i}"] = tgt_idx.shape[1] / target.shape[1]
        loss = torch.stack(losses).mean()
        if self.sigreg is not None:
            sigreg = self.sigreg(target)
            metrics["loss_sigreg"] = float(sigreg.detach())
            loss = (1.0 - self.sigreg_weight) * loss + self.sigreg_weight * sigreg
        return loss, metrics

    @torch.no_grad()
    def after_step(self) -> None:
        """target <- ema * target + (1 - ema) * context, for the encoder weights (a copy with SIGReg)."""
        online = list(self.encoder.vjepa.encoder.parameters())
        target = list(self.target.vjepa.encoder.parameters())
        torch._foreach_mul_(target, self.ema)
        torch._foreach_add_(target, online, alpha=1.0 - self.ema)

    def checkpoint_config(self) -> dict:
        return {"kind": self.kind, "encoder": encoder_config_to_dict(self.encoder.config)}

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return self.state_dict()

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        from armworld.worldmodel.checkpoint import load_state_checked

        load_state_checked(self, state, "the encoder run being resumed")


def build_jepa(config: PretrainConfig) -> JEPA:
    """A freshly initialised :class:`JEPA`; the weights are a function of ``config.loop.seed``."""
    seed_everything(config.loop.seed)
    sigreg_weight = config.sigreg_weight if config.objective == "sigreg" else None
    encoder = FrameEncoder(dataclasses.replace(preset(config.preset), frames_per_clip=config.clip_len))
    return JEPA(encoder, ema=config.ema, seed=config.loop.seed, sigreg_weight=sigreg_weight, augment=config.augment)


def pretrain(config: PretrainConfig, data: list[str], out: str | Path) -> Path | None:
    """Pretrain an encoder on the frames of ``data`` (HDF5 files, LeRobot directories); returns the last checkpoint (rank 0)."""
    from armworld.datasets.clips import FrameDataset

    kwargs = dict(clip_len=config.clip_len, frame_skip=config.frame_skip, camera=config.camera, lerobot_keys=config.lerobot_keys)
    train_data = FrameDataset(list(data), split="train", **kwargs)
    valid_data = FrameDataset(list(data), split="valid", **kwargs)
    task = build_jepa(config)
    extra = {k: v for k, v in dataclasses.asdict(config).items() if k != "loop"}
    return fit(task, config.loop, train_data, valid_data, out, data_files=list(data), extra_config=extra)


def run(args: argparse.Namespace) -> int:
    """Pretrain from parsed ``armworld pretrain`` arguments."""
    from armworld.worldmodel.arguments import loop_config

    config = options_from(PretrainConfig, args, loop=loop_config(args))
    path = pretrain(config, args.data, args.out)
    if path is not None:
        print(f"encoder checkpoint: {path}")
    return 0


if __name__ == "__main__":  # the entry point is the CLI's, which this layer does not import
    raise SystemExit(f"run `python -m armworld.cli pretrain ...` (on several processes: `torchrun --nproc-per-node N "
                     f"-m armworld.cli pretrain ...`), the `armworld pretrain` verb")
