"""``RealArmEnv``: a real (or served sim) arm behind the sim env's Gymnasium interface.

Same action space (``Box(-1, 1, (7,))``) and observation keys as the sim env in
``pixels_state`` mode (``observation`` only when the robot serves a privileged task
observation, as the ``sim`` server does), so every agent runs unchanged. Every action
passes the :class:`~armworld.envs.real.safety.SafetyLayer`.

The control loop is deadline-paced (as DROID's): ``step`` waits for the next tick of
a fixed ``control_hz`` clock, reads a fresh robot state, sends the filtered command,
then observes. :meth:`RealArmEnv.timing` reports the send-period jitter and the
observation-to-action latency. Episodes can be appended to an armworld HDF5 file.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Mapping

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces

from armworld.envs.conventions import ACTION_DIM, SUCCESS_THRESHOLD
from armworld.envs.real.protocols import Camera, Kinematics, Robot, RobotState
from armworld.envs.real.safety import SafetyLayer, SafetyRecord


@dataclass(frozen=True)
class RealArmEnvConfig:
    """Settings of a :class:`RealArmEnv`.

    Attributes:
        task: ``reach``, ``push`` or ``pick_place`` (what scripted experts key on).
        image_size: side of the square ``rgb_<camera>`` images (pixels); frames are resized.
        speed_factor: in (0, 1]; scales the robot's step, speed and acceleration limits.
        goal: desired TCP position [3] (m) when the robot serves no task observation.
        dry_run: compute and report each command but send nothing.
        reset_timeout_s: time allowed for the arm to reach home (s).
    """

    task: str = "reach"
    image_size: int = 64
    speed_factor: float = 1.0
    goal: tuple[float, float, float] | None = None
    dry_run: bool = False
    reset_timeout_s: float = 30.0


class RealArmEnv(gymnasium.Env):
    """A connected arm as a Gymnasium env (connects ``robot`` and ``cameras`` here).

    Args:
        robot: any :class:`~armworld.envs.real.protocols.Robot`.
        cameras: cameras by name (``front``, ``wrist``, ``top`` as in the sim).
        kinematics: IK for the safety layer's joint-limit check.
        config: see :class:`RealArmEnvConfig`.
        recorder: optional armworld ``TrajectoryWriter``; each finished episode is appended.
    """

    metadata = {"render_modes": []}

    def __init__(self, robot: Robot, cameras: Mapping[str, Camera], kinematics: Kinematics,
                 config: RealArmEnvConfig = RealArmEnvConfig(), recorder: Any = None):
        self.config = config
        self.task = config.task
        self.robot = robot
        self.cameras = dict(cameras)
        self.recorder = recorder
        robot.connect()
        for camera in self.cameras.values():
            camera.connect()
        self.safety = SafetyLayer(robot, kinematics, speed_factor=config.speed_factor)
        self.dt = self.safety.spec.dt
        self._has_task = hasattr(robot, "task_observation") and self._probe_task()
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)
        vector = lambda n: spaces.Box(-np.inf, np.inf, (n,), dtype=np.float64)  # noqa: E731
        keys: dict[str, spaces.Space] = {}
        if self._has_task:
            keys["observation"] = vector(len(robot.task_observation()["observation"]))
        keys.update(achieved_goal=vector(3), desired_goal=vector(3), proprio=vector(7))
        size = config.image_size
        for name in self.cameras:
            keys[f"rgb_{name}"] = spaces.Box(0, 255, (size, size, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(keys)
        self._next_tick = 0.0
        self._obs_t = 0.0
        self._send_times: list[float] = []
        self._latencies: list[float] = []
        self._overruns = 0
        self._episode: dict[str, list] | None = None
        self._episodes = 0

    def _probe_task(self) -> bool:
        try:
            self.robot.task_observation()
        except Exception:  # a served real arm has none
            return False
        return True

    # -- Gymnasium API

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._flush_episode()
        if self.config.dry_run:  # nothing moves, not even to home
            state = self.robot.get_observation()
            self.safety.adopt(state)
        else:
            state = self.safety.reset(timeout_s=self.config.reset_timeout_s)
        obs = self._observe(state)
        self._next_tick = time.monotonic() + self.dt
        self._episode = {"obs": [obs], "states": [np.concatenate([state.q, state.qd])], "actions": [],
                         "rewards": [], "success": [], "seed": seed}
        return obs, self._info(obs, None)

    def step(self, action: np.ndarray):
        now = time.monotonic()
        if now < self._next_tick:
            time.sleep(self._next_tick - now)
        else:
            self._overruns += now - self._next_tick > 0.1 * self.dt
        state = self.robot.get_observation()
        if self.config.dry_run:
            record = self.safety.plan(action, state)
        else:
            record = self.safety.step(action, state)
        sent_at = time.monotonic()
        self._send_times.append(sent_at)
        self._latencies.append(sent_at - self._obs_t)
        self._next_tick = max(self._next_tick + self.dt, sent_at)
        new_state = self.robot.get_observation()
        obs = self._observe(new_state)
        info = self._info(obs, record)
        reward = 0.0 if info["is_success"] else -1.0
        if self._episode is not None:
            self._episode["obs"].append(obs)
            self._episode["states"].append(np.concatenate([new_state.q, new_state.qd]))
            self._episode["actions"].append(np.clip(record.clipped, -1.0, 1.0))
            self._episode["rewards"].append(reward)
            self._episode["success"].append(info["is_success"])
        return obs, reward, False, False, info

    def close(self) -> None:
        self._flush_episode()
        self.safety.close()
        for camera in self.cameras.values():
            camera.disconnect()
        self.robot.disconnect()

    # -- observations

    def _observe(self, state: RobotState) -> dict[str, np.ndarray]:
        obs: dict[str, np.ndarray] = {}
        if self._has_task:
            obs.update(self.robot.task_observation())
        else:
            goal = self.config.goal if self.config.goal is not None else (0.0, 0.0, 0.0)
            obs.update(achieved_goal=state.ee_pos.copy(), desired_goal=np.array(goal, dtype=np.float64))
        obs["proprio"] = state.proprio.astype(np.float64)
        size = self.config.image_size
        for name, camera in self.cameras.items():
            image = camera.read_latest(self.safety.spec.max_obs_age).image
            if image.shape[:2] != (size, size):
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            obs[f"rgb_{name}"] = image
        self._obs_t = state.t
        return obs

    def _info(self, obs: dict[str, np.ndarray], record: SafetyRecord | None) -> dict[str, Any]:
        distance = float(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))
        info: dict[str, Any] = {"is_success": distance < SUCCESS_THRESHOLD, "distance": distance}
        if record is not None:
            info.update(raw_action=record.raw, clipped_action=record.clipped, sent=record.sent,
                        safety_events=record.events)
        return info

    def timing(self) -> dict[str, float]:
        """Control-loop timing so far: send period mean and jitter (std, max |period - dt|), latency (s)."""
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
        }

    # -- recording

    def env_args(self) -> dict[str, Any]:
        """The ``env_args`` record for trajectory files of this arm."""
        return {"env_name": f"real:{self.robot.spec.name}", "type": 2, "max_episode_steps": None,
                "env_kwargs": {**dataclasses.asdict(self.config), "cameras": list(self.cameras)}}

    def _flush_episode(self) -> None:
        episode, self._episode = self._episode, None
        if self.recorder is None or episode is None or not episode["actions"]:
            return
        from armworld.datasets.hdf5 import Episode

        keys = episode["obs"][0].keys()
        n = len(episode["actions"])
        self.recorder.append(Episode(
            obs={k: np.stack([o[k] for o in episode["obs"]]) for k in keys},
            states=np.stack(episode["states"]).astype(np.float64),
            actions=np.stack(episode["actions"]).astype(np.float32),
            rewards=np.array(episode["rewards"], dtype=np.float32),
            terminated=np.zeros(n, dtype=bool),
            truncated=np.eye(1, n, n - 1, dtype=bool)[0],
            success=np.array(episode["success"], dtype=bool),
            seed=int(episode["seed"] or 0),
            policy="real",
        ))
        self._episodes += 1
