"""The armworld tasks: small subclasses of the robot-agnostic table-top env.

- Reach: bring the TCP to a goal point.
- Push: push a cube across the table to a goal on the table.
- PickPlace: pick the cube up and place it at a goal, on the table or in the air.
- Stack: pick the cube up and put it on top of a second cube.

Success everywhere: the achieved goal within 0.05 m of the desired goal.
"""

from __future__ import annotations

from functools import cached_property

import mujoco
import numpy as np

from armworld.envs.base import Subgoal, TableTopEnv
from armworld.envs.conventions import euler_xyz_from_matrix

# Where objects spawn and goals lie on the table (m, base frame): x, y bounds.
TABLE_REGION_LOW = np.array([0.38, -0.2])
TABLE_REGION_HIGH = np.array([0.62, 0.2])
CUBE_HALF_SIZE = 0.025  # m
CUBE_MASS = 0.1  # kg
MIN_GOAL_DISTANCE = 0.1  # m, on the table between the cube's start and its goal (or the base cube)
STACK_TCP_CLEARANCE = 0.08  # m, TCP above the stacked cube's centre once it has let go
PUSH_TCP_HEIGHT = 0.02  # m, TCP height while pushing
PUSH_STANDOFF = 0.03  # m, TCP behind the cube's face, on the cube-goal line, before pushing
APPROACH_HEIGHT = 0.1  # m, the TCP over the table (Push) or over the cube's centre (PickPlace, Stack) in the first sub-goal


def add_cube(spec: mujoco.MjSpec, name: str, rgba: list[float], xy: tuple[float, float]) -> None:
    """A free cube of side ``2 * CUBE_HALF_SIZE`` on the table: body, geom ``name``, joint ``<name>_joint``."""
    body = spec.worldbody.add_body(name=name, pos=[xy[0], xy[1], CUBE_HALF_SIZE])
    body.add_freejoint(name=f"{name}_joint")
    body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[CUBE_HALF_SIZE] * 3,
        mass=CUBE_MASS,
        rgba=rgba,
        friction=[1.0, 0.005, 0.0001],
        condim=4,
    )


class ReachEnv(TableTopEnv):
    """Move the TCP to a goal point within the workspace above the table."""

    GOAL_LOW = np.array([0.32, -0.22, 0.05])
    GOAL_HIGH = np.array([0.65, 0.22, 0.35])

    def _reset_task(self) -> None:
        self.goal = self.np_random.uniform(self.GOAL_LOW, self.GOAL_HIGH)

    def _achieved_goal(self) -> np.ndarray:
        return self.data.site_xpos[self.kinematics.tcp_id]

    def _subgoals(self) -> list[Subgoal]:
        return [Subgoal(0.5 * (self.start_tcp + self.goal), 0.0, 10)]

    def _solved_pose(self) -> tuple[np.ndarray, float]:
        return self.goal.copy(), 0.0


class CubeTask(TableTopEnv):
    """Shared by the tasks that move a cube: the cube, its observation, its placement."""

    task_observation_size = 15  # cube pos 3, euler 3, pos relative to TCP 3, linear vel 3, angular vel 3
    object_geom_names = ("cube",)

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        add_cube(spec, "cube", [0.85, 0.15, 0.1, 1.0], (0.5, 0.0))

    @property
    def cube_half_size(self) -> float:
        """Half the cube's side (m), after any randomisation."""
        return float(self.model.geom_size[self.model.geom("cube").id, 0])

    def _place_cube(self, xy: np.ndarray, z: float | None = None, name: str = "cube") -> None:
        """Put cube ``name`` at rest, unrotated, at ``xy`` and height ``z`` (default: on the table)."""
        joint = self.model.joint(f"{name}_joint").id
        adr = self.model.jnt_qposadr[joint]
        half = float(self.model.geom_size[self.model.geom(name).id, 0])
        self.data.qpos[adr : adr + 3] = [xy[0], xy[1], half if z is None else z]
        self.data.qpos[adr + 3 : adr + 7] = [1.0, 0.0, 0.0, 0.0]
        self.data.qvel[self.model.jnt_dofadr[joint] :][:6] = 0.0

    def _table_point_away_from(self, xy: np.ndarray) -> np.ndarray:
        """A point [2] of the table region at least ``MIN_GOAL_DISTANCE`` from ``xy`` (m)."""
        while True:
            point = self.np_random.uniform(TABLE_REGION_LOW, TABLE_REGION_HIGH)
            if np.linalg.norm(point - xy) > MIN_GOAL_DISTANCE:
                return point

    def _reset_task(self) -> None:
        self.cube_start = self.np_random.uniform(TABLE_REGION_LOW, TABLE_REGION_HIGH)
        self._place_cube(self.cube_start)
        self.goal = self._sample_goal()

    def _sample_goal(self) -> np.ndarray:
        raise NotImplementedError

    @cached_property
    def _body_ids(self) -> dict[str, int]:
        """Body ids by name, looked up once: observations read them every step."""
        return {self.model.body(i).name: i for i in range(self.model.nbody)}

    def _achieved_goal(self) -> np.ndarray:
        return self.data.xpos[self._body_ids["cube"]]

    def _cube_observation(self, name: str) -> np.ndarray:
        """[15]: pos, euler, pos relative to the TCP, linear and angular velocity of cube ``name``."""
        body = self._body_ids[name]
        pos = self.data.xpos[body]
        velocity = np.empty(6)
        mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, body, velocity, 0)
        return np.concatenate(
            [
                pos,
                euler_xyz_from_matrix(self.data.xmat[body].reshape(3, 3)),
                pos - self.data.site_xpos[self.kinematics.tcp_id],
                velocity[3:],
                velocity[:3],
            ]
        )

    def _task_observation(self) -> np.ndarray:
        return self._cube_observation("cube")

    def _arrange(self, stage: Subgoal) -> tuple[np.ndarray, float]:
        if stage.cube is not None:
            self._place_cube(stage.cube[:2], stage.cube[2])
        return super()._arrange(stage)

    @property
    def grasp_closure(self) -> float:
        """Gripper closure with the fingers on the cube's faces (0 open, 1 closed)."""
        return 1.0 - 2 * self.cube_half_size / self.robot.gripper_max_width

    def _pick_subgoals(self) -> list[Subgoal]:
        """Over the cube, around it, closed on it, lifting it (open, then the grasp closure)."""
        at = np.array([*self.cube_start, self.cube_half_size])
        above = at + np.array([0.0, 0.0, APPROACH_HEIGHT])
        grasp = self.grasp_closure
        return [Subgoal(above, 0.0, 10), Subgoal(at, 0.0, 5), Subgoal(at, grasp, 3), Subgoal(above, grasp, 6, cube=above)]


class PushEnv(CubeTask):
    """Push the cube across the table to a goal 10-20 cm away on the table."""

    def _sample_goal(self) -> np.ndarray:
        while True:
            angle = self.np_random.uniform(-np.pi, np.pi)
            distance = self.np_random.uniform(0.1, 0.2)
            xy = self.cube_start + distance * np.array([np.cos(angle), np.sin(angle)])
            if np.all(xy >= TABLE_REGION_LOW - 0.03) and np.all(xy <= TABLE_REGION_HIGH + 0.03):
                return np.array([xy[0], xy[1], self.cube_half_size])

    def _behind(self, cube_xy: np.ndarray) -> np.ndarray:
        """Where the TCP pushes from [3] (m): ``PUSH_STANDOFF`` behind a cube at ``cube_xy``
        on the line from the cube's start to its goal, at ``PUSH_TCP_HEIGHT``."""
        direction = self.goal[:2] - self.cube_start
        direction /= np.linalg.norm(direction)
        xy = cube_xy - direction * (self.cube_half_size + PUSH_STANDOFF)
        return np.array([xy[0], xy[1], PUSH_TCP_HEIGHT])

    def _subgoals(self) -> list[Subgoal]:
        start = self._behind(self.cube_start)
        stages = [Subgoal(start + np.array([0.0, 0.0, APPROACH_HEIGHT - PUSH_TCP_HEIGHT]), 1.0, 12), Subgoal(start, 1.0, 8)]
        for fraction in (0.25, 0.5, 0.75):
            xy = self.cube_start + fraction * (self.goal[:2] - self.cube_start)
            stages.append(Subgoal(self._behind(xy), 1.0, 6, cube=np.array([xy[0], xy[1], self.cube_half_size])))
        return stages

    def _solved_pose(self) -> tuple[np.ndarray, float]:
        self._place_cube(self.goal[:2])
        return self._behind(self.goal[:2]), 1.0


class PickPlaceEnv(CubeTask):
    """Pick the cube up and place it at a goal: half the goals on the table, half in the air."""

    def _sample_goal(self) -> np.ndarray:
        xy = self._table_point_away_from(self.cube_start)
        height = self.np_random.uniform(0.05, 0.2) if self.np_random.uniform() < 0.5 else 0.0
        return np.array([xy[0], xy[1], self.cube_half_size + height])

    def _subgoals(self) -> list[Subgoal]:
        return self._pick_subgoals()

    def _solved_pose(self) -> tuple[np.ndarray, float]:
        self._place_cube(self.goal[:2], self.goal[2])
        return self.goal.copy(), self.grasp_closure


class StackEnv(CubeTask):
    """Pick the red cube up and stack it on the blue base cube, at least 10 cm away on the table.

    The goal is where the red cube's centre rests on the base cube as it was placed at reset
    (its top plus half a cube); success, as everywhere, is that centre within 0.05 m of it.
    """

    task_observation_size = 2 * CubeTask.task_observation_size  # the cube's 15, then the base cube's
    object_geom_names = ("cube", "base_cube")

    def _add_objects(self, spec: mujoco.MjSpec) -> None:
        super()._add_objects(spec)
        add_cube(spec, "base_cube", [0.15, 0.3, 0.85, 1.0], (0.5, 0.15))

    def _sample_goal(self) -> np.ndarray:
        self.base_start = self._table_point_away_from(self.cube_start)
        self._place_cube(self.base_start, name="base_cube")
        base_half = float(self.model.geom_size[self.model.geom("base_cube").id, 0])
        return np.array([self.base_start[0], self.base_start[1], 2 * base_half + self.cube_half_size])

    def _task_observation(self) -> np.ndarray:
        return np.concatenate([super()._task_observation(), self._cube_observation("base_cube")])

    def _subgoals(self) -> list[Subgoal]:
        held_on_base = Subgoal(self.goal.copy(), self.grasp_closure, 24, cube=self.goal.copy())
        return [*self._pick_subgoals(), held_on_base]

    def _solved_pose(self) -> tuple[np.ndarray, float]:
        self._place_cube(self.goal[:2], self.goal[2])
        return self.goal + np.array([0.0, 0.0, STACK_TCP_CLEARANCE]), 0.0
