"""Bundled arm kinematics for the safety layer and the arm-side envelope, on the sim's own models and solver."""

from __future__ import annotations

import mujoco
import numpy as np

from armworld.envs.panda import PANDA
from armworld.envs.real.geometry import rotation_angle
from armworld.envs.real.protocols import ForwardKinematics, Robot
from armworld.envs.robot import ArmKinematics, IKConfig, RobotModel


class RobotIK:
    """:class:`~armworld.envs.real.protocols.Kinematics` of a simulator's robot (the Panda, also
    FR3 kinematics; the UR5e with the sim's gripper).

    Args:
        robot: the arm (``armworld.envs.panda.PANDA``, ``armworld.envs.ur5e.UR5E``).
        model: a compiled model holding ``robot``; default: the table-top scene with it.
        iterations: damped least-squares iterations per solve.
        pos_tol: position error (m) under which a solution counts as converged.
        rot_tol: orientation error (rad) under which a solution counts as converged.
    """

    def __init__(self, robot: RobotModel, model: mujoco.MjModel | None = None, iterations: int = 12,
                 pos_tol: float = 2e-3, rot_tol: float = 0.02):
        self.solver = ArmKinematics(model if model is not None else robot.scene().compile(), robot, IKConfig())
        self.iterations, self.pos_tol, self.rot_tol = iterations, pos_tol, rot_tol

    def ik(self, pos: np.ndarray, rot: np.ndarray, q_init: np.ndarray) -> tuple[np.ndarray, bool]:
        """Joint angles [dof] (rad) for TCP ``pos`` [3] (m) and ``rot`` [3, 3] from ``q_init``; and convergence."""
        q, pos_error = self.solver.solve(q_init, pos, rot, iterations=self.iterations)
        _, R = self.solver.forward(q)
        return q, pos_error <= self.pos_tol and rotation_angle(R, rot) <= self.rot_tol

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [3] (m) and rotation [3, 3] for joint angles ``q`` [dof] (rad)."""
        return self.solver.forward(q)


def envelope_forward(robot: Robot) -> ForwardKinematics | None:
    """The forward kinematics a :class:`~armworld.envs.real.server.RobotServer` checks ``robot``'s commands with.

    The driver's own (``forward``: the sim, any of its robots; a mock given one), else the bundled
    Panda model's for a Panda (``spec.name == "panda"``, e.g. ``franka://``, whose driver executes
    TCP targets: the commanded joints must then be the ones that reach that TCP), else ``None``
    (no model: the server checks the TCP target and the client's joints each on their own).
    """
    own = getattr(robot, "forward", None)
    if own is not None:
        return own
    spec = getattr(robot, "spec", None)
    return RobotIK(PANDA).forward if spec is not None and spec.name == "panda" else None
