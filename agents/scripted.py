"""Scripted experts: waypoints followed by proportional control of the TCP.

They read only what every observation mode carries (``proprio``, ``achieved_goal``,
``desired_goal``), so the same expert drives state envs, pixel envs and real arms whose
achieved goal is tracked. They prove the tasks solvable and generate demonstrations;
``noise`` adds Gaussian action noise (seeded) for more varied data.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from armworld.envs.conventions import MAX_POS_DELTA
from armworld.envs.episode import HasTask, capability
from armworld.envs.registry import TASKS, load
from armworld.envs.tasks import CUBE_HALF_SIZE, PUSH_STANDOFF, PUSH_TCP_HEIGHT, STACK_TCP_CLEARANCE

OPEN, CLOSED = -1.0, 1.0
HOVER = 0.08  # m above the cube top when approaching it
STACK_LIFT = 0.04  # m, the carried cube's bottom above the base cube's top while moving over it
# Fraction of the remaining distance to the target commanded per step. Below 1 so that an
# action that lands a control step late (a real arm's latency; the "sim2real" randomisation)
# does not overshoot: with one step of delay a gain of 1 oscillates about the target for good
# (the 1 cm approach tolerance is never met), 0.6 settles (error x ~0.77 per step, x 0.4 without delay).
GAIN = 0.6


class ScriptedExpert:
    """Base of the experts: turns a (TCP target, gripper) choice into an env action."""

    def __init__(self, action_dim: int = 7, noise: float = 0.0, seed: int | None = None):
        self.action_dim = action_dim
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.phase = "start"

    def reset(self) -> None:
        self.phase = "start"

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        tcp = np.asarray(obs["proprio"][:3])
        target, gripper = self.plan(tcp, np.asarray(obs["achieved_goal"]), np.asarray(obs["desired_goal"]))
        move = np.clip(GAIN * (target - tcp) / MAX_POS_DELTA, -1.0, 1.0)
        action = np.zeros(self.action_dim)
        action[:3] = move
        action[-1] = gripper
        if self.noise > 0:
            action[:3] += self.rng.normal(0.0, self.noise, 3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def plan(self, tcp: np.ndarray, achieved: np.ndarray, goal: np.ndarray) -> tuple[np.ndarray, float]:
        """The TCP target [3] (m) and gripper command (-1 open, +1 closed) for this step."""
        raise NotImplementedError


class ReachExpert(ScriptedExpert):
    def plan(self, tcp, achieved, goal):
        return goal, OPEN


class PushExpert(ScriptedExpert):
    """Line up behind the cube on the cube-goal line, lower, push; re-approach when off-line."""

    def plan(self, tcp, cube, goal):
        to_goal = goal[:2] - cube[:2]
        distance = np.linalg.norm(to_goal)
        if self.phase == "done" and distance > 0.04:
            self.phase = "approach"  # the cube moved off the goal: push again
        if self.phase == "done" or distance < 0.02:
            if self.phase != "done":  # back off horizontally before rising, or the fingers drag the cube
                away = tcp[:2] - cube[:2]
                self.phase, self.retreat = "done", tcp[:2] + 0.03 * away / np.linalg.norm(away)
            height = tcp[2] if np.linalg.norm(tcp[:2] - self.retreat) > 0.005 else cube[2] + CUBE_HALF_SIZE + HOVER
            return np.array([self.retreat[0], self.retreat[1], height]), CLOSED
        u = to_goal / distance
        behind = cube[:2] - u * (CUBE_HALF_SIZE + PUSH_STANDOFF)
        relative = tcp[:2] - cube[:2]
        along, lateral = relative @ u, relative @ np.array([-u[1], u[0]])
        if self.phase == "push" and not (along < -CUBE_HALF_SIZE + 0.01 and abs(lateral) < 0.03):
            self.phase = "approach"
        if self.phase != "push":
            off_line = np.linalg.norm(tcp[:2] - behind) > 0.015
            if off_line and tcp[2] < cube[2] + CUBE_HALF_SIZE + 0.02:  # rise before moving over the cube,
                away = tcp[:2] - cube[:2]  # after backing off if close: rising fingers drag the cube
                gap = np.linalg.norm(away)
                if gap < CUBE_HALF_SIZE + 0.03:
                    side = tcp[:2] + (CUBE_HALF_SIZE + 0.035 - gap) * away / gap
                    return np.array([side[0], side[1], tcp[2]]), CLOSED
                return np.array([tcp[0], tcp[1], cube[2] + CUBE_HALF_SIZE + HOVER]), CLOSED
            if off_line:
                return np.array([behind[0], behind[1], cube[2] + CUBE_HALF_SIZE + HOVER]), CLOSED
            if tcp[2] > PUSH_TCP_HEIGHT + 0.01:
                return np.array([behind[0], behind[1], PUSH_TCP_HEIGHT]), CLOSED
            self.phase = "push"
        # push: the pusher (TCP) moves along the cube-goal line, a little at a time
        target = cube[:2] - u * (CUBE_HALF_SIZE + 0.012) + u * min(distance, 0.02)
        return np.array([target[0], target[1], PUSH_TCP_HEIGHT]), CLOSED


class PickPlaceExpert(ScriptedExpert):
    """Hover over the cube, descend, close, carry to the goal, hold it there."""

    def pick(self, tcp: np.ndarray, cube: np.ndarray) -> tuple[np.ndarray, float] | None:
        """Approach and grasp ``cube``: this step's waypoint while that goes on, None once it is held."""
        if self.phase in ("start", "approach", "descend"):
            # hysteresis: once descending, a drift of up to 1.5 cm is corrected on the way down
            if np.linalg.norm(tcp[:2] - cube[:2]) > (0.015 if self.phase == "descend" else 0.01):
                self.phase = "approach"
                return cube + np.array([0.0, 0.0, HOVER]), OPEN
            self.phase = "descend"
            if tcp[2] - cube[2] > 0.008:
                return cube, OPEN
            self.phase, self.closing_steps = "grasp", 0
        if self.phase == "grasp":
            self.closing_steps += 1
            if self.closing_steps >= 3:
                self.phase = "carry"
            return cube, CLOSED
        if np.linalg.norm(cube - tcp) >= 0.02:  # dropped it: start over
            self.phase = "approach"
            return np.array([tcp[0], tcp[1], tcp[2] + 0.03]), OPEN
        return None

    def plan(self, tcp, cube, goal):
        waypoint = self.pick(tcp, cube)
        return waypoint if waypoint is not None else (goal + (tcp - cube), CLOSED)


class StackExpert(PickPlaceExpert):
    """Pick the cube as PickPlace does, rise, carry it over the goal (on the base cube),
    lower it, let go, rise clear; pick it again if it did not stay there."""

    def plan(self, tcp, cube, goal):
        clear = goal + np.array([0.0, 0.0, STACK_TCP_CLEARANCE])
        if self.phase == "release":
            self.opening_steps += 1
            if self.opening_steps >= 3:
                self.phase = "retreat"
            return self.release_tcp, OPEN
        if self.phase == "retreat":
            if np.linalg.norm(cube - goal) > 0.03:  # it fell off (or sits askew at the edge): pick it again
                self.phase = "approach"
            if tcp[2] < cube[2] + CUBE_HALF_SIZE + 0.02:  # straight up first, or the fingers drag it along
                return np.array([self.release_tcp[0], self.release_tcp[1], clear[2]]), OPEN
            return clear, OPEN
        waypoint = self.pick(tcp, cube)
        if waypoint is not None:
            return waypoint
        grip = tcp - cube
        off_goal = np.linalg.norm(cube[:2] - goal[:2])
        if off_goal > (0.02 if self.phase == "lower" else 0.01):
            self.phase = "carry"
            above = goal + np.array([0.0, 0.0, STACK_LIFT])
            if cube[2] < above[2] - 0.01 and off_goal > 0.02:  # rise first: moving sideways low hits the base cube
                return np.array([tcp[0], tcp[1], above[2] + grip[2]]), CLOSED
            return above + grip, CLOSED
        self.phase = "lower"
        if cube[2] - goal[2] > 0.005:
            return goal + grip, CLOSED
        self.phase, self.opening_steps, self.release_tcp = "release", 0, tcp
        return tcp, OPEN


def make_expert(env: gymnasium.Env, noise: float = 0.0, seed: int | None = None) -> ScriptedExpert:
    """The scripted expert of ``env``'s task (its ``task``: ``HasTask``), as the task table
    (``armworld.envs.registry.TASKS``) names it."""
    task = getattr(capability(env, HasTask), "task", None)
    if task not in TASKS:
        raise ValueError(f"no scripted expert for task {task!r}; experts exist for {sorted(TASKS)}")
    expert = load(TASKS[task].expert)
    return expert(action_dim=env.action_space.shape[0], noise=noise, seed=seed)
