"""Lazy package exports (PEP 562): a package's public names imported from their modules on
first use, so that importing the package (e.g. for the CLI's argument parser) pulls in no
heavy dependency (torch, h5py, MuJoCo) until a name that needs it is used::

    _EXPORTS = {"TrajectoryFile": "hdf5", ...}      # name -> module of the package
    __all__ = sorted(_EXPORTS)
    __getattr__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` that imports each of ``exports`` (name ->
    module within ``package``) when it is first asked for."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
