"""Command-line arguments of ``pretrain`` and ``train``: the ``armworld pretrain`` and ``train`` verbs
(``torchrun -m armworld.cli pretrain|train`` on several processes).

Kept free of torch so that ``armworld --help`` stays fast. The flags are made from the fields of :class:`armworld.worldmodel.configs.PretrainConfig` and
:class:`~armworld.worldmodel.configs.TrainConfig` and of their loop's
:class:`armworld.worldmodel.loop_config.LoopConfig`, where each is declared (name, default, help, range)
once; the flags that are no field (the data, the output, the weights training starts from) are here.
"""

from __future__ import annotations

import argparse

from armworld.envs.argtypes import add_options, options_from
from armworld.worldmodel.configs import PretrainConfig, TrainConfig
from armworld.worldmodel.loop_config import LoopConfig, pretrain_loop


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", nargs="+", required=True, metavar="DATA",
        help="armworld HDF5 files and LeRobotDataset v3 directories (mapped by --lerobot-keys)",
    )
    parser.add_argument("--out", required=True, help="run directory (resumes if it holds a checkpoint)")


def add_pretrain_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``armworld pretrain``: the data, the fields of :class:`PretrainConfig` and of its loop."""
    _add_data_arguments(parser)
    add_options(parser, PretrainConfig)
    add_options(parser.add_argument_group("optimisation"), pretrain_loop())


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``armworld train``: the data, the weights training starts from, the fields of
    :class:`TrainConfig` (``--predictor``, ``--camera`` and ``--frame-skip`` default to None: not
    given, worked out by :func:`armworld.worldmodel.train.run`) and of its loop."""
    _add_data_arguments(parser)
    parser.add_argument("--encoder", help="`armworld pretrain` run, or a local Hugging Face V-JEPA 2 directory")
    parser.add_argument(
        "--preset", help="instead of --encoder: a freshly initialised encoder of this preset (e.g. tiny-pooled)"
    )
    parser.add_argument("--init", help="start from this trained world model (run or checkpoint) instead")
    add_options(parser, TrainConfig, predictor=None, camera=None, frame_skip=None)
    add_options(parser.add_argument_group("optimisation"), LoopConfig())


def loop_config(args: argparse.Namespace) -> LoopConfig:
    """The :class:`LoopConfig` of parsed ``pretrain`` or ``train`` arguments."""
    return options_from(LoopConfig, args)
