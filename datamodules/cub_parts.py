"""CUB-200-2011 part keypoints and class attributes as ground truth for part localisation.

Files (the official ``CUB_200_2011.tgz``):

- ``CUB_200_2011/parts/parts.txt``: ``<part_id> <part name>`` (15 parts; names may hold a space);
- ``CUB_200_2011/parts/part_locs.txt``: ``<image_id> <part_id> <x> <y> <visible>`` (pixels of the
  original image);
- ``attributes.txt``: ``<attribute_id> has_<group>::<value>`` (312 attributes in 28 groups); the
  tarball puts it beside ``CUB_200_2011/``, some copies move it inside: both are accepted;
- ``CUB_200_2011/attributes/class_attribute_labels_continuous.txt``: C rows x 312 floats, the
  percentage of the class's images showing each attribute.

Parts: left / right eye, leg and wing are merged, leaving 12 (back, beak, belly, breast, crown,
forehead, eye, leg, wing, nape, tail, throat). An image's mask of a part is a disc of radius
``part_radius * sqrt(box_w * box_h)`` (the bird box) around each visible keypoint of the part,
computed in the original image's pixels and sampled at the resized image's pixel centres, so it
is resized with the image (a disc becomes an ellipse where ``Resize((s, s))`` changes the aspect
ratio). Where discs overlap, a pixel belongs to the nearest keypoint, so the parts are disjoint.
An invisible part has an empty mask.

Which parts differ between two classes: each attribute group describes a part (``GROUP_PARTS``);
a class's value of a group is its dominant value (the largest percentage; ties go to the first
value in ``attributes.txt``). Part p differs between classes t and s when the dominant value of any
of p's groups differs. ``part_attribute_ids`` encodes each class's tuple of dominant values of a
part's groups as one id per part, so "differs" is "ids differ" (the form ``PartLocalization``
consumes). The whole-bird groups ``size``, ``shape`` and ``primary_color`` describe no single part
and are left out (mapped to every part, a differing size would mark every part as differing);
``head_pattern`` (capped, eyebrow, eyering, eyeline, masked, crested, ...) describes the head and is
mapped to crown, forehead, nape and eye.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.image_list import load_rgb
from errors import ConfigError, MissingFileError

PART_FILES = ("parts/parts.txt", "parts/part_locs.txt",
              "attributes/class_attribute_labels_continuous.txt")
ATTRIBUTE_NAMES = "attributes.txt"
DEFAULT_PART_RADIUS = 0.125

# attribute group (without "has_") -> the merged parts it describes
GROUP_PARTS: dict[str, tuple[str, ...]] = {
    "bill_shape": ("beak",), "bill_length": ("beak",), "bill_color": ("beak",),
    "wing_color": ("wing",), "wing_shape": ("wing",), "wing_pattern": ("wing",),
    "upperparts_color": ("back",), "back_color": ("back",), "back_pattern": ("back",),
    "underparts_color": ("breast", "belly"),
    "breast_pattern": ("breast",), "breast_color": ("breast",),
    "belly_color": ("belly",), "belly_pattern": ("belly",),
    "tail_shape": ("tail",), "tail_pattern": ("tail",), "upper_tail_color": ("tail",),
    "under_tail_color": ("tail",),
    "head_pattern": ("crown", "forehead", "nape", "eye"),
    "crown_color": ("crown",), "forehead_color": ("forehead",), "nape_color": ("nape",),
    "eye_color": ("eye",), "throat_color": ("throat",), "leg_color": ("leg",),
    "size": (), "shape": (), "primary_color": (),
}


def attribute_file_candidates(folder: Path) -> list[Path]:
    """Where ``attributes.txt`` may lie for the ``CUB_200_2011`` folder ``folder``, in order."""
    return [folder.parent / ATTRIBUTE_NAMES, folder / ATTRIBUTE_NAMES,
            folder / "attributes" / ATTRIBUTE_NAMES]


def missing_part_files(folder: Path) -> list[str]:
    """The ground-truth files absent from ``folder`` (``CUB_200_2011``), as printable names."""
    missing = [f for f in PART_FILES if not (folder / f).is_file()]
    if not any(p.is_file() for p in attribute_file_candidates(folder)):
        missing.append(f"{ATTRIBUTE_NAMES} (beside or inside {folder.name}/)")
    return missing


def _numbers(path: Path, columns: int) -> np.ndarray:
    """A whitespace-separated numeric file as ``[rows, columns]`` float64, parsed in one go."""
    tokens = path.read_text().split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError as err:
        raise ConfigError(f"{path}: every field must be a number ({err})") from err
    if values.size % columns:
        raise ConfigError(f"{path}: {values.size} numbers do not form rows of {columns} fields; "
                          "is the file truncated?")
    return values.reshape(-1, columns)


def _id_names(path: Path) -> list[str]:
    """``<id> <name with spaces>`` lines with ids 1..n in order -> the names."""
    names = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1)
        if len(fields) != 2 or fields[0] != str(len(names) + 1):
            raise ConfigError(f"{path} line {i}: expected '<id> <name>' with id {len(names) + 1}, "
                              f"got {line.strip()!r}")
        names.append(fields[1].strip())
    return names


def merged_parts(names: Sequence[str]) -> tuple[list[str], Tensor]:
    """Merge left / right parts: 15 names -> (12 names in first-seen order, ``[15]`` merged id)."""
    merged: list[str] = []
    index = []
    for name in names:
        base = name.removeprefix("left ").removeprefix("right ")
        if base not in merged:
            merged.append(base)
        index.append(merged.index(base))
    return merged, torch.tensor(index, dtype=torch.long)


def read_part_locs(path: Path, num_keypoints: int) -> tuple[Tensor, Tensor]:
    """``part_locs.txt`` -> keypoints ``[I + 1, K, 3]`` (x, y, visible) indexed by image id, and
    ``present [I + 1, K]`` bool (a line exists)."""
    rows = _numbers(path, 5)
    image_ids, part_ids = rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64)
    bad = (image_ids < 1) | (part_ids < 1) | (part_ids > num_keypoints)
    if bad.any():
        i = int(np.argmax(bad))
        raise ConfigError(f"{path} line {i + 1}: image id {image_ids[i]} / part id {part_ids[i]} "
                          f"outside [1, ...] / [1, {num_keypoints}] (parts.txt has "
                          f"{num_keypoints} parts)")
    n = int(image_ids.max()) + 1 if len(rows) else 1
    keypoints = torch.zeros(n, num_keypoints, 3, dtype=torch.float32)
    present = torch.zeros(n, num_keypoints, dtype=torch.bool)
    ii, pp = torch.from_numpy(image_ids), torch.from_numpy(part_ids - 1)
    keypoints[ii, pp] = torch.from_numpy(rows[:, 2:5]).float()
    present[ii, pp] = True
    return keypoints, present


def read_attribute_groups(path: Path) -> list[str]:
    """``attributes.txt`` -> the group of each attribute (``has_bill_shape::dagger`` ->
    ``bill_shape``), checked against ``GROUP_PARTS``."""
    groups = []
    for i, name in enumerate(_id_names(path), 1):
        group, sep, _ = name.partition("::")
        group = group.removeprefix("has_")
        if not sep or group not in GROUP_PARTS:
            raise ConfigError(f"{path} attribute {i}: {name!r} is not 'has_<group>::<value>' with "
                              f"a known group ({', '.join(sorted(GROUP_PARTS))})")
        groups.append(group)
    return groups


def part_attribute_ids(
    class_attributes: np.ndarray, groups: Sequence[str], part_names: Sequence[str]
) -> Tensor:
    """``[C, P]`` long ids: equal iff the class pair has the same dominant value in every group
    of the part (``GROUP_PARTS``). class_attributes: ``[C, A]`` percentages; groups: ``[A]``."""
    groups_arr = np.asarray(groups)
    dominant: dict[str, np.ndarray] = {}
    for group in dict.fromkeys(groups):
        cols = np.flatnonzero(groups_arr == group)
        dominant[group] = np.argmax(class_attributes[:, cols], axis=1)  # ties: first value
    ids = np.zeros((class_attributes.shape[0], len(part_names)), dtype=np.int64)
    for p, part in enumerate(part_names):
        mine = [g for g in dominant if part in GROUP_PARTS[g]]
        if mine:
            values = np.stack([dominant[g] for g in mine], axis=1)  # [C, groups of the part]
            ids[:, p] = np.unique(values, axis=0, return_inverse=True)[1].reshape(-1)
    return torch.from_numpy(ids)


def part_masks(
    keypoints: Tensor, merge: Tensor, num_parts: int, box: Tensor, image_size: tuple[int, int],
    size: int, radius: float = DEFAULT_PART_RADIUS,
) -> Tensor:
    """Masks ``[P, s, s]`` bool of one image at the resized size ``s``.

    keypoints: ``[K, 3]`` (x, y, visible) in original pixels; merge: ``[K]`` merged part of each
    keypoint; box: ``[4]`` (x, y, w, h); image_size: original (width, height). A pixel belongs to
    the nearest visible keypoint within ``radius * sqrt(w * h)`` (original pixels).
    """
    width, height = image_size
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    xs, ys = grid * (width / size), grid * (height / size)
    kx, ky, vis = keypoints[:, 0, None, None], keypoints[:, 1, None, None], keypoints[:, 2] > 0
    d2 = (xs[None, None, :] - kx) ** 2 + (ys[None, :, None] - ky) ** 2  # [K, s, s]
    d2 = torch.where(vis[:, None, None], d2, torch.inf)
    nearest_d2, nearest = d2.min(dim=0)
    r = radius * math.sqrt(max(float(box[2] * box[3]), 0.0))
    label = torch.where(nearest_d2 <= r * r, merge[nearest], num_parts)  # num_parts: no part
    return label[None] == torch.arange(num_parts)[:, None, None]


@dataclass
class CUBPartAnnotations:
    """Everything parsed once from the part and attribute files."""

    part_names: list[str]  # merged, 12 on the real data
    merge: Tensor  # [K] merged part of each keypoint of parts.txt
    keypoints: Tensor  # [I + 1, K, 3] by image id
    present: Tensor  # [I + 1, K] bool
    part_attributes: Tensor  # [C, P] long

    @classmethod
    def load(cls, folder: Path, num_classes: int) -> CUBPartAnnotations:
        """Parse the files under ``folder`` (``CUB_200_2011``); a missing one is a clear error."""
        missing = missing_part_files(folder)
        if missing:
            raise MissingFileError(
                f"CUB-200-2011 part ground truth (with_ground_truth='parts') needs "
                f"{', '.join(PART_FILES)} in {folder} and {ATTRIBUTE_NAMES} beside or inside it; "
                f"missing: {', '.join(missing)}. They come with CUB_200_2011.tgz "
                "(https://www.vision.caltech.edu/datasets/cub_200_2011/); or use "
                "with_ground_truth='box' for the bird box alone.")
        keypoint_names = _id_names(folder / "parts" / "parts.txt")
        names, merge = merged_parts(keypoint_names)
        keypoints, present = read_part_locs(folder / "parts" / "part_locs.txt",
                                            len(keypoint_names))
        attr_path = next(p for p in attribute_file_candidates(folder) if p.is_file())
        groups = read_attribute_groups(attr_path)
        unknown = sorted({p for g in groups for p in GROUP_PARTS[g]} - set(names))
        if unknown:
            raise ConfigError(f"{folder / 'parts' / 'parts.txt'} lacks the parts {unknown} that "
                              f"the attribute groups of {attr_path} describe; got {names}")
        table = folder / "attributes" / "class_attribute_labels_continuous.txt"
        class_attr = _numbers(table, 1).reshape(-1)
        if class_attr.size != num_classes * len(groups):
            raise ConfigError(
                f"{table}: expected {num_classes} rows x {len(groups)} values (classes in "
                f"classes.txt x attributes in {attr_path.name}), found {class_attr.size} values")
        ids = part_attribute_ids(class_attr.reshape(num_classes, len(groups)), groups, names)
        return cls(names, merge, keypoints, present, ids)

    def for_images(self, image_ids: Tensor, where: Path) -> Tensor:
        """Keypoints ``[N, K, 3]`` of the given image ids; an image without lines is an error."""
        known = image_ids < self.present.shape[0]
        ok = known.clone()
        ok[known] = self.present[image_ids[known]].all(dim=1)
        if not bool(ok.all()):
            first = int(image_ids[~ok][0])
            raise ConfigError(f"Image id {first} of images.txt has no (or not every) line in "
                              f"{where}; each image needs one line per part of parts.txt")
        return self.keypoints[image_ids]


class CUBPartsDataset(Dataset):
    """Items ``(image [3, s, s], label, part_masks [P, s, s] bool)`` (evaluation transform only:
    the masks follow ``Resize((s, s))``)."""

    def __init__(
        self, files: Sequence[Path], labels: Tensor, transform: Callable, keypoints: Tensor,
        boxes: Tensor, annotations: CUBPartAnnotations, size: int, radius: float,
    ) -> None:
        self.files = [Path(f) for f in files]
        self.labels = labels.long()
        self.transform = transform
        self.keypoints = keypoints  # [N, K, 3]
        self.boxes = boxes.float()  # [N, 4]
        self.merge = annotations.merge
        self.num_parts = len(annotations.part_names)
        self.size = size
        self.radius = radius

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: int) -> tuple[Tensor, Tensor, Tensor]:
        img = load_rgb(self.files[idx])
        masks = part_masks(self.keypoints[idx], self.merge, self.num_parts, self.boxes[idx],
                           (img.width, img.height), self.size, self.radius)
        return self.transform(img), self.labels[idx], masks
