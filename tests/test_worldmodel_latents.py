"""Latent kinds (patch tokens, pooled), SIGReg, end-to-end training and the SIGReg pretraining objective."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_worldmodel_training import LOOP, batch_of, optimise
from worldmodel_synthetic import MovingSquareClips

from armworld.worldmodel.checkpoint import load_encoder, load_world_model, read_checkpoint
from armworld.worldmodel.encoder import PRESETS, EncoderConfig, FrameEncoder
from armworld.worldmodel.engine import LoopConfig, fit
from armworld.worldmodel.predictor import ACPredictor
from armworld.worldmodel.pretrain import JEPA, PretrainConfig
from armworld.worldmodel.sigreg import SIGReg
from armworld.worldmodel.train import ACTraining, TrainConfig, build_world_model, predictor_config, starting_lineage
from armworld.worldmodel.world_model import WorldModel

# Small enough for seconds on a CPU: 32 px frames, 8 px patches (16 tokens), 2 layers.
POOLED = dataclasses.replace(PRESETS["tiny-pooled"], image_size=32, depth=2)


def world_model(config: EncoderConfig, seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    encoder = FrameEncoder(config)
    return WorldModel(encoder, ACPredictor(predictor_config(encoder, "tiny")))


def test_sigreg_is_small_for_gaussian_embeddings_and_large_for_collapsed_ones():
    torch.manual_seed(0)
    sigreg = SIGReg(num_directions=256)
    gaussian = sigreg(torch.randn(512, 32)).item()
    assert gaussian < 2.0  # about 1.06 in expectation for Gaussian samples (M times a squared error of order 1/M)
    assert sigreg(torch.randn(512, 32) * 0.1).item() > 20 * gaussian  # shrunk toward a point
    assert sigreg(torch.randn(512, 1).expand(-1, 32)).item() > 20 * gaussian  # all on one line
    assert sigreg(torch.randn(512, 32) + 3.0).item() > 20 * gaussian  # off-centre
    with pytest.raises(ValueError, match="at least 2"):
        sigreg(torch.randn(1, 32))


def test_sigreg_alone_spreads_a_collapsed_batch():
    torch.manual_seed(0)
    z = (torch.randn(256, 16) * 0.01).requires_grad_()
    sigreg = SIGReg(num_directions=128)
    opt = torch.optim.Adam([z], lr=0.05)
    first = sigreg(z).item()
    for _ in range(100):
        loss = sigreg(z)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert sigreg(z).item() < 0.05 * first
    assert 0.5 < z.detach().std().item() < 1.5


def test_pooled_encoder_gives_one_latent_per_frame_and_plans_like_tokens():
    wm = world_model(POOLED).eval()
    frames = torch.randint(0, 256, (2, 3, 32, 32, 3), dtype=torch.uint8)
    with torch.no_grad():
        z = wm.encode(frames)
        assert z.shape == (2, 3, 1, POOLED.hidden_size) and wm.encoder.num_tokens == 1
        context = wm.context(z[:1, :2], torch.zeros(1, 2, 7), torch.zeros(1, 1, 7))
        actions = torch.randn(5, 3, 7) * 0.01
        cached = wm.rollout(context, actions)
        assert cached.shape == (5, 3, 1, POOLED.hidden_size)
        torch.testing.assert_close(cached, wm.rollout(context, actions, use_cache=False), atol=1e-5, rtol=1e-5)
    # Pooled latents are not layer-normed (the BatchNorm projector sets their scale); tokens are.
    assert not torch.allclose(z.mean(-1), torch.zeros(()), atol=1e-3)
    tokens = world_model(dataclasses.replace(POOLED, latent="tokens")).eval()
    with torch.no_grad():
        t = tokens.encode(frames)
    assert t.shape == (2, 3, 16, POOLED.hidden_size)
    torch.testing.assert_close(t.mean(-1), torch.zeros(t.shape[:-1]), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown latent kind"):
        dataclasses.replace(POOLED, latent="cls")


def test_end_to_end_training_learns_the_encoder_and_the_checkpoint_records_the_latent_kind(tmp_path):
    task = ACTraining(world_model(POOLED), rollout_steps=1, end_to_end=True, sigreg_weight=0.1).train()
    encoder_before = {k: v.clone() for k, v in task.model.encoder.state_dict().items()}
    batch = batch_of(MovingSquareClips(8, clip_len=3, size=32), 8)
    _, metrics = task(batch)
    assert {"loss_teacher", "loss_rollout", "loss_sigreg"} <= set(metrics)
    first, last = optimise(task, batch, steps=15, lr=2e-3)
    assert last < 0.7 * first
    moved = [k for k, v in encoder_before.items() if v.is_floating_point() and not torch.equal(v, task.model.encoder.state_dict()[k])]
    assert any(k.startswith("vjepa.encoder") for k in moved) and any(k.startswith("projector") for k in moved)

    data = MovingSquareClips(8, clip_len=3, size=32)
    path = fit(task, LoopConfig(steps=2, **LOOP), data, data, tmp_path / "wm")
    assert read_checkpoint(path).config["encoder"]["latent"] == "pooled"
    loaded = load_world_model(path)
    frames = batch["frames"][:2]
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode(frames), task.model.eval().encode(frames))


def test_a_fresh_encoder_preset_needs_neither_encoder_nor_init():
    wm = build_world_model(encoder=None, init=None, predictor="tiny", seed=3, encoder_preset="tiny-pooled")
    assert wm.encoder.config == PRESETS["tiny-pooled"] and wm.predictor.config.num_patches == 1
    again = build_world_model(encoder=None, init=None, predictor="tiny", seed=3, encoder_preset="tiny-pooled")
    assert all(torch.equal(a, b) for a, b in zip(wm.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ValueError, match="give one of"):
        build_world_model(encoder="runs/enc", init=None, predictor="tiny", encoder_preset="tiny")
    with pytest.raises(ValueError, match="unknown encoder preset"):
        build_world_model(encoder=None, init=None, predictor="tiny", encoder_preset="huge")
    with pytest.raises(ValueError, match="sigreg_weight"):
        TrainConfig(sigreg_weight=-1.0)
    assert starting_lineage(None, None, "tiny-pooled") == {"encoder": {"preset": "tiny-pooled"}}


def test_sigreg_pretraining_trains_the_encoder_without_an_ema_target(tmp_path):
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], image_size=32, patch_size=8, depth=2)
    task = JEPA(FrameEncoder(config), sigreg_weight=0.05).train()
    batch = batch_of(MovingSquareClips(4, clip_len=8, size=32, frames_only=True), 4)
    _, metrics = task(batch)
    assert "loss_sigreg" in metrics
    first, last = optimise(task, batch, steps=10, lr=1e-3)
    assert last < first
    # The target encoder (what load_encoder reads) is the trained online encoder itself.
    for online, target in zip(task.encoder.vjepa.encoder.parameters(), task.target.vjepa.encoder.parameters()):
        assert torch.equal(online, target)
    path = fit(task, LoopConfig(steps=1, **LOOP), MovingSquareClips(4, clip_len=8, size=32, frames_only=True),
               MovingSquareClips(4, clip_len=8, size=32, frames_only=True), tmp_path / "enc")
    encoder = load_encoder(path)
    for (name, value) in encoder.vjepa.encoder.state_dict().items():
        assert torch.equal(value, task.encoder.vjepa.encoder.state_dict()[name])
    with pytest.raises(ValueError, match=r"objective \(--objective\) is one of \[.ema., .sigreg.\]"):
        PretrainConfig(objective="byol")
    with pytest.raises(ValueError, match="--end-to-end"):  # JEPA would leave the pooling head untrained
        PretrainConfig(preset="tiny-pooled")


def test_random_resized_crop_crops_every_frame_of_a_clip_alike():
    from armworld.worldmodel.augment import random_resized_crop

    # A horizontal ramp: a crop of it is a steeper or shifted ramp, the same in every frame.
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 1, 1, 32).expand(4, 3, 3, 32, 32).contiguous()
    generator = torch.Generator().manual_seed(0)
    out = random_resized_crop(ramp, generator=generator)
    assert out.shape == ramp.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 0], out[:, 2])  # the same crop for all frames of a clip
    assert not torch.allclose(out[0], out[1])  # another crop for another clip
    assert out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5  # inside the image, no padding
    whole = random_resized_crop(ramp, scale=(1.0, 1.0), ratio=(1.0, 1.0), generator=generator)
    torch.testing.assert_close(whole, ramp, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="clips"):
        random_resized_crop(ramp[0])


def test_pretraining_augments_training_clips_only():
    torch.manual_seed(0)
    config = dataclasses.replace(PRESETS["tiny"], image_size=32, patch_size=8, depth=2)
    plain = JEPA(FrameEncoder(config))
    augmented = JEPA(FrameEncoder(config), augment=True)
    augmented.load_state_dict(plain.state_dict())
    batch = batch_of(MovingSquareClips(2, clip_len=8, size=32, frames_only=True), 2)
    with torch.no_grad():
        assert plain.eval()(batch)[0] == augmented.eval()(batch)[0]  # validation clips are left whole
        torch.manual_seed(1)
        loss_plain = plain.train()(batch)[0]
        torch.manual_seed(1)
        assert augmented.train()(batch)[0] != loss_plain
