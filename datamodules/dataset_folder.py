"""``root`` is the dataset's folder or the folder that contains it, for every data module."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from errors import MissingFileError


def dataset_folder(root: Path, name: str, markers: Sequence[str] = ()) -> Path:
    """The dataset's own folder ``name`` (``fgvc-aircraft-2013b``, ``food-101``, ...).

    ``root/name`` when ``root`` contains it; ``root`` itself when ``root`` is named ``name`` or
    holds every entry of ``markers`` (the folder under another name); else ``root/name``, which
    the caller's missing-files error then names.
    """
    root = Path(root)
    nested = root / name
    if nested.is_dir():
        return nested
    if root.name == name or (markers and all((root / m).exists() for m in markers)):
        return root
    return nested


def torchvision_root(folder: Path, name: str, dataset: str) -> str:
    """The ``root`` torchvision's dataset class wants: the parent of a folder named ``name``.

    torchvision joins ``root`` and the fixed name itself, so a renamed folder cannot be read.
    """
    if folder.name != name:
        raise MissingFileError(
            f"{dataset}: {folder} holds the data set, but torchvision reads it only from a folder "
            f"named {name!r}: rename it to {folder.parent / name} (or link that name to it) and "
            "pass that folder or its parent as root.")
    return str(folder.parent)
