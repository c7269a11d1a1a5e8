"""What train.py and evaluate.py share: ``WhynotCLI``, a LightningCLI with whynot's run-output
layout (``cli.run_dir``: loggers and ``config.yaml`` in ``E/<stage>/version_<N>``, no folder left
by a failed try), short parse errors, help that opens with examples, and quiet libraries.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn

from cli.arguments import (
    check_yaml_files,
    lists_from_single_values,
    move_after_config_message,
)
from cli.console import quiet_libraries
from cli.loggers import (
    SaveConfigToLoggers,
    configure_loggers,
    finish_wandb_runs,
)
from cli.output_claim import check_creatable
from cli.run_dir import RunDir, new_run_dir, remove_if_unused

DEFAULT_ROOT = "outputs/default"

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
        message = move_after_config_message(getattr(self, "whynot_argv", ()), message) or message
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

    def list_options(self) -> set[str]:
        """Options whose single value is read as a one-element list (``cli.arguments``)."""
        return set()

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, after the command-line checks of ``cli.arguments`` (YAML files, lists)."""
        if isinstance(args, dict) or (args is not None and not isinstance(args, list | tuple)):
            return super().parse_arguments(parser, args)
        argv = lists_from_single_values(sys.argv[1:] if args is None else args,
                                        self.list_options())
        check_yaml_files(argv)
        parser.whynot_argv = argv  # type: ignore[attr-defined]  # for the error messages
        self.config = parser.parse_args(argv)
        self.check_parsed()
        return None

    def check_parsed(self) -> None:
        """Checks of the parsed config before anything reads a file it names (subclasses)."""

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
        check_creatable(trainer.default_root_dir, "--trainer.default_root_dir")
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

    def configured_callbacks(self) -> list[Any]:
        """The callbacks of ``--trainer.callbacks`` / a config's ``trainer.callbacks``.

        A subclass that passes ``callbacks=`` to ``instantiate_trainer`` replaces them (Lightning
        merges the keyword over the config), so it must pass these along with its own.
        """
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        configured = config.trainer.get("callbacks") or []
        return list(configured) if isinstance(configured, list) else [configured]

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


