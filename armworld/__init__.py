"""armworld: simulation-first embodied learning with robot arms over a table.

Importing ``armworld`` registers the Gymnasium envs of the task table
(:mod:`armworld.envs.registry`) and nothing else: no environment variable is changed::

    import gymnasium as gym
    import armworld
    env = gym.make("armworld/FrankaPush-v0", obs_mode="pixels_state", image_size=64)
"""

from importlib.metadata import version

from armworld.envs.registry import ENV_IDS, TASKS, register_envs

__version__ = version("armworld")

register_envs()

__all__ = ["ENV_IDS", "TASKS", "__version__"]
