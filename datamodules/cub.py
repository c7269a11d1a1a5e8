"""CUB-200-2011 over its official layout and split, with part keypoints / attributes or the bird
box as ground truth."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.base import FineGrainedDataModule, SampleList, missing_dataset_error
from datamodules.cub_parts import (
    DEFAULT_PART_RADIUS,
    CUBPartAnnotations,
    CUBPartsDataset,
    missing_part_files,
)
from errors import ConfigError, MissingFileError

CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt",
             "bounding_boxes.txt", "images/")
CUB_SOURCE = "https://www.vision.caltech.edu/datasets/cub_200_2011/ (CUB_200_2011.tgz)"


def _read_table(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of each non-empty line of a whitespace-separated metadata file."""
    with open(path) as f:
        return [(i, line.split()) for i, line in enumerate(f, 1) if line.strip()]


@dataclass
class CUBSamples(SampleList):
    """A split with the CUB image ids ``[N]`` (to look up part keypoints)."""

    ids: Tensor | None = None


GroundTruth = Literal["box", "parts"]


class CUB200DataModule(FineGrainedDataModule):
    """CUB-200-2011. ``root`` is the folder holding ``CUB_200_2011/`` (or that folder itself).

    Labels are ``image_class_labels.txt`` minus one; ``train_test_split.txt`` gives the official
    5,994 / 5,794 split; val is carved from train.

    Ground truth of val / test batches (``with_ground_truth``):

    - ``"parts"``: 12 part masks (``datamodules.cub_parts``: discs of radius ``part_radius`` x the
      bird box's geometric mean side around the visible keypoints, left / right merged) and
      ``part_attributes`` [C, 12] from the class attribute table; missing files are an error.
    - ``"box"``: one part, "bird", the box of ``bounding_boxes.txt`` scaled to the resized image;
      every part differs between any two classes.
    - ``True``: ``"parts"`` when the part and attribute files are there, else ``"box"`` with one
      warning naming the missing files (what ``evaluate.py`` asks for: a copy without them still
      evaluates, and says what it lacks).
    - ``False`` (default): no masks (fitting needs none).
    """

    name = "CUB-200-2011"
    has_ground_truth = True

    def __init__(
        self,
        root: str | Path = "data",
        with_ground_truth: bool | GroundTruth = False,
        part_radius: float = DEFAULT_PART_RADIUS,
        **kwargs: Any,
    ) -> None:
        """``kwargs``: the common arguments of ``FineGrainedDataModule``."""
        if with_ground_truth not in (False, True, "box", "parts"):
            raise ConfigError(f"with_ground_truth={with_ground_truth!r}: use 'parts', 'box', True "
                              "(parts if the files are there, else the box) or False")
        if not part_radius > 0:
            raise ConfigError(f"part_radius={part_radius}: give a positive fraction of the bird "
                              f"box, e.g. {DEFAULT_PART_RADIUS}")
        super().__init__(root, with_ground_truth=with_ground_truth, **kwargs)
        self.part_radius = part_radius
        self._ground_truth: str | None = None
        self._annotations: CUBPartAnnotations | None = None

    @property
    def folder(self) -> Path:
        """The ``CUB_200_2011`` folder itself."""
        nested = self.root / "CUB_200_2011"
        return nested if nested.is_dir() else self.root

    def _check(self) -> Path:
        d = self.folder
        missing = [f for f in CUB_FILES if not (d / f.rstrip("/")).exists()]
        if missing:
            raise MissingFileError(missing_dataset_error(
                self.name, d, [f"CUB_200_2011/{f}" for f in CUB_FILES], CUB_SOURCE)
                + f" Missing: {', '.join(missing)}.")
        return d

    def _read_class_names(self) -> list[str]:
        d = self._check()
        # "001.Black_footed_Albatross" -> "Black_footed_Albatross"
        return [f[1].split(".", 1)[-1] for _, f in _read_table(d / "classes.txt")]

    @property
    def ground_truth(self) -> str | None:
        """The resolved ground truth: ``"parts"``, ``"box"`` or None (warns once for True)."""
        if self._ground_truth is None and self.with_ground_truth:
            mode = self.with_ground_truth
            if mode is True:
                missing = missing_part_files(self._check())
                mode = "box" if missing else "parts"
                if missing:
                    warnings.warn(
                        f"CUB-200-2011 in {self.folder} lacks {', '.join(missing)}: part "
                        "localisation falls back to the bird box (one part, so every part "
                        "'differs' and 'shared' stays 0). Add the files of CUB_200_2011.tgz, or "
                        "pass --data.init_args.with_ground_truth box to silence this.",
                        stacklevel=2)
            self._ground_truth = str(mode)
        return self._ground_truth

    @property
    def annotations(self) -> CUBPartAnnotations:
        """The parsed part and attribute files (read once)."""
        if self._annotations is None:
            self._annotations = CUBPartAnnotations.load(self._check(), self.num_classes)
        return self._annotations

    @property
    def part_names(self) -> list[str]:
        if self.ground_truth == "parts":
            return list(self.annotations.part_names)
        return ["bird"]

    @property
    def part_attributes(self) -> Tensor:
        if self.ground_truth == "parts":
            return self.annotations.part_attributes
        return torch.arange(self.num_classes)[:, None]

    def _subset(self, samples: SampleList, indices: Any, train: bool,
                unreadable: set[Path]) -> Dataset:
        ds = super()._subset(samples, indices, train, unreadable)
        if train or self.ground_truth != "parts":
            return ds
        assert isinstance(samples, CUBSamples) and samples.ids is not None
        assert samples.boxes is not None
        # the base may have dropped unreadable files (skip_corrupt): follow its file list
        row = {f: i for i, f in enumerate(samples.files)}
        keep = torch.tensor([row[f] for f in ds.files], dtype=torch.long)
        ann = self.annotations
        keypoints = ann.for_images(samples.ids[keep], self.folder / "parts" / "part_locs.txt")
        return CUBPartsDataset(ds.files, ds.labels, ds.transform, keypoints, samples.boxes[keep],
                               ann, self.image_size, self.part_radius)

    def _read_split(self, split: str) -> CUBSamples:
        d = self._check()
        n_cls = self.num_classes
        images = {int(f[0]): f[1] for _, f in _read_table(d / "images.txt")}
        labels: dict[int, int] = {}
        for line, f in _read_table(d / "image_class_labels.txt"):
            lab = int(f[1]) - 1
            if not 0 <= lab < n_cls:
                raise ConfigError(f"Label {f[1]} outside [1, {n_cls}] in "
                                  f"{d / 'image_class_labels.txt'} line {line}: {' '.join(f)}")
            labels[int(f[0])] = lab
        is_train = {int(f[0]): f[1] == "1" for _, f in _read_table(d / "train_test_split.txt")}
        boxes = {int(f[0]): [float(v) for v in f[1:5]]
                 for _, f in _read_table(d / "bounding_boxes.txt")}
        want_train = split == "train"
        ids = [i for i in sorted(images) if is_train.get(i) == want_train]
        missing = [i for i in ids if i not in labels or i not in boxes]
        if missing:
            raise ConfigError(f"Image id {missing[0]} of {d / 'images.txt'} has no entry in "
                              "image_class_labels.txt or bounding_boxes.txt")
        return CUBSamples(
            files=[d / "images" / images[i] for i in ids],
            labels=torch.tensor([labels[i] for i in ids], dtype=torch.long),
            boxes=torch.tensor([boxes[i] for i in ids], dtype=torch.float32).reshape(-1, 4),
            ids=torch.tensor(ids, dtype=torch.long),
        )
