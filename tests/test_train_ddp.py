"""train.py with 2 gloo CPU processes, run as the docs print it: exact resume, skip_corrupt.

Only ``--trainer.strategy ddp --trainer.devices 2 --trainer.accelerator cpu`` and tiny data
settings are added to the docs' commands. The fast suite's DDP fit runs in the background
(``ddp_fit_and_resume`` in conftest.py, no data workers); the variants with 2 workers per rank
and with unreadable images are slow.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from datamodules import CUB200DataModule
from tests.background import Job
from tests.dataset_layouts import make_cub
from tests.processes import run_cli

REPO = Path(__file__).resolve().parent.parent
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
# 48 train images (43 after val), batch 4 per rank: 6 steps per epoch on each of 2 ranks.
TINY_SYNTHETIC = ["--data.image_size", "32", "--data.batch_size", "4", "--data.num_train", "48",
                  "--data.num_test", "8", "--model.lr", "0.01"]
RECORD_ENV = "WHYNOT_TEST_RECORD"


def _train(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    cmd = [sys.executable, "train.py", "fit", *args, *DDP, *QUIET,
           "--trainer.default_root_dir", str(root)]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    proc = run_cli(cmd, cwd=REPO, env=full_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _weights(root: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, float]:
    assert a.keys() == b.keys()
    return {k: (a[k].double() - b[k].double()).abs().max().item() for k in a
            if (a[k].double() - b[k].double()).abs().max() > 0}


def _fit_synthetic(root: Path, epochs: int, workers: int, *extra: str) -> None:
    _train(root, "--config", "configs/synthetic.yaml", *TINY_SYNTHETIC,
           "--data.num_workers", str(workers), "--data.augment", "light",
           "--trainer.max_epochs", str(epochs), *extra,
           # Resuming reads last.ckpt; forcing weights-only loads shows that Lightning's own
           # resume path needs no pickled objects from a train.py checkpoint.
           env={"TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"} if "--ckpt_path" in extra else None)


def test_ddp_fit_resumes_exactly(ddp_fit_and_resume: Job) -> None:
    """A 2-process fit resumed from its epoch-0 checkpoint with ``--ckpt_path last`` ends with
    the weights of the uninterrupted fit, bit for bit; the ranks agree on one run folder."""
    runs = ddp_fit_and_resume.result()
    first, resumed = runs["uninterrupted"], runs["resumed"]
    resumed_weights = _weights(resumed)
    epoch_0 = torch.load(first / "epochs" / "epoch=0.ckpt", map_location="cpu",
                         weights_only=True)["state_dict"]
    assert _max_difference(epoch_0, resumed_weights), "the resumed fit did not train"
    assert _max_difference(_weights(first), resumed_weights) == {}
    for root in (first, resumed):  # both ranks agreed on one run folder: version_0, nothing else
        assert sorted(p.name for p in (root / "fit").iterdir()) == ["version_0"]
        run = root / "fit" / "version_0"
        rows = list(csv.DictReader((run / "metrics.csv").open()))
        assert any(r["val/acc"] for r in rows) and any(r["train/loss"] for r in rows)
        assert (run / "config.yaml").is_file()
    assert sorted(p.name for p in first.iterdir()) == ["checkpoints", "epochs", "fit"]
    assert sorted(p.name for p in resumed.iterdir()) == ["checkpoints", "fit"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted 2-epoch fit and a 1-epoch fit to resume, both with 2 workers."""
    out = {"uninterrupted": tmp_path_factory.mktemp("uninterrupted"),
           "one_epoch": tmp_path_factory.mktemp("one_epoch")}
    _fit_synthetic(out["uninterrupted"], 2, 2)
    _fit_synthetic(out["one_epoch"], 1, 2)
    return out


def _resume(runs: dict[str, Path], root: Path, workers: int) -> dict[str, torch.Tensor]:
    """Copy the 1-epoch run to ``root`` and resume it to 2 epochs with ``workers`` workers."""
    shutil.copytree(runs["one_epoch"], root)
    _fit_synthetic(root, 2, workers, "--ckpt_path", "last")
    resumed = _weights(root)
    assert _max_difference(_weights(runs["one_epoch"]), resumed), "the resumed fit did not train"
    return resumed


@pytest.mark.slow
def test_ddp_resume_with_workers_and_augmentation(runs: dict[str, Path], tmp_path: Path) -> None:
    # Persistent workers and random crops / flips on both sides of the interruption.
    resumed = _resume(runs, tmp_path / "resumed", workers=2)
    assert _max_difference(_weights(runs["uninterrupted"]), resumed) == {}


@pytest.mark.slow
def test_ddp_resume_without_workers_equals_a_fit_with_workers(runs: dict[str, Path],
                                                             tmp_path: Path) -> None:
    # Resumed without workers: each sample's augmentation depends on (seed, epoch, sample) only,
    # so reading the data in the main process gives the weights of the fit that used 2 workers.
    resumed = _resume(runs, tmp_path / "resumed", workers=0)
    assert _max_difference(_weights(runs["uninterrupted"]), resumed) == {}


class RecordingCUB(CUB200DataModule):
    """CUB that logs every verification pass and, per rank, the datasets it built."""

    def _find_unreadable(self, files: list[Path]) -> list[Path]:
        bad = super()._find_unreadable(files)
        rank = self.trainer.global_rank if self.trainer is not None else -1
        with open(os.environ[RECORD_ENV] + ".verify", "a") as f:
            f.write(json.dumps({"rank": rank, "files": len(files),
                                "bad": sorted(p.name for p in bad)}) + "\n")
        return bad

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        assert self.trainer is not None
        sets = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
        record = {k: sorted(p.name for p in ds.files) for k, ds in sets.items()}
        path = f"{os.environ[RECORD_ENV]}.rank{self.trainer.global_rank}"
        Path(path).write_text(json.dumps(record))


@pytest.mark.slow
def test_skip_corrupt_verifies_once_and_ranks_agree(tmp_path: Path) -> None:
    make_cub(tmp_path / "data", num_classes=3, per_class=4)
    files = sorted((tmp_path / "data" / "CUB_200_2011" / "images").rglob("*.jpg"))
    files[0].write_bytes(b"not a jpeg")  # a train image (k = 0)
    files[3].write_bytes(b"")  # a test image (k = 3)
    record = tmp_path / "record"
    root = tmp_path / "run"
    # The README's multi-GPU command (its ddp.yaml turns sync_batchnorm off on CPU processes)
    _train(root, "--config", "configs/experiments/cub200_vgg16_bn.yaml",
           "--data.root", str(tmp_path / "data"), "--config", "configs/trainer/ddp.yaml",
           "--data.class_path", "tests.test_train_ddp.RecordingCUB",
           "--data.skip_corrupt", "true", "--data.image_size", "32", "--data.batch_size", "2",
           "--data.num_workers", "0", "--data.augment", "none", "--data.val_fraction", "0.25",
           "--model.backbone", "tiny_vgg", "--model.pretrained", "null",
           "--trainer.max_epochs", "1", env={RECORD_ENV: str(record)})
    passes = [json.loads(line) for line in Path(f"{record}.verify").read_text().splitlines()]
    assert passes == [{"rank": 0, "files": 12, "bad": sorted([files[0].name, files[3].name])}]
    built = [json.loads(Path(f"{record}.rank{r}").read_text()) for r in (0, 1)]
    assert built[0] == built[1]
    kept = {name for names in built[0].values() for name in names}
    assert len(kept) == 10 and files[0].name not in kept and files[3].name not in kept
    assert (root / "checkpoints" / "last.ckpt").is_file()
    _weights(root)  # the checkpoint (with the datamodule's settings) loads weights-only
