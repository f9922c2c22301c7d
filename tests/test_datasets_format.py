"""The HDF5 trajectory format: round trip, commits, resume, bad input and the validator."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from datasets_helpers import ENV_ARGS, synthetic_episode

from armworld.datasets.hdf5 import (
    FORMAT_VERSION,
    REOPEN_EVERY,
    VERSION_ATTR,
    DatasetError,
    TrajectoryFile,
    TrajectoryWriter,
    validate,
)


def write(path, episodes, exist="error"):
    with TrajectoryWriter(path, ENV_ARGS, exist=exist) as writer:
        for episode in episodes:
            writer.append(episode)


def test_round_trip_every_field(tmp_path):
    path = tmp_path / "d.h5"
    episodes = [synthetic_episode(n, seed) for seed, n in enumerate([3, 5, 4])]
    write(path, episodes)
    with TrajectoryFile(path) as file:
        assert file.demos == ["demo_0", "demo_1", "demo_2"]
        assert file.env_args == ENV_ARGS
        for demo, original in zip(file.demos, episodes):
            read = file.episode(demo)
            for field in dataclasses.fields(original):
                a, b = getattr(original, field.name), getattr(read, field.name)
                if field.name == "obs":
                    assert a.keys() == b.keys()
                    for key in a:
                        assert a[key].dtype == b[key].dtype
                        np.testing.assert_array_equal(a[key], b[key])
                else:
                    np.testing.assert_array_equal(a, b)
            assert file.num_samples(demo) == original.num_samples
            np.testing.assert_array_equal(file.read(demo, "dones"), original.truncated.astype(np.uint8))
        # the robomimic view: total, env_args JSON, image chunks of one frame
        with h5py.File(path, "r") as raw:
            assert raw["data"].attrs["total"] == 3
            assert json.loads(raw["data"].attrs["env_args"])["env_name"] == ENV_ARGS["env_name"]
            assert raw["data/demo_0/obs/rgb_front"].chunks == (1, 32, 32, 3)
            assert raw["data/demo_0/obs/rgb_front"].compression is not None
    assert validate(path) == []


def test_split_is_deterministic_and_stable_under_appends(tmp_path):
    path = tmp_path / "d.h5"
    count = REOPEN_EVERY + 5  # the writer reopens the file on the way
    write(path, [synthetic_episode(2, s) for s in range(count)])
    valid = [f"demo_{i}" for i in range(9, count, 10)]
    with TrajectoryFile(path) as file:
        assert file.split("valid") == valid
        assert len(file.split("train")) == count - len(valid)
        assert file.split(None) == file.demos
        assert file.attrs(f"demo_{count - 1}")["seed"] == count - 1
        with h5py.File(path, "r") as raw:
            assert [n.decode() for n in raw["mask/valid"][()]] == valid
    assert validate(path) == []


def test_existing_file_needs_resume_or_overwrite(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, 0)])
    with pytest.raises(DatasetError, match="exists"):
        write(path, [synthetic_episode(2, 1)])
    write(path, [synthetic_episode(2, 1)], exist="resume")
    with TrajectoryFile(path) as file:
        assert file.total == 2 and file.attrs("demo_1")["seed"] == 1
    write(path, [synthetic_episode(2, 5)], exist="overwrite")
    with TrajectoryFile(path) as file:
        assert file.total == 1 and file.attrs("demo_0")["seed"] == 5


def test_resume_refuses_another_env(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, 0)])
    other = dict(ENV_ARGS, env_kwargs={"image_size": 64})
    with pytest.raises(DatasetError, match="different env"):
        TrajectoryWriter(path, other, exist="resume")


def test_uncommitted_data_is_invisible_and_dropped_on_resume(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, s) for s in range(2)])
    with h5py.File(path, "r+") as raw:  # what a kill between writing and committing leaves
        raw.copy("data/demo_1", "data/demo_2")
        raw.copy("data/demo_1", "data/pending")
        raw["mask/train"].resize((3,))
        raw["mask/train"][2] = "demo_2"
    with TrajectoryFile(path) as file:
        assert file.demos == ["demo_0", "demo_1"]
        assert file.split("train") == ["demo_0", "demo_1"]
        with pytest.raises(DatasetError, match="demo_2: no such committed demo"):
            file.group("demo_2")
    write(path, [synthetic_episode(3, 7)], exist="resume")
    with TrajectoryFile(path) as file:
        assert file.demos == ["demo_0", "demo_1", "demo_2"]
        assert file.attrs("demo_2")["seed"] == 7
    with h5py.File(path, "r") as raw:
        assert set(raw["data"]) == {"demo_0", "demo_1", "demo_2"}
    assert validate(path) == []


@pytest.mark.parametrize("make, problem", [
    (lambda raw, names: raw.create_dataset("mask/train", data=np.array(names, dtype="S")),  # robomimic-style
     r"'mask/train' cannot grow \(its maxshape is \(2,\), appending needs \(None,\)\)"),
    (lambda raw, names: raw.create_dataset("mask/train", data=np.array(names, dtype="S6"), maxshape=(None,)),
     r"'mask/train' holds \|S6 values \(appending needs variable-length strings\)"),
], ids=["fixed size", "fixed-length strings"])
def test_resume_refuses_masks_it_cannot_append_to_and_leaves_the_file(tmp_path, make, problem):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, s) for s in range(2)])
    with h5py.File(path, "r+") as raw:
        names = [n.decode() for n in raw["mask/train"][()]]
        del raw["mask/train"]
        make(raw, names)
        raw.copy("data/demo_1", "data/demo_2")  # an uncommitted leftover, which resume would delete first
    before = path.read_bytes()
    with pytest.raises(DatasetError, match=problem) as refused:
        write(path, [synthetic_episode(2, 9)], exist="resume")
    message = str(refused.value)
    assert message.startswith(f"{path}: cannot resume") and "\n" not in message
    assert path.read_bytes() == before
    assert not os.path.exists(f"{path}.partial")


def test_version_mismatch_is_named(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, 0)])
    with h5py.File(path, "r+") as raw:
        raw.attrs[VERSION_ATTR] = FORMAT_VERSION + 1
    with pytest.raises(DatasetError, match=f"format {FORMAT_VERSION + 1}, newer than"):
        TrajectoryFile(path)


@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage", "foreign"])
def test_bad_files_give_plain_errors(tmp_path, kind):
    path = tmp_path / "d.h5"
    if kind == "truncated":
        write(path, [synthetic_episode(4, 0)])
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "garbage":
        path.write_bytes(b"not hdf5 at all" * 100)
    elif kind == "foreign":
        with h5py.File(path, "w") as raw:
            raw.create_dataset("x", data=np.zeros(3))
    expected = {"missing": "no such file", "truncated": "not a readable HDF5", "garbage": "not a readable HDF5",
                "foreign": "not an armworld trajectory file"}[kind]
    with pytest.raises(DatasetError, match=expected) as error:
        TrajectoryFile(path)
    assert str(path) in str(error.value)
    assert len(validate(path)) == 1 and expected in validate(path)[0]


def plant(path, fault):
    with h5py.File(path, "r+") as raw:
        demo = raw["data/demo_1"]
        if fault == "nan_action":
            actions = demo["actions"][()]
            actions[1, 2] = np.nan
            demo["actions"][...] = actions
        elif fault == "missing_key":
            del demo["rewards"]
        elif fault == "short_obs":
            del demo["obs/proprio"]
            demo.create_dataset("obs/proprio", data=np.zeros((2, 7), np.float32))
        elif fault == "wrong_dtype":
            del demo["obs/rgb_front"]
            demo.create_dataset("obs/rgb_front", data=np.zeros((5, 32, 32, 3), np.float32))
        elif fault == "image_size":
            del demo["obs/rgb_wrist"]
            demo.create_dataset("obs/rgb_wrist", data=np.zeros((5, 16, 16, 3), np.uint8))
        elif fault == "dones":
            demo["dones"][...] = 0
        elif fault == "action_range":
            demo["actions"][0] = 3.0
        elif fault == "mask":
            raw["mask/valid"].resize((1,))
            raw["mask/valid"][0] = "demo_0"


@pytest.mark.parametrize(
    "fault, message",
    [
        ("nan_action", "demo_1/actions: 1 non-finite"),
        ("missing_key", "demo_1/rewards: missing"),
        ("short_obs", "demo_1/obs/proprio: 2 rows, expected 5"),
        ("wrong_dtype", "demo_1/obs/rgb_front: float32"),
        ("image_size", "demo_1/obs/rgb_wrist: rows of (16, 16, 3) uint8, other demos have (32, 32, 3)"),
        ("dones", "demo_1/dones: differs"),
        ("action_range", "demo_1/actions: values outside"),
        ("mask", "demos in both train and valid: ['demo_0']"),
    ],
)
def test_validator_finds_planted_faults(tmp_path, fault, message):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(4, s) for s in range(3)])
    assert validate(path) == []
    plant(path, fault)
    problems = validate(path)
    assert any(message in p for p in problems), problems
    assert all(p.startswith(str(path)) for p in problems)


def test_reading_a_missing_key_names_file_demo_and_key(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, 0)])
    with TrajectoryFile(path) as file:
        with pytest.raises(DatasetError, match=r"d\.h5: demo_0: missing 'obs/rgb_top'"):
            file.read("demo_0", "obs/rgb_top")


def test_an_unknown_exist_value_is_refused_and_leaves_the_file(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, s) for s in range(2)])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="exist must be one of error, resume, overwrite, got 'append'"):
        TrajectoryWriter(path, ENV_ARGS, exist="append")
    assert path.read_bytes() == before


def test_overwrite_keeps_the_old_file_until_the_first_commit(tmp_path):
    path = tmp_path / "d.h5"
    partial = tmp_path / "d.h5.partial"
    write(path, [synthetic_episode(2, s) for s in range(2)])
    with TrajectoryWriter(path, ENV_ARGS, exist="overwrite") as writer:
        with TrajectoryFile(path) as file:
            assert file.total == 2  # untouched while nothing new is committed
        assert partial.exists()
        writer.append(synthetic_episode(3, 7))
        assert not partial.exists()
        with h5py.File(path, "r") as raw:  # the new file is in place, holding the committed episode
            assert raw["data"].attrs["total"] == 1
        writer.append(synthetic_episode(3, 8))
    with TrajectoryFile(path) as file:
        assert file.total == 2 and [file.attrs(d)["seed"] for d in file.demos] == [7, 8]
    assert validate(path) == []


def test_a_failure_before_the_first_commit_leaves_the_path_as_it_was(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, s) for s in range(2)])
    before = path.read_bytes()
    new = tmp_path / "new" / "n.h5"
    for target, exist in [(path, "overwrite"), (new, "error"), (new, "resume")]:
        with pytest.raises(RuntimeError, match="policy crashed"):
            with TrajectoryWriter(target, ENV_ARGS, exist=exist):
                raise RuntimeError("policy crashed")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["d.h5"]
    with TrajectoryWriter(new, ENV_ARGS):  # closed without error: an empty file is what was asked for
        pass
    with TrajectoryFile(new) as file:
        assert file.total == 0
    assert not (tmp_path / "new" / "n.h5.partial").exists()


def test_overwrite_refuses_a_file_another_process_is_writing(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(2, 0)])
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import h5py, time; f = h5py.File({str(path)!r}, 'r+'); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DatasetError, match="open for writing by another process"):
            TrajectoryWriter(path, ENV_ARGS, exist="overwrite")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not (tmp_path / "d.h5.partial").exists()
    with TrajectoryFile(path) as file:
        assert file.total == 1


def test_a_second_writer_leaves_a_new_file_being_written_alone(tmp_path):
    path = tmp_path / "d.h5"
    holder = subprocess.Popen(  # a collection that has not committed its first episode yet
        [sys.executable, "-c", f"import sys, time; sys.path.insert(0, {os.path.dirname(__file__)!r}); from armworld.datasets.hdf5 import TrajectoryWriter; "
         f"from datasets_helpers import ENV_ARGS; w = TrajectoryWriter({str(path)!r}, ENV_ARGS); print('open', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        partial = (tmp_path / "d.h5.partial").read_bytes()
        for exist in ("error", "overwrite", "resume"):
            with pytest.raises(DatasetError, match="is being written by another process"):
                TrajectoryWriter(path, ENV_ARGS, exist=exist)
        assert (tmp_path / "d.h5.partial").read_bytes() == partial and not path.exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    write(path, [synthetic_episode(2, 0)])  # a partial file its killed writer left is replaced
    assert validate(path) == [] and not (tmp_path / "d.h5.partial").exists()


def test_overwrite_through_a_symbolic_link_replaces_the_file_it_names(tmp_path):
    store, link = tmp_path / "store" / "real.h5", tmp_path / "link.h5"
    write(store, [synthetic_episode(2, 0)])
    link.symlink_to(store)
    with TrajectoryWriter(link, ENV_ARGS, exist="overwrite") as writer:
        for seed in (1, 2):
            writer.append(synthetic_episode(2, seed))
    assert link.is_symlink()
    with TrajectoryFile(store) as file:
        assert file.total == 2


def test_rows_out_of_range_raise_instead_of_shortening(tmp_path):
    path = tmp_path / "d.h5"
    write(path, [synthetic_episode(3, 0)])
    with TrajectoryFile(path) as file:
        with pytest.raises(DatasetError, match=r"d\.h5: demo_0: rows 100:110 of 'actions' are out of range \(it has 3 rows\)"):
            file.read("demo_0", "actions", slice(100, 110))
        with pytest.raises(DatasetError, match="rows 1:5 of 'obs/proprio'"):
            file.read("demo_0", "obs/proprio", slice(1, 5))
        with pytest.raises(DatasetError, match="rows -5: of 'actions'"):
            file.read("demo_0", "actions", slice(-5, None))
        assert file.read("demo_0", "obs/proprio", slice(1, 4)).shape == (3, 7)
        assert file.read("demo_0", "actions", slice(-1, None)).shape == (1, 7)
