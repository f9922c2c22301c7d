"""Headless offscreen rendering of a model's cameras.

``MUJOCO_GL`` defaults to ``egl`` (set by ``import armworld``, which must come before the
first ``import mujoco`` for the default to apply);
``osmesa`` also works. The GL context is created on first use, so an env can be built
in one process and rendered in another (``gymnasium.make_vec(..., "async")`` workers).
The scene asset turns off multisampling and shadows, which dominate the cost on
software rasterisers; ``import armworld`` also keeps Mesa's llvmpipe on the calling thread
(``LP_NUM_THREADS=0``), faster for observation-sized images.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np


class CameraRenderer:
    """Renders named cameras into uint8 images ``[H, W, 3]``."""

    def __init__(self, model: mujoco.MjModel, height: int, width: int):
        self.model = model
        self.height = height
        self.width = width
        self._renderer: mujoco.Renderer | None = None
        self.scene_option = mujoco.MjvOption()

    def _get_renderer(self) -> mujoco.Renderer:
        if self._renderer is None:
            try:
                self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            except Exception as error:  # GL failures surface as several exception types
                backend = os.environ.get("MUJOCO_GL", "(unset)")
                raise RuntimeError(
                    f"could not start an OpenGL context for rendering (MUJOCO_GL={backend}): {error}. "
                    "Install EGL (Debian: libegl1) and keep MUJOCO_GL=egl, or install OSMesa "
                    "(libosmesa6) and set MUJOCO_GL=osmesa. MuJoCo reads MUJOCO_GL when first imported: "
                    "export it, or import armworld before mujoco. obs_mode='state' needs no rendering."
                ) from error
        return self._renderer

    def render(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        renderer = self._get_renderer()
        renderer.update_scene(data, camera=camera, scene_option=self.scene_option)
        return renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
