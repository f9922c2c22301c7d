"""The options of ``armworld pretrain`` (:class:`PretrainConfig`) and ``armworld train``
(:class:`TrainConfig`), declared once for the library (:mod:`armworld.worldmodel.pretrain`,
:mod:`armworld.worldmodel.train`) and for the verbs' flags (:mod:`armworld.worldmodel.arguments`);
free of torch so that ``armworld --help`` stays fast. The training loop's own options are
:class:`armworld.worldmodel.loop_config.LoopConfig`, the ``loop`` field of both."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from armworld.envs.argtypes import check_options, non_negative_float, non_negative_int, number, option, positive_int, unit_float
from armworld.worldmodel.loop_config import LoopConfig, pretrain_loop

OBJECTIVES = ("ema", "sigreg")  # V-JEPA's EMA target; LeJEPA's SIGReg, no EMA
clip_frames = number(int, 2)  # frames per clip: at least one step (in training, one action)


def lerobot_keys(text: str) -> str:
    """An argparse ``type=``: a key map of LeRobot datasets (a name of
    ``armworld.datasets.lerobot.KEY_MAPS`` or a JSON key-map file), checked and returned as given."""
    from armworld.datasets.hdf5 import DatasetError
    from armworld.datasets.lerobot import key_map

    try:
        key_map(text)
    except DatasetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def lerobot_keys_option() -> Any:
    """The ``lerobot_keys`` field of both configs: how LeRobot data directories map onto armworld's keys."""
    return option(
        "armworld",
        "how LeRobot --data directories map onto armworld's camera, proprio and action keys: armworld (its own "
        "exports), droid, or a JSON key-map file (see datasets/README.md)",
        lerobot_keys,
    )


def jepa_presets() -> list[str]:
    """The encoder presets JEPA pretraining trains: V-JEPA 2 ViTs with patch-token latents."""
    from armworld.worldmodel.encoder import PRESETS, EncoderConfig  # torch, only once a config is checked

    return sorted(name for name, c in PRESETS.items() if isinstance(c, EncoderConfig) and c.latent == "tokens")


@dataclass
class PretrainConfig:
    """Everything ``armworld pretrain`` needs besides the data; each field but ``loop`` is also the
    flag of the same name (:func:`armworld.envs.argtypes.option`). Checking ``preset``
    imports the encoder registry (torch)."""

    preset: str = option("tiny", "encoder preset, a V-JEPA 2 ViT: tiny, tiny-p8, small, vitl, vith, vitg")
    clip_len: int = option(8, "frames per clip (a multiple of the encoder's tubelet size, 2)", clip_frames)
    frame_skip: int = option(1, "keep every k-th frame", positive_int)
    camera: str = option("front", "camera whose frames are used")
    ema: float = option(  # the paper's 0.99925 suits runs of 100k+ steps
        0.998, "target-encoder EMA momentum, in [0, 1)", number(float, 0.0, 1.0, below=True)
    )
    objective: str = option("ema", "ema: V-JEPA's EMA target; sigreg: LeJEPA, no EMA", choices=OBJECTIVES)
    sigreg_weight: float = option(0.05, "SIGReg weight (LeJEPA's lambda) with --objective sigreg", unit_float)
    augment: bool = option(False, "V-JEPA 2's random resized crop (area 0.3-1, aspect 0.75-1.35) per clip")
    lerobot_keys: str = lerobot_keys_option()
    loop: LoopConfig = field(default_factory=pretrain_loop)

    def __post_init__(self) -> None:
        check_options(self)
        from armworld.worldmodel.encoder import EncoderConfig, preset

        encoder = preset(self.preset)
        if self.preset not in jepa_presets():
            what = "pools its tokens into one latent" if isinstance(encoder, EncoderConfig) else "is no V-JEPA 2 ViT"
            raise ValueError(
                f"--preset {self.preset} {what}, which JEPA pretraining (on V-JEPA 2 patch tokens) would leave "
                f"untrained: train it end to end with `armworld train --preset {self.preset} --end-to-end`, or "
                f"pretrain one of {jepa_presets()}"
            )
        tubelet = encoder.tubelet_size
        if self.clip_len < tubelet or self.clip_len % tubelet:
            raise ValueError(
                f"clip_len (--clip-len) must be a positive multiple of the encoder's tubelet size {tubelet}, "
                f"got {self.clip_len}"
            )


@dataclass
class TrainConfig:
    """Everything ``armworld train`` needs besides the data and the starting weights; each field but
    ``loop`` is also the flag of the same name (:func:`armworld.envs.argtypes.option`).
    ``predictor`` is None when training starts from a trained model (``--init``), which brings its own."""

    predictor: str | None = option("tiny", "size of a fresh predictor: tiny (default), small, official; not with --init")
    clip_len: int = option(4, "frames per clip (T); T - 1 actions", clip_frames)
    frame_skip: int = option(1, "keep every k-th frame (default: the --init model's, else 1)", positive_int)
    rollout_steps: int = option(2, "autoregressive steps in the rollout loss, at most --clip-len - 1", non_negative_int)
    camera: str = option(
        "front", "camera whose frames are used (default: the --init model's, else the --encoder run's, else front)"
    )
    end_to_end: bool = option(
        False, "train the encoder with the predictor (LeWorldModel: squared errors + SIGReg) instead of freezing it"
    )
    sigreg_weight: float = option(  # LeWM: 0.09-0.1
        0.1, "SIGReg weight on the latents with --end-to-end", non_negative_float
    )
    lerobot_keys: str = lerobot_keys_option()
    loop: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        check_options(self)
        if self.rollout_steps > self.clip_len - 1:
            raise ValueError(
                f"rollout_steps (--rollout-steps) must lie in [0, clip_len - 1] = [0, {self.clip_len - 1}], "
                f"got {self.rollout_steps}"
            )
