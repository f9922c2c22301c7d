"""armworld.envs: robot-agnostic MuJoCo table-top manipulation environments (the Franka Panda), the task table and the sim-to-real bridge."""
