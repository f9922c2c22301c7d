"""The world-model agent: plan in latent space toward a goal image, act, observe, plan again.

Every action (V-JEPA 2-AC's receding-horizon MPC)::

    z      = encode(last frames)                        [1, T, N, D]   once per action
    ctx    = world_model.context(z, proprio, past)      history keys/values, once per action
    plan   = planner.plan(energy)                       [H, 7] world-model actions
    energy(a [K, H, 7]) = mean of world_model.step_energy(rollout(ctx, a), z_goal) over the H steps -> [K]
                          (energy="path", the default; energy="last": the last step's alone, V-JEPA 2-AC's);
                          WorldModel's step energy: mean |z - z_goal| over tokens and dims; an object
                          world model's: the object's distance to the goal's (worldmodel/object_model.py)
    action = delta_to_env_action(plan[0], proprio)      env action in [-1, 1]

The context is computed once per action and shared by all candidates and all planner
iterations (``reuse_context=True``); with ``reuse_context=False`` every energy call
re-encodes the frames and recomputes the whole imagined sequence (``use_cache=False``):
the same numbers, slower, kept as the reference for tests and ``benchmarks/plan_speed.py``.

Goals: ``"env"`` (the simulator's goal image, fetched after each reset), ``"retrieve"``
(that goal image, preceded by sub-goals retrieved from recorded episodes with the latent
search of :mod:`armworld.agents.retrieval`: frames of the recorded stretch that best leads
from the current image to the goal image, each for the actions recorded before it; needs
an ``EpisodeLibrary``), ``"subgoals"`` (the simulator's images of the task's stages ending
with the goal image, the env's ``goal_sequence`` (``HasGoalSequence``), with the actions budgeted for each:
privileged help), an image file or array, or a list of them (sub-goals, V-JEPA 2-AC's
pick-and-place: the agent moves to the next after ``subgoal_steps[i]`` actions).

The gripper is planned like the rest of the action (``gripper="plan"``), or commanded
from the goal headed for (``gripper="goal"``): open where it shows an open hand, closed
where it shows the fingers closing; the closure comes from the simulator's goals, or, with
``"retrieve"``, from the recorded episode (the goal image itself counts as the last
retrieved frame's closure). From a camera above, a
few pixels of finger are all that tells open from closed, too little for the energy to
decide a grasp or a push with closed fingers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import gymnasium
import numpy as np
import torch

from armworld.agents.planners import Planner
from armworld.agents.retrieval import EpisodeLibrary, Retrieved
from armworld.agents.world_model_agent_config import WorldModelAgentConfig
from armworld.envs.conventions import delta_to_env_action, proprio_delta
from armworld.envs.episode import HasGoalImage, HasGoalSequence, require

GoalImage = Union[str, Path, np.ndarray]
GoalSpec = Union[str, Path, np.ndarray, Sequence[GoalImage]]
ENV_GOALS = ("env", "subgoals", "retrieve")  # goals read from the env after each reset
OPEN_BELOW = 0.1  # a goal image's gripper closure below this shows an open hand


class GoalImageError(ValueError):
    """A goal image that cannot be used (unreadable, wrong channels, not square)."""


def load_goal_image(goal: GoalImage, size: int) -> np.ndarray:
    """A goal image as uint8 ``[size, size, 3]``.

    Accepts a path (PNG, JPEG, ...) or an array ``[H, W, 3]`` (uint8) or ``[H, W, 4]``
    (RGBA, fully opaque). Square images of another size are resized (bilinear, antialiased);
    grayscale, transparent, non-square or non-8-bit images are refused with a message.
    """
    from PIL import Image

    name = str(goal) if isinstance(goal, (str, Path)) else "the goal image array"
    if isinstance(goal, (str, Path)):
        if not Path(goal).is_file():
            raise GoalImageError(f"goal image {goal} does not exist")
        try:
            with Image.open(goal) as opened:
                stored = _stored_mode(opened)
                image = np.asarray(opened)
        except OSError as error:
            raise GoalImageError(f"goal image {goal} is not a readable image ({error})") from None
        if ";16" in stored:  # Pillow reads 16-bit RGB as 8-bit RGB, silently dropping the low byte
            raise GoalImageError(f"goal image {goal} has 16 bits per channel ({stored}); save it as an 8-bit RGB image")
    else:
        image = np.asarray(goal)
    if image.dtype != np.uint8:
        raise GoalImageError(f"{name} has dtype {image.dtype}; save it as an 8-bit RGB image")
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        channels = 1 if image.ndim == 2 else image.shape[-1] if image.ndim == 3 else "?"
        raise GoalImageError(
            f"{name} has shape {image.shape} ({channels} channel(s)); the world model needs an RGB colour image "
            "of the same camera the model was trained on"
        )
    if image.shape[-1] == 4:
        if (image[..., 3] != 255).any():
            raise GoalImageError(f"{name} is transparent (RGBA with alpha < 255); save it as an opaque RGB image")
        image = image[..., :3]
    height, width = image.shape[:2]
    if height != width:
        raise GoalImageError(
            f"{name} is {width}x{height}; camera images are square: crop it to a square view of the scene first"
        )
    if height != size:
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(image)


def _stored_mode(image) -> str:
    """The pixel layout as the file stores it (Pillow's raw mode, e.g. ``RGB;16B``), which
    the mode Pillow decodes to (``RGB``) may hide."""
    args = image.tile[0].args if image.tile else ""
    return str(args if isinstance(args, str) else args[0] if args else "")


class WorldModelAgent:
    """Latent MPC toward goal images with a :class:`armworld.worldmodel.WorldModel`.

    Args:
        world_model: encoder + predictor (eval mode; kept on its device).
        planner: a registered planner (:mod:`armworld.agents.planners`: ``ICEM``, ``CEM``, ``MPPI``) over 7-D world-model actions,
            on the world model's device (candidates, energies and the proprio integrated along
            them stay there; one plan comes back to the host per action).
        goal: ``"env"``, ``"subgoals"``, an image (path or uint8 array) or a list of them (sub-goals).
        env: the env acted in; needed for the simulator's goals and to size 4-D actions.
        config: camera, context length, context reuse, sub-goal schedule, gripper mode.
        library: recorded episodes to retrieve sub-goals from (``goal="retrieve"``).

    After each episode ``plan_times`` holds the seconds spent per action (encoding,
    context and planning; everything between observation and action).
    """

    def __init__(
        self,
        world_model: torch.nn.Module,
        planner: Planner,
        goal: GoalSpec = "env",
        env: gymnasium.Env | None = None,
        config: WorldModelAgentConfig = WorldModelAgentConfig(),
        library: EpisodeLibrary | None = None,
    ) -> None:
        if planner.bounds.dim != 7:
            raise ValueError(f"the planner must plan 7-D world-model actions, its bounds have {planner.bounds.dim}")
        self.world_model = world_model.eval()
        self.planner = planner
        self.env = env
        self.config = config
        self.device = next(world_model.parameters()).device
        if planner.device != self.device:
            raise ValueError(
                f"the planner samples on {planner.device}, the world model runs on {self.device}: make the planner "
                "on the model's device (PlannerOptions.make(seed, device))"
            )
        self.image_size = world_model.encoder.config.image_size
        self.action_dim = env.action_space.shape[0] if env is not None else 7
        if self.action_dim == 4 and any(planner.bounds.scale[3:6]):
            raise ValueError("the env takes 4-D actions (orientation held): plan with hold_rotation=True")
        self.env_goals = goal if isinstance(goal, str) and goal in ENV_GOALS else None
        if (self.env_goals == "retrieve") != (library is not None):
            raise ValueError("goal='retrieve' needs an EpisodeLibrary to retrieve from, and a library needs goal='retrieve'")
        self.library = library
        self.retrieved: Retrieved | None = None  # this episode's retrieved stretch (goal="retrieve")
        if self.env_goals:
            if env is None:
                raise ValueError(f"goal={goal!r} needs the env, to render its goal images after each reset")
            if config.subgoal_steps:
                raise ValueError(f"goal={goal!r} takes the actions per sub-goal from the env: give no subgoal_steps")
            if config.subgoal_stages is not None and goal != "subgoals":
                raise ValueError(f"subgoal_stages chooses among the env's sub-goals: it needs goal='subgoals', not {goal!r}")
            self.goal_images: list[np.ndarray] = []
        else:
            goals = [goal] if isinstance(goal, (str, Path, np.ndarray)) else list(goal)
            if not goals:
                raise ValueError("give at least one goal image")
            if config.gripper == "goal":
                raise ValueError("gripper='goal' reads the gripper from the simulator's goals (goal='env' or 'subgoals'); plan it with image files")
            self.goal_images = [load_goal_image(g, self.image_size) for g in goals]
            if len(config.subgoal_steps) != len(self.goal_images) - 1:
                raise ValueError(
                    f"{len(self.goal_images)} goal image(s) need {len(self.goal_images) - 1} subgoal_steps (actions spent "
                    f"on each but the last), got {config.subgoal_steps}"
                )
        if config.gripper == "goal" and planner.bounds.scale[-1] != 0:
            raise ValueError("with gripper='goal' the gripper is commanded, not planned: plan with ActionBounds gripper=False")
        self.goal_steps: tuple[int, ...] = config.subgoal_steps
        self.goal_closures: tuple[float, ...] = ()  # from the simulator's goals
        self._goal_latents: torch.Tensor | None = None  # [G, N, D]
        self.plan_times: list[float] = []
        self.reset()

    # -- episode state -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the episode: history, plan, timings; the env's goal is re-read on the next act."""
        self.planner.reset()
        self.plan_times = []
        self._frames: list[np.ndarray] = []
        self._proprio: list[np.ndarray] = []
        self._latents: list[torch.Tensor] = []  # [N, D] per frame in the history
        self._steps = 0
        self._planned_goal: int | None = None  # index of the goal the last act planned toward
        if self.env_goals:  # the previous episode's goals are stale: read again on the next act
            self._goal_latents = None
            self.goal_images, self.goal_closures, self.goal_steps = [], (), ()
            self.retrieved = None

    @property
    def camera(self) -> str:
        """The camera whose images the agent plans from; its goal images show the same view."""
        return self.config.camera

    @property
    def goal_index(self) -> int:
        """Which goal the agent is heading for now."""
        passed = np.cumsum(self.goal_steps)
        return int((passed <= self._steps).sum())

    @property
    def goal_frame(self) -> np.ndarray | None:
        """The goal image ``[S, S, 3]`` the last action was planned toward (None before the
        episode's first act): what a video shows beside the frame that action was taken from."""
        if self._planned_goal is None:
            return None
        return self.goal_images[self._planned_goal]

    def _encode(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 ``[T, H, W, 3]`` -> ``[T, N, D]`` on the model's device."""
        return self.world_model.encode(torch.from_numpy(np.ascontiguousarray(frames))[None].to(self.device))[0]

    def _read_env_goals(self) -> None:
        """This episode's goal images from the simulator, with their gripper closures and schedule."""
        if self.env_goals == "retrieve" or (self.env_goals == "env" and self.config.gripper == "plan"):
            # the goal image alone: all an env that renders only a goal image can serve
            env = require(self.env, HasGoalImage, "a world-model agent heading for the env's goal image")
            goal = env.goal_image(self.config.camera, size=self.image_size)
            if self.env_goals == "env":
                self.goal_images = [goal]
                return
            found = self.retrieved = self.library.retrieve_images(self._frames[-1], goal, self.config.retrieved_subgoals)
            self.goal_images = [*(load_goal_image(image, self.image_size) for image in found.images), goal]
            self.goal_closures = (*found.closures, found.closures[-1])
            self.goal_steps = found.steps
            return
        stages = require(self.env, HasGoalSequence, "a world-model agent heading for the env's goals with their gripper closures")
        sequence = stages.goal_sequence(self.config.camera, size=self.image_size)
        if self.env_goals == "subgoals" and self.config.subgoal_stages is not None:
            sequence = sequence.select(self.config.subgoal_stages)
        keep = slice(None) if self.env_goals == "subgoals" else slice(-1, None)
        self.goal_images = list(sequence.images[keep])
        self.goal_closures = sequence.closures[keep]
        self.goal_steps = sequence.steps if self.env_goals == "subgoals" else ()

    def _goal(self) -> torch.Tensor:
        """The latent ``[N, D]`` of the goal headed for now (noted for :attr:`goal_frame`)."""
        if self._goal_latents is None:
            if self.env_goals:
                self._read_env_goals()
            self._goal_latents = self._encode(np.stack(self.goal_images))
        self._planned_goal = min(self.goal_index, len(self._goal_latents) - 1)
        return self._goal_latents[self._planned_goal]

    # -- acting --------------------------------------------------------------------------

    def _observe(self, obs: dict[str, Any]) -> None:
        key = f"rgb_{self.config.camera}"
        if key not in obs:
            raise KeyError(
                f"the world-model agent plans from '{key}' images, the observation has {sorted(obs)}: make the env "
                f"with obs_mode='pixels_state' and cameras including '{self.config.camera}'"
            )
        self._frames.append(np.asarray(obs[key]))
        self._proprio.append(np.asarray(obs["proprio"], dtype=np.float32))
        if self.config.reuse_context:
            self._latents.append(self._encode(self._frames[-1][None])[0])
        keep = self.config.context_frames
        self._frames, self._proprio, self._latents = self._frames[-keep:], self._proprio[-keep:], self._latents[-keep:]

    def energy_fn(self, goal: torch.Tensor):
        """The energy ``actions [K, H, 7] -> [K]`` of the current history toward ``goal [N, D]``."""
        wm = self.world_model
        history = np.stack(self._proprio)  # moved to the device once per action, not per energy call
        proprio = torch.from_numpy(history)[None].to(self.device)  # [1, T, 7]
        past = torch.from_numpy(proprio_delta(history))[None].to(self.device)  # [1, T-1, 7]

        def context():
            z = torch.stack(self._latents)[None] if self.config.reuse_context else self._encode(np.stack(self._frames))[None]
            return wm.context(z, proprio, past)

        shared = context() if self.config.reuse_context else None

        def energy(actions: torch.Tensor) -> torch.Tensor:
            ctx = shared if shared is not None else context()
            imagined = wm.rollout(ctx, actions.to(self.device), use_cache=self.config.reuse_context)  # [K, H, N, D]
            per_step = wm.step_energy(imagined, goal)  # [K, H]
            return per_step[:, -1] if self.config.energy == "last" else per_step.mean(dim=1)

        return energy

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        """The env action ``[A]`` for ``obs``: plan, convert the first world-model action."""
        start = time.perf_counter()
        with torch.inference_mode():
            self._observe(obs)
            plan = self.planner.plan(self.energy_fn(self._goal()))
        delta = plan[0].cpu().numpy()
        action = delta_to_env_action(delta, self._proprio[-1])
        if self.config.gripper == "goal":
            closure = self.goal_closures[min(self.goal_index, len(self.goal_closures) - 1)]
            action[-1] = -1.0 if closure < OPEN_BELOW else 1.0
        if self.action_dim == 4:  # xyz + gripper (the orientation is held)
            action = np.concatenate([action[:3], action[6:]])
        self._steps += 1
        if self._steps in np.cumsum(self.goal_steps):  # heading for the next sub-goal: plan afresh
            self.planner.reset()
        self.plan_times.append(time.perf_counter() - start)
        return action.astype(np.float32)
