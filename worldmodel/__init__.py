"""armworld.worldmodel: V-JEPA 2 encoder, JEPA pretraining, action-conditioned predictor, checkpoints."""
