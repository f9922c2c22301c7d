"""The world-model agent: planning with an exact model reaches its goal; cached == uncached;
goal images from the sim, files and sub-goals; bad goal images; loading and ``armworld demo``.

The exact model is a small module with the ``WorldModel`` planning interface
(``encode`` / ``context`` / ``rollout``), not the transformer with hand-set weights: a
square drawn on a dark image marks a point on the table; ``encode`` reads the square's
position back from the pixels and maps it linearly to latent tokens, ``z = W p``, and
``rollout`` applies the hand-made linear dynamics ``z' = z + W a_xy``, which is exactly
what :class:`SquareEnv` does.
"""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import gymnasium
import numpy as np
import pytest
import torch
from PIL import Image

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import EvalConfig, evaluate, run_episode
from armworld.agents.film import FilmConfig, band_height
from armworld.agents.loading import env_kwargs_for, load_agent
from armworld.agents.planners import CEM, MPPI, ActionBounds, CEMConfig, ICEMConfig, MPPIConfig, PlannerOptions
from armworld.agents.world_model_agent import GoalImageError, WorldModelAgent, WorldModelAgentConfig, load_goal_image
from armworld.cli import main
from armworld.envs.conventions import MAX_POS_DELTA, SUCCESS_THRESHOLD
from armworld.worldmodel.checkpoint import save_checkpoint
from armworld.worldmodel.encoder import PRESETS, FrameEncoder
from armworld.worldmodel.predictor import ACPredictor
from armworld.worldmodel.train import ACTraining, predictor_config
from armworld.worldmodel.world_model import Context, WorldModel

SIZE = 64


LOW, SPAN = np.array([0.25, -0.25]), 0.5  # the table square the images show (m)


def draw(xy: np.ndarray) -> np.ndarray:
    """uint8 [64, 64, 3]: a 7 px bright square centred on the pixel of point ``xy`` (m)."""
    image = np.full((SIZE, SIZE, 3), 15, dtype=np.uint8)
    col, row = np.round((np.asarray(xy) - LOW) / SPAN * (SIZE - 1)).astype(int)
    image[max(row - 3, 0) : row + 4, max(col - 3, 0) : col + 4] = (240, 220, 40)
    return image


class SquareEnv(gymnasium.Env):
    """A point moved by the env action's xyz x MAX_POS_DELTA (z ignored) toward a goal point."""

    def __init__(self):
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (7,), np.float32)
        vector = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float64)
        self.observation_space = gymnasium.spaces.Dict(
            {
                "rgb_front": gymnasium.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8),
                "proprio": gymnasium.spaces.Box(-np.inf, np.inf, (7,), np.float64),
                "achieved_goal": vector,
                "desired_goal": vector,
            }
        )

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(LOW + 0.08, LOW + SPAN - 0.08)
        self.goal = self.np_random.uniform(LOW + 0.08, LOW + SPAN - 0.08)
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + np.asarray(action)[:2] * MAX_POS_DELTA, LOW + 0.03, LOW + SPAN - 0.03)
        distance = float(np.linalg.norm(self.pos - self.goal))
        return self._obs(), 0.0, False, False, {"is_success": distance < SUCCESS_THRESHOLD}

    def _obs(self):
        proprio = np.array([*self.pos, 0.2, 0.0, 0.0, 0.0, 0.0])
        return {
            "rgb_front": draw(self.pos),
            "proprio": proprio,
            "achieved_goal": np.array([*self.pos, 0.0]),
            "desired_goal": np.array([*self.goal, 0.0]),
        }

    def goal_image(self, camera="front", size=None):
        return draw(self.goal)


gymnasium.register("test/Square-v0", entry_point=SquareEnv, max_episode_steps=20)


class LinearLatentModel(torch.nn.Module):
    """``encode``: square position p (m) read from the pixels -> tokens ``W p`` [N=4, D=8];
    ``rollout``: ``z_{h+1} = z_h + W a_h[:2]``, the exact dynamics of SquareEnv in latent space."""

    def __init__(self):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(4, 8, 2, generator=torch.Generator().manual_seed(0)), requires_grad=False)
        self.encoder = SimpleNamespace(config=SimpleNamespace(image_size=SIZE))

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        bright = (frames[..., 0] > 128).float()  # [B, T, H, W]
        rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
        mass = bright.sum(dim=(-1, -2))
        xy = torch.stack([(bright * cols).sum(dim=(-1, -2)), (bright * rows).sum(dim=(-1, -2))], -1) / mass[..., None]
        position = torch.from_numpy(LOW).float() + xy / (SIZE - 1) * SPAN  # [B, T, 2]
        return torch.einsum("ndk,btk->btnd", self.W, position)

    def context(self, z, proprio, actions=None):
        return Context(z=z, proprio=proprio, actions=actions, cache=None)

    def rollout(self, context, actions, proprio=None, use_cache=True):
        moves = torch.einsum("ndj,khj->khnd", self.W, actions[..., :2])  # [K, H, N, D]
        return context.z[:, -1:] + moves.cumsum(dim=1)

    step_energy = WorldModel.step_energy  # the L1 of the latents, as the V-JEPA 2 world model's


def exact_agent(env, planner, **kwargs):
    return WorldModelAgent(LinearLatentModel(), planner, env=env, config=WorldModelAgentConfig(**kwargs))


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_planning_with_an_exact_model_reaches_the_goal(kind):
    bounds = ActionBounds.world_model(gripper=False)
    planner = (
        CEM(CEMConfig(samples=64, iterations=4, top_k=8), bounds, seed=0)
        if kind == "cem"
        else MPPI(MPPIConfig(samples=64, iterations=4, elites=8), bounds, seed=0)
    )
    result = evaluate(lambda env, seed: exact_agent(env, planner), EvalConfig("test/Square-v0", seeds=(0,), episodes=4))
    assert result.overall.successes == 4, [e.final_distance for e in result.episodes]
    assert result.overall.mean_final_distance < 0.02
    assert result.overall.plan_time_per_action_s is not None


def test_the_path_energy_prefers_arriving_early_and_still_reaches_the_goal():
    env = gymnasium.make("test/Square-v0")
    obs, _ = env.reset(seed=0)
    bounds = ActionBounds.world_model(gripper=False)
    energies = {}
    for energy in ("last", "path"):
        agent = exact_agent(env, CEM(CEMConfig(samples=8, top_k=2, horizon=2), bounds, seed=0), energy=energy)
        agent._observe(obs)
        move = torch.zeros(7)
        move[:2] = torch.from_numpy(env.unwrapped.goal - env.unwrapped.pos).float() / 2
        early_late = torch.stack([torch.stack([2 * move, 0 * move]), torch.stack([0 * move, 2 * move])])  # [2, H, 7]
        energies[energy] = agent.energy_fn(agent._goal())(early_late)
    assert torch.isclose(energies["last"][0], energies["last"][1])  # the same end: the same energy
    assert energies["path"][0] < energies["path"][1]  # there a step earlier: lower
    planner = CEM(CEMConfig(samples=64, iterations=4, top_k=8, horizon=2), bounds, seed=0)
    result = evaluate(lambda env, seed: exact_agent(env, planner, energy="path"), EvalConfig("test/Square-v0", seeds=(0,), episodes=4))
    assert result.overall.successes == 4, [e.final_distance for e in result.episodes]
    with pytest.raises(ValueError, match=r"^energy \(--energy\) is one of \[.last., .path.\], got .sum.$"):
        WorldModelAgentConfig(energy="sum")


def test_sub_goals_are_visited_in_turn(tmp_path):
    env = gymnasium.make("test/Square-v0")
    first, final = np.array([0.35, 0.15]), np.array([0.65, -0.15])
    Image.fromarray(draw(first)).save(tmp_path / "first.png")
    bounds = ActionBounds.world_model(gripper=False)
    agent = WorldModelAgent(
        LinearLatentModel(), CEM(CEMConfig(samples=64, iterations=4, top_k=8), bounds, seed=0),
        goal=[tmp_path / "first.png", draw(final)], env=env, config=WorldModelAgentConfig(subgoal_steps=(8,)),
    )
    obs, _ = env.reset(seed=1)
    agent.reset()
    assert agent.goal_frame is None  # nothing planned yet
    shown = []
    for step in range(20):
        obs, *_ = env.step(agent.act(obs))
        shown.append(agent.goal_frame)
        if step == 7:
            assert np.linalg.norm(obs["achieved_goal"][:2] - first) < 0.02
    assert np.linalg.norm(obs["achieved_goal"][:2] - final) < 0.02
    # goal_frame: the goal each action was planned toward (the first 8 toward the first)
    assert [np.array_equal(frame, agent.goal_images[0]) for frame in shown] == [True] * 8 + [False] * 12
    assert all(np.array_equal(frame, agent.goal_images[1]) for frame in shown[8:])


def tiny_world_model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    encoder = FrameEncoder(PRESETS["tiny"])
    return WorldModel(encoder, ACPredictor(predictor_config(encoder, "tiny"))).eval()


def _pick_place_through_subgoals(steps: int = 17, **config):
    """A ``goal="subgoals"`` agent with the gripper commanded (``config``: more agent options)
    after ``steps`` actions of FrankaPickPlace's reset seed 0: the env, the agent, the env's
    whole goal sequence and the gripper commands sent."""
    env = gymnasium.make("armworld/FrankaPickPlace-v0", obs_mode="pixels_state", cameras="top")
    planner = CEM(CEMConfig(samples=8, iterations=1, top_k=2), ActionBounds.world_model(gripper=False), seed=0)
    agent_config = WorldModelAgentConfig(camera="top", gripper="goal", **config)
    agent = WorldModelAgent(tiny_world_model(), planner, goal="subgoals", env=env, config=agent_config)
    obs, _ = env.reset(seed=0)
    agent.reset()
    sequence = env.unwrapped.goal_sequence("top")  # as the episode starts: the images pose the cube where it lies now
    grippers = []
    for _ in range(steps):
        action = agent.act(obs)
        grippers.append(float(action[-1]))
        obs, *_ = env.step(action)
    return env, agent, sequence, grippers


def test_env_subgoals_set_the_schedule_and_command_the_gripper():
    env, agent, sequence, grippers = _pick_place_through_subgoals()
    assert agent.goal_steps == sequence.steps == (10, 5, 3, 6)
    assert grippers == [-1.0] * 15 + [1.0] * 2  # open over the cube and around it, then closing on it
    assert agent.goal_index == 2 and np.array_equal(agent.goal_frame, sequence.images[2])
    obs, _ = env.reset(seed=1)  # a new episode: the new cube's sequence, from its first stage
    agent.reset()
    assert agent.goal_frame is None and agent.goal_images == []  # the last episode's goals are gone
    agent.act(obs)
    assert agent.goal_index == 0 and np.array_equal(agent.goal_frame, env.unwrapped.goal_sequence("top").images[0])


def test_chosen_subgoal_stages_keep_the_goal_images_schedule_and_the_gripper_of_those_stages():
    env, agent, sequence, grippers = _pick_place_through_subgoals(subgoal_stages=(1,))  # the hand open around the cube
    assert agent.goal_steps == (10 + 5,)  # the goal image starts when it would after all four stages' first two
    assert [np.array_equal(a, b) for a, b in zip(agent.goal_images, sequence.images[[1, -1]])] == [True, True]
    assert grippers == [-1.0] * 15 + [1.0] * 2  # open toward the grasp image, closed toward the goal image
    with pytest.raises(ValueError, match=r"increasing indices of the 4 stages before the goal image \(0..3\), got \[4\]"):
        sequence.select((4,))
    assert sequence.select((0, 2)).steps == (10, 8) and sequence.select((0, 2)).closures == sequence.closures[::2]
    with pytest.raises(ValueError, match="subgoal_stages chooses among the env's sub-goals: it needs goal='subgoals'"):
        WorldModelAgent(tiny_world_model(), agent.planner, goal="env", env=env, config=agent.config)


def test_eval_flag_subgoal_stages_is_recorded_and_needs_subgoals(tiny_checkpoint, tmp_path, capsys):
    base = ["eval", "--agent", f"wm:{tiny_checkpoint}", "--env", "armworld/FrankaPickPlace-v0", "--episodes", "1",
            "--seeds", "0", "--max-steps", "2", "--samples", "8", "--iterations", "1", "--subgoal-stages", "1"]
    assert main([*base, "--out", str(tmp_path / "refused")]) == 1
    assert "--subgoal-stages chooses among the sim's sub-goal images: give --subgoals with it" in capsys.readouterr().err
    assert main([*base, "--subgoals", "--gripper", "goal", "--out", str(tmp_path / "run")]) == 0
    options = json.loads((tmp_path / "run" / "results.json").read_text())["agent_options"]
    assert options["subgoal_stages"] == [1] and options["goal"] == "subgoals"


def test_films_show_each_frame_beside_the_goal_its_action_was_planned_toward():
    env = gymnasium.make("armworld/FrankaReach-v0", obs_mode="pixels_state")
    planner = CEM(CEMConfig(samples=8, iterations=1, top_k=2), ActionBounds.world_model(), seed=0)
    agent = WorldModelAgent(tiny_world_model(), planner, goal="subgoals", env=env)
    result = run_episode(env, agent, reset_seed=1_000_000, max_steps=12, film=FilmConfig(height=SIZE))
    halfway, goal = agent.goal_images  # the sim's images of the hand halfway there, then at the goal
    assert agent.goal_steps == (10,) and np.abs(halfway.astype(int) - goal).mean() > 10
    below_label = slice(20, SIZE)  # front view | what the model sees | goal image, each SIZE px
    goal_panels = result.frames[:, below_label, 2 * SIZE :]
    assert all(np.array_equal(frame, halfway[below_label]) for frame in goal_panels[:10])
    assert all(np.array_equal(frame, goal[below_label]) for frame in goal_panels[10:])


def test_cached_and_uncached_planning_give_the_same_actions():
    env = gymnasium.make("armworld/FrankaReach-v0", obs_mode="pixels_state")
    wm = tiny_world_model()
    actions = {}
    for reuse in (True, False):
        planner = CEM(CEMConfig(samples=24, iterations=2, top_k=4, horizon=2), ActionBounds.world_model(), seed=7)
        agent = WorldModelAgent(wm, planner, env=env, config=WorldModelAgentConfig(context_frames=2, reuse_context=reuse))
        obs, _ = env.reset(seed=3)
        agent.reset()
        actions[reuse] = []
        for _ in range(3):
            actions[reuse].append(agent.act(obs))
            obs, *_ = env.step(actions[reuse][-1])
        assert len(agent.plan_times) == 3
    assert np.abs(np.stack(actions[True]) - np.stack(actions[False])).max() < 1e-4
    assert np.abs(np.stack(actions[True])).max() > 0  # it moved


def test_goal_images_are_resized_or_refused_with_a_reason(tmp_path):
    big = np.asarray(Image.fromarray(draw(np.array([0.5, 0.0]))).resize((128, 128)))
    Image.fromarray(big).save(tmp_path / "big.png")
    assert load_goal_image(tmp_path / "big.png", SIZE).shape == (SIZE, SIZE, 3)
    opaque = np.concatenate([draw(np.array([0.5, 0.0])), np.full((SIZE, SIZE, 1), 255, np.uint8)], -1)
    assert np.array_equal(load_goal_image(opaque, SIZE), opaque[..., :3])
    Image.fromarray(big[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.concatenate([opaque[..., :3], np.zeros((SIZE, SIZE, 1), np.uint8)], -1)).save(tmp_path / "clear.png")
    Image.fromarray(big[:, :100]).save(tmp_path / "wide.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    for name, reason in [("gray.png", "RGB"), ("clear.png", "transparent"), ("wide.png", "square"),
                         ("broken.png", "readable"), ("missing.png", "does not exist")]:
        with pytest.raises(GoalImageError, match=reason):
            load_goal_image(tmp_path / name, SIZE)
    with pytest.raises(GoalImageError, match="8-bit"):
        load_goal_image(np.zeros((SIZE, SIZE, 3), np.float32), SIZE)


def test_agent_refuses_what_it_cannot_use():
    bounds = ActionBounds.world_model()
    env = gymnasium.make("armworld/FrankaReach-v0")  # state observations: no camera image
    agent = WorldModelAgent(LinearLatentModel(), CEM(CEMConfig(samples=8, top_k=2), bounds), env=env)
    obs, _ = env.reset(seed=0)
    with pytest.raises(KeyError, match="obs_mode='pixels_state'"):
        agent.act(obs)
    with pytest.raises(ValueError, match="subgoal_steps"):
        WorldModelAgent(LinearLatentModel(), CEM(CEMConfig(), bounds), goal=[draw(np.zeros(2))] * 2, env=env)
    with pytest.raises(ValueError, match="7-D"):
        WorldModelAgent(LinearLatentModel(), CEM(CEMConfig(), ActionBounds((1.0,))), env=env)
    with pytest.raises(ValueError, match="needs the env"):
        WorldModelAgent(LinearLatentModel(), CEM(CEMConfig(), bounds))
    commanded = WorldModelAgentConfig(gripper="goal")
    held = ActionBounds.world_model(gripper=False)
    with pytest.raises(ValueError, match="simulator's goals"):
        WorldModelAgent(LinearLatentModel(), CEM(CEMConfig(), held), goal=draw(np.zeros(2)), env=env, config=commanded)
    with pytest.raises(ValueError, match="commanded, not planned"):
        WorldModelAgent(LinearLatentModel(), CEM(CEMConfig(), bounds), env=env, config=commanded)
    with pytest.raises(ValueError, match="from the env"):
        WorldModelAgent(LinearLatentModel(), CEM(CEMConfig(), bounds), goal="subgoals", env=env, config=WorldModelAgentConfig(subgoal_steps=(3,)))
    with pytest.raises(ValueError, match="unknown gripper mode"):
        WorldModelAgentConfig(gripper="squeeze")


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """An `armworld train`-style run directory holding a freshly initialised tiny world model."""
    wm = tiny_world_model()
    config = dict(ACTraining(wm).checkpoint_config(), train={"camera": "front"})
    save_checkpoint(tmp_path / "wm", 0, config, wm.state_dict(), metadata={})
    return tmp_path / "wm"


def test_wm_specs_load_the_checkpoint_and_ask_for_camera_images(tiny_checkpoint):
    kwargs = env_kwargs_for(f"wm:{tiny_checkpoint}")
    assert kwargs == {"obs_mode": "pixels_state", "cameras": ("front",), "image_size": 64}
    env = gymnasium.make("armworld/FrankaReach-v0", **kwargs)
    agent = load_agent(f"wm:{tiny_checkpoint}", env, seed=0)
    obs, _ = env.reset(seed=0)
    agent.reset()
    action = agent.act(obs)
    assert action.shape == (7,) and np.all(np.abs(action) <= 1) and np.all(action[3:6] == 0)
    with pytest.raises(Exception, match="no checkpoint"):
        load_agent(f"wm:{tiny_checkpoint}-missing", env)


def test_the_shipped_default_model_loads_verified_and_plans():
    kwargs = env_kwargs_for("wm:default")  # the camera and size it was trained on, read from its config
    assert kwargs == {"obs_mode": "pixels_state", "cameras": ("top",), "image_size": 64}
    env = gymnasium.make("armworld/FrankaReach-v0", **kwargs)
    agent = load_agent("wm:default", env, seed=0)  # reading it checks the weights' size and sha256
    obs, _ = env.reset(seed=1_000_000)
    agent.reset()
    action = agent.act(obs)
    assert action.shape == (7,) and np.all(np.abs(action) <= 1) and np.all(action[3:6] == 0)
    without_its_camera = {k: v for k, v in obs.items() if k != "rgb_top"}
    with pytest.raises(KeyError, match="cameras including 'top'"):  # refused, with the fix
        agent.act(without_its_camera)


def test_eval_verb_with_a_world_model_and_a_goal_file(tiny_checkpoint, tmp_path, capsys):
    goal = tmp_path / "goal.png"
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(goal)
    out = tmp_path / "results"
    code = main([
        "eval", "--agent", f"wm:{tiny_checkpoint}", "--env", "armworld/FrankaReach-v0", "--episodes", "1",
        "--seeds", "0", "--max-steps", "2", "--samples", "8", "--iterations", "1", "--top-k", "2",
        "--goal", str(goal), "--out", str(out),
    ])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert results["episodes"] == 1 and results["plan_time_per_action_s"] > 0
    assert results["env_kwargs"]["obs_mode"] == "pixels_state"
    options = results["agent_options"]  # the run can be repeated from its record
    assert options["planner"]["name"] == "icem" and options["energy"] == "path" and options["goal"] == str(goal)
    assert options["planner"]["config"] == dataclasses.asdict(ICEMConfig(samples=8, iterations=1, elites=2))
    assert options["device"] == "cpu"
    capsys.readouterr()
    zero_elites = ["--top-k", "0", "--goal", str(goal), "--out", str(tmp_path / "refused")]
    assert main(["eval", "--agent", f"wm:{tiny_checkpoint}", "--env", "armworld/FrankaReach-v0", *zero_elites]) == 1
    assert "argument --top-k: expected an integer >= 1, got '0'" in capsys.readouterr().err


def test_demo_runs_end_to_end_on_a_reduced_setting(tiny_checkpoint, tmp_path, capsys):
    video = tmp_path / "demo.mp4"
    code = main([
        "demo", "--model", str(tiny_checkpoint), "--episodes", "1", "--max-steps", "2", "--seed", "5",
        "--samples", "8", "--iterations", "1", "--top-k", "2", "--out", str(video), "--video-height", "64",
    ])
    out = capsys.readouterr().out
    assert code == 0
    assert f"FrankaReach-v0 (wm:{tiny_checkpoint}): success" in out and f"FrankaPush-v0 (wm:{tiny_checkpoint}): success" in out
    assert "s per action" in out and "the sim's goal image alone, gripper: planned" in out
    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    # two episodes of 2 actions, the last observation and it held for a second with the outcome;
    # front view | what the model sees | goal image over the caption band
    assert len(frames) == 2 * (3 + 10) and frames[0].shape == (64 + band_height(64), 3 * 64, 3)


def test_demo_plans_each_env_with_the_shipped_model_that_heads_for_its_goal_image_alone():
    from armworld.cli import build_parser
    from armworld.commands.agents import DEMO_ENVS, _agent_options, _planner_options, demo_model

    parse = build_parser().parse_args
    plain = parse(["demo"])
    assert [demo_model(plain, name) for name in DEMO_ENVS] == ["wm:default", "wm:objects"]
    assert demo_model(plain, "armworld/FrankaPickPlace-v0") == "wm:default"
    assert [demo_model(parse(["demo", "--subgoals"]), name) for name in DEMO_ENVS] == ["wm:default"] * 2  # objects: no sub-goals measured
    assert [demo_model(parse(["demo", "--model", "objects"]), name) for name in DEMO_ENVS] == ["wm:objects"] * 2
    assert _agent_options(plain, "wm:objects")["goal"] == "env" and _agent_options(plain, "wm:objects")["gripper"] == "plan"
    assert _planner_options(plain, "wm:objects").config.horizon == 10  # as the model recommends


def test_demo_through_sub_goals_commands_the_gripper_from_them(tiny_checkpoint, tmp_path, capsys):
    code = main([
        "demo", "--model", str(tiny_checkpoint), "--subgoals", "--episodes", "1", "--max-steps", "1", "--seed", "5",
        "--envs", "armworld/FrankaReach-v0", "--samples", "8", "--iterations", "1", "--top-k", "2",
        "--out", str(tmp_path / "demo.mp4"),
    ])
    assert code == 0, capsys.readouterr().err
    assert "heading for the sim's sub-goal images, then the goal image, gripper: goal" in capsys.readouterr().out


def test_demo_max_steps_beyond_the_env_budget_is_honoured(tiny_checkpoint, tmp_path, capsys):
    video = tmp_path / "demo.mp4"
    assert gymnasium.spec("armworld/FrankaReach-v0").max_episode_steps == 30
    code = main([
        "demo", "--model", str(tiny_checkpoint), "--episodes", "1", "--max-steps", "33", "--seed", "5",
        "--envs", "armworld/FrankaReach-v0", "--samples", "8", "--iterations", "1", "--top-k", "2", "--out", str(video),
    ])
    assert code == 0, capsys.readouterr().err
    assert "33 actions per episode" in capsys.readouterr().out


def test_demo_without_a_shipped_model_or_with_a_broken_one_says_so(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    assert main(["demo", "--model", str(tmp_path / "bad"), "--out", str(tmp_path / "x.mp4")]) == 1
    assert "neither a run directory" in capsys.readouterr().err


def test_demo_refuses_a_video_name_it_cannot_write_before_planning(capsys):
    assert main(["demo", "--out", "results/demo"]) == 1
    captured = capsys.readouterr()
    assert "cannot tell the video format of 'results/demo'" in captured.err
    assert "armworld demo: world model" not in captured.out  # refused before any planning


def test_planner_flags_build_the_chosen_planner_and_name_the_flags_in_errors(capsys):
    from armworld.cli import build_parser
    from armworld.commands import UsageError
    from armworld.commands.agents import _agent_options, _planner_options

    parse = build_parser().parse_args
    base = ["eval", "--agent", "wm:default", "--env", "armworld/FrankaReach-v0", "--out", "unused"]
    assert _planner_options(parse(base), "wm:default") == PlannerOptions()  # the agent's default: iCEM, three steps
    measured = {  # the planner of reports/goal_image/wm-sigreg-15k-reach-icem-h3 (149 / 150), as its results.json records it
        "samples": 128, "iterations": 4, "elites": 16, "horizon": 3, "beta": 2.0, "keep_elites": 0.3, "decay": 1.25,
        "momentum": 0.1, "init_std": 1.0, "warm_start": True,
    }
    assert dataclasses.asdict(PlannerOptions().config) == measured and WorldModelAgentConfig().energy == "path"
    cem = _planner_options(parse(base + ["--planner", "cem", "--samples", "12"]), "wm:default")  # fewer samples than 16 elites
    assert (cem.name, cem.config.samples, cem.config.top_k) == ("cem", 12, 12)
    mppi = _planner_options(parse(base + ["--planner", "mppi", "--samples", "64", "--top-k", "8"]), "wm:default")
    assert (mppi.name, mppi.config.samples, mppi.config.elites) == ("mppi", 64, 8)
    with pytest.raises(ValueError, match=r"top_k must lie in \[1, samples = 20\], got 40 \(top_k is --top-k\)"):
        _planner_options(parse(base + ["--planner", "cem", "--samples", "20", "--top-k", "40"]), "wm:default")

    objects = _planner_options(parse(base), "wm:objects")  # an object model recommends 10 steps of 256 samples
    assert (objects.name, objects.config.horizon, objects.config.samples, objects.config.elites) == ("icem", 10, 256, 16)
    assert _planner_options(parse(base + ["--horizon", "4"]), "wm:objects").config.horizon == 4  # the flag wins
    held = parse(["demo", "--no-gripper"])  # the hand held: neither commanded nor planned
    assert _agent_options(held, "wm:default")["gripper"] == "plan" and held.no_gripper
    assert not _planner_options(held, "wm:default").bounds.scale[-1]  # nor is it planned
    with pytest.raises(UsageError, match="not allowed with argument --no-gripper"):
        parse(base + ["--no-gripper", "--gripper", "goal"])
    assert main(["demo", "--envs", ",", "--out", "x.mp4"]) == 1
    assert "argument --envs: names nothing" in capsys.readouterr().err


def test_planner_option_sets_any_other_field_of_the_chosen_planners_config(capsys, tmp_path):
    from armworld.cli import build_parser
    from armworld.commands import UsageError
    from armworld.commands.agents import _planner_options

    parse = build_parser().parse_args
    base = ["eval", "--agent", "wm:default", "--env", "armworld/FrankaReach-v0", "--out", "unused", "--planner", "cem"]
    cem = _planner_options(parse(base + ["--planner-option", "momentum=0.3", "--planner-option", "warm_start=false"]), "wm:default")
    assert (cem.config.momentum, cem.config.warm_start, cem.config.init_std) == (0.3, False, 1.0)
    mppi = _planner_options(parse(base + ["--planner", "mppi", "--planner-option", "temperature=0.5",
                                          "--planner-option", "min_std=0.1", "--top-k", "8"]), "wm:default")
    assert (mppi.config.temperature, mppi.config.min_std, mppi.config.elites) == (0.5, 0.1, 8)

    refusals = {
        ("--planner", "mppi", "--planner-option", "momentum=0.3"):
            "argument --planner-option: the mppi planner has no option 'momentum'; its options: temperature, "
            "min_std, max_std, warm_start",
        ("--planner-option", "top_k=3"): "argument --planner-option: top_k is set by --top-k",
        ("--planner-option", "init_std=wide"): "argument --planner-option: init_std takes a float, got 'wide'",
        ("--planner-option", "init_std=nan"): "argument --planner-option: init_std takes a finite number",
        ("--planner-option", "warm_start=maybe"): "argument --planner-option: warm_start takes true or false",
        ("--planner-option", "momentum=1"): r"cem planner settings: momentum must lie in [0, 1), got 1.0",
    }
    for flags, message in refusals.items():
        with pytest.raises(ValueError) as refused:
            _planner_options(parse(base + list(flags)), "wm:default")
        assert message in str(refused.value)
        assert "is --top-k" not in str(refused.value)  # named only where the elite count is refused
    with pytest.raises(UsageError, match="argument --planner-option: expected KEY=VALUE"):
        parse(base + ["--planner-option", "momentum"])
    refused_run = ["eval", "--agent", "wm:default", "--env", "armworld/FrankaReach-v0", "--out", str(tmp_path / "out")]
    assert main(refused_run + ["--planner", "mppi", "--planner-option", "momentum=0.3"]) == 1
    assert "error: argument --planner-option: the mppi planner has no option 'momentum'" in capsys.readouterr().err
    assert main(refused_run + ["--planner-option", "init_std=wide"]) == 1
    assert capsys.readouterr().err == "error: argument --planner-option: init_std takes a float, got 'wide'\n"
    assert main(refused_run + ["--planner", "pi2"]) == 1  # checked when the options are built: no torch in --help
    assert capsys.readouterr().err == ("error: argument --planner: unknown planner 'pi2'; registered planners: "
                                       "cem, icem, mppi\n")


def test_the_planner_must_sample_where_the_model_runs():
    env = gymnasium.make("armworld/FrankaReach-v0", obs_mode="pixels_state")
    elsewhere = tiny_world_model().to("meta")  # a model on another device than the CPU planner
    with pytest.raises(ValueError, match="the planner samples on cpu, the world model runs on meta"):
        WorldModelAgent(elsewhere, CEM(CEMConfig(samples=8, top_k=2), ActionBounds.world_model()), env=env)


def test_device_flags_are_checked_before_any_episode(tiny_checkpoint, tmp_path, capsys):
    common = ["--env", "armworld/FrankaReach-v0", "--out", str(tmp_path / "out")]
    assert main(["eval", "--agent", f"wm:{tiny_checkpoint}", "--device", "tpu", *common]) == 1
    assert "unknown device 'tpu'; name one of cpu, cuda, cuda:N or mps" in capsys.readouterr().err
    assert main(["eval", "--agent", "expert", "--device", "cpu", *common]) == 1
    assert "are for world-model agents" in capsys.readouterr().err
    assert main(["eval", "--agent", f"wm:{tiny_checkpoint}", "--image-size", "128", *common]) == 1
    assert "fixes its own image size" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["eval", "--agent", f"wm:{tiny_checkpoint}", "--device", "cuda", *common]) == 1
        assert "CUDA is not available here; use --device cpu" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_world_model_agent_plans_on_the_gpu(tiny_checkpoint):
    env = gymnasium.make("armworld/FrankaReach-v0", **env_kwargs_for(f"wm:{tiny_checkpoint}"))
    agent = load_agent(f"wm:{tiny_checkpoint}", env, seed=0, device="cuda")
    assert agent.device.type == "cuda" and agent.planner.device == agent.device
    obs, _ = env.reset(seed=0)
    agent.reset()
    action = agent.act(obs)
    assert action.shape == (7,) and np.all(np.abs(action) <= 1)
