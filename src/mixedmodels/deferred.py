"""Module imports declared at module level and executed on first use.

``import mixedmodels`` loads the layers a fit uses; the facade's methods hand the fit to
layers it does not use (inference, diagnostics, output, the Dask facade), which cost about a
third of the package's own import time. The facade declares those imports at the top of its
module, as any import, with ``deferred("mixedmodels.inference.fixed_tests")``: the handle
imports the module on its first attribute access (``importlib.import_module``, whose module
locks make a first access from several threads safe) and forwards every access to it.
``tests/test_layers.py`` reads these declarations as imports: the layering and cycle checks
cover them.

importlib's own ``LazyLoader`` would do the same with a module object in ``sys.modules``; on
Python 3.11 it is not safe when two threads touch the module first (fixed in 3.12), which a
fit's methods called from a thread pool would do.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["Deferred", "deferred"]


class Deferred:
    """A handle on the module ``name``, imported on first attribute access."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return module

    def __getattr__(self, attribute: str):
        return getattr(self._load(), attribute)

    def __dir__(self) -> list[str]:
        return dir(self._load())

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<module {self._name!r}, {state}>"


def deferred(name: str) -> Deferred:
    """The module ``name`` (absolute: "mixedmodels.output.tables"), imported on first use."""
    return Deferred(name)
