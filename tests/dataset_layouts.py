"""Miniature on-disk copies of each dataset's real layout, for tests (a few tiny JPEGs + metadata).

Each ``make_*`` writes under ``root`` and returns the expected contents, so tests (ours and other
helpers') can load them through the datamodules and compare.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (24, 16)) -> None:
    """A small random RGB JPEG of ``size`` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    arr = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
    Image.fromarray(arr).save(path, format="JPEG")


CUB_PARTS = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg",
             "left wing", "nape", "right eye", "right leg", "right wing", "tail", "throat"]
# 3 values per group, real group names; value names in CUB's style
CUB_GROUPS = ["bill_shape", "wing_color", "upperparts_color", "underparts_color",
              "breast_pattern", "back_color", "tail_shape", "upper_tail_color", "head_pattern",
              "breast_color", "throat_color", "eye_color", "bill_length", "forehead_color",
              "under_tail_color", "nape_color", "belly_color", "wing_shape", "size", "shape",
              "back_pattern", "tail_pattern", "belly_pattern", "primary_color", "leg_color",
              "bill_color", "crown_color", "wing_pattern"]
# class -> {group: dominant value index}; every other group has value 0 dominant
CUB_DOMINANT = {1: {"wing_color": 1, "bill_shape": 2, "size": 1},
                2: {"crown_color": 1, "head_pattern": 1, "underparts_color": 2, "shape": 2}}
# the merged parts in which two classes differ, as the rules of datamodules/cub_parts.py give them
CUB_DIFFER = {(0, 1): {"wing", "beak"},
              (0, 2): {"crown", "forehead", "nape", "eye", "breast", "belly"},
              (1, 2): {"wing", "beak", "crown", "forehead", "nape", "eye", "breast", "belly"}}


def _cub_values(group: str) -> list[str]:
    if group.endswith("color"):
        return ["blue", "brown", "iridescent"]
    if group.endswith("pattern"):
        return ["solid", "spotted", "striped"]
    if group == "size":
        return ["large_(16_-_32_in)", "small_(5_-_9_in)", "very_small_(3_-_5_in)"]
    return ["curved_(up_or_down)", "dagger", "hooked"]


def cub_keypoints(image_id: int) -> list[tuple[float, float, int]]:
    """The 15 keypoints (x, y, visible) the miniature writes for an image (32 x 16 pixels).

    On a 5 x 3 grid (x = 4, 10, ..., 28; y = 3, 8, 13); keypoint k (0-based) is invisible when
    ``(image_id + k) % 3 == 0``: both eyes / legs / wings are visible when ``image_id % 3 == 1``,
    only the right ones when it is 0, only the left ones when it is 2. Invisible keypoints are
    written as 0 0, as the real file does.
    """
    out = []
    for k in range(15):
        visible = int((image_id + k) % 3 != 0)
        x, y = 4.0 + 6.0 * (k % 5), 3.0 + 5.0 * (k // 5)
        out.append((x, y, visible) if visible else (0.0, 0.0, 0))
    return out


def make_cub(root: Path, num_classes: int = 3, per_class: int = 4, parts: bool = True,
             attributes_inside: bool = False) -> dict:
    """``root/CUB_200_2011`` with every other image of a class in train (is_train 1).

    With ``parts`` also the part and attribute files in the real formats: ``parts/parts.txt``,
    ``parts/part_locs.txt`` (``cub_keypoints``), ``attributes.txt`` beside ``CUB_200_2011/``
    (inside it with ``attributes_inside``) and ``attributes/class_attribute_labels_continuous.txt``
    (dominant values ``CUB_DOMINANT``, so the differing parts are ``CUB_DIFFER``; group
    ``tail_pattern`` is a tie, 30 / 30 / 10, in every class).
    """
    d = root / "CUB_200_2011"
    classes = [f"{c + 1:03d}.Bird_{c}" for c in range(num_classes)]
    images, labels, split, boxes, locs = [], [], [], [], []
    i = 0
    for c, name in enumerate(classes):
        for k in range(per_class):
            i += 1
            rel = f"{name}/{name.split('.')[1]}_{k:04d}_{i}.jpg"
            write_jpeg(d / "images" / rel, seed=i, size=(32, 16))
            images.append(f"{i} {rel}")
            labels.append(f"{i} {c + 1}")
            split.append(f"{i} {int(k % 2 == 0)}")
            boxes.append(f"{i} 8.0 4.0 16.0 8.0")
            locs += [f"{i} {p + 1} {x:.1f} {y:.1f} {v}"
                     for p, (x, y, v) in enumerate(cub_keypoints(i))]
    files = [("classes.txt", [f"{c + 1} {n}" for c, n in enumerate(classes)]),
             ("images.txt", images), ("image_class_labels.txt", labels),
             ("train_test_split.txt", split), ("bounding_boxes.txt", boxes)]
    if parts:
        attributes = [f"has_{g}::{v}" for g in CUB_GROUPS for v in _cub_values(g)]
        table = []
        for c in range(num_classes):
            row = []
            for g in CUB_GROUPS:
                pct = [30.0, 30.0, 10.0] if g == "tail_pattern" else [10.0, 10.0, 10.0]
                if g != "tail_pattern":
                    pct[CUB_DOMINANT.get(c, {}).get(g, 0)] = 55.5
                row += pct
            table.append(" ".join(f"{v:.6f}" for v in row))
        attr_lines = [f"{a + 1} {name}" for a, name in enumerate(attributes)]
        (d / "parts").mkdir(parents=True, exist_ok=True)
        (d / "attributes").mkdir(parents=True, exist_ok=True)
        files += [("parts/parts.txt", [f"{p + 1} {n}" for p, n in enumerate(CUB_PARTS)]),
                  ("parts/part_locs.txt", locs),
                  ("attributes/class_attribute_labels_continuous.txt", table)]
        attr_path = d / "attributes.txt" if attributes_inside else root / "attributes.txt"
        attr_path.write_text("\n".join(attr_lines) + "\n")
    for fname, lines in files:
        (d / fname).write_text("\n".join(lines) + "\n")
    train_labels = [c for c in range(num_classes) for k in range(per_class) if k % 2 == 0]
    test_labels = [c for c in range(num_classes) for k in range(per_class) if k % 2 == 1]
    test_ids = [c * per_class + k + 1 for c in range(num_classes) for k in range(per_class)
                if k % 2 == 1]
    return {"class_names": [n.split(".", 1)[1] for n in classes],
            "train_labels": train_labels, "test_labels": test_labels, "test_ids": test_ids}


def make_fgvc_aircraft(root: Path, per_split: int = 4) -> dict:
    """``root/fgvc-aircraft-2013b/data`` with 3 variants / 2 families / 2 manufacturers."""
    d = root / "fgvc-aircraft-2013b" / "data"
    variants, families, makers = ["707-320", "A320", "F-16A/B"], ["Boeing 707", "A320"], \
        ["Boeing", "Airbus"]
    for fname, names in [("variants.txt", variants), ("families.txt", families),
                         ("manufacturers.txt", makers)]:
        d.mkdir(parents=True, exist_ok=True)
        (d / fname).write_text("\n".join(names) + "\n")
    out: dict = {"variants": variants, "families": families}
    seed = 0
    for split in ("train", "val", "test"):
        var_lines, fam_lines, labels = [], [], []
        for k in range(per_split):
            seed += 1
            img_id = f"{1000000 + seed}"
            write_jpeg(d / "images" / f"{img_id}.jpg", seed)
            v = k % 3
            var_lines.append(f"{img_id} {variants[v]}")
            fam_lines.append(f"{img_id} {families[min(v, 1)]}")
            labels.append(v)
        (d / f"images_variant_{split}.txt").write_text("\n".join(var_lines) + "\n")
        (d / f"images_family_{split}.txt").write_text("\n".join(fam_lines) + "\n")
        out[f"{split}_labels"] = labels
    return out


def make_food101(root: Path, per_class: int = 4) -> dict:
    """``root/food-101`` with 3 classes, ``meta/classes.txt`` deliberately not sorted."""
    d = root / "food-101"
    classes = ["waffles", "apple_pie", "ramen"]
    (d / "meta").mkdir(parents=True)
    (d / "meta" / "classes.txt").write_text("\n".join(classes) + "\n")
    seed = 0
    out: dict = {"class_names": classes}
    for split in ("train", "test"):
        meta: dict[str, list[str]] = {}
        for c in classes:
            meta[c] = []
            for _ in range(per_class):
                seed += 1
                rel = f"{c}/{seed}"
                write_jpeg(d / "images" / f"{rel}.jpg", seed)
                meta[c].append(rel)
        (d / "meta" / f"{split}.json").write_text(json.dumps(meta))
        out[f"{split}_labels"] = [i for i in range(len(classes)) for _ in range(per_class)]
    return out


def make_flowers102(root: Path, n_images: int = 12) -> dict:
    """``root/flowers-102`` with ``jpg/``, ``imagelabels.mat`` (1-based) and ``setid.mat``."""
    d = root / "flowers-102"
    labels = np.array([(i % 4) + 1 for i in range(n_images)], dtype=np.uint8)
    for i in range(1, n_images + 1):
        write_jpeg(d / "jpg" / f"image_{i:05d}.jpg", i)
    ids = np.arange(1, n_images + 1)
    setid = {"trnid": ids[0::3], "valid": ids[1::3], "tstid": ids[2::3]}
    scipy.io.savemat(d / "imagelabels.mat", {"labels": labels[None, :]})
    scipy.io.savemat(d / "setid.mat", {k: v[None, :] for k, v in setid.items()})
    return {f"{s}_labels": (labels[setid[k] - 1].astype(int) - 1).tolist()
            for s, k in [("train", "trnid"), ("val", "valid"), ("test", "tstid")]}


def _cars_annos(fnames: list[str], classes: list[int]) -> np.ndarray:
    dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"),
             ("class", "O"), ("fname", "O")]
    rec = np.zeros((1, len(fnames)), dtype=dtype)
    for i, (f, c) in enumerate(zip(fnames, classes, strict=True)):
        rec[0, i] = (1, 1, 10, 10, c, f)
    return rec


def make_stanford_cars(root: Path, per_split: int = 6, bad_class: int | None = None) -> dict:
    """``root/stanford_cars`` with devkit ``.mat`` files; 3 classes (1-based in the files)."""
    d = root / "stanford_cars"
    (d / "devkit").mkdir(parents=True)
    names = ["AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi R8 Coupe 2012"]
    scipy.io.savemat(d / "devkit" / "cars_meta.mat",
                     {"class_names": np.array(names, dtype=object)[None, :]})
    out: dict = {"class_names": names}
    seed = 0
    for split, folder, mat in [("train", "cars_train", d / "devkit" / "cars_train_annos.mat"),
                               ("test", "cars_test", d / "cars_test_annos_withlabels.mat")]:
        fnames, classes = [], []
        for k in range(per_split):
            seed += 1
            fnames.append(f"{seed:05d}.jpg")
            classes.append(k % 3 + 1)
            write_jpeg(d / folder / fnames[-1], seed)
        if bad_class is not None and split == "train":
            classes[-1] = bad_class
        scipy.io.savemat(mat, {"annotations": _cars_annos(fnames, classes)})
        out[f"{split}_labels"] = [c - 1 for c in classes]
    return out


IMAGE_FOLDER_CLASSES = ["wren", "finch", "sparrow"]


def make_image_folder(root: Path, per_class: int = 4, val: bool = False,
                      split_csv: bool = False) -> dict:
    """Class folders ``root/{train,test[,val]}/<class>/<n>.jpg`` (3 birds), or, with
    ``split_csv``, the same images under ``root/images/`` listed in ``root/splits.csv``."""
    splits = ["train", "test", *(["val"] if val else [])]
    rows, seed = ["path,label,split"], 100
    out: dict = {"class_names": sorted(IMAGE_FOLDER_CLASSES)}
    for split in splits:
        out[f"{split}_labels"] = []
        for c in IMAGE_FOLDER_CLASSES:
            for _ in range(per_class):
                seed += 1
                rel = f"images/{c}_{seed}.jpg" if split_csv else f"{split}/{c}/{seed}.jpg"
                write_jpeg(root / rel, seed)
                rows.append(f"{rel},{c},{split}")
                out[f"{split}_labels"].append(out["class_names"].index(c))
    if split_csv:
        (root / "splits.csv").write_text("\n".join(rows) + "\n")
    return out
