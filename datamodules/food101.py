"""Food-101 via torchvision (``download=False``); val carved from train."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import Food101

from datamodules.base import FineGrainedDataModule, SampleList, require_files
from datamodules.dataset_folder import dataset_folder, torchvision_root
from errors import ConfigError

FILES = ("meta/classes.txt", "meta/train.json", "meta/test.json", "images/")
SOURCE = "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz)"
FOLDER = "food-101"


class Food101DataModule(FineGrainedDataModule):
    """Food-101. ``root``: ``food-101/`` (``meta/``, ``images/<class>/<id>.jpg``) or its parent."""

    name = "Food-101"

    @property
    def folder(self) -> Path:
        """The ``food-101`` folder itself."""
        return dataset_folder(self.root, FOLDER, markers=("meta", "images"))

    def _check(self) -> Path:
        return require_files(self.name, self.folder, FILES, SOURCE)

    def _read_class_names(self) -> list[str]:
        with open(self._check() / "meta" / "classes.txt") as f:
            return [line.strip() for line in f if line.strip()]

    def _read_split(self, split: str) -> SampleList:
        d = self._check()
        ds = Food101(torchvision_root(d, FOLDER, self.name), split=split, download=False)
        if ds.classes != sorted(self.class_names):
            extra = sorted(set(ds.classes) - set(self.class_names))
            raise ConfigError(f"{d / 'meta' / (split + '.json')} names classes "
                              f"missing from meta/classes.txt: {extra[:5]}")
        # torchvision numbers classes in sorted order; map them to classes.txt order.
        order = {c: i for i, c in enumerate(self.class_names)}
        remap = torch.tensor([order[c] for c in ds.classes], dtype=torch.long)
        labels = remap[torch.tensor(ds._labels, dtype=torch.long)]
        return SampleList([Path(p) for p in ds._image_files], labels)
