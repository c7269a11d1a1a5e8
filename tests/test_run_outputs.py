"""The pieces behind the run-output layout, the data roots, the eval sampler and the error display.

End-to-end checks of the same live in test_evaluate.py, test_train_cli.py, test_cli_errors.py.
"""

from __future__ import annotations

import json

import pytest
import torch
from jsonargparse import Namespace
from lightning.pytorch.utilities.data import sized_len
from torch.utils.data import DataLoader, TensorDataset

from cli import console
from cli.loggers import CSV_LOGGER, configure_loggers, wandb_identity
from cli.run_dir import RunDir, agree, new_run_dir, next_version, remove_if_unused
from datamodules import (
    CUB200DataModule,
    FGVCAircraftDataModule,
    Flowers102DataModule,
    Food101DataModule,
    StanfordCarsDataModule,
)
from datamodules.sampler import UnpaddedDistributedSampler
from errors import MissingFileError
from tests.dataset_layouts import (
    make_cub,
    make_fgvc_aircraft,
    make_flowers102,
    make_food101,
    make_stanford_cars,
)

WANDB = "cli.loggers.OfflineWandbLogger"


# ------------------------------------------------------------------------------- run folders
def test_next_version_counts_version_folders_only(tmp_path) -> None:
    assert next_version(tmp_path, "fit") == 0
    for name in ("version_0", "version_3", "version_x", "versions_7"):
        (tmp_path / "fit" / name).mkdir(parents=True)
    (tmp_path / "fit" / "version_9").write_text("a file, not a run")
    (tmp_path / "evaluate" / "version_5").mkdir(parents=True)
    assert next_version(tmp_path, "fit") == 4
    run = new_run_dir(tmp_path / "outputs" / "cub200_alexnet", "evaluate")
    assert run.path == tmp_path / "outputs" / "cub200_alexnet" / "evaluate" / "version_0"
    assert run.wandb_name == "cub200_alexnet/evaluate/version_0"
    assert not run.path.exists()  # choosing a number creates nothing
    with pytest.raises(ValueError, match="stage 'train'"):
        new_run_dir(tmp_path, "train")


def test_agree_takes_rank_zeros_version(tmp_path) -> None:
    run = RunDir(tmp_path, "fit", 2)
    assert agree(run, lambda v: v) is run
    assert agree(run, lambda v: 0).version == 0


def test_failed_try_leaves_no_start_up_only_folder(tmp_path) -> None:
    early = RunDir(tmp_path, "evaluate", 0)
    early.path.mkdir(parents=True)
    (early.path / "config.yaml").write_text("a: 1")
    (early.path / "hparams.yaml").write_text("b: 2")
    assert remove_if_unused(early) and not (tmp_path / "evaluate").exists()
    late = RunDir(tmp_path, "fit", 0)
    (late.path / "figures").mkdir(parents=True)
    (late.path / "config.yaml").write_text("a: 1")
    (late.path / "figures" / "config.yaml").write_text("not a start-up file")
    assert not remove_if_unused(late) and late.path.is_dir()
    (late.path / "figures" / "config.yaml").unlink()
    (late.path / "metrics.csv").write_text("epoch\n0\n")
    assert not remove_if_unused(late) and (late.path / "metrics.csv").is_file()


def test_loggers_point_at_the_run(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WANDB_NAME", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_TAGS"):
        monkeypatch.delenv(var, raising=False)
    run = RunDir(tmp_path / "cub200_vgg16_bn", "test", 3)
    (csv,) = configure_loggers(None, run)
    assert csv.class_path == CSV_LOGGER
    assert (csv.init_args.save_dir, csv.init_args.name, csv.init_args.version) == (
        str(run.root), "test", 3)
    assert configure_loggers(False, run) is False
    wandb = Namespace(class_path=WANDB, init_args=Namespace(project="p", name="old"))
    other_csv = Namespace(class_path=CSV_LOGGER, init_args=Namespace(save_dir="outputs"))
    first, second = configure_loggers([wandb, other_csv], run)
    assert first is other_csv and first.init_args.save_dir == str(run.root)
    args = second.init_args
    assert (args.name, args.group, args.job_type, args.save_dir) == (
        "cub200_vgg16_bn/test/version_3", "cub200_vgg16_bn", "test", str(run.root))
    monkeypatch.setenv("WANDB_RUN_GROUP", "sweep-3")
    monkeypatch.setenv("WANDB_NAME", "mine")
    _, again = configure_loggers([wandb], run)
    assert (again.init_args.group, again.init_args.name) == ("sweep-3", "mine")
    assert again.init_args.job_type == "test"
    monkeypatch.setenv("WANDB_TAGS", "a, b")
    assert wandb_identity("tags", None) == ["a", "b"]


# --------------------------------------------------------------------------------- data roots
LAYOUTS = [(CUB200DataModule, make_cub, "CUB_200_2011"),
           (FGVCAircraftDataModule, make_fgvc_aircraft, "fgvc-aircraft-2013b"),
           (Food101DataModule, make_food101, "food-101"),
           (Flowers102DataModule, make_flowers102, "flowers-102"),
           (StanfordCarsDataModule, make_stanford_cars, "stanford_cars")]


@pytest.mark.parametrize(("cls", "make", "folder"), LAYOUTS, ids=lambda v: getattr(v, "name", ""))
def test_root_is_the_folder_or_its_parent(cls, make, folder, tmp_path) -> None:
    expected = make(tmp_path)
    labels = []
    for root in (tmp_path, tmp_path / folder):
        dm = cls(root=str(root), image_size=16, batch_size=2, num_workers=0, augment="none")
        dm.setup()
        labels.append(torch.stack([dm.test_set[i][1] for i in range(len(dm.test_set))]))
        assert len(dm.test_set) == len(expected["test_labels"])
    assert labels[0].tolist() == labels[1].tolist() == expected["test_labels"]


def test_renamed_torchvision_folder_names_the_fix(tmp_path) -> None:
    make_food101(tmp_path)
    (tmp_path / "food-101").rename(tmp_path / "food")
    dm = Food101DataModule(root=str(tmp_path / "food"), num_workers=0)
    with pytest.raises(FileNotFoundError, match=r"named 'food-101': rename it to .*food-101"):
        dm.setup()


# ------------------------------------------------------------------------------- eval sampler
@pytest.mark.parametrize(("n", "world"), [(13, 2), (1, 2), (2, 3), (4, 4)])
def test_unpadded_sampler_gives_each_index_once(n: int, world: int) -> None:
    ds = TensorDataset(torch.arange(n))
    samplers = [UnpaddedDistributedSampler(ds, num_replicas=world, rank=r) for r in range(world)]
    seen = [list(s) for s in samplers]
    assert sorted(i for part in seen for i in part) == list(range(n))
    assert [len(p) for p in seen] == [len(range(r, n, world)) for r in range(world)]
    loaders = [DataLoader(ds, batch_size=4, sampler=s) for s in samplers]
    if n < world:  # some rank is empty: no rank is sized, so every rank runs the (empty) loop
        assert all(sized_len(dl) is None for dl in loaders)
        assert [sum(len(b[0]) for b in dl) for dl in loaders] == [len(p) for p in seen]
    else:
        assert [len(s) for s in samplers] == [len(p) for p in seen]


# ------------------------------------------------------------------------------ error display
def _raise_plain() -> None:
    raise ValueError("not one of ours")


def _raise_on_purpose() -> None:
    raise MissingFileError("data.root /nowhere has no CUB_200_2011")


def test_whynot_errors_are_one_message_by_type(capsys, monkeypatch) -> None:
    """A WhynotError is its message; a plain ValueError, even raised by a ``raise`` statement in
    whynot's own code, is a bug and keeps its traceback."""
    monkeypatch.delenv(console.DEBUG_ENV, raising=False)
    with pytest.raises(SystemExit) as stop:
        console.run_main("train.py", _raise_on_purpose)
    assert stop.value.code == 1
    assert capsys.readouterr().err == ("train.py: error: data.root /nowhere has no CUB_200_2011\n"
                                       "(WHYNOT_DEBUG=1 shows the traceback.)\n")
    with pytest.raises(ValueError, match="invalid literal"):  # Python's error in our code: a bug
        console.run_main("train.py", lambda: int("x"))
    with pytest.raises(ValueError, match="not one of ours"):
        console.run_main("train.py", _raise_plain)
    with pytest.raises(json.JSONDecodeError):  # raised inside a library: keeps its traceback
        console.run_main("train.py", lambda: json.loads("{"))
    monkeypatch.setenv(console.DEBUG_ENV, "1")
    with pytest.raises(FileNotFoundError, match="no CUB_200_2011"):
        console.run_main("train.py", _raise_on_purpose)
