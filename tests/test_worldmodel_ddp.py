"""DDP: two CPU processes (gloo) train the predictor and end with identical weights; a bad batch on
one process stops every process."""

from __future__ import annotations

import json
import math
import os
import socket
from datetime import timedelta

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


def batch_checker(rank: int, world_size: int, port: int, out: str) -> None:
    """Each rank checks a finite batch, then one where only rank 1's holds NaN; records what it raised."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from armworld.datasets.hdf5 import DatasetError
    from armworld.worldmodel.engine import Dist, check_finite_batch

    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=30))
    here = Dist(rank, world_size, torch.device("cpu"))
    seen = []
    for step, poisoned in ((1, False), (2, rank == 1)):
        batch = {"proprio": torch.tensor([1.0, math.nan if poisoned else 2.0]), "index": torch.tensor([step])}
        try:
            assert check_finite_batch(batch, f"step {step}", here) is batch
            seen.append(None)
        except DatasetError as error:
            seen.append(str(error))
    dist.barrier()  # both ranks got past the checks
    dist.destroy_process_group()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(seen, f)


def test_a_non_finite_batch_on_one_process_stops_every_process(tmp_path):
    mp.spawn(batch_checker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert seen[0][0] is None and seen[1][0] is None  # a finite batch passes everywhere
    assert seen[1][1].startswith("step 2: the batch's 'proprio' holds NaN or inf")
    assert seen[0][1].startswith("step 2: another process's batch holds NaN or inf")
