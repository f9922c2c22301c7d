"""The ``armworld`` command: thin verbs over the library.

Each area keeps its verbs in ``armworld/commands/<area>.py`` with a
``register(subparsers)`` function that adds them and sets ``func`` on each. Every
refusal, argument errors included, is one ``error:`` line on stderr and exit status 1
(``armworld.commands.fail``). A verb that needs a package of an optional extra that is not
installed ends the same way, naming the module and the ``pip install`` that brings it
(:data:`EXTRA_PACKAGES`, :func:`missing_extra`): verbs import what they need and let the
``ModuleNotFoundError`` reach :func:`main`.
"""

from __future__ import annotations

import importlib
import re
import sys

from armworld.commands import Parser, UsageError, fail

COMMAND_MODULES = ("envs", "data", "model", "agents", "real", "rl", "score", "experiment")

# The top-level import name of each package of armworld's optional extras, and the package
# (distribution) that provides it. Which extra brings a package is read from armworld's own
# metadata, that is from pyproject.toml's [project.optional-dependencies] (:func:`extras_of`);
# tests/test_cli_errors.py checks that every package of every extra has its import name here.
EXTRA_PACKAGES: dict[str, str] = {
    "zmq": "pyzmq",
    "msgpack": "msgpack",
    "cv2": "opencv-contrib-python-headless",
    "pyrealsense2": "pyrealsense2",
    "franky": "franky-control",
    "rtde_control": "ur-rtde",
    "rtde_receive": "ur-rtde",
    "rtde_io": "ur-rtde",
    "dashboard_client": "ur-rtde",
    "xarm": "xarm-python-sdk",
    "gymnasium_robotics": "gymnasium-robotics",
    "pyarrow": "pyarrow",
    "av": "av",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def extras_of(package: str) -> list[str]:
    """The optional extras of the installed armworld that bring ``package``, ``test`` last
    (it is for the test suite); empty when armworld's metadata cannot be read."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        lines = requires("armworld") or []
    except PackageNotFoundError:
        return []
    found = []
    for line in lines:  # e.g. 'pyzmq>=25; extra == "real"'
        name = re.match(r"\s*([A-Za-z0-9._-]+)", line)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", line)
        if name and extra and _normal(name.group(1)) == _normal(package) and extra.group(1) not in found:
            found.append(extra.group(1))
    return sorted(found, key=lambda extra: extra == "test")


def missing_extra(error: BaseException, verb: str | None = None) -> str | None:
    """The one-line message for ``error`` when it (or an error it was raised from) is a
    ``ModuleNotFoundError`` for a package of an optional extra; ``None`` for anything else."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ModuleNotFoundError) and error.name:
            module = error.name.partition(".")[0]
            extras = extras_of(EXTRA_PACKAGES[module]) if module in EXTRA_PACKAGES else []
            if extras:
                extra, who = extras[0], f"armworld {verb}" if verb else "this command"
                return (f"{who} needs the module {module} ({EXTRA_PACKAGES[module]}, from the optional '{extra}' "
                        f"extra), which is not installed: pip install 'armworld[{extra}]' (in a clone: "
                        f"pip install -e '.[{extra}]')")
        error = error.__cause__ or error.__context__
    return None


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
    except ImportError as error:
        message = missing_extra(error, getattr(args, "command", None))
        if message is None:
            raise  # not an optional extra: a broken install or a bug, whose traceback helps
        return fail(message)
    except BrokenPipeError:  # output piped into a reader that closed early (`| head`)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
