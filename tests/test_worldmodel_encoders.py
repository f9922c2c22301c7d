"""Encoder kinds: a kind registered in-process trains, loads, exports and plans through the
normal world-model path (``armworld train``, checkpoints, ``armworld export``, ``armworld
eval``) with no other file knowing it; checkpoints record the kind, and those without one
are ``vjepa2``'s."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from datasets_helpers import ENV_ARGS, synthetic_episode
from torch import nn

from armworld.cli import main as armworld
from armworld.datasets.hdf5 import TrajectoryWriter
from armworld.worldmodel.checkpoint import CheckpointError, load_encoder, load_world_model, read_checkpoint
from armworld.worldmodel.encoder import (
    ENCODERS,
    PRESETS,
    EncoderConfig,
    FrameEncoder,
    encoder_config_from_dict,
    encoder_config_to_dict,
    kind_of,
    register_encoder,
)
from armworld.worldmodel.pretrain import PretrainConfig

DEFAULT_MODEL = Path(str(resources.files("armworld.worldmodel") / "weights" / "default"))  # the shipped model


@dataclass(frozen=True)
class ToyConfig:
    """16 px frames -> a 2x2 grid of tokens of width 8."""

    image_size: int = 16
    width: int = 8
    grid: int = 2


class ToyEncoder(nn.Module):
    """A two-layer conv net: uint8 frames ``[B, T, 16, 16, 3]`` -> layer-normed tokens ``[B, T, 4, 8]``."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        patch = config.image_size // config.grid
        width = config.width
        self.net = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GELU(), nn.Conv2d(width, width, patch, stride=patch))

    @property
    def embed_dim(self) -> int:
        return self.config.width

    @property
    def latent_grid(self) -> int:
        return self.config.grid

    @property
    def num_tokens(self) -> int:
        return self.config.grid**2

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(z, (z.shape[-1],))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        B, T = frames.shape[:2]
        x = frames.flatten(0, 1).permute(0, 3, 1, 2).float().div(255.0)  # [B*T, 3, 16, 16]
        z = self.net(x).flatten(2).transpose(1, 2)  # [B*T, 4, 8]
        return self.normalize(z).reshape(B, T, *z.shape[1:])


@pytest.fixture
def toy_kind() -> Iterator[None]:
    """The kind ``toy`` with its preset ``toy-16``, registered for one test."""
    register_encoder("toy", ToyConfig, ToyEncoder, presets={"toy-16": ToyConfig()})
    yield
    del ENCODERS["toy"], PRESETS["toy-16"]


def test_a_registered_kind_trains_loads_and_plans_through_the_normal_path(tmp_path, toy_kind):
    data = str(tmp_path / "d.h5")
    with TrajectoryWriter(data, dict(ENV_ARGS, env_kwargs={"image_size": 16})) as writer:
        for seed in range(2):
            writer.append(synthetic_episode(8, seed, image_size=16))
    run = tmp_path / "wm"
    assert armworld(["train", "--data", data, "--preset", "toy-16", "--end-to-end", "--steps", "2", "--batch-size", "4",
                     "--device", "cpu", "--out", str(run)]) == 0

    checkpoint = read_checkpoint(run)
    assert checkpoint.config["encoder"] == {"kind": "toy", "image_size": 16, "width": 8, "grid": 2}
    model = load_world_model(run)
    assert type(model.encoder) is ToyEncoder and model.predictor.config.num_patches == 4
    assert all(torch.equal(value, checkpoint.state_dict[name]) for name, value in model.state_dict().items())
    assert type(load_encoder(run)) is ToyEncoder
    assert armworld(["export", str(run), "--out", str(tmp_path / "ship")]) == 0
    assert type(load_world_model(tmp_path / "ship").encoder) is ToyEncoder

    out = tmp_path / "eval"
    assert armworld(["eval", "--agent", f"wm:{run}", "--env", "armworld/FrankaReach-v0", "--episodes", "1", "--seeds", "0",
                     "--max-steps", "2", "--samples", "8", "--iterations", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 1 and results["env_kwargs"]["image_size"] == 16  # the kind's frame size


def test_checkpoints_record_the_kind_and_those_without_one_are_vjepa2(tmp_path):
    tiny = PRESETS["tiny"]
    assert encoder_config_to_dict(tiny) == {"kind": "vjepa2", **dataclasses.asdict(tiny)}
    assert encoder_config_from_dict(encoder_config_to_dict(tiny)) == tiny
    assert encoder_config_from_dict(dataclasses.asdict(tiny)) == tiny  # recorded before kinds were

    shipped = read_checkpoint(DEFAULT_MODEL)
    assert shipped.config["encoder"]["kind"] == "vjepa2"
    older = tmp_path / "older"  # the same checkpoint as written before kinds were recorded
    shutil.copytree(shipped.path, older)
    kindless = {key: value for key, value in shipped.config["encoder"].items() if key != "kind"}
    (older / "config.json").write_text(json.dumps(dict(shipped.config, encoder=kindless)))
    encoders = [load_world_model(path).encoder.eval() for path in (DEFAULT_MODEL, older)]
    assert all(type(encoder) is FrameEncoder for encoder in encoders)
    frames = torch.randint(0, 256, (1, 2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(encoders[0](frames), encoders[1](frames))  # loads as before, bit for bit

    renamed = tmp_path / "renamed"
    shutil.copytree(shipped.path, renamed)
    config = dict(shipped.config, encoder=dict(shipped.config["encoder"], kind="dino"))
    (renamed / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"'encoder' is not a valid encoder config \(unknown encoder kind 'dino'; "
                                              r"registered: \['positions', 'vjepa2'\]"):
        load_world_model(renamed)


def test_registering_refuses_what_checkpoints_could_not_record(toy_kind):
    other = dataclasses.make_dataclass("Other", [("image_size", int, 16)], frozen=True)
    sizeless = dataclasses.make_dataclass("Sizeless", [("width", int, 8)], frozen=True)
    refusals = {
        "kind 'toy' is already registered": ("toy", ToyConfig, {}),
        "EncoderConfig is already the config of encoder kind 'vjepa2'": ("vit", EncoderConfig, {}),
        "Sizeless must be a dataclass with an image_size field": ("sizeless", sizeless, {}),
        r"presets \['tiny'\] are already registered": ("other", other, {"tiny": other()}),
        r"presets \['other-16'\] of encoder kind 'other' are not Other instances": ("other", other, {"other-16": ToyConfig()}),
    }
    for message, (kind, config, presets) in refusals.items():
        with pytest.raises(ValueError, match=message):
            register_encoder(kind, config, ToyEncoder, presets=presets)
    assert sorted(ENCODERS) == ["positions", "toy", "vjepa2"] and "other-16" not in PRESETS  # nothing half-registered
    with pytest.raises(ValueError, match="Sizeless is the config of no registered encoder kind"):
        kind_of(sizeless())
    with pytest.raises(ValueError, match="--preset toy-16 is no V-JEPA 2 ViT, which JEPA pretraining"):
        PretrainConfig(preset="toy-16")
    with pytest.raises(ValueError, match="--preset tiny-pooled pools its tokens"):
        PretrainConfig(preset="tiny-pooled")
