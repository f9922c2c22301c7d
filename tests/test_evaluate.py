"""The evaluation harness on agents whose outcome is known: counts, Wilson intervals,
per-seed breakdown, seeds disjoint from collection, results files, videos, agent loading."""

from __future__ import annotations

import json

import gymnasium
import imageio.v2 as imageio
import numpy as np
import pytest

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import EvalConfig, eval_seed, evaluate, wilson_interval, write_results
from armworld.agents.film import BAND_COLOR, band_height
from armworld.agents.loading import AgentSpecError, load_agent
from armworld.cli import main


class FlagEnv(gymnasium.Env):
    """The achieved goal is (a_0, 0, 0) of the last action; the desired goal is (1, 0, 0).
    An episode succeeds iff the last action's first value is 1; the final distance is then 0, else 2."""

    def __init__(self):
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (7,), np.float32)
        goal = gymnasium.spaces.Box(-2.0, 2.0, (3,), np.float64)
        self.observation_space = gymnasium.spaces.Dict({"achieved_goal": goal, "desired_goal": goal})
        self.resets: list[int | None] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets.append(seed)
        self.achieved = np.array([-1.0, 0.0, 0.0])
        return self._obs(), {"is_success": False}

    def step(self, action):
        self.achieved = np.array([float(action[0]), 0.0, 0.0])
        success = bool(np.linalg.norm(self.achieved - [1.0, 0.0, 0.0]) < 0.05)
        return self._obs(), 0.0, False, False, {"is_success": success}

    def _obs(self):
        return {"achieved_goal": self.achieved.copy(), "desired_goal": np.array([1.0, 0.0, 0.0])}


gymnasium.register("test/Flag-v0", entry_point=FlagEnv, max_episode_steps=4)


class EveryOther:
    """Succeeds on the 2nd, 4th, ... episode (counts its resets); ``wins`` forces the outcome."""

    def __init__(self, wins: bool | None = None):
        self.wins = wins
        self.episodes = 0
        self.steps = 0

    def reset(self):
        self.episodes += 1

    def act(self, obs):
        self.steps += 1
        win = self.episodes % 2 == 0 if self.wins is None else self.wins
        return np.full(7, 1.0 if win else -1.0, dtype=np.float32)


def test_wilson_interval_matches_published_values():
    # Reference values of the Wilson score interval at 95% (e.g. Brown, Cai & DasGupta 2001 tables).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(45, 50) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_counts_rates_distances_and_per_seed_breakdown(tmp_path):
    made = {}

    def factory(env, seed):
        made[seed] = EveryOther(wins={0: None, 1: True, 2: False}[seed])
        return made[seed]

    config = EvalConfig("test/Flag-v0", seeds=(0, 1, 2), episodes=5)
    result = evaluate(factory, config, agent_name="every-other")
    assert [s.successes for s in result.per_seed.values()] == [2, 5, 0]
    assert result.overall.successes == 7 and result.overall.episodes == 15
    assert result.overall.success_rate == pytest.approx(7 / 15)
    assert result.overall.success_ci == pytest.approx(wilson_interval(7, 15))
    assert result.per_seed[1].success_ci == pytest.approx((0.5655, 1.0), abs=1e-4)
    assert result.overall.mean_final_distance == pytest.approx(2.0 * 8 / 15)
    assert result.overall.mean_episode_length == 4.0  # the fixed step budget
    assert all(agent.episodes == 5 and agent.steps == 20 for agent in made.values())  # reset once per episode
    assert result.overall.plan_time_per_action_s is None
    assert [e.reset_seed for e in result.episodes] == config.reset_seeds()

    json_path, md_path = write_results(result, tmp_path)
    saved = json.loads(json_path.read_text())
    for key in ("success_rate", "success_ci", "episodes", "mean_final_distance", "mean_episode_length", "plan_time_per_action_s"):
        assert key in saved
    assert saved["episodes"] == 15 and saved["per_seed"]["1"]["successes"] == 5 and len(saved["episode_results"]) == 15
    table = md_path.read_text()
    assert "| all | 15 | 46.7% (7) |" in table and "| 2 | 5 | 0.0% (0) |" in table


def test_step_budget_and_success_judged_at_the_end():
    class WinsThenLoses(EveryOther):
        def act(self, obs):
            self.steps += 1
            return np.full(7, 1.0 if self.steps < 3 else -1.0, dtype=np.float32)

    result = evaluate(lambda env, seed: WinsThenLoses(), EvalConfig("test/Flag-v0", seeds=(0,), episodes=1))
    assert result.overall.successes == 0  # succeeded at steps 1-2, not at the end
    short = evaluate(lambda env, seed: WinsThenLoses(), EvalConfig("test/Flag-v0", seeds=(0,), episodes=1, max_steps=2))
    assert short.overall.successes == 1 and short.overall.mean_episode_length == 2
    # a budget beyond the env's own (4 steps) is honoured, not cut short by its time limit
    long = evaluate(lambda env, seed: EveryOther(wins=True), EvalConfig("test/Flag-v0", seeds=(0,), episodes=1, max_steps=7))
    assert long.overall.mean_episode_length == 7 and long.to_json()["max_steps"] == 7
    assert result.to_json()["max_steps"] == 4  # the env's own budget, written down
    assert "at most 4 steps each" in result.markdown()


class BlowsUp(gymnasium.Wrapper):
    """A Flag env whose physics go unstable at the second step of odd reset seeds."""

    def reset(self, **kwargs):
        self.steps, self.odd = 0, kwargs["seed"] % 2 == 1
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.odd and self.steps == 2:
            return obs, reward, terminated, True, {**info, "sim_unstable": True}
        return obs, reward, terminated, truncated, info


gymnasium.register("test/BlowsUp-v0", entry_point=lambda: BlowsUp(FlagEnv()), max_episode_steps=4)


def test_episodes_cut_short_by_unstable_physics_are_counted_and_reported(tmp_path):
    result = evaluate(lambda env, seed: EveryOther(wins=True), EvalConfig("test/BlowsUp-v0", seeds=(0,), episodes=4))
    assert [e.sim_unstable for e in result.episodes] == [False, True, False, True]  # reset seeds 1,000,000 + i
    assert [e.length for e in result.episodes] == [4, 2, 4, 2]
    assert result.overall.sim_unstable == 2 and result.per_seed[0].sim_unstable == 2
    json_path, md_path = write_results(result, tmp_path)
    saved = json.loads(json_path.read_text())
    assert saved["sim_unstable"] == 2 and [e["sim_unstable"] for e in saved["episode_results"]] == [False, True, False, True]
    assert "2 episode(s) ended early: the simulation went unstable" in md_path.read_text()


def test_evaluation_seeds_never_meet_collection_seeds():
    assert eval_seed(0, 0) == 1_000_000 and eval_seed(2, 49) == 1_002_049
    seeds = EvalConfig("test/Flag-v0", seeds=(0, 1, 2), episodes=50).reset_seeds()
    assert len(set(seeds)) == 150 and min(seeds) >= 1_000_000
    collected = set(range(10_000))  # `armworld collect --seed 0` with 10k episodes
    evaluate(lambda env, seed: EveryOther(), EvalConfig("test/Flag-v0", seeds=(0,), episodes=2), dataset_seeds=collected)
    with pytest.raises(ValueError, match="overlap|were used to collect"):
        evaluate(lambda env, seed: EveryOther(), EvalConfig("test/Flag-v0", seeds=(0,), episodes=2),
                 dataset_seeds={1_000_001})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seeds=()), "seeds"),
        (dict(seeds=(1, 1)), "seeds"),
        (dict(episodes=0), "episodes"),
        (dict(episodes=1001), "episodes"),
        (dict(max_steps=0), "max_steps"),
        (dict(videos=3, episodes=2), "videos"),
    ],
)
def test_bad_evaluation_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EvalConfig("test/Flag-v0", **kwargs)


def test_expert_on_reach_with_films_of_the_front_view_and_goal(tmp_path):
    config = EvalConfig("armworld/FrankaReach-v0", seeds=(0,), episodes=2, videos=1, video_height=64)
    result = evaluate(lambda env, seed: load_agent("expert", env, seed=seed), config, "expert", out=tmp_path)
    assert result.overall.successes == 2 and result.overall.mean_final_distance < 0.05
    assert len(result.videos) == 1
    frames = imageio.mimread(result.videos[0])
    # 30 actions, the last observation, then it held for a second with the outcome
    assert len(frames) == 31 + 10 and frames[0].shape == (64 + band_height(64), 128, 3)
    view, goal = slice(20, 64), slice(64, 128)  # rows below the panels' labels; the goal panel's columns
    assert np.abs(frames[0][view, :64].astype(int) - frames[-1][view, :64]).mean() > 3  # the arm moved
    assert np.abs(frames[0][view, goal].astype(int) - frames[-1][view, goal]).mean() < 3  # the goal stays
    success_band, step_band = frames[-1][-10:].reshape(-1, 3).mean(0), frames[0][-10:].reshape(-1, 3).mean(0)
    assert success_band[1] > success_band[0] + 40 and np.abs(step_band - BAND_COLOR).max() < 10  # green, then dark


def test_films_show_the_goal_image_from_the_camera_the_agent_plans_from(tmp_path):
    class TopCameraExpert:  # the expert, declaring a camera as image-based agents do
        camera = "top"

        def __init__(self, env):
            self.expert = load_agent("expert", env, seed=0)
            self.reset, self.act = self.expert.reset, self.expert.act

    config = EvalConfig("armworld/FrankaReach-v0", seeds=(0,), episodes=1, videos=1, video_height=64)
    result = evaluate(lambda env, seed: TopCameraExpert(env), config, "expert", out=tmp_path)
    first = imageio.mimread(result.videos[0])[0]
    env = gymnasium.make("armworld/FrankaReach-v0")
    env.reset(seed=eval_seed(0, 0))
    def difference(camera):  # mean absolute difference to the goal panel below its label (the MP4 is lossy)
        return np.abs(first[20:64, 64:128].astype(int) - env.unwrapped.goal_image(camera, size=64)[20:]).mean()

    assert difference("top") < 3 < 10 < difference("front"), (difference("top"), difference("front"))


def test_eval_videos_writes_a_playable_film_of_the_chosen_height(tmp_path, capsys):
    out = tmp_path / "films"
    assert main(["eval", "--agent", "random", "--env", "armworld/FrankaReach-v0", "--episodes", "1", "--seeds", "2",
                 "--max-steps", "3", "--out", str(out), "--videos", "1", "--video-height", "96"]) == 0
    (video,) = json.loads((out / "results.json").read_text())["videos"]
    reader = imageio.get_reader(video)
    frames = [frame for frame in reader]
    assert reader.get_meta_data()["fps"] == 10
    assert len(frames) == 3 + 1 + 10 and frames[0].shape == (96 + band_height(96), 2 * 96, 3)
    capsys.readouterr()
    assert main(["eval", "--agent", "random", "--env", "armworld/FrankaReach-v0", "--out", str(out),
                 "--videos", "1", "--video-height", "97"]) == 1
    assert "argument --video-height: expected an even number of pixels within 64..640, got '97'" in capsys.readouterr().err


def test_eval_verb_writes_results_and_reports_bad_input(tmp_path, capsys):
    out = tmp_path / "random"
    assert main(["eval", "--agent", "random", "--env", "armworld/FrankaReach-v0", "--episodes", "2",
                 "--seeds", "4", "--max-steps", "5", "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["episodes"] == 2 and saved["seeds"] == [4] and saved["mean_episode_length"] == 5
    assert "| all | 2 |" in (out / "results.md").read_text()
    capsys.readouterr()
    assert main(["eval", "--agent", "planner", "--env", "armworld/FrankaReach-v0", "--out", str(out)]) == 1
    assert "unknown agent 'planner'" in capsys.readouterr().err
    assert main(["eval", "--agent", "expert", "--env", "armworld/FrankaReach-v0", "--goal", "g.png", "--out", str(out)]) == 1
    assert "world-model agents" in capsys.readouterr().err
    assert main(["eval", "--agent", "expert", "--env", "armworld/Nope-v0", "--out", str(out)]) == 1
    assert "Nope" in capsys.readouterr().err


def test_unknown_specs_and_missing_sb3_models_get_clear_errors():
    env = gymnasium.make("armworld/FrankaReach-v0")
    with pytest.raises(AgentSpecError, match="expert, random, wm:PATH"):
        load_agent("wm:", env)
    with pytest.raises(Exception, match="nowhere|armworld.agents.rl"):
        load_agent("sb3:nowhere/model.zip", env)
