"""Calibration in the sim: a ChArUco board textured into MuJoCo scenes, seen from known camera poses."""

from __future__ import annotations

import re

import cv2
import mujoco
import numpy as np
import pytest
import yaml

from armworld.cli import main
from armworld.envs.conventions import matrix_from_euler_xyz
from armworld.envs.panda import PANDA
from armworld.envs.real.calibration import (
    CalibrationError,
    CharucoBoardConfig,
    Intrinsics,
    detect_board,
    fixed_camera_pose,
    hand_eye,
    mujoco_camera_pose,
    solve_ax_xb,
)
from armworld.envs.real.geometry import invert_pose, pose_matrix, rotation_angle
from armworld.envs.real.kinematics import RobotIK
from armworld.envs.real.protocols import RobotSpec
from armworld.envs.rendering import use_default_gl

BOARD = CharucoBoardConfig(squares_x=5, squares_y=7, square_m=0.04, marker_m=0.03)
SIZE = 480  # rendered image side (pixels)
BOARD_IN_GEOM = pose_matrix(np.diag([1.0, -1.0, -1.0]), [-BOARD.size_m[0] / 2, BOARD.size_m[1] / 2, 0.0])


def add_board(spec: mujoco.MjSpec, pos, euler) -> np.ndarray:
    """A board plane (on a white backing) at ``pos``, extrinsic XYZ ``euler``; returns ``T_world_board``."""
    image = np.repeat(BOARD.image(80)[:, :, None], 3, axis=2)
    texture = spec.add_texture(name="charuco", type=mujoco.mjtTexture.mjTEXTURE_2D, width=image.shape[1],
                               height=image.shape[0], nchannel=3)
    texture.data = image.tobytes()
    material = spec.add_material(name="charuco", texrepeat=[1, 1], texuniform=False)
    material.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "charuco"
    R = matrix_from_euler_xyz(np.asarray(euler, dtype=np.float64))
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, R.ravel())
    body = spec.worldbody.add_body(name="charuco", pos=pos, quat=quat)
    w, h = BOARD.size_m
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[w / 2, h / 2, 0.01], material="charuco",
                  contype=0, conaffinity=0)
    body.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, size=[w / 2 + 0.03, h / 2 + 0.03, 0.001], pos=[0, 0, -0.0015],
                  rgba=[1, 1, 1, 1], contype=0, conaffinity=0)
    return pose_matrix(R, pos) @ BOARD_IN_GEOM


def pose_error(T_a: np.ndarray, T_b: np.ndarray) -> tuple[float, float]:
    """Position (m) and rotation (deg) difference of two poses."""
    return float(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3])), float(np.degrees(rotation_angle(T_a[:3, :3], T_b[:3, :3])))


def render(model, data, camera: str) -> np.ndarray:
    use_default_gl()  # what armworld's own renderers do before their first frame
    with mujoco.Renderer(model, SIZE, SIZE) as renderer:
        renderer.update_scene(data, camera=camera)
        return renderer.render()


def intrinsics(model, camera: str) -> Intrinsics:
    return Intrinsics.from_fovy(float(model.camera(camera).fovy[0]), SIZE, SIZE)


@pytest.mark.parametrize("cam_pos, target", [
    ([0.0, 0.0, 0.55], [0.0, 0.001, 0.0]),  # straight above
    ([0.25, -0.2, 0.45], [0.0, 0.0, 0.0]),  # oblique, about 40 degrees
    ([-0.1, 0.3, 0.7], [0.02, 0.03, 0.0]),  # far and from the other side
])
def test_board_pose_from_a_known_camera_pose(cam_pos, target):
    spec = mujoco.MjSpec()
    spec.visual.headlight.ambient = [0.7, 0.7, 0.7]
    T_world_board = add_board(spec, [0.0, 0.0, 0.0], [0.0, 0.0, 0.3])
    spec.worldbody.add_body(name="target", pos=target)
    spec.worldbody.add_camera(name="cam", pos=cam_pos, fovy=50.0, mode=mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY,
                              targetbody="target")
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    seen = detect_board(render(model, data, "cam"), BOARD, intrinsics(model, "cam"))
    truth = invert_pose(mujoco_camera_pose(model, data, "cam")) @ T_world_board
    position_m, angle_deg = pose_error(seen.T_camera_board, truth)
    assert position_m < 0.01 and angle_deg < 1.0, (position_m, angle_deg)
    assert seen.corners >= 20 and seen.reprojection_px < 1.0


@pytest.fixture(scope="module")
def cell():
    """The armworld scene with a board on the table; the model, its data and ``T_base_board``."""
    spec = PANDA.scene()
    T_base_board = add_board(spec, [0.55, 0.05, 0.0012], [0.0, 0.0, 1.4])
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data, T_base_board


def test_front_camera_extrinsics_from_a_board_on_the_table(cell):
    model, data, T_base_board = cell
    seen = detect_board(render(model, data, "front"), BOARD, intrinsics(model, "front"))
    position_m, angle_deg = pose_error(fixed_camera_pose(T_base_board, seen.T_camera_board),
                                       mujoco_camera_pose(model, data, "front"))
    assert position_m < 0.01 and angle_deg < 1.0, (position_m, angle_deg)


def test_wrist_camera_hand_eye(cell, tmp_path):
    """Eye-in-hand: the arm looks at the table board from six tilted poses; recover the wrist camera mount,
    through the API and through ``armworld calibrate hand-eye``."""
    model, data, T_base_board = cell
    ik = RobotIK(PANDA, model)
    qpos_ids = ik.solver.qpos_ids
    q = np.array(RobotSpec.load("panda").q_home)
    grippers, boards = [], []
    tilts = [(0.0, 0.0, 0.0), (0.25, 0.0, 0.3), (-0.2, 0.15, -0.4), (0.0, -0.25, 0.6), (0.15, 0.2, -0.2),
             (-0.15, -0.2, 0.1)]
    for i, euler in enumerate(tilts):
        target = np.array([0.47 + 0.02 * (i % 2), 0.05 - 0.02 * (i % 3), 0.36])
        q, converged = ik.ik(target, matrix_from_euler_xyz(np.array(euler)), q)
        assert converged
        data.qpos[qpos_ids] = q
        mujoco.mj_forward(model, data)
        tcp = model.site("tcp").id
        grippers.append(pose_matrix(data.site_xmat[tcp].reshape(3, 3), data.site_xpos[tcp]))
        image = render(model, data, "wrist")
        cv2.imwrite(str(tmp_path / f"{i}.png"), image[:, :, ::-1])
        boards.append(detect_board(image, BOARD, intrinsics(model, "wrist")).T_camera_board)
    result = hand_eye(grippers, boards, "wrist")
    truth = invert_pose(grippers[-1]) @ mujoco_camera_pose(model, data, "wrist")
    position_m, angle_deg = pose_error(result.T, truth)
    assert position_m < 0.01 and angle_deg < 1.0, (position_m, angle_deg)
    assert pose_error(result.T_target, T_base_board)[0] < 0.01 and result.position_spread_m < 0.01

    np.save(tmp_path / "poses.npy", np.array(grippers))
    board_args = ["calibrate", "--squares", "5x7", "--square-mm", "40", "--marker-mm", "30"]
    assert main([*board_args, "hand-eye", "--images", *(str(tmp_path / f"{i}.png") for i in range(len(tilts))),
                 "--poses", str(tmp_path / "poses.npy"), "--mount", "wrist", "--fovy", "75",
                 "--out", str(tmp_path / "wrist.yaml")]) == 0
    written = yaml.safe_load((tmp_path / "wrist.yaml").read_text())
    np.testing.assert_allclose(written["T_gripper_camera"], result.T, atol=1e-5)
    assert main([*board_args, "board", "--out", str(tmp_path / "board.png")]) == 0
    assert cv2.imread(str(tmp_path / "board.png")).shape[:2] == (7 * 200, 5 * 200)


def random_pose(rng, scale: float) -> np.ndarray:
    return pose_matrix(matrix_from_euler_xyz(rng.uniform(-0.6, 0.6, 3)), rng.uniform(-scale, scale, 3))


@pytest.mark.parametrize("mounting", ["wrist", "fixed"])
def test_hand_eye_recovers_the_mount_from_noisy_poses(mounting):
    """Synthetic poses with 1 mm / 0.1 degree noise on the board detections, both mountings."""
    rng = np.random.default_rng(0)
    X = random_pose(rng, 0.1)  # T_gripper_camera or T_base_camera
    target = random_pose(rng, 0.5)  # T_base_board (wrist) or T_gripper_board (fixed)
    grippers = [pose_matrix(matrix_from_euler_xyz(rng.uniform(-0.5, 0.5, 3)) @ np.diag([1.0, -1.0, -1.0]),
                            [0.5, 0.0, 0.3] + rng.uniform(-0.1, 0.1, 3)) for _ in range(10)]
    noise = lambda: pose_matrix(matrix_from_euler_xyz(rng.normal(0, np.radians(0.1), 3)), rng.normal(0, 1e-3, 3))  # noqa: E731
    if mounting == "wrist":  # T_base_board = G X B
        boards = [invert_pose(X) @ invert_pose(G) @ target @ noise() for G in grippers]
    else:  # T_gripper_board = G^-1 X B
        boards = [invert_pose(X) @ G @ target @ noise() for G in grippers]
    result = hand_eye(grippers, boards, mounting)
    position_m, angle_deg = pose_error(result.T, X)
    assert position_m < 0.01 and angle_deg < 1.0, (position_m, angle_deg)
    assert pose_error(result.T_target, target)[0] < 0.01


def test_calibration_bad_input_is_explained():
    blank = np.full((SIZE, SIZE, 3), 200, dtype=np.uint8)
    with pytest.raises(CalibrationError, match="ChArUco corners"):
        detect_board(blank, BOARD, Intrinsics.from_fovy(50.0, SIZE, SIZE))
    with pytest.raises(ValueError, match="intrinsics"):
        detect_board(blank, BOARD, Intrinsics.from_fovy(50.0, 640, SIZE))
    with pytest.raises(ValueError, match=">= 3"):
        hand_eye([np.eye(4)] * 2, [np.eye(4)] * 2, "wrist")
    with pytest.raises(ValueError, match="mounting"):
        hand_eye([np.eye(4)] * 3, [np.eye(4)] * 3, "shoulder")
    with pytest.raises(ValueError, match="marker_m"):
        CharucoBoardConfig(square_m=0.02, marker_m=0.03)
    spin = [pose_matrix(matrix_from_euler_xyz(np.array([0.0, 0.0, a])), [0.0, 0.0, 0.0]) for a in (0.3, 0.6, 0.9)]
    with pytest.raises(CalibrationError, match="single axis"):
        solve_ax_xb(spin, spin)


def test_calibrate_command_errors_are_explained(tmp_path, capsys):
    """``armworld calibrate`` reports bad input as ``error: ...`` and exit status 1, not a traceback."""
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((SIZE, SIZE, 3), 200, dtype=np.uint8))
    images = [str(blank)] * 3
    np.save(tmp_path / "poses.npy", np.stack([np.eye(4)] * 3))
    (tmp_path / "no_k.yaml").write_text("dist: [0, 0, 0, 0, 0]\n")
    board = ["calibrate", "--squares", "5x7", "--square-mm", "40", "--marker-mm", "30"]
    eye = [*board, "hand-eye", "--images", *images, "--mount", "wrist", "--out", str(tmp_path / "out.yaml")]
    cases = [
        ([*board, "board", "--out", str(tmp_path / "missing" / "board.png")], "cannot write .*board.png"),
        ([*board, "board", "--out", str(tmp_path / "board.xyz")], "cannot write .*board.xyz"),
        (["calibrate", "--square-mm", "20", "--marker-mm", "20", "board", "--out", str(tmp_path / "b.png")],
         "--marker-mm .* smaller than --square-mm"),
        ([*eye, "--poses", str(tmp_path / "missing.npy"), "--fovy", "75"], "No such file.*missing.npy"),
        ([*eye, "--poses", str(tmp_path / "poses.npy"), "--intrinsics", str(tmp_path / "no_k.yaml")], "needs K"),
        ([*eye, "--poses", str(tmp_path / "poses.npy"), "--fovy", "75"], "ChArUco corners"),  # a CalibrationError
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and re.search(message, err), (argv, err)
    assert not (tmp_path / "out.yaml").exists() and not (tmp_path / "b.png").exists()
