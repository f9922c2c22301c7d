"""DDP: two CPU processes (gloo) train the predictor and end with identical weights."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from worldmodel_synthetic import MovingSquareClips


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank: int, world_size: int, port: int, out: str) -> None:
    # The environment torchrun would set.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from armworld.worldmodel.encoder import PRESETS, FrameEncoder
    from armworld.worldmodel.engine import LoopConfig, fit
    from armworld.worldmodel.predictor import ACPredictor
    from armworld.worldmodel.train import ACTraining, predictor_config
    from armworld.worldmodel.world_model import WorldModel

    torch.manual_seed(0)  # the same frozen encoder on both ranks
    encoder = FrameEncoder(PRESETS["tiny"])
    torch.manual_seed(100 + rank)  # different predictor inits: DDP must broadcast rank 0's
    task = ACTraining(WorldModel(encoder, ACPredictor(predictor_config(encoder, "tiny"))))
    cfg = LoopConfig(steps=3, batch_size=2, progress=False, device="cpu", warmup_steps=1)
    fit(task, cfg, MovingSquareClips(8, clip_len=3), MovingSquareClips(4, clip_len=3, seed=1), os.path.join(out, "run"))
    torch.save(task.model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_processes_end_with_identical_weights(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The checkpoint rank 0 wrote holds those same weights.
    from armworld.worldmodel.checkpoint import load_world_model

    saved = load_world_model(tmp_path / "run").state_dict()
    assert all(torch.equal(saved[k], a[k]) for k in a)
