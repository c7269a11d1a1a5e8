"""Ground truth for your own images from a CSV: object boxes or part keypoints, as part masks.

Two forms, told apart by the header line (paths relative to the data root, coordinates in pixels
of the original image, origin at the top-left corner):

- boxes ``path,x0,y0,x1,y1``: one part, ``object``, the union of the image's boxes. Every class
  pair differs in it (``part_attributes`` ``[C, 1]`` = the class index, as CUB's bird box).
- keypoints ``path,part,x,y,visible``: one part per distinct ``part`` name (in first-seen order);
  an image's mask of a part is a disc of radius ``part_radius * sqrt(width * height)`` (the
  original image) around the visible keypoint, sampled at the resized image's pixel centres;
  where discs overlap a pixel goes to the nearest keypoint (``datamodules.cub_parts.part_masks``).
  A part without a row, or with ``visible`` 0, has an empty mask. Which parts differ between two
  classes comes from an optional second CSV ``class,part,value`` (one row per class and part;
  part p differs between classes t and s iff their values differ); without it every part differs.

An image without rows has empty masks (its map mass all lies outside the annotated parts).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.cub_parts import DEFAULT_PART_RADIUS, part_masks
from datamodules.image_list import load_rgb
from errors import ConfigError, MissingFileError

BOX_COLUMNS = ("path", "x0", "y0", "x1", "y1")
KEYPOINT_COLUMNS = ("path", "part", "x", "y", "visible")
ATTRIBUTE_COLUMNS = ("class", "part", "value")
BOX_PART = "object"


def _key(path: Path) -> str:
    """A comparable spelling of a file path (``a/./b`` and ``a/b`` agree)."""
    return os.path.normpath(os.fspath(path))


def _find(file: str, root: Path, option: str, columns: Sequence[str]) -> Path:
    path = Path(file).expanduser()
    if not path.is_absolute() and not path.is_file():
        path = root / path
    if not path.is_file():
        raise MissingFileError(f"{option} {file} not found (also not under root {root}); pass a "
                               f"CSV with the header {','.join(columns)}")
    return path


def _rows(path: Path, forms: Sequence[Sequence[str]]) -> tuple[tuple[str, ...],
                                                               list[tuple[int, dict]]]:
    """The header (one of ``forms``) and the ``(line, row)`` pairs of a CSV."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        names = reader.fieldnames or []
        form = next((f for f in forms if all(c in names for c in f)), None)
        if form is None:
            wanted = " or ".join(f"'{','.join(f)}'" for f in forms)
            raise ConfigError(f"{path} line 1: the header must be {wanted}, got "
                              f"{','.join(names) or 'an empty file'}; fix the header line")
        return tuple(form), [(line, row) for line, row in enumerate(reader, start=2)]


def _number(path: Path, line: int, row: dict, column: str) -> float:
    try:
        return float((row[column] or "").strip())
    except ValueError:
        raise ConfigError(f"{path} line {line}: {column}={row[column]!r} is not a number; write "
                          "pixels of the original image") from None


@dataclass
class CSVGroundTruth:
    """A parsed ground-truth CSV: ``boxes`` (file key -> ``[n, 4]`` x0, y0, x1, y1) or
    ``keypoints`` (file key -> ``[P, 3]`` x, y, visible), and the original image sizes."""

    kind: str  # "box" or "parts"
    part_names: list[str]
    sizes: dict[str, tuple[int, int]]  # file key -> (width, height)
    boxes: dict[str, Tensor] = field(default_factory=dict)
    keypoints: dict[str, Tensor] = field(default_factory=dict)
    part_radius: float = DEFAULT_PART_RADIUS

    def masks(self, file: Path, size: int) -> Tensor:
        """``[P, s, s]`` bool masks of one image at the resized size ``s`` (``Resize((s, s))``)."""
        key = _key(file)
        empty = torch.zeros(len(self.part_names), size, size, dtype=torch.bool)
        if key not in self.sizes:
            return empty
        width, height = self.sizes[key]
        if self.kind == "parts":
            p = len(self.part_names)
            return part_masks(self.keypoints[key], torch.arange(p), p,
                              torch.tensor([0.0, 0.0, width, height]), (width, height), size,
                              self.part_radius)
        grid = torch.arange(size, dtype=torch.float32) + 0.5
        xs, ys = grid * (width / size), grid * (height / size)  # pixel centres, original pixels
        for x0, y0, x1, y1 in self.boxes[key].tolist():
            inside_x = (xs >= x0) & (xs <= x1)
            inside_y = (ys >= y0) & (ys <= y1)
            empty[0] |= inside_y[:, None] & inside_x[None, :]
        return empty


def read_ground_truth(file: str, root: Path, files: Iterable[Path],
                      part_radius: float = DEFAULT_PART_RADIUS) -> CSVGroundTruth:
    """Parse ``file`` (boxes or keypoints) against the data's ``files``; one-line errors name
    the file, the line and the fix."""
    path = _find(file, root, "--data.ground_truth", BOX_COLUMNS)
    form, rows = _rows(path, (BOX_COLUMNS, KEYPOINT_COLUMNS))
    known = {_key(f) for f in files}
    sizes: dict[str, tuple[int, int]] = {}
    boxes: dict[str, list[list[float]]] = {}
    points: dict[str, dict[str, list[float]]] = {}
    parts: list[str] = []
    for line, row in rows:
        rel = (row["path"] or "").strip()
        key = _key(root / rel)
        if key not in known:
            raise ConfigError(f"{path} line {line}: image {rel!r} is not an image of the data "
                              f"under root {root}; write paths relative to root")
        if key not in sizes:
            try:
                with Image.open(root / rel) as img:  # reads the header only
                    sizes[key] = img.size
            except (OSError, UnidentifiedImageError, ValueError):
                # unreadable: skip_corrupt drops it, else loading it is the error that names it
                continue
        width, height = sizes[key]
        if form == BOX_COLUMNS:
            x0, y0, x1, y1 = (_number(path, line, row, c) for c in BOX_COLUMNS[1:])
            if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
                raise ConfigError(f"{path} line {line}: box ({x0}, {y0}, {x1}, {y1}) is not "
                                  f"inside the {width} x {height} image {rel} with x0 < x1, "
                                  "y0 < y1; give pixels of the original image")
            boxes.setdefault(key, []).append([x0, y0, x1, y1])
            continue
        part = (row["part"] or "").strip()
        if not part:
            raise ConfigError(f"{path} line {line}: empty part name; name the part")
        if part not in parts:
            parts.append(part)
        x, y, vis = (_number(path, line, row, c) for c in ("x", "y", "visible"))
        if vis > 0 and not (0 <= x <= width and 0 <= y <= height):
            raise ConfigError(f"{path} line {line}: keypoint ({x}, {y}) lies outside the "
                              f"{width} x {height} image {rel}; give pixels of the original "
                              "image (or visible 0)")
        if part in points.setdefault(key, {}):
            raise ConfigError(f"{path} line {line}: a second row for part {part!r} of {rel}; "
                              "keep one keypoint per part and image")
        points[key][part] = [x, y, float(vis > 0)]
    if form == BOX_COLUMNS:
        return CSVGroundTruth("box", [BOX_PART], sizes,
                              boxes={k: torch.tensor(v) for k, v in boxes.items()})
    keypoints = {k: torch.tensor([v.get(p, [0.0, 0.0, 0.0]) for p in parts])
                 for k, v in points.items()}
    return CSVGroundTruth("parts", parts, sizes, keypoints=keypoints, part_radius=part_radius)


def read_part_attributes(file: str, root: Path, class_names: Sequence[str],
                         part_names: Sequence[str]) -> Tensor:
    """``class,part,value`` CSV -> ``[C, P]`` long ids (equal iff the values are equal)."""
    path = _find(file, root, "--data.part_attributes", ATTRIBUTE_COLUMNS)
    _, rows = _rows(path, (ATTRIBUTE_COLUMNS,))
    classes = {c: i for i, c in enumerate(class_names)}
    parts = {p: i for i, p in enumerate(part_names)}
    values: dict[tuple[int, int], str] = {}
    for line, row in rows:
        cls, part = (row["class"] or "").strip(), (row["part"] or "").strip()
        if cls not in classes or part not in parts:
            what = f"class {cls!r}" if cls not in classes else f"part {part!r}"
            raise ConfigError(f"{path} line {line}: unknown {what}; use a class of the data "
                              f"({', '.join(class_names[:5])}, ...) and a part of the ground "
                              f"truth CSV ({', '.join(part_names)})")
        values[classes[cls], parts[part]] = (row["value"] or "").strip()
    missing = [(c, p) for c in class_names for p in part_names
               if (classes[c], parts[p]) not in values]
    if missing:
        raise ConfigError(f"{path}: no row for class {missing[0][0]!r}, part {missing[0][1]!r} "
                          f"({len(missing)} pair(s) missing); give one row per class and part")
    ids = torch.zeros(len(class_names), len(part_names), dtype=torch.long)
    for p in range(len(part_names)):
        seen: dict[str, int] = {}
        for c in range(len(class_names)):
            ids[c, p] = seen.setdefault(values[c, p], len(seen))
    return ids


class CSVGroundTruthDataset(Dataset):
    """Items ``(image [3, s, s], label, part_masks [P, s, s] bool)`` (evaluation transform only:
    the masks follow ``Resize((s, s))``)."""

    def __init__(self, files: Sequence[Path], labels: Tensor, transform: Callable,
                 truth: CSVGroundTruth, size: int) -> None:
        self.files = [Path(f) for f in files]
        self.labels = labels.long()
        self.transform = transform
        self.truth = truth
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor, Tensor]:
        img = load_rgb(self.files[idx])
        return (self.transform(img), self.labels[idx],
                self.truth.masks(self.files[idx], self.size))
