"""CLI verbs for the world model: ``armworld pretrain``, ``armworld train``, ``armworld train-objects``,
``armworld export``.

Thin wrappers over :mod:`armworld.worldmodel.pretrain`, :mod:`armworld.worldmodel.train`,
:mod:`armworld.worldmodel.object_model` and :func:`armworld.worldmodel.checkpoint.export_checkpoint`; torch is imported only when
a verb runs. Ordinary mistakes (bad data files, checkpoints or settings) end in one
``error: ...`` line and exit status 1.
"""

from __future__ import annotations

import argparse

from armworld.commands import check_output, fail, user_errors
from armworld.envs.argtypes import add_options, options_from
from armworld.worldmodel.arguments import add_pretrain_arguments, add_train_arguments
from armworld.worldmodel.object_model_config import ObjectTrainConfig


def _pretrain(args: argparse.Namespace) -> int:
    from armworld.worldmodel.pretrain import run

    try:
        check_output(args.out, *args.data, folder=True)
        return run(args)
    except user_errors() as error:
        return fail(str(error))


def _train(args: argparse.Namespace) -> int:
    from armworld.worldmodel.train import run

    try:  # the run directory must not be a dataset, nor the --encoder or --init run it starts from
        check_output(args.out, *args.data, *(path for path in (args.encoder, args.init) if path), folder=True)
        return run(args)
    except user_errors() as error:
        return fail(str(error))


def _train_objects(args: argparse.Namespace) -> int:
    try:
        config = options_from(ObjectTrainConfig, args)
        check_output(args.out, *args.data, folder=True)
        from armworld.worldmodel.checkpoint import METADATA, read_json
        from armworld.worldmodel.object_model import train_object_model

        checkpoint = train_object_model(args.data, args.out, config)
    except user_errors(FloatingPointError) as error:
        return fail(str(error))
    metrics = read_json(checkpoint, METADATA)["valid_metrics"]  # as written, without hashing the weights again
    print(f"wrote {checkpoint}; validation: {metrics}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from armworld.worldmodel.checkpoint import export_checkpoint, read_checkpoint

    try:
        out = export_checkpoint(args.checkpoint, args.out, args.dtype)
    except user_errors() as error:
        return fail(str(error))
    meta = read_checkpoint(out).metadata
    print(f"wrote {out}: {meta['weights_bytes'] / 1e6:.1f} MB of {args.dtype} weights (sha256 {meta['weights_sha256'][:12]}...)")
    return 0


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
    o = subparsers.add_parser(
        "train-objects",
        help="train an object world model: a reader of object and hand positions from images, and the object's dynamics",
        description="Train an object world model (worldmodel/object_model.py) on the frames and recorded positions of "
        "armworld HDF5 datasets; plan with it as wm:OUT.",
    )
    o.add_argument("--data", nargs="+", required=True, metavar="DATA", help="armworld HDF5 files (pixels_state, the --camera's frames)")
    o.add_argument("--out", required=True, help="run directory to write the model to")
    add_options(o, ObjectTrainConfig)
    o.set_defaults(func=_train_objects)
    e = subparsers.add_parser(
        "export",
        help="write a checkpoint as a small stand-alone directory to ship (e.g. float16 weights)",
        description="Export a pretrain or train checkpoint: weights cast to --dtype, no optimizer state, metadata kept.",
    )
    e.add_argument("checkpoint", help="run directory (its latest checkpoint) or one checkpoint directory")
    e.add_argument(
        "--out", required=True, help="new checkpoint directory to write; an earlier export there is replaced atomically"
    )
    e.add_argument("--dtype", default="float16", choices=["float32", "float16", "bfloat16"], help="weight dtype (default float16)")
    e.set_defaults(func=_export)
