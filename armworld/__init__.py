"""armworld: simulation-first embodied learning with a Franka Panda.

Importing ``armworld`` registers the Gymnasium envs::

    import gymnasium as gym
    import armworld
    env = gym.make("armworld/FrankaPush-v0", obs_mode="pixels_state", image_size=64)
"""

import os

# Headless rendering defaults to EGL. MuJoCo reads MUJOCO_GL when it is first imported,
# so this happens here, before anything in armworld imports it.
os.environ.setdefault("MUJOCO_GL", "egl")
# Mesa's software rasteriser (llvmpipe, EGL without a GPU) draws observation-sized images
# up to 1.5x faster on the calling thread than over its worker threads, with the same
# pixels (benchmarks/render_speed.py). Read when the first GL context starts; GPUs ignore it.
os.environ.setdefault("LP_NUM_THREADS", "0")

from armworld.envs.registry import ENV_IDS, TASKS, register_envs  # noqa: E402

__version__ = "0.1.0"

register_envs()

__all__ = ["ENV_IDS", "TASKS", "__version__"]
