"""CLI verbs for the world model: ``armworld pretrain`` and ``armworld train``.

Both are thin wrappers over :mod:`armworld.worldmodel.pretrain` and
:mod:`armworld.worldmodel.train`; torch is imported only when a verb runs.
"""

from __future__ import annotations

import argparse

from armworld.worldmodel.arguments import add_pretrain_arguments, add_train_arguments


def _pretrain(args: argparse.Namespace) -> int:
    from armworld.worldmodel.pretrain import run

    return run(args)


def _train(args: argparse.Namespace) -> int:
    from armworld.worldmodel.train import run

    return run(args)


def register(subparsers) -> None:
    """Add this area's verbs to the ``armworld`` parser."""
    p = subparsers.add_parser(
        "pretrain",
        help="self-supervised JEPA pretraining of the video encoder on dataset frames",
        description="Pretrain a V-JEPA 2 style encoder on the frames of armworld HDF5 datasets.",
    )
    add_pretrain_arguments(p)
    p.set_defaults(func=_pretrain)
    t = subparsers.add_parser(
        "train",
        help="train the action-conditioned predictor on a frozen encoder",
        description="Train a V-JEPA 2-AC style predictor (teacher forcing + rollout L1) on armworld HDF5 datasets.",
    )
    add_train_arguments(t)
    t.set_defaults(func=_train)
