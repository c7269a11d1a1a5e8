"""``--slurm``: a SLURM array script (one task per experiment) and a plain bash script of the
same commands. Both skip finished work and resume interrupted fits exactly as the local sweep
does (``python -m sweeps check``), log each command to the same files and append to the same
``progress.jsonl``."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sweeps.experiments import REPO, Experiment, option_name, split_overrides
from sweeps.plan import Step


@dataclass(frozen=True)
class SlurmResources:
    """``#SBATCH`` settings of each array task (one experiment)."""

    partition: str | None = None
    account: str | None = None
    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_gpu: int = 8
    mem: str | None = None  # e.g. "64G" (per node)
    time: str = "2-00:00:00"
    max_parallel: int | None = None  # at most this many tasks at once (array "%N")
    extra: Sequence[str] = field(default_factory=tuple)  # raw "--key=value" sbatch options
    setup: Sequence[str] = field(default_factory=tuple)  # shell lines run before the commands


def allocation_overrides(res: SlurmResources, overrides: Sequence[str]) -> list[str]:
    """Trainer settings that match the allocation, for those the user did not set.

    Lightning under SLURM requires ``devices`` = tasks per node and ``num_nodes`` = nodes.
    """
    given = {option_name(g) for g in split_overrides(overrides)}
    extra: list[str] = []
    if "trainer.devices" not in given:
        extra += ["--trainer.devices", str(res.gpus_per_node)]
    if "trainer.num_nodes" not in given:
        extra += ["--trainer.num_nodes", str(res.nodes)]
    if "trainer.accelerator" not in given and res.gpus_per_node > 0:
        extra += ["--trainer.accelerator", "gpu"]
    if "trainer.strategy" not in given and res.gpus_per_node * res.nodes > 1:
        extra += ["--trainer.strategy", "ddp"]
    return extra


def _q(value: object) -> str:
    return shlex.quote(str(value))


HELPERS = r'''
now() { date -u +%Y-%m-%dT%H:%M:%S+00:00; }

record() {  # EXPERIMENT STAGE STATUS DETAIL LOG: one line of progress.jsonl
  local detail=${4//\"/\'}
  local fmt='{"time": "%s", "experiment": "%s", "stage": "%s", "status": "%s", '
  fmt+='"detail": "%s", "log": "%s", "runner": "%s"}\n'
  printf "$fmt" "$(now)" "$1" "$2" "$3" "$detail" "$5" "$RUNNER" >> "$SWEEP_DIR/progress.jsonl"
}

# step EXPERIMENT STAGE ROOT LOG TAGS [CHECK OPTIONS] -- COMMAND...
# Skips the stage when `python -m sweeps check` says it is done; a fit with a checkpoint on disk
# resumes from it; stdout and stderr go to LOG.
step() {
  local exp=$1 stage=$2 root=$3 log=$4 tags=$5 why
  shift 5
  local check=()
  while [ "$1" != "--" ]; do check+=("$1"); shift; done
  shift
  if why=$("$PYTHON" -m sweeps check "$stage" "$root" "${check[@]}"); then
    echo "$exp $stage: skip, $why"
    record "$exp" "$stage" skipped "$why" "$log"
    return 0
  fi
  if [ "$stage" = fit ] && [ -f "$root/checkpoints/last.ckpt" ]; then
    set -- "$@" --ckpt_path "$root/checkpoints/last.ckpt"
  fi
  mkdir -p "$(dirname "$log")"
  echo "$exp $stage: running ($why); log $log"
  record "$exp" "$stage" started "$why" "$log"
  {
    printf '\n===== %s %s %s\n' "$(now)" "$exp" "$stage"
    printf '===== env: WANDB_JOB_TYPE=%s WANDB_RUN_GROUP=%s WANDB_TAGS=%s\n' \
      "$stage" "$WANDB_RUN_GROUP" "$tags"
    printf '===== %s\n' "$*"
  } >> "$log"
  local start=$SECONDS
  if WANDB_JOB_TYPE=$stage WANDB_TAGS=$tags "$@" >> "$log" 2>&1; then
    echo "$exp $stage: done in $((SECONDS - start)) s"
    record "$exp" "$stage" done "$why" "$log"
  else
    local code=$?
    echo "$exp $stage: FAILED (exit status $code); log $log" >&2
    tail -n 15 "$log" >&2
    record "$exp" "$stage" failed "exit status $code" "$log"
    return 1
  fi
}
'''


def _task(index: int, steps: Sequence[Step]) -> str:
    e: Experiment = steps[0].experiment
    lines = [f"task_{index}() {{  # {e.name}: {e.dataset.key}, {e.backbone}"]
    for s in steps:
        check = []
        if s.stage == "fit":
            max_epochs = -1 if e.max_epochs is None else e.max_epochs
            check = ["--max_epochs", str(max_epochs), "--max_steps", str(e.max_steps)]
        head = " ".join(_q(v) for v in (e.name, s.stage, s.root, s.log, s.env["WANDB_TAGS"],
                                        *check))
        command = " ".join(_q(a) for a in s.argv)
        lines.append(f'  step {head} -- \\\n    "${{LAUNCH[@]}}" "$PYTHON" {command} || return 1')
    lines.append("}")
    return "\n".join(lines)


def _common(steps: Sequence[Step], *, sweep_dir: Path, sweep_name: str, launch: str,
            runner: str, setup: Sequence[str]) -> tuple[str, list[str]]:
    """The shared body: settings, helpers, one function per experiment; and the names."""
    by_experiment: dict[str, list[Step]] = {}
    for s in steps:
        by_experiment.setdefault(s.experiment.name, []).append(s)
    names = list(by_experiment)
    body = [
        "set -o pipefail",
        f"cd {_q(Path.cwd())}",
        f'export PYTHONPATH={_q(REPO)}${{PYTHONPATH:+:$PYTHONPATH}}',
        f'PYTHON=${{PYTHON:-{_q(sys.executable)}}}',
        f"LAUNCH=({launch})",
        f"RUNNER={runner}",
        f"SWEEP_DIR={_q(sweep_dir)}",
        f"export WANDB_RUN_GROUP={_q(sweep_name)}",
        'mkdir -p "$SWEEP_DIR/logs"',
        *setup,
        HELPERS,
        *(_task(i, by_experiment[n]) + "\n" for i, n in enumerate(names)),
    ]
    return "\n".join(body), names


def report_command(report_dirs: Sequence[Path], sweep_dir: Path, sweep_name: str,
                   wandb: bool) -> list[str]:
    """``python -m sweeps report`` over the sweep's evaluation folders (after ``$PYTHON``)."""
    cmd = ["-m", "sweeps", "report", *map(str, report_dirs), "--out", str(sweep_dir),
           "--name", sweep_name]
    return [*cmd, "--wandb"] if wandb else cmd


def slurm_script(steps: Sequence[Step], res: SlurmResources, *, sweep_dir: Path,
                 sweep_name: str, report: Sequence[str]) -> str:
    """The SLURM array script: task i runs experiment i's stages (``srun`` per command)."""
    body, names = _common(steps, sweep_dir=sweep_dir, sweep_name=sweep_name, launch="srun",
                          runner="slurm", setup=res.setup)
    array = f"0-{len(names) - 1}" + (f"%{res.max_parallel}" if res.max_parallel else "")
    sbatch = [
        f"--job-name=whynot-{sweep_name}", f"--array={array}", f"--nodes={res.nodes}",
        f"--ntasks-per-node={max(res.gpus_per_node, 1)}", f"--cpus-per-task={res.cpus_per_gpu}",
        f"--time={res.time}", f"--output={sweep_dir.resolve() / 'logs' / 'slurm-%A_%a.out'}",
    ]
    if res.gpus_per_node > 0:
        sbatch.append(f"--gres=gpu:{res.gpus_per_node}")
    sbatch += [f"--partition={res.partition}"] * (res.partition is not None)
    sbatch += [f"--account={res.account}"] * (res.account is not None)
    sbatch += [f"--mem={res.mem}"] * (res.mem is not None)
    sbatch += list(res.extra)
    path = sweep_dir / "sweep.slurm"
    report_line = " ".join(_q(a) for a in report)
    header = [
        "#!/bin/bash",
        *(f"#SBATCH {opt}" for opt in sbatch),
        "#",
        "# Written by sweep.py --slurm: one array task per experiment (fit, then evaluate). A",
        "# finished fit or evaluation is skipped, an interrupted fit resumes from last.ckpt, so",
        "# resubmitting after a time limit continues the work. Tasks:",
        *(f"#   {i}: {n}" for i, n in enumerate(names)),
        "# Submit, and gather the paper tables once every task has ended:",
        f"#   jid=$(sbatch --parsable {_q(path)})",
        f"#   sbatch --dependency=afterany:$jid --wrap \"cd {_q(Path.cwd())} && "
        f"PYTHONPATH={_q(REPO)} {_q(sys.executable)} {report_line}\"",
        "",
    ]
    footer = [
        'if [ -z "${SLURM_ARRAY_TASK_ID:-}" ]; then',
        '  echo "submit this script with sbatch (it is a SLURM array job); sweep.sh runs the '
        'same commands without SLURM" >&2',
        "  exit 2",
        "fi",
        '"task_$SLURM_ARRAY_TASK_ID"',
        "",
    ]
    return "\n".join([*header, body, *footer])


def shell_script(steps: Sequence[Step], *, sweep_dir: Path, sweep_name: str,
                 report: Sequence[str], stop_on_failure: bool) -> str:
    """The same commands as a bash script: all tasks in order, or those given as arguments."""
    body, names = _common(steps, sweep_dir=sweep_dir, sweep_name=sweep_name, launch="",
                          runner="shell", setup=())
    stop = "break" if stop_on_failure else ":"
    footer = [
        f"NAMES=({' '.join(_q(n) for n in names)})",
        'if [ $# -gt 0 ]; then TASKS=("$@"); else TASKS=($(seq 0 $((${#NAMES[@]} - 1)))); fi',
        "status=0",
        "k=0",
        'for t in "${TASKS[@]}"; do',
        "  k=$((k + 1))",
        '  echo "[$k/${#TASKS[@]}] ${NAMES[$t]} (task $t)"',
        f'  "task_$t" || {{ status=1; {stop}; }}',
        "done",
        f'"$PYTHON" {" ".join(_q(a) for a in report)} || status=1',
        "exit $status",
        "",
    ]
    header = [
        "#!/bin/bash",
        "# Written by sweep.py --slurm: the SLURM array's commands without SLURM.",
        "# bash sweep.sh          runs every experiment in order, then the report;",
        "# bash sweep.sh 0 3      runs tasks 0 and 3 only:",
        *(f"#   {i}: {n}" for i, n in enumerate(names)),
        "",
    ]
    return "\n".join([*header, body, *footer])


def write_scripts(steps: Sequence[Step], res: SlurmResources, *, sweep_dir: Path,
                  sweep_name: str, report_dirs: Sequence[Path], wandb: bool,
                  stop_on_failure: bool) -> tuple[Path, Path]:
    """Write ``<sweep_dir>/sweep.slurm`` and ``sweep.sh`` (executable); their paths."""
    report = report_command(report_dirs, sweep_dir, sweep_name, wandb)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    slurm = sweep_dir / "sweep.slurm"
    shell = sweep_dir / "sweep.sh"
    slurm.write_text(slurm_script(steps, res, sweep_dir=sweep_dir, sweep_name=sweep_name,
                                  report=report))
    shell.write_text(shell_script(steps, sweep_dir=sweep_dir, sweep_name=sweep_name,
                                  report=report, stop_on_failure=stop_on_failure))
    for path in (slurm, shell):
        os.chmod(path, 0o755)
    return slurm, shell
