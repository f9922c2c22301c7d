"""armworld.agents: the Agent protocol and every kind of agent that drives the envs.

Everything loads on first use: the planners and the world-model agent import torch, the
scripted experts the tasks (and so MuJoCo), and importing one needs none of the others::

    from armworld.agents import load_agent, evaluate, EvalConfig, CEM, CEMConfig, WorldModelAgent
"""

from __future__ import annotations

from armworld.agents.base import Agent
from armworld.envs.lazy import lazy_exports

_LAZY = {
    "ScriptedExpert": "scripted",
    "make_expert": "scripted",
    "ActionBounds": "planners",
    "CEM": "planners",
    "CEMConfig": "planners",
    "ICEM": "planners",
    "ICEMConfig": "planners",
    "MPPI": "planners",
    "MPPIConfig": "planners",
    "PlannerOptions": "planners",
    "WorldModelAgent": "world_model_agent",
    "WorldModelAgentConfig": "world_model_agent_config",
    "GoalImageError": "world_model_agent",
    "load_goal_image": "world_model_agent",
    "EvalConfig": "eval_config",
    "EvalResult": "evaluate",
    "evaluate": "evaluate",
    "run_episode": "evaluate",
    "wilson_interval": "evaluate",
    "write_results": "evaluate",
    "AgentSpecError": "loading",
    "load_agent": "loading",
}

__all__ = ["Agent", *sorted(_LAZY)]

__getattr__ = lazy_exports(__name__, _LAZY)
