"""Command lines: ``sweep.py`` (= ``python -m sweeps run``), ``python -m sweeps report`` and
``python -m sweeps check`` (the done-test the generated scripts call)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from sweeps.experiments import (
    DATASETS,
    available_experiments,
    check_data_roots,
    option_name,
    select_experiments,
    split_overrides,
)
from sweeps.plan import (
    STAGES,
    evaluate_state,
    fit_state,
    plan_steps,
    results_path,
    uses_wandb,
)
from sweeps.preflight import check_output, check_weights, parse_data_roots
from sweeps.runner import ProgressRecord, run_steps, summary_table
from sweeps.scripts import SlurmResources, allocation_overrides, write_scripts

# Options passed through to train.py / evaluate.py besides the dotted '--section.key value'.
PLAIN_PASSTHROUGH = {"config", "seed_everything"}

SWEEP_EPILOG = """\
Any other '--section.key value' (and '--config FILE') is passed to train.py and evaluate.py
(--evaluation.* to evaluate.py only), e.g. --trainer.devices 4 --trainer.strategy ddp, or
--config configs/logger/wandb.yaml to log every run to W&B (grouped by --name).

examples:
  python sweep.py --data_root /data                                  # the 10 experiments
  python sweep.py --data_root /data --datasets cub200 --backbones alexnet vgg16_bn
  python sweep.py --data_root /data --slurm --slurm_partition gpu --slurm_gpus 4
  python sweep.py --experiments synthetic --seeds 0 1 2              # 3 seeds, mean ± sd
  python -m sweeps report outputs/*/evaluate/sweep --out outputs/report
"""


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # logs and pipes: keep lines whole
        console.width = max(console.width, 160)
    return console


def sweep_parser() -> argparse.ArgumentParser:
    """``sweep.py``'s own options (everything else passes through)."""
    names = ", ".join(available_experiments())
    p = argparse.ArgumentParser(
        prog="sweep.py", allow_abbrev=False, epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Fit then evaluate a set of experiments (resumable), then gather the "
                    "paper's tables; or write a SLURM array script of the same commands.")
    p.add_argument("--data_root", type=Path, default=None,
                   help="folder holding the datasets in their usual folders (CUB_200_2011/, "
                        "fgvc-aircraft-2013b/, food-101/, flowers-102/, stanford_cars/)")
    p.add_argument("--data_roots", nargs="+", metavar="DATASET=DIR", default=None,
                   help="a folder of its own for some data sets, e.g. cub200=/a "
                        "fgvc_aircraft=/b (the others: under --data_root)")
    p.add_argument("--experiments", nargs="+", metavar="NAME|YAML",
                   help=f"experiments to run (default: all of configs/experiments): {names}")
    p.add_argument("--datasets", nargs="+", metavar="DATASET",
                   help=f"keep these datasets: {', '.join(d.key for d in DATASETS)}")
    p.add_argument("--backbones", nargs="+", metavar="BACKBONE",
                   help="keep these backbones (alexnet, vgg16_bn, ...)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES),
                   help="stages to run (default: fit evaluate)")
    p.add_argument("--out", type=Path, default=Path("outputs"),
                   help="outputs root: experiment E goes to OUT/E (default: outputs, as the "
                        "configs' default_root_dir)")
    p.add_argument("--name", default="paper",
                   help="sweep name: W&B group, and OUT/sweeps/NAME for logs, progress.jsonl, "
                        "tables and scripts (default: paper)")
    p.add_argument("--stop_on_failure", action="store_true",
                   help="stop at the first failed step (default: go on with the others)")
    p.add_argument("--dry_run", action="store_true",
                   help="print what would run and what is skipped; run nothing")
    p.add_argument("--no_report", action="store_true", help="do not gather the tables at the end")
    p.add_argument("--protocol", type=int, default=None,
                   help="whynot_protocol the tables are for (default: the newest found)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                   help="fine-tune and evaluate each experiment once per seed, in "
                        "OUT/<experiment>_seed<k> (--seed_everything k); the tables give the "
                        "mean ± sd over the seeds (default: once, with the config's seed)")
    s = p.add_argument_group("SLURM (--slurm writes OUT/sweeps/NAME/sweep.slurm and sweep.sh; "
                             "nothing runs)")
    s.add_argument("--slurm", action="store_true")
    s.add_argument("--slurm_partition", default=None)
    s.add_argument("--slurm_account", default=None)
    s.add_argument("--slurm_nodes", type=int, default=1, help="nodes per experiment")
    s.add_argument("--slurm_gpus", type=int, default=1,
                   help="GPUs per node per experiment (one task per GPU; sets "
                        "--trainer.devices / num_nodes / strategy unless given)")
    s.add_argument("--slurm_cpus_per_gpu", type=int, default=8, help="cpus-per-task")
    s.add_argument("--slurm_mem", default=None, help="memory per node, e.g. 64G")
    s.add_argument("--slurm_time", default="2-00:00:00", help="time limit per task")
    s.add_argument("--slurm_max_parallel", type=int, default=None,
                   help="at most this many experiments at once")
    s.add_argument("--slurm_extra", action="append", default=[], metavar="OPTION",
                   help="another #SBATCH option, e.g. --slurm_extra=--qos=high (repeatable)")
    s.add_argument("--slurm_setup", action="append", default=[], metavar="LINE",
                   help="a shell line run before the commands, e.g. 'module load cuda' "
                        "(repeatable)")
    return p


def _check_passthrough(parser: argparse.ArgumentParser, overrides: Sequence[str]) -> None:
    try:
        groups = split_overrides(overrides)
    except ValueError as err:
        parser.error(str(err))
    for group in groups:
        name = option_name(group)
        if "." not in name and name not in PLAIN_PASSTHROUGH:
            parser.error(f"unknown option --{name}: sweep options are listed above; "
                         "train.py / evaluate.py options are '--section.key value'")


def sweep_main(argv: Sequence[str] | None = None) -> int:
    """``sweep.py``: run (or script) the sweep; the exit status is 1 if any step failed."""
    parser = sweep_parser()
    args, overrides = parser.parse_known_args(argv)
    _check_passthrough(parser, overrides)
    console = _console()
    if args.slurm:
        res = SlurmResources(partition=args.slurm_partition, account=args.slurm_account,
                             nodes=args.slurm_nodes, gpus_per_node=args.slurm_gpus,
                             cpus_per_gpu=args.slurm_cpus_per_gpu, mem=args.slurm_mem,
                             time=args.slurm_time, max_parallel=args.slurm_max_parallel,
                             extra=tuple(args.slurm_extra), setup=tuple(args.slurm_setup))
        overrides = [*overrides, *allocation_overrides(res, overrides)]
    try:
        experiments = select_experiments(args.experiments, args.datasets, args.backbones,
                                         overrides)
        if not experiments:
            parser.error("no experiment matches --experiments / --datasets / --backbones")
        data_roots = parse_data_roots(args.data_roots)
        # everything the fits need, before the first one starts
        check_data_roots(experiments, args.data_root, data_roots)
        check_weights(experiments, overrides, args.stages)
        check_output(args.out)
        sweep_dir = args.out / "sweeps" / args.name
        steps = plan_steps(experiments, out=args.out, data_root=args.data_root,
                           overrides=overrides, sweep_name=args.name, logs=sweep_dir / "logs",
                           stages=args.stages, seeds=args.seeds, data_roots=data_roots)
    except (ValueError, FileNotFoundError) as err:
        console.print(f"[bold red]error[/]: {escape(str(err))}", soft_wrap=True)
        return 2
    report_dirs = [results_path(s.root).parent for s in steps if s.stage == "evaluate"]
    wandb = uses_wandb(overrides)
    if args.slurm:
        slurm, shell = write_scripts(steps, res, sweep_dir=sweep_dir, sweep_name=args.name,
                                     report_dirs=report_dirs, wandb=wandb,
                                     stop_on_failure=args.stop_on_failure)
        console.print(f"wrote {slurm} ({len(experiments)} array tasks) and {shell} (the same "
                      "commands without SLURM)", soft_wrap=True)
        console.print(f"submit:  sbatch {slurm}\nthen, when every task has ended:  python -m "
                      f"sweeps report {' '.join(map(str, report_dirs))} --out {sweep_dir}",
                      soft_wrap=True)
        return 0
    progress = ProgressRecord(None if args.dry_run else sweep_dir / "progress.jsonl")
    names = ", ".join(e.name for e in experiments)
    console.print(f"[bold]sweep {args.name}[/]: {len(experiments)} experiment"
                  f"{'s' * (len(experiments) != 1)} ({names}) x {' + '.join(args.stages)}; "
                  f"outputs {args.out}/<experiment>; logs {sweep_dir / 'logs'}; progress "
                  f"{sweep_dir / 'progress.jsonl'}", soft_wrap=True)
    try:
        outcomes = run_steps(steps, progress=progress, console=console,
                             stop_on_failure=args.stop_on_failure, dry_run=args.dry_run)
    except KeyboardInterrupt:
        console.print("[bold red]sweep interrupted[/]; run the same command again to resume")
        return 130
    if args.dry_run:
        return 0
    console.print(summary_table(outcomes))
    failed = [o for o in outcomes if o.status in ("failed", "blocked", "planned")]
    if not args.no_report and report_dirs:
        from sweeps.paper_report import print_report, write_report

        report = write_report(report_dirs, sweep_dir, protocol=args.protocol, wandb=wandb,
                              name=args.name)
        print_report(report, console)
    if failed:
        console.print(f"[bold red]{len(failed)} step{'s' * (len(failed) != 1)} not done[/]: "
                      + "; ".join(f"{o.step.experiment.name} {o.step.stage} ({o.detail}; log "
                                  f"{o.step.log})" for o in failed), soft_wrap=True)
        return 1
    return 0


def report_main(argv: Sequence[str] | None = None) -> int:
    """``python -m sweeps report RUN_DIRS...``: the paper's tables from finished evaluations."""
    p = argparse.ArgumentParser(
        prog="python -m sweeps report", allow_abbrev=False,
        description="Gather results.json files (run folders are searched) into the paper's "
                    "tables: paper_tables.md, paper_tables.tex, paper_tables.csv.")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="experiment folders, evaluation folders or results.json files")
    p.add_argument("--out", type=Path, default=Path("outputs/report"),
                   help="where the tables go (default: outputs/report)")
    p.add_argument("--protocol", type=int, default=None,
                   help="whynot_protocol the tables are for (default: the newest found)")
    p.add_argument("--wandb", action="store_true",
                   help="also log the tables as W&B Tables to a summary run (offline unless "
                        "W&B is configured)")
    p.add_argument("--name", default="report", help="W&B group of the summary run")
    p.add_argument("--wandb_project", default="whynot")
    args = p.parse_args(argv)
    from sweeps.paper_report import print_report, write_report

    console = _console()
    report = write_report(args.runs, args.out, protocol=args.protocol, wandb=args.wandb,
                          name=args.name, project=args.wandb_project)
    print_report(report, console)
    if not report.collection.runs:
        console.print("[bold red]no usable run found[/]")
        return 1
    return 0


def check_main(argv: Sequence[str] | None = None) -> int:
    """``python -m sweeps check fit|evaluate E [--max_epochs N --max_steps M]``.

    Prints why; exit status 0 when the stage is done, 1 when it is not, 2 on an error.
    """
    p = argparse.ArgumentParser(prog="python -m sweeps check", allow_abbrev=False)
    p.add_argument("stage", choices=STAGES)
    p.add_argument("root", type=Path, help="the experiment folder E")
    p.add_argument("--max_epochs", type=int, default=-1, help="-1: no epoch limit")
    p.add_argument("--max_steps", type=int, default=-1)
    args = p.parse_args(argv)
    try:
        if args.stage == "fit":
            max_epochs = None if args.max_epochs == -1 else args.max_epochs
            done, why = fit_state(args.root, max_epochs, args.max_steps)
        else:
            done, why = evaluate_state(args.root)
    except Exception as err:
        print(f"cannot read the state of {args.root}: {err}")
        return 2
    print(why)
    return 0 if done else 1


COMMANDS = {"run": sweep_main, "report": report_main, "check": check_main}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sweeps {run,report,check} ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m sweeps {run,report,check} ...  (run = sweep.py; -h for help)")
        return 2
    return COMMANDS[argv[0]](argv[1:])
