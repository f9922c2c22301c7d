"""The released V-JEPA 2-AC from its ``.pt`` files: sizes read from the weights, what Meta's
hub loader tolerates, float16/bfloat16 weights, a Hugging Face encoder directory, frames
resized as Meta's transforms do, and ``armworld eval --agent vjepa2-ac:FILE.pt``.

The checkpoints are written in the released format (``module.backbone.`` prefixes, fused
``qkv``, ``encoder``/``target_encoder``/``predictor`` entries, metadata) from models of the
official architecture with random weights at a reduced size (ViT width 128, 2 blocks, 2
heads of 64; 32 px frames, 2x2 tokens); the full ViT-g is checked by names and shapes on
the meta device, without allocating it.
"""

from __future__ import annotations

import json
import re

import gymnasium
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.loading import env_kwargs_for, load_agent
from armworld.cli import main
from armworld.worldmodel.checkpoint import CheckpointError
from armworld.worldmodel.encoder import PRESETS, EncoderConfig, FrameEncoder
from armworld.worldmodel.official import (
    ReleasedFrameEncoder,
    encoder_config_from_weights,
    encoder_to_hf,
    predictor_config_from_weights,
    world_model_from_official,
)
from armworld.worldmodel.predictor import OFFICIAL_AC, ACPredictor, PredictorConfig
from armworld.worldmodel.world_model import WorldModel

SIZE = 32
ENCODER = EncoderConfig(image_size=SIZE, patch_size=16, hidden_size=128, depth=2, num_heads=2, **{
    k: getattr(PRESETS["vitg"], k) for k in ("frames_per_clip", "pred_hidden_size", "pred_depth", "pred_num_heads")})
PREDICTOR = PredictorConfig(embed_dim=128, grid_size=2, hidden_size=128, depth=2, num_heads=2)


def released_encoder(encoder: FrameEncoder) -> dict[str, torch.Tensor]:
    """transformers' encoder weights under the released names (``qkv`` fused)."""
    out = {}
    for key, value in encoder.vjepa.encoder.state_dict().items():
        if m := re.match(r"layer\.(\d+)\.attention\.(query|key|value)\.(weight|bias)$", key):
            if m[2] == "query":
                parts = [encoder.vjepa.encoder.state_dict()[f"layer.{m[1]}.attention.{n}.{m[3]}"] for n in ("query", "key", "value")]
                out[f"blocks.{m[1]}.attn.qkv.{m[3]}"] = torch.cat(parts)
            continue
        key = re.sub(r"^embeddings\.patch_embeddings\.proj", "patch_embed.proj", key)
        key = re.sub(r"^layer\.(\d+)\.attention\.proj", r"blocks.\1.attn.proj", key)
        key = re.sub(r"^layer\.(\d+)\.", r"blocks.\1.", key)
        out[re.sub(r"^layernorm\.", "norm.", key)] = value
    return out


def official_models(seed: int = 0) -> tuple[FrameEncoder, ACPredictor]:
    torch.manual_seed(seed)
    return ReleasedFrameEncoder(ENCODER).eval(), ACPredictor(PREDICTOR).eval()


def write_released(path, encoder: FrameEncoder, predictor: ACPredictor, dtype=torch.float32) -> None:
    """A checkpoint laid out as ``vjepa2-ac-vitg.pt`` is, with what Meta's loader tolerates in it."""
    enc = {f"module.backbone.{k}": v.to(dtype) for k, v in released_encoder(encoder).items()}
    enc["module.backbone.pos_embed"] = torch.zeros(1, ENCODER.num_patches, ENCODER.hidden_size)  # left from before RoPE
    pred = {f"module.{k}": v.to(dtype) for k, v in predictor.state_dict().items()}
    pred["module.note"] = "trained on DROID"  # non-tensor metadata
    torch.save({"encoder": enc, "target_encoder": enc, "predictor": pred, "epoch": 315, "lr": 4.25e-4}, path)


def frames(count: int, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (1, count, size, size, 3), dtype=np.uint8))


def test_sizes_are_read_from_the_weights_and_the_forward_is_the_official_models(tmp_path):
    encoder, predictor = official_models()
    path = tmp_path / "vjepa2-ac.pt"
    write_released(path, encoder, predictor)
    with pytest.warns(UserWarning) as caught:
        wm = world_model_from_official(path, image_size=SIZE)
    messages = " ".join(str(w.message) for w in caught)
    assert "pos_embed" in messages and "note" in messages  # named, not silently dropped
    assert wm.encoder.config == ENCODER and wm.predictor.config == PREDICTOR
    assert all(torch.equal(wm.predictor.state_dict()[k], v) for k, v in predictor.state_dict().items())
    z_hist, states = frames(2), torch.randn(1, 2, 7)
    actions = 0.05 * torch.randn(8, 3, 7)
    with torch.no_grad():
        z = wm.encode(z_hist)
        assert torch.equal(z, encoder(z_hist))
        ctx = wm.context(z, states, actions[:1, :1])
        reference = WorldModel(encoder, predictor).eval()
        expected = reference.rollout(reference.context(z, states, actions[:1, :1]), actions)
        assert torch.equal(wm.rollout(ctx, actions), expected)
    with pytest.warns(UserWarning):
        from_encoder_entry = world_model_from_official(path, image_size=SIZE, encoder="encoder")
    assert torch.equal(from_encoder_entry.encode(z_hist), z)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_load_as_one_dtype(tmp_path, dtype):
    encoder, predictor = official_models()
    path = tmp_path / "half.pt"
    write_released(path, encoder, predictor, dtype)
    with pytest.warns(UserWarning):
        wm = world_model_from_official(path, image_size=SIZE)
    assert {p.dtype for p in wm.parameters()} == {torch.float32}
    stored = predictor.state_dict()["predictor_blocks.1.attn.qkv.weight"]
    assert torch.equal(wm.predictor.state_dict()["predictor_blocks.1.attn.qkv.weight"], stored.to(dtype).float())
    with torch.no_grad():
        z = wm.encode(frames(1))
        out = wm.rollout(wm.context(z, torch.zeros(1, 1, 7)), torch.zeros(4, 2, 7))
    assert out.shape == (4, 2, 4, 128) and torch.isfinite(out).all()


def test_a_hugging_face_encoder_directory_with_a_released_predictor(tmp_path):
    encoder, predictor = official_models()
    directory = tmp_path / "hf"
    encoder.vjepa.to(torch.float16).save_pretrained(directory)  # a float16 directory, a float32 predictor
    path = tmp_path / "predictor.pt"
    torch.save({"predictor": predictor.state_dict()}, path)
    wm = world_model_from_official(path, encoder=directory, image_size=SIZE)
    assert {p.dtype for p in wm.parameters()} == {torch.float32}
    assert isinstance(wm.encoder, ReleasedFrameEncoder) and wm.encoder.config.image_size == SIZE
    expected = encoder.vjepa.encoder.state_dict()["layer.0.attention.query.weight"].float()
    assert torch.equal(wm.encoder.vjepa.encoder.state_dict()["layer.0.attention.query.weight"], expected)
    with torch.no_grad():
        assert wm.encode(frames(1)).shape == (1, 1, 4, 128)


def test_frames_are_resized_as_metas_transforms_do():
    encoder, _ = official_models()
    big = frames(1, size=48)[0, 0]  # [48, 48, 3]
    x = big.permute(2, 0, 1)[None].float()
    resized = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)  # no antialiasing
    mean = 255.0 * torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = 255.0 * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    assert torch.allclose(encoder.pixels(big), ((resized - mean) / std)[0], atol=1e-6)
    antialiased = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
    assert not torch.allclose(encoder.pixels(big), ((antialiased - mean) / std)[0], atol=1e-2)


def test_what_the_model_needs_is_never_dropped(tmp_path):
    encoder, predictor = official_models()
    path = tmp_path / "broken.pt"
    enc = released_encoder(encoder)
    del enc["blocks.1.mlp.fc2.weight"]
    torch.save({"target_encoder": enc, "predictor": predictor.state_dict()}, path)
    with pytest.raises(CheckpointError, match="missing 1 keys"):
        world_model_from_official(path, image_size=SIZE)
    pred = dict(predictor.state_dict())
    del pred["extrinsics_encoder.bias"]
    torch.save({"target_encoder": released_encoder(encoder), "predictor": pred}, path)
    with pytest.raises(CheckpointError, match="missing 1 keys"):
        world_model_from_official(path, image_size=SIZE)
    torch.save({"target_encoder": released_encoder(encoder), "predictor": {}}, path)
    with pytest.raises(CheckpointError, match="has no 'predictor_embed.weight'"):
        world_model_from_official(path, image_size=SIZE)
    wide = ACPredictor(PredictorConfig(embed_dim=192, grid_size=2, hidden_size=128, depth=1, num_heads=2))
    torch.save({"target_encoder": released_encoder(encoder), "predictor": wide.state_dict()}, path)
    with pytest.raises(CheckpointError, match="tokens of width 192; the encoder gives 2x2 of width 128"):
        world_model_from_official(path, image_size=SIZE)
    torch.save({"encoder": released_encoder(encoder), "predictor": predictor.state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"no \['target_encoder'\] entries"):
        world_model_from_official(path, image_size=SIZE)
    odd = {k: v for k, v in released_encoder(encoder).items()}
    odd["patch_embed.proj.weight"] = torch.zeros(100, 3, 2, 16, 16)
    assert pytest.raises(CheckpointError, encoder_config_from_weights, odd).match("number of heads")


def test_the_full_vitg_and_ac_predictor_by_names_and_shapes():
    with torch.device("meta"):
        vitg = FrameEncoder(PRESETS["vitg"])
        predictor = ACPredictor(OFFICIAL_AC)
    released = released_encoder(vitg)  # the names and shapes of vjepa2-ac-vitg.pt's encoder
    assert released["blocks.39.attn.qkv.weight"].shape == (3 * 1408, 1408) and "blocks.40.norm1.weight" not in released
    assert released["patch_embed.proj.weight"].shape == (1408, 3, 2, 16, 16)
    assert encoder_config_from_weights(released) == PRESETS["vitg"]
    mapped, unused = encoder_to_hf({**released, "pos_embed": torch.empty(1, 256, 1408, device="meta")})
    assert unused == ["pos_embed"]
    own = vitg.vjepa.encoder.state_dict()
    assert {k: v.shape for k, v in mapped.items()} == {k: v.shape for k, v in own.items()}
    assert predictor_config_from_weights(predictor.state_dict(), grid_size=16) == OFFICIAL_AC


def test_eval_runs_a_released_checkpoint_from_the_cli(tmp_path, capsys):
    encoder, predictor = official_models()
    path = tmp_path / "vjepa2-ac.pt"
    write_released(path, encoder, predictor)
    spec = f"vjepa2-ac:{path}"
    assert env_kwargs_for(spec) == {"obs_mode": "pixels_state", "cameras": ("front",), "image_size": 256}
    env = gymnasium.make("armworld/FrankaReach-v0", **env_kwargs_for(spec, SIZE))
    with pytest.warns(UserWarning, match="pos_embed"):
        agent = load_agent(spec, env, seed=0, image_size=SIZE, device="cpu")
    obs, _ = env.reset(seed=0)
    agent.reset()
    assert agent.act(obs).shape == (7,)
    out = tmp_path / "results"
    code = main([
        "eval", "--agent", spec, "--image-size", str(SIZE), "--device", "cpu", "--env", "armworld/FrankaReach-v0",
        "--episodes", "1", "--seeds", "0", "--max-steps", "2", "--samples", "8", "--iterations", "1",
        "--out", str(out),
    ])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 1 and results["env_kwargs"]["image_size"] == SIZE
    assert main(["eval", "--agent", spec, "--encoder", "decoder", "--image-size", str(SIZE), "--env",
                 "armworld/FrankaReach-v0", "--episodes", "1", "--seeds", "0", "--out", str(tmp_path / "no")]) == 1
    assert "no ['decoder'] entries" in capsys.readouterr().err
