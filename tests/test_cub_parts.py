"""CUB part keypoints and class attributes as ground truth, on the miniature real-format layout."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import CUB200DataModule
from datamodules.cub_parts import (
    GROUP_PARTS,
    merged_parts,
    part_attribute_ids,
    read_part_locs,
)
from tests.dataset_layouts import CUB_DIFFER, CUB_PARTS, cub_keypoints, make_cub

ARGS = {"image_size": 32, "batch_size": 3, "num_workers": 0, "augment": "none",
        "val_fraction": 0.25}
MERGED = ["back", "beak", "belly", "breast", "crown", "forehead", "eye", "leg", "wing", "nape",
          "tail", "throat"]
RADIUS = 0.2
WIDTH, HEIGHT, BOX = 32, 16, (8.0, 4.0, 16.0, 8.0)  # the miniature's image size and bird box


def _reference_masks(image_id: int, size: int, radius: float) -> torch.Tensor:
    """Plain per-pixel masks [12, s, s]: the nearest visible keypoint within the radius."""
    kps = cub_keypoints(image_id)
    r = radius * math.sqrt(BOX[2] * BOX[3])
    out = torch.zeros(len(MERGED), size, size, dtype=torch.bool)
    for row in range(size):
        for col in range(size):
            x, y = (col + 0.5) * WIDTH / size, (row + 0.5) * HEIGHT / size
            best, best_d = None, math.inf
            for k, (kx, ky, vis) in enumerate(kps):
                d = math.hypot(x - kx, y - ky)
                if vis and d < best_d:
                    best, best_d = k, d
            if best is not None and best_d <= r:
                name = CUB_PARTS[best].removeprefix("left ").removeprefix("right ")
                out[MERGED.index(name), row, col] = True
    return out


def _dm(root: Path, gt: object = "parts", **kw: object) -> CUB200DataModule:
    return CUB200DataModule(root=root, with_ground_truth=gt, part_radius=RADIUS, **{**ARGS, **kw})


def test_merged_parts_and_names(tmp_path: Path) -> None:
    names, merge = merged_parts(CUB_PARTS)
    assert names == MERGED
    assert merge[CUB_PARTS.index("left eye")] == merge[CUB_PARTS.index("right eye")] == 6
    assert merge[CUB_PARTS.index("right wing")] == names.index("wing")
    make_cub(tmp_path)
    assert _dm(tmp_path).part_names == MERGED


def test_masks_match_a_per_pixel_reference(tmp_path: Path) -> None:
    exp = make_cub(tmp_path)
    dm = _dm(tmp_path)
    dm.setup()
    batches = list(dm.test_dataloader())
    x, labels, masks = (torch.cat(t) for t in zip(*batches, strict=True))
    assert x.shape == (6, 3, 32, 32) and masks.shape == (6, 12, 32, 32)
    assert masks.dtype == torch.bool and labels.tolist() == exp["test_labels"]
    for i, image_id in enumerate(exp["test_ids"]):
        assert torch.equal(masks[i], _reference_masks(image_id, 32, RADIUS)), image_id


def test_invisible_parts_are_empty_and_left_right_merge(tmp_path: Path) -> None:
    exp = make_cub(tmp_path)
    dm = _dm(tmp_path)
    dm.setup()
    masks = {image_id: dm.test_set[i][2] for i, image_id in enumerate(exp["test_ids"])}
    eye, back = MERGED.index("eye"), MERGED.index("back")
    both, right_only, left_only = 4, 6, 2  # image_id % 3 == 1, 0, 2 (see cub_keypoints)
    assert not masks[right_only][back].any()  # keypoint 0 is invisible when image_id % 3 == 0
    assert masks[both][back].any()
    # at 32 px columns follow x, rows follow y x 2; left eye at (10, 8), right eye at (4, 13)
    left_px, right_px = (16, 10), (26, 4)
    assert masks[both][eye][left_px] and masks[both][eye][right_px]
    assert masks[left_only][eye][left_px] and not masks[left_only][eye][right_px]
    assert masks[right_only][eye][right_px] and not masks[right_only][eye][left_px]
    # a disc of radius 0.2 * sqrt(16 * 8) = 2.26 px: an ellipse 2.26 wide, 4.53 tall at 32 px
    assert not masks[both][eye][16, 13]  # x = 13.5: 3.5 px right of the left eye
    assert masks[both][eye][19, 10]  # y = 9.75: 3 rows down at 32 px, 1.75 px originally
    assert not masks[both][eye][21, 10]  # y = 10.75: 2.75 px below it
    # the parts are disjoint: no pixel is in two parts
    assert max(int(m.sum(0).max()) for m in masks.values()) == 1


def test_masks_scale_with_the_image(tmp_path: Path) -> None:
    """The same keypoints at 64 px: the masks are the reference at 64 px (resized with it)."""
    exp = make_cub(tmp_path)
    dm = _dm(tmp_path, image_size=64)
    dm.setup()
    got = dm.test_set[0][2]
    assert got.shape == (12, 64, 64)
    assert torch.equal(got, _reference_masks(exp["test_ids"][0], 64, RADIUS))


def test_differ_relation_from_the_attribute_table(tmp_path: Path) -> None:
    make_cub(tmp_path)
    ids = _dm(tmp_path).part_attributes
    assert ids.shape == (3, 12) and ids.dtype == torch.long
    for (t, s), parts in CUB_DIFFER.items():
        differ = {MERGED[p] for p in range(12) if ids[t, p] != ids[s, p]}
        assert differ == parts, (t, s)


def test_part_ids_encode_tuples_of_group_values() -> None:
    """Two groups on one part: ids equal iff both dominant values agree; ties go to value 0."""
    groups = ["wing_color"] * 2 + ["wing_shape"] * 2 + ["size"] * 2
    table = np.array([[60, 40, 50, 50, 90, 10],   # wing (0, 0 by the tie), size 0
                      [60, 40, 10, 90, 10, 90],   # wing (0, 1), size 1
                      [20, 80, 50, 50, 90, 10],   # wing (1, 0)
                      [70, 30, 80, 20, 10, 90]])  # wing (0, 0), size 1: same wing as class 0
    ids = part_attribute_ids(table, groups, ["wing", "beak"])
    assert ids[:, 0].tolist()[0] == ids[3, 0]
    assert len(set(ids[:3, 0].tolist())) == 3
    assert ids[:, 1].tolist() == [0, 0, 0, 0]  # no group describes the beak here: never differs


def test_every_cub_group_is_mapped() -> None:
    assert len(GROUP_PARTS) == 28
    assert {p for parts in GROUP_PARTS.values() for p in parts} <= set(MERGED)
    assert GROUP_PARTS["size"] == GROUP_PARTS["shape"] == GROUP_PARTS["primary_color"] == ()


def test_attributes_txt_beside_or_inside(tmp_path: Path) -> None:
    make_cub(tmp_path / "a")
    make_cub(tmp_path / "b", attributes_inside=True)
    assert (tmp_path / "a" / "attributes.txt").is_file()
    assert (tmp_path / "b" / "CUB_200_2011" / "attributes.txt").is_file()
    a, b = _dm(tmp_path / "a"), _dm(tmp_path / "b" / "CUB_200_2011")  # parent or folder as root
    assert torch.equal(a.part_attributes, b.part_attributes)


@pytest.mark.parametrize("missing", ["parts/part_locs.txt", "../attributes.txt",
                                     "attributes/class_attribute_labels_continuous.txt"])
def test_parts_without_the_files_is_a_clear_error(tmp_path: Path, missing: str) -> None:
    make_cub(tmp_path)
    (tmp_path / "CUB_200_2011" / missing).unlink()
    with pytest.raises(FileNotFoundError) as err:
        _dm(tmp_path).setup()
    msg = str(err.value)
    assert Path(missing).name in msg and "with_ground_truth='box'" in msg
    assert "CUB_200_2011.tgz" in msg


def test_true_falls_back_to_the_box_with_one_warning(tmp_path: Path) -> None:
    make_cub(tmp_path, parts=False)
    dm = _dm(tmp_path, gt=True)
    with pytest.warns(UserWarning, match=r"lacks parts/parts\.txt.*attributes\.txt") as rec:
        dm.setup()
        assert dm.part_names == ["bird"]
        assert torch.equal(dm.part_attributes, torch.arange(3)[:, None])
    assert len([w for w in rec if "lacks" in str(w.message)]) == 1
    assert dm.test_set[0][2].shape == (1, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        box = _dm(tmp_path, gt="box")  # asked for the box: nothing to warn about
        box.setup()
        assert box.part_names == ["bird"]


def test_true_uses_parts_when_present(tmp_path: Path) -> None:
    make_cub(tmp_path)
    dm = _dm(tmp_path, gt=True)
    assert dm.ground_truth == "parts" and len(dm.part_names) == 12


def test_bad_arguments_and_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="with_ground_truth='keypoints'"):
        _dm(tmp_path, gt="keypoints")
    with pytest.raises(ValueError, match="part_radius=0"):
        CUB200DataModule(root=tmp_path, part_radius=0, **ARGS)
    make_cub(tmp_path)
    locs = tmp_path / "CUB_200_2011" / "parts" / "part_locs.txt"
    text = locs.read_text().splitlines()
    locs.write_text("\n".join(text[:-1]) + "\n")  # the last image loses its throat
    dm = _dm(tmp_path)
    with pytest.raises(ValueError, match=r"Image id 12 .*part_locs\.txt"):
        dm.setup()
    locs.write_text("\n".join([*text[:-1], "12 16 1.0 1.0 1"]) + "\n")
    with pytest.raises(ValueError, match=r"part_locs\.txt line 180: .*part id 16"):
        read_part_locs(locs, 15)


def test_fit_batches_carry_no_masks(tmp_path: Path) -> None:
    make_cub(tmp_path)
    dm = _dm(tmp_path)
    dm.setup()
    assert len(next(iter(dm.train_dataloader()))) == 2
    assert len(next(iter(dm.val_dataloader()))) == 3


def test_evaluate_on_cub_with_parts_writes_tables_and_figures(tmp_path: Path) -> None:
    """The issue's command on the miniature layout: parts picked up, every output written."""
    import json

    import lightning.pytorch as pl

    from cli.evaluate import main
    from lightning_modules import FineTuneClassifier

    make_cub(tmp_path / "data")
    dm = CUB200DataModule(root=tmp_path / "data", **ARGS)
    pl.seed_everything(0)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False,
                         limit_val_batches=0)
    trainer.fit(FineTuneClassifier(backbone="tiny_vgg", num_classes=3), datamodule=dm)
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "eval"
    root = Path(__file__).resolve().parent.parent
    results = main([
        "--config", str(root / "configs" / "experiments" / "cub200_vgg16_bn.yaml"),
        "--data.root", str(tmp_path / "data"), "--ckpt_path", str(ckpt),
        "--model.backbone", "tiny_vgg", "--model.pretrained", "null",
        "--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0",
        "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.logger", "false",
        "--evaluation.methods", "[gradcam]", "--evaluation.threshold", "null",
        "--evaluation.gradient_sign", "false", "--evaluation.baselines", "[zeros]",
        "--evaluation.num_figures", "2", "--evaluation.output_dir", str(out),
    ])
    assert results["eval/num_samples"] == 6 and results["eval/count/gradcam/t1"] == 6
    for q in ("differ_share", "shared_share", "pointing_differ", "pointing_shared"):
        for c in ("original", "weighted"):
            assert 0.0 <= results[f"eval/{q}/gradcam/t1/{c}"] <= 1.0
    assert json.loads((out / "results.json").read_text()) == results
    report = (out / "report.md").read_text()
    assert "## Part localisation" in report and "## Pointing game" in report
    assert "6 of 6 test images are counted (no p_t2 threshold)" in report
    assert "beak" in report  # the ground-truth parts are named in the settings
    assert sorted(p.name for p in (out / "figures").iterdir()) == [
        "exemplars_gradcam.png", "heatmaps_gradcam.png"]


@pytest.mark.parametrize(("given", "expected"), [([], True), (["box"], "box"),
                                                 (["parts"], "parts")])
def test_evaluate_keeps_an_explicit_ground_truth_choice(tmp_path: Path, given: list[str],
                                                        expected: object) -> None:
    from cli.evaluate import EvaluationCLI

    make_cub(tmp_path)
    root = Path(__file__).resolve().parent.parent
    extra = ["--data.init_args.with_ground_truth", *given] if given else []
    cli = EvaluationCLI(args=[
        "--config", str(root / "configs" / "experiments" / "cub200_vgg16_bn.yaml"),
        "--data.root", str(tmp_path), "--model.backbone", "tiny_vgg",
        "--model.pretrained", "null", "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path / "run"), *extra])
    assert cli.datamodule.with_ground_truth == expected
    assert cli.datamodule.part_names == (["bird"] if expected == "box" else MERGED)
