"""FGVC-Aircraft via torchvision (``download=False``), annotation level as an argument."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.datasets import FGVCAircraft

from datamodules.base import FineGrainedDataModule, SampleList, missing_dataset_error
from datamodules.dataset_folder import dataset_folder, torchvision_root
from errors import ConfigError, MissingFileError

LEVEL_FILES = {"variant": "variants.txt", "family": "families.txt",
               "manufacturer": "manufacturers.txt"}
SOURCE = "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ (fgvc-aircraft-2013b.tar.gz)"
FOLDER = "fgvc-aircraft-2013b"


class FGVCAircraftDataModule(FineGrainedDataModule):
    """FGVC-Aircraft 2013b. ``root``: ``fgvc-aircraft-2013b/`` or its parent; official splits.

    ``annotation_level``: "variant" (100 classes), "family" (70) or "manufacturer" (30).
    """

    name = "FGVC-Aircraft"
    has_official_val = True

    def __init__(
        self, root: str | Path = "data", annotation_level: str = "variant", **kwargs: Any
    ) -> None:
        """``kwargs``: the common arguments of ``FineGrainedDataModule``."""
        if annotation_level not in LEVEL_FILES:
            raise ConfigError(f"annotation_level={annotation_level!r} is not one of "
                              f"{tuple(LEVEL_FILES)}")
        super().__init__(root, **kwargs)
        self.annotation_level = annotation_level

    @property
    def folder(self) -> Path:
        """The ``fgvc-aircraft-2013b`` folder itself."""
        return dataset_folder(self.root, FOLDER, markers=("data/images",))

    def _check(self, split: str | None = None) -> Path:
        data = self.folder / "data"
        lvl = self.annotation_level
        expected = ["images/", LEVEL_FILES[lvl]] + [f"images_{lvl}_{s}.txt"
                                                    for s in ("train", "val", "test")]
        need = ["images/", LEVEL_FILES[lvl]] + ([f"images_{lvl}_{split}.txt"] if split else [])
        missing = [f for f in need if not (data / f.rstrip("/")).exists()]
        if missing:
            raise MissingFileError(
                missing_dataset_error(self.name, data, expected, SOURCE)
                + f" Missing: {', '.join(missing)}.")
        return data

    def _read_class_names(self) -> list[str]:
        data = self._check()
        with open(data / LEVEL_FILES[self.annotation_level]) as f:
            return [line.strip() for line in f if line.strip()]

    def _read_split(self, split: str) -> SampleList:
        data = self._check(split)
        names = set(self.class_names)
        labels_file = data / f"images_{self.annotation_level}_{split}.txt"
        with open(labels_file) as f:
            for i, line in enumerate(f, 1):
                parts = line.strip().split(" ", 1)
                if line.strip() and (len(parts) < 2 or parts[1] not in names):
                    raise ConfigError(f"Unknown {self.annotation_level} in {labels_file} line {i}: "
                                      f"{line.strip()!r}")
        ds = FGVCAircraft(torchvision_root(data.parent, FOLDER, self.name), split=split,
                          annotation_level=self.annotation_level, download=False)
        return SampleList([Path(p) for p in ds._image_files],
                          torch.tensor(ds._labels, dtype=torch.long))
