"""The CLI's error contract: every refusal, argument errors included, is one ``error:`` line
on stderr and exit status 1, naming the valid choices or range; nothing is parsed loosely. A
verb run without the optional extra it needs says which extra to install, the same way."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from armworld.cli import EXTRA_PACKAGES, extras_of, main, missing_extra
from armworld.commands import SEED_MAX, comma_list, non_negative_float, positive_int, seed

REACH = ["--env", "armworld/FrankaReach-v0"]
DATA = ["--data", "d.h5", "--out", "run"]


def refused(argv: list[str], capsys) -> str:
    """Run ``armworld argv`` in-process; assert it was refused as the contract says; its message."""
    assert main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert captured.out == ""
    return lines[0]


# (verb and its required arguments, flag, what the message says is expected)
NUMERIC_FLAGS = [
    (["rollout"], "--episodes", "an integer >= 1"),
    (["rollout"], "--noise", "a number >= 0"),
    (["rollout"], "--seed", f"an integer >= 0 and <= {SEED_MAX}"),
    (["rollout"], "--size", "an integer >= 8 and <= 640"),
    (["collect", *REACH, "--out", "x.h5", "--episodes", "1"], "--noise", "a number >= 0"),
    (["collect", *REACH, "--out", "x.h5"], "--episodes", "an integer >= 1"),
    (["collect", *REACH, "--out", "x.h5", "--episodes", "1"], "--seed", f"an integer >= 0 and <= {SEED_MAX}"),
    (["collect", *REACH, "--out", "x.h5", "--episodes", "1"], "--random-fraction", "a number >= 0.0 and <= 1.0"),
    (["collect", *REACH, "--out", "x.h5", "--episodes", "1"], "--workers", "an integer >= 1"),
    (["dataset", "video", "d.h5", "--demo", "0", "--out", "v.mp4"], "--fps", "a number > 0"),
    (["dataset", "replay", "d.h5"], "--demo", "an integer >= 0"),
    (["eval", "--agent", "random", *REACH, "--out", "r"], "--episodes", "an integer >= 1"),
    (["eval", "--agent", "random", *REACH, "--out", "r"], "--videos", "an integer >= 0"),
    (["eval", "--agent", "random", *REACH, "--out", "r"], "--samples", "an integer >= 1"),
    (["demo"], "--seed", f"an integer >= 0 and <= {SEED_MAX}"),
    (["rl", "train", "--algo", "sac", *REACH, "--out", "r"], "--steps", "an integer >= 1"),
    (["rl", "train", "--algo", "sac", *REACH, "--out", "r"], "--checkpoint-freq", "an integer >= 0"),
    *[(["pretrain", *DATA], flag, expected) for flag, expected in [
        ("--steps", "an integer >= 1"), ("--batch-size", "an integer >= 1"), ("--lr", "a number > 0.0"),
        ("--start-lr", "a number > 0.0"), ("--warmup-steps", "an integer >= 0"), ("--weight-decay", "a number >= 0.0"),
        ("--grad-clip", "a number > 0.0"), ("--seed", f"an integer >= 0 and <= {SEED_MAX}"),
        ("--eval-every", "an integer >= 1"), ("--save-every", "an integer >= 1"), ("--workers", "an integer >= 0"),
        ("--clip-len", "an integer >= 2"), ("--frame-skip", "an integer >= 1"),
        ("--ema", "a number >= 0.0 and < 1.0"), ("--sigreg-weight", "a number >= 0.0 and <= 1.0"),
    ]],
    (["train", *DATA], "--rollout-steps", "an integer >= 0"),
    (["train", *DATA], "--sigreg-weight", "a number >= 0.0"),
    (["train", *DATA], "--frame-skip", "an integer >= 1"),
    *[(["score", "--repr", "pixels", "--out", "r"], flag, expected) for flag, expected in [
        ("--image-size", "an integer >= 8 and <= 640"), ("--episodes", "an integer >= 1"),
        ("--candidates", "an integer >= 2"), ("--horizon", "an integer >= 1"), ("--expert-episodes", "an integer >= 2"),
        ("--expert-noise", "a number >= 0.0"), ("--max-steps", "an integer >= 1"),
        ("--seed", f"an integer >= 0 and <= {SEED_MAX}"), ("--threads", "an integer >= 1"),
    ]],
    *[(["robot-server", "--sim"], flag, expected) for flag, expected in [
        ("--port", "an integer >= 1 and <= 65535"), ("--image-size", "an integer >= 8 and <= 640"),
        ("--latency-ms", "a number >= 0.0"), ("--seed", f"an integer >= 0 and <= {SEED_MAX}"),
    ]],
    *[(["deploy", "--robot", "mock", "--agent", "expert"], flag, expected) for flag, expected in [
        ("--max-steps", "an integer >= 1"), ("--image-size", "an integer >= 8 and <= 640"),
        ("--seed", f"an integer >= 0 and <= {SEED_MAX}"), ("--speed", "a number > 0.0 and <= 1.0"),
    ]],
    (["calibrate", "board", "--out", "b.png"], "--pixels-per-square", "an integer >= 1"),
    (["calibrate", "hand-eye", "--images", "i.png", "--poses", "p.npy", "--mount", "wrist", "--out", "c.yaml"],
     "--fovy", "a number > 0.0 and < 180.0"),
]

# values no numeric flag accepts: negative, not finite (integers past float's range too), not a number
BAD_NUMBERS = st.one_of(
    st.integers(max_value=-1).map(str),
    st.integers(min_value=10**400).map(str),
    st.floats(max_value=-1e-6, allow_nan=False).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "", "ten", "1e400", "0x10"]),
)


@pytest.mark.parametrize("verb, flag, expected", NUMERIC_FLAGS, ids=[f"{v[0]} {f}" for v, f, _ in NUMERIC_FLAGS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # capsys is read each time
@given(value=BAD_NUMBERS)
def test_out_of_range_numbers_are_refused_at_parse_time_with_the_range_named(verb, flag, expected, value, tmp_path_factory, capsys):
    out = tmp_path_factory.mktemp("cwd")
    line = refused([*[str(out / a) if a.endswith((".h5", ".mp4")) else a for a in verb], f"{flag}={value}"], capsys)
    assert f"argument {flag}: expected {expected}" in line and "--help" in line
    assert list(out.iterdir()) == []  # nothing written


def test_zero_where_a_positive_number_is_needed_and_seeds_out_of_range(capsys):
    assert "argument --fps: expected a number > 0.0, got '0'" in refused(
        ["dataset", "video", "d.h5", "--demo", "0", "--out", "v.mp4", "--fps", "0"], capsys)
    assert "argument --episodes: expected an integer >= 1, got '0'" in refused(["rollout", "--episodes", "0"], capsys)
    for value in (SEED_MAX + 1, 2**70):  # an HDF5 attribute overflowed before
        assert f"argument --seed: expected an integer >= 0 and <= {SEED_MAX}, got '{value}'" in refused(
            ["collect", *REACH, "--episodes", "1", "--out", "x.h5", "--seed", str(value)], capsys)


@pytest.mark.parametrize("argv, message", [
    (["robot-server", "--sim", "--port", "0"], "argument --port: expected an integer >= 1 and <= 65535, got '0'"),
    (["robot-server", "--sim", "--port", "70000"], "argument --port: expected an integer >= 1 and <= 65535, got '70000'"),
    (["robot-server", "--sim", "--image-size", "2048"], "argument --image-size: expected an integer >= 8 and <= 640"),
    (["deploy", "--robot", "mock", "--agent", "expert", "--speed", "1.5"], "argument --speed: expected a number > 0.0 and <= 1.0"),
    (["deploy", "--robot", "mock", "--agent", "expert", "--speed", "0"], "argument --speed: expected a number > 0.0 and <= 1.0"),
    (["pretrain", *DATA, "--ema", "1"], "argument --ema: expected a number >= 0.0 and < 1.0, got '1'"),
    (["pretrain", *DATA, "--grad-clip", "0"], "argument --grad-clip: expected a number > 0.0, got '0'"),
    (["pretrain", *DATA, "--sigreg-weight", "1.5"], "argument --sigreg-weight: expected a number >= 0.0 and <= 1.0"),
    (["train", *DATA, "--clip-len", "1"], "argument --clip-len: expected an integer >= 2, got '1'"),
    (["score", "--repr", "pixels", "--out", "r", "--candidates", "1"], "argument --candidates: expected an integer >= 2"),
    (["calibrate", "--marker-mm", "-1", "board", "--out", "b.png"], "argument --marker-mm: expected a number > 0.0, got '-1'"),
    (["calibrate", "--square-mm", "nan", "board", "--out", "b.png"], "argument --square-mm: expected a number > 0.0, got 'nan'"),
    (["calibrate", "hand-eye", "--images", "i.png", "--poses", "p.npy", "--mount", "wrist", "--out", "c.yaml",
      "--fovy", "180"], "argument --fovy: expected a number > 0.0 and < 180.0, got '180'"),
])
def test_bounds_of_the_model_score_and_real_arm_verbs(argv, message, capsys):
    assert message in refused(argv, capsys)


@pytest.mark.parametrize("port", ["0", "70000", "-5", "abc"])
def test_robot_urls_with_a_port_out_of_range_are_refused(port, capsys):
    url = f"sim://127.0.0.1:{port}"
    line = refused(["deploy", "--robot", url, "--agent", "expert", "--max-steps", "1"], capsys)
    assert f"robot URL {url!r}: the port must be a whole number in 1-65535" in line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["rl", "train", "--algo", "dqn", *REACH, "--out", "r"], "argument --algo: invalid choice: 'dqn' (choose from 'ppo', 'sac', 'td3', 'tqc')"),
        (["collect", "--env", "FrankaSlide-v0", "--episodes", "1", "--out", "x.h5"], "unknown env 'FrankaSlide-v0'; choose one of armworld/FrankaReach-v0"),
        (["demo", "--envs", "FrankaReach-v0,Nope"], "unknown env 'Nope'"),
        (["eval", "--agent", "random", *REACH, "--out", "r", "--seeds", ","], "argument --seeds: names nothing"),
        (["collect", *REACH], "the following arguments are required: --episodes, --out"),
        (["collect", *REACH, "--randomization", "wild"], "unknown randomization 'wild'; choose one of default, sim2real"),
        (["score", "--repr", "pixels", "--randomization", "Default"], "unknown randomization 'Default'"),
        (["nope"], "argument COMMAND: invalid choice: 'nope'"),
        ([], "the following arguments are required: COMMAND"),
        (["eval", "--no-gripper", "--gripper", "goal"], "not allowed with argument --no-gripper"),
    ],
)
def test_argument_errors_name_the_choices_in_one_line(argv, message, capsys):
    assert message in refused(argv, capsys)


def test_help_still_exits_zero(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["rollout", "--help"])
    assert exit_.value.code == 0 and "--episodes" in capsys.readouterr().out


@given(st.integers(min_value=0, max_value=SEED_MAX))
def test_seeds_in_range_parse_to_themselves(value):
    assert seed(str(value)) == value


@given(st.integers(min_value=1, max_value=10**9), st.floats(min_value=0, max_value=1e9))
def test_valid_numbers_parse_exactly(integer, real):
    assert positive_int(str(integer)) == integer
    assert non_negative_float(repr(real)) == real


@given(st.lists(st.integers(min_value=0, max_value=SEED_MAX), min_size=1, max_size=5))
def test_comma_lists_parse_each_item(values):
    assert comma_list(seed, "0,1")(",".join(map(str, values))) == tuple(values)


def test_non_finite_is_never_a_number():
    for text in ("nan", "inf", "-inf", "1e400", "-1e400"):
        with pytest.raises(argparse.ArgumentTypeError):
            non_negative_float(text)
    for text in ("1" + "0" * 400, "9" * 1000):  # math.isfinite raised OverflowError on such ints
        with pytest.raises(argparse.ArgumentTypeError, match="expected an integer >= 1"):
            positive_int(text)
    assert positive_int(str(2**63)) == 2**63 and non_negative_float("1e308") == 1e308  # large but finite


def test_a_huge_integer_on_the_command_line_is_one_error_line(tmp_path, capsys):
    line = refused(["score", "--repr", "pixels", "--out", str(tmp_path / "x"), "--episodes", "1" + "0" * 400], capsys)
    assert "argument --episodes: expected an integer >= 1" in line
    assert list(tmp_path.iterdir()) == []


# -- a verb run without the optional extra it needs


def extra_line(verb: str, module: str, package: str, extra: str) -> str:
    return (f"error: armworld {verb} needs the module {module} ({package}, from the optional '{extra}' extra), "
            f"which is not installed: pip install 'armworld[{extra}]' (in a clone: pip install -e '.[{extra}]')")


def test_every_package_of_every_extra_has_its_import_name():
    """A new extra in pyproject.toml needs its packages' import names in EXTRA_PACKAGES, and the
    message names the extra that pyproject.toml declares (through armworld's installed metadata)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as file:
        extras = tomllib.load(file)["project"]["optional-dependencies"]
    declared = {(extra, re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower())
                for extra, requirements in extras.items() if extra != "test" for requirement in requirements}
    by_package = {package: module for module, package in EXTRA_PACKAGES.items()}
    assert {package for _, package in declared} <= set(by_package), "add the import names to EXTRA_PACKAGES"
    installed = set(metadata("armworld").get_all("Provides-Extra") or [])
    if installed != set(extras):
        pytest.skip(f"armworld's installed metadata has the extras {sorted(installed)}, pyproject.toml "
                    f"{sorted(extras)}: install it again (pip install -e .)")
    for extra, package in sorted(declared):
        assert extra in extras_of(package)
    for extra, package in [("real", "pyzmq"), ("realsense", "pyrealsense2"), ("mesh", "gymnasium-robotics")]:
        error = ModuleNotFoundError(f"No module named {by_package[package]!r}", name=by_package[package])
        assert missing_extra(error, "x") == extra_line("x", by_package[package], package, extra)[len("error: "):]


def test_deploy_without_the_real_extra_names_it_in_a_fresh_process(tmp_path):
    """The README's dry run, in a Python where ZeroMQ cannot be imported: one line, exit status 1."""
    argv = ["deploy", "--robot", "sim://127.0.0.1:5555", "--agent", "expert", "--max-steps", "60", "--dry-run"]
    code = f"import sys; sys.modules['zmq'] = None; from armworld.cli import main; sys.exit(main({argv!r}))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.splitlines() == [extra_line("deploy", "zmq", "pyzmq", "real")]


@pytest.mark.parametrize("module, argv", [
    ("cv2", ["calibrate", "board", "--out", "board.png"]),
    ("msgpack", ["robot-server", "--sim"]),
    ("zmq", ["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.5,0,0.2", "--dry-run"]),
])
def test_the_real_verbs_name_the_real_extra(module, argv, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # what an install without the extra sees
    monkeypatch.delitem(sys.modules, "armworld.envs.real.server", raising=False)  # imported again, without it
    line = refused(argv, capsys)
    assert line == extra_line(argv[0], module, EXTRA_PACKAGES[module], "real")
    assert list(tmp_path.iterdir()) == []


def test_vendor_drivers_and_cameras_name_their_extra(monkeypatch):
    from armworld.envs.real.drivers import import_vendor

    for module, extra, package in [("pyrealsense2", "realsense", "pyrealsense2"), ("franky", "franka", "franky-control"),
                                   ("rtde_control", "ur", "ur-rtde"), ("xarm", "xarm", "xarm-python-sdk")]:
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ImportError) as caught:
            import_vendor(f"{module}.wrapper" if module == "xarm" else module, extra)
        assert missing_extra(caught.value, "deploy") == extra_line("deploy", module, package, extra)[len("error: "):]


def test_a_missing_module_of_no_extra_keeps_its_traceback(monkeypatch):
    """A core dependency or armworld's own module missing is a broken install or a bug, not a refusal."""
    assert missing_extra(ModuleNotFoundError("No module named 'scipy'", name="scipy")) is None

    def broken(args):
        raise ModuleNotFoundError("No module named 'scipy'", name="scipy")

    monkeypatch.setattr("armworld.commands.real._deploy", broken)
    with pytest.raises(ModuleNotFoundError, match="scipy"):
        main(["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.5,0,0.2", "--dry-run"])
