"""armworld.datasets: the HDF5 trajectory format, parallel collection, torch clip datasets, video."""
