"""The LightningCLIs behind train.py (``TrainCLI``) and, via ``WhynotCLI``, evaluate.py.

``WhynotCLI`` holds what both commands share: the run-output layout (``lightning_modules.run_dir``:
loggers and ``config.yaml`` in ``E/<stage>/version_<N>``, no folder left by a failed try), the
empty-split check, short parse errors, help that opens with examples, and quiet libraries.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from lightning_modules.callbacks import ReseedEachEpoch
from lightning_modules.classifier import FineTuneClassifier
from lightning_modules.console import DEBUG_ENV, ignore_warning, quiet_libraries, run_main
from lightning_modules.loggers import (
    SaveConfigToLoggers,
    configure_loggers,
    finish_wandb_runs,
    wandb_run_notes,
)
from lightning_modules.run_dir import RunDir, existing, new_run_dir, remove_if_unused
from lightning_modules.split_check import RequireNonEmptySplit

DEFAULT_ROOT = "outputs/default"

TRAIN_HELP = f"""\
Fine-tune an image classifier (fit), then measure it on the validation or test split (validate,
test). Everything a run writes goes under trainer.default_root_dir, E (the configs use
outputs/<experiment>): E/checkpoints/{{last,best-*}}.ckpt and E/<fit|validate|test>/version_N/
(config.yaml, metrics.csv, hparams.yaml); with W&B also E/wandb/.

examples:
  python train.py fit --config configs/synthetic.yaml        # CPU demo: tiny_vgg, synthetic set
  python train.py fit --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011
  python train.py test --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011 --ckpt_path last
  python train.py fit --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011 --config configs/trainer/ddp.yaml --trainer.devices 4

--config FILE reads a YAML (repeat it to compose presets: configs/{{data,model,trainer,logger}}/);
any key is set with --section.key VALUE. `python train.py fit --help` lists every option.
{DEBUG_ENV}=1 shows the traceback behind an error message.
"""

_STAGE_TAIL = " Examples and the output layout: `python train.py --help`."
STAGE_HELP = {
    "fit": "Fine-tune: E/checkpoints/last.ckpt every epoch, best-*.ckpt by val/acc, logs in "
           "E/fit/version_N; --ckpt_path last resumes." + _STAGE_TAIL,
    "validate": "Loss and accuracy on the validation split (E/validate/version_N); "
                "--ckpt_path last|best|PATH." + _STAGE_TAIL,
    "test": "Loss and accuracy on the test split (E/test/version_N); "
            "--ckpt_path last|best|PATH." + _STAGE_TAIL,
    "predict": "Logits of the test split (no outputs are written)." + _STAGE_TAIL,
}


def _runs_on_cuda(accelerator: Any) -> bool:
    """Whether ``trainer.accelerator`` (a name, "auto", or a class / class_path) means CUDA here."""
    import torch

    if not torch.cuda.is_available():
        return False
    if accelerator is None or isinstance(accelerator, str):
        return (accelerator or "auto").lower() in ("auto", "gpu", "cuda")
    name = getattr(accelerator, "class_path", None) or type(accelerator).__name__
    return str(name).endswith("CUDAAccelerator")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help with the description printed as written (the examples keep lines)."""


class WhynotArgumentParser(LightningArgumentParser):
    """Help opens with what the command does; a parse error prints its message, not the usage."""

    def format_help(self) -> str:
        """The description (what the command does, examples) first, then usage and options."""
        description, self.description = self.description, None
        try:
            rest = super().format_help()
        finally:
            self.description = description
        return f"{description.rstrip()}\n\n{rest}" if description else rest

    def error(self, message: str, ex: Exception | None = None) -> Any:
        """Exit 2 with ``<prog>: error: <message>`` (full behaviour when not exiting on errors)."""
        from jsonargparse._common import debug_mode_active

        if not self.exit_on_error or debug_mode_active():
            return super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        prog = parser.prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {message}\n`{prog} --help` lists the options and "
                         "examples.\n")
        raise SystemExit(2)


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar without ``v_num`` (shown as ``0.000``; the run folder is
    named when the command ends)."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        """The logged progress-bar values, less the logger version."""
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        return metrics


class WhynotCLI(LightningCLI):
    """LightningCLI with whynot's run-output layout, checks and console.

    Subclasses set ``prog`` and ``help_text`` and may override ``stage``.
    """

    prog = "whynot"
    help_text = ""

    def __init__(self, model_class: Any, datamodule_class: Any, *args: Any, **kwargs: Any) -> None:
        quiet_libraries()
        self.run_dir: RunDir | None = None
        kwargs.setdefault("parser_class", WhynotArgumentParser)
        kwargs.setdefault("save_config_callback", SaveConfigToLoggers)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        parser_kwargs = dict(kwargs.pop("parser_kwargs", None) or {})
        parser_kwargs.setdefault("description", self.help_text)
        parser_kwargs.setdefault("prog", self.prog)
        super().__init__(model_class, datamodule_class, *args, parser_kwargs=parser_kwargs,
                         **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Every parser (subcommands too) keeps the description's line breaks."""
        kwargs.setdefault("formatter_class", HelpFormatter)
        return super().init_parser(**kwargs)

    @property
    def stage(self) -> str:
        """The run-folder stage: the subcommand (``fit`` without one)."""
        return self.subcommand or "fit"

    def _config(self) -> Any:
        return self.config[self.subcommand] if self.subcommand else self.config

    def before_instantiate_classes(self) -> None:
        """Choose the run folder and point every logger and the saved config at it."""
        trainer = self._config().trainer
        trainer.default_root_dir = str(trainer.default_root_dir or DEFAULT_ROOT)
        if trainer.get("sync_batchnorm") and not _runs_on_cuda(trainer.get("accelerator")):
            # configs/trainer/ddp.yaml turns it on for GPUs; torch's SyncBatchNorm refuses
            # anything else, so the same command runs with CPU processes (tests, a laptop)
            rank_zero_warn("trainer.sync_batchnorm=true needs CUDA devices; the accelerator is "
                           f"{trainer.get('accelerator')!r}, so it is off for this run (each "
                           "process normalises with its own batch statistics).")
            trainer.sync_batchnorm = False
        self.run_dir = new_run_dir(trainer.default_root_dir, self.stage)
        trainer.logger = configure_loggers(trainer.logger, self.run_dir)
        if self.save_config_callback is not None and issubclass(
                self.save_config_callback, SaveConfigToLoggers):
            self.save_config_kwargs = {**self.save_config_kwargs, "run": self.run_dir}

    @property
    def run(self) -> RunDir:
        """The run folder, as agreed by the ranks once the trainer has set up."""
        trainer = getattr(self, "trainer", None)
        for cb in trainer.callbacks if trainer is not None else []:
            if isinstance(cb, SaveConfigToLoggers) and cb.run is not None:
                return cb.run
        assert self.run_dir is not None, "before_instantiate_classes chooses the run folder"
        return self.run_dir

    @contextmanager
    def removing_unused_run_dir(self) -> Iterator[None]:
        """On any failure, rank zero deletes the run folder if it holds only start-up files.

        Either way the W&B runs are closed here, while the console is still the command's: left
        to W&B's exit hook, their closing lines carry colour codes even into files and pipes.
        """
        try:
            yield
        except BaseException:
            if self.is_rank_zero():
                remove_if_unused(self.run)
            finish_wandb_runs(self.trainer.loggers, exit_code=1)
            raise
        finish_wandb_runs(self.trainer.loggers, exit_code=0)

    def _run_subcommand(self, subcommand: str) -> None:
        with self.removing_unused_run_dir():
            super()._run_subcommand(subcommand)

    def is_rank_zero(self) -> bool:
        """Rank zero, also before the DDP set-up (Lightning's children know it from LOCAL_RANK)."""
        return rank_zero_only.rank == 0 and self.trainer.is_global_zero

    def say(self, text: str, warning: bool = False) -> None:
        """Print ``text`` on rank zero (a warning goes to stderr with the command's name)."""
        if not self.is_rank_zero():
            return
        if warning:
            print(f"{self.prog}: warning: {text}", file=sys.stderr, flush=True)
        else:
            print(text, flush=True)

    def run_files(self) -> list[Path]:
        """The files this run wrote into its folder (empty when nothing was written)."""
        path = self.run.path
        return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []


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

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the datamodule's class count to the model."""
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

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
        configured = config.trainer.get("callbacks") or []
        if config.trainer.get("enable_progress_bar", True) is not False and not any(
                isinstance(cb, RichProgressBar) for cb in configured):
            callbacks.append(ProgressBar())
        return super().instantiate_trainer(callbacks=[*extra, *callbacks], **kwargs)

    # ---------------------------------------------------------------- checkpoints of a stage
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
                raise FileNotFoundError(
                    f"--ckpt_path {ckpt}: there is no {pattern} in {folder}; {hint}.")
            config["ckpt_path"] = str(found[-1])
        elif not Path(ckpt).is_file():
            raise FileNotFoundError(f"--ckpt_path {ckpt}: no such checkpoint file; {hint}.")

    def before_fit(self) -> None:
        """A given checkpoint path must exist (``last`` resumes when there is one)."""
        ckpt = self.config_init["fit"].get("ckpt_path")
        if ckpt not in (None, "last", "best", "hpc", "registry") and not Path(ckpt).is_file():
            raise FileNotFoundError(f"--ckpt_path {ckpt}: no such checkpoint file to resume "
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
            raise RuntimeError(
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
    argv = sys.argv[1:] if args is None else args
    if not argv:
        sys.stderr.write(TRAIN_HELP)
        raise SystemExit(2)
    return run_main(TrainCLI.prog, lambda: TrainCLI(args=args))
