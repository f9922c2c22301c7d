"""World-model speed on this machine, printed as JSON.

- training throughput (clips/s) of the tiny preset: predictor training (frozen encoder,
  teacher forcing + 2-step rollout) and JEPA encoder pretraining;
- the planner's inner loop: one imagined rollout for 256 candidate action sequences at
  horizons 1, 2 and 4, with the context's keys/values cached (``WorldModel.rollout``)
  and, as the reference measured in the same run, recomputing the whole sequence at
  every autoregressive step (``use_cache=False``).

    python benchmarks/worldmodel_speed.py [--threads 2] [--candidates 256]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from armworld.worldmodel.encoder import PRESETS, FrameEncoder
from armworld.worldmodel.engine import LoopConfig, make_optimizer
from armworld.worldmodel.predictor import ACPredictor
from armworld.worldmodel.pretrain import JEPA
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

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
    result = {
        "device": f"cpu ({platform.processor() or platform.machine()}), {args.threads} threads",
        "preset": "tiny",
        "tokens_per_frame": cfg.num_patches,
        "predictor_params": sum(p.numel() for p in wm.predictor.parameters()),
        "encoder_params": sum(p.numel() for p in encoder.vjepa.encoder.parameters()),
        "train_predictor_clips_per_s": training_clips_per_second(ACTraining(wm, 2), clips, args.repeats),
        "pretrain_encoder_clips_per_s": training_clips_per_second(JEPA(FrameEncoder(cfg)), video, args.repeats),
        "clip_len": {"train": 4, "pretrain": cfg.frames_per_clip},
        "batch_size": B,
    }

    wm.eval()
    K = args.candidates
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
    result["rollout_256"] = rollouts
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
