"""The LightningCLI behind train.py: ``fit``, ``validate``, ``test`` of a fine-tuning run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser

from callbacks.reseed import ReseedEachEpoch
from cli.arguments import list_options
from cli.base import DEFAULT_ROOT, ProgressBar, WhynotCLI
from cli.console import ignore_warning, run_main
from cli.loggers import wandb_run_notes
from cli.run_dir import existing
from cli.split_check import RequireNonEmptySplit
from cli.usage import STAGE_HELP, TRAIN_HELP, require_arguments
from errors import MissingFileError, RunError
from lightning_modules.checkpoints import inspect_checkpoint
from lightning_modules.classifier import FineTuneClassifier


class TrainCLI(WhynotCLI):
    """``fit | validate | test --config <yaml> [--data.* ...] [--trainer.* ...]``.

    Adds a checkpoint callback (``E/checkpoints``: ``last.ckpt`` and the best by ``val/acc``), a
    learning-rate monitor, per-epoch reseeding and a rich progress bar, links
    ``data.num_classes`` to ``model.num_classes``, keeps a CSV logger beside any other.
    """

    prog = "train.py"
    help_text = TRAIN_HELP

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("trainer_defaults", {"default_root_dir": DEFAULT_ROOT})
        parser_kwargs = dict(kwargs.pop("parser_kwargs", None) or {})
        for stage, text in STAGE_HELP.items():
            parser_kwargs.setdefault(stage, {"description": text})
        super().__init__(FineTuneClassifier, LightningDataModule, subclass_mode_data=True,
                         args=args, parser_kwargs=parser_kwargs, **kwargs)

    def list_options(self) -> set[str]:
        """``--model.milestones 30`` is ``[30]``."""
        return list_options(FineTuneClassifier, "model")

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the datamodule's class count to the model."""
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_size", "model.image_size", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer with the default callbacks appended (checkpoint dir fixed per run root)."""
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        root = Path(config.trainer.get("default_root_dir") or DEFAULT_ROOT)
        extra = kwargs.pop("callbacks", [])
        callbacks = [
            ModelCheckpoint(dirpath=str(root / "checkpoints"), filename="best-{epoch}-{step}",
                            monitor="val/acc", mode="max", save_top_k=1),
            # A separate un-monitored callback: save_last=True would only refresh last.ckpt when
            # the best one changes.
            ModelCheckpoint(dirpath=str(root / "checkpoints"), filename="last", monitor=None,
                            save_top_k=1, enable_version_counter=False),
            ReseedEachEpoch(),
            RequireNonEmptySplit(self.prog),
        ]
        if config.trainer.get("logger") not in (False, None, []):
            # Lightning refuses the monitor without a logger (--trainer.logger false)
            callbacks.append(LearningRateMonitor(logging_interval="epoch"))
        configured = self.configured_callbacks()
        if config.trainer.get("enable_progress_bar", True) is not False and not any(
                isinstance(cb, RichProgressBar) for cb in configured):
            callbacks.append(ProgressBar())
        return super().instantiate_trainer(callbacks=[*configured, *extra, *callbacks], **kwargs)

    # ---------------------------------------------------------------- checkpoints of a stage
    def check_parsed(self) -> None:
        """A ``--ckpt_path`` file is a readable Lightning checkpoint before Lightning reads its
        hyperparameters (a truncated file would end there in a traceback)."""
        subcommand = self.config.get("subcommand")
        ckpt = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt not in (None, "last", "best", "hpc", "registry") and Path(ckpt).exists():
            inspect_checkpoint(ckpt)

    def before_instantiate_classes(self) -> None:
        """Run folder and loggers; a stage that loads a checkpoint reads no pretrained weights
        (the checkpoint replaces every one of them)."""
        super().before_instantiate_classes()
        config = self._config()
        if self.subcommand in ("validate", "test", "predict") and config.get("ckpt_path"):
            config.model.pretrained = None

    def _resolve_ckpt_path(self) -> None:
        """``last`` / ``best`` / a path for validate and test: the file must exist."""
        config = self.config_init[self.subcommand]
        ckpt = config.get("ckpt_path")
        folder = self.run.checkpoints
        hint = (f"run `python train.py fit` with this config (trainer.default_root_dir "
                f"{self.run.root}) first, or pass --ckpt_path PATH")
        if ckpt is None:
            self.say(f"{self.subcommand} without --ckpt_path measures the model as initialised "
                     "(--ckpt_path last: the fine-tuned one).", warning=True)
        elif ckpt in ("last", "best"):
            pattern = "last*.ckpt" if ckpt == "last" else "best-*.ckpt"
            found = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
            if not found:
                raise MissingFileError(
                    f"--ckpt_path {ckpt}: there is no {pattern} in {folder}; {hint}.")
            config["ckpt_path"] = str(found[-1])
        elif not Path(ckpt).is_file():
            raise MissingFileError(f"--ckpt_path {ckpt}: no such checkpoint file; {hint}.")

    def before_fit(self) -> None:
        """A given checkpoint path must exist (``last`` resumes when there is one)."""
        ckpt = self.config_init["fit"].get("ckpt_path")
        if ckpt not in (None, "last", "best", "hpc", "registry") and not Path(ckpt).is_file():
            raise MissingFileError(f"--ckpt_path {ckpt}: no such checkpoint file to resume "
                                   "from; use --ckpt_path last or the path of a .ckpt.")
        if ckpt is not None:  # resuming: the checkpoint folder holds the run's own checkpoints
            ignore_warning(r"Checkpoint directory .* exists and is not empty", UserWarning)

    def before_validate(self) -> None:
        """Resolve ``--ckpt_path``."""
        self._resolve_ckpt_path()

    def before_test(self) -> None:
        """Resolve ``--ckpt_path``."""
        self._resolve_ckpt_path()

    def _measured(self, results: list[dict[str, Any]] | None) -> None:
        if not results or not any(results):
            raise RunError(
                f"{self.prog} {self.subcommand}: no batch was run, so nothing was measured "
                "(limit_*_batches=0 or an empty loader).")

    def validate(self, **kwargs: Any) -> None:
        """``trainer.validate``; an evaluation that ran no batch is an error."""
        self._measured(self.trainer.validate(**kwargs))

    def test(self, **kwargs: Any) -> None:
        """``trainer.test``; an evaluation that ran no batch is an error."""
        self._measured(self.trainer.test(**kwargs))

    def after_fit(self) -> None:
        """Name the checkpoints and logs that exist."""
        ckpts = [p.name for p in existing(sorted(self.run.checkpoints.glob("*.ckpt")))]
        lines = []
        if ckpts:
            lines.append(f"checkpoints: {self.run.checkpoints} ({', '.join(ckpts)})")
        self._report(lines)

    def after_validate(self) -> None:
        """Name the logs that exist."""
        self._report([])

    def after_test(self) -> None:
        """Name the logs that exist."""
        self._report([])

    def _report(self, lines: list[str]) -> None:
        if not self.is_rank_zero():
            return
        if self.trainer.fast_dev_run:
            self.say(f"{self.prog} {self.subcommand} finished (fast_dev_run: nothing is written).")
            return
        files = self.run_files()
        if files:
            names = ", ".join(str(p.relative_to(self.run.path)) for p in files)
            lines.append(f"run folder: {self.run.path} ({names})")
        lines += wandb_run_notes(self.trainer.loggers)
        self.say("\n".join([f"{self.prog} {self.subcommand} finished.", *lines]))


def main(args: list[str] | None = None) -> TrainCLI:
    """Run train.py's CLI on ``args`` (``sys.argv`` when ``None``)."""
    require_arguments(TRAIN_HELP, args)
    return run_main(TrainCLI.prog, lambda: TrainCLI(args=args))
