"""Your own data: class folders (``root/train/<class>/*.jpg``) or one folder with a split CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.base import FineGrainedDataModule, SampleList
from datamodules.cub_parts import DEFAULT_PART_RADIUS
from datamodules.ground_truth_csv import (
    CSVGroundTruth,
    CSVGroundTruthDataset,
    read_ground_truth,
    read_part_attributes,
)
from errors import ConfigError, MissingFileError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
COLUMNS = ("path", "label", "split")


class ImageFolderDataModule(FineGrainedDataModule):
    """Images in class folders, or listed in a CSV, with the five data sets' loaders.

    Layouts:

    - folders: ``root/train/<class>/<image>`` and ``root/test/<class>/<image>``, optionally
      ``root/val/<class>/<image>`` (else ``val_fraction`` of train is held out, seeded). Classes
      are the sorted folder names under ``train/``; label ``i`` is the ``i``-th of them.
    - a split file: ``split_file`` (a CSV with the header ``path,label,split``; ``path`` relative
      to ``root``, ``label`` a class name, ``split`` one of train / val / test). Classes are the
      sorted distinct labels.

    Ground truth for the localisation metrics (``datamodules.ground_truth_csv``): ``ground_truth``
    a CSV of boxes ``path,x0,y0,x1,y1`` or part keypoints ``path,part,x,y,visible``, and for
    keypoints optionally ``part_attributes`` a CSV ``class,part,value`` saying which parts differ
    between classes. With ``with_ground_truth`` (``evaluate.py`` sets it) val / test batches
    carry ``part_masks [B, P, s, s]``; without a ``ground_truth`` file they carry none.

    Everything else (transforms, seeding, the DDP sampler, ``skip_corrupt``, the errors for a bad
    label or image) is ``FineGrainedDataModule``'s. Image files: ``EXTENSIONS``, any case.
    """

    name = "image folder"
    has_ground_truth = True

    def __init__(self, root: str | Path = "data", split_file: str | None = None,
                 with_ground_truth: bool = False, ground_truth: str | None = None,
                 part_attributes: str | None = None,
                 part_radius: float = DEFAULT_PART_RADIUS, **kwargs: Any) -> None:
        """``kwargs``: the common arguments of ``FineGrainedDataModule``."""
        if part_attributes is not None and ground_truth is None:
            raise ConfigError(f"--data.part_attributes {part_attributes} needs "
                              "--data.ground_truth FILE.csv with part keypoints "
                              "(path,part,x,y,visible)")
        if not part_radius > 0:
            raise ConfigError(f"part_radius={part_radius}: give a positive fraction of the image "
                              f"side, e.g. {DEFAULT_PART_RADIUS}")
        super().__init__(root, with_ground_truth=with_ground_truth, **kwargs)
        self.split_file = split_file
        self.ground_truth = ground_truth
        self.part_attributes_file = part_attributes
        self.part_radius = part_radius
        self._rows: dict[str, list[tuple[Path, str]]] | None = None
        self._truth: CSVGroundTruth | None = None
        self._part_attributes: Tensor | None = None

    # --- reading ----------------------------------------------------------------------------
    def _layout_error(self, detail: str) -> MissingFileError:
        return MissingFileError(
            f"{self.name} {self.root}: {detail}. Expected root/train/<class>/<image> and "
            "root/test/<class>/<image> (optional root/val/), or --data.split_file FILE.csv with "
            "the columns path,label,split (paths relative to root).")

    def _folder_rows(self) -> dict[str, list[tuple[Path, str]]]:
        if not self.root.is_dir():
            raise self._layout_error("the folder does not exist")
        missing = [s for s in ("train", "test") if not (self.root / s).is_dir()]
        if missing:
            raise self._layout_error(f"no {' or '.join(s + '/' for s in missing)} folder")
        rows: dict[str, list[tuple[Path, str]]] = {}
        for split in SPLITS:
            folder = self.root / split
            if not folder.is_dir():
                continue
            rows[split] = []
            for cls in sorted(p for p in folder.iterdir() if p.is_dir()):
                images = sorted(p for p in cls.iterdir()
                                if p.is_file() and p.suffix.lower() in EXTENSIONS)
                if not images:
                    raise ConfigError(f"class folder {cls} holds no images "
                                      f"({', '.join(EXTENSIONS)}); remove it or add its images")
                rows[split] += [(p, cls.name) for p in images]
        return rows

    def _csv_rows(self) -> dict[str, list[tuple[Path, str]]]:
        path = Path(self.split_file).expanduser()  # type: ignore[arg-type]
        if not path.is_absolute() and not path.is_file():
            path = self.root / path
        if not path.is_file():
            raise MissingFileError(f"split file {self.split_file} not found (also not under "
                                   f"root {self.root}); pass a CSV with the columns "
                                   "path,label,split")
        rows: dict[str, list[tuple[Path, str]]] = {}
        missing: list[str] = []
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or any(c not in reader.fieldnames for c in COLUMNS):
                raise ConfigError(f"split file {path} must start with the header line "
                                  f"'path,label,split', got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                split = (row["split"] or "").strip()
                if split not in SPLITS:
                    raise ConfigError(f"split file {path} line {line}: split {split!r} is not "
                                      f"one of {SPLITS}")
                file = self.root / row["path"].strip()
                if not file.is_file():
                    missing.append(f"{row['path']} (line {line})")
                rows.setdefault(split, []).append((file, row["label"].strip()))
        if missing:
            raise MissingFileError(f"split file {path} lists {len(missing)} file(s) missing under "
                                   f"root {self.root}, e.g. {', '.join(missing[:3])}")
        for split in ("train", "test"):
            if not rows.get(split):
                raise ConfigError(f"split file {path} has no {split!r} rows")
        return rows

    @property
    def rows(self) -> dict[str, list[tuple[Path, str]]]:
        """split -> [(file, class name)], read once."""
        if self._rows is None:
            self._rows = self._csv_rows() if self.split_file else self._folder_rows()
        return self._rows

    @property
    def has_official_val(self) -> bool:  # type: ignore[override]
        """Whether the data has its own val split (a ``val/`` folder or ``val`` rows)."""
        return bool(self.rows.get("val"))

    def _read_class_names(self) -> list[str]:
        if self.split_file:
            return sorted({label for rows in self.rows.values() for _, label in rows})
        return sorted({label for _, label in self.rows["train"]})

    def _read_split(self, split: str) -> SampleList:
        order = {c: i for i, c in enumerate(self.class_names)}
        rows = self.rows[split]
        unknown = sorted({label for _, label in rows if label not in order})
        if unknown:
            raise ConfigError(f"{self.name} {self.root}: {split} has classes that train lacks: "
                              f"{unknown[:5]}; every class needs training images")
        labels = torch.tensor([order[label] for _, label in rows], dtype=torch.long)
        return SampleList([file for file, _ in rows], labels)

    # --- ground truth -----------------------------------------------------------------------
    @property
    def truth(self) -> CSVGroundTruth:
        """The parsed ``ground_truth`` CSV (read once; checked against every image of the data)."""
        if self.ground_truth is None:
            raise ConfigError(f"{self.name} {self.root} has no ground-truth parts; pass "
                              "--data.ground_truth FILE.csv (boxes or part keypoints)")
        if self._truth is None:
            files = [f for rows in self.rows.values() for f, _ in rows]
            self._truth = read_ground_truth(self.ground_truth, self.root, files,
                                            self.part_radius)
            if self.part_attributes_file is not None and self._truth.kind != "parts":
                raise ConfigError(f"--data.part_attributes {self.part_attributes_file} needs "
                                  "part keypoints (path,part,x,y,visible) in --data.ground_truth "
                                  f"{self.ground_truth}, which holds boxes")
        return self._truth

    @property
    def part_names(self) -> list[str]:  # type: ignore[override]
        return self.truth.part_names

    @property
    def part_attributes(self) -> Tensor:  # type: ignore[override]
        """``[C, P]`` long: from ``part_attributes``, else every part differs (the class index)."""
        if self._part_attributes is None:
            names = self.part_names
            if self.part_attributes_file is None:
                self._part_attributes = torch.arange(self.num_classes)[:, None].expand(
                    -1, len(names)).contiguous()
            else:
                self._part_attributes = read_part_attributes(
                    self.part_attributes_file, self.root, self.class_names, names)
        return self._part_attributes

    def setup(self, stage: str | None = None) -> None:
        """The base's setup; with ground truth, its CSVs are read and checked first."""
        if self.with_ground_truth and self.ground_truth is not None:
            self.part_attributes  # noqa: B018 (reads both CSVs before any work)
        super().setup(stage)

    def _subset(self, samples: SampleList, indices: Any, train: bool,
                unreadable: set[Path]) -> Dataset:
        ds = super()._subset(samples, indices, train, unreadable)
        if train or not self.with_ground_truth or self.ground_truth is None:
            return ds
        return CSVGroundTruthDataset(ds.files, ds.labels, ds.transform,  # type: ignore[attr-defined]
                                     self.truth, self.image_size)
