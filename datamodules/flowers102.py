"""Oxford Flowers-102 via torchvision (``download=False``); official train / val / test."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import Flowers102

from datamodules.base import FineGrainedDataModule, SampleList, require_files
from datamodules.dataset_folder import dataset_folder, torchvision_root
from errors import ConfigError

FILES = ("jpg/", "imagelabels.mat", "setid.mat")
SOURCE = ("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ (102flowers.tgz, imagelabels.mat, "
          "setid.mat)")
NUM_CLASSES = 102
FOLDER = "flowers-102"


class _Flowers102NoMD5(Flowers102):
    # torchvision checks the .mat files' MD5; we check presence ourselves with a clearer error.
    def _check_integrity(self) -> bool:
        return True


class Flowers102DataModule(FineGrainedDataModule):
    """Flowers-102. ``root``: ``flowers-102/`` or its parent. Class names ``flower_001`` ..."""

    name = "Flowers-102"
    has_official_val = True

    @property
    def folder(self) -> Path:
        """The ``flowers-102`` folder itself."""
        return dataset_folder(self.root, FOLDER, markers=("jpg", "setid.mat"))

    def _check(self) -> Path:
        return require_files(self.name, self.folder, FILES, SOURCE)

    def _read_class_names(self) -> list[str]:
        return [f"flower_{i:03d}" for i in range(1, NUM_CLASSES + 1)]

    def _read_split(self, split: str) -> SampleList:
        d = self._check()
        ds = _Flowers102NoMD5(torchvision_root(d, FOLDER, self.name), split=split, download=False)
        labels = torch.tensor(ds._labels, dtype=torch.long)
        bad = ((labels < 0) | (labels >= NUM_CLASSES)).nonzero()
        if len(bad):
            f = ds._image_files[int(bad[0, 0])]
            raise ConfigError(f"Label {int(labels[bad[0, 0]]) + 1} outside [1, {NUM_CLASSES}] in "
                              f"{d / 'imagelabels.mat'} for {Path(f).name}")
        return SampleList([Path(p) for p in ds._image_files], labels)
