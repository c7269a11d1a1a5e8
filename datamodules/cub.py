"""CUB-200-2011 over its official layout and split, with bird boxes as ground truth."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from datamodules.base import FineGrainedDataModule, SampleList, missing_dataset_error

CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt",
             "bounding_boxes.txt", "images/")
CUB_SOURCE = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"


def _read_table(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-empty line of a whitespace-separated metadata file."""
    with open(path) as f:
        return [(i, line.split()) for i, line in enumerate(f, 1) if line.strip()]


class CUB200DataModule(FineGrainedDataModule):
    """CUB-200-2011. ``root`` is the folder holding ``CUB_200_2011/`` (or that folder itself).

    Labels are ``image_class_labels.txt`` minus one; ``train_test_split.txt`` gives the official
    5,994 / 5,794 split; val is carved from train. Ground truth: one part, "bird", the box of
    ``bounding_boxes.txt`` scaled to the resized image.
    """

    name = "CUB-200-2011"
    has_ground_truth = True

    @property
    def folder(self) -> Path:
        """The ``CUB_200_2011`` folder itself."""
        nested = self.root / "CUB_200_2011"
        return nested if nested.is_dir() else self.root

    def _check(self) -> Path:
        d = self.folder
        missing = [f for f in CUB_FILES if not (d / f.rstrip("/")).exists()]
        if missing:
            raise FileNotFoundError(missing_dataset_error(
                self.name, d, [f"CUB_200_2011/{f}" for f in CUB_FILES], CUB_SOURCE)
                + f" Missing: {', '.join(missing)}.")
        return d

    def _read_class_names(self) -> list[str]:
        d = self._check()
        # "001.Black_footed_Albatross" -> "Black_footed_Albatross"
        return [f[1].split(".", 1)[-1] for _, f in _read_table(d / "classes.txt")]

    @property
    def part_names(self) -> list[str]:
        return ["bird"]

    @property
    def part_attributes(self) -> Tensor:
        return torch.arange(self.num_classes)[:, None]

    def _read_split(self, split: str) -> SampleList:
        d = self._check()
        n_cls = self.num_classes
        images = {int(f[0]): f[1] for _, f in _read_table(d / "images.txt")}
        labels: dict[int, int] = {}
        for line, f in _read_table(d / "image_class_labels.txt"):
            lab = int(f[1]) - 1
            if not 0 <= lab < n_cls:
                raise ValueError(f"Label {f[1]} outside [1, {n_cls}] in "
                                 f"{d / 'image_class_labels.txt'} line {line}: {' '.join(f)}")
            labels[int(f[0])] = lab
        is_train = {int(f[0]): f[1] == "1" for _, f in _read_table(d / "train_test_split.txt")}
        boxes = {int(f[0]): [float(v) for v in f[1:5]]
                 for _, f in _read_table(d / "bounding_boxes.txt")}
        want_train = split == "train"
        ids = [i for i in sorted(images) if is_train.get(i) == want_train]
        missing = [i for i in ids if i not in labels or i not in boxes]
        if missing:
            raise ValueError(f"Image id {missing[0]} of {d / 'images.txt'} has no entry in "
                             "image_class_labels.txt or bounding_boxes.txt")
        return SampleList(
            files=[d / "images" / images[i] for i in ids],
            labels=torch.tensor([labels[i] for i in ids], dtype=torch.long),
            boxes=torch.tensor([boxes[i] for i in ids], dtype=torch.float32).reshape(-1, 4),
        )
