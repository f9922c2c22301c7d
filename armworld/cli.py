"""The ``armworld`` command: thin verbs over the library.

Each area keeps its verbs in ``armworld/commands/<area>.py`` with a
``register(subparsers)`` function that adds them and sets ``func`` on each. Every
refusal, argument errors included, is one ``error:`` line on stderr and exit status 1
(``armworld.commands.fail``).
"""

from __future__ import annotations

import importlib
import sys

from armworld.commands import Parser, UsageError, fail

COMMAND_MODULES = ("envs", "data", "model", "agents", "real", "rl", "score", "experiment")


def build_parser() -> Parser:
    parser = Parser(
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
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status.
    Argument errors, like every refused command, end as one ``error:`` line and status 1."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        return fail(str(error))
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
