"""The data verbs of the ``armworld`` CLI, run end to end on a tiny collection."""

from __future__ import annotations

import json

import h5py
import imageio.v3 as iio
import numpy as np
import pytest

from armworld.cli import main

COLLECT = ["collect", "--env", "armworld/FrankaReach-v0", "--policy", "mixed", "--noise", "0.1", "--episodes", "3",
           "--obs-mode", "pixels_state", "--image-size", "32", "--cameras", "front,wrist", "--max-steps", "4",
           "--seed", "11", "--no-progress"]


@pytest.fixture
def collected(tmp_path, capsys):
    path = tmp_path / "d.h5"
    assert main([*COLLECT, "--out", str(path)]) == 0
    assert "3 new episodes (3 in file), 12 frames" in capsys.readouterr().out
    return path


def test_collect_refuses_an_existing_file_then_resumes(collected, capsys):
    assert main([*COLLECT, "--out", str(collected)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main([*COLLECT[:8], "5", *COLLECT[9:], "--out", str(collected), "--resume"]) == 0
    assert "2 new episodes (5 in file)" in capsys.readouterr().out
    before = collected.read_bytes()
    assert main([*COLLECT[:8], "5", *COLLECT[9:], "--out", str(collected), "--resume"]) == 0  # a rerun of a finished line
    assert "complete, nothing to collect (5 episodes in file" in capsys.readouterr().out
    assert collected.read_bytes() == before
    assert main([*COLLECT, "--out", str(collected), "--overwrite"]) == 0
    assert "(3 in file)" in capsys.readouterr().out


def test_info_validate_video_replay(collected, tmp_path, capsys):
    assert main(["dataset", "info", str(collected)]) == 0
    out = capsys.readouterr().out
    assert "3 episodes, 12 steps" in out and "obs/rgb_wrist: uint8 [32, 32, 3]" in out and "mixed(noise=0.1" in out
    assert main(["dataset", "validate", str(collected)]) == 0
    video = tmp_path / "demo1.mp4"
    assert main(["dataset", "video", str(collected), "--demo", "1", "--out", str(video)]) == 0
    frames = iio.imread(video)
    assert frames.shape == (5, 32, 64, 3)  # N + 1 frames, front and wrist side by side
    assert main(["dataset", "replay", str(collected), "--demo", "2"]) == 0
    assert "states match" in capsys.readouterr().out
    assert main(["dataset", "video", str(collected), "--demo", "1", "--out", str(tmp_path / "demo1")]) == 1
    assert "end the file name with one of ['.mp4', '.gif']" in capsys.readouterr().err
    assert main(["dataset", "video", str(collected), "--demo", "1", "--out", str(tmp_path)]) == 1
    assert "is a directory; the output is a file" in capsys.readouterr().err
    gif = tmp_path / "demo1.gif"
    assert main(["dataset", "video", str(collected), "--demo", "1", "--out", str(gif)]) == 0
    assert iio.imread(gif).shape[0] == 5


def test_collect_draws_the_randomised_scene_the_file_records_and_replays(collected, tmp_path, capsys):
    randomised = tmp_path / "r.h5"
    assert main([*COLLECT, "--randomization", "default", "--out", str(randomised)]) == 0
    with h5py.File(collected, "r") as plain, h5py.File(randomised, "r") as drawn:
        env_args = json.loads(drawn["data"].attrs["env_args"])
        assert env_args["env_kwargs"]["randomization"] == "default"
        assert json.loads(plain["data"].attrs["env_args"])["env_kwargs"]["randomization"] is None
        first_plain, first_drawn = plain["data/demo_0/obs/rgb_front"][0], drawn["data/demo_0/obs/rgb_front"][0]
        assert first_plain.shape == first_drawn.shape and not np.array_equal(first_plain, first_drawn)
    capsys.readouterr()
    assert main(["dataset", "replay", str(randomised), "--demo", "1"]) == 0  # the same scene is drawn again
    assert "states match" in capsys.readouterr().out


def test_problems_exit_non_zero_with_plain_messages(collected, tmp_path, capsys):
    with h5py.File(collected, "r+") as raw:
        raw["data/demo_2/states"][1, 0] = np.inf
    assert main(["dataset", "validate", str(collected)]) == 1
    err = capsys.readouterr().err
    assert "1 problem(s)" in err and "demo_2/states: 1 non-finite values" in err
    assert main(["dataset", "replay", str(collected), "--demo", "7"]) == 1
    assert "demo_7: no such committed demo" in capsys.readouterr().err
    with h5py.File(collected, "r+") as raw:  # as the real-arm recorder writes it
        raw["data/demo_1"].attrs["seed"] = -1
    assert main(["dataset", "replay", str(collected), "--demo", "1"]) == 1
    err = capsys.readouterr().err
    assert "demo_1 has no reset seed (-1): it cannot be replayed" in err and "Traceback" not in err
    truncated = tmp_path / "t.h5"
    truncated.write_bytes(collected.read_bytes()[:5000])
    for verb in (["info"], ["validate"], ["video", "--demo", "0", "--out", str(tmp_path / "v.mp4")]):
        assert main(["dataset", verb[0], str(truncated), *verb[1:]]) == 1
        err = capsys.readouterr().err
        assert "not a readable HDF5 file" in err and "Traceback" not in err
