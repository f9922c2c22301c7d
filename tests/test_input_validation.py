"""Inputs are checked before work starts and named when refused: outputs never replace an
input, a refused command changes no file, and malformed files (HDF5 layouts, replayed
actions, hyperparameters, goal images, simulator states) are refused with the file, the key
and what was expected."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from pathlib import Path

import cv2
import gymnasium
import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import armworld  # noqa: F401  (registers the envs)
from armworld.cli import main
from armworld.datasets.hdf5 import DatasetError, TrajectoryFile, TrajectoryWriter
from datasets_helpers import ENV_ARGS, synthetic_episode
from test_cli_errors import refused

COLLECT = ["collect", "--env", "armworld/FrankaReach-v0", "--obs-mode", "state", "--max-steps", "3", "--no-progress"]


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("synthetic") / "d.h5"
    with TrajectoryWriter(path, ENV_ARGS) as writer:
        for seed in range(2):
            writer.append(synthetic_episode(3, seed))
    return path


def test_dataset_video_never_writes_over_its_dataset(synthetic, tmp_path, capsys):
    dataset = tmp_path / "d.h5"
    shutil.copy(synthetic, dataset)
    link = tmp_path / "link.mp4"
    link.symlink_to(dataset)
    before = snapshot(dataset)
    for out in (dataset, link):
        line = refused(["dataset", "video", str(dataset), "--demo", "0", "--out", str(out)], capsys)
        assert f"the output {out} is the input {dataset}" in line
    assert snapshot(dataset) == before


def test_outputs_in_a_file_or_an_unwritable_folder_are_refused_before_work(synthetic, tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    line = refused(["dataset", "video", str(synthetic), "--demo", "0", "--out", str(not_a_folder / "v.mp4")], capsys)
    assert f"{not_a_folder} is a file, not a directory" in line
    line = refused(["eval", "--agent", "random", "--env", "FrankaReach-v0", "--out", str(not_a_folder)], capsys)
    assert "is a file; the output is a directory" in line
    assert "is the input" in refused(["compare", str(tmp_path), "--out", str(tmp_path)], capsys)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        assert "is not writable" in refused(["rollout", "--out", str(locked / "r.mp4")], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["file", *(["locked"] if os.geteuid() else [])])


def test_training_scoring_and_real_arm_verbs_never_write_into_their_inputs(synthetic, tmp_path, capsys):
    run, image, poses = tmp_path / "run", tmp_path / "board.png", tmp_path / "poses.npy"
    run.mkdir()
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    np.save(poses, np.eye(4)[None])
    before = [snapshot(path) for path in (synthetic, image, poses)]
    data = ["--data", str(synthetic)]
    for argv, given in [
        (["pretrain", *data, "--out", str(synthetic)], synthetic),
        (["train", *data, "--preset", "tiny", "--out", str(synthetic)], synthetic),
        (["train", *data, "--init", str(run), "--out", str(run)], run),
        (["train", *data, "--encoder", str(run), "--out", str(run)], run),
        (["score", "--repr", f"encoder:{run}", "--out", str(run)], run),
        (["calibrate", "hand-eye", "--images", str(image), "--poses", str(poses), "--mount", "wrist", "--fovy", "60",
          "--out", str(poses)], poses),
        (["deploy", "--robot", "mock", "--agent", "expert", "--goal-pos", "0.6,0.1,0.2", "--goal", str(image),
          "--record", str(image), "--yes"], image),
    ]:
        assert f"is the input {given}" in refused(argv, capsys)
    assert [snapshot(path) for path in (synthetic, image, poses)] == before and list(run.iterdir()) == []


def test_outputs_holding_an_input_run_directory_are_refused(synthetic, tmp_path, capsys):
    runs = tmp_path / "runs"
    run, checkpoint = runs / "wm", runs / "wm" / "step-000100"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.json").write_text("{}")
    link = tmp_path / "link"
    link.symlink_to(run)
    data = ["--data", str(synthetic)]
    tree = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for argv, out, given in [
        (["score", "--repr", f"wm:{checkpoint}", "--out", str(run)], run, checkpoint),
        (["train", *data, "--init", str(checkpoint), "--out", str(run)], run, checkpoint),
        (["train", *data, "--init", str(checkpoint), "--out", str(runs)], runs, checkpoint),
        (["train", *data, "--init", str(link / "step-000100"), "--out", str(run)], run, link / "step-000100"),
        (["compare", str(run), "--out", str(tmp_path)], tmp_path, run),
    ]:
        line = refused(argv, capsys)
        assert f"the output {out} is a directory holding the input {given}" in line and "write the output somewhere else" in line
    assert "(" in refused(["train", *data, "--init", str(link / "step-000100"), "--out", str(run)], capsys)  # names what links resolve to
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == tree  # nothing written


def test_outputs_beside_or_inside_an_input_run_or_holding_only_input_files_are_accepted(tmp_path):
    from armworld.commands import check_output

    run = tmp_path / "wm"
    run.mkdir()
    (tmp_path / "d.h5").write_bytes(b"")
    check_output(tmp_path / "wm-eval", run, folder=True)  # a sibling whose name starts like the run
    check_output(tmp_path / "results", run, folder=True)
    check_output(run / "eval", run, folder=True)  # where compare reads an RL run's evaluation
    check_output(tmp_path, tmp_path / "d.h5", folder=True)  # a folder holding an input file is fine
    check_output(tmp_path / "v.mp4", tmp_path / "d.h5")


def test_training_on_less_than_one_batch_is_refused_before_the_run_folder_is_written(synthetic, tmp_path, capsys):
    run = tmp_path / "run"
    line = refused(["pretrain", "--data", str(synthetic), "--out", str(run), "--steps", "1", "--device", "cpu"], capsys)
    assert "the training data holds 0 clips, fewer than one batch of 8 x 1 processes" in line  # 4 frames, clips of 8
    assert not run.exists()


def test_a_refused_resume_leaves_the_file_byte_for_byte(tmp_path, capsys):
    path = tmp_path / "c.h5"
    assert main([*COLLECT, "--episodes", "2", "--seed", "3", "--out", str(path)]) == 0
    capsys.readouterr()
    before = snapshot(path)
    for changed, message in [
        (["--seed", "4"], "cannot resume, episode 0 was collected with {'seed': 3"),
        (["--seed", "3", "--max-steps", "4"], "cannot resume, the file was collected with a different env"),
    ]:
        argv = [*COLLECT, "--episodes", "3", *changed, "--out", str(path), "--resume"]
        assert message in refused(argv, capsys)
        assert snapshot(path) == before
    line = refused([*COLLECT, "--episodes", "3", "--seed", "3", "--out", str(path)], capsys)  # neither flag
    assert "exists; append to it with exist='resume' (--resume) or replace it with exist='overwrite' (--overwrite)" in line
    assert snapshot(path) == before


def corrupt(source: Path, folder: Path, edit) -> Path:
    path = folder / "corrupt.h5"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as file:
        edit(file)
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(total=st.one_of(st.integers(min_value=3, max_value=2**63 - 1), st.integers(min_value=-(2**63), max_value=-1), st.floats(), st.text(st.characters(exclude_characters="\x00"), max_size=5)))  # HDF5 strings hold no NUL
def test_a_total_attribute_out_of_range_or_of_another_type_is_named(synthetic, tmp_path, total):
    path = corrupt(synthetic, tmp_path, lambda f: f["data"].attrs.__setitem__("total", total))
    with pytest.raises(DatasetError, match=r"attribute data/total is .*, expected the number of committed episodes, an integer in 0\.\.2"):
        TrajectoryFile(path)


LAYOUTS = {  # another layout, and what the message names
    "env_args a list": (lambda f: f["data"].attrs.__setitem__("env_args", "[1, 2]"), "data/env_args is a JSON list, expected an object"),
    "episode an array": (lambda f: (f["data"].__delitem__("demo_1"), f["data"].create_dataset("demo_1", data=np.zeros(3))),
                         "'data/demo_1' is a float64 array of shape (3,), expected a group"),
    "obs an array": (lambda f: (f["data/demo_0"].__delitem__("obs"), f["data/demo_0"].create_dataset("obs", data=np.zeros(3))),
                     "demo_0: 'obs' is a float64 array of shape (3,), expected a group"),
    "mask a group": (lambda f: (f["mask"].__delitem__("train"), f["mask"].create_group("train")), "'mask/train' is a group, expected a list of demo names"),
    "num_samples text": (lambda f: f["data/demo_0"].attrs.__setitem__("num_samples", "x"), "demo_0: attribute 'num_samples' is 'x', expected an integer"),
    "version text": (lambda f: f.attrs.__setitem__("armworld_format_version", "one"), "attribute 'armworld_format_version' is 'one', expected an integer"),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_other_layouts_are_named_by_every_dataset_verb(synthetic, tmp_path, layout, capsys):
    edit, message = LAYOUTS[layout]
    path = corrupt(synthetic, tmp_path, edit)
    assert message in refused(["dataset", "info", str(path)], capsys)
    assert main(["dataset", "validate", str(path)]) == 1 and message in capsys.readouterr().err


def test_a_folder_given_as_a_dataset_is_named_in_one_line(tmp_path, capsys):
    for argv in (["dataset", "info", str(tmp_path)], ["dataset", "replay", str(tmp_path), "--demo", "0"]):
        assert f"{tmp_path}: is a directory, expected an HDF5 file" in refused(argv, capsys)


def test_images_of_another_shape_are_refused_by_video(synthetic, tmp_path, capsys):
    def flat_images(file):
        del file["data/demo_0/obs/rgb_front"]
        file["data/demo_0/obs"].create_dataset("rgb_front", data=np.zeros((4, 3), np.uint8))

    path = corrupt(synthetic, tmp_path, flat_images)
    line = refused(["dataset", "video", str(path), "--demo", "0", "--out", str(tmp_path / "v.gif")], capsys)
    assert "demo_0: 'obs/rgb_front' is a uint8 array of shape (4, 3), expected uint8 images [N+1, H, W, 3]" in line
    assert not (tmp_path / "v.gif").exists()


@pytest.mark.parametrize("key", ["actions", "states"])
def test_replay_refuses_non_finite_values_before_simulating(tmp_path, key, capsys):
    episode = synthetic_episode(3, 0)
    getattr(episode, key)[1, 2] = np.nan
    path = tmp_path / "d.h5"
    with TrajectoryWriter(path, ENV_ARGS) as writer:
        writer.append(dataclasses.replace(episode))
    line = refused(["dataset", "replay", str(path), "--demo", "0"], capsys)
    assert f"demo_0: '{key}' holds non-finite values in 1 row(s), the first row 1; it cannot be replayed" in line


@settings(max_examples=30, deadline=None)
@given(
    key=st.sampled_from(["gamma", "batch_size", "learning_rate", "buffer_size", "tau", "her", "policy_kwargs"]),
    value=st.one_of(st.text(max_size=4), st.integers(max_value=0), st.floats(min_value=1.5), st.lists(st.integers(), max_size=2)),
)
def test_malformed_hyperparameters_are_named(key, value):
    from armworld.agents.rl import load_hyperparams

    assume(not (key == "learning_rate" and isinstance(value, float) and math.isfinite(value)))  # any finite rate > 0 is valid
    assume(not (key == "gamma" and value == 0))  # a discount of 0 (myopic) is valid
    with pytest.raises(ValueError, match=rf"hyperparameter override \(-p\): {key}="):
        load_hyperparams("sac", "armworld/FrankaReach-v0", overrides={key: value})


def test_rl_train_with_a_bad_value_writes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    base = ["rl", "train", "--algo", "sac", "--env", "FrankaReach-v0", "--out", str(run), "-p"]
    assert "gamma='abc', expected a number >= 0 and <= 1" in refused([*base, "gamma=abc"], capsys)
    assert "sac takes no hyperparameter 'clip_range'" in refused([*base, "clip_range=0.2"], capsys)
    line = refused([*base, "policy_kwargs={'net_arch': 'x'}"], capsys)  # SB3's own assert, not a traceback
    assert "sac cannot be built from these hyperparameters: Error: the net_arch can only contain" in line
    assert not run.exists()


def test_goal_images_stored_with_16_bits_per_channel_are_refused(tmp_path):
    from armworld.agents.world_model_agent import GoalImageError, load_goal_image

    deep, plain = tmp_path / "deep.png", tmp_path / "plain.png"
    image = np.random.default_rng(0).integers(0, 2**16, (16, 16, 3), dtype=np.uint16)
    cv2.imwrite(str(deep), image)
    cv2.imwrite(str(plain), (image >> 8).astype(np.uint8))
    with pytest.raises(GoalImageError, match=r"deep.png has 16 bits per channel \(RGB;16B\); save it as an 8-bit RGB image"):
        load_goal_image(deep, 16)
    assert load_goal_image(plain, 16).dtype == np.uint8


@pytest.fixture(scope="module")
def reach():
    env = gymnasium.make("armworld/FrankaReach-v0")
    env.reset(seed=0)
    yield env.unwrapped
    env.close()


@settings(max_examples=20, deadline=None)
@given(index=st.integers(min_value=0, max_value=10**6), bad=st.sampled_from([np.nan, np.inf, -np.inf]))
def test_set_sim_state_refuses_non_finite_values_and_keeps_the_state(reach, index, bad):
    state = reach.get_sim_state()
    corrupted = state.copy()
    corrupted[index % len(state)] = bad
    with pytest.raises(ValueError, match=rf"non-finite value\(s\), the first at index {index % len(state)}"):
        reach.set_sim_state(corrupted)
    np.testing.assert_array_equal(reach.get_sim_state(), state)


def test_eval_refuses_bad_env_kwargs_before_the_progress_bar_starts(tmp_path, capsys):
    eval_reach = ["eval", "--agent", "random", "--env", "FrankaReach-v0", "--episodes", "1", "--out", str(tmp_path / "r")]
    line = refused([*eval_reach, "--env-kwargs", '{"image_size": -3}'], capsys)  # one line: no progress bar before it
    assert "image_size and render_size must be within 8..640 pixels, got -3" in line
    assert "unknown env argument(s) ['bogus']" in refused([*eval_reach, "--env-kwargs", '{"bogus": 1}'], capsys)
    assert list(tmp_path.iterdir()) == []


def test_calibrate_refuses_an_output_in_a_missing_folder_before_any_work(tmp_path, capsys):
    """Blank images would fail the board detection: the missing folder is named first, and nothing is written."""
    blank, poses = tmp_path / "blank.png", tmp_path / "poses.npy"
    cv2.imwrite(str(blank), np.full((64, 64, 3), 200, np.uint8))
    np.save(poses, np.stack([np.eye(4)] * 3))
    out = tmp_path / "missing" / "hand_eye.yaml"
    line = refused(["calibrate", "--squares", "5x7", "--square-mm", "40", "--marker-mm", "30", "hand-eye",
                    "--images", *[str(blank)] * 3, "--poses", str(poses), "--mount", "wrist", "--fovy", "60",
                    "--out", str(out)], capsys)
    assert f"cannot write {out}: the folder {out.parent} does not exist" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.png", "poses.npy"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("env_kwargs", [1, 2], "env_args['env_kwargs'] is [1, 2] (a JSON array), expected a JSON object of env arguments"),
    ("env_kwargs", "image_size=32", 'env_args[\'env_kwargs\'] is "image_size=32" (a JSON string), expected a JSON object'),
    ("env_kwargs", None, "env_args['env_kwargs'] is null (a JSON null), expected a JSON object"),
    ("env_name", 7, "env_args['env_name'] is 7 (a JSON number), expected a string, the env id"),
    ("env_name", {"id": "armworld/FrankaPush-v0"}, "env_args['env_name'] is {\"id\": \"armworld/FrankaPush-v0\"} (a JSON object), expected a string"),
])
def test_validate_names_env_args_keys_of_another_type(synthetic, tmp_path, key, value, message, capsys):
    env_args = json.dumps({**ENV_ARGS, key: value})
    path = corrupt(synthetic, tmp_path, lambda f: f["data"].attrs.__setitem__("env_args", env_args))
    assert main(["dataset", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: {message}" in err and "1 problem(s)" in err, err
