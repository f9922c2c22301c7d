"""``sim://HOST:PORT``: a simulated arm (the Panda or the UR5e) as a robot, in real time.

:class:`MujocoRobot` runs the sim env's physics in a thread at wall-clock rate and
takes the same :class:`~armworld.envs.real.protocols.Command` targets a real arm does
(joint targets to the arm's position servos, finger opening to the gripper), within the
limits file of the env's robot (``limits/panda.yaml``, ``limits/ur5e.yaml``: the real
drivers' own specs).
``armworld robot-server --sim`` serves it with :mod:`armworld.envs.real.server`;
``sim://HOST:PORT`` connects a :class:`~armworld.envs.real.server.RobotClient` to it,
the same client any robot-side server answers; ``sim://HOST:PORT?token_file=PATH`` sends
the token in that file (else ``$ARMWORLD_ROBOT_TOKEN``, if set).
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import SplitResult, parse_qs

import gymnasium
import mujoco
import numpy as np

from armworld.envs.conventions import euler_xyz_from_matrix
from armworld.envs.real.drivers.gripper import GripperMap
from armworld.envs.real.protocols import Command, DriverError, Frame, Health, HealthState, RobotSpec, RobotState
from armworld.envs.registry import ENV_IDS, robot_model
from armworld.envs.rendering import CameraRenderer

LIMIT_ROUNDING = 1e-4  # rad a spec's joint limit may exceed the model's (limits files round to 4 decimals)
TICK_S = 0.01  # physics advanced in slices of this wall-clock length (s)


class MujocoRobot:
    """The sim arm behind the robot protocol.

    Args:
        env_id: an armworld env id (``armworld.envs.registry.ENV_IDS``); its robot is the arm
            served (``armworld/UR5eReach-v0``: the UR5e), and its task objects and goal come along.
        seed: seed of the first reset (then incremented per reset).
        realtime: run physics in a thread at wall-clock rate; ``False`` for tests that
            call :meth:`advance` themselves.
        spec: limits (default: the bundled spec named as the env's robot, ``panda`` or
            ``ur5e``); its joint count must be the robot's and its joint ranges within the
            model's.

    Raises:
        ValueError: an unknown env id, or a spec that does not fit the env's robot.
    """

    def __init__(self, env_id: str = "armworld/FrankaReach-v0", seed: int = 0, realtime: bool = True,
                 spec: RobotSpec | None = None):
        if env_id not in ENV_IDS:
            raise ValueError(f"sim: unknown env {env_id!r}; choose one of {sorted(ENV_IDS)}")
        self.env_id, self.seed, self.realtime = env_id, seed, realtime
        self.robot_model = robot_model(ENV_IDS[env_id].robot)
        self.spec = spec or RobotSpec.load(self.robot_model.name)
        if self.spec.dof != self.robot_model.dof:
            raise ValueError(f"sim: the {self.spec.name} spec has {self.spec.dof} joints; {env_id} simulates the "
                             f"{self.robot_model.name}, which has {self.robot_model.dof}")
        lower, upper = self.robot_model.joint_limits.T
        q_min, q_max = np.asarray(self.spec.q_min), np.asarray(self.spec.q_max)
        if np.any(q_min < lower - LIMIT_ROUNDING) or np.any(q_max > upper + LIMIT_ROUNDING):
            raise ValueError(f"sim: the {self.spec.name} spec's joint ranges {list(self.spec.q_min)} .. "
                             f"{list(self.spec.q_max)} (rad) exceed the {self.robot_model.name} model's "
                             f"{lower.tolist()} .. {upper.tolist()}")
        self.finger = GripperMap(open_value=self.robot_model.finger_open, closed_value=0.0)  # finger target, m each
        self.lock = threading.RLock()
        self.env: Any = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()

    # -- lifecycle

    def connect(self) -> None:
        if self.env is not None:
            return
        self.env = gymnasium.make(self.env_id).unwrapped
        with self.lock:  # a powered-up arm rests at home; the first reset draws this same episode
            self._start_episode(np.asarray(self.spec.q_home, dtype=np.float64))
        if self.realtime:
            self._running.set()
            self._thread = threading.Thread(target=self._physics_loop, name="armworld-sim-physics", daemon=True)
            self._thread.start()

    def disconnect(self) -> None:
        if self.env is None:
            return
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self.lock:
            self.env.close()
            self.env = None

    def reset(self, home: np.ndarray | None = None, timeout_s: float = 30.0) -> RobotState:
        """A new sim episode (objects and goal from the next seed) with the arm at ``home``.

        ``home`` (rad, ``spec.dof`` joints) defaults to ``spec.q_home``, as a real arm's reset does, not the
        sim env's jittered start pose; the arm is placed there at once, gripper open.
        """
        self._env()  # connected
        q = self._joints(self.spec.q_home if home is None else home, "home")
        with self.lock:
            self._start_episode(q)
            self.seed += 1
            return self.get_observation()

    def _start_episode(self, q: np.ndarray) -> None:
        """Reset the sim env with the current seed and place the arm at joints ``q`` (rad)."""
        env = self._env()
        env.reset(seed=self.seed)
        env.data.qpos[env.kinematics.qpos_ids] = q
        env.data.ctrl[:self.robot_model.dof] = q
        mujoco.mj_forward(env.model, env.data)

    # -- robot protocol

    def get_observation(self) -> RobotState:
        env = self._env()
        with self.lock:
            pos, R = env.tcp_pose()
            return RobotState(
                q=env.data.qpos[env.kinematics.qpos_ids].copy(),
                qd=env.data.qvel[env.kinematics.dof_ids].copy(),
                ee_pos=pos,
                ee_euler=euler_xyz_from_matrix(R),
                gripper=env.gripper_closure(),
                t=time.monotonic(),
            )

    def send_action(self, command: Command) -> Command:
        env = self._env()
        q = self._joints(command.q, "joint target")
        if not (isinstance(command.gripper, (int, float, np.number)) and 0.0 <= command.gripper <= 1.0):
            raise DriverError(f"sim: gripper closure must be a number in [0, 1], got {command.gripper!r}")
        with self.lock:
            env.data.ctrl[:self.robot_model.dof] = q
            env.data.ctrl[self.robot_model.dof] = self.finger.to_device(float(command.gripper))
        return command

    def _joints(self, q, what: str) -> np.ndarray:
        """``q`` as ``spec.dof`` finite joint angles (rad) within the spec's joint limits, or a :class:`DriverError`."""
        try:
            q = np.asarray(q, dtype=np.float64)
        except (TypeError, ValueError):
            q = np.full(1, np.nan)
        if q.shape != (self.spec.dof,) or not np.all(np.isfinite(q)):
            raise DriverError(f"sim: {what} must be {self.spec.dof} finite joint angles (rad), got {q}")
        if np.any(q < self.spec.q_min) or np.any(q > self.spec.q_max):
            raise DriverError(f"sim: {what} {np.round(q, 4).tolist()} leaves the joint limits "
                              f"{list(self.spec.q_min)} .. {list(self.spec.q_max)} (rad)")
        return q

    def stop(self) -> None:
        env = self._env()
        with self.lock:
            env.data.ctrl[:self.robot_model.dof] = env.data.qpos[env.kinematics.qpos_ids]

    def health(self) -> Health:
        env = self._env()
        with self.lock:
            if not np.all(np.isfinite(env.data.qpos)):
                return Health(HealthState.FAULT, "simulation diverged")
        return Health()

    # -- sim-only extras

    @property
    def task(self) -> str:
        """The sim env's task (``reach``, ``push``, ``pick_place``, ``stack``): what :meth:`task_observation` serves."""
        return self._env().task

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position [3] (m) and rotation [3, 3] at joint angles ``q`` [dof] (rad), from the sim's model."""
        env = self._env()
        with self.lock:
            return env.kinematics.forward(np.asarray(q, dtype=np.float64))

    def advance(self, seconds: float) -> None:
        """Step the physics by ``seconds`` of sim time (for ``realtime=False``)."""
        env = self._env()
        with self.lock:
            mujoco.mj_step(env.model, env.data, max(1, round(seconds / env.model.opt.timestep)))
            mujoco.mj_forward(env.model, env.data)

    def task_observation(self) -> dict[str, np.ndarray]:
        """The sim's privileged ``observation``, ``achieved_goal`` and ``desired_goal``."""
        env = self._env()
        with self.lock:
            obs = env.state_observation()
        return {k: obs[k] for k in ("observation", "achieved_goal", "desired_goal")}

    def render(self, renderer: CameraRenderer, camera: str) -> Frame:
        """An RGB frame of a sim camera through ``renderer``, stamped."""
        env = self._env()
        with self.lock:
            return Frame(renderer.render(env.data, camera), time.monotonic())

    def _physics_loop(self) -> None:
        env = self.env
        substeps = max(1, round(TICK_S / env.model.opt.timestep))
        next_tick = time.monotonic()
        while self._running.is_set():
            with self.lock:
                mujoco.mj_step(env.model, env.data, substeps)
                mujoco.mj_forward(env.model, env.data)
            next_tick += substeps * env.model.opt.timestep
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:  # fell behind (loaded CPU): do not try to catch up in a burst
                next_tick = time.monotonic()

    def _env(self):
        if self.env is None:
            raise DriverError("sim: connect() first")
        return self.env


class SimCamera:
    """A :class:`~armworld.envs.real.protocols.Camera` rendering a sim camera on demand.

    The GL context belongs to the thread that first reads a frame; disconnect from that thread.
    """

    def __init__(self, robot: MujocoRobot, name: str, size: int = 64):
        self.robot, self.name, self.size = robot, name, size
        self._renderer: CameraRenderer | None = None

    def connect(self) -> None:
        """Connect the sim; refuse a camera name the sim's model lacks."""
        self.robot.connect()
        model = self.robot.env.model
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        if self.name not in names:
            raise DriverError(f"sim: no camera {self.name!r}; the scene has {names}")

    def disconnect(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def read_latest(self, max_age_s: float) -> Frame:
        if self._renderer is None:
            self._renderer = CameraRenderer(self.robot.env.model, self.size, self.size)
        return self.robot.render(self._renderer, self.name)


def from_url(url: SplitResult):
    """``sim://HOST:PORT[?token_file=PATH]`` -> a client of ``armworld robot-server`` at that address."""
    from armworld.envs.real.server import RobotClient, read_token

    if url.port is None:
        raise ValueError(f"sim URL needs a port: sim://{url.hostname}:PORT")
    options = parse_qs(url.query, keep_blank_values=True)
    if set(options) - {"token_file"} or len(options.get("token_file", [""])) != 1:
        raise ValueError(f"sim URL options: only ?token_file=PATH (the server's token), got ?{url.query}")
    token = read_token(options["token_file"][0]) if options else None
    return RobotClient(f"tcp://{url.hostname}:{url.port}", token=token)
