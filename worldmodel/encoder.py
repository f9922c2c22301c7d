"""The frame encoder: transformers' ``VJEPA2Model`` at a preset size, fed uint8 frames.

V-JEPA 2-AC encodes every frame on its own: the frame is duplicated into one tubelet
(``tubelet_size`` = 2 frames), so a frame becomes ``N = (image_size / patch_size)^2``
patch tokens, and the tokens are layer-normed without affine parameters
(``normalize_reps``). :class:`FrameEncoder` does exactly that::

    encoder = FrameEncoder(PRESETS["tiny"])
    z = encoder(frames)            # frames uint8 [B, T, H, W, 3] -> z float [B, T, N, D]

Pretraining (:mod:`armworld.worldmodel.pretrain`) feeds clips instead, ``T / 2`` tubelets
per clip, through :meth:`FrameEncoder.encode_clip`, which lets the context encoder see
only the unmasked tokens. The ``VJEPA2Model`` inside also holds the JEPA predictor that
pretraining uses; planning never runs it.

Two layouts of latent, chosen by ``EncoderConfig.latent`` and recorded in every checkpoint's
config, so planners, agents and the harness never need to know which they get:

- ``tokens``: the ``N`` patch tokens, layer-normed (V-JEPA 2-AC, DINO-WM);
- ``pooled``: one vector per frame, ``N = 1`` (LeWorldModel): a learned query attends over
  the patch tokens (a CLS token read out after the fact) and an MLP projector with
  BatchNorm maps it to ``D``; no layer norm after it, which would cancel SIGReg's pull
  toward an isotropic Gaussian (:mod:`armworld.worldmodel.sigreg`). Meant to be trained
  end to end with the predictor (``armworld train --end-to-end``).

:meth:`FrameEncoder.normalize` is the kind's normalisation of latents (layer norm or
none); the world model applies it to its predictions too, so predictions and encodings
live in the same space.

Presets: ``tiny``, ``tiny-p8`` (8 px patches: 64 tokens, the cube spans more of one),
``tiny-pooled`` and ``small`` train on a CPU; ``vitl``, ``vith`` and ``vitg`` are the
released V-JEPA 2 sizes, whose weights load from a local Hugging Face-format directory
(``FrameEncoder.from_pretrained(path)``); nothing is ever downloaded.

Encoder kinds. :class:`FrameEncoder` is the kind ``vjepa2``, one entry of :data:`ENCODERS`.
The world model, training, checkpoints, planners, agents and the CLI ask an encoder only what
the :class:`Encoder` protocol says (latent width, tokens per frame and their grid, frame size,
normalisation, encoding), and build one from its config with :func:`build_encoder`.
Checkpoints record the kind with the config (``config.json``: ``"encoder": {"kind": "vjepa2",
...}``; :func:`encoder_config_to_dict`); a config without it is ``vjepa2``'s, the only kind
before kinds were recorded. Another kind is a module holding its config dataclass and its
``nn.Module``, plus one :func:`register_encoder` call with its presets at the end of this one
(worldmodel/README.md, "Adding an encoder").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn
from transformers import VJEPA2Config, VJEPA2Model

from armworld.envs.conventions import IMAGENET_MEAN, IMAGENET_STD


class Encoder(Protocol):
    """What everything outside an encoder kind asks of it: a ``torch.nn.Module`` built from its
    config alone, holding it as ``config``, with these members."""

    @property
    def config(self) -> Any:
        """A frozen dataclass of JSON-able fields, ``image_size`` (px) among them, recorded in
        checkpoints (:func:`encoder_config_to_dict`); frames are resized to ``image_size`` square."""

    @property
    def embed_dim(self) -> int:
        """Latent width ``D``."""

    @property
    def latent_grid(self) -> int:
        """Side of the square grid the ``N`` latents of a frame lie on (the predictor's 2D
        positions): ``N = latent_grid ** 2``, 1 for one pooled vector per frame."""

    @property
    def num_tokens(self) -> int:
        """Latents per frame, ``N = latent_grid ** 2``."""

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """The kind's normalisation of latents ``[..., D]``; the world model applies it to its
        predictions too, so that they live where encodings do."""

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Each frame on its own: uint8 ``[B, T, H, W, 3]`` -> normalised latents ``[B, T, N, D]``."""


LATENTS = ("tokens", "pooled")


@dataclass(frozen=True)
class EncoderConfig:
    """The ``vjepa2`` kind's config: sizes of the ViT encoder and of the JEPA predictor used
    while pretraining it, and the latent it gives (``tokens`` or ``pooled``, see the module
    docstring)."""

    image_size: int = 64  # frames are resized to image_size x image_size
    patch_size: int = 16
    tubelet_size: int = 2
    frames_per_clip: int = 8  # clip length during pretraining (sets the RoPE depth grid)
    hidden_size: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    pred_hidden_size: int = 96
    pred_depth: int = 2
    pred_num_heads: int = 4
    latent: str = "tokens"

    def __post_init__(self) -> None:
        if self.latent not in LATENTS:
            raise ValueError(f"unknown latent kind {self.latent!r}; choose one of {list(LATENTS)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_heads or self.pred_hidden_size % self.pred_num_heads:
            raise ValueError("hidden sizes must be multiples of their numbers of heads")
        if self.frames_per_clip % self.tubelet_size:
            raise ValueError(f"frames_per_clip {self.frames_per_clip} is not a multiple of tubelet_size")

    @property
    def grid_size(self) -> int:
        """Patches per image side."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """Patch tokens per frame inside the ViT."""
        return self.grid_size**2

    @property
    def latent_grid(self) -> int:
        """Side of the latent grid a frame is encoded to (1 for a pooled latent)."""
        return 1 if self.latent == "pooled" else self.grid_size

    @property
    def num_tokens(self) -> int:
        """Latent tokens per encoded frame, ``N`` of ``[B, T, N, D]``."""
        return self.latent_grid**2

    def to_hf(self) -> VJEPA2Config:
        """The transformers config of this size."""
        return VJEPA2Config(
            patch_size=self.patch_size,
            crop_size=self.image_size,
            frames_per_clip=self.frames_per_clip,
            tubelet_size=self.tubelet_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.depth,
            num_attention_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            pred_hidden_size=self.pred_hidden_size,
            pred_num_hidden_layers=self.pred_depth,
            pred_num_attention_heads=self.pred_num_heads,
        )

    @classmethod
    def from_hf(cls, config: VJEPA2Config) -> EncoderConfig:
        """The sizes of a transformers config (e.g. of a released checkpoint)."""
        return cls(
            image_size=config.crop_size,
            patch_size=config.patch_size,
            tubelet_size=config.tubelet_size,
            frames_per_clip=config.frames_per_clip,
            hidden_size=config.hidden_size,
            depth=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            mlp_ratio=float(config.mlp_ratio),
            pred_hidden_size=config.pred_hidden_size,
            pred_depth=config.pred_num_hidden_layers,
            pred_num_heads=config.pred_num_attention_heads,
        )


class AttentionPool(nn.Module):
    """A learned query attending over tokens: ``[B, N, D] -> [B, D]`` (a CLS token read out)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.attention = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.attention(self.query.expand(tokens.shape[0], -1, -1), tokens, tokens, need_weights=False)[0][:, 0]


def projector(dim: int) -> nn.Sequential:
    """LeWM's projector: an MLP with BatchNorm, ``[M, D] -> [M, D]``."""
    return nn.Sequential(nn.Linear(dim, 2 * dim), nn.BatchNorm1d(2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


class FrameEncoder(nn.Module):
    """uint8 frames -> latents ``[B, T, N, D]``: layer-normed patch tokens, or one pooled
    vector per frame (``config.latent``), on top of ``transformers.VJEPA2Model``."""

    def __init__(self, config: EncoderConfig, model: VJEPA2Model | None = None) -> None:
        super().__init__()
        self.config = config
        self.vjepa = model if model is not None else VJEPA2Model(config.to_hf())
        if config.latent == "pooled":
            self.pool = AttentionPool(config.hidden_size, config.num_heads)
            self.projector = projector(config.hidden_size)
        self.register_buffer("mean", torch.from_numpy(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.from_numpy(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> FrameEncoder:
        """Released weights from a local Hugging Face-format directory (never the network)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a Hugging Face model directory (no config.json)")
        model = VJEPA2Model.from_pretrained(path, local_files_only=True)
        return cls(EncoderConfig.from_hf(model.config), model)

    @property
    def embed_dim(self) -> int:
        """Token width ``D``."""
        return self.config.hidden_size

    @property
    def latent_grid(self) -> int:
        """Side of the latent grid a frame is encoded to (1 for a pooled latent)."""
        return self.config.latent_grid

    @property
    def num_tokens(self) -> int:
        """Latent tokens per frame, ``N``."""
        return self.config.num_tokens

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """This kind's normalisation of latents ``[..., D]``: layer norm without affine
        parameters for tokens, none for a pooled latent (its BatchNorm projector sets the scale)."""
        return z if self.config.latent == "pooled" else F.layer_norm(z, (z.shape[-1],))

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[..., H, W, 3]`` -> normalised float ``[..., 3, S, S]``, S = image_size."""
        if frames.dtype != torch.uint8 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be uint8 [..., H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float().div_(255.0)
        size = self.config.image_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = (x - self.mean) / self.std
        return x.reshape(*lead, 3, size, size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Encode each frame on its own: uint8 ``[B, T, H, W, 3]`` -> ``[B, T, N, D]``.

        Each frame fills one tubelet (HF duplicates a lone frame), as V-JEPA 2-AC does;
        the tokens are then layer-normed without affine parameters, or pooled and projected
        (``N = 1``).
        """
        if frames.ndim != 5:
            raise ValueError(f"frames must be [B, T, H, W, 3], got shape {tuple(frames.shape)}")
        B, T = frames.shape[:2]
        x = self.pixels(frames).flatten(0, 1).unsqueeze(1)  # [B*T, 1, 3, S, S]
        z = self.vjepa.encoder(pixel_values_videos=x).last_hidden_state  # [B*T, N, D]
        if self.config.latent == "pooled":
            z = self.projector(self.pool(z))[:, None]  # [B*T, 1, D]
        return self.normalize(z).view(B, T, *z.shape[1:])

    def encode_clip(self, pixels: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Encode clips ``[B, T, 3, S, S]`` (normalised) -> tokens ``[B, K, D]`` after the final LN.

        Tokens are ordered (tubelet, row, column), ``T / tubelet_size * N`` in all. With
        ``keep`` (indices ``[B, K]``), only those tokens enter the transformer, keeping their
        3D RoPE positions, so the masked ones are never seen (the JEPA context encoder).
        """
        encoder = self.vjepa.encoder
        x = encoder.embeddings(pixels)  # [B, T/2 * N, D]
        if keep is not None:
            x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        for layer in encoder.layer:
            x = layer(x, keep)[0]
        return encoder.layernorm(x)


@dataclass(frozen=True)
class EncoderKind:
    """A registered kind of encoder: the dataclass of its config and what builds an
    :class:`Encoder` from one (usually the ``nn.Module`` class itself)."""

    config: type
    build: Callable[[Any], Encoder]


ENCODERS: dict[str, EncoderKind] = {}  # kind name -> EncoderKind, filled by register_encoder
PRESETS: dict[str, Any] = {}  # preset name -> config of a registered kind, filled by register_encoder
UNRECORDED_KIND = "vjepa2"  # the kind of a checkpoint config that records none (written before kinds were)


def register_encoder(kind: str, config: type, build: Callable[[Any], Encoder], presets: Mapping[str, Any]) -> None:
    """Make ``kind`` an encoder kind: checkpoints, ``--preset`` and :func:`build_encoder` then know it.

    ``config`` is a frozen dataclass with an ``image_size`` field and none called ``kind``
    (checkpoints record the kind beside the fields); ``build(config)`` returns an
    :class:`Encoder`; ``presets`` names configs of this kind (``armworld pretrain|train --preset``).
    """
    if kind in ENCODERS:
        raise ValueError(
            f"encoder kind {kind!r} is already registered ({ENCODERS[kind].config.__name__}); pick another name"
        )
    names = {f.name for f in fields(config)} if is_dataclass(config) else set()
    if "image_size" not in names or "kind" in names:
        raise ValueError(
            f"{config.__name__} must be a dataclass with an image_size field and none called kind "
            "(checkpoints record the kind beside the fields)"
        )
    taken = [k for k, entry in ENCODERS.items() if entry.config is config]
    if taken:
        raise ValueError(f"{config.__name__} is already the config of encoder kind {taken[0]!r}; give {kind!r} its own")
    clashing = sorted(set(presets) & set(PRESETS))
    if clashing:
        raise ValueError(f"encoder presets {clashing} are already registered; rename those of {kind!r}")
    foreign = sorted(name for name, value in presets.items() if type(value) is not config)
    if foreign:
        raise ValueError(f"presets {foreign} of encoder kind {kind!r} are not {config.__name__} instances")
    ENCODERS[kind] = EncoderKind(config, build)
    PRESETS.update(presets)


def preset(name: str) -> Any:
    """The encoder config called ``name`` (one of :data:`PRESETS`, of any kind)."""
    if name not in PRESETS:
        raise ValueError(f"unknown encoder preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def kind_of(config: Any) -> str:
    """The registered kind whose config class ``config`` is an instance of (exactly)."""
    for kind, entry in ENCODERS.items():
        if type(config) is entry.config:
            return kind
    raise ValueError(
        f"{type(config).__name__} is the config of no registered encoder kind ({sorted(ENCODERS)}); "
        "register its kind with armworld.worldmodel.encoder.register_encoder"
    )


def build_encoder(config: Any) -> Encoder:
    """A freshly initialised encoder of ``config``'s kind (its weights follow torch's global RNG)."""
    return ENCODERS[kind_of(config)].build(config)


def encoder_config_to_dict(config: Any) -> dict[str, Any]:
    """What checkpoints record of an encoder: ``{"kind": kind, **fields}``."""
    return {"kind": kind_of(config), **asdict(config)}


def encoder_config_from_dict(values: Mapping[str, Any]) -> Any:
    """Inverse of :func:`encoder_config_to_dict`; without ``kind``, ``vjepa2``'s config
    (:data:`UNRECORDED_KIND`). An unknown kind or field is an error."""
    values = dict(values)
    kind = values.pop("kind", UNRECORDED_KIND)
    if not isinstance(kind, str) or kind not in ENCODERS:
        raise ValueError(
            f"unknown encoder kind {kind!r}; registered: {sorted(ENCODERS)} (a kind registers with "
            "armworld.worldmodel.encoder.register_encoder)"
        )
    config = ENCODERS[kind].config
    unknown = set(values) - {f.name for f in fields(config)}
    if unknown:
        raise ValueError(f"unknown {kind} encoder config keys: {sorted(unknown)}")
    return config(**values)


_OFFICIAL = dict(image_size=256, patch_size=16, frames_per_clip=64, pred_hidden_size=384, pred_depth=12, pred_num_heads=12)

register_encoder("vjepa2", EncoderConfig, FrameEncoder, presets={
    # 64 px frames, 4x4 grid of 16 px patches: 16 tokens of width 128. Trains on a CPU and
    # keeps the predictor cheap enough to plan in about a second on two cores.
    "tiny": EncoderConfig(),
    # The same ViT on 8 px patches: an 8x8 grid, 64 tokens (4x the predictor's work per step).
    "tiny-p8": EncoderConfig(patch_size=8),
    # 8 px patches pooled into one latent per frame (LeWM): the predictor's cheapest input.
    "tiny-pooled": EncoderConfig(patch_size=8, latent="pooled"),
    # 128 px frames, 8x8 grid of 16 px patches, width 256.
    "small": EncoderConfig(
        image_size=128, patch_size=16, hidden_size=256, depth=6, num_heads=4, pred_hidden_size=128, pred_depth=4
    ),
    "vitl": EncoderConfig(**_OFFICIAL, hidden_size=1024, depth=24, num_heads=16),
    "vith": EncoderConfig(**_OFFICIAL, hidden_size=1280, depth=32, num_heads=16),
    "vitg": EncoderConfig(**_OFFICIAL, hidden_size=1408, depth=40, num_heads=22, mlp_ratio=48 / 11),
})

from armworld.worldmodel.positions import PositionReader, PositionReaderConfig  # noqa: E402 (a kind registers last)

# Object and TCP positions read by a small CNN (positions.py): the latent of object_model.py,
# trained by `armworld train-objects`, which a JEPA run would not know how to train.
register_encoder("positions", PositionReaderConfig, PositionReader, presets={})
