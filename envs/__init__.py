"""armworld.envs: Franka Panda MuJoCo manipulation environments and the sim-to-real bridge."""
