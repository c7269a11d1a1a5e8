"""What a sweep runs: the fit and evaluate commands of each experiment and when they are done.

Layout per experiment (the run-output contract, ``E = <out>/<experiment>``): the fit writes
``E/checkpoints/last.ckpt``; the sweep's evaluation writes into ``E/evaluate/sweep/``
(``--evaluation.output_dir``), so finding it does not depend on version numbering. With
``--seeds 0 1 2`` each experiment runs once per seed, in ``E = <out>/<experiment>_seed<k>`` with
``--seed_everything k`` for both commands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from errors import ConfigError
from sweeps.experiments import REPO, Experiment, option_name, option_values, split_overrides

STAGES = ("fit", "evaluate")
EVAL_SUBDIR = Path("evaluate") / "sweep"
# Options the sweep sets itself, per experiment; given as overrides they would be wrong for all
# but one experiment (or break resuming), so they are refused with the sweep option to use.
RESERVED = {
    "trainer.default_root_dir": "--out",
    "data.root": "--data_root",
    "data.init_args.root": "--data_root",
    "ckpt_path": "(the sweep resumes from and evaluates <out>/<experiment>/checkpoints/last.ckpt)",
    "evaluation.output_dir": "(the sweep writes <out>/<experiment>/evaluate/sweep)",
}


def experiment_dir(out: Path, experiment: Experiment) -> Path:
    """``E``: the experiment's ``trainer.default_root_dir``."""
    return out / experiment.name


def last_checkpoint(root: Path) -> Path:
    """``E/checkpoints/last.ckpt`` (written every epoch by train.py)."""
    return root / "checkpoints" / "last.ckpt"


def results_path(root: Path) -> Path:
    """Where the sweep's evaluation of ``E`` writes results.json."""
    return root / EVAL_SUBDIR / "results.json"


@dataclass(frozen=True)
class FitProgress:
    """How far the fit in a checkpoint got."""

    epochs: int  # epochs whose training batches all ran
    global_step: int


def fit_progress(ckpt: Path) -> FitProgress | None:
    """Read the progress of ``ckpt`` (None when there is none); tensors stay memory-mapped.

    Lightning saves ``epoch`` = the index of the epoch being run and, in its loop state,
    ``fit_loop.epoch_progress.current.processed`` = epochs whose batches all ran; the latter is
    right for checkpoints taken at an epoch's end and in its middle alike.
    """
    if not ckpt.is_file():
        return None
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    try:
        epochs = int(state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
    except (KeyError, TypeError):
        epochs = int(state.get("epoch", -1)) + 1
    return FitProgress(epochs=epochs, global_step=int(state.get("global_step", 0)))


def fit_finished(progress: FitProgress | None, max_epochs: int | None, max_steps: int) -> bool:
    """Whether the fit reached a limit (max_epochs, or max_steps when that is set)."""
    if progress is None:
        return False
    if max_steps > 0 and progress.global_step >= max_steps:
        return True
    return max_epochs is not None and progress.epochs >= max_epochs


def fit_state(root: Path, max_epochs: int | None, max_steps: int) -> tuple[bool, str]:
    """``(done, why)`` for the fit of ``E = root``."""
    ckpt = last_checkpoint(root)
    progress = fit_progress(ckpt)
    limit = f"{max_epochs}" if max_epochs is not None else "no epoch limit"
    if progress is None:
        return False, f"no {ckpt}"
    where = f"epoch {progress.epochs}/{limit}, step {progress.global_step}"
    if fit_finished(progress, max_epochs, max_steps):
        return True, f"finished ({where})"
    return False, f"interrupted at {where}: resuming from {ckpt}"


def evaluate_state(root: Path) -> tuple[bool, str]:
    """``(done, why)``: results.json exists and is not older than the checkpoint it evaluates."""
    results, ckpt = results_path(root), last_checkpoint(root)
    if not results.is_file():
        return False, f"no {results}"
    if ckpt.is_file() and results.stat().st_mtime < ckpt.stat().st_mtime:
        return False, f"{results} is older than {ckpt}: evaluating again"
    return True, f"done ({results})"


@dataclass
class Step:
    """One command of a sweep: ``argv`` (after the python interpreter), its log and env."""

    experiment: Experiment
    stage: str
    root: Path
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    def state(self) -> tuple[bool, str]:
        """``(done, why)`` right now, from the files on disk."""
        if self.stage == "fit":
            return fit_state(self.root, self.experiment.max_epochs, self.experiment.max_steps)
        return evaluate_state(self.root)

    def command(self, python: str = sys.executable) -> list[str]:
        """The full command line; a fit with a checkpoint on disk resumes from it."""
        argv = [python, *self.argv]
        ckpt = last_checkpoint(self.root)
        if self.stage == "fit" and ckpt.is_file():
            argv += ["--ckpt_path", str(ckpt)]
        return argv


def route_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split overrides into (both commands, evaluate.py only): ``--evaluation.*`` is evaluate's.

    Raises ValueError for an option the sweep sets itself.
    """
    both: list[str] = []
    evaluate_only: list[str] = []
    for group in split_overrides(overrides):
        name = option_name(group)
        if name in RESERVED:
            raise ConfigError(f"sweep: --{name} is set by the sweep for each experiment; use "
                              f"{RESERVED[name]} instead")
        (evaluate_only if name.startswith("evaluation.") else both).extend(group)
    return both, evaluate_only


def wandb_env(sweep_name: str, stage: str, experiment: Experiment) -> dict[str, str]:
    """The W&B variables the CLIs honour: the sweep as group, the stage, dataset/backbone tags."""
    return {"WANDB_RUN_GROUP": sweep_name, "WANDB_JOB_TYPE": stage,
            "WANDB_TAGS": ",".join(experiment.tags)}


def seeded(experiments: Sequence[Experiment], seeds: Sequence[int] | None
           ) -> list[tuple[Experiment, list[str]]]:
    """Each experiment with its seed options: as it is without ``seeds``, else one copy per
    seed named ``<experiment>_seed<k>`` with ``--seed_everything k``."""
    if not seeds:
        return [(e, []) for e in experiments]
    if len(set(seeds)) != len(seeds) or any(k < 0 for k in seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: give distinct seeds >= 0")
    return [(replace(e, name=f"{e.name}_seed{k}"), ["--seed_everything", str(k)])
            for e in experiments for k in seeds]


def plan_steps(experiments: Sequence[Experiment], *, out: Path, data_root: Path | None,
               overrides: Sequence[str], sweep_name: str, logs: Path,
               stages: Sequence[str] = STAGES, seeds: Sequence[int] | None = None,
               data_roots: Mapping[str, Path] | None = None) -> list[Step]:
    """Fit then evaluate for each experiment (and seed), with the sweep's paths and the user's
    overrides.

    The sweep's own options come last so an override cannot move one experiment's outputs
    onto another's.
    """
    both, evaluate_only = route_overrides(overrides)
    if seeds and any(option_name(g) == "seed_everything" for g in split_overrides(overrides)):
        raise ConfigError("sweep: --seed_everything and --seeds together; --seeds sets "
                          "--seed_everything for each run")
    steps: list[Step] = []
    for e, seed_options in seeded(experiments, seeds):
        root = experiment_dir(out, e)
        own = ["--trainer.default_root_dir", str(root), *seed_options]
        root_of_data = (data_roots or {}).get(e.dataset.key, data_root)
        if e.dataset.folder is not None and root_of_data is not None:
            own += ["--data.root", str(root_of_data)]
        for stage in (s for s in STAGES if s in stages):
            if stage == "fit":
                argv = [str(REPO / "train.py"), "fit", "--config", str(e.config), *both, *own]
            else:
                argv = [str(REPO / "evaluate.py"), "--config", str(e.config), *both,
                        *evaluate_only, *own, "--ckpt_path", str(last_checkpoint(root)),
                        "--evaluation.output_dir", str(root / EVAL_SUBDIR),
                        # the sweep owns the folder: a re-run replaces what an earlier try left
                        "--evaluation.overwrite", "true"]
            steps.append(Step(experiment=e, stage=stage, root=root, argv=argv,
                              log=logs / f"{e.name}.{stage}.log",
                              env=wandb_env(sweep_name, stage, e)))
    return steps


def subprocess_env(step: Step) -> dict[str, str]:
    """The environment of a step's process: ours plus the W&B grouping."""
    return {**os.environ, **step.env}


def uses_wandb(overrides: Sequence[str]) -> bool:
    """Whether the overrides add a W&B logger (a ``--config`` file or a logger argument naming
    ``WandbLogger``); then the report also logs its tables to a W&B summary run."""
    for group in split_overrides(overrides):
        name, values = option_name(group), option_values(group)
        texts = values
        if name == "config":
            texts = [Path(v).read_text() for v in values if Path(v).is_file()]
        if any("wandblogger" in text.lower() for text in texts):
            return True
    return False
