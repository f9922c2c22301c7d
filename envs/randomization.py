"""Seeded domain randomisation of the scene, applied at every reset.

Off by default. ``randomization="default"`` varies what a vision model should be
robust to; ``"sim2real"`` adds what differs between the sim and a real cell
(camera pose at the scale of calibration error, actuator gains, action latency).
Every draw comes from the env's ``np_random``, so the same reset seed gives the same scene.
MuJoCo derives constants from masses, inertias and sizes at compile time (subtree masses,
the inverse weights that scale contact softness, actuator accelerations, model statistics);
after every draw they are recomputed for the drawn model (``mj_setConst``), or a heavier cube
would meet contacts tuned for the nominal one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import mujoco
import numpy as np


@dataclass(frozen=True)
class RandomizationConfig:
    """Ranges of the randomised quantities (a pair is a uniform interval; 0 turns it off).

    Scales multiply the nominal value; jitters are added to it.
    """

    object_rgb: float = 0.0  # +- per colour channel
    object_size_scale: tuple[float, float] = (1.0, 1.0)
    object_mass_scale: tuple[float, float] = (1.0, 1.0)
    object_friction_scale: tuple[float, float] = (1.0, 1.0)
    table_rgb: float = 0.0
    light_scale: tuple[float, float] = (1.0, 1.0)
    camera_position_jitter: float = 0.0  # m, per axis
    camera_aim_jitter: float = 0.0  # m, per axis, of the point the front camera looks at (~0.08 deg per mm)
    actuator_gain_scale: tuple[float, float] = (1.0, 1.0)
    action_latency_steps: tuple[int, int] = (0, 0)  # control steps an action is delayed

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and value[0] > value[1]:
                raise ValueError(f"randomization {f.name}={value}: the lower bound exceeds the upper one")


PRESETS: dict[str, RandomizationConfig] = {
    "default": RandomizationConfig(
        object_rgb=0.25,
        object_size_scale=(0.85, 1.15),
        object_mass_scale=(0.5, 2.0),
        object_friction_scale=(0.7, 1.3),
        table_rgb=0.1,
        light_scale=(0.6, 1.3),
        camera_position_jitter=0.02,
        camera_aim_jitter=0.02,
    ),
    "sim2real": RandomizationConfig(
        object_rgb=0.15,
        object_size_scale=(0.95, 1.05),
        object_mass_scale=(0.7, 1.5),
        object_friction_scale=(0.6, 1.4),
        table_rgb=0.08,
        light_scale=(0.5, 1.4),
        camera_position_jitter=0.01,
        camera_aim_jitter=0.01,
        actuator_gain_scale=(0.8, 1.2),
        action_latency_steps=(0, 1),
    ),
}


def resolve(randomization: str | RandomizationConfig | None) -> RandomizationConfig | None:
    """A preset name, a config or None (off) -> a config or None."""
    if randomization is None or isinstance(randomization, RandomizationConfig):
        return randomization
    if randomization not in PRESETS:
        raise ValueError(f"unknown randomization {randomization!r}; choose one of {sorted(PRESETS)} or None")
    return PRESETS[randomization]


class SceneRandomizer:
    """Remembers the nominal model and redraws the randomised fields from it.

    Only the randomised fields are stored and restored; every derived constant is recomputed
    from them after each draw, so a draw equal to the nominal values gives back the compiled
    model bit for bit and nothing of a previous episode's draw survives. ``arm_actuators``:
    the number of arm joint actuators, which come first in the model (their servo gains are
    randomised).
    """

    def __init__(self, model: mujoco.MjModel, config: RandomizationConfig, object_geoms: list[int], arm_actuators: int):
        self.config = config
        self.arm_actuators = arm_actuators
        self.object_geoms = np.array(object_geoms, dtype=int)
        self.object_bodies = np.unique(model.geom_bodyid[self.object_geoms]) if object_geoms else np.array([], int)
        self.table_geom = model.geom("table").id
        self.cameras = np.array([model.camera(name).id for name in ("front", "top")])
        self.camera_target = model.body("workspace_center").id
        self.nominal = {
            name: getattr(model, name).copy()
            for name in (
                "geom_rgba", "geom_size", "geom_rbound", "geom_aabb", "geom_friction", "body_mass",
                "body_inertia", "light_diffuse", "cam_pos", "body_pos", "actuator_gainprm", "actuator_biasprm",
                # not randomised, but the env moves the goal marker every episode: restored so that
                # what mj_setConst derives from it (site_sameframe) never depends on the last episode
                "site_pos",
            )
        }
        self.latency_steps = 0
        # mj_setConst works in a data of its own (it poses it at qpos0): the env's is left alone
        self._scratch = mujoco.MjData(model)

    def apply(self, model: mujoco.MjModel, rng: np.random.Generator) -> None:
        """Redraw every randomised field of ``model`` from its nominal value, then the
        constants MuJoCo derives from them."""
        cfg, nominal = self.config, self.nominal
        for name, value in nominal.items():
            getattr(model, name)[:] = value
        geoms, bodies = self.object_geoms, self.object_bodies
        if len(geoms):
            model.geom_rgba[geoms, :3] = np.clip(
                nominal["geom_rgba"][geoms, :3] + rng.uniform(-cfg.object_rgb, cfg.object_rgb, (len(geoms), 3)), 0, 1
            )
            size_scale = rng.uniform(*cfg.object_size_scale)
            model.geom_size[geoms] *= size_scale
            model.geom_rbound[geoms] *= size_scale
            model.geom_aabb[geoms] *= size_scale
            model.geom_friction[geoms, 0] *= rng.uniform(*cfg.object_friction_scale)
            mass_scale = rng.uniform(*cfg.object_mass_scale) * size_scale**3
            model.body_mass[bodies] *= mass_scale
            model.body_inertia[bodies] *= mass_scale * size_scale**2
        model.geom_rgba[self.table_geom, :3] = np.clip(
            nominal["geom_rgba"][self.table_geom, :3] + rng.uniform(-cfg.table_rgb, cfg.table_rgb, 3), 0, 1
        )
        model.light_diffuse[:] *= rng.uniform(*cfg.light_scale)
        model.cam_pos[self.cameras] += rng.uniform(
            -cfg.camera_position_jitter, cfg.camera_position_jitter, (len(self.cameras), 3)
        )
        model.body_pos[self.camera_target] += rng.uniform(-cfg.camera_aim_jitter, cfg.camera_aim_jitter, 3)
        arm = self.arm_actuators
        gain_scale = rng.uniform(*cfg.actuator_gain_scale, size=arm)
        model.actuator_gainprm[:arm, 0] *= gain_scale
        model.actuator_biasprm[:arm, 1] *= gain_scale
        low, high = cfg.action_latency_steps
        self.latency_steps = int(rng.integers(low, high + 1))
        mujoco.mj_setConst(model, self._scratch)
