"""armworld.datasets: the HDF5 trajectory format, parallel collection, torch clip datasets, video.

The torch datasets live in ``armworld.datasets.clips`` (imported on demand, as it imports torch);
LeRobotDataset v3 export and reading in ``armworld.datasets.lerobot`` (the ``lerobot`` extra).
"""

from armworld.datasets.collect import CollectConfig, CollectSummary, collect, rollout
from armworld.datasets.hdf5 import (
    FORMAT_VERSION,
    DatasetError,
    Episode,
    TrajectoryFile,
    TrajectoryWriter,
    validate,
)
from armworld.datasets.replay import ReplayResult, replay

__all__ = [
    "FORMAT_VERSION",
    "CollectConfig",
    "CollectSummary",
    "DatasetError",
    "Episode",
    "ReplayResult",
    "TrajectoryFile",
    "TrajectoryWriter",
    "collect",
    "replay",
    "rollout",
    "validate",
]
