"""CLI verbs, one module per area; see armworld/cli.py.

What every verb shares lives here: the one-line error contract (:func:`fail`, the
parser that reports argument errors through it, :func:`user_errors`), the ``type=``
helpers that range-check numbers while the command line is parsed (defined in
:mod:`armworld.envs.argtypes`, beside ``option()``, with which the library's configs declare
their flags), and :func:`check_output`, the check of an output path against the inputs.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from armworld.envs.argtypes import (  # noqa: F401  (the type= helpers, re-exported for every verb)
    SEED_MAX,
    comma_list,
    image_side,
    non_negative_float,
    non_negative_int,
    number,
    positive_float,
    positive_int,
    seed,
    unit_float,
)


def fail(message: str) -> int:
    """Print ``error: message`` on stderr; returns the exit status of a refused command (1)."""
    print(f"error: {message}", file=sys.stderr)
    return 1


def error_text(error: BaseException) -> str:
    """The message of a refusal: ``str(error)``, but a ``KeyError``'s own text (``str`` would quote it)."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


class UsageError(Exception):
    """A command line the parser refused; ``armworld.cli.main`` reports it through :func:`fail`."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` (one ``error:`` line and
    exit status 1 in ``main``) instead of printing the usage and exiting with status 2.
    Sub-parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def user_errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """What a verb reports as one ``error:`` line rather than a traceback: bad arguments,
    missing files, unusable datasets and checkpoints, and the area's own ``extra``."""
    from armworld.datasets.hdf5 import DatasetError
    from armworld.worldmodel.checkpoint import CheckpointError

    return (ValueError, FileNotFoundError, CheckpointError, DatasetError, *extra)


def env_id(text: str) -> str:
    """An argparse ``type=``: a registered env id, given whole (``armworld/FrankaPush-v0``)
    or without its namespace (``FrankaPush-v0``)."""
    from armworld.envs.registry import ENV_IDS, ENV_NAMESPACE

    full = text if "/" in text else f"{ENV_NAMESPACE}/{text}"
    if full not in ENV_IDS:
        raise argparse.ArgumentTypeError(f"unknown env {text!r}; choose one of {', '.join(ENV_IDS)}")
    return full


def randomization_preset(text: str) -> str:
    """An argparse ``type=``: the name of a scene-randomisation preset (armworld/envs/randomization.py)."""
    from armworld.envs.randomization import PRESETS

    if text not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown randomization {text!r}; choose one of {', '.join(sorted(PRESETS))}")
    return text


def add_randomization(parser: argparse.ArgumentParser) -> None:
    """``--randomization PRESET``: the scene randomisation the verb's envs draw at every reset."""
    parser.add_argument(
        "--randomization", type=randomization_preset, default=None, metavar="PRESET",
        help="scene randomisation drawn at every reset from the reset seed: default (object and table colours, "
        "lighting, camera pose, object size, mass and friction) or sim2real (also actuator gains and action "
        "latency); default: none, the plain scene",
    )


def check_output(out: str | os.PathLike, *inputs: str | os.PathLike, folder: bool = False) -> None:
    """Raise ``ValueError`` unless ``out`` can be written without touching an input.

    ``out`` is a file (``folder=False``) or a folder the verb writes into (``folder=True``).
    It must not be any of ``inputs`` (through symbolic or hard links), nor hold an input that is
    a folder (``--out runs/wm`` with ``--init runs/wm/step-000100``; links resolved).
    A folder inside an input run is allowed: ``eval --out runs/rl/RUN/eval`` is where
    ``compare`` reads an RL run's evaluation. A file must not name an existing folder nor a folder an existing file, and the
    folder that will hold it must exist or be creatable in a writable folder. Call it before
    any work starts."""
    out = os.fspath(out)
    target = os.path.realpath(out)
    for given in inputs:
        if os.path.realpath(given) == target or (os.path.exists(out) and os.path.exists(given) and os.path.samefile(out, given)):
            raise ValueError(f"the output {out} is the input {os.fspath(given)}; write the output somewhere else")
    for given in inputs:
        source = os.path.realpath(given)
        if os.path.isdir(given) and os.path.commonpath([target, source]) == target:
            resolved = f" ({target} and {source})" if (target, source) != (os.path.abspath(out), os.path.abspath(given)) else ""
            raise ValueError(
                f"the output {out} is a directory holding the input {os.fspath(given)}{resolved}; "
                "write the output somewhere else"
            )
    if folder and os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"{out} is a file; the output is a directory, give a directory's name")
    if not folder and os.path.isdir(out):
        raise ValueError(f"{out} is a directory; the output is a file, give a file name inside it")
    holder = os.path.dirname(target) if not folder else target
    while not os.path.exists(holder):
        holder = os.path.dirname(holder)
    if not os.path.isdir(holder):
        raise ValueError(f"cannot write {out}: {holder} is a file, not a directory")
    if not os.access(holder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {out}: the directory {holder} is not writable")


def check_video_output(out: str | os.PathLike, *inputs: str | os.PathLike) -> None:
    """:func:`check_output` for a video file, whose extension must also name a format armworld writes."""
    from armworld.datasets.video import check_video_path

    check_output(out, *inputs)
    check_video_path(out)
