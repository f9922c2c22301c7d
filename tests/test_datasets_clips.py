"""Clip datasets: indexing, action modes, splits, in-memory and streaming reads, actionless files, DataLoader workers."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from datasets_helpers import ENV_ARGS, synthetic_episode
from torch.utils.data import DataLoader

from armworld.datasets.clips import ClipDataset, FrameDataset
from armworld.datasets.hdf5 import DatasetError, TrajectoryWriter
from armworld.envs.conventions import proprio_delta

LENGTHS = [6, 9, 3, 7, 5, 6, 4, 8, 6, 7, 5]  # demo_9 is the validation episode


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two files: one of 11 episodes, one of 2 episodes with 4-D actions."""
    root = tmp_path_factory.mktemp("clips")
    paths, episodes = [str(root / "a.h5"), str(root / "b.h5")], []
    for path, lengths, action_dim in [(paths[0], LENGTHS, 7), (paths[1], [5, 4], 4)]:
        with TrajectoryWriter(path, ENV_ARGS) as writer:
            for seed, n in enumerate(lengths):
                episodes.append(synthetic_episode(n, seed + 100 * action_dim, action_dim=action_dim))
                writer.append(episodes[-1])
    return paths, episodes


def test_clip_count_and_contents(files):
    paths, episodes = files
    data = ClipDataset(paths[:1], clip_len=3, frame_skip=2)
    train = [e for i, e in enumerate(episodes[: len(LENGTHS)]) if i != 9]
    assert len(data) == sum(max(0, e.num_samples + 1 - 4) for e in train)
    item = data[0]
    assert item["frames"].dtype == torch.uint8 and item["frames"].shape == (3, 32, 32, 3)
    assert item["proprio"].dtype == torch.float32 and item["proprio"].shape == (3, 7)
    assert item["actions"].dtype == torch.float32 and item["actions"].shape == (2, 7)
    first = episodes[0]
    np.testing.assert_array_equal(item["frames"].numpy(), first.obs["rgb_front"][0:5:2])
    np.testing.assert_array_equal(item["proprio"].numpy(), first.obs["proprio"][0:5:2])
    np.testing.assert_allclose(item["actions"].numpy(), proprio_delta(first.obs["proprio"][0:5:2]))
    last = data[len(data) - 1]  # the final clip ends on the observation after the last action
    np.testing.assert_array_equal(last["frames"][-1].numpy(), episodes[10].obs["rgb_front"][-1])


def test_command_actions_sum_motion_and_keep_the_last_gripper_target(files):
    paths, episodes = files
    data = ClipDataset(paths, clip_len=3, frame_skip=2, action="command", camera="wrist")
    item = data[1]  # demo_0, start 1
    commanded = episodes[0].actions[1:5].reshape(2, 2, 7)
    expected = np.concatenate([commanded[:, :, :6].sum(1), commanded[:, -1, 6:]], axis=1)
    np.testing.assert_allclose(item["actions"].numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(item["frames"].numpy(), episodes[0].obs["rgb_wrist"][1:6:2])
    four_d = data[len(data) - 1]["actions"].numpy()  # 4-D actions come out as 7-D, orientation zero
    assert four_d.shape == (2, 7) and np.all(four_d[:, 3:6] == 0)


def test_splits_partition_the_clips(files):
    paths, _ = files
    train, valid = ClipDataset(paths, 2, split="train"), ClipDataset(paths, 2, split="valid")
    assert len(valid) == LENGTHS[9]
    assert len(train) + len(valid) == len(ClipDataset(paths, 2, split=None))


@pytest.mark.parametrize("frame_skip", [1, 2, 3])
@pytest.mark.parametrize("kind", ["frames", "delta", "command"])
def test_in_memory_clips_equal_streamed_clips(files, kind, frame_skip):
    paths, _ = files
    make = lambda **kw: (  # noqa: E731
        FrameDataset(paths, 3, frame_skip, split=None, **kw) if kind == "frames"
        else ClipDataset(paths, 3, frame_skip, action=kind, split=None, camera="wrist", **kw)
    )
    streamed, in_memory = make(), make(preload=True)
    assert streamed.memory_device is None and in_memory.memory_device == torch.device("cpu")
    assert in_memory.memory_bytes() == sum(t.nbytes for t in in_memory._memory.values())
    indices = torch.randperm(len(streamed), generator=torch.Generator().manual_seed(0))  # every clip, both files
    batch, expected = in_memory.clips(indices), streamed.clips(indices)
    assert batch.keys() == expected.keys() == streamed[0].keys()
    for key in expected:  # bit for bit: the same clips, actions and all
        assert batch[key].dtype == expected[key].dtype and torch.equal(batch[key], expected[key])
        assert torch.equal(in_memory[int(indices[5])][key], streamed[int(indices[5])][key])
    with pytest.raises(IndexError, match="out of range"):
        in_memory.clips([0, len(streamed)])
    with pytest.raises(ValueError, match="already in memory"):
        in_memory.load()


class _WritesIntoTheFrames(torch.utils.data.Dataset):
    """Item ``i`` writes ``i + 1`` into the first byte of clip ``i``'s first frame in the wrapped
    in-memory dataset, then reads the clip: a worker's write reaches the parent only if the
    worker shares the parent's memory instead of holding a copy."""

    def __init__(self, clips: FrameDataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        frames = self.clips._memory["frames"]
        assert frames.is_shared()
        frames[int(self.clips._clip_rows[i]), 0, 0, 0] = i + 1
        return self.clips[i]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_memory_is_shared_with_loader_processes_not_copied(files, context):
    clips = FrameDataset(files[0], clip_len=2, split=None)
    clips.load(shared=True)
    loader = DataLoader(_WritesIntoTheFrames(clips), batch_size=None, num_workers=2, multiprocessing_context=context)
    assert [int(item["frames"][0, 0, 0, 0]) for item in loader] == [1, 2]
    assert [int(clips[i]["frames"][0, 0, 0, 0]) for i in range(2)] == [1, 2]  # written by the workers, seen here


def test_frame_dataset_reads_actionless_video(files, tmp_path):
    paths, episodes = files
    path = tmp_path / "video.h5"
    with h5py.File(paths[0], "r") as source, h5py.File(path, "w") as target:
        for key, value in source.attrs.items():
            target.attrs[key] = value
        source.copy("data", target)
        source.copy("mask", target)
        for demo in target["data"].values():
            for key in ("actions", "rewards", "dones", "states", "obs/proprio"):
                del demo[key]
    frames = FrameDataset([str(path)], clip_len=4, split=None)
    assert len(frames) == sum(n + 1 - 3 for n in LENGTHS)
    np.testing.assert_array_equal(frames[0]["frames"].numpy(), episodes[0].obs["rgb_front"][:4])
    with pytest.raises(DatasetError, match="missing 'obs/proprio'"):
        ClipDataset([str(path)], clip_len=4)


def test_unknown_camera_is_named(files):
    with pytest.raises(DatasetError, match=r"demo_0: missing 'obs/rgb_top' \(cameras: front, wrist\)$"):
        FrameDataset(files[0], clip_len=2, camera="top")


@pytest.mark.parametrize(
    "key, rows, action, message",
    [
        ("obs/proprio", 4, "delta", r"demo_1: 'obs/proprio' has 4 rows, expected 6 \('obs/rgb_front' has 6\)"),
        ("actions", 3, "command", r"demo_1: 'actions' has 3 rows, expected 5 \('obs/rgb_front' has 6\)"),
    ],
)
def test_rows_that_do_not_match_the_images_are_named_while_indexing(tmp_path, key, rows, action, message):
    path = tmp_path / "d.h5"
    with TrajectoryWriter(path, ENV_ARGS) as writer:
        for seed in range(2):
            writer.append(synthetic_episode(5, seed))
    with h5py.File(path, "r+") as raw:
        short = raw[f"data/demo_1/{key}"][:rows]
        del raw[f"data/demo_1/{key}"]
        raw["data/demo_1"].create_dataset(key, data=short)
    with pytest.raises(DatasetError, match=message):
        ClipDataset([str(path)], clip_len=2, action=action)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_workers(files, context):
    paths, _ = files
    data = ClipDataset(paths, clip_len=3, frame_skip=1)
    loader = DataLoader(data, batch_size=4, num_workers=2, multiprocessing_context=context, shuffle=False)
    batches = list(loader)
    assert sum(len(b["frames"]) for b in batches) == len(data)
    first = batches[0]
    assert first["frames"].shape == (4, 3, 32, 32, 3) and first["frames"].dtype == torch.uint8
    assert first["proprio"].shape == (4, 3, 7) and first["proprio"].dtype == torch.float32
    assert first["actions"].shape == (4, 2, 7) and first["actions"].dtype == torch.float32
    assert torch.equal(first["frames"][2], data[2]["frames"])
