"""Collection from the real envs: parallel determinism, SIGKILL safety, resume, safe failures, replay."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from datasets_helpers import ENV_ARGS, synthetic_episode

from armworld.agents.exploration import PolicySpec
from armworld.datasets.collect import CollectConfig, collect
from armworld.datasets.hdf5 import DatasetError, TrajectoryFile, TrajectoryWriter, validate
from armworld.datasets.replay import replay

PIXELS = {"obs_mode": "pixels_state", "image_size": 32, "cameras": ("front", "wrist")}


def config(episodes: int, workers: int = 1, env_kwargs: dict | None = None) -> CollectConfig:
    return CollectConfig(
        "armworld/FrankaPush-v0", episodes, seed=3, workers=workers, env_kwargs=env_kwargs or {"obs_mode": "state"},
        max_episode_steps=5, policy_name=PolicySpec("mixed", noise=0.1).label,
    )


def assert_same_files(a, b):
    with TrajectoryFile(a) as fa, TrajectoryFile(b) as fb:
        assert fa.demos == fb.demos
        for demo in fa.demos:
            ea, eb = fa.episode(demo), fb.episode(demo)
            assert ea.obs.keys() == eb.obs.keys()
            for key in ea.obs:
                np.testing.assert_array_equal(ea.obs[key], eb.obs[key], err_msg=f"{demo} obs/{key}")
            for key in ("states", "actions", "rewards", "terminated", "truncated", "success", "seed", "policy"):
                np.testing.assert_array_equal(getattr(ea, key), getattr(eb, key), err_msg=f"{demo} {key}")


def test_two_workers_write_the_same_file_as_one(tmp_path):
    policy = PolicySpec("mixed", noise=0.1)
    one = collect(tmp_path / "one.h5", config(3, 1, PIXELS), policy, progress=False)
    two = collect(tmp_path / "two.h5", config(3, 2, PIXELS), policy, progress=False)
    assert (one.episodes, one.frames, one.total) == (3, 15, 3)
    assert (two.episodes, two.frames) == (3, 15)
    assert_same_files(tmp_path / "one.h5", tmp_path / "two.h5")
    assert validate(tmp_path / "two.h5") == []
    with TrajectoryFile(tmp_path / "two.h5") as file:
        assert file.dataset("demo_2", "obs/rgb_wrist").shape == (6, 32, 32, 3)
        assert file.attrs("demo_2") == {"num_samples": 5, "seed": 5, "policy": policy.label}
        assert file.env_args["env_kwargs"]["cameras"] == ["front", "wrist"]
        assert file.env_args["max_episode_steps"] == 5


def test_an_agent_instance_runs_in_process_only(tmp_path):
    import gymnasium

    env = gymnasium.make("armworld/FrankaPush-v0")
    agent = PolicySpec("random")(env, 0)
    summary = collect(tmp_path / "a.h5", config(2), agent, progress=False)
    assert summary.total == 2
    before = (tmp_path / "a.h5").read_bytes()
    with pytest.raises(ValueError, match="factory"):  # checked before the existing file is touched
        collect(tmp_path / "a.h5", config(2, workers=2), agent, exist="overwrite", progress=False)
    assert (tmp_path / "a.h5").read_bytes() == before
    with pytest.raises(ValueError, match="factory"):
        collect(tmp_path / "b.h5", config(2, workers=2), agent, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]
    assert collect(tmp_path / "b.h5", config(2), agent, progress=False).total == 2  # the corrected rerun


def test_an_unknown_exist_value_is_refused_before_the_file_is_touched(tmp_path):
    path = tmp_path / "d.h5"
    collect(path, config(1), PolicySpec("expert"), progress=False)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="exist must be one of error, resume, overwrite, got 'append'"):
        collect(path, config(2), PolicySpec("expert"), exist="append", progress=False)
    assert path.read_bytes() == before


class CrashesInItsFirstEpisode:
    def __init__(self, env, seed):
        pass

    def reset(self):
        pass

    def act(self, obs):
        raise RuntimeError("policy crashed")


def test_a_collection_failing_before_its_first_episode_leaves_the_path_as_it_was(tmp_path):
    path = tmp_path / "d.h5"
    collect(path, config(1), PolicySpec("expert"), progress=False)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="policy crashed"):
        collect(path, config(2), CrashesInItsFirstEpisode, exist="overwrite", progress=False)
    assert path.read_bytes() == before
    with pytest.raises(RuntimeError, match="policy crashed"):
        collect(tmp_path / "new.h5", config(2), CrashesInItsFirstEpisode, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


CHILD = textwrap.dedent(
    """
    import sys, time
    from armworld.agents.exploration import PolicySpec
    from armworld.datasets.collect import CollectConfig, collect

    class StallsInEpisodeTwo:
        '''The mixed policy, stalling mid-way through the episode with seed 5 (index 2).'''

        def __init__(self, env, seed):
            self.agent, self.seed, self.t = PolicySpec("mixed", noise=0.1)(env, seed), seed, 0

        def reset(self):
            self.agent.reset()
            self.t = 0

        def act(self, obs):
            self.t += 1
            if self.seed == 5 and self.t == 3:
                print("mid-episode", flush=True)
                time.sleep(120)
            return self.agent.act(obs)

    config = CollectConfig("armworld/FrankaPush-v0", 4, seed=3, env_kwargs={"obs_mode": "state"},
                           max_episode_steps=5, policy_name=PolicySpec("mixed", noise=0.1).label)
    collect(sys.argv[1], config, StallsInEpisodeTwo, progress=False,
            on_commit=lambda demo, episode: print("committed", demo, flush=True))
    """
)


def test_sigkill_mid_episode_keeps_completed_episodes_and_resume_completes(tmp_path):
    path = tmp_path / "killed.h5"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if line.startswith("mid-episode"):
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert lines == ["committed demo_0", "committed demo_1", "mid-episode"]
    with TrajectoryFile(path) as file:
        assert file.demos == ["demo_0", "demo_1"]
    assert validate(path) == []

    summary = collect(path, config(4), PolicySpec("mixed", noise=0.1), exist="resume", progress=False)
    assert (summary.episodes, summary.total) == (2, 4)
    collect(tmp_path / "fresh.h5", config(4), PolicySpec("mixed", noise=0.1), progress=False)
    assert_same_files(path, tmp_path / "fresh.h5")


def test_resume_refuses_another_seed_or_policy_and_leaves_the_file(tmp_path):
    path = tmp_path / "d.h5"
    collect(path, config(2), PolicySpec("mixed", noise=0.1), progress=False)
    before = path.read_bytes()
    other_seed = dataclasses.replace(config(4), seed=4)
    with pytest.raises(DatasetError, match="episode 0 was collected with .*'seed': 3.*--seed and --policy"):
        collect(path, other_seed, PolicySpec("mixed", noise=0.1), exist="resume", progress=False)
    other_policy = dataclasses.replace(config(4), policy_name=PolicySpec("expert").label)
    with pytest.raises(DatasetError, match="cannot resume"):
        collect(path, other_policy, PolicySpec("expert"), exist="resume", progress=False)
    assert path.read_bytes() == before


def test_replay_matches_and_detects_a_changed_action(tmp_path):
    path = tmp_path / "d.h5"
    collect(path, config(2, env_kwargs=PIXELS), PolicySpec("expert"), progress=False)
    result = replay(path, "demo_1")
    assert result.matches and result.steps == 5 and result.max_error == 0.0
    with h5py.File(path, "r+") as raw:
        raw["data/demo_1/actions"][2] = -raw["data/demo_1/actions"][2]
    result = replay(path, "demo_1")
    assert not result.matches and result.first_mismatch == 3


@pytest.mark.parametrize(
    "case, message",
    [
        ("real_arm", r"demo_0 was recorded on a real arm \(real:franka\) and cannot be re-simulated"),
        ("unseeded", r"demo_0 has no reset seed \(-1\): it cannot be replayed"),
        ("no_seed", r"demo_0 has no 'seed' attribute: it cannot be replayed"),
        ("state_width", r"demo_0: states have 20 columns, this env has \d+ \(recorded with another armworld/MuJoCo version\?\)"),
        ("state_rows", r"demo_0: states of shape \(3, 20\) and actions of shape \(3, 7\) do not fit \(expected \[N\+1, S\] and \[N, A\]\)"),
        ("unknown_env", r"demo_0: cannot rebuild the env armworld/FrankaFoo-v0 it was recorded in"),
    ],
)
def test_replay_refuses_what_it_cannot_re_simulate(tmp_path, case, message):
    path = tmp_path / "d.h5"
    names = {"real_arm": "real:franka", "unknown_env": "armworld/FrankaFoo-v0"}
    env_args = dict(ENV_ARGS, env_name=names.get(case, ENV_ARGS["env_name"]))
    episode = dataclasses.replace(synthetic_episode(3, 0), seed=-1 if case == "unseeded" else 0)
    with TrajectoryWriter(path, env_args) as writer:  # synthetic states have 20 columns
        writer.append(episode)
    with h5py.File(path, "r+") as raw:
        if case == "no_seed":
            del raw["data/demo_0"].attrs["seed"]
        elif case == "state_rows":
            del raw["data/demo_0/states"]
            raw["data/demo_0"].create_dataset("states", data=np.zeros((3, 20)))
    with pytest.raises(DatasetError, match=message) as error:
        replay(path, "demo_0")
    assert str(error.value).startswith(str(path))
