"""Your own data: class folders (``root/train/<class>/*.jpg``) or one folder with a split CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from datamodules.base import FineGrainedDataModule, SampleList
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

    Everything else (transforms, seeding, the DDP sampler, ``skip_corrupt``, the errors for a bad
    label or image) is ``FineGrainedDataModule``'s. Image files: ``EXTENSIONS``, any case.
    """

    name = "image folder"

    def __init__(self, root: str | Path = "data", split_file: str | None = None,
                 **kwargs: Any) -> None:
        """``kwargs``: the common arguments of ``FineGrainedDataModule``."""
        super().__init__(root, **kwargs)
        self.split_file = split_file
        self._rows: dict[str, list[tuple[Path, str]]] | None = None

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
