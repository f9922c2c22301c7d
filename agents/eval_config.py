"""What :func:`armworld.agents.evaluate.evaluate` evaluates on (:class:`EvalConfig`), declared once
for the library and for the flags of ``armworld eval``; free of torch and MuJoCo so that
``armworld eval --help`` stays fast. The seed protocol: see :mod:`armworld.agents.evaluate`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from armworld.envs.argtypes import check_options, comma_list, non_negative_int, number, option, positive_int, seed

EVAL_SEED_BASE = 1_000_000
EPISODES_PER_SEED_MAX = 1000
FILM_HEIGHT = 320  # px, the films' panel height by default (armworld.agents.film.FilmConfig.height)
VIDEO_HEIGHT_HELP = "height of the films' panels: front view, what the model sees, goal image (px, even, 64..640)"

_film_side = number(int, 64, 640)


def film_height(text: str) -> int:
    """An argparse ``type=``: a film's panel height, an even number of pixels in 64..640."""
    height = _film_side(text)
    if height % 2:
        raise argparse.ArgumentTypeError(f"expected an even number of pixels within 64..640, got {text!r}")
    return height


def eval_seed(seed: int, episode: int) -> int:
    """The env reset seed of episode ``episode`` of evaluation seed ``seed`` (see :mod:`armworld.agents.evaluate`)."""
    if seed < 0 or not 0 <= episode < EPISODES_PER_SEED_MAX:
        raise ValueError(f"evaluation seeds are >= 0 with at most {EPISODES_PER_SEED_MAX} episodes each")
    return EVAL_SEED_BASE + EPISODES_PER_SEED_MAX * seed + episode


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate on: env id and kwargs, seeds, episodes per seed, step budget, videos.

    videos: how many episodes of each seed (the first ones) to film (MP4s under ``out``
    in :func:`armworld.agents.evaluate.evaluate`, else kept in the results); video_height: height
    of the panels of those films (px, even, 64..640). ``env_id`` and ``env_kwargs`` are ``armworld
    eval``'s ``--env`` and ``--env-kwargs`` (with the agent's own env arguments); the other fields
    are also its flags (:func:`armworld.envs.argtypes.option`).
    """

    env_id: str
    seeds: tuple[int, ...] = option((0, 1, 2), "evaluation seeds, e.g. 0,1,2", comma_list(seed, "0,1,2"))
    episodes: int = option(50, "episodes per seed", number(int, 1, EPISODES_PER_SEED_MAX))
    max_steps: int | None = option(None, "step budget per episode (default: the env's)", positive_int)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    videos: int = option(0, "episodes per seed filmed as MP4", non_negative_int)
    video_height: int = option(FILM_HEIGHT, VIDEO_HEIGHT_HELP, film_height)

    def __post_init__(self) -> None:
        check_options(self)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {self.seeds}")
        if self.videos > self.episodes:
            raise ValueError(f"videos per seed must lie in [0, episodes = {self.episodes}], got {self.videos}")

    def reset_seeds(self) -> list[int]:
        """Every env reset seed of this evaluation."""
        return [eval_seed(s, i) for s in self.seeds for i in range(self.episodes)]
