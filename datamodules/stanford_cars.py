"""Stanford Cars via torchvision (``download=False``); val carved from train."""

from __future__ import annotations

from pathlib import Path

import scipy.io
import torch
from torchvision.datasets import StanfordCars

from datamodules.base import FineGrainedDataModule, SampleList, require_files
from datamodules.dataset_folder import dataset_folder, torchvision_root
from errors import ConfigError

FILES = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train/", "cars_test/",
         "cars_test_annos_withlabels.mat")
SOURCE = ("the Kaggle mirror documented by torchvision.datasets.StanfordCars "
          "(https://www.kaggle.com/datasets/rickyyyyyyy/torchvision-stanford-cars; the original "
          "ai.stanford.edu URL is gone)")
FOLDER = "stanford_cars"


class StanfordCarsDataModule(FineGrainedDataModule):
    """Stanford Cars. ``root``: ``stanford_cars/`` (torchvision's layout) or its parent."""

    name = "Stanford Cars"

    @property
    def folder(self) -> Path:
        """The ``stanford_cars`` folder itself."""
        return dataset_folder(self.root, FOLDER, markers=("devkit", "cars_train"))

    def _check(self) -> Path:
        return require_files(self.name, self.folder, FILES, SOURCE)

    def _read_class_names(self) -> list[str]:
        meta = scipy.io.loadmat(self._check() / "devkit" / "cars_meta.mat", squeeze_me=True)
        return [str(c) for c in meta["class_names"].tolist()]

    def _read_split(self, split: str) -> SampleList:
        d = self._check()
        ds = StanfordCars(torchvision_root(d, FOLDER, self.name), split=split, download=False)
        files = [Path(p) for p, _ in ds._samples]
        labels = torch.tensor([int(t) for _, t in ds._samples], dtype=torch.long)
        n = self.num_classes
        bad = ((labels < 0) | (labels >= n)).nonzero()
        if len(bad):
            i = int(bad[0, 0])
            mat = "devkit/cars_train_annos.mat" if split == "train" else \
                "cars_test_annos_withlabels.mat"
            raise ConfigError(f"Class {int(labels[i]) + 1} outside [1, {n}] in {d / mat}, "
                              f"annotation {i + 1} ({files[i].name})")
        return SampleList(files, labels)
