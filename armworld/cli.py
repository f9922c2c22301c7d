"""The ``armworld`` command: thin verbs over the library.

Each area keeps its verbs in ``armworld/commands/<area>.py`` with a
``register(subparsers)`` function that adds them and sets ``func`` on each.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("envs", "data", "model", "agents", "real", "rl", "score")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="armworld",
        description="armworld: Franka MuJoCo envs, trajectory datasets, a V-JEPA 2 world model, "
        "latent planning, RL baselines and a sim-to-real bridge. `armworld COMMAND --help` for each verb.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"armworld.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that closed early (`| head`)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
