"""LeRobotDataset v3 both ways: export, the round trip into training clips, key maps, errors, and
lerobot's own reader on armworld's export (where lerobot is installed)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="LeRobot datasets need pyarrow: pip install 'armworld[lerobot]'")
pytest.importorskip("av", reason="LeRobot datasets need PyAV: pip install 'armworld[lerobot]'")

import pyarrow.parquet as pq  # noqa: E402
from datasets_helpers import ENV_ARGS, synthetic_episode  # noqa: E402

from armworld.cli import main  # noqa: E402
from armworld.datasets.clips import ClipDataset, FrameDataset  # noqa: E402
from armworld.datasets.hdf5 import DatasetError, TrajectoryFile, TrajectoryWriter  # noqa: E402
from armworld.datasets.lerobot import (  # noqa: E402
    KeyMap,
    LeRobotReader,
    _VideoWriter,
    describe_lerobot,
    export_lerobot,
    key_map,
)
from armworld.worldmodel.checkpoint import describe_data  # noqa: E402

FRAME_MAE = 6.0  # mean absolute error (of 255) H.264 at crf 18 may leave on these 32x32 frames


def rendered_episode(n: int, seed: int, size: int = 32, action_dim: int = 7):
    """A synthetic episode whose frames look like renders (smooth shading, a moving block), not noise."""
    episode = synthetic_episode(n, seed, image_size=size, action_dim=action_dim)
    yy, xx = np.mgrid[0:size, 0:size]
    for camera, tint in (("rgb_front", 0), ("rgb_wrist", 60)):
        frames = np.empty((n + 1, size, size, 3), dtype=np.uint8)
        for t in range(n + 1):
            frames[t, ..., 0] = 40 + 4 * xx + tint
            frames[t, ..., 1] = 60 + 3 * yy + 5 * seed
            frames[t, ..., 2] = 120 + 2 * t
            frames[t, 8 + seed % 4: 14 + seed % 4, 4 + 2 * t: 10 + 2 * t] = (220, 40, 40)
        episode.obs[camera] = frames
    return episode


def write_file(path, episodes: int = 11, env_args=ENV_ARGS, action_dim: int = 7):
    with TrajectoryWriter(path, env_args, exist="overwrite") as writer:
        for i in range(episodes):
            writer.append(rendered_episode(4 + i % 3, i, action_dim=action_dim))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lerobot")
    source = write_file(folder / "push.h5")
    summary = export_lerobot(source, folder / "push_lerobot")
    return source, folder / "push_lerobot", summary


def test_round_trip_gives_the_hdf5_clips(exported):
    source, out, _ = exported
    for split in ("train", "valid"):
        for action, skip in (("delta", 1), ("command", 2)):
            kwargs = dict(clip_len=3, frame_skip=skip, action=action, split=split, camera="front")
            original, read_back = ClipDataset([str(source)], **kwargs), ClipDataset([str(out)], **kwargs)
            assert len(original) == len(read_back) > 0
            errors = []
            for i in range(len(original)):
                a, b = original[i], read_back[i]
                assert np.array_equal(a["proprio"].numpy(), b["proprio"].numpy())
                assert np.array_equal(a["actions"].numpy(), b["actions"].numpy())
                assert a["frames"].shape == b["frames"].shape
                errors.append(np.abs(a["frames"].numpy().astype(int) - b["frames"].numpy()).mean())
            assert np.mean(errors) < FRAME_MAE, np.mean(errors)
    frames = FrameDataset([str(out)], clip_len=4, split=None, camera="wrist")
    assert len(frames) == len(FrameDataset([str(source)], clip_len=4, split=None, camera="wrist"))
    preloaded = ClipDataset([str(out)], clip_len=3, split=None, preload=True)
    assert np.array_equal(preloaded[5]["frames"].numpy(), ClipDataset([str(out)], clip_len=3, split=None)[5]["frames"].numpy())


def test_export_layout_matches_lerobot_v3(exported):
    source, out, summary = exported
    info = json.loads((out / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and info["robot_type"] == "franka"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    assert info["features"]["observation.images.front"]["shape"] == [32, 32, 3]
    assert info["features"]["observation.state"] == {"dtype": "float32", "shape": [7], "names": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]}
    with TrajectoryFile(source) as file:
        lengths = [file.num_samples(d) + 1 for d in file.demos]
        first = file.episode(file.demos[0])
    assert info["total_episodes"] == summary.episodes == 11 and info["total_frames"] == summary.frames == sum(lengths)

    data = pq.read_table(out / "data/chunk-000/file-000.parquet").to_pydict()
    n = first.num_samples
    assert data["index"] == list(range(sum(lengths))) and data["frame_index"][: n + 1] == list(range(n + 1))
    assert np.array_equal(np.array(data["observation.state"][: n + 1], np.float32), first.obs["proprio"].astype(np.float32))
    assert np.array_equal(np.array(data["action"][:n], np.float32), first.actions)
    assert data["action"][n] == data["action"][n - 1]  # the final observation repeats the last action
    assert data["next.done"][n] and data["next.reward"][n] == 0.0
    assert np.allclose(data["timestamp"][: n + 1], np.arange(n + 1) / 10)

    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert episodes["length"] == lengths and episodes["tasks"][0] == ["push the cube to the goal position"]
    assert episodes["dataset_from_index"][1] == episodes["dataset_to_index"][0] == lengths[0]
    assert episodes["videos/observation.images.front/from_timestamp"][1] == pytest.approx(lengths[0] / 10)
    assert len(episodes["stats/observation.images.front/mean"][0]) == 3  # [3, 1, 1], LeRobot's image stats
    tasks = pq.read_table(out / "meta/tasks.parquet").to_pydict()
    assert tasks == {"task_index": [0], "__index_level_0__": ["push the cube to the goal position"]}
    stats = json.loads((out / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [sum(lengths)]
    assert set(stats["action"]) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}


def test_real_arm_recordings_export_the_same_way(tmp_path):
    env_args = {"env_name": "real:panda", "type": 2, "max_episode_steps": None,
                "env_kwargs": {"task": "stack", "action_dim": 4, "image_size": 32, "cameras": ["front", "wrist"]}}
    source = write_file(tmp_path / "real.h5", episodes=2, env_args=env_args, action_dim=4)
    export_lerobot(source, tmp_path / "real")
    info = json.loads((tmp_path / "real/meta/info.json").read_text())
    assert info["robot_type"] == "panda" and info["features"]["action"]["names"] == ["x", "y", "z", "gripper"]
    assert pq.read_table(tmp_path / "real/meta/tasks.parquet").column("__index_level_0__").to_pylist() == ["stack the cube on the other cube"]
    kwargs = dict(clip_len=2, action="command", split=None)
    a, b = ClipDataset([str(source)], **kwargs)[3], ClipDataset([str(tmp_path / "real")], **kwargs)[3]
    assert np.array_equal(a["actions"].numpy(), b["actions"].numpy())


def test_export_refuses_an_existing_directory_and_leaves_nothing_partial(exported, tmp_path, monkeypatch):
    source, _, _ = exported
    out = tmp_path / "data"
    export_lerobot(source, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(DatasetError, match="exists; replace it with overwrite=True"):
        export_lerobot(source, out)

    def broken(self, frames):
        raise OSError("disk full")

    monkeypatch.setattr(_VideoWriter, "write", broken)
    with pytest.raises(OSError, match="disk full"):
        export_lerobot(source, out, overwrite=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # the old dataset is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no partial directory left
    with pytest.raises(DatasetError, match="no such file"):
        export_lerobot(tmp_path / "missing.h5", tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_cli_export_and_info_read_both_formats(exported, tmp_path, capsys):
    source, _, _ = exported
    out = tmp_path / "cli"
    assert main(["dataset", "export", "--format", "lerobot", str(source), "--out", str(out), "--fps", "15",
                 "--task", "push it"]) == 0
    assert "11 episodes" in capsys.readouterr().out
    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "LeRobotDataset v3.0, 11 episodes" in text and "15 fps" in text and "push it" in text
    assert "train 10, valid 1" in text and "observation.images.wrist: video [32, 32, 3]" in text
    assert main(["dataset", "info", str(source)]) == 0
    assert "11 episodes" in capsys.readouterr().out
    assert main(["dataset", "export", "--format", "lerobot", str(source), "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["dataset", "export", "--format", "lerobot", str(source), "--out", str(out), "--overwrite"]) == 0


def test_key_maps_rename_cameras_and_refuse_what_is_not_there(exported, tmp_path):
    _, out, _ = exported
    mapping = tmp_path / "keys.json"
    mapping.write_text(json.dumps({"cameras": {"main": "observation.images.front"}, "proprio": ["observation.state"], "action": None}))
    clips = ClipDataset([str(out)], clip_len=2, split=None, camera="main", lerobot_keys=str(mapping))
    assert np.array_equal(clips[0]["proprio"].numpy(), ClipDataset([str(out)], clip_len=2, split=None)[0]["proprio"].numpy())
    with pytest.raises(DatasetError, match="reads no action feature"):
        ClipDataset([str(out)], clip_len=2, split=None, camera="main", action="command", lerobot_keys=str(mapping))
    with pytest.raises(DatasetError, match=r"no video feature observation.images.exterior_1_left, .*pick another key map"):
        ClipDataset([str(out)], clip_len=2, lerobot_keys="droid")
    with pytest.raises(DatasetError, match="missing 'obs/rgb_top' \\(cameras: front, wrist\\)"):
        FrameDataset([str(out)], clip_len=2, camera="top")
    with pytest.raises(DatasetError, match="unknown key map 'nope'"):
        key_map("nope")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"proprio": "observation.state"}))
    with pytest.raises(DatasetError, match="'proprio' is a non-empty list"):
        key_map(str(bad))
    short = KeyMap(proprio=("next.reward",))
    with pytest.raises(DatasetError, match="give 1 values, expected armworld's 7-D proprio"):
        LeRobotReader(out, short)
    assert key_map("droid").proprio == ("observation.state.cartesian_position", "observation.state.gripper_position")


def test_training_metadata_describes_a_lerobot_directory(exported):
    source, out, summary = exported
    lerobot, hdf5 = describe_data([str(out), str(source)])
    assert lerobot == describe_lerobot(out)
    assert (lerobot["episodes"], lerobot["env_steps"]) == (hdf5["episodes"], hdf5["env_steps"]) == (11, summary.frames - 11)
    assert lerobot["bytes"] == summary.bytes and len(lerobot["sha256"]) == 64


def test_a_missing_extra_names_the_install_command(exported, monkeypatch):
    source, out, _ = exported
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(DatasetError, match=r"pip install 'armworld\[lerobot\]'"):
        LeRobotReader(out)
    with pytest.raises(DatasetError, match=r"pip install 'armworld\[lerobot\]'"):
        export_lerobot(source, out.parent / "never")


def test_lerobot_reads_armworld_export(exported):
    """lerobot's own LeRobotDataset loads the export: every frame's state, action, indices and
    task exactly, the frames up to video compression."""
    pytest.importorskip("lerobot.datasets.lerobot_dataset", reason="lerobot is not installed")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    source, out, summary = exported
    dataset = LeRobotDataset("armworld/export", root=out)
    assert len(dataset) == summary.frames and dataset.num_episodes == 11 and dataset.fps == 10
    with TrajectoryFile(source) as file:
        proprio = np.concatenate([file.read(d, "obs/proprio") for d in file.demos]).astype(np.float32)
        front = np.concatenate([file.read(d, "obs/rgb_front") for d in file.demos])
    errors = []
    for i in range(len(dataset)):
        item = dataset[i]
        assert np.array_equal(item["observation.state"].numpy(), proprio[i])
        assert item["index"].item() == i and item["task"] == "push the cube to the goal position"
        frame = item["observation.images.front"].numpy().transpose(1, 2, 0) * 255
        errors.append(np.abs(frame - front[i]).mean())
    assert np.mean(errors) < FRAME_MAE
