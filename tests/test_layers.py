"""Imports follow the layers: planners and the world model load without MuJoCo, and no
subpackage imports the package root (which holds the CLI)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("envs", "datasets", "worldmodel", "agents")


@pytest.mark.parametrize("module", ["armworld.agents.planners", "armworld.agents.world_model_agent", "armworld.worldmodel.world_model"])
def test_importable_without_mujoco(module):
    script = f"import sys; sys.modules['mujoco'] = None; import {module}"  # None: `import mujoco` raises ImportError
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_no_subpackage_imports_the_package_root():
    offenders = []
    for folder in SUBPACKAGES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import) and any(alias.name == "armworld" for alias in node.names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                elif isinstance(node, ast.ImportFrom) and node.module == "armworld" and node.level == 0:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
