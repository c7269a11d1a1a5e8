"""ImageFolderDataModule: class folders and split CSVs, the errors, and fit + evaluate."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from datamodules import ImageFolderDataModule
from errors import ConfigError, MissingFileError
from tests.conftest import TINY_EVALUATION, cli_env
from tests.dataset_layouts import make_image_folder, write_jpeg

SMALL = {"image_size": 16, "batch_size": 4, "num_workers": 0, "augment": "none"}


def _labels(ds: torch.utils.data.Dataset) -> list[int]:
    return ds.labels.tolist()  # type: ignore[attr-defined]


def test_class_folders(tmp_path: Path) -> None:
    expected = make_image_folder(tmp_path)
    dm = ImageFolderDataModule(tmp_path, val_fraction=0.25, **SMALL)
    dm.setup()
    assert dm.class_names == ["finch", "sparrow", "wren"] and dm.num_classes == 3
    files = dm.test_set.files  # type: ignore[attr-defined]
    assert _labels(dm.test_set) == [dm.class_names.index(f.parent.name) for f in files]
    assert sorted(_labels(dm.test_set)) == sorted(expected["test_labels"])
    assert len(dm.train_set) + len(dm.val_set) == 12 and len(dm.val_set) == 3
    x, y = dm.test_set[0]
    assert x.shape == (3, 16, 16) and y == 0


def test_val_folder_is_the_val_split(tmp_path: Path) -> None:
    expected = make_image_folder(tmp_path, val=True)
    dm = ImageFolderDataModule(tmp_path, **SMALL)
    dm.setup()
    assert sorted(_labels(dm.val_set)) == sorted(expected["val_labels"])
    assert len(dm.val_set) == 12 and len(dm.train_set) == 12


def test_split_csv(tmp_path: Path) -> None:
    expected = make_image_folder(tmp_path, val=True, split_csv=True)
    dm = ImageFolderDataModule(tmp_path, split_file="splits.csv", **SMALL)
    dm.setup()
    assert dm.class_names == ["finch", "sparrow", "wren"]
    assert _labels(dm.test_set) == expected["test_labels"]
    assert _labels(dm.val_set) == expected["val_labels"]
    assert all(f.parent == tmp_path / "images" for f in dm.test_set.files)  # type: ignore


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"no test/ folder.*path,label,split"):
        write_jpeg(tmp_path / "a" / "train" / "x" / "1.jpg", 1)
        ImageFolderDataModule(tmp_path / "a", **SMALL).setup()
    make_image_folder(tmp_path / "b")
    write_jpeg(tmp_path / "b" / "test" / "owl" / "9.jpg", 9)
    with pytest.raises(ConfigError, match=r"test has classes that train lacks: \['owl'\]"):
        ImageFolderDataModule(tmp_path / "b", **SMALL).setup()
    (tmp_path / "b" / "train" / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"class folder .*empty holds no images"):
        ImageFolderDataModule(tmp_path / "b", **SMALL).setup()
    make_image_folder(tmp_path / "c", split_csv=True)
    csv_file = tmp_path / "c" / "splits.csv"
    csv_file.write_text(csv_file.read_text() + "images/gone.jpg,wren,test\n")
    with pytest.raises(MissingFileError, match=r"1 file\(s\) missing .*gone.jpg \(line 26\)"):
        ImageFolderDataModule(tmp_path / "c", split_file=str(csv_file), **SMALL).setup()
    csv_file.write_text("path,label,split\nimages/x.jpg,wren,holdout\n")
    with pytest.raises(ConfigError, match=r"line 2: split 'holdout'"):
        ImageFolderDataModule(tmp_path / "c", split_file=str(csv_file), **SMALL).setup()


@pytest.mark.slow
@pytest.mark.parametrize("split_csv", [False, True], ids=["folders", "split_csv"])
def test_fit_and_evaluate_through_the_clis(split_csv: bool, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.evaluate import main as evaluate
    from cli.train import main as train

    make_image_folder(tmp_path / "birds", split_csv=split_csv)
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    common = ["--data", "configs/data/image_folder.yaml", "--data.root", str(tmp_path / "birds"),
              "--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0",
              "--model.backbone", "tiny_vgg", "--trainer.accelerator", "cpu",
              "--trainer.default_root_dir", str(tmp_path / "E"),
              *(["--data.split_file", "splits.csv"] if split_csv else [])]
    common = [str(Path(__file__).resolve().parent.parent / a) if a.startswith("configs/") else a
              for a in common]
    common[0] = "--config"
    with contextlib.redirect_stdout(io.StringIO()):
        train(["fit", *common, "--trainer.max_epochs", "1", "--trainer.enable_progress_bar",
               "false"])
        results = evaluate([*common, "--ckpt_path", str(tmp_path / "E" / "checkpoints" /
                                                          "last.ckpt"), *TINY_EVALUATION])
    assert results["eval/count/gradcam"] == 12
    assert (tmp_path / "E" / "evaluate" / "version_0" / "results.json").is_file()
