"""``type=`` helpers for argparse that range-check numbers while a command line is parsed.

Used by the worldmodel's arguments (:mod:`armworld.worldmodel.arguments`) and, re-exported by
:mod:`armworld.commands`, by every ``armworld`` verb; argparse alone, no torch.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

SEED_MAX = 2**31 - 1  # seeds feed NumPy, torch, Gymnasium and an int64 HDF5 attribute; derived seeds stay far below 2**63

Number = TypeVar("Number", int, float)


def number(
    kind: type[Number], low: Number | None = None, high: Number | None = None, above: bool = False, below: bool = False
) -> Callable[[str], Number]:
    """An argparse ``type=``: ``text`` as a finite ``kind`` within [low, high] (above ``low``
    when ``above``, below ``high`` when ``below``); anything else is refused with the range named."""
    noun = "an integer" if kind is int else "a number"
    bounds = [f"> {low}" if above else f">= {low}"] if low is not None else []
    bounds += [f"< {high}" if below else f"<= {high}"] if high is not None else []
    expected = f"{noun} {' and '.join(bounds)}".strip()

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        too_low = low is not None and (value <= low if above else value < low)
        too_high = high is not None and (value >= high if below else value > high)
        try:
            finite = math.isfinite(value)  # an int past float's range (~1e308) raises OverflowError
        except OverflowError:
            finite = False  # no count, size or seed that large means anything: refused like inf
        if not finite or too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = number(int, 1)
non_negative_int = number(int, 0)
seed = number(int, 0, SEED_MAX)
positive_float = number(float, 0.0, above=True)
non_negative_float = number(float, 0.0)
unit_float = number(float, 0.0, 1.0)
image_side = number(int, 8, 640)  # pixels, the envs' range for image_size and render_size
