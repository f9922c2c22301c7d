"""A data-collection policy by name (:class:`PolicySpec`), declared once for the library
(:func:`armworld.datasets.collect.collect`) and for ``armworld collect``'s ``--policy``,
``--noise``, ``--beta`` and ``--random-fraction``; free of MuJoCo (the experts load when a policy
is made) so that ``armworld --help`` stays fast. Re-exported by :mod:`armworld.agents.exploration`."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np

from armworld.agents.base import Agent
from armworld.envs.argtypes import check_options, non_negative_float, option, unit_float

POLICIES = ("expert", "random", "mixed")


@dataclass(frozen=True)
class PolicySpec:
    """A data-collection policy by name, callable as ``spec(env, seed) -> Agent``.

    name: ``expert`` (the task's scripted expert with Gaussian action noise ``noise``),
    ``random`` (``ColoredNoiseAgent`` with ``beta``) or ``mixed`` (``MixedAgent`` of the two
    with ``random_fraction``). The seed is split between the parts, so an episode depends
    on its seed alone. Every field is also a flag of ``armworld collect``
    (:func:`armworld.envs.argtypes.option`; ``name`` is ``--policy``).
    """

    name: str = option(
        "expert", "the task's scripted expert, coloured-noise random actions, or the expert with random segments",
        choices=POLICIES, flag="--policy",
    )
    noise: float = option(0.0, "Gaussian action noise of the expert", non_negative_float)
    beta: float = option(1.0, "colour of the random policy's noise (0 white, 1 pink, 2 red)", non_negative_float)
    random_fraction: float = option(0.3, "share of random segments in mixed", unit_float)

    def __post_init__(self) -> None:
        check_options(self)

    @property
    def label(self) -> str:
        """What the dataset records in each episode's ``policy`` attribute."""
        if self.name == "expert":
            return f"expert(noise={self.noise})"
        if self.name == "random":
            return f"random(beta={self.beta})"
        return f"mixed(noise={self.noise}, beta={self.beta}, random_fraction={self.random_fraction})"

    def __call__(self, env: gymnasium.Env, seed: int) -> Agent:
        from armworld.agents.exploration import ColoredNoiseAgent, MixedAgent
        from armworld.agents.scripted import make_expert

        expert_seed, explorer_seed, mix_seed = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3))
        if self.name == "expert":
            return make_expert(env, noise=self.noise, seed=expert_seed)
        explorer = ColoredNoiseAgent.for_env(env, seed=explorer_seed, beta=self.beta)
        if self.name == "random":
            return explorer
        return MixedAgent(make_expert(env, noise=self.noise, seed=expert_seed), explorer, self.random_fraction, seed=mix_seed)
