"""The LightningCLI behind train.py: class-count link, default callbacks, CSV logging always on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_modules.callbacks import ReseedEachEpoch
from lightning_modules.classifier import FineTuneClassifier
from lightning_modules.loggers import SaveConfigToLoggers

CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"


class TrainCLI(LightningCLI):
    """``fit | validate | test --config <yaml> [--data.* ...] [--trainer.* ...]``.

    Adds a checkpoint callback (``<default_root_dir>/checkpoints``: ``last.ckpt`` and the best
    by ``val/acc``), a learning-rate monitor, per-epoch reseeding and a rich progress bar,
    links ``data.num_classes`` to ``model.num_classes``, keeps a CSV logger beside any other.
    """

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("save_config_callback", SaveConfigToLoggers)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("trainer_defaults", {"default_root_dir": "outputs/default"})
        super().__init__(FineTuneClassifier, LightningDataModule, subclass_mode_data=True,
                         args=args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the datamodule's class count to the model."""
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Put a CSV logger (save_dir = default_root_dir) among the configured loggers."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        root = str(trainer.default_root_dir or "outputs/default")
        csv = Namespace(class_path=CSV_LOGGER, init_args=Namespace(save_dir=root, name="csv"))
        logger = trainer.logger
        if logger is None or logger is True:
            trainer.logger = [csv]
        elif logger is False:
            return
        else:
            loggers = logger if isinstance(logger, list) else [logger]
            if not any(getattr(lg, "class_path", "") == CSV_LOGGER for lg in loggers):
                loggers = [csv, *loggers]
            trainer.logger = loggers

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer with the default callbacks appended (checkpoint dir fixed per run root)."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        root = Path(config.trainer.get("default_root_dir") or "outputs/default")
        extra = kwargs.pop("callbacks", [])
        callbacks = [
            ModelCheckpoint(dirpath=str(root / "checkpoints"), filename="best-{epoch}-{step}",
                            monitor="val/acc", mode="max", save_top_k=1),
            # A separate un-monitored callback: save_last=True would only refresh last.ckpt when
            # the best one changes.
            ModelCheckpoint(dirpath=str(root / "checkpoints"), filename="last", monitor=None,
                            save_top_k=1, enable_version_counter=False),
            LearningRateMonitor(logging_interval="epoch"),
            ReseedEachEpoch(),
        ]
        configured = config.trainer.get("callbacks") or []
        if config.trainer.get("enable_progress_bar", True) is not False and not any(
                isinstance(cb, RichProgressBar) for cb in configured):
            callbacks.append(RichProgressBar())
        return super().instantiate_trainer(callbacks=[*extra, *callbacks], **kwargs)


def main(args: list[str] | None = None) -> TrainCLI:
    """Run train.py's CLI on ``args`` (``sys.argv`` when ``None``)."""
    return TrainCLI(args=args)
