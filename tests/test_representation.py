"""Scoring representations for planning (agents/representation.py, `armworld score`), at tiny sizes."""

import json

import gymnasium
import numpy as np
import pytest
import torch

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.representation import (
    Camera,
    Representation,
    collect_expert_episodes,
    load_representation,
    oracle,
    probes,
    rank_correlation,
    ridge_predictions,
    sample_sequences,
)
from armworld.cli import main

NOISE = Representation("noise", lambda frames: torch.rand(len(frames), 4, 8))  # an energy that knows nothing


@pytest.fixture(scope="module")
def reach():
    """FrankaReach with 15-step episodes, its top camera at 32 px."""
    env = gymnasium.make("armworld/FrankaReach-v0", obs_mode="state", max_episode_steps=15)
    camera = Camera(env, "top", 32)
    yield env, camera
    camera.close()
    env.close()


@pytest.fixture(scope="module")
def expert_episodes(reach):
    return collect_expert_episodes(*reach, episodes=40, first_seed=1_000_100, noise=0.5)


def test_candidates_hold_orientation_and_start_with_the_last_plan_shifted():
    previous = np.tile(np.linspace(-1, 1, 7, dtype=np.float32), (3, 1))
    previous[:, 0] = [0.1, 0.2, 0.3]
    sequences = sample_sequences(np.random.default_rng(0), previous, gripper=1.0, candidates=8)
    assert sequences.shape == (8, 3, 7) and np.all(np.abs(sequences) <= 1.0)
    assert np.all(sequences[:, :, 3:6] == 0.0)
    np.testing.assert_array_equal(sequences[0, :, 0], previous[[1, 2, 2], 0])
    np.testing.assert_array_equal(sequences[1, :, :-1], 0.0)
    assert np.all(sequences[1, :, -1] == 1.0)


def test_ridge_recovers_a_linear_map_with_an_offset():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(50, 3))
    x = rng.normal(size=(200, 50))
    y = x @ weights + [1.0, -2.0, 0.5]
    predicted = ridge_predictions(x[:150], y[:150], x[150:], np.array([1e-6]))[0]
    np.testing.assert_allclose(predicted, y[150:], atol=1e-4)


def test_the_true_distance_leads_the_search_to_the_goal_and_a_random_energy_does_not(reach):
    distance = oracle(*reach, load_representation("distance"), episodes=3, candidates=4, horizon=2)
    noise = oracle(*reach, NOISE, episodes=3, candidates=4, horizon=2)
    assert distance["successes"] >= 2, distance
    assert noise["successes"] <= 1, noise
    assert noise["mean_final_distance"] > 2 * distance["mean_final_distance"]


def test_pixel_distance_to_the_goal_image_ranks_like_the_true_distance(expert_episodes):
    pixels = rank_correlation(load_representation("pixels"), expert_episodes[:2])
    assert pixels["episodes"] == 2 and pixels["mean"] > 0.4, pixels
    assert abs(rank_correlation(NOISE, expert_episodes[:2])["mean"]) < 0.4


def test_tcp_position_is_linearly_decodable_from_pixels_on_held_out_episodes(expert_episodes):
    tcp = probes(load_representation("pixels"), expert_episodes, cube=False)["tcp"]
    assert tcp["fit_episodes"] == tcp["test_episodes"] == 20
    assert tcp["r2"] > 0.4 and tcp["ci"][0] > 0.0, tcp
    assert probes(NOISE, expert_episodes, cube=False)["tcp"]["r2"] < 0.1


def test_push_probes_the_cube_too():
    env = gymnasium.make("armworld/FrankaPush-v0", obs_mode="state", max_episode_steps=5)
    camera = Camera(env, "top", 32)
    episodes = collect_expert_episodes(env, camera, episodes=2, first_seed=1_000_100)
    camera.close()
    result = probes(load_representation("pixels"), episodes, cube=True)
    assert set(result) == {"tcp", "cube"} and result["cube"]["test_episodes"] == 1


def test_score_writes_the_table_json_and_figure(tmp_path, capsys):
    out = tmp_path / "scores"
    status = main([
        "score", "--repr", "distance", "pixels", "--env", "FrankaReach-v0", "--image-size", "32", "--episodes", "1",
        "--candidates", "4", "--horizon", "2", "--expert-episodes", "2", "--max-steps", "5",
        "--randomization", "default", "--out", str(out),
    ])
    assert status == 0
    scores = json.loads((out / "scores.json").read_text())
    assert scores["randomization"] == "default" and "scenes randomised (`default`)" in (out / "scores.md").read_text()
    assert list(scores["results"]) == ["distance", "pixels"]
    assert "rank_correlation" not in scores["results"]["distance"]
    assert set(scores["results"]["pixels"]) == {"oracle", "rank_correlation", "probes"}
    table = (out / "scores.md").read_text()
    assert "| `pixels` |" in table and "TCP probe R^2" in table
    assert (out / "scores.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "name, message",
    [("nonsense", "unknown representation 'nonsense'"), ("encoder:no/such/run", "no checkpoint at no/such/run")],
)
def test_score_refuses_a_bad_representation_in_one_line(tmp_path, capsys, name, message):
    status = main(["score", "--repr", "pixels", name, "--out", str(tmp_path / "scores")])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "scores" / "scores.json").exists()
