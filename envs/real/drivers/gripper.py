"""Gripper conventions mapped to armworld's closure (0 open, 1 closed, as DROID).

Each device speaks its own unit: the Franka Hand a finger opening in metres, the
UFACTORY gripper a position 0..850 (850 open), the Menagerie Panda a control 0..255
(255 open). :class:`GripperMap` is the one linear map between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from armworld.envs.panda import PANDA


@dataclass(frozen=True)
class GripperMap:
    """Linear map between closure in [0, 1] and a device value.

    Attributes:
        open_value: the device value of a fully open gripper.
        closed_value: the device value of a fully closed gripper.
    """

    open_value: float
    closed_value: float

    def to_device(self, closure: float) -> float:
        """Device value for a closure (clipped to [0, 1])."""
        c = float(np.clip(closure, 0.0, 1.0))
        return self.open_value + c * (self.closed_value - self.open_value)

    def to_closure(self, value: float) -> float:
        """Closure in [0, 1] for a device value (clipped to the device range)."""
        c = (float(value) - self.open_value) / (self.closed_value - self.open_value)
        return float(np.clip(c, 0.0, 1.0))


FRANKA_HAND = GripperMap(open_value=PANDA.gripper_max_width, closed_value=0.0)  # finger opening, m
XARM_GRIPPER = GripperMap(open_value=850.0, closed_value=0.0)  # xArm gripper position units
