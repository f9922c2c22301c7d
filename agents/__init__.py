"""armworld.agents: the Agent protocol and every kind of agent that drives the envs."""

from armworld.agents.base import Agent
from armworld.agents.scripted import ScriptedExpert, make_expert

__all__ = ["Agent", "ScriptedExpert", "make_expert"]
