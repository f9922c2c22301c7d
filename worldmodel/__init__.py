"""armworld.worldmodel: V-JEPA 2 encoder, JEPA pretraining, action-conditioned predictor, checkpoints.

The public API is imported lazily so that importing the package (e.g. for the CLI's
argument parser) does not import torch::

    from armworld.worldmodel import WorldModel, load_world_model
"""

from __future__ import annotations

from armworld.envs.lazy import lazy_exports

_EXPORTS = {
    "Encoder": "encoder",
    "EncoderConfig": "encoder",
    "FrameEncoder": "encoder",
    "PRESETS": "encoder",
    "register_encoder": "encoder",
    "PredictorConfig": "predictor",
    "ACPredictor": "predictor",
    "KVCache": "predictor",
    "WorldModel": "world_model",
    "Context": "world_model",
    "load_world_model": "checkpoint",
    "load_encoder": "checkpoint",
    "CheckpointError": "checkpoint",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
