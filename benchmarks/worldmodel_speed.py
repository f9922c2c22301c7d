"""World-model speed on this machine, printed as JSON.

- ``model``: training throughput (clips/s) of the tiny preset on tensors already in memory:
  predictor training (frozen encoder, teacher forcing + 2-step rollout) and JEPA encoder
  pretraining;
- ``rollout``: the planner's inner loop: one imagined rollout for 256 candidate action
  sequences at horizons 1, 2 and 4, with the context's keys/values cached
  (``WorldModel.rollout``) and, as the reference measured in the same run, recomputing the
  whole sequence at every autoregressive step (``use_cache=False``);
- ``pipeline``: the data pipeline of ``armworld pretrain`` (``tiny``, 8-frame clips) on an HDF5
  file (``--data``, or one written here of gzip-compressed frames, as collected files are),
  streamed from the file and, in the same run, decoded into memory first
  (``--data-in-memory no`` and ``yes``): clips/s of the pipeline alone (batches as the
  training loop fetches them, moved to the device) and of whole training steps
  (``engine.train_step``), with the share of time the GPU was busy on CUDA (``nvidia-smi``).

    python benchmarks/worldmodel_speed.py [--parts model rollout pipeline] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from armworld.datasets.clips import FrameDataset
from armworld.worldmodel.encoder import PRESETS, FrameEncoder
from armworld.worldmodel.engine import Dist, LoopConfig, batches, make_optimizer, place_data, to_device, train_step
from armworld.worldmodel.predictor import ACPredictor
from armworld.worldmodel.pretrain import JEPA, PretrainConfig, build_jepa
from armworld.worldmodel.train import ACTraining, predictor_config
from armworld.worldmodel.world_model import WorldModel


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def training_clips_per_second(task: torch.nn.Module, batch: dict[str, torch.Tensor], repeats: int) -> float:
    opt = make_optimizer(task, LoopConfig())
    task.train()

    def step():
        loss, _ = task(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        task.after_step()

    return batch["frames"].shape[0] / timed(step, repeats)


def model_speed(args: argparse.Namespace, result: dict) -> None:
    """Training clips/s of the tiny preset on random tensors (no data pipeline)."""
    cfg = PRESETS["tiny"]
    encoder = FrameEncoder(cfg)
    wm = WorldModel(encoder, ACPredictor(predictor_config(encoder, "tiny")))
    B, S = args.batch_size, cfg.image_size
    g = torch.Generator().manual_seed(0)
    clips = {
        "frames": torch.randint(0, 256, (B, 4, S, S, 3), dtype=torch.uint8, generator=g),
        "proprio": torch.randn(B, 4, 7, generator=g),
        "actions": 0.02 * torch.randn(B, 3, 7, generator=g),
    }
    video = {"frames": torch.randint(0, 256, (B, cfg.frames_per_clip, S, S, 3), dtype=torch.uint8, generator=g)}
    result.update(
        tokens_per_frame=cfg.num_patches,
        predictor_params=sum(p.numel() for p in wm.predictor.parameters()),
        encoder_params=sum(p.numel() for p in encoder.vjepa.encoder.parameters()),
        train_predictor_clips_per_s=training_clips_per_second(ACTraining(wm, 2), clips, args.repeats),
        pretrain_encoder_clips_per_s=training_clips_per_second(JEPA(FrameEncoder(cfg)), video, args.repeats),
        clip_len={"train": 4, "pretrain": cfg.frames_per_clip},
        batch_size=B,
    )


def rollout_speed(args: argparse.Namespace, result: dict) -> None:
    """Seconds of one imagined rollout of ``args.candidates`` candidates, cached and uncached."""
    cfg = PRESETS["tiny"]
    encoder = FrameEncoder(cfg)
    wm = WorldModel(encoder, ACPredictor(predictor_config(encoder, "tiny"))).eval()
    S, K = cfg.image_size, args.candidates
    g = torch.Generator().manual_seed(0)
    rollouts = []
    with torch.no_grad():
        for context_frames in (1, 2):
            z = wm.encode(torch.randint(0, 256, (1, context_frames, S, S, 3), dtype=torch.uint8, generator=g))
            proprio = torch.rand(1, context_frames, 7, generator=g)
            past = 0.02 * torch.randn(1, context_frames - 1, 7, generator=g)
            for horizon in (1, 2, 4):
                actions = 0.02 * torch.randn(K, horizon, 7, generator=g)
                row = {"context_frames": context_frames, "horizon": horizon, "candidates": K}
                # With the cache, the context is prepared once per planning call and reused by every iteration.
                ctx = wm.context(z, proprio, past)
                row["context_s"] = timed(lambda: wm.context(z, proprio, past), args.repeats)
                row["cached_s"] = timed(lambda: wm.rollout(ctx, actions, use_cache=True), args.repeats)
                row["uncached_s"] = timed(lambda: wm.rollout(ctx, actions, use_cache=False), args.repeats)
                row["speedup"] = row["uncached_s"] / row["cached_s"]
                rollouts.append(row)
    result[f"rollout_{K}"] = rollouts


def synthetic_file(path: Path, episodes: int, image_size: int, steps: int = 60) -> str:
    """A trajectory file of ``episodes`` episodes of ``steps`` actions: a square moving over a
    textured background in the ``top`` camera (gzip-compressed as collected frames are)."""
    from armworld.datasets.hdf5 import Episode, TrajectoryWriter

    rng = np.random.default_rng(0)
    env_args = {"env_name": "armworld/FrankaPush-v0", "type": 2, "env_kwargs": {"image_size": image_size},
                "max_episode_steps": steps}
    background = rng.integers(60, 90, (image_size, image_size, 3), dtype=np.uint8)
    with TrajectoryWriter(path, env_args) as writer:
        for seed in range(episodes):
            xy = np.cumsum(rng.integers(-2, 3, (steps + 1, 2)), axis=0) % (image_size - 8)
            frames = np.repeat(background[None], steps + 1, axis=0)
            for t, (x, y) in enumerate(xy):
                frames[t, y : y + 8, x : x + 8] = (230, 200, 40)
            proprio = np.zeros((steps + 1, 7), dtype=np.float32)
            proprio[:, :2] = xy / image_size
            writer.append(Episode(
                obs={"rgb_top": frames, "proprio": proprio}, states=np.zeros((steps + 1, 1)),
                actions=rng.uniform(-1, 1, (steps, 7)).astype(np.float32), rewards=np.zeros(steps, dtype=np.float32),
                terminated=np.zeros(steps, dtype=bool), truncated=np.arange(steps) == steps - 1,
                success=np.zeros(steps, dtype=bool), seed=seed, policy="synthetic",
            ))
    return str(path)


class GpuBusy:
    """The mean GPU utilisation (%) ``nvidia-smi`` reports while the ``with`` block runs, sampled
    every 0.2 s (``None`` on the CPU or without ``nvidia-smi``)."""

    def __init__(self, device: torch.device) -> None:
        self.enabled = device.type == "cuda" and shutil.which("nvidia-smi") is not None
        self.index = torch.cuda.current_device() if device.index is None and self.enabled else device.index
        self.samples: list[float] = []
        self._stop = threading.Event()

    def _sample(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", str(self.index)]
        while not self._stop.wait(0.2):
            self.samples.append(float(subprocess.run(query, capture_output=True, text=True, check=True).stdout))

    def __enter__(self) -> GpuBusy:
        if self.enabled:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()

    @property
    def percent(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def pipeline_speed(args: argparse.Namespace, result: dict) -> None:
    """Clips/s of the pretraining data pipeline alone and of whole ``tiny`` training steps, streamed
    from the file and from memory, in the same run."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist = Dist(0, 1, device)
    workdir = tempfile.TemporaryDirectory()
    data = args.data or synthetic_file(Path(workdir.name) / "synthetic.h5", args.episodes, args.image_size)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rows = []
    for mode in ("no", "yes"):
        for workers in args.workers if mode == "no" else [0]:
            loop = LoopConfig(batch_size=args.pipeline_batch_size, num_workers=workers, data_in_memory=mode, warmup_steps=0)
            config = PretrainConfig(preset="tiny", clip_len=8, camera=args.camera, loop=loop)
            dataset = FrameDataset([data], clip_len=8, camera=args.camera, split=None)
            start = time.perf_counter()
            placed = place_data([dataset], loop, dist)
            row = {"data_in_memory": mode, "placed": placed["in_memory"] or "files", "workers": workers,
                   "decoded_mib": round(placed["decoded_bytes"] / 2**20, 1), "load_s": time.perf_counter() - start}
            stream = batches(dataset, loop, dist, 0)
            to_device(next(stream), device)  # starts the loader processes
            sync()
            start = time.perf_counter()
            for batch in islice(stream, args.pipeline_batches):
                to_device(batch, device)
            sync()
            row["pipeline_clips_per_s"] = args.pipeline_batches * loop.batch_size / (time.perf_counter() - start)

            task = build_jepa(config).to(device)
            optimizer = make_optimizer(task, loop)
            train_step(task, task, optimizer, next(stream), 0, loop, dist)  # warm-up
            sync()
            with GpuBusy(device) as busy:
                start = time.perf_counter()
                for step, batch in enumerate(islice(stream, args.pipeline_steps), start=1):
                    train_step(task, task, optimizer, batch, step, loop, dist)
                sync()
                seconds = time.perf_counter() - start
            row["train_clips_per_s"] = args.pipeline_steps * loop.batch_size / seconds
            row["gpu_busy_percent"] = busy.percent
            rows.append(row)
            del stream
    mask_batch = args.pipeline_batch_size
    masker = build_jepa(PretrainConfig(preset="tiny")).masker
    result.update(
        pipeline={"device": str(device), "data": args.data or f"synthetic, {args.episodes} episodes of 61 frames",
                  "camera": args.camera, "batch_size": args.pipeline_batch_size, "clip_len": 8, "rows": rows},
        masks_ms_per_batch=1000 * timed(lambda: masker(mask_batch, torch.default_generator), args.repeats),
    )
    workdir.cleanup()


PARTS = {"model": model_speed, "rollout": rollout_speed, "pipeline": pipeline_speed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS), help="what to measure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8, help="clips per step of the model part")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="", help="of the pipeline part: cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--data", help="pipeline: an armworld HDF5 file (default: a synthetic one written here)")
    parser.add_argument("--camera", default="top", help="pipeline: the camera of --data (default %(default)s)")
    parser.add_argument("--episodes", type=int, default=100, help="pipeline: episodes of the synthetic file")
    parser.add_argument("--image-size", type=int, default=64, help="pipeline: frame size of the synthetic file")
    parser.add_argument("--pipeline-batch-size", type=int, default=128)
    parser.add_argument("--pipeline-batches", type=int, default=20, help="batches timed through the pipeline alone")
    parser.add_argument("--pipeline-steps", type=int, default=3, help="training steps timed")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="pipeline: loader processes when streaming")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {
        "device": f"cpu ({platform.processor() or platform.machine()}), {args.threads} threads",
        "preset": "tiny",
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        result["gpu"] = torch.cuda.get_device_name()
    for part in args.parts:
        PARTS[part](args, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
