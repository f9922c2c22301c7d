"""Sub-goals retrieved from recorded episodes: the latent search, and the agent that heads for them.

The episodes are SquareEnv's images (a bright square marking a point, see
test_world_model_agent) and the latents the exact LinearLatentModel's, so the best
stretch and its frames are known.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from datasets_helpers import ENV_ARGS, synthetic_episode
from test_world_model_agent import LinearLatentModel, draw

from armworld.agents.planners import CEM, ActionBounds, CEMConfig
from armworld.agents.retrieval import EpisodeLibrary, world_model_encoder
from armworld.agents.world_model_agent import WorldModelAgent, WorldModelAgentConfig
from armworld.datasets.hdf5 import TrajectoryWriter

# A detour: from (0.35, -0.15) up to (0.35, 0.15), then across to (0.65, 0.15): 9 frames, 8 actions.
DETOUR = np.array([[0.35, -0.15 + 0.075 * k] for k in range(5)] + [[0.35 + 0.075 * k, 0.15] for k in range(1, 5)])


def record(path, paths: list[np.ndarray]) -> str:
    """A trajectory file whose episode ``e`` shows the square along ``paths[e]`` (gripper closing halfway)."""
    with TrajectoryWriter(path, ENV_ARGS) as writer:
        for e, points in enumerate(paths):
            episode = synthetic_episode(len(points) - 1, seed=e, image_size=64)
            episode.obs["rgb_front"] = np.stack([draw(p) for p in points])
            episode.obs["proprio"][:, -1] = (np.arange(len(points)) >= len(points) // 2).astype(np.float32)
            writer.append(episode)
    return str(path)


@pytest.fixture
def library(tmp_path) -> EpisodeLibrary:
    path = record(tmp_path / "detours.h5", [DETOUR, DETOUR[::-1]])
    return EpisodeLibrary([path], world_model_encoder(LinearLatentModel()), camera="front")


def latent(point) -> torch.Tensor:
    return world_model_encoder(LinearLatentModel())(draw(point)[None])[0]


def test_the_stretch_from_now_to_the_goal_is_found_and_cut_into_sub_goals(library):
    found = library.retrieve(latent(DETOUR[1]), latent(DETOUR[7]), subgoals=3)
    assert found.source[1:] == ("demo_0", 1, 7)  # the forward episode, from frame 1 to frame 7
    assert found.steps == (2, 2, 2)
    np.testing.assert_array_equal(found.images, np.stack([draw(DETOUR[k]) for k in (3, 5, 7)]))
    assert found.closures == (0.0, 1.0, 1.0)  # recorded with frames 3, 5 and 7
    backwards = library.retrieve(latent(DETOUR[7]), latent(DETOUR[1]), subgoals=3)
    assert backwards.source[1:] == ("demo_1", 1, 7)  # the reversed episode
    assert library.retrieve(latent(DETOUR[2]), latent(DETOUR[3]), subgoals=4).steps == (1,)  # no more frames than there are
    with pytest.raises(ValueError, match="subgoals"):
        library.retrieve(latent(DETOUR[1]), latent(DETOUR[7]), subgoals=0)


def test_the_agent_heads_for_retrieved_sub_goals_then_the_goal_image(library):
    env = gymnasium.make("test/Square-v0")
    planner = CEM(CEMConfig(samples=64, iterations=3, top_k=8), ActionBounds.world_model(gripper=False), seed=0)
    config = WorldModelAgentConfig(retrieved_subgoals=4, gripper="goal")
    agent = WorldModelAgent(LinearLatentModel(), planner, goal="retrieve", env=env, config=config, library=library)
    env.reset(seed=0)
    env.unwrapped.pos, env.unwrapped.goal = DETOUR[0].copy(), DETOUR[8].copy()
    obs = env.unwrapped._obs()
    grippers = []
    for _ in range(4):
        action = agent.act(obs)
        grippers.append(float(action[-1]))
        obs, *_ = env.step(action)
    assert agent.retrieved.source[1:] == ("demo_0", 0, 8)
    assert agent.goal_steps == (2, 2, 2, 2) and len(agent.goal_images) == 5
    np.testing.assert_array_equal(agent.goal_images[1], draw(DETOUR[4]))  # the corner of the detour
    np.testing.assert_array_equal(agent.goal_images[-1], draw(DETOUR[8]))  # the env's goal image last
    # Up the first leg of the detour, not diagonally across toward the goal (as far in x as in y).
    moved = env.unwrapped.pos - DETOUR[0]
    assert moved[1] > 0.15 and moved[1] > 2 * moved[0]
    assert grippers == [-1.0, -1.0, 1.0, 1.0]  # recorded open at frame 2, closed from frame 4 on
    agent.reset()
    assert agent.retrieved is None and agent.goal_images == []
    with pytest.raises(ValueError, match="EpisodeLibrary"):
        WorldModelAgent(LinearLatentModel(), planner, goal="retrieve", env=env, config=config)
    with pytest.raises(ValueError, match="EpisodeLibrary"):
        WorldModelAgent(LinearLatentModel(), planner, goal="env", env=env, config=config, library=library)


def test_an_empty_library_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least one trajectory file"):
        EpisodeLibrary([], world_model_encoder(LinearLatentModel()), camera="front")


def test_images_are_searched_with_the_librarys_own_encoder(tmp_path):
    """Any ``frames -> [T, L]`` map may be the search's latent, e.g. positions read from the image:
    ``retrieve_images`` encodes the current and goal images with it, not with a world model."""
    queried = []

    def square_centre(frames: np.ndarray) -> torch.Tensor:  # [T, 2]: pixel row and column of the bright square
        queried.append(len(frames))
        bright = torch.from_numpy(frames[..., 0] > 128).float()  # [T, H, W]
        index = torch.arange(bright.shape[1], dtype=torch.float32)
        mass = bright.sum((1, 2))
        return torch.stack([(bright.sum(2) * index).sum(1) / mass, (bright.sum(1) * index).sum(1) / mass], 1)

    library = EpisodeLibrary([record(tmp_path / "detours.h5", [DETOUR, DETOUR[::-1]])], square_centre, camera="front")
    assert library.latents.shape[-1] == 2 and queried == [9, 9]  # each recorded episode, once
    found = library.retrieve_images(draw(DETOUR[1]), draw(DETOUR[7]), subgoals=3)
    assert queried[-1] == 2  # the current and the goal image, together
    assert found.source[1:] == ("demo_0", 1, 7)
    np.testing.assert_array_equal(found.images, np.stack([draw(DETOUR[k]) for k in (3, 5, 7)]))
    assert library.retrieve_images(draw(DETOUR[7]), draw(DETOUR[1])).source[1:] == ("demo_1", 1, 7)
