"""Command-line arguments of ``pretrain`` and ``train``: the ``armworld pretrain`` and ``train`` verbs
(``torchrun -m armworld.cli pretrain|train`` on several processes).

Kept free of torch so that ``armworld --help`` stays fast. Numbers are range-checked while the
command line is parsed, by the ``type=`` helpers of :mod:`armworld.worldmodel.argtypes` (which import no torch).
The optimisation flags are made from the fields of :class:`armworld.worldmodel.loop_config.LoopConfig`,
where each is declared (name, default, help, range) once.
"""

from __future__ import annotations

import argparse

from armworld.worldmodel.argtypes import add_options, non_negative_float, non_negative_int, number, options_from, positive_int, unit_float
from armworld.worldmodel.loop_config import LoopConfig, pretrain_loop


def _add_loop_arguments(parser: argparse.ArgumentParser, defaults: LoopConfig) -> None:
    """A flag for each :class:`LoopConfig` field, declared there, with the verb's ``defaults``."""
    add_options(parser.add_argument_group("optimisation"), defaults)


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
    _add_loop_arguments(parser, pretrain_loop())


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
    _add_loop_arguments(parser, LoopConfig())


def loop_config(args: argparse.Namespace) -> LoopConfig:
    """The :class:`LoopConfig` of parsed ``pretrain`` or ``train`` arguments."""
    return options_from(LoopConfig, args)
