"""The sim-to-real bridge: robot and camera protocols, RealArmEnv, safety layer, drivers, calibration."""
