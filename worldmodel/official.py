"""Loading the released V-JEPA 2 / V-JEPA 2-AC PyTorch checkpoints (``*.pt`` from the V-JEPA 2 repo).

A released checkpoint is a dict with ``encoder``, ``target_encoder``, ``predictor``, ...
entries (and non-tensor metadata such as ``epoch``), whose keys may carry ``module.`` /
``backbone.`` prefixes. It carries no config: :func:`encoder_config_from_weights` and
:func:`predictor_config_from_weights` read the widths, depths and MLP ratios from the
weights' shapes; the numbers of heads, which no shape shows, are the released models'
for the released widths (:data:`RELEASED_HEADS`) and ``width / 64`` otherwise (the
released models' head width). This module maps

- encoder keys (``patch_embed.proj``, ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``,
  ``norm``) to transformers' ``VJEPA2Model`` names, splitting the fused ``qkv`` into
  ``query``/``key``/``value``;
- AC predictor keys, which :class:`armworld.worldmodel.predictor.ACPredictor` shares verbatim.

What Meta's hub loader tolerates is tolerated here (keys the model does not use, such as
the encoder's ``pos_embed`` left over from before RoPE, and non-tensor values): they are
named in a warning. Every weight the model uses must be present with its shape.

:func:`world_model_from_official` builds the whole :class:`WorldModel` (the encoder from the
checkpoint or from a local Hugging Face V-JEPA 2 directory), casts float16 and bfloat16
weights to float32 so the predictor accepts the encoder's output, and preprocesses frames as Meta's V-JEPA 2-AC
transforms do (:class:`ReleasedFrameEncoder`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from armworld.worldmodel.checkpoint import CheckpointError, load_state_checked
from armworld.worldmodel.encoder import PRESETS, EncoderConfig, FrameEncoder
from armworld.worldmodel.predictor import ACPredictor, PredictorConfig
from armworld.worldmodel.world_model import WorldModel

PREFIXES = ("module.", "backbone.")
RELEASED_IMAGE_SIZE = 256  # px, the frames V-JEPA 2-AC was trained on
RELEASED_HEADS = {1024: 16, 1280: 16, 1408: 22, 1664: 16}  # width -> heads: ViT-L/H/g/G, the AC predictor (1024)
HEAD_WIDTH = 64  # the released models' head width, assumed for other widths
_JEPA_PREDICTOR = {k: getattr(PRESETS["vitg"], k) for k in ("frames_per_clip", "pred_hidden_size", "pred_depth", "pred_num_heads")}


def strip_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
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
_BLOCK = re.compile(r"^(?:blocks|predictor_blocks)\.(\d+)\.")


def tensors_of(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of a released state dict (prefixes stripped) and the keys of its other values."""
    tensors, other = {}, []
    for key, value in strip_prefixes(state_dict).items():
        if isinstance(value, torch.Tensor):
            tensors[key] = value
        else:
            other.append(key)
    return tensors, other


def encoder_to_hf(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Released encoder keys -> ``VJEPA2Model.encoder`` keys (fused ``qkv`` split in three),
    and the keys that map to nothing (e.g. ``pos_embed``)."""
    out, unused = {}, []
    for key, value in strip_prefixes(state_dict).items():
        if m := _QKV.match(key):
            for name, part in zip(("query", "key", "value"), value.chunk(3, dim=0)):
                out[f"layer.{m[1]}.attention.{name}.{m[2]}"] = part
            continue
        for pattern, replacement in _ENCODER_RULES:
            if pattern.match(key):
                out[pattern.sub(replacement, key)] = value
                break
        else:
            unused.append(key)
    return out, unused


def _heads(width: int, what: str) -> int:
    if width in RELEASED_HEADS:
        return RELEASED_HEADS[width]
    if width % HEAD_WIDTH:
        raise CheckpointError(
            f"cannot tell the number of heads of {what} of width {width} (not a released width "
            f"{sorted(RELEASED_HEADS)}, nor a multiple of {HEAD_WIDTH}); pass its config explicitly"
        )
    return width // HEAD_WIDTH


def _depth(state_dict: Mapping[str, torch.Tensor]) -> int:
    return 1 + max((int(m[1]) for key in state_dict if (m := _BLOCK.match(key))), default=-1)


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, what: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise CheckpointError(f"{what} has no {key!r}: not a released V-JEPA 2 state dict")
    return tuple(state_dict[key].shape)


def encoder_config_from_weights(
    state_dict: Mapping[str, torch.Tensor], image_size: int = RELEASED_IMAGE_SIZE
) -> EncoderConfig:
    """The :class:`EncoderConfig` of released encoder weights (prefixes stripped) for frames of
    ``image_size`` px: width, patch and tubelet sizes from ``patch_embed``, depth from the
    blocks, MLP ratio from ``mlp.fc1``, heads from the width (see the module docstring)."""
    width, _, tubelet, patch, _ = _shape(state_dict, "patch_embed.proj.weight", "the encoder")
    hidden = _shape(state_dict, "blocks.0.mlp.fc1.weight", "the encoder")[0]
    return EncoderConfig(
        image_size=image_size, patch_size=patch, tubelet_size=tubelet, hidden_size=width, depth=_depth(state_dict),
        num_heads=_heads(width, "the encoder"), mlp_ratio=hidden / width, **_JEPA_PREDICTOR,
    )


def predictor_config_from_weights(state_dict: Mapping[str, torch.Tensor], grid_size: int) -> PredictorConfig:
    """The :class:`PredictorConfig` of released AC predictor weights (prefixes stripped) over a
    ``grid_size`` x ``grid_size`` grid of encoder tokens."""
    width, embed = _shape(state_dict, "predictor_embed.weight", "the predictor")
    hidden = _shape(state_dict, "predictor_blocks.0.mlp.fc1.weight", "the predictor")[0]
    return PredictorConfig(
        embed_dim=embed, grid_size=grid_size, hidden_size=width, depth=_depth(state_dict),
        num_heads=_heads(width, "the predictor"), mlp_ratio=hidden / width,
    )


class ReleasedFrameEncoder(FrameEncoder):
    """A :class:`FrameEncoder` that prepares frames as Meta's V-JEPA 2-AC transforms do
    (``app/vjepa_droid/transforms.py`` at scale 1 and aspect ratio 1): the uint8 values as
    float, resized bilinearly without antialiasing (``align_corners=False``) when their size
    is not ``image_size``, then normalised by 255 x the ImageNet mean and std."""

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[..., H, W, 3]`` -> normalised float ``[..., 3, S, S]``, S = image_size."""
        if frames.dtype != torch.uint8 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [..., H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        lead, size = frames.shape[:-3], self.config.image_size
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
        x = (x - 255.0 * self.mean) / (255.0 * self.std)
        return x.reshape(*lead, 3, size, size)


def _warn_unused(path: Path, entry: str, unused: list[str]) -> None:
    if unused:
        shown = ", ".join(unused[:8]) + (f" and {len(unused) - 8} more" if len(unused) > 8 else "")
        warnings.warn(f"{path}: {entry!r} holds what the model does not use, left out: {shown}", stacklevel=3)


def read_released(path: str | Path) -> dict[str, Any]:
    """The entries of a released ``.pt`` checkpoint (read with ``weights_only``: no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no released checkpoint at {path}")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for unreadable pickles
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({e})") from e
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} holds a {type(raw).__name__}, not the dict of a released checkpoint")
    return raw


def _entries(raw: dict[str, Any], path: Path, keys: list[str]) -> None:
    """Refuse a checkpoint that lacks one of the state dicts ``keys``."""
    missing = [k for k in keys if not isinstance(raw.get(k), Mapping)]
    if missing:
        found = sorted(k for k, v in raw.items() if isinstance(v, Mapping))
        raise CheckpointError(f"{path} has no {missing} entries (found the state dicts {found})")


def _entry(raw: dict[str, Any], path: Path, key: str) -> dict[str, torch.Tensor]:
    """The tensors of the state dict ``raw[key]``; its other values are named in a warning."""
    tensors, other = tensors_of(raw[key])
    _warn_unused(path, key, other)
    return tensors


def load_official_encoder(encoder: FrameEncoder, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Load released encoder weights into ``encoder`` (its JEPA predictor is left as is);
    returns the keys that map to nothing. Every weight of the ViT must be present."""
    mapped, unused = encoder_to_hf(state_dict)
    load_state_checked(encoder.vjepa.encoder, mapped, "the released encoder weights")
    return unused


def load_official_predictor(predictor: ACPredictor, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Load released V-JEPA 2-AC predictor weights into ``predictor``; returns the keys it has
    no parameter for. Every parameter must be present (the unused ``extrinsics_encoder`` too)."""
    state = strip_prefixes(state_dict)
    own = predictor.state_dict()
    unused = sorted(set(state) - set(own))
    load_state_checked(predictor, {k: v for k, v in state.items() if k in own}, "the released AC predictor weights")
    return unused


def _hf_encoder(directory: Path, image_size: int) -> FrameEncoder:
    """The encoder of a local Hugging Face V-JEPA 2 directory, at ``image_size`` px (its RoPE grid follows)."""
    from transformers import VJEPA2Model

    if not (directory / "config.json").is_file():
        raise CheckpointError(f"{directory} is not a Hugging Face model directory (no config.json)")
    try:
        model = VJEPA2Model.from_pretrained(directory, local_files_only=True, crop_size=image_size)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{directory} holds no loadable V-JEPA 2 model ({e})") from e
    config = EncoderConfig.from_hf(model.config)
    return ReleasedFrameEncoder(config, model)


def world_model_from_official(
    checkpoint: str | Path,
    encoder_config: EncoderConfig | None = None,
    predictor_config: PredictorConfig | None = None,
    encoder: str | Path = "target_encoder",
    image_size: int = RELEASED_IMAGE_SIZE,
) -> WorldModel:
    """A :class:`WorldModel` from a released AC checkpoint (``vjepa2-ac-vitg.pt``: ViT-g + AC predictor).

    Args:
        checkpoint: the ``.pt`` file; its ``predictor`` entry is the AC predictor.
        encoder_config, predictor_config: the sizes; by default read from the weights (the
            predictor's grid from ``image_size``).
        encoder: the checkpoint entry holding the encoder (``target_encoder``, which the AC
            training encodes frames with, or ``encoder``, which Meta's hub loader reads; the
            released training loads both from the pretrained target encoder and updates
            neither), or a local Hugging Face V-JEPA 2 directory to take it from.
        image_size: the side (px) frames are resized to; 256 for the released model.

    Weights stored in float16 or bfloat16 (a Hugging Face directory's, say) are cast to
    float32 with the rest, so the predictor takes the encoder's output. Weights the model
    does not use are named in a warning (:mod:`warnings`); the model is in eval mode, on
    the CPU.
    """
    path = Path(checkpoint)
    raw = read_released(path)
    from_directory = Path(encoder).is_dir()
    _entries(raw, path, ["predictor"] if from_directory else [str(encoder), "predictor"])
    predictor_state = _entry(raw, path, "predictor")
    if from_directory:
        frame_encoder = _hf_encoder(Path(encoder), image_size)
        if encoder_config is not None and encoder_config != frame_encoder.config:
            raise ValueError(f"{encoder} holds an encoder of config {frame_encoder.config}, not {encoder_config}")
    else:
        encoder_state = _entry(raw, path, str(encoder))
        encoder_config = encoder_config or encoder_config_from_weights(strip_prefixes(encoder_state), image_size)
        frame_encoder = ReleasedFrameEncoder(encoder_config)
        _warn_unused(path, str(encoder), load_official_encoder(frame_encoder, encoder_state))
    grid = frame_encoder.config.grid_size
    predictor_config = predictor_config or predictor_config_from_weights(strip_prefixes(predictor_state), grid)
    if (predictor_config.embed_dim, predictor_config.grid_size) != (frame_encoder.embed_dim, grid):
        raise CheckpointError(
            f"the predictor of {path} takes {predictor_config.grid_size}x{predictor_config.grid_size} tokens of width "
            f"{predictor_config.embed_dim}; the encoder gives {grid}x{grid} of width {frame_encoder.embed_dim}"
        )
    predictor = ACPredictor(predictor_config)
    _warn_unused(path, "predictor", load_official_predictor(predictor, predictor_state))
    return WorldModel(frame_encoder, predictor).float().eval()
