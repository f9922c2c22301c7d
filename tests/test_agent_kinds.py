"""The agent-kind table of armworld.agents.loading: built-in kinds, a kind registered in one
call, kinds from the ``armworld.agents`` entry-point group, and the CLI reading the table."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import types

import pytest

from armworld.agents import loading
from armworld.agents.loading import (
    AGENT_KINDS,
    AgentKind,
    AgentSpecError,
    agent_help,
    agent_specs,
    check_robot,
    check_spec,
    env_kwargs_for,
    is_world_model,
    load_agent,
    register_agent_kind,
)


class Echo:
    """An agent that always takes the same action."""

    def __init__(self, action: float) -> None:
        self.action = action

    def reset(self) -> None:
        pass

    def act(self, obs):
        return self.action


def _load_echo(spec: str, env, seed: int | None, scale: float = 1.0) -> Echo:
    return Echo(float(spec.removeprefix("echo:")) * scale)


ECHO = AgentKind("echo:", ("echo:VALUE",), _load_echo, lambda spec, image_size: {"action_dim": 4})


@pytest.fixture
def kinds(monkeypatch):
    """The table, restored after the test, with no plugin loaded yet."""
    monkeypatch.setattr(loading, "AGENT_KINDS", dict(AGENT_KINDS))
    loading._register_plugins.cache_clear()
    yield loading.AGENT_KINDS
    loading._register_plugins.cache_clear()


def test_the_built_in_kinds_and_what_they_say():
    assert list(AGENT_KINDS) == ["expert", "random", "wm:", "vjepa2-ac:", "sb3:"]
    assert agent_specs() == "expert, random, wm:PATH, wm:default, wm:objects, vjepa2-ac:FILE.pt or sb3:PATH"
    assert [is_world_model(spec) for spec in ("wm:runs/wm", "vjepa2-ac:x.pt", "sb3:run", "expert", "oracle")] == [
        True, True, False, False, False]
    for spec in ("expert", "random", "wm:runs/wm", "vjepa2-ac:x.pt", "sb3:run"):
        check_spec(spec)
    for spec in ("wm:", "sb3:", "experts", "oracle"):
        with pytest.raises(AgentSpecError, match=f"unknown agent '{spec}'; name one of expert, random, wm:PATH"):
            check_spec(spec)
    assert env_kwargs_for("vjepa2-ac:x.pt", 128) == {"obs_mode": "pixels_state", "cameras": ("front",), "image_size": 128}
    with pytest.raises(AgentSpecError, match="expert fixes its own image size; an image size is chosen for vjepa2-ac: agents only"):
        env_kwargs_for("expert", 128)


def test_world_model_specs_are_the_kinds_that_plan_toward_goal_images():
    assert agent_specs(world_models=True) == "wm:PATH, wm:default, wm:objects or vjepa2-ac:FILE.pt"


def test_shipped_models_are_named_and_a_path_of_the_same_name_is_written_as_a_path():
    from armworld.agents.loading import SHIPPED_MODELS, model_path, shipped_model_path

    assert model_path("wm:objects") == shipped_model_path("objects") != shipped_model_path("default")
    assert model_path("wm:./objects").name == "objects" and not model_path("wm:./objects").is_absolute()
    with pytest.raises(AgentSpecError, match="wm:unknown is not shipped .*shipped: wm:default, wm:objects"):
        shipped_model_path("unknown")
    assert SHIPPED_MODELS == ("default", "objects")


def test_a_wm_model_is_refused_on_a_robot_its_data_never_showed(tmp_path):
    def model(*robots: str | None) -> str:
        path = tmp_path / "-".join(map(str, robots))
        path.mkdir()
        (path / "config.json").write_text("{}")
        data = [{"path": f"d{i}.h5", "sha256": "0" * 64} | ({"robot": robot} if robot else {}) for i, robot in enumerate(robots)]
        (path / "metadata.json").write_text(json.dumps({"data": data}))
        return f"wm:{path}"

    ur5e = model("ur5e")
    check_robot(ur5e, "armworld/UR5ePush-v0", {})
    check_robot(ur5e, "armworld/FrankaPush-v0", {"robot": "ur5e"})  # the id's task, on the UR5e
    with pytest.raises(AgentSpecError, match=r"trained on data of the ur5e robot, and armworld/FrankaPush-v0 runs the "
                                             r"panda: .* pass --other-robot"):
        check_robot(ur5e, "armworld/FrankaPush-v0", {})
    check_robot(model("ur5e", "panda"), "armworld/FrankaReach-v0", {})  # one of its robots
    check_robot(model("panda", None), "armworld/UR5ePush-v0", {})  # a file of unknown robot: no refusal
    with pytest.raises(AgentSpecError, match="wm:default was trained on data of the panda robot"):
        check_robot("wm:default", "armworld/UR5ePush-v0", {})  # the shipped model's metadata names its data's robot
    check_robot("vjepa2-ac:model.pt", "armworld/UR5ePush-v0", {})  # no armworld metadata


def test_a_kind_registered_in_one_call_is_known_everywhere(kinds):
    assert register_agent_kind(ECHO) is ECHO
    assert agent_specs().endswith("sb3:PATH or echo:VALUE")
    check_spec("echo:0.5")
    assert not is_world_model("echo:0.5")
    assert env_kwargs_for("echo:0.5") == {"action_dim": 4}
    agent = load_agent("echo:0.5", env=None, seed=0, scale=2.0)
    assert isinstance(agent, Echo) and agent.act({}) == 1.0
    with pytest.raises(AgentSpecError, match="unknown agent 'echo:'"):
        check_spec("echo:")


@pytest.mark.parametrize("name", ["wm:", "expert"])
def test_a_second_kind_of_a_registered_name_is_refused(kinds, name):
    with pytest.raises(ValueError, match=f"an agent kind named '{name}' is registered already"):
        register_agent_kind(AgentKind(name, (name,), _load_echo))


@pytest.mark.parametrize("name", ["wm:x:", "sb3:run", ":", ""])
def test_a_name_a_spec_could_confuse_with_another_kind_is_refused(name):
    with pytest.raises(ValueError, match="a prefix with one ':', at its end"):
        AgentKind(name, ("X",), _load_echo)


def test_a_kind_without_usage_is_refused():
    with pytest.raises(ValueError, match="give its usage"):
        AgentKind("echo:", (), _load_echo)


def _entry_points(monkeypatch, value: str) -> None:
    """One entry point ``echo = value`` in the ``armworld.agents`` group, as an installed plugin declares it."""
    entry = importlib.metadata.EntryPoint(name="echo", value=value, group=loading.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [entry] if group == entry.group else [])


def test_kinds_of_plugins_load_when_a_spec_matches_no_registered_kind(kinds, monkeypatch):
    plugin = types.ModuleType("armworld_echo_plugin")
    plugin.KIND = ECHO
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    _entry_points(monkeypatch, f"{plugin.__name__}:KIND")
    check_spec("expert")  # a built-in kind: the plugins are not loaded
    assert "echo:" not in kinds
    assert load_agent("echo:3", env=None).act({}) == 3.0  # loaded now
    assert "echo:" in loading.AGENT_KINDS


def test_a_plugin_naming_something_else_than_a_kind_is_reported(kinds, monkeypatch):
    _entry_points(monkeypatch, "armworld.agents.loading:agent_specs")
    with pytest.raises(AgentSpecError, match=r"the entry point echo = .*agent_specs \(group armworld.agents\) must name"):
        check_spec("echo:1")


def test_a_plugin_that_fails_to_import_is_reported_in_one_line(kinds, monkeypatch, tmp_path, capsys):
    _entry_points(monkeypatch, "armworld_missing_plugin:KIND")
    with pytest.raises(AgentSpecError, match=r"^the entry point echo = armworld_missing_plugin:KIND \(group "
                       r"armworld.agents\) failed to load: ModuleNotFoundError: No module named 'armworld_missing_plugin'$"):
        check_spec("bogus")
    check_spec("expert")  # a built-in kind: the plugins are not loaded
    from armworld.cli import main

    assert main(["eval", "--agent", "bogus", "--env", "FrankaReach-v0", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the entry point echo = armworld_missing_plugin:KIND") and "Traceback" not in err


def test_the_cli_reads_the_table_without_importing_torch():
    script = ("import sys; from armworld.cli import build_parser; build_parser(); "
              "assert 'torch' not in sys.modules, 'building the parser imported torch'")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    from armworld.cli import build_parser

    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["eval"].format_help().split())
    assert f"{agent_specs()}, or a kind from an installed plugin (entry point armworld.agents)" in help_text
    assert agent_help() in help_text
