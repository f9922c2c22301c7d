"""Training the action-conditioned predictor on a frozen encoder (V-JEPA 2-AC, Eqs. 2-4).

For a clip of frames ``x_0..x_{T-1}``, proprio ``s_0..s_{T-1}`` and actions
``a_0..a_{T-2}``, the frozen encoder gives layer-normed tokens ``z_t = E(x_t)`` and

- teacher forcing: ``L_tf = mean |P(z_0..z_{T-2}, s, a) - z_1..z_{T-1}|``, every step
  predicted from the true past;
- rollout: from ``z_0`` alone, ``rollout_steps`` predictions fed back autoregressively with
  the true states, ``L_ro = mean |z_hat_1..z_hat_k - z_1..z_k|``;

loss = ``L_tf + L_ro``. Predictions are normalised as the encoder's latents are
(its ``normalize``) before the loss and before being fed back. Only the predictor learns.
The encoder may be of any registered kind (:mod:`armworld.worldmodel.encoder`).

End to end (``--end-to-end``, LeWorldModel): the encoder learns with the predictor, from
its initialisation or a pretrained run, with no frozen target, EMA or stop-gradient: the
distances are squared errors (LeWM's MSE) and ``sigreg_weight * SIGReg(z)`` over every
encoded latent of the batch keeps the embeddings from collapsing
(:mod:`armworld.worldmodel.sigreg`). With a ``pooled`` encoder preset this is LeWM's
recipe; with patch tokens it is the same objective on each token.

Run it as ``armworld train --data FILE.h5 --encoder runs/enc --steps N --out runs/wm``
(``--preset NAME`` instead of ``--encoder``: a freshly initialised encoder of that preset;
``--init runs/wm`` starts from a trained world model, e.g. to fine-tune on real-arm
trajectories: its camera and frame skip carry over), or
``torchrun --nproc-per-node N -m armworld.cli train ...``. Each checkpoint's metadata
records where the weights started (``init`` or ``encoder``: path, step, sha256).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from torch import nn

from armworld.envs.argtypes import options_from
from armworld.worldmodel.configs import TrainConfig
from armworld.worldmodel.encoder import Encoder, FrameEncoder, build_encoder, encoder_config_to_dict, preset
from armworld.worldmodel.engine import fit, seed_everything
from armworld.worldmodel.predictor import ACPredictor, PredictorConfig
from armworld.worldmodel.sigreg import SIGReg
from armworld.worldmodel.world_model import WorldModel

# Predictor sizes by name; token width and grid come from the encoder.
PREDICTOR_PRESETS: dict[str, dict] = {
    "tiny": dict(hidden_size=128, depth=4, num_heads=4),
    "small": dict(hidden_size=256, depth=6, num_heads=4),
    "official": dict(hidden_size=1024, depth=24, num_heads=16),  # V-JEPA 2-AC
}


def predictor_config(encoder: Encoder, size: str) -> PredictorConfig:
    """The predictor preset ``size`` fitted to ``encoder``'s latents (their width and grid)."""
    if size not in PREDICTOR_PRESETS:
        raise ValueError(f"unknown predictor size {size!r}; choose one of {sorted(PREDICTOR_PRESETS)}")
    return PredictorConfig(embed_dim=encoder.embed_dim, grid_size=encoder.latent_grid, **PREDICTOR_PRESETS[size])


class ACTraining(nn.Module):
    """A :class:`WorldModel` with its encoder frozen, or trained with it (``end_to_end``);
    ``forward(batch) -> (loss, metrics)``."""

    kind = "world_model"

    def __init__(
        self, model: WorldModel, rollout_steps: int = 2, end_to_end: bool = False, sigreg_weight: float = 0.1
    ) -> None:
        super().__init__()
        self.model = model
        self.rollout_steps = rollout_steps
        self.end_to_end = end_to_end
        self.sigreg_weight = sigreg_weight
        self.sigreg = SIGReg() if end_to_end else None
        if not end_to_end:
            model.encoder.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> ACTraining:
        super().train(mode)
        if not self.end_to_end:
            self.model.encoder.eval()  # frozen, always in inference mode
        return self

    def distance(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean L1 (V-JEPA 2-AC, frozen encoder) or squared error (LeWM, end to end)."""
        diff = pred.float() - target.float()
        return diff.square().mean() if self.end_to_end else diff.abs().mean()

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``frames`` uint8 ``[B, T, H, W, 3]``, ``proprio [B, T, 7]``, ``actions [B, T-1, 7]``."""
        frames, proprio, actions = batch["frames"], batch["proprio"].float(), batch["actions"].float()
        T = frames.shape[1]
        if proprio.shape[1] != T or actions.shape[1] != T - 1:
            raise ValueError(f"a clip of {T} frames needs {T} proprio rows and {T - 1} actions")
        with torch.set_grad_enabled(self.end_to_end and torch.is_grad_enabled()):
            z = self.model.encode(frames).float()  # [B, T, N, D]
        pred = self.model.predict(z[:, :-1], proprio[:, :-1], actions)
        teacher = self.distance(pred, z[:, 1:])
        metrics = {"loss_teacher": float(teacher.detach())}
        # The copy-the-last-frame baseline: what predicting "nothing moves" would score.
        metrics["copy_last_baseline"] = float(self.distance(z[:, :-1], z[:, 1:]).detach())
        loss = teacher
        k = self.rollout_steps
        if k > 0:
            context = self.model.context(z[:, :1], proprio[:, :1])
            imagined = self.model.rollout(context, actions[:, :k], proprio=proprio[:, :k])
            rollout = self.distance(imagined, z[:, 1 : k + 1])
            metrics["loss_rollout"] = float(rollout.detach())
            loss = loss + rollout
        if self.sigreg is not None:
            sigreg = self.sigreg(z)
            metrics["loss_sigreg"] = float(sigreg.detach())
            loss = loss + self.sigreg_weight * sigreg
        return loss, metrics

    def after_step(self) -> None:
        """Nothing to do after a step (no EMA here)."""

    def checkpoint_config(self) -> dict:
        return {
            "kind": self.kind,
            "encoder": encoder_config_to_dict(self.model.encoder.config),
            "predictor": dataclasses.asdict(self.model.predictor.config),
        }

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        from armworld.worldmodel.checkpoint import load_state_checked

        load_state_checked(self.model, state, "the world-model run being resumed")


def build_world_model(
    encoder: str | None, init: str | None, predictor: str | None, seed: int = 0, encoder_preset: str | None = None
) -> WorldModel:
    """A world model from ``init`` (a trained one), or from ``encoder`` (or a fresh encoder of
    preset ``encoder_preset``) plus a fresh predictor of size ``predictor``; fresh weights are
    a function of ``seed``.

    ``encoder`` is an ``armworld pretrain`` run/checkpoint or a Hugging Face-format
    directory of released V-JEPA 2 weights.
    """
    from armworld.worldmodel.checkpoint import load_encoder, load_world_model

    if sum(x is not None for x in (encoder, init, encoder_preset)) != 1:
        raise ValueError(
            "give one of --encoder (a pretrained encoder), --preset (a fresh encoder of that size) "
            "or --init (a trained world model, which brings its own encoder)"
        )
    if init is not None:
        if predictor is not None:
            raise ValueError(
                f"--predictor {predictor} sizes a fresh predictor; --init brings its own: leave --predictor out"
            )
        model = load_world_model(init)
        if not isinstance(model, WorldModel):
            raise ValueError(f"--init {init} is an {type(model).__name__}, not a predictor to train on: "
                             "retrain it with `armworld train-objects`")
        return model
    if predictor is None:
        raise ValueError(f"a fresh predictor needs a size: one of {sorted(PREDICTOR_PRESETS)}")
    if encoder_preset is not None:
        seed_everything(seed)
        enc = build_encoder(preset(encoder_preset))
    elif (Path(encoder) / "config.json").is_file() and not (Path(encoder) / "metadata.json").is_file():
        enc = FrameEncoder.from_pretrained(encoder)
    else:
        enc = load_encoder(encoder)
    seed_everything(seed)
    return WorldModel(enc, ACPredictor(predictor_config(enc, predictor)))


def starting_settings(init: str | None, encoder: str | None, camera: str | None, frame_skip: int | None) -> dict:
    """``camera`` and ``frame_skip`` as given (None = not given), else from the run training starts from.

    An ``init`` model's camera and frame skip fix what its inputs mean (which view, how long a
    step is), so they are its defaults and a different explicit value is refused. An ``encoder``
    run lends only its camera as the default. What neither gives is :class:`TrainConfig`'s default.
    """
    from armworld.worldmodel.checkpoint import CONFIG, read_json, resolve

    settings = {"camera": camera, "frame_skip": frame_skip}
    source = init if init is not None else encoder
    trained = read_json(resolve(source), CONFIG).get("train", {}) if source is not None else {}
    for key in ("camera", "frame_skip") if init is not None else ("camera",):
        if key not in trained:
            continue
        if settings[key] is None:
            settings[key] = trained[key]
        elif init is not None and settings[key] != trained[key]:
            flag = "--" + key.replace("_", "-")
            raise ValueError(
                f"{flag} {settings[key]} conflicts with the --init model, trained with {flag} {trained[key]}; "
                f"leave {flag} out to keep it, or train a new model from --encoder"
            )
    return {k: getattr(TrainConfig, k) if v is None else v for k, v in settings.items()}


def starting_lineage(init: str | None, encoder: str | None, encoder_preset: str | None = None) -> dict:
    """Metadata naming the weights training starts from: ``init`` (and the encoder it recorded),
    ``encoder``, or a fresh encoder of ``encoder_preset`` (``{"preset": name}``)."""
    from armworld.worldmodel.checkpoint import METADATA, lineage, read_json, resolve

    if init is None:
        return {"encoder": lineage(encoder) if encoder is not None else {"preset": encoder_preset}}
    recorded = read_json(resolve(init), METADATA).get("encoder")
    return {"init": lineage(init), **({"encoder": recorded} if recorded is not None else {})}


def train(
    config: TrainConfig, model: WorldModel, data: list[str], out: str | Path, lineage: dict | None = None
) -> Path | None:
    """Train ``model``'s predictor on ``data`` (HDF5 files, LeRobot directories); returns the last checkpoint (rank 0).

    ``lineage`` (see :func:`starting_lineage`) goes into every checkpoint's metadata.
    """
    from armworld.datasets.clips import ClipDataset

    kwargs = dict(
        clip_len=config.clip_len, frame_skip=config.frame_skip, action="delta", camera=config.camera,
        lerobot_keys=config.lerobot_keys,
    )
    train_data = ClipDataset(list(data), split="train", **kwargs)
    valid_data = ClipDataset(list(data), split="valid", **kwargs)
    task = ACTraining(
        model, rollout_steps=config.rollout_steps, end_to_end=config.end_to_end, sigreg_weight=config.sigreg_weight
    )
    extra = {k: v for k, v in dataclasses.asdict(config).items() if k != "loop"}
    return fit(
        task, config.loop, train_data, valid_data, out, data_files=list(data), extra_config=extra, extra_metadata=lineage
    )


def run(args: argparse.Namespace) -> int:
    """Train from parsed ``armworld train`` arguments."""
    from armworld.worldmodel.arguments import loop_config

    predictor = args.predictor if args.init is not None else (args.predictor or TrainConfig.predictor)
    config = options_from(
        TrainConfig, args, predictor=predictor, loop=loop_config(args),
        **starting_settings(args.init, args.encoder, args.camera, args.frame_skip),
    )
    model = build_world_model(args.encoder, args.init, config.predictor, seed=config.loop.seed, encoder_preset=args.preset)
    path = train(config, model, args.data, args.out, starting_lineage(args.init, args.encoder, args.preset))
    if path is not None:
        print(f"world model checkpoint: {path}")
    return 0


if __name__ == "__main__":  # the entry point is the CLI's, which this layer does not import
    raise SystemExit(f"run `python -m armworld.cli train ...` (on several processes: `torchrun --nproc-per-node N "
                     f"-m armworld.cli train ...`), the `armworld train` verb")
