"""The conventions that sim, datasets, world models and real arms share; changing
one of them bumps the env ids' version and the dataset format's.

One place for each constant and each conversion:

- ``proprio`` [7]: TCP position xyz (m, robot base frame), TCP orientation as extrinsic
  XYZ Euler angles (rad), gripper closure in [0, 1] (0 open, 1 closed).
  The TCP frame is aligned with the base frame when the gripper points straight down
  (x forward, y left, z up), so the Euler angles stay far from the +-pi wrap in
  table-top work.
- env action [7] in [-1, 1]: position delta x ``MAX_POS_DELTA``, orientation delta
  x ``MAX_ROT_DELTA`` given as extrinsic XYZ Euler angles of ``R_delta`` and applied as
  ``R_target = R_delta @ R_commanded`` (the orientation the previous actions commanded,
  gripper down at reset), and the gripper target (-1 open, +1 closed).
  The 4-D mode is xyz + gripper with the orientation held.
- world-model action [7]: the difference of consecutive proprio states
  (xyz difference, Euler angles of ``R_{t+1} R_t^T``, gripper difference), as V-JEPA 2-AC.
"""

from __future__ import annotations

import math

import numpy as np

CONTROL_HZ = 10.0
PHYSICS_DT = 0.002  # s
MAX_POS_DELTA = 0.05  # m per control step
MAX_ROT_DELTA = 0.15  # rad per control step
SUCCESS_THRESHOLD = 0.05  # m
PROPRIO_DIM = 7
ACTION_DIM = 7
CAMERAS = ("front", "wrist", "top")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def euler_xyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """Extrinsic XYZ Euler angles (rad) of rotation matrices ``[..., 3, 3]`` -> ``[..., 3]``.

    ``R = Rz(c) @ Ry(b) @ Rx(a)``; ``b`` is in [-pi/2, pi/2].
    """
    R = np.asarray(R, dtype=np.float64)
    if R.shape == (3, 3):  # one matrix, every env step: Python's math is 5x faster than numpy on scalars
        r = R.ravel().tolist()
        return np.array([math.atan2(r[7], r[8]), math.asin(min(max(-r[6], -1.0), 1.0)), math.atan2(r[3], r[0])])
    euler = np.empty(R.shape[:-1])
    np.arctan2(R[..., 2, 1], R[..., 2, 2], out=euler[..., 0])
    np.arcsin(np.minimum(np.maximum(-R[..., 2, 0], -1.0), 1.0), out=euler[..., 1])
    np.arctan2(R[..., 1, 0], R[..., 0, 0], out=euler[..., 2])
    return euler


def matrix_from_euler_xyz(euler: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` from extrinsic XYZ Euler angles ``[..., 3]`` (rad)."""
    euler = np.asarray(euler, dtype=np.float64)
    cos, sin = np.cos(euler), np.sin(euler)
    if euler.ndim > 1:
        cos, sin = np.moveaxis(cos, -1, 0), np.moveaxis(sin, -1, 0)
    (ca, cb, cc), (sa, sb, sc) = cos, sin  # numpy scalars for one triple: faster than 0-d arrays
    R = np.empty(euler.shape[:-1] + (3, 3))
    R[..., 0, 0] = cc * cb
    R[..., 0, 1] = cc * sb * sa - sc * ca
    R[..., 0, 2] = cc * sb * ca + sc * sa
    R[..., 1, 0] = sc * cb
    R[..., 1, 1] = sc * sb * sa + cc * ca
    R[..., 1, 2] = sc * sb * ca - cc * sa
    R[..., 2, 0] = -sb
    R[..., 2, 1] = cb * sa
    R[..., 2, 2] = cb * ca
    return R


def proprio_delta(proprio: np.ndarray) -> np.ndarray:
    """World-model actions from a proprio sequence ``[..., T, 7]`` -> ``[..., T-1, 7]``."""
    proprio = np.asarray(proprio, dtype=np.float64)
    R = matrix_from_euler_xyz(proprio[..., 3:6])
    relative = R[..., 1:, :, :] @ np.swapaxes(R[..., :-1, :, :], -1, -2)
    return np.concatenate(
        [
            np.diff(proprio[..., :3], axis=-2),
            euler_xyz_from_matrix(relative),
            np.diff(proprio[..., 6:7], axis=-2),
        ],
        axis=-1,
    ).astype(np.float32)


def apply_delta(proprio: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The proprio state ``[..., 7]`` reached by applying world-model actions ``[..., 7]``."""
    proprio = np.asarray(proprio, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    R = matrix_from_euler_xyz(delta[..., 3:6]) @ matrix_from_euler_xyz(proprio[..., 3:6])
    return np.concatenate(
        [
            proprio[..., :3] + delta[..., :3],
            euler_xyz_from_matrix(R),
            np.clip(proprio[..., 6:7] + delta[..., 6:7], 0.0, 1.0),
        ],
        axis=-1,
    ).astype(np.float32)


def env_action_to_delta(action: np.ndarray, proprio: np.ndarray) -> np.ndarray:
    """The proprio change ``[..., 7]`` that env actions ``[..., 7]`` (or ``[..., 4]``) command.

    Exact for position and orientation when the arm tracks its target; for the gripper,
    the change from the current closure to the commanded one.
    """
    action = expand_action(np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0))
    proprio = np.asarray(proprio, dtype=np.float64)
    return np.concatenate(
        [
            action[..., :3] * MAX_POS_DELTA,
            action[..., 3:6] * MAX_ROT_DELTA,
            (action[..., 6:7] + 1.0) / 2.0 - proprio[..., 6:7],
        ],
        axis=-1,
    ).astype(np.float32)


def delta_to_env_action(delta: np.ndarray, proprio: np.ndarray) -> np.ndarray:
    """Env actions ``[..., 7]`` in [-1, 1] that command world-model actions ``[..., 7]``."""
    delta = np.asarray(delta, dtype=np.float64)
    proprio = np.asarray(proprio, dtype=np.float64)
    gripper_target = np.clip(proprio[..., 6:7] + delta[..., 6:7], 0.0, 1.0)
    action = np.concatenate(
        [delta[..., :3] / MAX_POS_DELTA, delta[..., 3:6] / MAX_ROT_DELTA, 2.0 * gripper_target - 1.0],
        axis=-1,
    )
    return np.clip(action, -1.0, 1.0).astype(np.float32)


def expand_action(action: np.ndarray) -> np.ndarray:
    """A 4-D action (xyz + gripper, orientation held) as the 7-D action ``[..., 7]``."""
    action = np.asarray(action)
    if action.shape[-1] == 7:
        return action
    if action.shape[-1] != 4:
        raise ValueError(f"an action has 7 (xyz, rotation, gripper) or 4 (xyz, gripper) values, got shape {action.shape}")
    zeros = np.zeros(action.shape[:-1] + (3,), dtype=action.dtype)
    return np.concatenate([action[..., :3], zeros, action[..., 3:]], axis=-1)


def gripper_closure(finger_width: float | np.ndarray, max_width: float) -> float | np.ndarray:
    """Gripper closure in [0, 1] (0 open, 1 closed) from the finger opening (m) of a gripper
    that opens ``max_width`` (m; ``RobotModel.gripper_max_width``)."""
    if isinstance(finger_width, float):  # every env step: no numpy call for one number
        return min(max(1.0 - finger_width / max_width, 0.0), 1.0)
    return np.minimum(np.maximum(1.0 - finger_width / max_width, 0.0), 1.0)
