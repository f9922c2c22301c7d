"""Cameras: OpenCV on a real video file, RealSense against a mocked vendor module."""

import sys
import time
import types

import imageio.v2 as imageio
import numpy as np
import pytest

from armworld.envs.real.cameras import OpenCVCamera, RealSenseCamera
from armworld.envs.real.protocols import DriverError, StaleDataError


def wait_for_frame(camera, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return camera.read_latest(max_age_s=1.0)
        except StaleDataError:
            time.sleep(0.01)
    raise AssertionError("no frame arrived")


def test_opencv_camera_reads_rgb_frames_and_refuses_old_ones(tmp_path):
    path = tmp_path / "red.mp4"
    red = np.zeros((32, 32, 3), dtype=np.uint8)
    red[..., 0] = 255
    imageio.mimwrite(path, [red] * 200, fps=30, macro_block_size=1)

    camera = OpenCVCamera("front", str(path))
    with pytest.raises(StaleDataError, match="no frame yet"):
        camera.read_latest(max_age_s=1.0)
    camera.connect()
    camera.connect()  # idempotent
    frame = wait_for_frame(camera)
    assert frame.image.shape == (32, 32, 3)
    assert frame.image[..., 0].mean() > 200 and frame.image[..., 2].mean() < 50  # RGB, not BGR
    time.sleep(0.05)
    with pytest.raises(StaleDataError, match="old"):
        camera.read_latest(max_age_s=1e-9)
    camera.disconnect()
    camera.disconnect()


def test_opencv_camera_that_cannot_open_says_so():
    with pytest.raises(DriverError, match="cannot open"):
        OpenCVCamera("front", "/nonexistent/device.mp4").connect()


def test_realsense_camera_configures_the_colour_stream(monkeypatch):
    calls = []

    class Frames:
        def get_color_frame(self):
            return types.SimpleNamespace(get_data=lambda: np.full((4, 6, 3), 7, dtype=np.uint8))

    class Config:
        def enable_device(self, serial):
            calls.append(("enable_device", serial))

        def enable_stream(self, *args):
            calls.append(("enable_stream", *args))

    class Pipeline:
        def start(self, config):
            calls.append(("start",))

        def poll_for_frames(self):
            return Frames()

        def stop(self):
            calls.append(("stop",))

    rs = types.SimpleNamespace(
        config=Config, pipeline=Pipeline, stream=types.SimpleNamespace(color="color"),
        format=types.SimpleNamespace(rgb8="rgb8"),
    )
    monkeypatch.setitem(sys.modules, "pyrealsense2", rs)
    camera = RealSenseCamera("wrist", serial="123", width=6, height=4, fps=15)
    camera.connect()
    frame = wait_for_frame(camera)
    camera.disconnect()
    assert frame.image.shape == (4, 6, 3) and frame.image.max() == 7
    assert calls[:3] == [("enable_device", "123"), ("enable_stream", "color", 6, 4, "rgb8", 15), ("start",)]
    assert calls[-1] == ("stop",)
