"""The options of the training loop (:class:`LoopConfig`), declared once for the library and
for the ``--steps``, ``--lr``, ... flags of ``armworld pretrain`` and ``train``
(:mod:`armworld.worldmodel.arguments`); free of torch so that ``armworld --help`` stays fast.
The loop itself is :mod:`armworld.worldmodel.engine`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from armworld.envs.argtypes import (
    check_options,
    non_negative_float,
    non_negative_int,
    option,
    positive_float,
    positive_int,
    seed,
)

DATA_IN_MEMORY = ("auto", "yes", "no")


@dataclass
class LoopConfig:
    """Optimisation and bookkeeping; each field is also the command-line flag of the same name
    (:func:`armworld.envs.argtypes.option`). ``batch_size`` is per process. The defaults
    are V-JEPA 2-AC's predictor training; :func:`pretrain_loop` gives pretraining's."""

    steps: int = option(1000, "optimizer steps in total", positive_int)
    batch_size: int = option(8, "clips per step and process", positive_int)
    lr: float = option(4.25e-4, "peak learning rate", positive_float)
    start_lr: float = option(7.5e-5, "learning rate at step 0", positive_float)
    final_lr: float = option(1e-6, "learning rate at the last step, after the cosine decay", non_negative_float)
    warmup_steps: int = option(50, "linear warm-up steps", non_negative_int)
    weight_decay: float = option(0.04, "AdamW weight decay", non_negative_float)
    grad_clip: float = option(1.0, "gradient-norm clip", positive_float)
    seed: int = option(0, "seeds the initial weights, data order and masks", seed)
    log_every: int = option(10, "write the training metrics to TensorBoard every N steps", positive_int)
    eval_every: int = option(200, "validate every N steps", positive_int)
    eval_batches: int = option(8, "validation batches per validation", positive_int)
    save_every: int = option(500, "checkpoint every N steps", positive_int)
    keep_checkpoints: int = option(2, "the newest N checkpoints are kept in the run directory", positive_int)
    num_workers: int = option(0, "data-loading worker processes", non_negative_int, flag="--workers")
    device: str = option("", "cpu, cuda or cuda:N (default: cuda if available)")
    data_in_memory: Literal["auto", "yes", "no"] = option(
        "auto",
        "decode the clips into memory once (on the GPU when training there and it fits a quarter of its free "
        "memory, else in host memory, shared with the --workers) instead of reading them from the files at every "
        "step; auto: when the decoded data fits half the available host memory; yes: always; no: stream from the "
        "files. The same clips are trained on either way",
        choices=DATA_IN_MEMORY,
    )
    progress: bool = option(True, "no progress bar")

    def __post_init__(self) -> None:
        check_options(self)


def pretrain_loop() -> LoopConfig:
    """The loop of JEPA pretraining: V-JEPA 2's higher learning rates."""
    return LoopConfig(lr=5.25e-4, start_lr=1e-4)
