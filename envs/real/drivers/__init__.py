"""Robot drivers, one module per kind of arm, chosen by URL scheme.

``mock://``, ``sim://HOST:PORT``, ``franka://IP``, ``ur://IP``, ``xarm://IP``. Each
driver module defines ``from_url(url: urllib.parse.SplitResult) -> Robot`` and imports
its vendor package only inside that call (the driver's constructor), so the extras
(``armworld[franka]``, ``[ur]``, ``[xarm]``) are needed only for the arms in use, and a
missing one is reported by :func:`make_robot`, before anything connects. Third-party
drivers join with :func:`register_driver` or the ``armworld.robots`` entry-point group
(name = scheme, value = module).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from urllib.parse import SplitResult, urlsplit

from armworld.envs.real.protocols import Kinematics, Robot

DRIVERS: dict[str, str] = {
    "mock": "armworld.envs.real.drivers.mock",
    "sim": "armworld.envs.real.drivers.sim",
    "franka": "armworld.envs.real.drivers.franka",
    "ur": "armworld.envs.real.drivers.ur",
    "xarm": "armworld.envs.real.drivers.xarm",
}


def register_driver(scheme: str, module: str) -> None:
    """Serve ``scheme://`` URLs with ``module.from_url``."""
    DRIVERS[scheme] = module


def parse_robot_url(url: str) -> SplitResult:
    """``"mock"`` or ``"scheme://host[:port][?options]"`` -> its parts; raises ``ValueError`` on unknown schemes."""
    parts = urlsplit(url if "://" in url else f"{url}://")
    known = {ep.name for ep in entry_points(group="armworld.robots")} | set(DRIVERS)
    if parts.scheme not in known:
        raise ValueError(f"unknown robot {url!r}; use one of {sorted(f'{s}://' for s in known)}")
    if parts.scheme not in ("mock",) and not parts.hostname:
        raise ValueError(f"robot URL {url!r} needs a host: {parts.scheme}://HOST")
    try:
        port_ok = parts.port is None or parts.port >= 1  # urlsplit refuses a port above 65535 or not a number
    except ValueError:
        port_ok = False
    if not port_ok:
        raise ValueError(f"robot URL {url!r}: the port must be a whole number in 1-65535")
    return parts


def make_robot(url: str) -> Robot:
    """The driver for ``url`` (not yet connected).

    Raises:
        ValueError: the URL is malformed or names no known driver.
        ImportError: the driver's vendor package is missing (the message names the extra).
    """
    parts = parse_robot_url(url)
    module = DRIVERS.get(parts.scheme)
    if module is None:
        (module,) = [ep.value for ep in entry_points(group="armworld.robots") if ep.name == parts.scheme]
    return importlib.import_module(module).from_url(parts)


def make_kinematics(robot: Robot) -> Kinematics:
    """The IK for the safety layer: the driver's own (``ik``, e.g. the UR and xArm controllers'), else a bundled model.

    The bundled Panda model serves a Panda (``robot.spec.name == "panda"``: the sim, a Franka,
    or a Panda behind ``armworld robot-server``); the simulator's other robots' models
    (``armworld.envs.registry.ROBOTS``, e.g. ``ur5e``) serve only their simulation, a robot that
    serves a sim task (``robot.task``): a real arm's tool is not the sim's gripper. A network
    client learns its spec and task from the server: connect it first.

    Raises:
        ValueError: the robot has no ``ik`` and no bundled model serves it, or its spec is not known yet.
    """
    if isinstance(robot, Kinematics):
        return robot
    spec = robot.spec
    if spec is None:
        raise ValueError(f"{type(robot).__name__} has no robot spec yet: connect() it before choosing its kinematics")
    from armworld.envs.registry import ROBOTS, robot_model

    simulated = getattr(robot, "task", None) is not None
    if not (spec.name == "panda" or (simulated and spec.name in ROBOTS)):
        raise ValueError(
            f"no inverse kinematics for the {spec.name} behind {type(robot).__name__}: it offers no ik() and the "
            "bundled models serve a Panda, or a simulated arm (armworld robot-server --sim). Run its vendor "
            "driver on this machine (ur://IP, xarm://IP use the controller's IK), or give RealArmEnv a "
            "Kinematics for this arm")
    from armworld.envs.real.kinematics import RobotIK

    return RobotIK(robot_model(spec.name))


def import_vendor(module: str, extra: str):
    """Import a vendor package, or explain which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is missing: pip install 'armworld[{extra}]'") from error
