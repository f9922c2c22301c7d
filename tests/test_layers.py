"""Imports follow the layers (envs <- datasets <- worldmodel <- agents <- the CLI): planners and
the world model load without MuJoCo, no subpackage imports the package root or the CLI, and no
layer imports one above it."""

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


def _imports(folder: str) -> list[tuple[str, str]]:
    """``(where, module)`` for every absolute import in the subpackage ``folder`` (``from armworld
    import x`` counts as ``armworld.x``, so importing the root's CLI modules is seen)."""
    found = []
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                found += [(where, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found += [(where, node.module)]
                if node.module == "armworld":
                    found += [(where, f"armworld.{alias.name}") for alias in node.names]
    return found


def test_no_subpackage_imports_the_package_root():
    offenders = [where for folder in SUBPACKAGES for where, module in _imports(folder) if module == "armworld"]
    assert not offenders, offenders


def test_no_layer_imports_a_layer_above_it_or_the_cli():
    """envs <- datasets <- worldmodel <- agents <- the CLI (armworld.cli, armworld.commands)."""
    offenders = []
    for index, folder in enumerate(SUBPACKAGES):
        above = [f"armworld.{name}" for name in (*SUBPACKAGES[index + 1:], "cli", "commands")]
        offenders += [f"{where} imports {module}" for where, module in _imports(folder)
                      if any(module == name or module.startswith(name + ".") for name in above)]
    assert not offenders, offenders
