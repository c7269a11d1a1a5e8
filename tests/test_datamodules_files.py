"""The five file-backed datamodules on miniature copies of their real on-disk layouts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from datamodules import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CUB200DataModule,
    FGVCAircraftDataModule,
    Flowers102DataModule,
    Food101DataModule,
    StanfordCarsDataModule,
)
from tests.dataset_layouts import (
    make_cub,
    make_fgvc_aircraft,
    make_flowers102,
    make_food101,
    make_stanford_cars,
)

ARGS = {"image_size": 32, "batch_size": 4, "num_workers": 0, "augment": "none",
        "val_fraction": 0.25}


def _all_labels(ds: torch.utils.data.Dataset) -> list[int]:
    return [int(ds[i][1]) for i in range(len(ds))]


def test_cub_official_split_names_and_boxes(tmp_path: Path) -> None:
    exp = make_cub(tmp_path, num_classes=3, per_class=4)
    dm = CUB200DataModule(root=tmp_path, with_ground_truth="box", **ARGS)
    assert dm.num_classes == 3 and dm.class_names == exp["class_names"]  # before setup
    assert dm.part_names == ["bird"]
    assert torch.equal(dm.part_attributes, torch.arange(3)[:, None])
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == len(exp["train_labels"]) == 6
    assert len(dm.val_set) == round(6 * 0.25)
    assert _all_labels(dm.test_set) == exp["test_labels"]
    assert sorted(_all_labels(dm.train_set) + _all_labels(dm.val_set)) == \
        sorted(exp["train_labels"])
    x, _, masks = next(iter(dm.test_dataloader()))
    assert x.shape == (4, 3, 32, 32) and masks.shape == (4, 1, 32, 32) and masks.dtype == torch.bool
    # Box x 8..24 of 32, y 4..12 of 16 -> at 32 px: columns 8..24, rows 8..24 (pixel centres).
    ref = torch.zeros(32, 32, dtype=torch.bool)
    ref[8:24, 8:24] = True
    assert torch.equal(masks[0, 0], ref)
    # Normalisation is the exposed ImageNet one: undoing it lands in [0, 1].
    pix = x * torch.tensor(dm.std)[:, None, None] + torch.tensor(dm.mean)[:, None, None]
    assert dm.mean == IMAGENET_MEAN and dm.std == IMAGENET_STD
    assert pix.min() >= -1e-5 and pix.max() <= 1 + 1e-5


def test_val_carving_is_seeded(tmp_path: Path) -> None:
    make_food101(tmp_path, per_class=8)  # 24 train images -> 6 val
    files = []
    for seed in (0, 0, 1):
        dm = Food101DataModule(root=tmp_path, seed=seed, **ARGS)
        dm.setup()
        files.append(sorted(map(str, dm.val_set.files)))
        assert len(dm.val_set) == 6 and len(dm.train_set) == 18
        assert not set(files[-1]) & set(map(str, dm.train_set.files))
    assert files[0] == files[1] and files[0] != files[2]


def test_fgvc_levels_and_official_val(tmp_path: Path) -> None:
    exp = make_fgvc_aircraft(tmp_path, per_split=4)
    dm = FGVCAircraftDataModule(root=tmp_path, **ARGS)
    assert dm.class_names == exp["variants"]
    dm.setup()
    assert _all_labels(dm.train_set) == exp["train_labels"]
    assert _all_labels(dm.val_set) == exp["val_labels"]
    assert _all_labels(dm.test_set) == exp["test_labels"]
    fam = FGVCAircraftDataModule(root=tmp_path, annotation_level="family", **ARGS)
    assert fam.class_names == exp["families"] and fam.num_classes == 2
    fam.setup()
    assert _all_labels(fam.test_set) == [min(v, 1) for v in exp["test_labels"]]
    with pytest.raises(ValueError, match="annotation_level"):
        FGVCAircraftDataModule(root=tmp_path, annotation_level="model", **ARGS)


def test_food101_labels_follow_classes_txt(tmp_path: Path) -> None:
    exp = make_food101(tmp_path, per_class=4)
    dm = Food101DataModule(root=tmp_path, **ARGS)
    assert dm.class_names == ["waffles", "apple_pie", "ramen"]
    dm.setup()
    assert _all_labels(dm.test_set) == exp["test_labels"]
    for f, y in zip(dm.test_set.files, dm.test_set.labels, strict=True):
        assert f.parent.name == dm.class_names[int(y)]


def test_flowers102_official_splits(tmp_path: Path) -> None:
    exp = make_flowers102(tmp_path, n_images=12)
    dm = Flowers102DataModule(root=tmp_path, **ARGS)
    assert dm.num_classes == 102 and dm.class_names[0] == "flower_001"
    dm.setup()
    assert _all_labels(dm.train_set) == exp["train_labels"]
    assert _all_labels(dm.val_set) == exp["val_labels"]
    assert _all_labels(dm.test_set) == exp["test_labels"]


def test_stanford_cars(tmp_path: Path) -> None:
    exp = make_stanford_cars(tmp_path, per_split=6)
    dm = StanfordCarsDataModule(root=tmp_path, **ARGS)
    assert dm.class_names == exp["class_names"]
    dm.setup()
    assert _all_labels(dm.test_set) == exp["test_labels"]
    assert len(dm.train_set) + len(dm.val_set) == 6


@pytest.mark.parametrize(
    ("cls", "folder", "expected", "source"),
    [
        (CUB200DataModule, "CUB_200_2011", "image_class_labels.txt", "vision.caltech.edu"),
        (FGVCAircraftDataModule, "fgvc-aircraft-2013b", "variants.txt", "robots.ox.ac.uk"),
        (Food101DataModule, "food-101", "meta/train.json", "data.vision.ee.ethz.ch"),
        (Flowers102DataModule, "flowers-102", "setid.mat", "robots.ox.ac.uk"),
        (StanfordCarsDataModule, "stanford_cars", "cars_meta.mat", "kaggle"),
    ],
)
def test_missing_folder_error(tmp_path: Path, cls: type, folder: str, expected: str,
                              source: str) -> None:
    dm = cls(root=tmp_path, **ARGS)
    with pytest.raises(FileNotFoundError) as err:
        dm.setup()
    msg = str(err.value)
    assert folder in msg and expected in msg and source in msg.lower()
    assert list(tmp_path.iterdir()) == []  # nothing created in the user's folder


def test_incomplete_cub_names_missing_file(tmp_path: Path) -> None:
    make_cub(tmp_path)
    (tmp_path / "CUB_200_2011" / "bounding_boxes.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Missing: bounding_boxes\.txt"):
        CUB200DataModule(root=tmp_path, **ARGS).setup()


def test_corrupt_image_error_and_skip(tmp_path: Path) -> None:
    make_cub(tmp_path, num_classes=2, per_class=4)
    files = sorted((tmp_path / "CUB_200_2011" / "images").rglob("*.jpg"))
    bad_train, bad = files[0], files[1]  # k = 0 is a train image, k = 1 a test image
    bad.write_bytes(b"not a jpeg")
    bad_train.write_bytes(b"")
    dm = CUB200DataModule(root=tmp_path, **ARGS)
    dm.setup()
    with pytest.raises(RuntimeError, match=re.escape(bad.name)):
        _all_labels(dm.test_set)
    dm = CUB200DataModule(root=tmp_path, skip_corrupt=True, **ARGS)
    with pytest.warns(UserWarning, match="dropped 2 unreadable") as record:
        dm.setup()
    assert len([w for w in record if "unreadable" in str(w.message)]) == 1
    assert len(dm.test_set) == 3 and bad not in dm.test_set.files
    assert len(dm.train_set) + len(dm.val_set) == 3
    assert bad.read_bytes() == b"not a jpeg"  # the user's files are left alone


def test_out_of_range_label_names_line(tmp_path: Path) -> None:
    make_cub(tmp_path, num_classes=2, per_class=2)
    path = tmp_path / "CUB_200_2011" / "image_class_labels.txt"
    lines = path.read_text().splitlines()
    lines[2] = "3 7"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"image_class_labels.txt line 3"):
        CUB200DataModule(root=tmp_path, **ARGS).setup()


def test_out_of_range_cars_class(tmp_path: Path) -> None:
    make_stanford_cars(tmp_path, per_split=3, bad_class=9)
    with pytest.raises(ValueError, match=r"cars_train_annos.mat, annotation 3"):
        StanfordCarsDataModule(root=tmp_path, **ARGS).setup()


def test_ground_truth_refused_without_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no ground-truth"):
        Food101DataModule(root=tmp_path, with_ground_truth=True, **ARGS)


def test_paper_augment_output_shape(tmp_path: Path) -> None:
    make_cub(tmp_path, num_classes=2, per_class=2)
    dm = CUB200DataModule(root=tmp_path, **{**ARGS, "augment": "paper", "val_fraction": 0.0})
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 32, 32) and y.dtype == torch.long


def test_hparams_hold_no_path_objects(tmp_path: Path) -> None:
    """A Path root is stored as str: checkpoints carry these hparams and must load weights-only."""
    import io

    make_food101(tmp_path)
    dm = Food101DataModule(root=tmp_path, image_size=32)
    assert dm.hparams["root"] == str(tmp_path) and dm.root == tmp_path
    buf = io.BytesIO()
    torch.save({"datamodule_hyper_parameters": dict(dm.hparams)}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert loaded["datamodule_hyper_parameters"]["image_size"] == 32
