"""Films of episodes (``armworld demo``, ``armworld eval --videos``): what a person watching wants to see.

Every frame puts panels of one height side by side over a caption band::

    +------------+-------------------------------+------------+
    | front view | model sees: top camera, 64 px | goal image |
    +------------+-------------------------------+------------+
    | FrankaPush-v0  |  reset seed 1000003  |  world model    |
    | step 12 / 60     distance to goal 0.043 m               |
    +---------------------------------------------------------+

- the front view: the sim's ``front`` camera rendered at the panel height, the goal marker
  (a translucent green ball) shown. An env that is no MuJoCo sim (a real arm) has no such
  render: its ``rgb_front`` observation is shown instead, or else the first other camera it
  has, and the label says which; with no camera beside the agent's, the panel is left out;
- what the agent sees: the very ``rgb_<camera>`` observation it acted on, for agents with a
  ``camera`` attribute (image-based agents; left out for others), scaled up with
  nearest-neighbour so that its pixels stay visible;
- the goal image the agent plans toward: its ``goal_frame`` (a world-model agent's current
  sub-goal or goal), else the sim's goal image from the agent's camera (``front`` for agents
  without one), scaled likewise; left out where neither exists.

The caption names the env, the reset seed and ``caption`` (e.g. the agent), then the step
(actions taken) and the distance to the goal, ``|achieved_goal - desired_goal|`` (m). The
last frame is held for ``hold_s`` seconds with the outcome on a green (success) or red
(failure) band.

Recording renders the front view with a renderer of its own and reads goal images through
the env's ``goal_image``, which restores the simulation state: the agent's observations,
the simulation and the env's random generator are those of an episode not recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import gymnasium
import mujoco
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from armworld.agents.base import Agent
from armworld.agents.eval_config import FILM_HEIGHT
from armworld.envs.episode import EpisodeObserver, HasGoalImage, MujocoScene, capability

GOAL_SITE_GROUP = 3  # the site group of the sim's goal marker (envs/base.py), hidden from observations
BAND_COLOR = (24, 24, 28)
SUCCESS_COLOR = (26, 110, 50)
FAILURE_COLOR = (150, 36, 36)
TEXT_COLOR = (245, 245, 245)


@dataclass(frozen=True)
class FilmConfig:
    """How episodes are filmed.

    height: panel height (px, even, 64..640); the model's 64 px images fill it whole at 320.
    caption: written after the env and seed (e.g. the agent's name). fps: frames per second
    of the written video. hold_s: seconds the last frame is held with the outcome.
    """

    height: int = FILM_HEIGHT
    caption: str = ""
    fps: float = 10.0
    hold_s: float = 1.0

    def __post_init__(self) -> None:
        if not (64 <= self.height <= 640 and self.height % 2 == 0):
            raise ValueError(f"film height must be an even number of pixels within 64..640, got {self.height}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"film fps must be a number > 0, got {self.fps}")
        if not (self.hold_s >= 0 and math.isfinite(self.hold_s)):
            raise ValueError(f"film hold_s must be a number >= 0 (s), got {self.hold_s}")

    @property
    def hold_frames(self) -> int:
        """How many copies of the outcome frame end the film."""
        return round(self.hold_s * self.fps)


@dataclass(frozen=True)
class Panel:
    """One image of a frame, uint8 ``[h, w, 3]`` (any size: scaled to the frame's height), and its label."""

    image: np.ndarray
    label: str


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font at ``size`` px (its bitmap font where Pillow lacks FreeType)."""
    return ImageFont.load_default(size=size)


def font_size(height: int) -> int:
    """The text size (px) on frames whose panels are ``height`` px high."""
    return max(10, height // 16)


def band_height(height: int) -> int:
    """Height (px, even) of the two-line caption band under panels ``height`` px high."""
    size = font_size(height)
    return 2 * math.ceil(1.4 * size) + 2 * (size // 2 + 1)


def scale_to_height(image: np.ndarray, height: int) -> np.ndarray:
    """``image`` uint8 ``[h, w, 3]`` scaled with nearest-neighbour to ``[height, W, 3]``,
    ``W`` the even width nearest to the same aspect ratio (video codecs want even sizes)."""
    h, w = image.shape[:2]
    width = max(2, 2 * round(w * height / h / 2))
    if (h, w) == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST))


def compose_frame(
    panels: Sequence[Panel], lines: Sequence[str], height: int, band_color: tuple[int, int, int] = BAND_COLOR
) -> np.ndarray:
    """One film frame, uint8 ``[height + band_height(height), W, 3]``: the panels scaled to
    ``height`` px side by side, each with its label, over a band holding ``lines`` (two fit)."""
    if not panels:
        raise ValueError("a film frame needs at least one panel")
    size = font_size(height)
    font = _font(size)
    images = []
    for panel in panels:
        image = Image.fromarray(scale_to_height(np.ascontiguousarray(panel.image, dtype=np.uint8), height))
        draw = ImageDraw.Draw(image)
        _, _, right, bottom = draw.textbbox((size // 3, size // 4), panel.label, font=font)
        draw.rectangle((0, 0, right + size // 3, bottom + size // 4), fill=BAND_COLOR)
        draw.text((size // 3, size // 4), panel.label, font=font, fill=TEXT_COLOR)
        images.append(np.asarray(image))
    top_row = np.concatenate(images, axis=1)
    band = Image.new("RGB", (top_row.shape[1], band_height(height)), band_color)
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        draw.text((size // 2, size // 2 + i * math.ceil(1.4 * size)), line, font=font, fill=TEXT_COLOR)
    return np.concatenate([top_row, np.asarray(band)], axis=0)


def goal_distance(obs: dict[str, Any]) -> float | None:
    """``|achieved_goal - desired_goal|`` (m) of an observation; None where it holds no goal."""
    if "achieved_goal" not in obs or "desired_goal" not in obs:
        return None
    return float(np.linalg.norm(np.asarray(obs["achieved_goal"]) - np.asarray(obs["desired_goal"])))


def _distance_text(distance: float | None) -> str:
    return "unknown" if distance is None or not math.isfinite(distance) else f"{distance:.3f} m"


class FilmRecorder(EpisodeObserver):
    """Films one episode of ``agent`` in ``env``: call :meth:`capture` with each observation
    after the agent acted on it (as an observer of the episode loop,
    :func:`armworld.envs.episode.run_episode`, it does) and with the last one, then
    :meth:`finish` once.

    Args:
        env: the env of the episode (its MuJoCo scene renders the front view, its goal image
            is shown when the agent has none: capabilities ``MujocoScene``, ``HasGoalImage``).
        agent: the agent acting in it (its ``camera`` and ``goal_frame``, if it has them, are read).
        config: panel height, caption, fps, outcome hold.
        reset_seed: the episode's reset seed (written on the frames).
        max_steps: the episode's step budget (written on the frames).
    """

    def __init__(self, env: gymnasium.Env, agent: Agent, config: FilmConfig, reset_seed: int, max_steps: int) -> None:
        self.agent, self.config, self.max_steps = agent, config, max_steps
        self.camera: str | None = getattr(agent, "camera", None)
        name = env.spec.id.split("/")[-1] if env.spec is not None else type(env.unwrapped).__name__
        self.title = "  |  ".join([name, f"reset seed {reset_seed}", *([config.caption] if config.caption else [])])
        self.frames: list[np.ndarray] = []
        self._last: list[Panel] = []  # the panels of the last frame captured
        self._env_goal: np.ndarray | None = None
        self._goals = capability(env, HasGoalImage)
        self._scene = capability(env, MujocoScene)
        self._renderer = None
        model = getattr(self._scene, "model", None)
        if isinstance(model, mujoco.MjModel) and mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "front") >= 0:
            from armworld.envs.rendering import CameraRenderer

            self._renderer = CameraRenderer(model, config.height, config.height)
            self._renderer.scene_option.sitegroup[GOAL_SITE_GROUP] = 1

    def _view(self, obs: dict[str, Any]) -> Panel | None:
        """The front view: rendered in the sim, else the best camera image the observation has."""
        if self._renderer is not None:
            return Panel(self._renderer.render(self._scene.data, "front"), "front view (goal: green ball)")
        others = [key[len("rgb_"):] for key in obs if key.startswith("rgb_") and key != f"rgb_{self.camera}"]
        if not others:
            return None
        camera = "front" if "front" in others else others[0]
        return Panel(obs[f"rgb_{camera}"], "front camera" if camera == "front" else f"{camera} camera (no front camera)")

    def _goal(self) -> Panel | None:
        """The goal image the agent plans toward, labelled with its place among the agent's goals."""
        goal = getattr(self.agent, "goal_frame", None)
        if goal is not None:
            goals = getattr(self.agent, "goal_images", None)
            goals = [goal] if goals is None else list(goals)
            index = next((i for i, image in enumerate(goals) if image is goal), len(goals) - 1)
            final = index == len(goals) - 1
            return Panel(goal, "goal image" if final else f"sub-goal {index + 1} of {len(goals) - 1}")
        if self._env_goal is None and self._goals is not None:
            self._env_goal = self._goals.goal_image(self.camera or "front", size=self.config.height)
        return None if self._env_goal is None else Panel(self._env_goal, "goal image")

    def panels(self, obs: dict[str, Any]) -> list[Panel]:
        """The panels of the frame of ``obs``, left to right: front view, what the agent sees,
        goal image (those that exist; see the module docstring)."""
        panels = [self._view(obs)]
        if self.camera is not None and f"rgb_{self.camera}" in obs:
            seen = np.asarray(obs[f"rgb_{self.camera}"])
            panels.append(Panel(seen, f"model sees: {self.camera} camera, {seen.shape[0]} px"))
        panels.append(self._goal())
        found = [panel for panel in panels if panel is not None]
        if not found:
            raise ValueError(
                "nothing to film: the env renders no front view, its observation holds no camera image "
                "and neither the agent nor the env has a goal image"
            )
        return found

    def on_action(self, obs: dict[str, Any], action: np.ndarray, step: int) -> None:
        self.capture(obs, step)

    def capture(self, obs: dict[str, Any], step: int) -> None:
        """Add the frame of ``obs``, seen after ``step`` actions."""
        self._last = self.panels(obs)
        status = f"step {step} / {self.max_steps}     distance to goal {_distance_text(goal_distance(obs))}"
        self.frames.append(compose_frame(self._last, [self.title, status], self.config.height))

    def finish(self, success: bool, distance: float | None, length: int) -> np.ndarray:
        """The film, uint8 ``[T, H, W, 3]``: the captured frames, then the last one held with
        the outcome (``success`` after ``length`` actions, ``distance`` m from the goal)."""
        if not self.frames:
            raise RuntimeError("nothing was captured: call capture() before finish()")
        outcome = "SUCCESS" if success else "FAILURE"
        line = f"{outcome}: {_distance_text(distance)} from the goal after {length} steps"
        color = SUCCESS_COLOR if success else FAILURE_COLOR
        held = compose_frame(self._last, [self.title, line], self.config.height, band_color=color)
        return np.stack([*self.frames, *[held] * self.config.hold_frames])

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
