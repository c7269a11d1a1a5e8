"""Loggers: W&B offline unless configured, loggers pointed at the run folder, config saving.

The logger presets (``configs/logger/*.yaml``) cannot know the experiment, so the CLIs place every
logger with ``configure_loggers``: CSV (always there, first, so ``trainer.log_dir`` is the run
folder) and TensorBoard write to ``E/<stage>/version_<N>``; W&B writes to ``E/wandb`` as run
``<experiment>/<stage>/version_<N>`` in group ``<experiment>`` with job type ``<stage>``, unless
``WANDB_NAME`` / ``WANDB_RUN_GROUP`` / ``WANDB_JOB_TYPE`` / ``WANDB_TAGS`` are set: they win.
"""

from __future__ import annotations

import importlib
import inspect
import netrc
import os
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

from cli.run_dir import RunDir, agree

OFFLINE_MODES = ("offline", "dryrun", "disabled")
CSV_LOGGER = "lightning.pytorch.loggers.CSVLogger"
# W&B init argument -> the environment variable that overrides it (the sweep sets them).
WANDB_ENV = {"name": "WANDB_NAME", "group": "WANDB_RUN_GROUP", "job_type": "WANDB_JOB_TYPE",
             "tags": "WANDB_TAGS"}


def wandb_online_configured() -> bool:
    """True when the user asked for online W&B: ``WANDB_MODE``, an API key or a netrc login."""
    mode = os.environ.get("WANDB_MODE")
    if mode is not None:
        return mode not in OFFLINE_MODES
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_identity(key: str, value: Any) -> Any:
    """``value`` for W&B's ``key`` (name, group, job_type, tags) unless its variable is set.

    Read here rather than left to ``wandb.init``: W&B reads the environment once per process,
    so a second run in the same process (a sweep calling ``main``) would miss a change.
    ``WANDB_TAGS`` is comma-separated.
    """
    env = os.environ.get(WANDB_ENV[key])
    if not env:
        return value
    return [t.strip() for t in env.split(",") if t.strip()] if key == "tags" else env


class OfflineWandbLogger(WandbLogger):
    """``WandbLogger`` that runs offline unless ``WANDB_MODE`` is set or a W&B login exists.

    Offline runs land in ``<save_dir>/wandb/offline-run-*``; upload them later with
    ``wandb sync <that folder>``. ``offline`` given explicitly wins. ``name``, ``group``,
    ``job_type`` and ``tags`` give way to their ``WANDB_*`` environment variables. W&B's quiet
    setting is on unless ``settings`` or ``WANDB_QUIET`` say otherwise.
    """

    def __init__(self, save_dir: str = "outputs", project: str = "whynot", name: str | None = None,
                 offline: bool | None = None, log_model: bool = False, group: str | None = None,
                 job_type: str | None = None, tags: list[str] | None = None,
                 **kwargs: Any) -> None:
        if offline is None:
            offline = not wandb_online_configured()
        if kwargs.get("settings") is None and "WANDB_QUIET" not in os.environ:
            import wandb

            # The run's summary would repeat every logged key (hundreds after an evaluation)
            # on the console; WANDB_QUIET=false brings it back.
            kwargs["settings"] = wandb.Settings(quiet=True)
        given = {"name": name, "group": group, "job_type": job_type, "tags": tags}
        run_id = {k: wandb_identity(k, v) for k, v in given.items()}
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(save_dir=save_dir, project=project, offline=offline,
                         log_model=log_model, **run_id, **kwargs)
        # Lightning always passes `anonymous` (None when unset) and W&B then warns on every run
        # that the setting has no effect.
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


def resolve_class(class_path: str) -> type | None:
    """The class a config's ``class_path`` names, or None when it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def configure_loggers(logger: Any, run: RunDir) -> Any:
    """The ``trainer.logger`` config with every logger writing where ``run`` says.

    ``None``/``True`` -> one CSV logger; ``False`` stays ``False``; a list gets a CSV logger in
    front unless it has one (so the first logger, whose folder Lightning calls ``log_dir``, is the
    run folder).
    """
    if logger is False:
        return False
    csv = Namespace(class_path=CSV_LOGGER, init_args=Namespace())
    if logger is None or logger is True:
        entries = [csv]
    else:
        entries = list(logger) if isinstance(logger, list) else [logger]
        csv_first = [e for e in entries if _is(e, CSVLogger)] or [csv]
        entries = [*csv_first[:1], *(e for e in entries if e is not csv_first[0])]
    for entry in entries:
        args = entry.get("init_args")
        if args is None:
            args = entry["init_args"] = Namespace()
        if _is(entry, WandbLogger):
            args["save_dir"] = str(run.root)
            values = {"name": run.wandb_name, "group": run.experiment, "job_type": run.stage}
            accepted = inspect.signature(resolve_class(entry.class_path).__init__).parameters
            for key, value in values.items():
                if key in accepted:  # a plain WandbLogger takes no group / job_type
                    args[key] = wandb_identity(key, value)
        elif _is(entry, CSVLogger) or _is(entry, TensorBoardLogger):
            args["save_dir"] = str(run.root)
            args["name"] = run.stage
            args["version"] = run.version
    return entries


def _is(entry: Any, cls: type) -> bool:
    found = resolve_class(str(entry.get("class_path", ""))) if isinstance(entry, Namespace) \
        else None
    return isinstance(found, type) and issubclass(found, cls)


def wandb_run_notes(loggers: list[Any]) -> list[str]:
    """One line per live W&B run: where its files are and, offline, how to upload them."""
    notes = []
    for logger in loggers:
        run = getattr(logger, "_experiment", None) if isinstance(logger, WandbLogger) else None
        settings = getattr(run, "settings", None)
        if settings is None:
            continue
        folder = Path(settings.sync_dir)
        if settings._offline:
            notes.append(f"W&B run {run.name} (offline): {folder}; upload it with "
                         f"`wandb sync {folder}`")
        else:
            notes.append(f"W&B run {run.name}: {getattr(run, 'url', None) or folder}")
    return notes


def finish_wandb_runs(loggers: list[Any], exit_code: int = 0) -> None:
    """Finish the W&B runs these loggers started (only rank zero starts one)."""
    for logger in loggers:
        run = getattr(logger, "_experiment", None) if isinstance(logger, WandbLogger) else None
        if run is not None and hasattr(run, "finish"):
            run.finish(exit_code=exit_code)


class SaveConfigToLoggers(SaveConfigCallback):
    """Saves the CLI config as ``config.yaml`` in the run folder and into every W&B run.

    ``run``: the run folder the CLI chose (``None``: Lightning's behaviour, ``trainer.log_dir``).
    In ``setup`` (every rank) the ranks adopt rank zero's run folder; only rank zero writes.
    """

    def __init__(self, *args: Any, run: RunDir | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.run = run

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Agree on the run folder (a collective on every rank), then write on rank zero."""
        if self.run is None:
            super().setup(trainer, pl_module, stage)
            return
        if self.already_saved:
            return
        self.run = agree(self.run, trainer.strategy.broadcast)
        if trainer.is_global_zero:
            self.run.path.mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, str(self.run.path / self.config_filename),
                             skip_none=False, overwrite=True, multifile=self.multifile)
            self.save_config(trainer, pl_module, stage)
        self.already_saved = True

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Rank zero only: attach the resolved config file and its values to each W&B run."""
        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            run_dir = Path(logger.experiment.dir)
            path = run_dir / self.config_filename
            self.parser.save(self.config, str(path), skip_none=False, overwrite=True)
            logger.experiment.save(str(path), base_path=str(run_dir), policy="now")
            logger.experiment.config.update({"cli": self.config.as_dict()},
                                            allow_val_change=True)
