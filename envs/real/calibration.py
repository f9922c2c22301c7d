"""Camera calibration: ChArUco board poses, fixed-camera extrinsics and hand-eye calibration.

Poses are homogeneous ``[4, 4]`` matrices ``T_a_b`` (frame b in frame a, metres).
Camera frames follow OpenCV (x right, y down, z along the optical axis); the board
frame is OpenCV's ChArUco frame (origin at the board's top-left outer corner as
printed, x along its columns, y along its rows, z into the board).

- :func:`detect_board`: one image -> ``T_camera_board`` (OpenCV's current aruco API:
  ``CharucoBoard``, ``CharucoDetector``, then ``cv2.solvePnP``).
- :func:`fixed_camera_pose`: a fixed camera's ``T_base_camera`` from a board lying at a
  known pose in the robot base frame.
- :func:`hand_eye`: a wrist camera's ``T_gripper_camera`` (eye-in-hand, board fixed in the
  cell) or a fixed camera's ``T_base_camera`` (eye-to-hand, board held by the gripper),
  from several robot poses and board observations. It solves ``A X = X B`` with Park and
  Martin's method, the one ``cv2.calibrateHandEye(method=CALIB_HAND_EYE_PARK)`` uses
  (OpenCV 5.0's Python bindings keep the constants but do not expose that function).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Literal, Sequence

import cv2
import mujoco
import numpy as np

from armworld.envs.real.geometry import invert_pose, pose_matrix, rotation_angle, rotvec_from_matrix
from armworld.envs.real.protocols import RealRobotError

Mounting = Literal["wrist", "fixed"]
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0])  # MuJoCo/OpenGL cameras look down -z with y up


class CalibrationError(RealRobotError):
    """The board was not found, or the data cannot determine a calibration."""


@dataclass(frozen=True)
class CharucoBoardConfig:
    """A ChArUco board as printed (DROID's by default: 9 x 14 squares of 20 mm, 16 mm markers).

    Attributes:
        squares_x, squares_y: chessboard squares along the board's x (columns) and y (rows).
        square_m: side of a chessboard square (m), as measured on the print.
        marker_m: side of an ArUco marker (m).
        dictionary: an ``cv2.aruco.DICT_*`` name.
    """

    squares_x: int = 9
    squares_y: int = 14
    square_m: float = 0.020
    marker_m: float = 0.016
    dictionary: str = "DICT_5X5_100"

    def __post_init__(self) -> None:
        if min(self.squares_x, self.squares_y) < 2:
            raise ValueError(f"a ChArUco board needs at least 2 x 2 squares, got {self.squares_x} x {self.squares_y}")
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(f"need 0 < marker_m < square_m, got {self.marker_m} and {self.square_m}")
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r}; use a cv2.aruco.DICT_* name")

    def board(self) -> cv2.aruco.CharucoBoard:
        """The OpenCV board object."""
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, dictionary)

    def image(self, pixels_per_square: int = 100) -> np.ndarray:
        """The board to print or texture, uint8 ``[squares_y * p, squares_x * p]`` (no margin)."""
        size = (self.squares_x * pixels_per_square, self.squares_y * pixels_per_square)
        return self.board().generateImage(size, marginSize=0, borderBits=1)

    @property
    def size_m(self) -> tuple[float, float]:
        """Board width (x) and height (y) in metres."""
        return self.squares_x * self.square_m, self.squares_y * self.square_m


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: matrix ``K`` ``[3, 3]`` (pixels), distortion ``[5]`` (OpenCV order), image size."""

    K: np.ndarray
    dist: np.ndarray
    width: int
    height: int

    @classmethod
    def from_fovy(cls, fovy_deg: float, width: int, height: int) -> Intrinsics:
        """A distortion-free camera with MuJoCo's model: vertical field of view, square pixels, centred.

        OpenCV puts pixel centres at integers, so the centre of the image is ``(size - 1) / 2``.
        """
        f = (height / 2.0) / np.tan(np.deg2rad(fovy_deg) / 2.0)
        K = np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])
        return cls(K, np.zeros(5), width, height)


@dataclass(frozen=True)
class BoardObservation:
    """One board detection: ``T_camera_board`` ``[4, 4]``, the corners used, RMS reprojection error (pixels)."""

    T_camera_board: np.ndarray
    corners: int
    reprojection_px: float


def detect_board(image: np.ndarray, board: CharucoBoardConfig, intrinsics: Intrinsics,
                 min_corners: int = 6) -> BoardObservation:
    """The board's pose in an RGB ``[H, W, 3]`` or grey ``[H, W]`` uint8 image.

    Raises:
        CalibrationError: fewer than ``min_corners`` ChArUco corners were found.
    """
    if image.shape[:2] != (intrinsics.height, intrinsics.width):
        raise ValueError(f"image is {image.shape[1]}x{image.shape[0]} but the intrinsics are for "
                         f"{intrinsics.width}x{intrinsics.height}")
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    cv_board = board.board()
    corners, ids, _, _ = cv2.aruco.CharucoDetector(cv_board).detectBoard(gray)
    found = 0 if ids is None else len(ids)
    if found < min_corners:
        raise CalibrationError(
            f"found {found} ChArUco corners, need {min_corners}: check that the board is in view, evenly lit "
            f"and matches {board}")
    object_points, image_points = cv_board.matchImagePoints(corners, ids)
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, intrinsics.K, intrinsics.dist)
    if not ok:
        raise CalibrationError("solvePnP found no board pose")
    projected, _ = cv2.projectPoints(object_points, rvec, tvec, intrinsics.K, intrinsics.dist)
    residuals = projected.reshape(-1, 2) - image_points.reshape(-1, 2)
    rms = float(np.sqrt(np.mean(np.sum(residuals**2, axis=1))))
    return BoardObservation(pose_matrix(cv2.Rodrigues(rvec)[0], tvec), found, rms)


def fixed_camera_pose(T_base_board: np.ndarray, T_camera_board: np.ndarray) -> np.ndarray:
    """``T_base_camera`` ``[4, 4]`` of a fixed camera that sees a board lying at ``T_base_board``."""
    return T_base_board @ invert_pose(T_camera_board)


def mujoco_camera_pose(model: mujoco.MjModel, data: mujoco.MjData, camera: str) -> np.ndarray:
    """A sim camera's pose ``[4, 4]`` in the world (= base) frame, in the OpenCV camera convention."""
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if i < 0:
        raise ValueError(f"the model has no camera {camera!r}")
    return pose_matrix(data.cam_xmat[i].reshape(3, 3) @ OPENGL_TO_OPENCV, data.cam_xpos[i])


def solve_ax_xb(A: Sequence[np.ndarray], B: Sequence[np.ndarray]) -> np.ndarray:
    """``X`` ``[4, 4]`` with ``A_i X = X B_i`` for pairs of relative motions (Park and Martin, 1994).

    The rotation aligns the rotation vectors of the ``A_i`` with those of the ``B_i``
    (Kabsch, by SVD); the translation solves ``(R_Ai - I) t = R t_Bi - t_Ai`` by least squares.

    Raises:
        CalibrationError: the motions rotate about fewer than two distinct axes.
    """
    alphas = np.array([rotvec_from_matrix(a[:3, :3]) for a in A])
    betas = np.array([rotvec_from_matrix(b[:3, :3]) for b in B])
    U, S, Vt = np.linalg.svd(betas.T @ alphas)
    if S[1] < 1e-3 * S[0]:
        raise CalibrationError("the robot poses rotate about a single axis: tilt the gripper about two or more axes")
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    C = np.concatenate([a[:3, :3] - np.eye(3) for a in A])
    d = np.concatenate([R @ b[:3, 3] - a[:3, 3] for a, b in zip(A, B)])
    t = np.linalg.lstsq(C, d, rcond=None)[0]
    return pose_matrix(R, t)


@dataclass(frozen=True)
class HandEyeResult:
    """A hand-eye calibration.

    Attributes:
        T: ``T_gripper_camera`` (``wrist``) or ``T_base_camera`` (``fixed``), ``[4, 4]``.
        T_target: the board's pose the poses agree on: ``T_base_board`` (``wrist``) or
            ``T_gripper_board`` (``fixed``), ``[4, 4]`` (the mean position, the first rotation).
        position_spread_m: largest distance of one pose's board position from the mean (m).
        rotation_spread_rad: largest angle of one pose's board rotation from the first (rad).
    """

    T: np.ndarray
    T_target: np.ndarray
    position_spread_m: float
    rotation_spread_rad: float


def hand_eye(T_base_gripper: Sequence[np.ndarray], T_camera_board: Sequence[np.ndarray],
             mounting: Mounting) -> HandEyeResult:
    """Hand-eye calibration from ``n >= 3`` robot poses ``[4, 4]`` and the board poses seen at each.

    ``wrist`` (eye-in-hand): the camera rides on the gripper, the board is fixed in the cell;
    returns ``T_gripper_camera``. ``fixed`` (eye-to-hand): the camera is fixed, the gripper
    holds the board; returns ``T_base_camera``. Every pair of poses gives one ``A X = X B``
    equation; use poses that rotate the gripper about at least two axes.
    """
    if mounting not in ("wrist", "fixed"):
        raise ValueError(f"mounting must be 'wrist' or 'fixed', got {mounting!r}")
    if len(T_base_gripper) != len(T_camera_board) or len(T_base_gripper) < 3:
        raise ValueError(f"need the same number (>= 3) of robot and board poses, got {len(T_base_gripper)} "
                         f"and {len(T_camera_board)}")
    # wrist: T_base_board = G_i X B_i with G_i = T_base_gripper; fixed: T_gripper_board = G_i X B_i
    # with G_i = T_gripper_base. Either way G_j^-1 G_i X = X B_j B_i^-1.
    G = [np.asarray(T) if mounting == "wrist" else invert_pose(np.asarray(T)) for T in T_base_gripper]
    B = [np.asarray(T) for T in T_camera_board]
    pairs = list(combinations(range(len(G)), 2))
    X = solve_ax_xb([invert_pose(G[j]) @ G[i] for i, j in pairs], [B[j] @ invert_pose(B[i]) for i, j in pairs])
    targets = [g @ X @ b for g, b in zip(G, B)]
    positions = np.array([T[:3, 3] for T in targets])
    mean = positions.mean(axis=0)
    return HandEyeResult(
        T=X,
        T_target=pose_matrix(targets[0][:3, :3], mean),
        position_spread_m=float(np.linalg.norm(positions - mean, axis=1).max()),
        rotation_spread_rad=max(rotation_angle(targets[0][:3, :3], T[:3, :3]) for T in targets),
    )
