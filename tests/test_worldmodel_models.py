"""Encoder, masks, AC predictor, world model and released-checkpoint loading (tiny sizes, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from armworld.worldmodel.checkpoint import CheckpointError
from armworld.worldmodel.encoder import PRESETS, EncoderConfig, FrameEncoder, preset
from armworld.worldmodel.masks import BlockMaskConfig, MultiBlockMasker
from armworld.worldmodel.official import world_model_from_official
from armworld.worldmodel.predictor import ACPredictor, KVCache, PredictorConfig
from armworld.worldmodel.world_model import WorldModel

TINY = PRESETS["tiny"]
N, D = TINY.num_patches, TINY.hidden_size


@pytest.fixture(scope="module")
def world_model() -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(FrameEncoder(TINY), ACPredictor(PredictorConfig(embed_dim=D, grid_size=TINY.grid_size))).eval()


def frames(B: int, T: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, T, size, size, 3), dtype=torch.uint8, generator=g)


# ---------------------------------------------------------------- encoder


def test_encoder_per_frame_tokens_are_layer_normed(world_model):
    with torch.no_grad():
        z = world_model.encode(frames(2, 3, size=48))  # resized to 64 px
    assert z.shape == (2, 3, N, D)
    assert torch.allclose(z.mean(-1), torch.zeros(2, 3, N), atol=1e-4)
    assert torch.allclose(z.std(-1, unbiased=False), torch.ones(2, 3, N), atol=1e-3)


def test_encoder_encodes_each_frame_on_its_own(world_model):
    x = frames(1, 3)
    y = x.clone()
    y[:, 2] = 255 - y[:, 2]
    with torch.no_grad():
        a, b = world_model.encode(x), world_model.encode(y)
    assert torch.equal(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_encoder_rejects_bad_input(world_model):
    with pytest.raises(ValueError, match="uint8"):
        world_model.encode(frames(1, 2).float())
    with pytest.raises(ValueError, match=r"\[B, T, H, W, 3\]"):
        world_model.encode(frames(1, 2)[0])


def test_presets_and_impossible_configs():
    assert preset("vitg").hidden_size == 1408 and preset("vitg").num_heads == 22
    assert preset("vitl").to_hf().num_hidden_layers == 24
    with pytest.raises(ValueError, match="unknown encoder preset"):
        preset("vitx")
    with pytest.raises(ValueError, match="multiple of patch_size"):
        EncoderConfig(image_size=60, patch_size=16)
    with pytest.raises(ValueError, match="multiples of their numbers of heads"):
        EncoderConfig(hidden_size=100, num_heads=3)


def test_from_pretrained_reads_a_local_directory_only(tmp_path):
    small = dataclasses.replace(TINY, depth=1)
    FrameEncoder(small).vjepa.save_pretrained(tmp_path / "hf")
    loaded = FrameEncoder.from_pretrained(tmp_path / "hf")
    assert loaded.config == small
    with pytest.raises(FileNotFoundError, match="config.json"):
        FrameEncoder.from_pretrained(tmp_path / "nowhere")


def test_context_encoder_never_sees_masked_tokens():
    encoder = FrameEncoder(TINY).eval()
    x = frames(1, 8)
    keep = torch.arange(0, 4 * N, 2).unsqueeze(0)  # every other token, tubelets x patches
    y = x.clone()
    y[:, :2, :16, 16:32] = 0  # tubelet 0, row 0, column 1: token index 1, not kept
    with torch.no_grad():
        a = encoder.encode_clip(encoder.pixels(x), keep)
        b = encoder.encode_clip(encoder.pixels(y), keep)
        full_a = encoder.encode_clip(encoder.pixels(x))
        full_b = encoder.encode_clip(encoder.pixels(y))
    assert a.shape == (1, 2 * N, D)
    assert torch.equal(a, b)
    assert not torch.allclose(full_a, full_b)


# ---------------------------------------------------------------- masks


def test_multiblock_masks_partition_the_grid_and_are_seeded():
    grid = (4, 8, 8)
    masker = MultiBlockMasker(grid)
    masks = masker(3, torch.Generator().manual_seed(1))
    assert len(masks) == 2
    for m in masks:
        assert m.context.shape[0] == m.target.shape[0] == 3
        for ctx, tgt in zip(m.context, m.target):
            assert len(set(ctx.tolist()) & set(tgt.tolist())) == 0
            assert int(ctx.max()) < 256 and int(tgt.max()) < 256
        assert m.context.shape[1] >= masker.min_context
    short, long = masks
    assert long.target.shape[1] > short.target.shape[1] * 0.9  # two large blocks mask more than 8 small
    again = masker(3, torch.Generator().manual_seed(1))
    assert all(torch.equal(a.target, b.target) for a, b in zip(masks, again))


def test_blocks_span_time_and_have_the_configured_size():
    masker = MultiBlockMasker((4, 8, 8), configs=(BlockMaskConfig(num_blocks=1, spatial_scale=0.25),))
    (m,) = masker(2, torch.Generator().manual_seed(0))
    target = m.target[0]
    t, rest = target // 64, target % 64
    assert set(t.tolist()) == {0, 1, 2, 3}  # temporal scale 1: every tubelet
    per_frame = [set(rest[t == i].tolist()) for i in range(4)]
    assert all(p == per_frame[0] for p in per_frame)  # the same spatial box in every tubelet
    assert 10 <= len(per_frame[0]) <= 24  # about 0.25 * 64


def test_mask_config_validation():
    with pytest.raises(ValueError):
        BlockMaskConfig(num_blocks=0, spatial_scale=0.1)
    with pytest.raises(ValueError):
        BlockMaskConfig(num_blocks=2, spatial_scale=1.5)
    with pytest.raises(ValueError, match="min_context"):
        MultiBlockMasker((1, 2, 2), min_context=4)


# ---------------------------------------------------------------- predictor


def inputs(B: int, T: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.layer_norm(torch.randn(B, T, N, D, generator=g), (D,))
    return z, torch.randn(B, T, 7, generator=g), 0.05 * torch.randn(B, T, 7, generator=g)


def test_predictor_shapes_and_errors(world_model):
    z, s, a = inputs(2, 3)
    with torch.no_grad():
        out = world_model.predict(z, s, a)
    assert out.shape == (2, 3, N, D)
    with pytest.raises(ValueError, match="states and actions"):
        world_model.predict(z, s, a[:, :2])
    with pytest.raises(ValueError, match="z must be"):
        world_model.predict(z[:, :, :5], s, a)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        PredictorConfig(hidden_size=100, num_heads=3)


def test_future_actions_never_change_earlier_predictions(world_model):
    z, s, a = inputs(2, 4)
    with torch.no_grad():
        base = world_model.predict(z, s, a)
        for t in range(4):
            a2, z2, s2 = a.clone(), z.clone(), s.clone()
            a2[:, t] += 1.0
            z2[:, t] = z2[:, t].flip(-1)
            s2[:, t] -= 1.0
            for changed in (world_model.predict(z, s, a2), world_model.predict(z2, s, a), world_model.predict(z, s2, a)):
                assert torch.equal(changed[:, :t], base[:, :t])
                assert not torch.allclose(changed[:, t], base[:, t])


def test_kv_cache_is_exact(world_model):
    z, s, a = inputs(3, 4)
    p = world_model.predictor
    with torch.no_grad():
        full, _ = p(z, s, a)
        head, cache = p(z[:, :1], s[:, :1], a[:, :1])
        tail, cache = p(z[:, 1:], s[:, 1:], a[:, 1:], cache=cache)
    assert isinstance(cache, KVCache) and cache.steps == 4
    assert torch.allclose(torch.cat([head, tail], 1), full, atol=1e-5)


def test_rollout_shares_the_context_across_candidates(world_model):
    z, s, a = inputs(1, 2)
    candidates = 0.05 * torch.randn(5, 3, 7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ctx = world_model.context(z, s, a[:, :1])
        cached = world_model.rollout(ctx, candidates)
        recomputed = world_model.rollout(ctx, candidates, use_cache=False)
        one = world_model.rollout(ctx, candidates[2:3])
    assert cached.shape == (5, 3, N, D)
    assert torch.allclose(cached, recomputed, atol=1e-4)
    assert torch.allclose(cached[2:3], one, atol=1e-4)
    with pytest.raises(ValueError, match="context batch"):
        world_model.rollout(world_model.context(*inputs(2, 1)[:2]), candidates)


def test_rollout_step_matches_teacher_forcing_on_its_inputs(world_model):
    z, s, a = inputs(1, 1)
    with torch.no_grad():
        ctx = world_model.context(z, s)
        first = world_model.rollout(ctx, a, proprio=s)
        teacher = world_model.predict(z, s, a)
    assert torch.allclose(first, teacher, atol=1e-5)


# ---------------------------------------------------------------- released checkpoints


def official_ac_shapes(cfg: PredictorConfig) -> dict[str, tuple[int, ...]]:
    """The released V-JEPA 2-AC predictor's key names and shapes at the sizes of ``cfg``."""
    H, E, M = cfg.hidden_size, cfg.embed_dim, int(cfg.hidden_size * cfg.mlp_ratio)
    sd = {
        "predictor_embed.weight": (H, E), "predictor_embed.bias": (H,),
        "action_encoder.weight": (H, 7), "action_encoder.bias": (H,),
        "state_encoder.weight": (H, 7), "state_encoder.bias": (H,),
        "extrinsics_encoder.weight": (H, 6), "extrinsics_encoder.bias": (H,),
        "predictor_norm.weight": (H,), "predictor_norm.bias": (H,),
        "predictor_proj.weight": (E, H), "predictor_proj.bias": (E,),
    }
    for i in range(cfg.depth):
        sd |= {
            f"predictor_blocks.{i}.norm1.weight": (H,), f"predictor_blocks.{i}.norm1.bias": (H,),
            f"predictor_blocks.{i}.attn.qkv.weight": (3 * H, H), f"predictor_blocks.{i}.attn.qkv.bias": (3 * H,),
            f"predictor_blocks.{i}.attn.proj.weight": (H, H), f"predictor_blocks.{i}.attn.proj.bias": (H,),
            f"predictor_blocks.{i}.norm2.weight": (H,), f"predictor_blocks.{i}.norm2.bias": (H,),
            f"predictor_blocks.{i}.mlp.fc1.weight": (M, H), f"predictor_blocks.{i}.mlp.fc1.bias": (M,),
            f"predictor_blocks.{i}.mlp.fc2.weight": (H, M), f"predictor_blocks.{i}.mlp.fc2.bias": (H,),
        }
    return sd


def official_ac_state_dict(cfg: PredictorConfig) -> dict[str, torch.Tensor]:
    """A state dict with the released V-JEPA 2-AC key names and shapes (random values)."""
    return {k: 0.02 * torch.randn(shape) for k, shape in official_ac_shapes(cfg).items()}


def official_encoder_state_dict(cfg: EncoderConfig) -> dict[str, torch.Tensor]:
    """A state dict with the released ViT encoder key names (``module.backbone.`` prefixed)."""
    Dm, M, p = cfg.hidden_size, int(cfg.hidden_size * cfg.mlp_ratio), cfg.patch_size
    sd = {"patch_embed.proj.weight": (Dm, 3, cfg.tubelet_size, p, p), "patch_embed.proj.bias": (Dm,),
          "norm.weight": (Dm,), "norm.bias": (Dm,)}
    for i in range(cfg.depth):
        sd |= {
            f"blocks.{i}.norm1.weight": (Dm,), f"blocks.{i}.norm1.bias": (Dm,),
            f"blocks.{i}.attn.qkv.weight": (3 * Dm, Dm), f"blocks.{i}.attn.qkv.bias": (3 * Dm,),
            f"blocks.{i}.attn.proj.weight": (Dm, Dm), f"blocks.{i}.attn.proj.bias": (Dm,),
            f"blocks.{i}.norm2.weight": (Dm,), f"blocks.{i}.norm2.bias": (Dm,),
            f"blocks.{i}.mlp.fc1.weight": (M, Dm), f"blocks.{i}.mlp.fc1.bias": (M,),
            f"blocks.{i}.mlp.fc2.weight": (Dm, M), f"blocks.{i}.mlp.fc2.bias": (Dm,),
        }
    return {f"module.backbone.{k}": 0.02 * torch.randn(shape) for k, shape in sd.items()}


def test_released_ac_checkpoint_loads_at_a_small_size(tmp_path):
    enc_cfg = dataclasses.replace(TINY, depth=2)
    pred_cfg = PredictorConfig(embed_dim=D, grid_size=TINY.grid_size, hidden_size=96, depth=2, num_heads=2)
    ac, enc = official_ac_state_dict(pred_cfg), official_encoder_state_dict(enc_cfg)
    path = tmp_path / "vjepa2-ac-small.pt"
    torch.save({"target_encoder": enc, "predictor": {f"module.{k}": v for k, v in ac.items()}, "epoch": 3}, path)

    wm = world_model_from_official(path, enc_cfg, pred_cfg)
    pred_sd = wm.predictor.state_dict()
    assert set(pred_sd) == set(ac)
    assert all(torch.equal(pred_sd[k], v) for k, v in ac.items())
    hf = wm.encoder.vjepa.encoder.state_dict()
    qkv = enc["module.backbone.blocks.1.attn.qkv.weight"]
    assert torch.equal(hf["layer.1.attention.query.weight"], qkv[:D])
    assert torch.equal(hf["layer.1.attention.value.weight"], qkv[2 * D :])
    assert torch.equal(hf["embeddings.patch_embeddings.proj.weight"], enc["module.backbone.patch_embed.proj.weight"])
    with torch.no_grad():
        assert wm.encode(frames(1, 1)).shape == (1, 1, N, D)

    del ac["extrinsics_encoder.bias"]
    torch.save({"target_encoder": enc, "predictor": ac}, path)
    with pytest.raises(CheckpointError, match="missing 1 keys"):
        world_model_from_official(path, enc_cfg, pred_cfg)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        world_model_from_official(path, enc_cfg, dataclasses.replace(pred_cfg, hidden_size=64))
    torch.save({"encoder": enc}, path)
    with pytest.raises(CheckpointError, match="no \\['target_encoder', 'predictor'\\]"):
        world_model_from_official(path, enc_cfg, pred_cfg)


def test_official_size_has_the_released_names_and_shapes():
    from armworld.worldmodel.predictor import OFFICIAL_AC

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in ACPredictor(OFFICIAL_AC).state_dict().items()}
    assert shapes == official_ac_shapes(OFFICIAL_AC)
    assert shapes["predictor_embed.weight"] == (1024, 1408) and "predictor_blocks.23.attn.qkv.weight" in shapes
