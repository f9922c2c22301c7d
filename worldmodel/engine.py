"""The training loop shared by JEPA pretraining and predictor training.

One loop, one place for the machinery: seeding, DDP (``torchrun`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``; gloo on CPU, NCCL on GPU), AdamW without weight decay on
biases and norms, linear warm-up then cosine decay, gradient clipping, bf16 autocast on
GPU only, validation, a tqdm bar, TensorBoard scalars, checkpoints and resuming from the
newest checkpoint that verifies. What is trained is a :class:`Task`: an ``nn.Module`` whose
``forward(batch)`` returns the loss and a dict of scalar metrics.

Randomness is a function of ``(seed, ...)`` through :func:`derive_seed`, never of what ran
before: epoch ``e``'s data order comes from ``(seed, e)``, and the torch RNG is reseeded
from ``(seed, rank, step)`` before every step (masks, dropout). So resuming from a
checkpoint continues exactly as the uninterrupted run would have (the weights, optimizer
state and step are all there is to restore), and validation or logging never shift the
training randomness. A resumed run must be given the settings it started with (model, data,
optimisation, seed); only its length and bookkeeping may change (a new length stretches
the cosine learning-rate schedule from the step resumed).

Nothing non-finite is trained on or saved: a batch holding NaN or inf is refused naming its
key (the clip datasets already refuse such files when they open, naming file and key), and a
NaN or inf loss term or gradient norm stops the run (:class:`Diverged`) before that step is applied,
so every checkpoint written holds the finite weights of an earlier step.

Data: a batch is one list of clip indices, fetched at once (``clips(indices)`` of the clip
datasets: one gather per array when the data is in memory). ``LoopConfig.data_in_memory``
decides whether the clip datasets are decoded into memory first (:func:`place_data`): on the
training GPU when they fit its budget (no loader processes, no transfers), else in host memory
(shared with the loader processes), else streamed from the files. It changes where clips are
read from, never which: the same seed gives the same clips in the same order either way.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from armworld.datasets.hdf5 import DatasetError
from armworld.envs.argtypes import option_fields, option_flag
from armworld.worldmodel.checkpoint import (
    Checkpoint,
    describe_data,
    newest_valid_checkpoint,
    remove_leftovers,
    save_checkpoint,
)
from armworld.worldmodel.loop_config import LoopConfig  # the loop's options, torch-free for the CLI


class Diverged(ValueError):
    """A loss term or the gradient norm became NaN or inf; the step was not applied."""


HOST_MEMORY_FRACTION = 0.5  # of the host's available memory, shared by the processes of this machine
GPU_MEMORY_FRACTION = 0.25  # of the GPU's free memory (the rest for the model, its activations and optimizer)


@runtime_checkable
class ClipSource(Protocol):
    """A dataset that fetches batches at once and can be decoded into memory
    (:class:`armworld.datasets.clips.FrameDataset` and ``ClipDataset``)."""

    def __len__(self) -> int: ...

    @property
    def memory_device(self) -> torch.device | None: ...

    def memory_bytes(self) -> int: ...

    def load(self, device: str | torch.device = "cpu", shared: bool = False) -> None: ...

    def clips(self, indices: list[int] | torch.Tensor) -> dict[str, torch.Tensor]: ...


class Task(Protocol):
    """What the loop trains; see :class:`armworld.worldmodel.pretrain.JEPA` and ``train.ACTraining``."""

    kind: str

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]: ...

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. the EMA update)."""

    def checkpoint_config(self) -> dict:
        """JSON config that rebuilds the model (``kind``, ``encoder``, ``predictor``, ...)."""

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint stores (see :mod:`armworld.worldmodel.checkpoint`)."""

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`checkpoint_state`, for resuming."""


@dataclass
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "") -> Dist:
    """Join the process group that ``torchrun`` describes in the environment, if any."""
    use_cuda = device.startswith("cuda") or (device == "" and torch.cuda.is_available())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
        return Dist(torch_dist.get_rank(), world_size, dev)
    return Dist(0, 1, torch.device(device or ("cuda" if use_cuda else "cpu")))


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative integers (numpy ``SeedSequence``): unlike ``seed + epoch``,
    ``(1, 0)`` and ``(0, 1)`` give unrelated streams."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch's (CPU and GPU) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def learning_rate(step: int, cfg: LoopConfig) -> float:
    """Linear warm-up ``start_lr -> lr`` over ``warmup_steps``, then cosine decay to ``final_lr``."""
    if step < cfg.warmup_steps:
        return cfg.start_lr + (cfg.lr - cfg.start_lr) * step / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.final_lr + 0.5 * (cfg.lr - cfg.final_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(module: nn.Module, cfg: LoopConfig) -> torch.optim.AdamW:
    """AdamW over trainable parameters; no weight decay on biases, norms and other 1-D tensors."""
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.start_lr, betas=(0.9, 0.999), eps=1e-8)


def batches_per_epoch(dataset: Dataset, cfg: LoopConfig, dist: Dist) -> int:
    """Full batches per epoch and rank; ``ValueError`` when ``dataset`` holds less than one."""
    per_epoch = len(dataset) // dist.world_size // cfg.batch_size
    if per_epoch == 0:
        raise ValueError(
            f"the training data holds {len(dataset)} clips, fewer than one batch of {cfg.batch_size} x "
            f"{dist.world_size} processes: give more or longer episodes, or a smaller --batch-size, --clip-len or "
            "--frame-skip"
        )
    return per_epoch


class _Batches(Dataset):
    """``dataset`` indexed by lists of indices: its ``clips(indices)`` (a :class:`ClipSource`),
    else its items collated."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        if isinstance(self.dataset, ClipSource):
            return self.dataset.clips(indices)
        return default_collate([self.dataset[i] for i in indices])


def _loader(
    dataset: Dataset, index_batches: list[list[int]], cfg: LoopConfig, dist: Dist, generator: torch.Generator | None = None
) -> DataLoader:
    """Batches ``index_batches`` of ``dataset``, each fetched at once; by ``cfg.num_workers`` loader
    processes unless the data lies on the GPU already (then none are needed, nor transfers)."""
    memory = dataset.memory_device if isinstance(dataset, ClipSource) else None
    on_gpu = memory is not None and memory.type != "cpu"
    return DataLoader(
        _Batches(dataset), batch_size=None, sampler=index_batches, num_workers=0 if on_gpu else cfg.num_workers,
        generator=generator, pin_memory=dist.device.type == "cuda" and not on_gpu,
    )


def batches(dataset: Dataset, cfg: LoopConfig, dist: Dist, start_step: int) -> Iterator[dict[str, torch.Tensor]]:
    """Endless shuffled batches from step ``start_step`` on.

    Epoch ``e`` is a permutation drawn from ``derive_seed(seed, e)``; rank ``r`` reads its
    items ``r, r + world_size, ...`` of it (the same count on every rank), in batches, and the
    incomplete last batch is dropped. Starting mid-epoch skips the earlier batches without
    loading them. Each batch is fetched at once (:class:`ClipSource`), whether the data is in
    memory or streamed: the same clips either way.
    """
    per_rank = len(dataset) // dist.world_size
    per_epoch = batches_per_epoch(dataset, cfg, dist)
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(derive_seed(cfg.seed, epoch)))
        mine = order[dist.rank : per_rank * dist.world_size : dist.world_size][skip * cfg.batch_size :]
        index_batches = mine[: len(mine) // cfg.batch_size * cfg.batch_size].view(-1, cfg.batch_size).tolist()
        workers = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, dist.rank))  # data-worker seeds
        yield from _loader(dataset, index_batches, cfg, dist, workers)
        epoch, skip = epoch + 1, 0


def _available_host_memory() -> int:
    """Bytes of memory the host can give without swapping (``MemAvailable``), or its free pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def place_data(datasets: list[Dataset], cfg: LoopConfig, dist: Dist) -> dict:
    """Decode the :class:`ClipSource` datasets among ``datasets`` into memory, or leave them
    streaming, as ``cfg.data_in_memory`` says; returns what was done (for the checkpoints' metadata):
    ``{"in_memory": "cuda:0" | "cpu" | None, "decoded_bytes": int, "why": str}``.

    ``"auto"``: on the training GPU if their decoded size fits :data:`GPU_MEMORY_FRACTION` of its free
    memory, else in host memory if it fits :data:`HOST_MEMORY_FRACTION` of the available memory
    (divided among the processes of this machine; with loader processes, also of ``/dev/shm``),
    else streamed. ``"yes"``: in memory regardless of the host budget (on the GPU if it fits there).
    ``"no"``: streamed. Loading reads every episode once.
    """
    sources = [d for d in datasets if isinstance(d, ClipSource) and d.memory_device is None]
    needed = sum(d.memory_bytes() for d in sources)
    placed = {"in_memory": None, "decoded_bytes": needed}
    if not sources or cfg.data_in_memory == "no":
        return dict(placed, why="--data-in-memory no" if sources else "no clip datasets")
    shared = cfg.num_workers > 0
    gib = lambda n: f"{n / 2**30:.2f} GiB"  # noqa: E731
    gpu_budget = GPU_MEMORY_FRACTION * torch.cuda.mem_get_info(dist.device)[0] if dist.device.type == "cuda" else 0.0
    if needed <= gpu_budget:
        device, why = dist.device, f"{gib(needed)} decoded fits the GPU budget of {gib(gpu_budget)}"
    else:
        device = torch.device("cpu")
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        budget = HOST_MEMORY_FRACTION * _available_host_memory() / local_processes
        if shared and os.path.isdir("/dev/shm"):
            shm = os.statvfs("/dev/shm")
            budget = min(budget, HOST_MEMORY_FRACTION * shm.f_bavail * shm.f_frsize / local_processes)
        fits = needed <= budget
        if not fits and cfg.data_in_memory == "auto":
            return dict(placed, why=f"{gib(needed)} decoded exceeds the host budget of {gib(budget)}")
        why = f"{gib(needed)} decoded {'fits' if fits else 'exceeds, with --data-in-memory yes,'} the host budget of {gib(budget)}"
    for dataset in sources:
        dataset.load(device, shared=shared and device.type == "cpu")
    return dict(placed, in_memory=str(device), why=why)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def check_finite_batch(batch: dict[str, torch.Tensor], where: str, dist: Dist) -> dict[str, torch.Tensor]:
    """``batch`` itself; :class:`DatasetError` naming ``where`` and the key of a float tensor holding
    NaN or inf, on every process when any process's batch has one (a collective call: under DDP
    every process calls it once per batch, and the others would otherwise wait in the next
    all-reduce forever)."""
    bad = [key for key, value in batch.items() if value.is_floating_point() and not bool(torch.isfinite(value).all())]
    what = f"the batch's '{bad[0]}'" if bad else ""
    if dist.world_size > 1:
        anywhere = torch.tensor(float(bool(bad)), device=dist.device)
        torch_dist.all_reduce(anywhere, op=torch_dist.ReduceOp.MAX)
        if anywhere.item() and not bad:
            what = "another process's batch"
    if what:
        raise DatasetError(
            f"{where}: {what} holds NaN or inf, so the data does; armworld does not train on it "
            "(`armworld dataset validate FILE` names the episode)"
        )
    return batch


def check_finite_step(metrics: dict[str, float], step: int, dist: Dist) -> None:
    """:class:`Diverged` naming ``step`` and the metrics (loss terms, ``grad_norm``) that are NaN or
    inf, on every process when any process has one."""
    bad = [f"{k} = {v}" for k, v in metrics.items() if not math.isfinite(v)]
    if dist.world_size > 1:
        anywhere = torch.tensor(float(bool(bad)), device=dist.device)
        torch_dist.all_reduce(anywhere, op=torch_dist.ReduceOp.MAX)
        if anywhere.item() and not bad:
            bad = ["a loss term of another process"]
    if bad:
        raise Diverged(
            f"training diverged at step {step}: {', '.join(bad)}; stopped before applying it, so the checkpoints "
            "written so far hold finite weights; start a new run (a new --out) "
            "with a lower --lr or a longer --warmup-steps"
        )


@torch.no_grad()
def evaluate(task: nn.Module, dataset: Dataset, cfg: LoopConfig, dist: Dist) -> dict[str, float]:
    """Mean metrics over the first ``eval_batches`` batches of ``dataset`` (all ranks averaged)."""
    indices = list(range(len(dataset)))
    if dist.world_size > 1:
        indices = list(DistributedSampler(dataset, dist.world_size, dist.rank, shuffle=False))
    size = cfg.batch_size
    loader = _loader(dataset, [indices[i : i + size] for i in range(0, len(indices), size)][: cfg.eval_batches], cfg, dist)
    task.eval()
    totals: dict[str, float] = {}
    count = 0
    for i, batch in enumerate(loader):
        batch = check_finite_batch(batch, f"validation batch {i}", dist)
        with autocast(dist.device):
            loss, metrics = task(to_device(batch, dist.device))
        for k, v in dict(metrics, loss=float(loss)).items():
            totals[k] = totals.get(k, 0.0) + v
        count += 1
    task.train()
    keys = sorted(totals)
    values = torch.tensor([totals[k] for k in keys] + [count], dtype=torch.float64)
    if dist.world_size > 1:
        torch_dist.all_reduce(values)
    n = max(1.0, float(values[-1]))
    return {k: float(v) / n for k, v in zip(keys, values[:-1])}


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on GPU; a no-op on CPU."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


# LoopConfig fields a resumed run may change: its length and bookkeeping, not what it trains.
FREE_ON_RESUME = ("steps", "log_every", "eval_every", "eval_batches", "save_every", "keep_checkpoints",
                  "num_workers", "device", "data_in_memory", "progress")
FREE_FLAGS = [option_flag(f) for f in option_fields(LoopConfig) if f.name in FREE_ON_RESUME]  # their flags


def changed_settings(ckpt: Checkpoint, config: dict, data: list[dict]) -> list[str]:
    """``"key: old -> new"`` for each setting in which ``config`` (a checkpoint config) and the
    data files ``data`` (:func:`describe_data`) differ from the run ``ckpt`` belongs to.

    Compares the model configs, ``config["train"]`` but for :data:`FREE_ON_RESUME`, and the
    data files' contents (sha256, in order). Keys the older checkpoint does not record are skipped.
    """

    def settings(config: dict) -> dict:
        flat = {k: v for k, v in config.get("train", {}).items() if k not in FREE_ON_RESUME}
        for part in ("encoder", "predictor"):
            flat.update({f"{part}.{k}": v for k, v in (config.get(part) or {}).items()})
        return flat

    def files(described: list[dict]) -> str:
        return "[" + ", ".join(f"{d['path']} (sha256 {d['sha256'][:12]})" for d in described) + "]"

    old, new = settings(ckpt.config), settings(json.loads(json.dumps(config)))  # JSON types on both sides
    changes = [f"{k}: {old[k]!r} -> {new[k]!r}" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]]
    if "data" in ckpt.metadata and [d["sha256"] for d in ckpt.metadata["data"]] != [d["sha256"] for d in data]:
        changes.append(f"data: {files(ckpt.metadata['data'])} -> {files(data)}")
    return changes


def train_step(
    model: nn.Module, task: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], step: int,
    cfg: LoopConfig, dist: Dist,
) -> dict[str, float]:
    """One optimizer step of :func:`fit` on ``batch`` (as the loader gives it): the learning rate of
    ``step``, the batch checked and moved to the device, torch's RNG reseeded from ``(seed, rank,
    step)``, the loss under autocast, gradients clipped; :class:`Diverged` before a non-finite
    step is applied. ``model`` is ``task`` or its DDP wrapper. Returns the metrics, with ``loss``,
    ``grad_norm`` and ``lr``."""
    lr = learning_rate(step, cfg)
    for group in optimizer.param_groups:
        group["lr"] = lr
    batch = to_device(check_finite_batch(batch, f"step {step + 1}", dist), dist.device)
    torch.manual_seed(derive_seed(cfg.seed, dist.rank, step))
    with autocast(dist.device):
        loss, metrics = model(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_([p for p in task.parameters() if p.requires_grad], cfg.grad_clip)
    metrics = dict(metrics, loss=float(loss.detach()), grad_norm=float(grad_norm), lr=lr)
    check_finite_step(metrics, step + 1, dist)
    optimizer.step()
    task.after_step()
    return metrics


def fit(
    task: nn.Module,
    cfg: LoopConfig,
    train_data: Dataset,
    valid_data: Dataset | None,
    out_dir: str | Path,
    data_files: list[str] = (),
    extra_config: dict | None = None,
    extra_metadata: dict | None = None,
) -> Path | None:
    """Train ``task`` for ``cfg.steps`` optimizer steps, resuming from ``out_dir`` if it holds a checkpoint.

    ``extra_config`` goes into every checkpoint's ``config["train"]``, ``extra_metadata``
    (e.g. the lineage of the starting weights) into its metadata. A checkpoint that fails
    verification is skipped with a warning and the one before it resumed; settings that would
    change what is trained (:func:`changed_settings`) must match the resumed run's.
    Returns the last checkpoint's directory on rank 0 (None on other ranks).
    """
    dist = init_distributed(cfg.device)
    batches_per_epoch(train_data, cfg, dist)  # refused before anything is written
    seed_everything(derive_seed(cfg.seed, dist.rank))
    out_dir = Path(out_dir)
    task.to(dist.device)
    optimizer = make_optimizer(task, cfg)

    config = dict(task.checkpoint_config(), train=dict(asdict(cfg), **(extra_config or {})))
    start_step = 0
    if dist.main:
        remove_leftovers(out_dir)  # puts back a checkpoint an interrupted save had moved aside
    if dist.world_size > 1:
        torch_dist.barrier()  # every process then sees the same checkpoints
    resumed = newest_valid_checkpoint(out_dir)
    data = describe_data(list(data_files)) if dist.main or resumed is not None else []
    if resumed is not None:
        ckpt, state = resumed
        if ckpt.kind != task.kind:
            raise ValueError(f"{out_dir} holds a {ckpt.kind} run; cannot resume a {task.kind} run there")
        changes = changed_settings(ckpt, config, data)
        if changes:
            raise ValueError(
                f"{out_dir} holds a run with other settings ({'; '.join(changes)}); to resume it, repeat its "
                f"arguments (only {', '.join(FREE_FLAGS)} may change), "
                "or give a new --out"
            )
        task.load_checkpoint_state(ckpt.state_dict)
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            start_step = int(state["step"])
        if dist.main:
            print(f"resuming from {ckpt.path} at step {start_step}")
        if start_step >= cfg.steps:
            return ckpt.path if dist.main else None

    model: nn.Module = task
    if dist.world_size > 1:
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(task, device_ids=ids)

    placed = place_data([train_data] + ([valid_data] if valid_data is not None else []), cfg, dist)
    if dist.main and placed["in_memory"] is not None:
        print(f"data: decoded into memory on {placed['in_memory']} ({placed['why']})")
    elif dist.main and placed["decoded_bytes"]:
        print(f"data: streamed from the files ({placed['why']})")
    metadata_base = {
        **(extra_metadata or {}),
        "data": data,
        "data_pipeline": placed,
        "world_size": dist.world_size,
        "armworld_version": version("armworld"),
        "torch_version": torch.__version__,
    }
    writer = None
    if dist.main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out_dir))
    bar = None
    if dist.main and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, desc=task.kind, dynamic_ncols=True)

    metrics: dict[str, float] = {}
    last_valid: dict[str, float] = {}
    last_ckpt = None
    data = batches(train_data, cfg, dist, start_step)
    task.train()
    for step in range(start_step, cfg.steps):
        done = step + 1
        metrics = train_step(model, task, optimizer, next(data), step, cfg, dist)
        if writer is not None and (done % cfg.log_every == 0 or done == cfg.steps):
            for k, v in metrics.items():
                writer.add_scalar(f"train/{k}", v, done)
        if bar is not None:
            bar.update(1)
            postfix = {"loss": f"{metrics['loss']:.4f}"}
            if "loss" in last_valid:
                postfix["valid"] = f"{last_valid['loss']:.4f}"
            bar.set_postfix(postfix)
        if valid_data is not None and len(valid_data) > 0 and (done % cfg.eval_every == 0 or done == cfg.steps):
            last_valid = evaluate(task, valid_data, cfg, dist)
            if writer is not None:
                for k, v in last_valid.items():
                    writer.add_scalar(f"valid/{k}", v, done)
        if done % cfg.save_every == 0 or done == cfg.steps:
            if dist.main:
                last_ckpt = save_checkpoint(
                    out_dir,
                    done,
                    config,
                    task.checkpoint_state(),
                    dict(metadata_base, train_metrics=metrics, valid_metrics=last_valid),
                    {"optimizer": optimizer.state_dict(), "step": done},
                    keep=cfg.keep_checkpoints,
                )
            if dist.world_size > 1:
                torch_dist.barrier()
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    return last_ckpt
