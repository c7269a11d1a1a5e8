"""train.py / TrainCLI: every config instantiates, every data preset fits (fast_dev_run), exact
resume, W&B offline, configured callbacks kept."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path

import pytest
import torch
import yaml

from cli.train import TrainCLI
from lightning_modules import BACKBONES, FineTuneClassifier, hub_weights_path
from tests.dataset_layouts import (
    make_cub,
    make_fgvc_aircraft,
    make_flowers102,
    make_food101,
    make_image_folder,
    make_stanford_cars,
)
from tests.wandb_files import read_closed_wandb_run

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
LAYOUTS = {"cub200": make_cub, "fgvc_aircraft": make_fgvc_aircraft, "food101": make_food101,
           "flowers102": make_flowers102, "stanford_cars": make_stanford_cars,
           "image_folder": make_image_folder}
TINY_MODEL = ["--model.backbone", "tiny_vgg", "--model.pretrained", "null"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.accelerator", "cpu", "--trainer.devices", "1"]


def tiny_data(name: str, root: Path) -> list[str]:
    """CLI overrides that point data preset ``name`` at a miniature layout under ``root``."""
    args = ["--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0"]
    if name == "synthetic":
        return [*args, "--data.num_train", "32", "--data.num_test", "8"]
    LAYOUTS[name](root)
    return [*args, "--data.root", str(root), "--data.augment", "none", "--data.val_fraction",
            "0.25"]


@pytest.mark.parametrize("path", [*sorted((CONFIGS / "experiments").glob("*.yaml")),
                                  CONFIGS / "synthetic.yaml"], ids=lambda p: p.stem)
def test_experiment_configs_instantiate(path: Path, tmp_path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    assert set(cfg) <= {"seed_everything", "trainer", "model", "data", "ckpt_path"}
    assert cfg["model"]["backbone"] in BACKBONES
    dataset = path.stem.rsplit("_", 2)[0] if path.parent.name == "experiments" else "synthetic"
    dataset = next(d for d in [*LAYOUTS, "synthetic"] if path.stem.startswith(d))
    # parsed and instantiated; each data set's fit is test_data_presets_compose's fast_dev_run
    cli = TrainCLI(args=["--config", str(path), *TINY_MODEL, *tiny_data(dataset, tmp_path),
                         *QUIET, "--trainer.default_root_dir", str(tmp_path / "out")], run=False)
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes
    assert type(cli.datamodule).__name__ == cfg["data"]["class_path"].rsplit(".", 1)[1]
    assert cli.datamodule.hparams.image_size == 32


@pytest.mark.parametrize("data", sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml")))
def test_data_presets_compose(data: str, tmp_path: Path) -> None:
    """The presets compose (trainer + model + data + logger) into a trainer, model and data."""
    cli = TrainCLI(args=_composed(data, tmp_path), run=False)
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes
    assert any(type(lg).__name__ == "CSVLogger" for lg in cli.trainer.loggers)


@pytest.mark.slow  # a fit per data set; in the fast set, the docs' CUB commands fit for real
@pytest.mark.parametrize("data", sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml")))
def test_data_presets_fit(data: str, tmp_path: Path) -> None:
    cli = TrainCLI(args=["fit", *_composed(data, tmp_path), "--trainer.fast_dev_run", "1"])
    assert cli.trainer.state.finished


def _composed(data: str, tmp_path: Path) -> list[str]:
    return ["--config", str(CONFIGS / "trainer" / "cpu.yaml"),
            "--config", str(CONFIGS / "model" / "tiny_vgg.yaml"),
            "--config", str(CONFIGS / "data" / f"{data}.yaml"),
            "--config", str(CONFIGS / "logger" / "csv.yaml"),
            *tiny_data(data, tmp_path), *QUIET, "--trainer.default_root_dir", str(tmp_path / "out")]


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml")))
def test_model_presets_parse(model: str, tmp_path: Path) -> None:
    cfg = yaml.safe_load((CONFIGS / "model" / f"{model}.yaml").read_text())["model"]
    assert cfg["backbone"] == model in BACKBONES
    if cfg.get("pretrained") is not None:  # the tiny nets have no pretrained weights
        assert hub_weights_path(model, cfg["pretrained"])[0].name.endswith(".pth")
    cli = TrainCLI(args=["--config", str(CONFIGS / "model" / f"{model}.yaml"),
                         "--config", str(CONFIGS / "data" / "synthetic.yaml"), *TINY_MODEL,
                         *tiny_data("synthetic", tmp_path), *QUIET], run=False)
    defaults = inspect.signature(FineTuneClassifier).parameters  # presets only override them
    assert cli.model.hparams.lr == cfg.get("lr", defaults["lr"].default)
    assert cli.model.hparams.num_classes == 10


@pytest.mark.parametrize("trainer", ["default", "cpu", "ddp"])
def test_trainer_presets_instantiate(trainer: str, tmp_path: Path) -> None:
    cli = TrainCLI(args=["--config", str(CONFIGS / "trainer" / f"{trainer}.yaml"),
                         "--config", str(CONFIGS / "model" / "tiny_vgg.yaml"),
                         "--config", str(CONFIGS / "data" / "synthetic.yaml"),
                         *tiny_data("synthetic", tmp_path), *QUIET,
                         "--trainer.default_root_dir", str(tmp_path)], run=False)
    names = {type(cb).__name__ for cb in cli.trainer.callbacks}
    assert {"ModelCheckpoint", "LearningRateMonitor", "ReseedEachEpoch"} <= names
    assert any(type(lg).__name__ == "CSVLogger" for lg in cli.trainer.loggers)


def _fit(root: Path, epochs: int, *extra: str) -> TrainCLI:
    return TrainCLI(args=["fit", "--config", str(CONFIGS / "synthetic.yaml"), *QUIET,
                          *tiny_data("synthetic", root), "--data.num_train", "48",
                          "--trainer.max_epochs", str(epochs), "--trainer.deterministic", "true",
                          "--model.lr", "0.01", "--trainer.default_root_dir", str(root), *extra])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    _fit(tmp_path / "a", 3)
    _fit(tmp_path / "b", 1)
    first = _weights(tmp_path / "b" / "checkpoints" / "last.ckpt")
    _fit(tmp_path / "b", 3, "--ckpt_path", "last")
    full = _weights(tmp_path / "a" / "checkpoints" / "last.ckpt")
    resumed = _weights(tmp_path / "b" / "checkpoints" / "last.ckpt")
    assert full.keys() == resumed.keys()
    assert not torch.equal(first["net.features.0.weight"], full["net.features.0.weight"])
    for k in full:
        assert torch.equal(full[k], resumed[k]), k
    rows = list(csv.DictReader((tmp_path / "a" / "fit" / "version_0" / "metrics.csv").open()))
    cols = set(rows[0])
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "val/acc_top5", "lr-SGD"} <= cols
    assert sum(1 for r in rows if r["val/acc"]) == 3
    # One run folder per try: the resumed fit is b's version_1, next to the first try's logs.
    assert sorted(p.name for p in (tmp_path / "b" / "fit").iterdir()) == ["version_0", "version_1"]
    for run in (tmp_path / "b" / "fit").iterdir():
        assert {"config.yaml", "metrics.csv", "hparams.yaml"} <= {p.name for p in run.iterdir()}


def test_wandb_offline_saves_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The W&B preset as shipped: offline run in E/wandb, named by experiment/stage/version."""
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_NAME", "WANDB_JOB_TYPE", "WANDB_TAGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_RUN_GROUP", "sweep-7")  # the environment wins over the CLI's group
    root = tmp_path / "tiny_run"
    cli = TrainCLI(args=["fit", "--config", str(CONFIGS / "synthetic.yaml"),
                         "--config", str(CONFIGS / "logger" / "wandb.yaml"), *QUIET,
                         *tiny_data("synthetic", tmp_path), "--trainer.max_steps", "2",
                         "--trainer.limit_val_batches", "1",
                         "--trainer.default_root_dir", str(root)])
    runs = list((root / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    saved = yaml.safe_load((runs[0] / "files" / "config.yaml").read_text())
    assert saved["model"]["backbone"] == "tiny_vgg"
    assert sorted(p.name for p in (root / "fit").iterdir()) == ["version_0"]
    assert (root / "fit" / "version_0" / "metrics.csv").is_file()
    assert (root / "fit" / "version_0" / "config.yaml").is_file()
    assert any(type(lg).__name__ == "OfflineWandbLogger" for lg in cli.trainer.loggers)
    logged = read_closed_wandb_run(runs[0])  # train.py finished the run
    assert logged["_run/display_name"] == "tiny_run/fit/version_0"
    assert logged["_run/run_group"] == "sweep-7" and logged["_run/job_type"] == "fit"
    assert logged["trainer/global_step"] == 1 and logged["train/loss"] > 0  # step index 1: the 2nd


@pytest.mark.slow
def test_synthetic_demo_reaches_90_percent(tmp_path: Path) -> None:
    # The demo config as shipped (tiny_vgg, 64 px, 2000 train images, 15 epochs, about 1.5 min).
    args = ["--config", str(CONFIGS / "synthetic.yaml"), *QUIET,
            "--trainer.default_root_dir", str(tmp_path)]
    TrainCLI(args=["fit", *args])
    cli = TrainCLI(args=["test", *args, "--ckpt_path", "last"])
    assert cli.trainer.callback_metrics["test/acc"] > 0.9


def test_fit_without_a_logger(tmp_path: Path) -> None:
    """--trainer.logger false: no learning-rate monitor (Lightning refuses one without a logger)."""
    cli = TrainCLI(args=["fit", "--config", str(CONFIGS / "synthetic.yaml"), *QUIET,
                         *tiny_data("synthetic", tmp_path), "--trainer.logger", "false",
                         "--trainer.max_steps", "2", "--trainer.limit_val_batches", "1",
                         "--trainer.default_root_dir", str(tmp_path / "run")])
    assert cli.trainer.state.finished and not cli.trainer.loggers
    assert not any(type(cb).__name__ == "LearningRateMonitor" for cb in cli.trainer.callbacks)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_configured_callbacks_are_kept(tmp_path: Path) -> None:
    """``--trainer.callbacks+=...`` reaches the trainer beside the CLIs' own callbacks (the CLIs
    pass theirs as a keyword, which Lightning would let replace the configured ones)."""
    from cli.evaluate import EvaluationCLI

    extra = ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val/loss",
             "--trainer.default_root_dir", str(tmp_path)]
    train = TrainCLI(args=["--config", str(CONFIGS / "synthetic.yaml"), *extra], run=False)
    names = [type(cb).__name__ for cb in train.trainer.callbacks]
    assert "EarlyStopping" in names and "ReseedEachEpoch" in names
    evaluate = EvaluationCLI(args=["--config", str(CONFIGS / "synthetic.yaml"), *extra])
    names = [type(cb).__name__ for cb in evaluate.trainer.callbacks]
    assert {"EarlyStopping", "ContrastiveEvaluation", "RequireNonEmptySplit"} <= set(names)
