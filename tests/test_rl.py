"""RL baselines: SAC+HER learns FrankaReach, saved models act through the Agent protocol,
runs resume, and the compare report carries the right numbers."""

import importlib.util
import json
from pathlib import Path

import gymnasium
import numpy as np
import pytest

import armworld  # noqa: F401  (registers the envs)
from armworld.agents import Agent
from armworld.agents.compare import compare
from armworld.agents.evaluate import EvalConfig, evaluate, wilson_interval
from armworld.agents.loading import load_agent
from armworld.agents.rl import RLConfig, latest_checkpoint, load_hyperparams, load_sb3_agent, sb3_env_kwargs, train
from armworld.cli import main

# sac.yaml as shipped, learning from step 300: 3000 steps (sparse reward, HER) train in
# ~18 s on 2 CPU cores and reach 100% on the 20 evaluation episodes with seed 0.
REACH = dict(algo="sac", env_id="FrankaReach-v0", her=True, seed=0, eval_episodes=20, checkpoint_freq=0, progress_bar=False)
REACH_HP = {"learning_starts": 300}


@pytest.fixture(scope="module")
def reach_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rl") / "reach_sac"
    return train(RLConfig(**REACH, steps=3000, eval_freq=3000, out=str(out), hyperparams=REACH_HP))


def test_sac_her_improves_reach_success_over_the_untrained_policy(reach_run):
    points = json.loads((reach_run / "progress.json").read_text())["points"]
    assert [p["env_steps"] for p in points] == [0, 3000]
    untrained, trained = points[0], points[-1]
    assert trained["success_rate"] >= untrained["success_rate"] + 0.3
    assert trained["mean_final_distance"] < untrained["mean_final_distance"]


def test_saved_model_acts_through_the_agent_protocol_and_the_harness(reach_run):
    kwargs = sb3_env_kwargs(reach_run)
    assert kwargs["env_kwargs"]["action_dim"] == 4
    env = gymnasium.make(kwargs["env_id"], **kwargs["env_kwargs"])
    agent = load_agent(f"sb3:{reach_run}", env)
    assert isinstance(agent, Agent)
    obs, _ = env.reset(seed=5)
    agent.reset()
    action = agent.act(obs)
    assert action.shape == (4,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1)
    np.testing.assert_array_equal(agent.act(obs), action)  # deterministic

    # The harness on evaluation seed 0 replays the episodes of the last training evaluation.
    result = evaluate(lambda env, seed: load_sb3_agent(str(reach_run / "model.zip"), env),
                      EvalConfig(kwargs["env_id"], seeds=(0,), episodes=20, env_kwargs=kwargs["env_kwargs"]))
    last = json.loads((reach_run / "progress.json").read_text())["points"][-1]
    assert result.overall.successes == last["successes"]
    assert result.overall.mean_final_distance == pytest.approx(last["mean_final_distance"])
    assert result.overall.plan_time_per_action_s > 0


def test_a_model_refuses_an_env_it_was_not_trained_for(reach_run):
    env = gymnasium.make("armworld/FrankaReach-v0")  # 7-D actions
    with pytest.raises(ValueError, match="action shape.*action_dim"):
        load_sb3_agent(str(reach_run), env)
    with pytest.raises(FileNotFoundError, match="no SB3 model"):
        load_sb3_agent(str(reach_run / "missing.zip"), env)


def test_pixel_ppo_gets_a_cnn_and_resumes(tmp_path):
    out = tmp_path / "ppo_pixels"
    config = dict(algo="ppo", env_id="FrankaReach-v0", obs_mode="pixels", steps=64, eval_freq=64, eval_episodes=1,
                  checkpoint_freq=0, progress_bar=False, out=str(out), hyperparams={"n_steps": 16, "batch_size": 16, "n_epochs": 1})
    train(RLConfig(**config))
    agent = load_sb3_agent(str(out), gymnasium.make("armworld/FrankaReach-v0", obs_mode="pixels", image_size=64, action_dim=4))
    extractor = agent.model.policy.features_extractor
    assert type(extractor.extractors["rgb_front"]).__name__ == "NatureCNN"
    assert type(extractor.extractors["desired_goal"]).__name__ == "Flatten"

    train(RLConfig(**{**config, "steps": 128, "resume": True}))
    progress = json.loads((out / "progress.json").read_text())
    assert [p["env_steps"] for p in progress["points"]] == [0, 64, 128]
    assert progress["finished"] and progress["points"][-1]["wall_time_s"] >= progress["points"][1]["wall_time_s"]
    with pytest.raises(FileExistsError, match="--resume"):
        train(RLConfig(**config))


def test_a_checkpoint_that_fails_midway_leaves_the_previous_one_resumable(tmp_path, monkeypatch):
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    out = tmp_path / "sac"
    config = dict(algo="sac", env_id="FrankaReach-v0", her=True, steps=120, eval_freq=120, eval_episodes=1,
                  checkpoint_freq=0, progress_bar=False, out=str(out), hyperparams={"learning_starts": 60, "buffer_size": 1000})
    train(RLConfig(**config))
    model, buffer = latest_checkpoint(out)
    saved = {path.name: path.read_bytes() for path in (model, buffer)}

    def dies_midway(self, path):  # the disk fills up (or the run is killed) while the buffer is written
        Path(path).write_bytes(b"\x80\x04 half a pickle")
        raise OSError("No space left on device")

    monkeypatch.setattr(OffPolicyAlgorithm, "save_replay_buffer", dies_midway)
    with pytest.raises(OSError, match="No space"):
        train(RLConfig(**{**config, "steps": 180, "resume": True}))
    monkeypatch.undo()
    assert latest_checkpoint(out) == (model, buffer)
    assert {path.name: path.read_bytes() for path in (out / "checkpoints").iterdir() if path.name != "latest.json"} == saved
    (out / "checkpoints" / "model_150_killed.zip").write_bytes(b"PK")  # what a SIGKILL mid-write leaves

    train(RLConfig(**{**config, "steps": 180, "resume": True}))  # from the intact 120-step checkpoint
    progress = json.loads((out / "progress.json").read_text())
    assert [p["env_steps"] for p in progress["points"]] == [0, 120, 180] and progress["finished"]
    model, buffer = latest_checkpoint(out)
    assert model.name.startswith("model_180_") and buffer.name.startswith("replay_buffer_180_")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted(["latest.json", model.name, buffer.name])


def test_rl_budget_restarts_a_run_interrupted_before_its_first_checkpoint(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("rl_budget", Path(__file__).parents[1] / "examples" / "rl_budget.py")
    rl_budget = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rl_budget)
    configs = []
    monkeypatch.setattr(rl_budget, "train", configs.append)
    run = tmp_path / "FrankaReach-v0_state_s0"
    run.mkdir()
    (run / "progress.json").write_text(json.dumps({"points": [{"env_steps": 0}], "finished": False}))  # the step-0 evaluation

    rl_budget.run_one("FrankaReach-v0", "state", 0, [1000, 2000], tmp_path, eval_episodes=1)
    assert not run.exists()  # cleared: train() would refuse a directory holding a run it cannot resume
    assert not configs[0].resume and configs[0].steps == 2000 and configs[0].checkpoint_freq == 1000


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="off-policy"):
        RLConfig(algo="ppo", her=True)
    with pytest.raises(ValueError, match="unknown algo"):
        RLConfig(algo="dqn")
    with pytest.raises(ValueError, match="unknown env id 'armworld/FrankaSlide-v0'"):
        load_hyperparams("sac", "armworld/FrankaSlide-v0")
    assert load_hyperparams("tqc", "armworld/FrankaPush-v0", "pixels")["buffer_size"] == 50000


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3", "tqc"])
def test_every_env_has_default_hyperparameters(algo):
    for env_id, entry in armworld.ENV_IDS.items():
        assert load_hyperparams(algo, env_id)["n_timesteps"] > 0, entry.task.hyperparams


def test_stack_trains_from_the_cli(tmp_path):
    """The task table gives FrankaStack the cube tasks' defaults: `armworld rl train` runs it."""
    out = tmp_path / "stack_sac"
    argv = ["rl", "train", "--algo", "sac", "--env", "armworld/FrankaStack-v0", "--steps", "300", "--out", str(out),
            "--eval-freq", "300", "--eval-episodes", "1", "--checkpoint-freq", "0", "--no-progress-bar",
            "-p", "learning_starts=200", "buffer_size=1000", "batch_size=32"]
    assert main(argv) == 0
    progress = json.loads((out / "progress.json").read_text())
    assert progress["finished"] and progress["points"][-1]["env_steps"] == 300 and progress["her"]


def _write_run(path, algo, seed, points, wall, gamma=0.95):
    path.mkdir(parents=True)
    config = {"algo": algo, "env_id": "armworld/FrankaReach-v0", "obs_mode": "state", "her": None, "seed": seed,
              "steps": points[-1][0], "out": str(path), "resume": False, "progress_bar": False}
    (path / "config.json").write_text(json.dumps({"config": config, "hyperparams": {"gamma": gamma}, "env_kwargs": {}}))
    progress = {"algo": algo, "env_id": "armworld/FrankaReach-v0", "obs_mode": "state", "her": True, "seed": seed,
                "train_wall_time_s": wall, "finished": True,
                "points": [{"env_steps": s, "successes": k, "episodes": 10, "success_rate": k / 10,
                            "mean_final_distance": 0.1, "act_time_per_step_s": 0.001, "wall_time_s": wall * s / points[-1][0]}
                           for s, k in points]}
    (path / "progress.json").write_text(json.dumps(progress))


def test_compare_reports_the_right_numbers(tmp_path):
    _write_run(tmp_path / "sac_s0", "sac", 0, [(0, 0), (1000, 4), (2000, 8)], wall=100.0)
    _write_run(tmp_path / "sac_s1", "sac", 1, [(0, 0), (1000, 2), (2000, 6)], wall=120.0)
    expert = tmp_path / "expert_eval"
    expert.mkdir()
    (expert / "results.json").write_text(json.dumps({
        "agent": "expert", "env_id": "armworld/FrankaReach-v0", "episodes": 50, "successes": 49, "success_rate": 0.98,
        "seeds": [0], "per_seed": {"0": {"success_rate": 0.98}}, "plan_time_per_action_s": None}))

    out = tmp_path / "report"
    assert main(["compare", str(tmp_path / "sac_s0"), str(tmp_path / "sac_s1"), str(expert), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert (out / "success_FrankaReach_v0.png").stat().st_size > 1000
    lo, hi = wilson_interval(14, 20)  # seeds pooled: 8 + 6 of 10 + 10
    sac_row = next(line for line in report.splitlines() if line.startswith("| SAC+HER (state)"))
    assert "| 2,000 | 70.0% (14/20) |" in sac_row and f"[{lo:.1%}, {hi:.1%}]" in sac_row
    assert "| 0.80, 0.60 | 110 | 1.00 |" in sac_row  # per-seed rates, mean wall time (s), act time (ms)
    lo, hi = wilson_interval(49, 50)
    assert f"| expert | - | 98.0% (49/50) | [{lo:.1%}, {hi:.1%}] |" in report

    from armworld.agents.compare import collect

    (sac,) = [e for e in collect([tmp_path / "sac_s0", tmp_path / "sac_s1"])]
    steps, mean, low, high = sac.curve
    np.testing.assert_allclose(steps, [0, 1000, 2000])
    np.testing.assert_allclose(mean, [0.0, 0.3, 0.7])
    np.testing.assert_allclose(low, [0.0, 0.2, 0.6])
    np.testing.assert_allclose(high, [0.0, 0.4, 0.8])


def test_compare_pools_only_runs_that_differ_in_seed(tmp_path, capsys):
    from armworld.agents.compare import collect

    _write_run(tmp_path / "a_s0", "sac", 0, [(0, 0), (1000, 4)], wall=10.0)
    _write_run(tmp_path / "a_s1", "sac", 1, [(0, 0), (1000, 6)], wall=10.0)
    _write_run(tmp_path / "b_s0", "sac", 0, [(0, 0), (1000, 9)], wall=10.0, gamma=0.9)  # other hyperparameters
    entries = sorted(collect([tmp_path / "a_s0", tmp_path / "a_s1", tmp_path / "b_s0"]), key=lambda e: e.label)
    assert [(e.label, e.seeds, e.successes) for e in entries] == [
        ("SAC+HER (state) [a_s0]", [0, 1], 10), ("SAC+HER (state) [b_s0]", [0], 9)]
    _write_run(tmp_path / "a_again", "sac", 0, [(0, 0), (1000, 5)], wall=10.0)  # the same run twice
    assert main(["compare", str(tmp_path / "a_s0"), str(tmp_path / "a_again"), "--out", str(tmp_path / "r")]) == 1
    assert "are the same configuration and seed (0)" in capsys.readouterr().err


def test_compare_refuses_an_unknown_directory(tmp_path, capsys):
    assert main(["compare", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    assert "neither an RL run" in capsys.readouterr().err


def test_compare_places_a_world_model_at_the_env_steps_of_its_data(tmp_path):
    import torch

    from armworld.agents.compare import collect
    from armworld.datasets.hdf5 import TrajectoryWriter
    from armworld.worldmodel.checkpoint import describe_data, save_checkpoint
    from datasets_helpers import ENV_ARGS, synthetic_episode

    data = tmp_path / "reach.h5"
    with TrajectoryWriter(data, ENV_ARGS) as writer:
        for i, n in enumerate((5, 7, 9)):
            writer.append(synthetic_episode(n, seed=i))
    run = tmp_path / "wm"
    save_checkpoint(run, 1, {"kind": "world_model"}, {"w": torch.zeros(1)}, {"data": describe_data([str(data), str(data)])})
    evaluation = tmp_path / "wm_eval"
    evaluation.mkdir()
    (evaluation / "results.json").write_text(json.dumps({
        "agent": f"wm:{run}", "env_id": "armworld/FrankaReach-v0", "episodes": 50, "successes": 40,
        "seeds": [0], "per_seed": {"0": {"success_rate": 0.8}}, "plan_time_per_action_s": 0.5}))
    _write_run(tmp_path / "sac_s0", "sac", 0, [(0, 0), (20, 9)], wall=10.0)

    wm = [e for e in collect([evaluation, tmp_path / "sac_s0"]) if e.kind == "wm"][0]
    assert wm.env_steps == 21  # 5 + 7 + 9 actions, the file counted once
    report = compare([evaluation, tmp_path / "sac_s0"], tmp_path / "report").read_text()
    assert f"| wm:{run} | 21 | 80.0% (40/50) |" in report and "| 500.00 | harness |" in report
    data.unlink()  # the metadata recorded the count: the file is no longer needed
    assert [e for e in collect([evaluation]) if e.kind == "wm"][0].env_steps == 21


def test_compare_reports_a_world_model_whose_data_is_elsewhere_without_crashing(tmp_path, monkeypatch):
    import torch

    from armworld.agents.compare import collect
    from armworld.worldmodel.checkpoint import save_checkpoint

    def evaluated(name, data):  # a checkpoint whose metadata lists `data`, and its results.json
        save_checkpoint(tmp_path / name, 1, {"kind": "world_model"}, {"w": torch.zeros(1)}, {"data": data})
        evaluation = tmp_path / f"{name}_eval"
        evaluation.mkdir()
        (evaluation / "results.json").write_text(json.dumps({
            "agent": f"wm:{tmp_path / name}", "env_id": "armworld/FrankaReach-v0", "episodes": 10, "successes": 7,
            "seeds": [0], "per_seed": {"0": {"success_rate": 0.7}}, "plan_time_per_action_s": 0.5}))
        return evaluation

    elsewhere = [{"path": "runs/data-top/reach.h5", "bytes": 10, "sha256": "a"}]  # relative to where it trained
    missing = evaluated("wm_missing", elsewhere)
    counted = evaluated("wm_counted", [{**elsewhere[0], "env_steps": 1234}])
    unlisted = evaluated("wm_unlisted", [])
    monkeypatch.chdir(tmp_path)  # runs/data-top/reach.h5 is not here
    _write_run(tmp_path / "sac_s0", "sac", 0, [(0, 0), (20, 9)], wall=10.0)

    entries = {e.label.split("/")[-1]: e for e in collect([missing, counted, unlisted])}
    assert entries["wm_missing"].env_steps is None and "runs/data-top/reach.h5 is not there" in entries["wm_missing"].note
    assert entries["wm_counted"].env_steps == 1234 and entries["wm_counted"].note is None
    assert entries["wm_unlisted"].env_steps is None and "lists no training data" in entries["wm_unlisted"].note
    report = compare([missing, counted, unlisted, tmp_path / "sac_s0"], tmp_path / "report").read_text()
    assert f"| wm:{tmp_path / 'wm_missing'} | unknown | 70.0% (7/10) |" in report
    assert f"| wm:{tmp_path / 'wm_counted'} | 1,234 |" in report
    assert f"- wm:{tmp_path / 'wm_missing'}: env steps unknown: its training data runs/data-top/reach.h5 is not there" in report
    assert (tmp_path / "report" / "success_FrankaReach_v0.png").is_file()

    gone = tmp_path / "gone_eval"  # the checkpoint itself deleted since
    gone.mkdir()
    (gone / "results.json").write_text(json.dumps({**json.loads((missing / "results.json").read_text()), "agent": f"wm:{tmp_path / 'gone'}"}))
    (entry,) = collect([gone])
    assert entry.env_steps is None and "no checkpoint" in entry.note


def test_rl_train_verb_refuses_bad_input_plainly(tmp_path, capsys):
    assert main(["rl", "train", "--algo", "ppo", "--her", "--env", "FrankaReach-v0", "--out", str(tmp_path / "r")]) == 1
    assert "off-policy" in capsys.readouterr().err
    assert main(["rl", "train", "--algo", "sac", "--env", "FrankaSlide-v0", "--out", str(tmp_path / "r")]) == 1
    assert "argument --env: unknown env 'FrankaSlide-v0'; choose one of armworld/FrankaReach-v0" in capsys.readouterr().err
