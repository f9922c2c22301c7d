"""CLI verbs, one module per area; see armworld/cli.py."""

from __future__ import annotations

import sys


def fail(message: str) -> int:
    """Print ``error: message`` on stderr; returns the exit status of a refused command (1)."""
    print(f"error: {message}", file=sys.stderr)
    return 1


def user_errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """What a verb reports as one ``error:`` line rather than a traceback: bad arguments,
    missing files, unusable datasets and checkpoints, and the area's own ``extra``."""
    from armworld.datasets.hdf5 import DatasetError
    from armworld.worldmodel.checkpoint import CheckpointError

    return (ValueError, FileNotFoundError, CheckpointError, DatasetError, *extra)
