"""armworld.envs: Franka Panda MuJoCo manipulation environments and the sim-to-real bridge.

Headless rendering defaults to EGL; this must be decided before MuJoCo is imported.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
