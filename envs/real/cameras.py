"""Cameras: OpenCV devices and Intel RealSense (``pip install 'armworld[realsense]'``).

Each camera grabs in its own thread and keeps only the latest frame with its
``time.monotonic()`` stamp, so a slow consumer never reads a queued, old frame;
:meth:`read_latest` refuses frames older than the age it is given. The sim camera
lives with the sim driver (:class:`~armworld.envs.real.drivers.sim.SimCamera`).
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from armworld.envs.real.drivers import import_vendor
from armworld.envs.real.protocols import DriverError, Frame, StaleDataError, check_fresh


class _ThreadedCamera:
    """Shared grab loop: subclasses implement ``_open``, ``_grab`` (RGB uint8 or None) and ``_close``."""

    def __init__(self, name: str):
        self.name = name
        self._latest: Frame | None = None
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        if self._thread is not None:
            return
        self._open()
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name=f"armworld-camera-{self.name}", daemon=True)
        self._thread.start()

    def disconnect(self) -> None:
        if self._thread is None:
            return
        self._running.clear()
        self._thread.join(timeout=2.0)
        self._thread = None
        self._close()

    def read_latest(self, max_age_s: float) -> Frame:
        with self._lock:
            frame = self._latest
        if frame is None:
            raise StaleDataError(f"camera {self.name}: no frame yet")
        check_fresh(frame.t, time.monotonic(), max_age_s, f"camera {self.name}")
        return frame

    def _loop(self) -> None:
        while self._running.is_set():
            image = self._grab()
            if image is None:
                time.sleep(0.005)
                continue
            with self._lock:
                self._latest = Frame(image, time.monotonic())


class OpenCVCamera(_ThreadedCamera):
    """An OpenCV ``VideoCapture`` device (index or path/URL), delivered as RGB.

    Args:
        name: camera name (``front``, ``wrist``, ``top``).
        device: OpenCV device index or path.
        width, height, fps: requested capture settings (``None``: device defaults).
    """

    def __init__(self, name: str, device: int | str, width: int | None = None, height: int | None = None,
                 fps: float | None = None):
        super().__init__(name)
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self._capture: cv2.VideoCapture | None = None

    def _open(self) -> None:
        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            raise DriverError(f"camera {self.name}: cannot open OpenCV device {self.device!r}")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width), (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.fps)):
            if value is not None:
                capture.set(prop, value)
        self._capture = capture

    def _grab(self) -> np.ndarray | None:
        ok, bgr = self._capture.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def _close(self) -> None:
        self._capture.release()
        self._capture = None


class RealSenseCamera(_ThreadedCamera):
    """An Intel RealSense colour stream (RGB8).

    Args:
        name: camera name.
        serial: device serial number (``None``: the first device).
        width, height, fps: colour stream settings.
    """

    def __init__(self, name: str, serial: str | None = None, width: int = 640, height: int = 480, fps: int = 30):
        super().__init__(name)
        self.serial, self.width, self.height, self.fps = serial, width, height, fps
        self._pipeline = None

    def _open(self) -> None:
        rs = import_vendor("pyrealsense2", "realsense")
        config = rs.config()
        if self.serial:
            config.enable_device(self.serial)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        self._pipeline = rs.pipeline()
        self._pipeline.start(config)

    def _grab(self) -> np.ndarray | None:
        frames = self._pipeline.poll_for_frames()
        color = frames.get_color_frame() if frames else None
        return np.asanyarray(color.get_data()).copy() if color else None

    def _close(self) -> None:
        self._pipeline.stop()
        self._pipeline = None
