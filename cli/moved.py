"""Old module names that configs may still name: each resolves to its new home, with a warning.

The CLI application used to live in ``lightning_modules/`` and ``callbacks/``. A config written
then (``class_path: lightning_modules.loggers.OfflineWandbLogger``) keeps working: the first
import of an old name loads the new module under both names and warns once what to write instead.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

# old module -> new module
MOVED_MODULES: dict[str, str] = {
    "lightning_modules.cli": "cli.train",
    "lightning_modules.console": "cli.console",
    "lightning_modules.loggers": "cli.loggers",
    "lightning_modules.run_dir": "cli.run_dir",
    "lightning_modules.split_check": "cli.split_check",
    "lightning_modules.callbacks": "callbacks.reseed",
    "callbacks.cli": "cli.evaluate",
    "callbacks.figures": "results.figures",
    "callbacks.report": "results.report",
}


class _Alias(importlib.abc.Loader):
    """Loads ``new`` and hands it out as ``old``."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"module {self.old} moved to {self.new}; write {self.new} in configs and imports "
            f"(e.g. class_path: {self.new}.<Class>). The old name will go in a later release.",
            FutureWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module is already executed."""


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that answers for the old names in ``MOVED_MODULES`` only."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        """The alias spec of an old name; None for every other module."""
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(fullname, new))


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
