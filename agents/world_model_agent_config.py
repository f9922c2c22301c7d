"""How a world-model agent plans (:class:`WorldModelAgentConfig`), declared once for the library
(:class:`armworld.agents.world_model_agent.WorldModelAgent`) and for the planner flags of
``armworld eval`` and ``armworld demo``; free of torch and MuJoCo so that their ``--help`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass

from armworld.envs.argtypes import check_options, comma_list, non_negative_int, option, positive_int

GRIPPER_MODES = ("plan", "goal")
ENERGIES = ("last", "path")
DEFAULT_PLANNER = "icem"
"""The registered planner (agents/planners.py) a world-model agent plans with unless told another:
iCEM, three steps scored along the path, reaches 99.3% of FrankaReach goal images where CEM with
one step reaches 85.3%, in the same time per action (reports/goal_image, section 7)."""


@dataclass(frozen=True)
class WorldModelAgentConfig:
    """camera: the ``rgb_<camera>`` observation the model was trained on (the model's, when
    loaded by :func:`armworld.agents.loading.load_agent`). context_frames: observed frames given
    to the predictor (1 = the current frame, as V-JEPA 2-AC plans). reuse_context: see
    :mod:`armworld.agents.world_model_agent`. subgoal_steps: actions spent on each goal but the
    last (which takes the rest), when several goal images are given. gripper: ``plan`` or
    ``goal`` (see :mod:`armworld.agents.world_model_agent`). energy: ``path``, the mean distance to the
    goal of every planned step's latent (with a horizon above 1: get there early and stay), or
    ``last``, the last planned step's alone (V-JEPA 2-AC). ``context_frames``, ``reuse_context``,
    subgoal_stages: which of the env's stages (``GoalSequence.select``) a ``goal="subgoals"``
    agent heads for before the goal image (None: all). ``context_frames``, ``reuse_context``,
    ``energy``, ``retrieved_subgoals`` and ``subgoal_stages`` are also flags (:func:`armworld.envs.argtypes.option`);
    ``armworld eval``'s ``--subgoal-steps``, ``--gripper`` and ``--no-gripper`` set the others."""

    camera: str = "front"
    context_frames: int = option(1, "observed frames given to the predictor", positive_int)
    reuse_context: bool = option(
        True, "recompute the imagined sequence for every candidate instead of sharing the context computed once "
        "per action (the same numbers, slower: the reference)",
    )
    subgoal_steps: tuple[int, ...] = ()
    gripper: str = "plan"
    energy: str = option(
        "path", "path: the mean distance to the goal over the planned steps; last: the last step's alone (V-JEPA 2-AC)",
        choices=ENERGIES,
    )
    retrieved_subgoals: int = option(4, "sub-goal frames taken from the retrieved stretch (with --retrieve)", positive_int)
    subgoal_stages: tuple[int, ...] | None = option(
        None, "with --subgoals: head for these of the sim's stages only, then the goal image, e.g. 1 for FrankaPickPlace's "
        "hand around the cube, the one extra image of the grasp (default: every stage)", comma_list(non_negative_int, "1"),
    )

    def __post_init__(self) -> None:
        check_options(self)
        if self.gripper not in GRIPPER_MODES:
            raise ValueError(f"unknown gripper mode {self.gripper!r}; choose one of {list(GRIPPER_MODES)}")
        if any(s < 1 for s in self.subgoal_steps):
            raise ValueError(f"subgoal_steps must be positive, got {self.subgoal_steps}")
