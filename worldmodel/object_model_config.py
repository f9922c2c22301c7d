"""How an object world model is trained (:class:`ObjectTrainConfig`), declared once for the library
(:func:`armworld.worldmodel.object_model.train_object_model`) and for the flags of ``armworld
train-objects``; free of torch so that ``armworld --help`` stays fast."""

from __future__ import annotations

from dataclasses import dataclass

from armworld.envs.argtypes import check_options, non_negative_float, option, positive_float, positive_int, seed


@dataclass(frozen=True)
class ObjectTrainConfig:
    """``armworld train-objects``: each field is the flag of the same name."""

    camera: str = option("front", "camera whose frames the reader learns to read")
    reader_steps: int = option(3000, "optimizer steps of the position reader", positive_int)
    batch_size: int = option(128, "frames per reader step", positive_int)
    dynamics_steps: int = option(4000, "optimizer steps of the object dynamics", positive_int)
    dynamics_batch_size: int = option(512, "windows per dynamics step, half of them with the object moving", positive_int)
    rollout_steps: int = option(3, "steps each dynamics window is rolled out and scored over", positive_int)
    position_noise: float = option(
        0.01, "std (m) of the noise added to the object's starting position while training the dynamics", non_negative_float
    )
    reach_weight: float = option(0.5, "weight of the hand's distance to the object in the planning energy", non_negative_float)
    lr: float = option(2e-3, "peak learning rate (one-cycle schedule) of both parts", positive_float)
    seed: int = option(0, "seeds the initial weights and the batches", seed)
    progress: bool = option(True, "no progress bars")

    def __post_init__(self) -> None:
        check_options(self)
