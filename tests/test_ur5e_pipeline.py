"""The UR5e through the data and world-model pipeline, as the Franka goes: collect, dataset info, validate,
replay and export, pretrain, train, eval of the world-model agent; randomised datasets; rollout films.

Tiny settings throughout (16 px frames, a few steps of each stage): these check that each stage runs on the
UR5e and records it, not what the models learn."""

from __future__ import annotations

import json
import math

import gymnasium
import imageio.v3 as iio
import numpy as np
import pytest

from armworld.agents import make_expert
from armworld.cli import main
from armworld.datasets.collect import CollectConfig, collect
from armworld.datasets.env_args import robot_of
from armworld.datasets.hdf5 import TrajectoryFile
from armworld.datasets.replay import replay

ENV = "armworld/UR5ePush-v0"
COLLECT = ["collect", "--env", ENV, "--policy", "mixed", "--episodes", "2", "--obs-mode", "pixels_state",
           "--image-size", "16", "--cameras", "front", "--max-steps", "8", "--seed", "3", "--no-progress"]
TINY_TRAINING = ["--clip-len", "4", "--steps", "2", "--batch-size", "2", "--save-every", "2", "--eval-every", "2",
                 "--device", "cpu"]


def sim_state_size(env_id: str, **kwargs) -> int:
    return len(gymnasium.make(env_id, **kwargs).unwrapped.get_sim_state())


def expert(env: gymnasium.Env, seed: int):
    return make_expert(env, seed=seed)


def test_world_model_pipeline_on_the_ur5e(tmp_path, capsys):
    data, enc, wm, results = (tmp_path / name for name in ("d.h5", "enc", "wm", "results"))
    assert main([*COLLECT, "--out", str(data)]) == 0
    assert "2 new episodes (2 in file), 16 frames" in capsys.readouterr().out
    with TrajectoryFile(data) as file:
        assert file.env_args["env_name"] == ENV and "robot" not in file.env_args["env_kwargs"]  # the id names it
        assert robot_of(file.env_args) == "ur5e"
        assert file.read("demo_0", "states").shape == (9, sim_state_size(ENV))  # the UR5e's joints, not the Panda's
        assert file.read("demo_0", "obs/rgb_front").shape == (9, 16, 16, 3)
    assert main(["dataset", "info", str(data)]) == 0
    assert f"env: {ENV}" in capsys.readouterr().out
    assert main(["dataset", "validate", str(data)]) == 0
    assert main(["dataset", "replay", str(data), "--demo", "1"]) == 0
    assert "states match" in capsys.readouterr().out

    assert main(["pretrain", "--data", str(data), "--out", str(enc), "--preset", "tiny", *TINY_TRAINING]) == 0
    assert main(["train", "--data", str(data), "--encoder", str(enc), "--out", str(wm), *TINY_TRAINING]) == 0
    config = json.loads((wm / "step-000002" / "config.json").read_text())
    metadata = json.loads((wm / "step-000002" / "metadata.json").read_text())
    assert config["kind"] == "world_model" and config["train"]["camera"] == "front"
    assert metadata["encoder"]["path"] == str(enc / "step-000002")
    assert [(d["env"], d["robot"], d["episodes"], d["env_steps"]) for d in metadata["data"]] == [(ENV, "ur5e", 2, 16)]
    assert all(math.isfinite(v) for v in metadata["train_metrics"].values())

    capsys.readouterr()
    code = main(["eval", "--agent", f"wm:{wm}", "--env", ENV, "--episodes", "1", "--seeds", "0", "--max-steps", "2",
                 "--samples", "8", "--iterations", "1", "--top-k", "2", "--dataset", str(data), "--out", str(results)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((results / "results.json").read_text())
    assert report["env_id"] == ENV and report["episodes"] == 1 and report["sim_unstable"] == 0
    assert report["env_kwargs"] == {"obs_mode": "pixels_state", "cameras": ["front"], "image_size": 64}
    (episode,) = report["episode_results"]
    assert episode["length"] == 2 and math.isfinite(episode["final_distance"]) and episode["final_distance"] > 0
    assert report["plan_time_per_action_s"] > 0

    on_the_panda = ["eval", "--agent", f"wm:{wm}", "--env", "armworld/FrankaPush-v0", "--episodes", "1", "--seeds", "0",
                    "--max-steps", "1", "--samples", "8", "--iterations", "1", "--top-k", "2", "--out", str(tmp_path / "p")]
    assert main(on_the_panda) == 1  # a model of the UR5e's frames and moves, on the Panda: refused, unless asked for
    assert "trained on data of the ur5e robot, and armworld/FrankaPush-v0 runs the panda" in capsys.readouterr().err
    assert main([*on_the_panda, "--other-robot"]) == 0


@pytest.mark.parametrize("randomization", ["default", "sim2real"])
def test_randomised_ur5e_datasets_replay_exactly(tmp_path, randomization: str):
    """Each reset seed redraws the UR5e's scene (and with sim2real its six servo gains and the latency): replay
    rebuilds it from the file and the states match."""
    path = tmp_path / "r.h5"
    kwargs = {"randomization": randomization, "obs_mode": "pixels_state", "image_size": 16}
    config = CollectConfig("armworld/UR5ePickPlace-v0", episodes=2, seed=5, env_kwargs=kwargs, max_episode_steps=6)
    collect(path, config, expert, progress=False)
    with TrajectoryFile(path) as file:
        assert file.env_args["env_kwargs"]["randomization"] == randomization
        first = file.read("demo_0", "obs/rgb_front")[0]
    nominal, _ = gymnasium.make(config.env_id, obs_mode="pixels_state", image_size=16).reset(seed=5)
    assert not np.array_equal(first, nominal["rgb_front"])  # the same reset seed, a drawn scene
    for demo in ("demo_0", "demo_1"):
        assert replay(path, demo).matches


def test_a_robot_given_to_another_robots_id_is_recorded_and_replayed(tmp_path, capsys):
    """gymnasium.make(id, robot=...): the file records the robot the id does not name, replays on it and exports
    it as LeRobot's robot_type."""
    path = tmp_path / "r.h5"
    config = CollectConfig("armworld/FrankaReach-v0", episodes=1, env_kwargs={"robot": "ur5e"}, max_episode_steps=4)
    collect(path, config, expert, progress=False)
    with TrajectoryFile(path) as file:
        assert file.env_args["env_kwargs"]["robot"] == "ur5e" and robot_of(file.env_args) == "ur5e"
        assert file.read("demo_0", "states").shape[1] == sim_state_size("armworld/UR5eReach-v0")
    assert replay(path, "demo_0").matches
    pytest.importorskip("pyarrow", reason="LeRobot export needs pyarrow: pip install 'armworld[lerobot]'")
    pytest.importorskip("av", reason="LeRobot export needs PyAV: pip install 'armworld[lerobot]'")
    out = tmp_path / "lerobot"
    assert main(["dataset", "export", str(path), "--format", "lerobot", "--out", str(out)]) == 0
    assert json.loads((out / "meta" / "info.json").read_text())["robot_type"] == "ur5e"


def test_rollout_films_the_ur5e_expert(tmp_path, capsys):
    video = tmp_path / "pick.mp4"
    assert main(["rollout", "--env", "armworld/UR5ePickPlace-v0", "--episodes", "1", "--size", "32",
                 "--out", str(video)]) == 0
    assert "1/1 succeeded" in capsys.readouterr().out
    frames = iio.imread(video)
    assert frames.shape[1:] == (32, 32, 3) and frames.std() > 0
