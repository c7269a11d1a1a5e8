"""The run-output layout: one folder per experiment, one numbered folder per run of a stage.

``E = trainer.default_root_dir`` (the configs use ``outputs/<experiment>``)::

    E/checkpoints/last.ckpt, best-*.ckpt                 train.py fit
    E/<stage>/version_<N>/config.yaml, metrics.csv, ...  stage in fit, validate, test, evaluate
    E/wandb/                                             W&B run files

``N`` is one more than the highest ``version_*`` under ``E/<stage>``. Nothing is created when the
number is chosen: the loggers and the config callback create the folder when they first write,
which Lightning lets happen only after its "pre_setup" barrier, that is after every DDP rank has
chosen its number from the same disk state (Lightning's own launcher starts ranks 1.. after rank 0
has parsed; torchrun and SLURM start all at once). ``agree`` then makes rank zero's choice
everyone's, so the ranks agree even if the disk changed in between. A try that fails leaves no
folder behind that holds only its start-up files (``remove_if_unused``).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from errors import ConfigError

STAGES = ("fit", "validate", "test", "predict", "evaluate")
START_UP_FILES = frozenset({"config.yaml", "hparams.yaml"})
_VERSION = re.compile(r"version_(\d+)")


@dataclass(frozen=True)
class RunDir:
    """``root/stage/version_<version>``; ``root`` is the experiment folder ``E``."""

    root: Path
    stage: str
    version: int

    @property
    def path(self) -> Path:
        """The run's own folder."""
        return self.root / self.stage / f"version_{self.version}"

    @property
    def experiment(self) -> str:
        """The experiment name: the last part of ``E`` (``outputs/cub200_vgg16_bn`` -> ...)."""
        return self.root.resolve().name

    @property
    def wandb_name(self) -> str:
        """``<experiment>/<stage>/version_<N>``, the W&B run name."""
        return f"{self.experiment}/{self.stage}/version_{self.version}"

    @property
    def checkpoints(self) -> Path:
        """``E/checkpoints`` (train.py fit writes there)."""
        return self.root / "checkpoints"


def next_version(root: Path, stage: str) -> int:
    """One more than the highest ``version_<N>`` folder in ``root/stage`` (0 if there is none)."""
    folder = Path(root) / stage
    versions = [int(m.group(1)) for p in folder.glob("version_*")
                if p.is_dir() and (m := _VERSION.fullmatch(p.name))]
    return max(versions, default=-1) + 1


def new_run_dir(root: str | Path, stage: str) -> RunDir:
    """The next unused run folder of ``stage`` under ``root`` (not created)."""
    if stage not in STAGES:
        raise ConfigError(f"stage {stage!r} is not one of {STAGES}")
    return RunDir(Path(root), stage, next_version(Path(root), stage))


def agree(run: RunDir, broadcast: object) -> RunDir:
    """Rank zero's ``run`` on every rank. ``broadcast``: ``trainer.strategy.broadcast`` (a
    collective: call it on every rank)."""
    version = broadcast(run.version)  # type: ignore[operator]
    return run if version == run.version else replace(run, version=int(version))


def remove_if_unused(run: RunDir) -> bool:
    """Delete ``run.path`` if it holds nothing but start-up files (a try that failed early).

    Returns whether it was removed. A folder with logged metrics or results is kept.
    """
    path = run.path
    if not path.is_dir():
        return False
    files = [p for p in path.rglob("*") if p.is_file()]
    if any(p.name not in START_UP_FILES or p.parent != path for p in files):
        return False
    shutil.rmtree(path, ignore_errors=True)
    stage_dir = path.parent
    if stage_dir.is_dir() and not any(stage_dir.iterdir()):
        stage_dir.rmdir()
    return True


def existing(paths: list[Path]) -> list[Path]:
    """The entries of ``paths`` that exist (for messages that name only what was written)."""
    return [p for p in paths if p.exists()]
