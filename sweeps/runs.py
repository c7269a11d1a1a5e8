"""Finished evaluations on disk: results.json and what run they come from.

What a run is (dataset, backbone, protocol) comes from ``run.json`` beside results.json when it
is there (the run-output contract); else from the run's LightningCLI ``config.yaml`` (beside it,
or the newest one in the experiment folder ``E``); else from the experiment's name
``<dataset>_<backbone>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from results.files import RESULTS_FILE, RUN_FILE, read_results_json, read_run_json
from sweeps.experiments import DatasetInfo, dataset_by, dataset_of_experiment_name


@dataclass
class Run:
    """One evaluation: its results and where they come from."""

    results_path: Path
    results: dict[str, float]
    experiment: str
    dataset: DatasetInfo | None
    dataset_label: str  # the registry's short label, or what the run called its dataset
    backbone: str
    protocol: int | None  # run.json's whynot_protocol; None when there is no run.json
    finished: str  # ISO time (run.json's, else the file's mtime)
    info_from: str  # "run.json" | "config.yaml <path>" | "experiment name"
    problems: list[str] = field(default_factory=list)
    seed: int | None = None  # the sweep's --seeds: E = <out>/<experiment>_seed<k>
    # run.json's record of what was run (its "undefined": {key: reason}, "layer_hooked", ...)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How the report names the run: ``experiment (path)``."""
        return f"{self.experiment} ({self.results_path})"


def undefined_problem(run: Run, bad: list[str]) -> str:
    """The report's line for a run's undefined (null) values, with run.json's recorded reasons
    (older runs recorded none: then it says so rather than guess)."""
    recorded = run.meta.get("undefined")
    reasons = recorded if isinstance(recorded, dict) else {}
    counts: dict[str, int] = {}
    for key in bad:
        why = str(reasons.get(key, "reason not recorded (run.json of an older whynot)"))
        counts[why] = counts.get(why, 0) + 1
    why_text = "; ".join(f"{why}: {n}" for why, n in counts.items())
    return f"{len(bad)} undefined values (null), e.g. {bad[0]} ({why_text})"


@dataclass
class Unreadable:
    """A folder or file given to the report that holds no usable run, and why."""

    path: Path
    reason: str


def _experiment_root(results_path: Path) -> Path:
    """``E`` for ``E/evaluate/<anything>/results.json``, else the results' folder."""
    parts = results_path.parent.parts
    if "evaluate" in parts:
        i = len(parts) - 1 - parts[::-1].index("evaluate")
        return Path(*parts[:i]) if i > 0 else results_path.parent
    return results_path.parent


def _config_yaml(results_path: Path) -> Path | None:
    """The LightningCLI config of the run: beside results.json, else the newest under ``E``
    (evaluation configs first; W&B's own run folders are skipped)."""
    beside = results_path.parent / "config.yaml"
    if beside.is_file():
        return beside
    root = _experiment_root(results_path)
    found = [p for p in root.rglob("config.yaml") if "wandb" not in p.relative_to(root).parts]
    if not found:
        return None
    return max(found, key=lambda p: ("evaluate" in p.relative_to(root).parts, p.stat().st_mtime))


def _from_config(path: Path) -> tuple[str | None, str | None]:
    """(data class path, model.backbone) of a saved CLI config."""
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None, None
    data, model = cfg.get("data") or {}, cfg.get("model") or {}
    class_path = data.get("class_path") if isinstance(data, dict) else None
    return class_path, model.get("backbone") if isinstance(model, dict) else None


def seed_of(experiment: str) -> tuple[str, int | None]:
    """``("cub200_alexnet", 2)`` for ``cub200_alexnet_seed2`` (a sweep with --seeds), else
    ``(experiment, None)``."""
    found = re.fullmatch(r"(.+)_seed(\d+)", experiment)
    return (found[1], int(found[2])) if found else (experiment, None)


def load_run(results_path: Path) -> Run | Unreadable:
    """Read one results.json and identify its run (and its seed, from the folder name)."""
    run = _load_run(results_path)
    if isinstance(run, Run):
        run.seed = seed_of(_experiment_root(results_path).name)[1]
        if run.seed is None:
            run.seed = seed_of(run.experiment)[1]
    return run


def _load_run(results_path: Path) -> Run | Unreadable:
    try:
        results = read_results_json(results_path)
    except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
        return Unreadable(results_path, f"cannot read results.json: {err}")
    root = _experiment_root(results_path)
    experiment = root.name
    mtime = datetime.fromtimestamp(results_path.stat().st_mtime, UTC).isoformat(
        timespec="seconds")
    run_json = results_path.parent / RUN_FILE
    problems: list[str] = []
    if run_json.is_file():
        try:
            meta: dict[str, Any] = read_run_json(run_json)
        except (OSError, ValueError) as err:
            return Unreadable(results_path, f"cannot read {run_json}: {err}")
        experiment = str(meta.get("experiment") or experiment)
        dataset = (dataset_by(name=meta.get("dataset"))
                   or dataset_by(class_path=str(meta.get("datamodule") or "")))
        label = dataset.short if dataset else str(meta.get("dataset") or "?")
        protocol = meta.get("whynot_protocol")
        if not isinstance(protocol, int):
            problems.append(f"run.json has no integer whynot_protocol ({protocol!r})")
            protocol = None
        return Run(results_path, results, experiment, dataset, label,
                   str(meta.get("backbone") or "?"), protocol,
                   str(meta.get("finished") or mtime), "run.json", problems, meta=meta)
    config = _config_yaml(results_path)
    class_path, backbone = _from_config(config) if config else (None, None)
    dataset = dataset_by(class_path=class_path) if class_path else None
    info_from = f"config.yaml {config}" if config and (dataset or backbone) else ""
    base = seed_of(experiment)[0]
    by_name = dataset_of_experiment_name(base)
    if dataset is None:
        dataset = by_name
    if backbone is None and by_name is not None and base != by_name.key:
        backbone = base[len(by_name.key) + 1:]
    if not info_from:
        info_from = "experiment name"
    if dataset is None or backbone is None:
        return Unreadable(results_path, f"cannot tell the dataset and backbone of {experiment!r}:"
                          " no run.json, no config.yaml with data.class_path and model.backbone,"
                          " and the folder name is not <dataset>_<backbone>")
    return Run(results_path, results, experiment, dataset, dataset.short, backbone, None, mtime,
               info_from, problems)


def find_results(paths: Iterable[Path]) -> tuple[list[Path], list[Unreadable]]:
    """results.json files in (or under) each path; paths without any are reported."""
    found: list[Path] = []
    missing: list[Unreadable] = []
    for path in paths:
        path = Path(path)
        if path.is_file() and path.name == RESULTS_FILE:
            hits = [path]
        elif path.is_dir():
            hits = sorted(p for p in path.rglob(RESULTS_FILE)
                          if "wandb" not in p.relative_to(path).parts)
        else:
            hits = []
        if not hits:
            why = "does not exist" if not path.exists() else "holds no results.json"
            missing.append(Unreadable(path, f"{why} (evaluation not run or failed?)"))
        found += [h for h in hits if h not in found]
    return found, missing


@dataclass
class Collection:
    """The runs of a report: the ones in the tables and the ones reported but left out."""

    runs: list[Run]
    left_out: list[tuple[Run | Unreadable, str]]
    protocol: int | None


def collect(paths: Sequence[Path], protocol: int | None = None) -> Collection:
    """Read every run; keep one per (backbone, dataset) of the current protocol.

    ``protocol``: the whynot_protocol the tables are for (default: the newest among the runs).
    Runs of another protocol and older runs of the same dataset and backbone are left out with
    the reason; runs without run.json (older whynot) are kept, flagged as of unknown protocol.
    """
    files, left = find_results(paths)
    left_out: list[tuple[Run | Unreadable, str]] = [(u, u.reason) for u in left]
    runs: list[Run] = []
    for f in files:
        run = load_run(f)
        if isinstance(run, Unreadable):
            left_out.append((run, run.reason))
        else:
            runs.append(run)
    versions = {r.protocol for r in runs if r.protocol is not None}
    current = protocol if protocol is not None else (max(versions) if versions else None)
    kept: list[Run] = []
    for run in runs:
        if run.protocol is not None and current is not None and run.protocol != current:
            left_out.append((run, f"whynot_protocol {run.protocol}, not {current}: its numbers "
                                  "come from another perturbation protocol"))
        else:
            if run.protocol is None and current is not None:
                run.problems.append("no run.json: protocol version unknown")
            kept.append(run)
    newest: dict[tuple[str, str, int | None], Run] = {}
    for run in sorted(kept, key=lambda r: r.finished):
        key = (run.backbone, run.dataset_label, run.seed)
        if key in newest:
            old = newest[key]
            seed = "" if run.seed is None else f" / seed {run.seed}"
            left_out.append((old, f"an older run of {run.dataset_label} / {run.backbone}{seed}; "
                                  f"the tables use {run.results_path}"))
        newest[key] = run
    for run in newest.values():
        bad = sorted(k for k, v in run.results.items() if math.isnan(v))
        if bad:
            run.problems.append(undefined_problem(run, bad))
    return Collection(list(newest.values()), left_out, current)
