"""``visual="mesh"``: Franka's own link meshes instead of the primitive shapes.

The STL files come from an installed ``gymnasium-robotics`` (its Franka Kitchen assets);
they are read from that package at run time and never copied into armworld. The meshes
are visual only: collisions and dynamics stay those of the primitive model, so both
visuals simulate identically.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mujoco

MESH_DIR = Path("envs/assets/kitchen_franka/franka_assets/meshes/visual")
BODY_MESHES = {f"link{i}": f"link{i}" for i in range(8)} | {
    "hand": "hand",
    "left_finger": "finger",
    "right_finger": "finger",
}
HIDDEN_GROUP = 3  # not drawn by default: the primitive shapes move here


def panda_mesh_dir() -> Path:
    """The folder of the Panda's visual STL meshes inside the installed gymnasium-robotics."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "visual='mesh' uses the Panda meshes shipped with gymnasium-robotics: "
            "pip install gymnasium-robotics (or keep the default visual='primitive')"
        )
    directory = Path(spec.submodule_search_locations[0]) / MESH_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"the installed gymnasium-robotics has no Panda meshes at {directory}")
    return directory


def add_panda_meshes(spec: mujoco.MjSpec) -> None:
    """Hide the primitive robot geoms and add Franka's visual meshes to the same bodies."""
    directory = panda_mesh_dir()
    for name in sorted(set(BODY_MESHES.values())):
        spec.add_mesh(name=f"panda_{name}", file=str(directory / f"{name}.stl"))
    for body_name, mesh in BODY_MESHES.items():
        body = spec.body(body_name)
        for geom in body.geoms:
            geom.group = HIDDEN_GROUP
        body.add_geom(
            type=mujoco.mjtGeom.mjGEOM_MESH, meshname=f"panda_{mesh}", contype=0, conaffinity=0,
            group=0, density=0, rgba=[0.95, 0.95, 0.95, 1.0] if mesh != "finger" else [0.2, 0.2, 0.22, 1.0],
        )
