"""The options of an RL baseline's training run (:class:`RLConfig`), declared once for the library
(:func:`armworld.agents.rl.train`) and for the flags of ``armworld rl train``; free of torch and
Stable-Baselines3 so that ``armworld --help`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from armworld.envs.registry import ENV_IDS, ENV_NAMESPACE
from armworld.envs.argtypes import check_options, image_side, non_negative_int, option, positive_int, seed

ALGO_NAMES = ("ppo", "sac", "td3", "tqc")  # armworld.agents.rl.ALGOS: PPO, SAC, TD3 (SB3) and TQC (sb3-contrib)
OBS_MODES = ("state", "pixels")


@dataclass
class RLConfig:
    """One training run.

    algo: ppo, sac, td3 or tqc. env_id: an armworld env id (``FrankaReach-v0`` is accepted for
    ``armworld/FrankaReach-v0``). her: HER replay for the off-policy algorithms; None takes the
    YAML's choice. out: the run directory. hyperparams: overrides of single YAML keys. The other
    fields are also the flags of ``armworld rl train`` (:func:`armworld.envs.argtypes.option`).
    """

    algo: str = "sac"
    env_id: str = "armworld/FrankaReach-v0"
    obs_mode: str = option(
        "state", "state vector, or the front camera at --image-size px with proprio and the goal vectors",
        choices=OBS_MODES,
    )
    her: bool | None = None
    steps: int | None = option(None, "env steps (default: the YAML's n_timesteps)", positive_int)
    seed: int = option(0, "seeds the model and the training envs", seed)
    out: str = "runs/rl/run"
    image_size: int = option(64, "camera image side for --obs-mode pixels (px, 8..640)", image_side)
    eval_freq: int = option(2000, "env steps between evaluations", positive_int)
    eval_episodes: int = option(20, "episodes per evaluation", positive_int)
    checkpoint_freq: int = option(10000, "env steps between checkpoints (0: at the end only)", non_negative_int)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    progress_bar: bool = option(True, "no progress bar")
    resume: bool = option(False, "continue the run in --out from its latest checkpoint")

    def __post_init__(self) -> None:
        if self.algo not in ALGO_NAMES:
            raise ValueError(f"unknown algo {self.algo!r}; choose from {sorted(ALGO_NAMES)}")
        if "/" not in self.env_id:
            self.env_id = f"{ENV_NAMESPACE}/{self.env_id}"
        if self.env_id not in ENV_IDS:
            raise ValueError(f"unknown env id {self.env_id!r}; choose from {sorted(ENV_IDS)}")
        if self.her and self.algo == "ppo":
            raise ValueError("HER needs an off-policy algorithm (sac, td3, tqc); PPO learns from the dense reward")
        check_options(self)
