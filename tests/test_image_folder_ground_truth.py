"""ImageFolderDataModule's ground truth from CSVs: boxes and part keypoints as part masks."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch

from datamodules import ImageFolderDataModule
from errors import ConfigError, MissingFileError
from tests.conftest import TINY_EVALUATION, cli_env
from tests.dataset_layouts import make_image_folder

# the miniature's images are 24 x 16 pixels (width x height); 16 px after Resize((16, 16))
SMALL = {"image_size": 16, "batch_size": 12, "num_workers": 0, "augment": "none"}


def _test_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "test").rglob("*.jpg"))


def _box_tree(root: Path) -> list[str]:
    make_image_folder(root)
    files = _test_files(root)
    # two boxes on the first test image (their union is its mask), one on the second
    (root / "boxes.csv").write_text(
        "path,x0,y0,x1,y1\n"
        f"{files[0]},0,0,12,8\n{files[0]},18,12,24,16\n{files[1]},6,4,24,16\n")
    return files


def test_boxes_are_masks_where_the_csv_says(tmp_path: Path) -> None:
    files = _box_tree(tmp_path)
    dm = ImageFolderDataModule(tmp_path, with_ground_truth=True, ground_truth="boxes.csv",
                               **SMALL)
    dm.setup()
    assert dm.part_names == ["object"]
    assert dm.part_attributes.tolist() == [[0], [1], [2]]  # every class pair differs
    masks = next(iter(dm.test_dataloader()))[2]
    order = [str(f.relative_to(tmp_path)) for f in dm.test_set.files]  # type: ignore
    assert masks.shape == (12, 1, 16, 16) and masks.dtype == torch.bool
    # pixel centres (i + 0.5) * 24/16 in x and (i + 0.5) in y: x in [0, 12] -> columns 0..7,
    # x in [18, 24] -> columns 12..15, x in [6, 24] -> columns 4..15
    first = torch.zeros(16, 16, dtype=torch.bool)
    first[:8, :8] = True
    first[12:, 12:] = True
    assert torch.equal(masks[order.index(files[0]), 0], first)
    second = torch.zeros(16, 16, dtype=torch.bool)
    second[4:, 4:] = True
    assert torch.equal(masks[order.index(files[1]), 0], second)
    assert int(masks.sum()) == int(first.sum() + second.sum())  # images without rows: empty
    # fitting batches carry no masks, nor do evaluation batches without with_ground_truth
    assert len(next(iter(dm.train_dataloader()))) == 2
    plain = ImageFolderDataModule(tmp_path, ground_truth="boxes.csv", **SMALL)
    plain.setup()
    assert len(plain.test_set[0]) == 2


def test_keypoints_and_part_attributes(tmp_path: Path) -> None:
    make_image_folder(tmp_path)
    files = _test_files(tmp_path)
    (tmp_path / "parts.csv").write_text(
        "path,part,x,y,visible\n"
        f"{files[0]},head,6,4,1\n{files[0]},tail,18,12,1\n{files[1]},tail,0,0,0\n")
    (tmp_path / "attrs.csv").write_text(
        "class,part,value\n" + "".join(
            f"{c},head,{'red' if c == 'wren' else 'grey'}\n{c},tail,long\n"
            for c in ("finch", "sparrow", "wren")))
    dm = ImageFolderDataModule(tmp_path, with_ground_truth=True, ground_truth="parts.csv",
                               part_attributes="attrs.csv", **SMALL)
    dm.setup()
    assert dm.part_names == ["head", "tail"]
    # head differs between wren and the others; the tail is shared by all
    assert dm.part_attributes.tolist() == [[0, 0], [0, 0], [1, 0]]
    order = [str(f.relative_to(tmp_path)) for f in dm.test_set.files]  # type: ignore
    masks = dm.test_set[order.index(files[0])][2]
    assert masks.shape == (2, 16, 16)
    # radius 0.125 * sqrt(24 * 16) = 2.45 original pixels around (6, 4) and (18, 12): the
    # resized pixels whose centres lie within it
    for part, (kx, ky) in enumerate([(6, 4), (18, 12)]):
        xs = (torch.arange(16) + 0.5) * 1.5
        ys = torch.arange(16) + 0.5
        disc = (xs[None] - kx) ** 2 + (ys[:, None] - ky) ** 2 <= 0.125 ** 2 * 24 * 16
        assert torch.equal(masks[part], disc) and int(disc.sum()) > 3
    assert not dm.test_set[order.index(files[1])][2].any()  # invisible tail, no head row
    # without an attribute file every part differs
    every = ImageFolderDataModule(tmp_path, ground_truth="parts.csv", **SMALL)
    assert every.part_attributes.tolist() == [[0, 0], [1, 1], [2, 2]]


@pytest.mark.parametrize(("content", "error", "match"), [
    (None, MissingFileError, r"--data.ground_truth gone.csv not found.*path,x0,y0,x1,y1"),
    ("file,a,b\n", ConfigError, r"gt.csv line 1: the header must be 'path,x0,y0,x1,y1' or "
                                r"'path,part,x,y,visible', got file,a,b; fix the header"),
    ("path,x0,y0,x1,y1\n{f},0,0,4,4\nnope.jpg,0,0,4,4\n", ConfigError,
     r"gt.csv line 3: image 'nope.jpg' is not an image of the data .*relative to root"),
    ("path,x0,y0,x1,y1\n{f},0,0,25,4\n", ConfigError,
     r"gt.csv line 2: box \(0.0, 0.0, 25.0, 4.0\) is not inside the 24 x 16 image"),
    ("path,part,x,y,visible\n{f},head,3,17,1\n", ConfigError,
     r"gt.csv line 2: keypoint \(3.0, 17.0\) lies outside the 24 x 16 image"),
    ("path,x0,y0,x1,y1\n{f},0,zero,4,4\n", ConfigError, r"gt.csv line 2: y0='zero' is not a"),
], ids=["missing", "header", "unknown_image", "box_outside", "keypoint_outside", "not_a_number"])
def test_a_bad_csv_is_one_line(tmp_path: Path, content: str | None, error: type,
                               match: str) -> None:
    make_image_folder(tmp_path)
    name = "gone.csv" if content is None else "gt.csv"
    if content is not None:
        (tmp_path / name).write_text(content.format(f=_test_files(tmp_path)[0]))
    dm = ImageFolderDataModule(tmp_path, with_ground_truth=True, ground_truth=name, **SMALL)
    with pytest.raises(error, match=match) as info:
        dm.setup()
    assert "\n" not in str(info.value)
    assert dm.test_set is None  # nothing built before the error


def test_part_attributes_need_keypoints(tmp_path: Path) -> None:
    _box_tree(tmp_path)
    with pytest.raises(ConfigError, match=r"part_attributes a.csv needs --data.ground_truth"):
        ImageFolderDataModule(tmp_path, part_attributes="a.csv", **SMALL)
    (tmp_path / "a.csv").write_text("class,part,value\nfinch,object,x\n")
    dm = ImageFolderDataModule(tmp_path, with_ground_truth=True, ground_truth="boxes.csv",
                               part_attributes="a.csv", **SMALL)
    with pytest.raises(ConfigError, match=r"needs part keypoints .* which holds boxes"):
        dm.setup()


@pytest.mark.slow
def test_evaluate_writes_localisation_from_a_box_csv(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.evaluate import main as evaluate
    from cli.train import main as train

    root = tmp_path / "birds"
    make_image_folder(root)
    # a box on every test image, so each sample has a region
    (root / "boxes.csv").write_text("path,x0,y0,x1,y1\n" + "".join(
        f"{f},2,2,20,14\n" for f in _test_files(root)))
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    config = str(Path(__file__).resolve().parent.parent / "configs" / "data" / "image_folder.yaml")
    common = ["--config", config, "--data.root", str(root), "--data.image_size", "32",
              "--data.batch_size", "4", "--data.num_workers", "0", "--model.backbone",
              "tiny_vgg", "--trainer.accelerator", "cpu", "--trainer.default_root_dir",
              str(tmp_path / "E")]
    with contextlib.redirect_stdout(io.StringIO()):
        train(["fit", *common, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar",
               "false"])
        results = evaluate([*common, "--data.ground_truth", "boxes.csv", "--ckpt_path",
                            str(tmp_path / "E" / "checkpoints" / "last.ckpt"), *TINY_EVALUATION])
    shares: list[float] = []
    for t in ("t1", "t2"):
        for contrast in ("original", "weighted"):
            differ = results[f"eval/differ_share/gradcam/{t}/{contrast}"]
            # one part that differs between every class pair: no shared region
            assert results[f"eval/shared_share/gradcam/{t}/{contrast}"] == 0.0
            assert 0.0 <= differ <= 1.0
            shares.append(differ)
            assert 0.0 <= results[f"eval/pointing_differ/gradcam/{t}/{contrast}"] <= 1.0
    # the box covers 75 % of the image: positive evidence lands in it (an untrained tiny net's
    # map may have no positive mass on every sample, which leaves that mean at 0)
    assert max(shares) > 0.0
    written = json.loads((tmp_path / "E" / "evaluate" / "version_0" / "results.json").read_text())
    assert "eval/differ_share/gradcam/t1/weighted" in json.dumps(written)


def test_split_csv_layout_and_an_unreadable_image(tmp_path: Path) -> None:
    make_image_folder(tmp_path, split_csv=True)
    rows = [r.split(",") for r in (tmp_path / "splits.csv").read_text().split()[1:]]
    test = [r[0] for r in rows if r[2] == "test"]
    (tmp_path / test[1]).write_bytes(b"not a jpeg")
    (tmp_path / "boxes.csv").write_text(
        f"path,x0,y0,x1,y1\n./{test[0]},0,0,24,16\n{test[1]},0,0,99,99\n")
    dm = ImageFolderDataModule(tmp_path, split_file="splits.csv", with_ground_truth=True,
                               ground_truth="boxes.csv", skip_corrupt=True, **SMALL)
    with pytest.warns(UserWarning, match="dropped 1 unreadable"):
        dm.setup()
    files = [str(f.relative_to(tmp_path)) for f in dm.test_set.files]  # type: ignore
    assert test[1] not in files and len(files) == 11
    masks = torch.stack([dm.test_set[i][2] for i in range(len(files))])
    assert masks[files.index(test[0])].all() and int(masks.sum()) == 16 * 16
