"""The Universal Robots UR5e in the simulator (MJCF: ``assets/ur5e.xml``, written from UR's
published DH parameters, limits and masses) with a parallel gripper of 8.5 cm stroke."""

from __future__ import annotations

import numpy as np

from armworld.envs.robot import RobotModel

UR5E = RobotModel(
    name="ur5e",
    mjcf="ur5e.xml",
    arm_joints=("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"),
    finger_joints=("finger_joint1", "finger_joint2"),
    # UR5e datasheet: every joint +-360 degrees, 180 degrees/s (as envs/real/limits/ur5e.yaml)
    joint_limits=np.tile([-2 * np.pi, 2 * np.pi], (6, 1)),
    joint_velocity_limits=np.full(6, np.pi),
    # elbow up, the gripper pointing down with its TCP 25 cm over the table at x = 0.45 m
    rest_qpos=np.array([-0.3007, -1.6993, 1.897, -1.7685, -1.5708, -1.8715]),
    finger_open=0.0425,  # m per finger: 8.5 cm stroke
)
