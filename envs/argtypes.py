"""``type=`` helpers for argparse that range-check numbers while a command line is parsed, and
options declared once on dataclasses (:func:`option`) from which argparse arguments are made.

In the lowest layer so that every layer's settings can be declared this way (the collection's
:class:`armworld.datasets.collect_config.CollectConfig`, the world model's configs, the agents'
:class:`armworld.agents.rl_config.RLConfig`); the helpers are re-exported by
:mod:`armworld.commands` for every ``armworld`` verb. argparse alone: no torch, no MuJoCo.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from typing import Any, TypeVar

SEED_MAX = 2**31 - 1  # seeds feed NumPy, torch, Gymnasium and an int64 HDF5 attribute; derived seeds stay far below 2**63

Number = TypeVar("Number", int, float)
Item = TypeVar("Item")
Options = TypeVar("Options")


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


def comma_list(item: Callable[[str], Item], example: str) -> Callable[[str], tuple[Item, ...]]:
    """An argparse ``type=``: a comma-separated, non-empty list, each part parsed by ``item``
    (a ``type=`` helper); ``example`` shows a valid list in the error message."""

    def parse(text: str) -> tuple[Item, ...]:
        parts = [part.strip() for part in text.split(",") if part.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"names nothing; give a comma-separated list, e.g. {example}")
        try:
            return tuple(item(part) for part in parts)
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{error} (in the list {text!r}, e.g. {example})") from None

    return parse


# Options declared once: a dataclass field made with :func:`option` is a library setting and a
# command-line flag at the same time; :func:`add_options` turns the fields into argparse
# arguments, :func:`options_from` builds the dataclass back from the parsed arguments and
# :func:`check_options` (called by the dataclass's ``__post_init__``) applies the same range
# checks to values given in Python.

OPTION = "armworld.option"  # the key of an option's entry in its field's metadata


def option(
    default: object,
    help: str,
    type: Callable[[str], object] | None = None,
    choices: tuple[str, ...] | None = None,
    flag: str | None = None,
) -> Any:
    """A dataclass field that is also the command-line flag ``flag`` (default: ``--`` and the field's
    name with dashes), parsed and range-checked by ``type`` (a helper of this module) or one of
    ``choices``. ``help`` ends with ``(default %(default)s)``, or ``; default %(default)s)`` inside a closing
    parenthesis, unless it already says its default;
    a ``bool`` option is a switch (see :func:`option_flag`)."""
    spec = {"help": help, "type": type, "choices": choices, "flag": flag}
    return dataclasses.field(default=default, metadata={OPTION: spec})


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of the dataclass ``cls`` declared with :func:`option`, in order."""
    return [f for f in dataclasses.fields(cls) if OPTION in f.metadata]


def option_flag(f: dataclasses.Field) -> str:
    """The command-line flag of the option field ``f``: ``--no-name`` for a ``bool`` option that
    defaults to ``True`` (the flag turns it off), else ``--name`` (the flag turns a ``bool`` on)."""
    negated = "no-" if f.default is True else ""
    return f.metadata[OPTION]["flag"] or f"--{negated}{f.name.replace('_', '-')}"


def _ends_in_parentheses(text: str) -> bool:
    """Whether ``text`` ends with a parenthesised part (``(see datasets/README.md)``), not with
    another bracket nor an interval's parenthesis (``in [0, 1)``)."""
    depth = 0
    for char in reversed(text):
        depth += (char in ")]") - (char in "([")
        if depth == 0:
            return char == "("
    return False


def option_text(value: object) -> str:
    """``value`` as the command line writes it: a tuple as a comma list (``0,1,2``)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def with_default(help: str, default: object) -> str:
    """``help`` followed by ``default``: ``... (default %(default)s)``, or inside its closing
    parenthesis when it ends with one (``(see datasets/README.md; default %(default)s)``); a
    tuple is written as a comma list (``default 0,1,2``)."""
    shown = option_text(default).replace("%", "%%") if isinstance(default, tuple) else "%(default)s"
    return f"{help[:-1]}; default {shown})" if _ends_in_parentheses(help) else f"{help} (default {shown})"


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, defaults: object, **verb_defaults: object
) -> None:
    """An argument of ``parser`` (or an argument group) for each option field of the dataclass
    ``defaults``, with the field's name as its ``dest``. Its default is the field's value in
    ``defaults``, an instance (so that one class serves verbs of different defaults) or the class
    itself (its fields' defaults), unless ``verb_defaults`` names the field: then that value, e.g.
    None for a flag whose value, when not given, the verb works out itself."""
    for f in option_fields(defaults if isinstance(defaults, type) else type(defaults)):
        spec = f.metadata[OPTION]
        default = verb_defaults[f.name] if f.name in verb_defaults else getattr(defaults, f.name)
        help = spec["help"] if "(default" in spec["help"] else with_default(spec["help"], default)
        if isinstance(f.default, bool):
            parser.add_argument(option_flag(f), dest=f.name, default=default, help=spec["help"],
                                action="store_false" if f.default else "store_true")
        else:
            metavar = None if spec["choices"] else option_flag(f).lstrip("-").replace("-", "_").upper()
            parser.add_argument(option_flag(f), dest=f.name, default=default, help=help,
                                type=spec["type"], choices=spec["choices"], metavar=metavar)


def option_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values (see :func:`add_options`) of the option fields of the dataclass ``cls``, by field name."""
    return {f.name: getattr(args, f.name) for f in option_fields(cls)}


def options_from(cls: type[Options], args: argparse.Namespace, **others: object) -> Options:
    """The dataclass ``cls`` of the parsed arguments ``args`` (see :func:`add_options`) and
    ``others``: the values of its other fields, and of option fields the verb works out itself
    (they replace the parsed ones)."""
    return cls(**(option_values(cls, args) | others))


def check_options(config: object) -> None:
    """Raise ``ValueError`` naming the field, its flag and what is expected, for the first option
    field of the dataclass instance ``config`` whose value its ``type`` or ``choices`` refuse
    (``None`` passes where it is the default)."""
    for f in option_fields(type(config)):
        spec, value = f.metadata[OPTION], getattr(config, f.name)
        if value is None and f.default is None:
            continue
        if spec["choices"] is not None and value not in spec["choices"]:
            raise ValueError(f"{f.name} ({option_flag(f)}) is one of {list(spec['choices'])}, got {value!r}")
        if spec["type"] is not None:
            try:
                spec["type"](option_text(value))
            except argparse.ArgumentTypeError as error:
                raise ValueError(f"{f.name} ({option_flag(f)}): {error}") from None
