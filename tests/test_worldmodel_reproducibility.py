"""Seeds: initial weights, data order, masks, and resuming exactly where a run stopped (tiny sizes, CPU)."""

from __future__ import annotations

import shutil
from itertools import islice

import pytest
import torch
from torch.utils.data import Dataset
from worldmodel_synthetic import MovingSquareClips

from armworld.worldmodel.checkpoint import read_checkpoint, save_checkpoint
from armworld.worldmodel.engine import Dist, LoopConfig, batches, evaluate, fit
from armworld.worldmodel.pretrain import PretrainConfig, build_jepa
from armworld.worldmodel.train import build_world_model

LOOP = dict(batch_size=4, progress=False, eval_batches=1, warmup_steps=1, device="cpu")
CPU = torch.device("cpu")


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_seed_sets_the_initial_weights(tmp_path):
    def jepa(seed: int) -> dict[str, torch.Tensor]:
        torch.rand(7)  # whatever ran before must not matter
        return build_jepa(PretrainConfig(loop=LoopConfig(seed=seed))).state_dict()

    assert same_weights(jepa(0), jepa(0))
    assert not same_weights(jepa(0), jepa(1))

    encoder = build_jepa(PretrainConfig())
    save_checkpoint(tmp_path / "enc", 1, encoder.checkpoint_config(), encoder.checkpoint_state(), {})

    def predictor(seed: int) -> dict[str, torch.Tensor]:
        torch.rand(7)
        return build_world_model(str(tmp_path / "enc"), None, "tiny", seed=seed).predictor.state_dict()

    assert same_weights(predictor(0), predictor(0))
    assert not same_weights(predictor(0), predictor(1))


class Indices(Dataset):
    """Item ``i`` is ``{"i": i}``: batches show the data order."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"i": torch.tensor(i)}


def order(seed: int, steps: int, start_step: int = 0, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """The item indices of ``steps`` batches of 2 out of 8 items (4 batches per epoch on one process)."""
    stream = batches(Indices(8), LoopConfig(batch_size=2, seed=seed), Dist(rank, world_size, CPU), start_step)
    return [b["i"].tolist() for b in islice(stream, steps)]


def test_epoch_orders_are_unrelated_across_seeds_and_resume_mid_epoch():
    seed0, seed1 = order(0, 8), order(1, 8)
    for run in (seed0, seed1):  # each epoch visits every item once
        assert sorted(sum(run[:4], [])) == sorted(sum(run[4:], [])) == list(range(8))
    assert seed0[:4] != seed0[4:]  # a new order every epoch
    assert seed1[:4] != seed0[4:]  # seed 1's epoch 0 is not seed 0's epoch 1 (it was with seed + epoch)
    assert order(0, 3, start_step=5) == seed0[5:8]  # resuming at step 5 continues the same stream
    ranks = [order(0, 2, rank=r, world_size=2) for r in (0, 1)]  # 2 batches per epoch and rank
    assert sorted(sum(ranks[0] + ranks[1], [])) == list(range(8))
    assert order(0, 2, start_step=3, rank=1, world_size=2) == order(0, 5, rank=1, world_size=2)[3:]


def test_validation_masks_are_fixed_and_do_not_move_the_training_masks(tmp_path):
    frames = MovingSquareClips(8, clip_len=8, frames_only=True)
    valid = MovingSquareClips(4, clip_len=8, seed=1, frames_only=True)
    cfg = LoopConfig(steps=1, **LOOP)
    task = build_jepa(PretrainConfig(loop=cfg))
    first = evaluate(task, valid, cfg, Dist(0, 1, CPU))
    task(next(batches(frames, cfg, Dist(0, 1, CPU), 0)))  # a training forward draws training masks
    assert evaluate(task, valid, cfg, Dist(0, 1, CPU)) == first

    final = []
    for eval_every in (1, 100):  # validating after every step or only at the end
        cfg = LoopConfig(steps=3, eval_every=eval_every, **LOOP)
        task = build_jepa(PretrainConfig(loop=cfg))
        fit(task, cfg, frames, valid, tmp_path / f"every{eval_every}")
        final.append(task.state_dict())
    assert same_weights(*final)


def test_an_interrupted_and_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    frames = MovingSquareClips(8, clip_len=8, frames_only=True)  # 2 batches per epoch: step 2 starts epoch 1
    cfg = LoopConfig(steps=5, save_every=2, keep_checkpoints=3, **LOOP)
    whole = build_jepa(PretrainConfig(loop=cfg))
    fit(whole, cfg, frames, None, tmp_path / "whole")

    # A crash while writing step 5 (its directory gone, `latest` naming it: resuming does not
    # read `latest`) that also garbled step 4's weights: resuming must fall back to step 2 and
    # replay steps 3-5 exactly.
    shutil.copytree(tmp_path / "whole", tmp_path / "crashed")
    shutil.rmtree(tmp_path / "crashed" / "step-000005")
    weights = tmp_path / "crashed" / "step-000004" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    resumed = build_jepa(PretrainConfig(loop=LoopConfig(seed=7)))  # other initial weights, overwritten on resume
    with pytest.warns(UserWarning) as caught:
        path = fit(resumed, cfg, frames, None, tmp_path / "crashed")
    skipped = [str(w.message) for w in caught]
    assert any("step-000004" in m and "sha256" in m for m in skipped)
    assert path == tmp_path / "crashed" / "step-000005" and read_checkpoint(path).metadata["step"] == 5
    assert same_weights(resumed.state_dict(), whole.state_dict())
