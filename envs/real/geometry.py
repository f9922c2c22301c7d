"""Rotation helpers the bridge needs beyond ``armworld.envs.conventions``.

Rotation vectors (axis x angle, rad) for step clamping and UR poses; unit quaternions
``[x, y, z, w]`` for franky; 4x4 homogeneous poses for calibration (``T_a_b``: the pose
of frame b in frame a, mapping points in b to a). Euler angles always follow the shared convention
(extrinsic XYZ, see :mod:`armworld.envs.conventions`).
"""

from __future__ import annotations

import numpy as np


def rotvec_from_matrix(R: np.ndarray) -> np.ndarray:
    """Rotation vector ``[3]`` (axis x angle, angle in [0, pi] rad) of a rotation matrix ``[3, 3]``."""
    R = np.asarray(R, dtype=np.float64)
    cos = np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(cos))
    axis = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    if angle < 1e-6:
        return axis / 2.0
    if np.pi - angle < 1e-4:
        # Near pi the antisymmetric part vanishes: take the axis from R + I.
        B = (R + np.eye(3)) / 2.0
        k = int(np.argmax(np.diag(B)))
        axis = B[:, k] / np.sqrt(max(B[k, k], 1e-12))
        return axis * angle
    return axis / (2.0 * np.sin(angle)) * angle


def matrix_from_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` of a rotation vector ``[3]`` (rad), by Rodrigues' formula."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    k = rotvec / angle
    K = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * K + (1.0 - np.cos(angle)) * (K @ K)


def rotation_angle(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle (rad) of the rotation taking ``R_a`` to ``R_b``."""
    cos = (np.trace(np.asarray(R_b) @ np.asarray(R_a).T) - 1.0) / 2.0
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion ``[x, y, z, w]`` of a rotation matrix ``[3, 3]``."""
    rotvec = rotvec_from_matrix(R)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    xyz = rotvec / angle * np.sin(angle / 2.0)
    return np.array([xyz[0], xyz[1], xyz[2], np.cos(angle / 2.0)])


def matrix_from_quat(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix ``[3, 3]`` of a quaternion ``[x, y, z, w]`` (normalised here)."""
    x, y, z, w = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def pose_matrix(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Homogeneous pose ``[4, 4]`` from a rotation ``[3, 3]`` and a translation ``[3]`` (m)."""
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_pose(T: np.ndarray) -> np.ndarray:
    """Inverse ``[4, 4]`` of a homogeneous pose ``[4, 4]`` (``T_a_b`` -> ``T_b_a``)."""
    R, t = T[:3, :3], T[:3, 3]
    return pose_matrix(R.T, -R.T @ t)


# Vendor tool frames (Franka EE, UR TCP, xArm TCP) point their z axis out of the flange,
# so a gripper pointing down has z down; armworld's TCP frame is aligned with the base
# frame in that posture. The two differ by a half turn about x (a self-inverse map).
_HALF_TURN_X = np.diag([1.0, -1.0, -1.0])


def tool_frame_swap(R: np.ndarray) -> np.ndarray:
    """Convert a TCP rotation ``[3, 3]`` between armworld's frame and a vendor tool frame (either way)."""
    return np.asarray(R) @ _HALF_TURN_X
