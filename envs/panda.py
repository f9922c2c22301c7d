"""The Franka Emika Panda in the simulator (MJCF: ``assets/panda.xml``, written from Franka's
published kinematics, limits and gains) with the Franka Hand."""

from __future__ import annotations

import numpy as np

from armworld.envs.robot import RobotModel

PANDA = RobotModel(
    name="panda",
    mjcf="panda.xml",
    arm_joints=tuple(f"joint{i}" for i in range(1, 8)),
    finger_joints=("finger_joint1", "finger_joint2"),
    # Franka datasheet: joint position limits (rad) and velocity limits (rad/s).
    joint_limits=np.array(
        [
            [-2.8973, 2.8973],
            [-1.7628, 1.7628],
            [-2.8973, 2.8973],
            [-3.0718, -0.0698],
            [-2.8973, 2.8973],
            [-0.0175, 3.7525],
            [-2.8973, 2.8973],
        ]
    ),
    joint_velocity_limits=np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]),
    rest_qpos=np.array([0.0, -0.3, 0.0, -2.4, 0.0, 2.1, np.pi / 4]),
    finger_open=0.04,  # m per finger: the Franka Hand opens 8 cm
    meshes="armworld.envs.meshes:add_panda_meshes",
)
