"""Loading the released V-JEPA 2 / V-JEPA 2-AC PyTorch checkpoints (``*.pt`` from the V-JEPA 2 repo).

A released checkpoint is a dict with ``encoder``, ``target_encoder``, ``predictor``, ...
entries, whose keys may carry ``module.`` / ``backbone.`` prefixes. This module maps

- encoder keys (``patch_embed.proj``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``,
  ``norm``) to transformers' ``VJEPA2Model`` names, splitting the fused ``qkv`` into
  ``query``/``key``/``value``;
- AC predictor keys, which :class:`armworld.worldmodel.predictor.ACPredictor` shares
  verbatim, loading them strictly (including the unused ``extrinsics_encoder``).

The encoder sizes of Hugging Face-format directories load with
``FrameEncoder.from_pretrained(path)`` instead; this module is for the raw ``.pt`` files,
the only release of the AC predictor.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from armworld.worldmodel.checkpoint import CheckpointError, load_state_checked
from armworld.worldmodel.encoder import PRESETS, EncoderConfig, FrameEncoder
from armworld.worldmodel.predictor import OFFICIAL_AC, ACPredictor, PredictorConfig
from armworld.worldmodel.world_model import WorldModel

PREFIXES = ("module.", "backbone.")


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the DDP / wrapper prefixes (``module.``, ``backbone.``) from every key."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


_ENCODER_RULES = [
    (re.compile(r"^patch_embed\.proj\.(weight|bias)$"), r"embeddings.patch_embeddings.proj.\1"),
    (re.compile(r"^blocks\.(\d+)\.attn\.proj\.(weight|bias)$"), r"layer.\1.attention.proj.\2"),
    (re.compile(r"^blocks\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$"), r"layer.\1.\2.\3"),
    (re.compile(r"^norm\.(weight|bias)$"), r"layernorm.\1"),
]
_QKV = re.compile(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias)$")


def encoder_to_hf(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released encoder keys -> ``VJEPA2Model.encoder`` keys (fused ``qkv`` split in three)."""
    out = {}
    for key, value in strip_prefixes(state_dict).items():
        if m := _QKV.match(key):
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[f"layer.{m[1]}.attention.{name}.{m[2]}"] = part.clone()
            continue
        for pattern, replacement in _ENCODER_RULES:
            if pattern.match(key):
                out[pattern.sub(replacement, key)] = value
                break
        else:
            raise CheckpointError(f"unexpected key {key!r} in a released encoder state dict")
    return out


def load_official_encoder(encoder: FrameEncoder, state_dict: dict[str, torch.Tensor]) -> FrameEncoder:
    """Load released encoder weights into ``encoder`` (its JEPA predictor is left as is)."""
    load_state_checked(encoder.vjepa.encoder, encoder_to_hf(state_dict), "the released encoder weights")
    return encoder


def load_official_predictor(predictor: ACPredictor, state_dict: dict[str, torch.Tensor]) -> ACPredictor:
    """Load released V-JEPA 2-AC predictor weights into ``predictor``, strictly."""
    load_state_checked(predictor, strip_prefixes(state_dict), "the released AC predictor weights")
    return predictor


def world_model_from_official(
    checkpoint: str | Path,
    encoder_config: EncoderConfig = PRESETS["vitg"],
    predictor_config: PredictorConfig = OFFICIAL_AC,
    encoder_key: str = "target_encoder",
) -> WorldModel:
    """A :class:`WorldModel` from a released AC checkpoint (``vjepa2-ac-vitg.pt``: ViT-g + AC predictor).

    The AC training reads the frozen ``target_encoder``; so does this by default.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"no released checkpoint at {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for unreadable pickles
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({e})") from e
    missing = [k for k in (encoder_key, "predictor") if k not in raw]
    if missing:
        raise CheckpointError(f"{path} has no {missing} entries (found {sorted(raw)})")
    encoder = load_official_encoder(FrameEncoder(encoder_config), raw[encoder_key])
    predictor = load_official_predictor(ACPredictor(predictor_config), raw["predictor"])
    return WorldModel(encoder, predictor).eval()
