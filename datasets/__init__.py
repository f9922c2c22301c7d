"""armworld.datasets: the HDF5 trajectory format, parallel collection, torch clip datasets, video.

The public API is imported lazily so that importing the package (e.g. for the CLI's
argument parser, which reads :class:`CollectConfig`) does not import h5py::

    from armworld.datasets import CollectConfig, TrajectoryFile

The functions named as their modules are imported from those: ``from armworld.datasets.collect
import collect``, ``from armworld.datasets.replay import replay``.

The torch datasets live in ``armworld.datasets.clips`` (imported on demand, as it imports torch);
LeRobotDataset v3 export and reading in ``armworld.datasets.lerobot`` (the ``lerobot`` extra).
"""

from __future__ import annotations

from armworld.envs.lazy import lazy_exports

_EXPORTS = {
    "CollectConfig": "collect_config",
    "CollectSummary": "collect",
    "rollout": "collect",
    "FORMAT_VERSION": "hdf5",
    "DatasetError": "hdf5",
    "Episode": "hdf5",
    "TrajectoryFile": "hdf5",
    "TrajectoryWriter": "hdf5",
    "validate": "hdf5",
    "ReplayResult": "replay",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
