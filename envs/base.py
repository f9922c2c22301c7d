"""The robot-agnostic table-top env: scene, end-effector control, observations, rewards.

The robot is a :class:`~armworld.envs.robot.RobotModel` given to the env (by name from the
task table's ``ROBOTS``, as registration does, or as an instance). Tasks (envs/tasks.py)
subclass ``TableTopEnv`` and add their objects, goal sampling and
solved pose. Follows Gymnasium's MuJoCo conventions (``env.unwrapped.model``, ``.data``,
``.dt``) and Gymnasium-Robotics' GoalEnv contract (``compute_reward`` vectorised,
``reward == compute_reward(achieved_goal, desired_goal, info)``), with flat observation
keys so that Stable-Baselines3 accepts them.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from armworld.envs.conventions import (
    CAMERAS,
    CONTROL_HZ,
    MAX_POS_DELTA,
    MAX_ROT_DELTA,
    PHYSICS_DT,
    PROPRIO_DIM,
    SUCCESS_THRESHOLD,
    euler_xyz_from_matrix,
    expand_action,
    gripper_closure,
    matrix_from_euler_xyz,
)
from armworld.envs.randomization import RandomizationConfig, SceneRandomizer, resolve
from armworld.envs.registry import load, robot_model, task_of
from armworld.envs.rendering import CameraRenderer
from armworld.envs.robot import ArmKinematics, RobotModel

OBS_MODES = ("state", "pixels", "pixels_state")
REWARD_TYPES = ("sparse", "dense")
VISUALS = ("primitive", "mesh")
# The TCP is kept inside this box (m, base frame) whatever the action asks.
WORKSPACE_LOW = np.array([0.25, -0.35, 0.015])
WORKSPACE_HIGH = np.array([0.75, 0.35, 0.45])
# Episodes start with the TCP here (m), jittered by +- START_JITTER, gripper down and open.
START_TCP = np.array([0.45, 0.0, 0.2])
START_JITTER = 0.03
UNSTABLE_WARNINGS = np.array([int(w) for w in (mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL)])
ROBOT_OBS_SIZE = 11  # any robot: tcp pos 3, tcp euler 3, gripper closure 1, finger width 1, tcp velocity 3


def all_finite(x: np.ndarray) -> bool:
    """Whether no value of ``x`` is NaN or infinite (``count_nonzero`` is the cheapest
    reduction over a handful of values)."""
    return np.count_nonzero(np.isfinite(x)) == x.size


def goal_distance(achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
    """Distance (m) between goals ``[..., 3]``: ``np.linalg.norm``'s own arithmetic, without
    the overhead of its checks (it runs every step)."""
    return np.sqrt(np.add.reduce(np.square(np.subtract(achieved_goal, desired_goal)), axis=-1))


@dataclass(frozen=True)
class Subgoal:
    """A stage of a task as the scene looks once it is done (``TableTopEnv.goal_sequence``).

    tcp: TCP position [3] (m); closure: gripper closure shown, and held on the way there
    (0 open, 1 closed); steps: actions budgeted for the stage; cube: the cube's centre [3]
    (m) by then, or None to leave it where it is when the images are rendered (at reset:
    where it starts).
    """

    tcp: np.ndarray
    closure: float
    steps: int
    cube: np.ndarray | None = None


@dataclass(frozen=True)
class GoalSequence:
    """Images of a task's stages, ending with its goal image: what a planner that works
    through sub-goals heads for in turn (V-JEPA 2-AC's pick-and-place).

    images: uint8 ``[G, S, S, 3]``; tcp ``[G, 3]``: the TCP position each image shows (m);
    closures ``[G]``: the gripper closure each image shows (0 open, 1 closed); steps
    ``[G - 1]``: actions budgeted for each image but the last, which takes the rest of the
    episode.
    """

    images: np.ndarray
    tcp: np.ndarray
    closures: tuple[float, ...]
    steps: tuple[int, ...]

    def select(self, stages: tuple[int, ...]) -> GoalSequence:
        """The stages ``stages`` (indices into all but the goal image, increasing) and the goal
        image; each kept stage is budgeted the actions of the stages up to it since the previous
        kept one, so the goal image starts when it would in the whole sequence. PickPlace's
        ``(1,)``: the hand open around the cube, then the goal, the one extra image of the grasp
        that V-JEPA 2-AC's pick-and-place is given."""
        count = len(self.steps)
        if not stages or list(stages) != sorted(set(stages)) or not all(0 <= k < count for k in stages):
            raise ValueError(f"stages must be increasing indices of the {count} stages before the goal image "
                             f"(0..{count - 1}), got {list(stages)}")
        ends = np.cumsum(self.steps)  # [G - 1]: actions budgeted up to the end of each stage
        keep = [*stages, len(self.images) - 1]
        return GoalSequence(
            images=self.images[keep],
            tcp=self.tcp[keep],
            closures=tuple(self.closures[k] for k in keep),
            steps=tuple(int(e) for e in np.diff(ends[list(stages)], prepend=0)),
        )


@dataclass(frozen=True)
class TableTopEnvConfig:
    """Keyword arguments every armworld env accepts (``gymnasium.make(id, **kwargs)``).

    obs_mode: ``state`` (privileged ``observation`` vector), ``pixels`` (one ``rgb_<camera>``
    key per camera instead) or ``pixels_state`` (both). cameras: names from ``front``,
    ``wrist``, ``top`` (a comma-separated string is accepted). image_size: side of the square
    camera images (pixels). reward_type: ``sparse`` (-1 until success, then 0) or ``dense``
    (minus the goal distance in m). action_dim: 7 (xyz, rotation, gripper) or 4 (xyz,
    gripper; orientation held). randomization: None, a preset name (``default``,
    ``sim2real``) or a ``RandomizationConfig``. visual: ``primitive`` shapes or the robot's ``mesh`` files (the Panda's
    from an installed gymnasium-robotics; visual only, the dynamics are the same).
    render_size: side of ``render()`` frames (pixels).
    """

    obs_mode: str = "state"
    cameras: tuple[str, ...] = ("front",)
    image_size: int = 64
    reward_type: str = "sparse"
    action_dim: int = 7
    randomization: str | RandomizationConfig | None = None
    visual: str = "primitive"
    render_size: int = 256

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> "TableTopEnvConfig":
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise TypeError(f"unknown env argument(s) {unknown}; valid arguments are {valid} (and render_mode, robot)")
        if isinstance(kwargs.get("cameras"), str):
            kwargs = {**kwargs, "cameras": tuple(c.strip() for c in kwargs["cameras"].split(",") if c.strip())}
        elif "cameras" in kwargs:
            kwargs = {**kwargs, "cameras": tuple(kwargs["cameras"])}
        return cls(**kwargs)

    def __post_init__(self) -> None:
        for name in ("image_size", "render_size", "action_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        choices = {"obs_mode": OBS_MODES, "reward_type": REWARD_TYPES, "visual": VISUALS, "action_dim": (7, 4)}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {list(valid)}")
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad or not self.cameras:
            raise ValueError(f"unknown camera(s) {bad or 'none given'}; choose from {list(CAMERAS)}")
        if not (8 <= self.image_size <= 640 and 8 <= self.render_size <= 640):
            raise ValueError(f"image_size and render_size must be within 8..640 pixels, got {self.image_size}, {self.render_size}")
        resolve(self.randomization)


class TableTopEnv(gymnasium.Env):
    """A robot arm with a parallel gripper over a table, driven by end-effector deltas at 10 Hz.

    ``robot``: a name of ``armworld.envs.registry.ROBOTS`` or a ``RobotModel``; the other
    keyword arguments are those of :class:`TableTopEnvConfig`. Subclasses set ``task_observation_size`` and implement ``_add_objects``,
    ``_reset_task``, ``_achieved_goal``, ``_task_observation``, ``_solved_pose`` and,
    for tasks done in stages, ``_subgoals``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": int(CONTROL_HZ)}
    task_observation_size = 0
    # object geoms that randomisation may recolour and resize
    object_geom_names: tuple[str, ...] = ()

    def __init__(self, render_mode: str | None = None, robot: str | RobotModel = "panda", **kwargs: Any):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unknown render_mode {render_mode!r}; choose None or 'rgb_array'")
        self.config = TableTopEnvConfig.from_kwargs(kwargs)
        self.render_mode = render_mode
        self.robot = robot if isinstance(robot, RobotModel) else robot_model(robot)

        spec = self.robot.scene()
        if self.config.visual == "mesh":
            if self.robot.meshes is None:
                raise ValueError(f"the {self.robot.name} has no visual meshes; use visual='primitive'")
            load(self.robot.meshes)(spec)
        self._add_objects(spec)
        # a non-zero nominal position: a site compiled at its body's origin is fused with the
        # body's frame (site_sameframe) and would ignore the goal written into site_pos
        spec.worldbody.add_site(name="goal", pos=[0.5, 0.0, 0.1], size=[0.02, 0, 0], rgba=[0.1, 0.9, 0.2, 0.5], group=3)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.n_substeps = round(1.0 / (CONTROL_HZ * PHYSICS_DT))
        self.model.opt.timestep = PHYSICS_DT
        self.dt = PHYSICS_DT * self.n_substeps
        self.kinematics = ArmKinematics(self.model, self.robot)
        self._arm_qpos = self.kinematics.qpos_ids
        self._arm_dof = self.kinematics.dof_ids
        self._gripper_ctrl = self.robot.dof  # the arm's actuators, then the gripper's
        self._finger_qpos = np.array([self.model.jnt_qposadr[self.model.joint(j).id] for j in self.robot.finger_joints])
        self._goal_site = self.model.site("goal").id
        self._state_spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self._state_buffer = np.empty(mujoco.mj_stateSize(self.model, self._state_spec))
        self._max_joint_step = self.robot.joint_velocity_limits * self.dt
        self._min_joint_step = -self._max_joint_step
        self._tcp_velocity = np.empty(6)

        config = resolve(self.config.randomization)
        object_geoms = [self.model.geom(name).id for name in self.object_geom_names]
        self._randomizer = SceneRandomizer(self.model, config, object_geoms, self.robot.dof) if config else None
        self._renderer = CameraRenderer(self.model, self.config.image_size, self.config.image_size)
        self._goal_renderers: dict[int, CameraRenderer] = {}  # goal images of other sizes, by side
        self._viewer: CameraRenderer | None = None
        self._home_qpos = self._solve_start_pose(START_TCP)

        self.goal = np.zeros(3)
        self._has_reset = False
        self.start_tcp = START_TCP.copy()  # where the episode's first pose put the TCP (m)
        self._target_R = np.eye(3)
        self._pending_actions: deque[np.ndarray] = deque()
        self.action_space = spaces.Box(-1.0, 1.0, (self.config.action_dim,), dtype=np.float32)
        self.observation_space = self._make_observation_space()

    @property
    def task(self) -> str:
        """The task's name in the task table (``reach``, ``push``, ...): what experts,
        hyperparameters and real arms key on (``armworld.envs.registry.TASKS``)."""
        return task_of(type(self)).name

    # -- construction ---------------------------------------------------------------------

    def _make_observation_space(self) -> spaces.Dict:
        vector = lambda n: spaces.Box(-np.inf, np.inf, (n,), dtype=np.float64)  # noqa: E731
        keys: dict[str, spaces.Space] = {}
        if self.config.obs_mode in ("state", "pixels_state"):
            keys["observation"] = vector(ROBOT_OBS_SIZE + self.task_observation_size)
        keys["achieved_goal"] = vector(3)
        keys["desired_goal"] = vector(3)
        keys["proprio"] = vector(7)
        if self.config.obs_mode in ("pixels", "pixels_state"):
            size = self.config.image_size
            for camera in self.config.cameras:
                keys[f"rgb_{camera}"] = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
        return spaces.Dict(keys)

    def _solve_start_pose(self, tcp: np.ndarray) -> np.ndarray:
        q, error = self.kinematics.solve(self.robot.rest_qpos, tcp, np.eye(3), iterations=50)
        assert error < 1e-3, f"start pose {tcp} unreachable ({error:.4f} m)"
        return q

    # -- task hooks -----------------------------------------------------------------------

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        """Add the task's bodies to the scene spec."""

    def _reset_task(self) -> None:
        """Place the objects and sample ``self.goal`` [3] (m) from ``self.np_random``."""
        raise NotImplementedError

    def _achieved_goal(self) -> np.ndarray:
        raise NotImplementedError

    def _task_observation(self) -> np.ndarray:
        return np.zeros(0)

    def _solved_pose(self) -> tuple[np.ndarray, float]:
        """Move the objects to where the solved task has them; return the TCP position [3]
        (m) and gripper closure (0..1) the arm should show in the goal image."""
        raise NotImplementedError

    def _subgoals(self) -> list[Subgoal]:
        """The stages before the solved pose, for this episode (none: one goal image suffices)."""
        return []

    def _arrange(self, stage: Subgoal) -> tuple[np.ndarray, float]:
        """Move the objects to where ``stage`` has them; return its TCP position and closure."""
        return stage.tcp, stage.closure

    # -- Gymnasium API --------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        if self._randomizer is not None:
            self._randomizer.apply(self.model, self.np_random)
        self.start_tcp = START_TCP + self.np_random.uniform(-START_JITTER, START_JITTER, 3)
        q, _ = self.kinematics.solve(self._home_qpos, self.start_tcp, np.eye(3), iterations=20)
        self.data.qpos[self._arm_qpos] = q
        self.data.qpos[self._finger_qpos] = self.robot.finger_open
        self.data.ctrl[: self._gripper_ctrl] = q
        self.data.ctrl[self._gripper_ctrl] = self.robot.finger_open
        self._target_R = np.eye(3)
        self._pending_actions.clear()
        self._reset_task()
        self.model.site_pos[self._goal_site] = self.goal
        mujoco.mj_forward(self.model, self.data)
        self._has_reset = True
        obs = self._get_obs()
        return obs, self._get_info(obs["achieved_goal"])

    def step(self, action: np.ndarray):
        action = self._validate_action(action)
        if self._randomizer is not None and self._randomizer.latency_steps:
            self._pending_actions.append(action)
            if len(self._pending_actions) <= self._randomizer.latency_steps:
                action = np.zeros_like(action)
                action[-1] = 2.0 * self.gripper_closure() - 1.0  # hold still, keep the grip
            else:
                action = self._pending_actions.popleft()
        self._apply_action(expand_action(action))
        mujoco.mj_getState(self.model, self.data, self._state_buffer, self._state_spec)
        warnings_before = self._instability_warnings()
        mujoco.mj_step(self.model, self.data, self.n_substeps)
        unstable = self._instability_warnings() != warnings_before or not all_finite(self.data.qpos)
        if unstable:  # roll back so no non-finite value ever leaves the env
            mujoco.mj_setState(self.model, self.data, self._state_buffer, self._state_spec)
        self._update_observed_quantities()
        obs = self._get_obs()
        info = self._get_info(obs["achieved_goal"])
        reward = self._reward(info["distance"])
        if unstable:
            info["sim_unstable"] = True
        return obs, reward, False, unstable, info

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        """Reward for goals ``[..., 3]`` (batched for HER): sparse -1/0, or minus the distance (m)."""
        distance = goal_distance(achieved_goal, desired_goal)
        if self.config.reward_type == "sparse":
            return -(distance >= SUCCESS_THRESHOLD).astype(np.float32)
        return -distance.astype(np.float32)

    def _reward(self, distance: float) -> float:
        """``compute_reward`` for one goal distance (m), without numpy calls on one number."""
        if self.config.reward_type == "sparse":
            return -1.0 if distance >= SUCCESS_THRESHOLD else 0.0
        return -float(np.float32(distance))

    def compute_terminated(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        return np.zeros(np.shape(achieved_goal)[:-1], dtype=bool)

    def compute_truncated(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        return np.zeros(np.shape(achieved_goal)[:-1], dtype=bool)

    def render(self) -> np.ndarray | None:
        """The ``front`` camera at ``render_size``, with the goal marker shown."""
        if self.render_mode != "rgb_array":
            return None
        if self._viewer is None:
            size = self.config.render_size
            self._viewer = CameraRenderer(self.model, size, size)
            self._viewer.scene_option.sitegroup[3] = 1
        return self._viewer.render(self.data, "front")

    def close(self) -> None:
        for renderer in (self._renderer, self._viewer, *self._goal_renderers.values()):
            if renderer is not None:
                renderer.close()
        self._goal_renderers.clear()

    # -- control --------------------------------------------------------------------------

    def _validate_action(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        expected = self.action_space.shape
        if action.shape != expected:
            raise ValueError(
                f"action has shape {action.shape}, expected {expected} "
                f"({'xyz, rotation, gripper' if expected[0] == 7 else 'xyz, gripper'})"
            )
        if not all_finite(action):
            raise ValueError(f"action contains NaN or inf: {action}; the simulation was not stepped")
        action = np.minimum(action, 1.0)  # a new array: the caller's action stays untouched
        return np.maximum(action, -1.0, out=action)

    def _apply_action(self, action: np.ndarray) -> None:
        """Turn a 7-D action in [-1, 1] into joint and finger position targets."""
        # in-place numpy calls on small arrays: this runs every control step
        target_pos = action[:3] * MAX_POS_DELTA
        target_pos += self.data.site_xpos[self.kinematics.tcp_id]
        np.minimum(target_pos, WORKSPACE_HIGH, out=target_pos)
        np.maximum(target_pos, WORKSPACE_LOW, out=target_pos)
        if np.count_nonzero(action[3:6]):
            target_R = np.empty((3, 3))
            mujoco.mju_mulMatMat(target_R, matrix_from_euler_xyz(action[3:6] * MAX_ROT_DELTA), self._target_R)
            self._target_R = target_R
        q_now = self.data.qpos[: self._gripper_ctrl]  # the arm's joints come first (ArmKinematics checks)
        joint_step = self.kinematics.step_toward(q_now, target_pos, self._target_R, iterations=2)
        joint_step -= q_now
        np.minimum(joint_step, self._max_joint_step, out=joint_step)
        np.maximum(joint_step, self._min_joint_step, out=joint_step)
        np.add(q_now, joint_step, out=self.data.ctrl[: self._gripper_ctrl])
        self.data.ctrl[self._gripper_ctrl] = self.robot.finger_open * (1.0 - (float(action[6]) + 1.0) / 2.0)

    def _update_observed_quantities(self) -> None:
        """Bring what observations, rewards and cameras read up to the state just reached
        (``mj_step`` leaves them one substep old): body, site and camera poses, centre-of-mass
        quantities and velocities. Cheaper than ``mj_forward``, which would also redo collision
        detection and the constraint solve: contacts, forces and accelerations in ``data``
        stay those of the last substep, as after Gymnasium's ``MujocoEnv`` steps. The next
        ``mj_step`` recomputes everything from the state, so the dynamics are the same.
        """
        for stage in (mujoco.mj_kinematics, mujoco.mj_comPos, mujoco.mj_camlight, mujoco.mj_comVel):
            stage(self.model, self.data)

    def _instability_warnings(self) -> bytes:
        """A snapshot of MuJoCo's counters of the ``UNSTABLE_WARNINGS`` (as bytes: the
        cheapest to take and compare)."""
        return self.data.warning.number[UNSTABLE_WARNINGS].tobytes()

    # -- observations ---------------------------------------------------------------------

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [3] (m) and rotation [3, 3] in the base frame."""
        return self.kinematics.tcp_pose(self.data)

    def finger_width(self) -> float:
        """Opening between the finger pads (m)."""
        first, second = self._finger_qpos
        return float(self.data.qpos[first] + self.data.qpos[second])

    def gripper_closure(self) -> float:
        """Gripper closure (0 open, 1 closed) from the finger opening."""
        return float(gripper_closure(self.finger_width(), self.robot.gripper_max_width))

    def proprio(self) -> np.ndarray:
        """[7]: TCP xyz (m), extrinsic XYZ Euler angles (rad), gripper closure (0 open, 1 closed)."""
        return self._write_proprio(np.empty(PROPRIO_DIM), self.finger_width())

    def _write_proprio(self, out: np.ndarray, finger_width: float) -> np.ndarray:
        """Writes the proprio state into ``out[:7]`` and returns ``out``."""
        tcp = self.kinematics.tcp_id
        out[:3] = self.data.site_xpos[tcp]
        out[3:6] = euler_xyz_from_matrix(self.data.site_xmat[tcp].reshape(3, 3))
        out[6] = gripper_closure(finger_width, self.robot.gripper_max_width)
        return out

    def state_observation(self) -> dict[str, np.ndarray]:
        """The non-image keys of the current observation, whatever the obs mode, rendering
        nothing: ``observation`` (proprio 7, finger width in m, TCP linear velocity 3 in m/s,
        then the task's values), ``achieved_goal``, ``desired_goal``, ``proprio``."""
        width = self.finger_width()
        observation = self._write_proprio(np.empty(ROBOT_OBS_SIZE + self.task_observation_size), width)
        observation[PROPRIO_DIM] = width
        velocity = self._tcp_velocity  # [6]: angular, then linear (world frame)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_SITE, self.kinematics.tcp_id, velocity, 0)
        observation[PROPRIO_DIM + 1 : ROBOT_OBS_SIZE] = velocity[3:]
        if self.task_observation_size:
            observation[ROBOT_OBS_SIZE:] = self._task_observation()
        return {
            "observation": observation,
            "achieved_goal": self._achieved_goal().copy(),
            "desired_goal": self.goal.copy(),
            "proprio": observation[:PROPRIO_DIM].copy(),
        }

    def _get_obs(self) -> dict[str, np.ndarray]:
        obs = self.state_observation()
        if self.config.obs_mode == "pixels":
            del obs["observation"]
        if self.config.obs_mode in ("pixels", "pixels_state"):
            for camera in self.config.cameras:
                obs[f"rgb_{camera}"] = self._renderer.render(self.data, camera)
        return obs

    def _get_info(self, achieved_goal: np.ndarray) -> dict[str, Any]:
        distance = float(goal_distance(achieved_goal, self.goal))
        return {"is_success": distance < SUCCESS_THRESHOLD, "distance": distance}

    # -- state and goal images ------------------------------------------------------------

    def get_sim_state(self) -> np.ndarray:
        """MuJoCo's full integration state (time, qpos, qvel, actuators, warm-start, ctrl,
        ...) [S]: what datasets record and replay. The controller's commanded orientation,
        which rotation actions compose on, and the queue of delayed actions under action
        latency are not part of it: branching from a saved state reproduces the episode
        exactly for actions that hold the orientation and without latency."""
        state = np.empty_like(self._state_buffer)
        mujoco.mj_getState(self.model, self.data, state, self._state_spec)
        return state

    def set_sim_state(self, state: np.ndarray) -> None:
        """Restore a state of :meth:`get_sim_state` [S]; one of another shape or holding a
        non-finite value is refused with a ``ValueError`` before it reaches MuJoCo."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != self._state_buffer.shape:
            raise ValueError(f"sim state has shape {state.shape}, expected {self._state_buffer.shape}")
        if not np.isfinite(state).all():
            bad = np.flatnonzero(~np.isfinite(state))
            raise ValueError(f"sim state holds {len(bad)} non-finite value(s), the first at index {bad[0]}; the simulation is left as it was")
        mujoco.mj_setState(self.model, self.data, state, self._state_spec)
        mujoco.mj_forward(self.model, self.data)

    def goal_image(self, camera: str = "front", size: int | None = None) -> np.ndarray:
        """What ``camera`` sees with the task solved: objects at the goal, the arm posed
        there by IK. uint8 ``[size, size, 3]`` (default ``image_size``). The simulation
        state is restored exactly afterwards."""
        return self._posed_image(camera, size, self._solved_pose)[0]

    def goal_sequence(self, camera: str = "front", size: int | None = None) -> GoalSequence:
        """What ``camera`` sees at the end of each stage of the task, ending with the goal
        image: for Reach, the hand halfway from where the episode started it; for Push, the
        hand above and then behind the cube, the cube a quarter, half and three quarters of
        the way; for PickPlace and Stack, the hand over the cube, around it, closed on it,
        lifting it (Stack: then holding it on the base cube). Images as in ``goal_image``;
        the simulation state is restored."""
        stages = self._subgoals()
        posed = [self._posed_image(camera, size, lambda stage=stage: self._arrange(stage)) for stage in stages]
        posed.append(self._posed_image(camera, size, self._solved_pose))
        return GoalSequence(
            images=np.stack([image for image, _, _ in posed]),
            tcp=np.stack([tcp for _, tcp, _ in posed]),
            closures=tuple(closure for _, _, closure in posed),
            steps=tuple(stage.steps for stage in stages),
        )

    def _goal_renderer(self, size: int | None) -> CameraRenderer:
        """The renderer for goal images of side ``size`` (pixels; None: ``image_size``), made
        once per size: a GL context costs far more than a frame."""
        if size is None or size == self.config.image_size:
            return self._renderer
        if not 8 <= size <= 640:
            raise ValueError(f"goal image size must be within 8..640 pixels, got {size}")
        if size not in self._goal_renderers:
            self._goal_renderers[size] = CameraRenderer(self.model, size, size)
        return self._goal_renderers[size]

    def _posed_image(
        self, camera: str, size: int | None, arrange: Callable[[], tuple[np.ndarray, float]]
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Render ``camera`` with the scene as ``arrange`` leaves it and the arm posed by IK at
        the TCP position it returns, with its gripper closure; restore the state. Returns the
        image ``[size, size, 3]``, the TCP position [3] (m) and the closure."""
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; choose from {list(CAMERAS)}")
        if not self._has_reset:
            raise RuntimeError("call reset() before asking for goal images: the goal is drawn at reset")
        renderer = self._goal_renderer(size)
        saved = self.get_sim_state()
        try:
            tcp, closure = arrange()
            q, _ = self.kinematics.solve(self.data.qpos[self._arm_qpos], tcp, self._target_R, iterations=50)
            self.data.qpos[self._arm_qpos] = q
            self.data.qpos[self._finger_qpos] = self.robot.finger_open * (1.0 - closure)
            mujoco.mj_forward(self.model, self.data)
            image = renderer.render(self.data, camera)
        finally:  # the episode goes on from where it was, whatever failed
            self.set_sim_state(saved)
        return image, np.array(tcp, dtype=np.float64), float(closure)
