"""The object world model (worldmodel/object_model.py): its reader reads positions, its dynamics
learn a push, its rollout and energy follow the actions, and it trains, saves, loads and plans
from the command line like any world model."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest
import torch

import armworld  # noqa: F401 (registers the envs)
from armworld.agents.loading import env_kwargs_for, load_agent
from armworld.cli import main
from armworld.worldmodel.checkpoint import export_checkpoint, load_world_model
from armworld.worldmodel.object_model import (
    ObjectModelConfig,
    ObjectTrainConfig,
    ObjectWorldModel,
    Recording,
    train_dynamics,
    train_reader,
)
from armworld.worldmodel.positions import PositionReader, PositionReaderConfig
from armworld.worldmodel.world_model import Context, integrate_proprio

PUSH_RADIUS = 0.08  # m: in the synthetic scene the hand carries the object along within this distance


def pushed_recording(episodes: int, steps: int = 12, size: int = 32, seed: int = 0) -> Recording:
    """A hand (white square) wandering over a table and an object (red square) it carries along
    when it moves within ``PUSH_RADIUS`` of it; images of ``size`` px show both (1 px = 1 / size m)."""
    rng = np.random.default_rng(seed)
    frames, proprio, objects, episode = [], [], [], []
    for e in range(episodes):
        hand = np.array([*rng.uniform(0.2, 0.8, 2), 0.3])
        obj = np.array([*rng.uniform(0.2, 0.8, 2), 0.0])
        for t in range(steps + 1):
            image = np.full((size, size, 3), 30, dtype=np.uint8)
            for (x, y, _), colour in ((hand, (240, 240, 240)), (obj, (220, 30, 30))):  # the object on top
                col, row = int(x * size), int(y * size)
                image[max(0, row - 2) : row + 2, max(0, col - 2) : col + 2] = colour
            frames.append(image)
            proprio.append(np.array([*hand, 0.0, 0.0, 0.0, 0.0], dtype=np.float32))
            objects.append(obj.astype(np.float32))
            episode.append(e)
            move = np.array([*rng.uniform(-0.05, 0.05, 2), 0.0])
            if np.linalg.norm(hand[:2] - obj[:2]) < PUSH_RADIUS:
                obj = np.clip(obj + move, 0.05, 0.95)
            hand = np.clip(hand + move, 0.05, 0.95)
    episode = np.array(episode)
    return Recording(np.stack(frames), np.stack(proprio), np.stack(objects), episode, episode % 5 == 4)


def test_the_reader_learns_to_read_where_the_object_and_the_hand_are():
    torch.manual_seed(0)
    data = pushed_recording(300)
    reader = PositionReader(PositionReaderConfig(image_size=32, width=8, hidden=64))
    errors = train_reader(reader, data, ObjectTrainConfig(reader_steps=500, batch_size=32))
    spread = np.linalg.norm(data.objects[data.valid] - data.objects[~data.valid].mean(0), axis=1)
    assert errors["object_error_m"] < 0.35 * np.median(spread)  # far better than guessing the mean
    assert errors["tcp_error_m"] < 0.35 * np.median(spread)
    read = reader(torch.from_numpy(data.frames[:3])[None])
    assert read.shape == (1, 3, 1, 6) and torch.isfinite(read).all()


def test_frames_after_the_object_falls_off_the_table_are_left_out():
    data = pushed_recording(4)  # 13 frames per episode, the object on the table (z = 0)
    data.objects[10:13, 2] = [-0.5, -3.0, -40.0]  # episode 0 ends with the object falling
    kept = data.on_the_table()
    assert len(kept.frames) == len(data.frames) - 3 and len(kept.proprio) == len(kept.valid) == len(kept.frames)
    assert (kept.objects[:, 2] >= 0).all()
    assert (kept.episode == 0).sum() == 10 and (kept.episode == 1).sum() == 13  # the fall's frames only


def test_the_dynamics_learn_to_carry_the_object_along():
    torch.manual_seed(0)
    data = pushed_recording(60)
    model = ObjectWorldModel(PositionReader(PositionReaderConfig()), ObjectModelConfig())
    config = ObjectTrainConfig(dynamics_steps=400, dynamics_batch_size=128, rollout_steps=2, position_noise=0.0)
    errors = train_dynamics(model.dynamics, data, config)
    assert errors["moving_windows"] > 10
    assert errors["object_end_error_m"] < 0.5 * errors["object_end_error_if_still_m"]


def test_rollout_moves_the_tcp_as_the_actions_say_and_the_energy_asks_for_the_object_at_its_goal():
    model = ObjectWorldModel(PositionReader(PositionReaderConfig()), ObjectModelConfig(reach_weight=0.5))
    torch.nn.init.zeros_(model.dynamics.net[-1].weight)
    torch.nn.init.zeros_(model.dynamics.net[-1].bias)  # the object never moves
    proprio = torch.tensor([[[0.4, 0.0, 0.2, np.pi, 0.0, 0.0, 0.0]]])
    z = torch.tensor([[[[0.5, 0.1, 0.02, 0.4, 0.0, 0.2]]]])  # object, TCP as read
    actions = torch.zeros(2, 3, 7)
    actions[0, :, 0] = 0.05  # towards +x, 5 cm per step
    imagined = model.rollout(model.context(z, proprio), actions)
    assert imagined.shape == (2, 3, 1, 6)
    reached = integrate_proprio(proprio[:, -1].expand(2, -1), torch.cat([actions, actions[:, -1:]], 1))[:, 1:, :3]
    torch.testing.assert_close(imagined[..., 0, 3:], reached)
    torch.testing.assert_close(imagined[..., 0, :3], z[0, 0, 0, :3].expand(2, 3, 3))
    goal = torch.tensor([[0.5, 0.2, 0.02, 0.0, 0.0, 0.0]])
    energy = model.step_energy(imagined, goal)
    hand_to_object = (reached - z[0, 0, 0, :3]).norm(dim=-1)
    torch.testing.assert_close(energy, 0.1 + 0.5 * hand_to_object)
    assert (energy[0] < energy[1]).all()  # the hand nearing the object scores better than staying


def test_a_context_must_match_the_candidates():
    model = ObjectWorldModel(PositionReader(PositionReaderConfig()), ObjectModelConfig())
    context = Context(torch.zeros(2, 1, 1, 6), torch.zeros(2, 1, 7), torch.zeros(2, 0, 7), None)
    with pytest.raises(ValueError, match="context batch 2"):
        model.rollout(context, torch.zeros(3, 2, 7))


@pytest.fixture(scope="module")
def push_data(tmp_path_factory):
    """Three FrankaPush episodes of the scripted expert, 64 px front images."""
    path = tmp_path_factory.mktemp("data") / "push.h5"
    assert main([
        "collect", "--env", "armworld/FrankaPush-v0", "--policy", "expert", "--episodes", "3", "--workers", "1",
        "--max-steps", "12", "--obs-mode", "pixels_state", "--image-size", "64", "--cameras", "front",
        "--seed", "0", "--out", str(path),
    ]) == 0
    return path


def test_train_objects_writes_a_model_that_loads_exports_and_plans(push_data, tmp_path, capsys):
    out = tmp_path / "objects"
    assert main([
        "train-objects", "--data", str(push_data), "--camera", "front", "--reader-steps", "4", "--batch-size", "8",
        "--dynamics-steps", "4", "--dynamics-batch-size", "8", "--no-progress", "--out", str(out),
    ]) == 0
    assert "validation" in capsys.readouterr().out
    model = load_world_model(out)
    assert isinstance(model, ObjectWorldModel)
    config = json.loads((out / "step-000008" / "config.json").read_text())
    assert config["encoder"]["kind"] == "positions" and config["train"]["camera"] == "front"
    small = export_checkpoint(out, tmp_path / "exported", "float16")
    assert isinstance(load_world_model(small), ObjectWorldModel)

    assert env_kwargs_for(f"wm:{small}") == {"obs_mode": "pixels_state", "cameras": ("front",), "image_size": 64}
    env = gymnasium.make("armworld/FrankaPush-v0", **env_kwargs_for(f"wm:{small}"))
    agent = load_agent(f"wm:{small}", env, seed=0)
    obs, _ = env.reset(seed=0)
    agent.reset()
    action = agent.act(obs)
    assert action.shape == (7,) and np.all(np.abs(action) <= 1) and np.all(action[3:6] == 0)
    for flags, horizon in (([], 10), (["--horizon", "3"], 3)):  # the model's recommended horizon, or the flag's
        assert main([
            "eval", "--agent", f"wm:{out}", "--env", "armworld/FrankaPush-v0", "--episodes", "1", "--seeds", "0",
            "--max-steps", "2", *flags, "--out", str(tmp_path / f"eval{horizon}"),
        ]) == 0
        results = json.loads((tmp_path / f"eval{horizon}" / "results.json").read_text())
        assert results["episodes"] == 1
        assert results["agent_options"]["planner"]["config"]["horizon"] == horizon
        assert results["agent_options"]["planner"]["config"]["samples"] == 256


def test_train_objects_refuses_data_without_the_camera(push_data, tmp_path, capsys):
    assert main(["train-objects", "--data", str(push_data), "--camera", "top", "--out", str(tmp_path / "o")]) == 1
    error = capsys.readouterr().err
    assert "obs/rgb_top" in error and "--cameras top" in error
    assert not (tmp_path / "o").exists()


def test_train_refuses_to_start_a_predictor_from_an_object_model(push_data, tmp_path, capsys):
    out = tmp_path / "objects"
    assert main(["train-objects", "--data", str(push_data), "--reader-steps", "2", "--dynamics-steps", "2",
                 "--batch-size", "4", "--dynamics-batch-size", "4", "--no-progress", "--out", str(out)]) == 0
    assert main(["train", "--data", str(push_data), "--init", str(out), "--steps", "1", "--out", str(tmp_path / "wm")]) == 1
    assert "ObjectWorldModel" in capsys.readouterr().err


def test_the_shipped_object_model_pushes_the_cube_toward_the_goal_image():
    from armworld.agents.evaluate import eval_seed, run_episode

    kwargs = env_kwargs_for("wm:objects")  # read from its config: the front camera at 64 px
    assert kwargs == {"obs_mode": "pixels_state", "cameras": ("front",), "image_size": 64}
    env = gymnasium.make("armworld/FrankaPush-v0", **kwargs)
    obs, _ = env.reset(seed=eval_seed(0, 0))
    start = np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"])  # 0.20 m
    agent = load_agent("wm:objects", env, seed=0)  # from the goal image alone, iCEM as the model recommends:
    assert (agent.planner.config.horizon, agent.planner.config.samples) == (10, 256)
    result = run_episode(env, agent, eval_seed(0, 0), max_steps=60)
    assert result.final_distance < start - 0.1  # pushed at least 10 cm nearer (to 0.049 m in the evaluation)
