"""``RealArmEnv``: a real (or served sim) arm behind the sim env's Gymnasium interface.

Same action space (``Box(-1, 1, (7,))``, or ``(4,)`` with ``action_dim=4``) and observation keys as the sim env in
``pixels_state`` mode (``observation`` only when the robot serves a privileged task
observation, as the ``sim`` server does; ``desired_goal`` only when a goal position is
known), so every agent runs unchanged. Every action passes the
:class:`~armworld.envs.real.safety.SafetyLayer`.

The control loop is deadline-paced (as DROID's) and observes late: ``step`` waits for
the next tick of a fixed ``control_hz`` clock and sends the filtered command at once;
the arm is read back ``hold`` seconds later, just early enough for the agent to compute
its next action before the following tick, so the observation shows the arm moving
toward the command (as the sim's does after a full step) and the observation-to-action
latency is about the agent's compute time. With a network driver the command, the hold
and the reading (state, health, served camera frames, task observation) are one
request. A state older than half ``max_obs_age`` at send time (a slow agent) is read
again first. :meth:`RealArmEnv.timing` reports the period jitter and the latency.
An episode is recorded by the episode loop's recorder (``armworld.datasets.record``), through
the env's capabilities ``JointStates`` (:meth:`RealArmEnv.joint_state`) and
``ExecutedActions`` (:meth:`RealArmEnv.executed_action`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces

from armworld.envs.conventions import ACTION_DIM, SUCCESS_THRESHOLD
from armworld.envs.real.protocols import Camera, Command, Kinematics, Reading, Robot, check_fresh
from armworld.envs.real.safety import SafetyLayer, SafetyRecord
from armworld.envs.real.server import RemoteCamera, RobotClient
from armworld.envs.registry import TASKS

HOLD_MARGIN_S = 0.005  # slack (s) kept between the agent's expected action and the next tick


@dataclass(frozen=True)
class RealArmEnvConfig:
    """Settings of a :class:`RealArmEnv`.

    Attributes:
        task: a task of the task table (``armworld.envs.registry.TASKS``: ``reach``, ``push``,
            ``pick_place``, ``stack``; what scripted experts key on);
            ``None``: the task the robot serves (its ``task``), else ``reach``. All but ``reach``
            need the robot to serve a task observation (``achieved_goal``: the cube's position,
            ``desired_goal``: where it goes, e.g. on the base cube for ``stack``), as the ``sim``
            server does; without one ``achieved_goal`` is the TCP, and a real arm needs a
            perception stack serving the cube poses.
        action_dim: 7 (position, rotation, gripper deltas) or 4 (position and gripper, the
            orientation held), as the sim env's ``action_dim``.
        image_size: side of the square ``rgb_<camera>`` images (pixels); frames are resized.
        speed_factor: in (0, 1]; scales the robot's step, speed and acceleration limits.
        goal: desired TCP position [3] (m, base frame) for a robot that serves no task
            observation; without it the observations have no ``desired_goal`` and ``info``'s
            ``distance`` is NaN (success unknown), which suits only image-goal agents.
        dry_run: compute and report each command but send nothing.
        reset_timeout_s: time allowed for the arm to reach home (s).

    Raises:
        ValueError: a setting is out of range.
    """

    task: str | None = None
    action_dim: int = ACTION_DIM
    image_size: int = 64
    speed_factor: float = 1.0
    goal: tuple[float, float, float] | None = None
    dry_run: bool = False
    reset_timeout_s: float = 30.0

    def __post_init__(self):
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of {sorted(TASKS)}")
        if self.action_dim not in (4, ACTION_DIM):
            raise ValueError(f"action_dim must be 4 or {ACTION_DIM}, got {self.action_dim}")
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if not 0.0 < self.speed_factor <= 1.0:
            raise ValueError(f"speed_factor must be in (0, 1], got {self.speed_factor}")
        if self.goal is not None and (len(self.goal) != 3 or not np.all(np.isfinite(self.goal))):
            raise ValueError(f"goal must be 3 finite coordinates (m), got {self.goal}")


class RealArmEnv(gymnasium.Env):
    """A connected arm as a Gymnasium env (connects ``robot`` and ``cameras`` here).

    Args:
        robot: any :class:`~armworld.envs.real.protocols.Robot`; one that serves a sim task's
            observation (``task_observation()``) names that task in its ``task`` attribute.
        cameras: cameras by name (``front``, ``wrist``, ``top`` as in the sim).
        kinematics: IK for the safety layer's joint-limit check.
        config: see :class:`RealArmEnvConfig`.

    Raises:
        ValueError: ``config.task`` is not the task the robot serves, or ``config.goal`` is given
            for a robot that serves its task's goal. The robot and cameras connected here are
            disconnected again when setting up fails.
    """

    metadata = {"render_modes": []}

    def __init__(self, robot: Robot, cameras: Mapping[str, Camera], kinematics: Kinematics,
                 config: RealArmEnvConfig = RealArmEnvConfig()):
        self.robot = robot
        self.cameras = dict(cameras)
        with contextlib.ExitStack() as undo:  # a failed setup leaves nothing connected
            robot.connect()
            undo.callback(robot.disconnect)
            for camera in self.cameras.values():
                camera.connect()
                undo.callback(camera.disconnect)
            served = getattr(robot, "task", None)
            if served is not None and config.task not in (None, served):
                raise ValueError(f"the robot runs the {served} task, not {config.task}")
            if served is not None and config.goal is not None:
                raise ValueError(f"the robot serves the {served} task's goal: give no goal position")
            self.config = dataclasses.replace(config, task=config.task or served or "reach")
            self.task = self.config.task
            self._has_task = served is not None
            self.observation_space = self._observation_space()
            self.safety = SafetyLayer(robot, kinematics, speed_factor=config.speed_factor)
            undo.pop_all()
        self.dt = self.safety.spec.dt
        self.action_space = spaces.Box(-1.0, 1.0, (config.action_dim,), dtype=np.float32)
        served_cameras = [name for name, camera in self.cameras.items()
                          if isinstance(camera, RemoteCamera) and camera.client is robot]
        self._served = served_cameras if isinstance(robot, RobotClient) else None  # camera names the exchange brings
        self._reading: Reading | None = None
        self._sent: Command | None = None
        self._next_tick = 0.0
        self._returned_at = time.monotonic()
        self._agent_s: collections.deque[float] = collections.deque(maxlen=10)
        self._transport_s: collections.deque[float] = collections.deque(maxlen=10)
        self._send_times: list[float] = []
        self._latencies: list[float] = []
        self._overruns = 0
        self._refreshes = 0
        self._closed = False

    def _observation_space(self) -> spaces.Dict:
        vector = lambda n: spaces.Box(-np.inf, np.inf, (n,), dtype=np.float64)  # noqa: E731
        keys: dict[str, spaces.Space] = {}
        if self._has_task:
            keys["observation"] = vector(len(self.robot.task_observation()["observation"]))
        keys["achieved_goal"] = vector(3)
        if self._has_task or self.config.goal is not None:
            keys["desired_goal"] = vector(3)
        keys["proprio"] = vector(7)
        size = self.config.image_size
        for name in self.cameras:
            keys[f"rgb_{name}"] = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
        return spaces.Dict(keys)

    # -- Gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.config.dry_run:  # nothing moves, not even to home
            self.safety.adopt(self.robot.get_observation())
        else:
            self.safety.reset(timeout_s=self.config.reset_timeout_s)
        _, reading = self._exchange(None, hold_s=0.0)
        obs = self._observe(reading)
        now = time.monotonic()
        self._next_tick, self._returned_at = now + self.dt, now  # the agent's time starts now, not before homing
        return obs, self._info(obs, None)

    def step(self, action: np.ndarray):
        called = time.monotonic()
        self._agent_s.append(called - self._returned_at)
        if called < self._next_tick:
            time.sleep(self._next_tick - called)
        reading = self._reading
        if time.monotonic() - reading.state.t > self.safety.spec.max_obs_age / 2:  # the agent was slow
            _, reading = self._exchange(None, hold_s=0.0)
            self._refreshes += 1
        hold_s = self._hold_s()
        started = time.monotonic()
        late = started - self._next_tick > 0.1 * self.dt
        self._overruns += late
        self._next_tick = (started if late else self._next_tick) + self.dt  # no catching up in a burst
        if self.config.dry_run:
            record = self.safety.plan(action, reading.state)
            self._exchange(None, hold_s)
            sent_at = started
        else:
            record = self.safety.step(action, reading.state, reading.health,
                                      send=lambda command: self._exchange(command, hold_s)[0])
            sent_at = self._sent.t
        self._transport_s.append(time.monotonic() - started - hold_s)
        self._send_times.append(sent_at)
        self._latencies.append(sent_at - reading.state.t)
        obs = self._observe(self._reading)
        info = self._info(obs, record)
        reward = 0.0 if info["is_success"] else -1.0
        self._returned_at = time.monotonic()
        return obs, reward, False, False, info

    def close(self) -> None:
        """Stop the arm and the watchdog, then disconnect the cameras and the arm.

        Every step runs even if an earlier one raises (the error is raised once all have run);
        a second :meth:`close` does nothing.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.ExitStack() as steps:  # runs the callbacks last first
            steps.callback(self.robot.disconnect)
            for camera in self.cameras.values():
                steps.callback(camera.disconnect)
            steps.callback(self.safety.close)

    # -- talking to the arm

    def _exchange(self, command: Command | None, hold_s: float) -> tuple[Command | None, Reading]:
        """Send ``command`` (if any), wait ``hold_s`` (s), read the arm back: one request with a network driver."""
        if self._served is not None:
            sent, reading = self.robot.exchange(command, hold_s, self._served, self._has_task)
        else:
            sent = None if command is None else self.robot.send_action(command)
            if hold_s > 0:
                time.sleep(hold_s)
            task = self.robot.task_observation() if self._has_task else None
            reading = Reading(self.robot.get_observation(), self.robot.health(), {}, task)
        self._reading, self._sent = reading, sent
        return sent, reading

    def _hold_s(self) -> float:
        """The wait (s) between a command and its reading: the period minus the recent worst agent and transport times."""
        lead = max(self._agent_s, default=self.dt) + max(self._transport_s, default=0.0) + HOLD_MARGIN_S
        return float(np.clip(self.dt - lead, 0.0, self.dt))

    # -- observations

    def _observe(self, reading: Reading) -> dict[str, np.ndarray]:
        state = reading.state
        obs: dict[str, np.ndarray] = {}
        if reading.task is not None:
            obs.update(reading.task)
        else:
            obs["achieved_goal"] = state.ee_pos.copy()
            if self.config.goal is not None:
                obs["desired_goal"] = np.array(self.config.goal, dtype=np.float64)
        obs["proprio"] = state.proprio.astype(np.float64)
        size, max_age = self.config.image_size, self.safety.spec.max_obs_age
        for name, camera in self.cameras.items():
            frame = reading.frames.get(name)
            if frame is None:
                frame = camera.read_latest(max_age)
            else:
                check_fresh(frame.t, time.monotonic(), max_age, f"camera {name}")
            image = frame.image
            if image.shape[:2] != (size, size):
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            obs[f"rgb_{name}"] = image
        return obs

    def _info(self, obs: dict[str, np.ndarray], record: SafetyRecord | None) -> dict[str, Any]:
        """Success, distance (m) to the goal (NaN where no goal position is known: no success) and the safety record."""
        distance = np.nan  # no desired_goal: an image goal on a robot that serves no goal position
        if "desired_goal" in obs:
            distance = float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))
        info: dict[str, Any] = {"is_success": distance < SUCCESS_THRESHOLD, "distance": distance}
        if record is not None:
            info.update(raw_action=record.raw, clipped_action=record.clipped, sent=record.sent,
                        safety_events=record.events)
        return info

    def timing(self) -> dict[str, float]:
        """Control-loop timing so far (s): command period mean and jitter (std, max |period - dt|), latency.

        Commands are stamped when the arm got them (network drivers) or when they were made
        (local drivers); the latency runs from the reading of the state a command was planned
        from to that stamp. ``overruns`` counts commands more than 10% of a period late;
        ``state_refreshes`` the extra reads after a slow agent.
        """
        periods = np.diff(self._send_times)
        latencies = np.array(self._latencies)
        if len(periods) == 0:
            return {"steps": float(len(latencies))}
        return {
            "steps": float(len(latencies)),
            "period_mean_s": float(periods.mean()),
            "period_jitter_std_s": float(periods.std()),
            "period_jitter_max_s": float(np.abs(periods - self.dt).max()),
            "obs_to_action_latency_mean_s": float(latencies.mean()),
            "obs_to_action_latency_max_s": float(latencies.max()),
            "overruns": float(self._overruns),
            "state_refreshes": float(self._refreshes),
        }

    # -- recording (the capabilities JointStates and ExecutedActions of armworld.envs.episode)

    def joint_state(self) -> np.ndarray:
        """The joint positions and velocities [2J] of the last reading (rad, rad/s): the state a trajectory file records."""
        state = self._reading.state
        return np.concatenate([state.q, state.qd])

    def executed_action(self, action: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The env action [``action_dim``] a step executed in place of ``action``: what its command
        (``info["clipped_action"]``, after the safety layer) amounts to from the observed state, clipped to [-1, 1]."""
        clipped = info["clipped_action"]
        executed = clipped if self.config.action_dim == ACTION_DIM else clipped[[0, 1, 2, 6]]
        return np.clip(executed, -1.0, 1.0)

    def env_args(self) -> dict[str, Any]:
        """The ``env_args`` record for trajectory files of this arm."""
        return {"env_name": f"real:{self.robot.spec.name}", "type": 2, "max_episode_steps": None,
                "env_kwargs": {**dataclasses.asdict(self.config), "cameras": list(self.cameras)}}
