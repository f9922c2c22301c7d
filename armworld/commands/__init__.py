"""CLI verbs, one module per area; see armworld/cli.py."""

from __future__ import annotations

import sys


def fail(message: str) -> int:
    """Print ``error: message`` on stderr; returns the exit status of a refused command (1)."""
    print(f"error: {message}", file=sys.stderr)
    return 1
