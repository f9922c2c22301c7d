"""Headless offscreen rendering of a model's cameras.

The OpenGL backend is chosen when the first renderer starts, not on import: if
``MUJOCO_GL`` is unset then, it is set to ``egl`` (MuJoCo picks its backend from that
variable, so the choice it made on import is redone); ``osmesa`` also works, and a value the
user set is kept. On the same occasion ``LP_NUM_THREADS`` defaults to ``0`` when unset: Mesa's
software rasteriser (llvmpipe, EGL without a GPU) then draws on the calling thread, up to
1.5x faster for observation-sized images with the same pixels (benchmarks/render_speed.py);
GPUs ignore it. Nothing else in armworld changes environment variables.

The GL context is created on first use, so an env can be built in one process and rendered
in another (``gymnasium.make_vec(..., "async")`` workers). The scene asset turns off
multisampling and shadows, which dominate the cost on software rasterisers.
"""

from __future__ import annotations

import importlib
import os

import mujoco
import numpy as np

try:  # where MuJoCo keeps the module that picks the GL backend: 4.x, then 3.x
    from mujoco.rendering.classic import gl_context
except ImportError:
    from mujoco import gl_context

DEFAULT_GL = "egl"


def use_default_gl() -> None:
    """Default ``MUJOCO_GL`` to ``egl`` and ``LP_NUM_THREADS`` to ``0`` where they are unset.

    MuJoCo read ``MUJOCO_GL`` when it was imported; when the variable was unset then, its
    GL context module is loaded again so that it picks the backend set here.
    """
    if "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = DEFAULT_GL
        importlib.reload(gl_context)
    os.environ.setdefault("LP_NUM_THREADS", "0")


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
            use_default_gl()
            try:
                self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            except Exception as error:  # GL failures surface as several exception types
                backend = os.environ.get("MUJOCO_GL", "(unset)")
                raise RuntimeError(
                    f"could not start an OpenGL context for rendering (MUJOCO_GL={backend}): {error}. "
                    "Install EGL (Debian: libegl1) and keep MUJOCO_GL=egl, or install OSMesa "
                    "(libosmesa6) and set MUJOCO_GL=osmesa (export it before Python starts). "
                    "obs_mode='state' needs no rendering."
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
