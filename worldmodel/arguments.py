"""Command-line arguments of ``pretrain`` and ``train``: the ``armworld pretrain`` and ``train`` verbs
(``torchrun -m armworld.cli pretrain|train`` on several processes).

Kept free of torch so that ``armworld --help`` stays fast. Numbers are range-checked while the
command line is parsed, by the ``type=`` helpers of :mod:`armworld.worldmodel.argtypes` (which import no torch).
"""

from __future__ import annotations

import argparse

from armworld.worldmodel.argtypes import non_negative_float, non_negative_int, number, positive_float, positive_int, seed, unit_float


def _add_loop_arguments(parser: argparse.ArgumentParser, lr: float, start_lr: float) -> None:
    g = parser.add_argument_group("optimisation")
    g.add_argument("--steps", type=positive_int, default=1000, help="optimizer steps in total (default %(default)s)")
    g.add_argument("--batch-size", type=positive_int, default=8, help="clips per step and process (default %(default)s)")
    g.add_argument("--lr", type=positive_float, default=lr, help="peak learning rate (default %(default)s)")
    g.add_argument("--start-lr", type=positive_float, default=start_lr, help="learning rate at step 0 (default %(default)s)")
    g.add_argument("--warmup-steps", type=non_negative_int, default=50, help="linear warm-up steps (default %(default)s)")
    g.add_argument("--weight-decay", type=non_negative_float, default=0.04, help="AdamW weight decay (default %(default)s)")
    g.add_argument("--grad-clip", type=positive_float, default=1.0, help="gradient-norm clip (default %(default)s)")
    g.add_argument(
        "--seed", type=seed, default=0, help="seeds the initial weights, data order and masks (default %(default)s)"
    )
    g.add_argument("--eval-every", type=positive_int, default=200, help="validate every N steps (default %(default)s)")
    g.add_argument("--save-every", type=positive_int, default=500, help="checkpoint every N steps (default %(default)s)")
    g.add_argument("--device", default="", help="cpu, cuda or cuda:N (default: cuda if available)")
    g.add_argument("--workers", type=non_negative_int, default=0, help="data-loading worker processes (default %(default)s)")
    g.add_argument(
        "--data-in-memory", choices=("auto", "yes", "no"), default="auto",
        help="decode the clips into memory once (on the GPU when training there and it fits a quarter of its free "
        "memory, else in host memory, shared with the --workers) instead of reading them from the files at every "
        "step; auto: when the decoded data fits half the available host memory; yes: always; no: stream from the "
        "files. The same clips are trained on either way (default %(default)s)",
    )


def lerobot_keys(text: str) -> str:
    """An argparse ``type=``: a key map of LeRobot datasets (a name of
    ``armworld.datasets.lerobot.KEY_MAPS`` or a JSON key-map file), checked and returned as given."""
    from armworld.datasets.hdf5 import DatasetError
    from armworld.datasets.lerobot import key_map

    try:
        key_map(text)
    except DatasetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _add_data_arguments(parser: argparse.ArgumentParser, clip_len: int) -> None:
    parser.add_argument(
        "--data", nargs="+", required=True, metavar="DATA",
        help="armworld HDF5 files and LeRobotDataset v3 directories (mapped by --lerobot-keys)",
    )
    parser.add_argument(
        "--lerobot-keys", type=lerobot_keys, default="armworld", metavar="MAP",
        help="how LeRobot --data directories map onto armworld's camera, proprio and action keys: "
        "armworld (its own exports), droid, or a JSON key-map file (see datasets/README.md; default %(default)s)",
    )
    parser.add_argument("--out", required=True, help="run directory (resumes if it holds a checkpoint)")
    parser.add_argument("--clip-len", type=number(int, 2), default=clip_len, help="frames per clip (default %(default)s)")


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``armworld pretrain``."""
    _add_data_arguments(parser, clip_len=8)
    parser.add_argument("--frame-skip", type=positive_int, default=1, help="keep every k-th frame (default %(default)s)")
    parser.add_argument("--camera", default="front", help="camera whose frames are used (default %(default)s)")
    parser.add_argument(
        "--preset", default="tiny", help="encoder size: tiny, tiny-p8, small, vitl, vith, vitg"
    )
    parser.add_argument(
        "--objective", default="ema", choices=("ema", "sigreg"),
        help="ema: V-JEPA's EMA target; sigreg: LeJEPA, no EMA (default %(default)s)",
    )
    parser.add_argument(
        "--ema", type=number(float, 0.0, 1.0, below=True), default=0.998,
        help="target-encoder EMA momentum, in [0, 1) (default %(default)s)",
    )
    parser.add_argument(
        "--sigreg-weight", type=unit_float, default=0.05, help="SIGReg weight with --objective sigreg (default %(default)s)"
    )
    parser.add_argument(
        "--augment", action="store_true", help="V-JEPA 2's random resized crop (area 0.3-1, aspect 0.75-1.35) per clip"
    )
    _add_loop_arguments(parser, lr=5.25e-4, start_lr=1e-4)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``armworld train``."""
    _add_data_arguments(parser, clip_len=4)
    parser.add_argument("--frame-skip", type=positive_int, help="keep every k-th frame (default: the --init model's, else 1)")
    parser.add_argument(
        "--camera", help="camera whose frames are used (default: the --init model's, else the --encoder run's, else front)"
    )
    parser.add_argument("--encoder", help="`armworld pretrain` run, or a local Hugging Face V-JEPA 2 directory")
    parser.add_argument(
        "--preset", help="instead of --encoder: a freshly initialised encoder of this preset (e.g. tiny-pooled)"
    )
    parser.add_argument("--init", help="start from this trained world model (run or checkpoint) instead")
    parser.add_argument(
        "--end-to-end", action="store_true",
        help="train the encoder with the predictor (LeWorldModel: squared errors + SIGReg) instead of freezing it",
    )
    parser.add_argument(
        "--sigreg-weight", type=non_negative_float, default=0.1, help="SIGReg weight with --end-to-end (default %(default)s)"
    )
    parser.add_argument("--predictor", help="size of a fresh predictor: tiny (default), small, official; not with --init")
    parser.add_argument("--rollout-steps", type=non_negative_int, default=2, help="autoregressive steps in the rollout loss")
    _add_loop_arguments(parser, lr=4.25e-4, start_lr=7.5e-5)


def loop_config(args: argparse.Namespace):
    """The :class:`armworld.worldmodel.engine.LoopConfig` of parsed arguments."""
    from armworld.worldmodel.engine import LoopConfig

    return LoopConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, start_lr=args.start_lr,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        seed=args.seed, eval_every=args.eval_every, save_every=args.save_every, device=args.device,
        num_workers=args.workers, data_in_memory=args.data_in_memory,
    )
