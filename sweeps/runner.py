"""Run a sweep's steps one after another: skip finished work, log each process, record progress."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sweeps.plan import Step, fit_state, last_checkpoint, results_path, subprocess_env

STATUS_STYLE = {"done": "green", "skipped": "cyan", "failed": "bold red", "blocked": "yellow",
                "interrupted": "bold red", "planned": "white"}
INTERRUPT_GRACE_S = 60.0  # how long a stopped child may take to save and exit before a kill


@dataclass
class Outcome:
    """What happened to one step."""

    step: Step
    status: str  # done | skipped | failed | blocked (its fit failed) | interrupted | planned
    detail: str
    seconds: float = 0.0


class ProgressRecord:
    """``progress.jsonl``: one JSON object per event, appended (several sweeps may share it)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # None: record nothing (a dry run)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: Step, status: str, detail: str = "", **extra: object) -> None:
        """Append ``{time, experiment, stage, status, detail, log, ...}``."""
        if self.path is None:
            return
        event = {"time": datetime.now(UTC).isoformat(timespec="seconds"),
                 "experiment": step.experiment.name, "stage": step.stage, "status": status,
                 "detail": detail, "log": str(step.log), **extra}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(event) + "\n")


def read_progress(path: Path) -> list[dict[str, object]]:
    """The events of ``progress.jsonl`` in order."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _run_logged(step: Step, command: list[str]) -> int:
    """Run ``command`` with stdout+stderr appended to the step's log; its exit status.

    Ctrl-C reaches the child too (same process group); give it time to stop cleanly (a
    checkpoint half written would not load) before killing it.
    """
    step.log.parent.mkdir(parents=True, exist_ok=True)
    with open(step.log, "a") as fh:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        env_text = " ".join(f"{k}={v}" for k, v in sorted(step.env.items()))
        fh.write(f"\n===== {stamp} {step.experiment.name} {step.stage}\n"
                 f"===== env: {env_text}\n===== {subprocess.list2cmdline(command)}\n")
        fh.flush()
        proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT,
                                env=subprocess_env(step))
        try:
            return proc.wait()
        except KeyboardInterrupt:
            try:
                proc.wait(timeout=INTERRUPT_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise


def _produced(step: Step) -> str | None:
    """What a successful process must have left (DESIGN: a run that produced nothing fails)."""
    expected = last_checkpoint(step.root) if step.stage == "fit" else results_path(step.root)
    return None if expected.is_file() else f"exited 0 but wrote no {expected}"


def _attempt(step: Step, head: str, left: int, *, progress: ProgressRecord, console: Console,
             dry_run: bool, python: str) -> Outcome:
    """Skip, plan or run one step; a failure is returned, not reported (the caller does)."""
    try:
        done, why = step.state()
    except Exception as err:  # e.g. a checkpoint cut short by a kill: this experiment only
        return Outcome(step, "failed", f"cannot read its state ({err}); delete or replace "
                                       f"{last_checkpoint(step.root)}")
    if done:
        progress.write(step, "skipped", why)
        console.print(f"{head}: [cyan]skip[/], {why}", soft_wrap=True)
        return Outcome(step, "skipped", why)
    command = step.command(python)
    if dry_run:
        console.print(f"{head}: would run ({why}):\n  {subprocess.list2cmdline(command)}",
                      soft_wrap=True)
        return Outcome(step, "planned", why)
    if step.stage == "evaluate" and not last_checkpoint(step.root).is_file():
        return Outcome(step, "failed", f"no checkpoint {last_checkpoint(step.root)} to "
                                       "evaluate; run the fit stage first")
    if step.stage == "evaluate":
        try:
            fit_done, fit_why = fit_state(step.root, step.experiment.max_epochs,
                                          step.experiment.max_steps)
        except Exception:  # unreadable: evaluate.py's own error will say why, in the log
            fit_done, fit_why = True, ""
        if not fit_done:  # e.g. --stages evaluate on a fit that was stopped: say so
            why += f"; NOTE the checkpoint is of an unfinished fit ({fit_why.split(':')[0]})"
    console.print(f"{head}: running ({why}); log {step.log}; "
                  f"{left} step{'s' * (left != 1)} after this one", soft_wrap=True)
    progress.write(step, "started", why, command=command)
    start = time.monotonic()
    try:
        code = _run_logged(step, command)
    except KeyboardInterrupt:
        seconds = time.monotonic() - start
        progress.write(step, "interrupted", "Ctrl-C", seconds=round(seconds, 1))
        console.print(f"{head}: [bold red]interrupted[/] after {_duration(seconds)}; run the "
                      f"sweep again to resume (log {step.log})")
        raise
    seconds = time.monotonic() - start
    problem = f"exit status {code}" if code != 0 else _produced(step)
    if problem is not None:
        return Outcome(step, "failed", problem, seconds)
    progress.write(step, "done", why, seconds=round(seconds, 1))
    console.print(f"{head}: [green]done[/] in {_duration(seconds)}")
    return Outcome(step, "done", why, seconds)


def run_steps(steps: Sequence[Step], *, progress: ProgressRecord, console: Console,
              stop_on_failure: bool = False, dry_run: bool = False,
              python: str = sys.executable) -> list[Outcome]:
    """Run ``steps`` in order; finished ones are skipped, a failed fit blocks its evaluation.

    Prints ``[i/n] experiment stage: ...`` per step; returns every step's outcome (steps after a
    stop are ``planned``). Ctrl-C stops the sweep after recording the interrupted step.
    """
    outcomes: list[Outcome] = []
    failed_fits: set[str] = set()
    n = len(steps)
    for i, step in enumerate(steps, 1):
        head = f"[{i}/{n}] {step.experiment.name} {step.stage}"
        if step.experiment.name in failed_fits:
            outcomes.append(Outcome(step, "blocked", "its fit failed"))
            progress.write(step, "blocked", "its fit failed")
            console.print(f"{head}: [yellow]not run[/] (its fit failed)")
            continue
        outcome = _attempt(step, head, n - i, progress=progress, console=console,
                           dry_run=dry_run, python=python)
        outcomes.append(outcome)
        if outcome.status != "failed":
            continue
        progress.write(step, "failed", outcome.detail, seconds=round(outcome.seconds, 1))
        console.print(f"{head}: [bold red]FAILED[/] ({outcome.detail}); log {step.log}",
                      soft_wrap=True)
        tail = _log_tail(step.log) if outcome.seconds > 0 else ""
        if tail:
            console.print(tail, markup=False, highlight=False, soft_wrap=True)
        if step.stage == "fit":
            failed_fits.add(step.experiment.name)
        if stop_on_failure:
            console.print("[bold red]stopping[/] (--stop_on_failure); later steps not run")
            outcomes += [Outcome(s, "planned", "not run: the sweep stopped") for s in steps[i:]]
            break
    return outcomes


def summary_table(outcomes: Sequence[Outcome]) -> Table:
    """experiment | fit | evaluate | log of the failures."""
    table = Table(title="sweep summary")
    stages = list(dict.fromkeys(o.step.stage for o in outcomes))
    for name in ("experiment", *stages, "detail"):
        table.add_column(name)
    rows: dict[str, dict[str, Outcome]] = {}
    for o in outcomes:
        rows.setdefault(o.step.experiment.name, {})[o.step.stage] = o
    for name, by_stage in rows.items():
        cells = []
        for stage in stages:
            o = by_stage.get(stage)
            cells.append("" if o is None else f"[{STATUS_STYLE[o.status]}]{o.status}[/]")
        bad = [o for o in by_stage.values() if o.status in ("failed", "interrupted")]
        detail = "; ".join(f"{o.step.stage}: {o.detail} (log {o.step.log})" for o in bad)
        table.add_row(name, *cells, detail)
    return table
