"""armworld.agents: the Agent protocol and every kind of agent that drives the envs."""

from armworld.agents.base import Agent
from armworld.agents.scripted import RandomAgent, ScriptedExpert, make_expert

__all__ = ["Agent", "RandomAgent", "ScriptedExpert", "make_expert"]
