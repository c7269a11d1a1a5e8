"""Loggers: a W&B logger that stays offline unless the user configured W&B, and config saving."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

OFFLINE_MODES = ("offline", "dryrun", "disabled")


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


class OfflineWandbLogger(WandbLogger):
    """``WandbLogger`` that runs offline unless ``WANDB_MODE`` is set or a W&B login exists.

    Offline runs land in ``<save_dir>/wandb/offline-run-*``; upload them later with
    ``wandb sync <that folder>``. ``offline`` given explicitly wins.
    """

    def __init__(self, save_dir: str = "outputs", project: str = "whynot", name: str | None = None,
                 offline: bool | None = None, log_model: bool = False, **kwargs: Any) -> None:
        if offline is None:
            offline = not wandb_online_configured()
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(save_dir=save_dir, project=project, name=name, offline=offline,
                         log_model=log_model, **kwargs)


class SaveConfigToLoggers(SaveConfigCallback):
    """Saves the CLI config in the log dir (Lightning's default) and into every W&B run."""

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
