"""Films of episodes: the frame layout and its text, filming that changes nothing in the
episode, and envs without a MuJoCo front camera (real arms)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

import armworld  # noqa: F401  (registers the envs)
from armworld.agents.evaluate import run_episode
from armworld.agents.film import BAND_COLOR, FilmConfig, FilmRecorder, Panel, band_height, compose_frame
from armworld.agents.loading import load_agent


class TopCameraExpert:
    """The scripted expert, declaring the ``top`` camera as image-based agents do; keeps every
    ``rgb_top`` image it was given."""

    camera = "top"

    def __init__(self, env: gymnasium.Env) -> None:
        self.expert = load_agent("expert", env, seed=0)
        self.seen: list[np.ndarray] = []

    def reset(self) -> None:
        self.expert.reset()

    def act(self, obs):
        self.seen.append(obs["rgb_top"].copy())
        return self.expert.act(obs)


def test_a_frame_puts_panels_of_one_height_side_by_side_over_a_band_of_text():
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 200
    checker = np.kron(np.indices((2, 2)).sum(0) % 2, np.ones((16, 16)))[..., None].repeat(3, 2).astype(np.uint8) * 255
    frame = compose_frame([Panel(red, "front view"), Panel(checker, "goal image")], ["FrankaPush-v0", "step 3 / 60"], 128)
    band = band_height(128)
    assert frame.shape == (128 + band, 256, 3) and band % 2 == 0
    # the 32 px checker is scaled up with nearest-neighbour: 64 px squares, sharp edges
    assert (frame[100:128, 128:190] == 255).all() and (frame[100:128, 194:256] == 0).all()
    # the labels are written over the panels' top-left corners, the lines on the band
    assert (frame[:20, :60] != red[0, 0]).any(axis=-1).sum() > 200
    text = (frame[128:] != BAND_COLOR).any(axis=-1)
    assert 300 < text.sum() < 0.5 * text.size
    assert text[: band // 2].any() and text[band // 2 :].any()  # two lines


@pytest.mark.parametrize("height", [63, 66.5, 642, 0])
def test_a_film_height_video_codecs_cannot_take_is_refused(height):
    with pytest.raises(ValueError, match="even number of pixels"):
        FilmConfig(height=height)


def test_filming_changes_nothing_the_agent_sees_or_the_env_does():
    env = gymnasium.make("armworld/FrankaPush-v0", obs_mode="pixels_state", cameras=("top",))
    runs = []
    for film in (None, FilmConfig(height=64)):
        agent = TopCameraExpert(env)
        result = run_episode(env, agent, reset_seed=1_000_007, max_steps=12, film=film)
        sim = env.unwrapped
        runs.append((result, agent.seen, sim.get_sim_state(), sim.np_random.bit_generator.state))
    (plain, plain_seen, plain_state, plain_rng), (filmed, filmed_seen, filmed_state, filmed_rng) = runs
    assert plain.frames is None and filmed.frames.shape == (12 + 1 + 10, 64 + band_height(64), 3 * 64, 3)
    assert (plain.success, plain.final_distance, plain.length) == (filmed.success, filmed.final_distance, filmed.length)
    assert all(np.array_equal(a, b) for a, b in zip(plain_seen, filmed_seen, strict=True))
    assert np.array_equal(plain_state, filmed_state) and plain_rng == filmed_rng
    env.close()


def test_panels_front_view_what_the_agent_sees_and_the_sim_goal_image():
    env = gymnasium.make("armworld/FrankaReach-v0", obs_mode="pixels_state", cameras=("top",))
    obs, _ = env.reset(seed=3)
    recorder = FilmRecorder(env, TopCameraExpert(env), FilmConfig(height=64), reset_seed=3, max_steps=30)
    try:
        view, seen, goal = recorder.panels(obs)
    finally:
        recorder.close()
    assert view.label.startswith("front view") and view.image.shape == (64, 64, 3)
    assert seen.label == "model sees: top camera, 64 px" and seen.image is obs["rgb_top"]
    assert goal.label == "goal image" and np.array_equal(goal.image, env.unwrapped.goal_image("top", size=64))
    env.close()


class CameraArmEnv(gymnasium.Env):
    """A stand-in for a real arm: no MuJoCo model, only the camera images it serves."""

    def __init__(self, cameras: tuple[str, ...]) -> None:
        self.cameras = cameras
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (7,), np.float32)
        goal = gymnasium.spaces.Box(-2.0, 2.0, (3,), np.float64)
        images = {f"rgb_{c}": gymnasium.spaces.Box(0, 255, (48, 48, 3), np.uint8) for c in cameras}
        self.observation_space = gymnasium.spaces.Dict({"achieved_goal": goal, "desired_goal": goal, **images})

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {"is_success": False}

    def step(self, action):
        return self._obs(), 0.0, False, False, {"is_success": False}

    def _obs(self):
        images = {f"rgb_{c}": np.full((48, 48, 3), 40 * i, np.uint8) for i, c in enumerate(self.cameras)}
        return {"achieved_goal": np.zeros(3), "desired_goal": np.ones(3), **images}


class WristAgent:
    camera = "wrist"

    def reset(self) -> None:
        pass

    def act(self, obs):
        return np.zeros(7, np.float32)


@pytest.mark.parametrize(
    "cameras, view",
    [(("wrist", "front"), "front camera"), (("wrist", "side"), "side camera (no front camera)"), (("wrist",), None)],
)
def test_without_a_sim_the_front_view_is_the_front_camera_else_another_one_and_says_so(cameras, view):
    env = CameraArmEnv(cameras)
    obs, _ = env.reset(seed=0)
    recorder = FilmRecorder(env, WristAgent(), FilmConfig(height=64), reset_seed=0, max_steps=2)
    labels = [panel.label for panel in recorder.panels(obs)]
    assert labels == [*([view] if view else []), "model sees: wrist camera, 48 px"]
    result = run_episode(env, WristAgent(), reset_seed=0, max_steps=2, film=FilmConfig(height=64))
    assert result.frames.shape == (2 + 1 + 10, 64 + band_height(64), 64 * len(labels), 3)
