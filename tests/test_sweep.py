"""sweep.py: experiment selection, data-root checks, the commands, resuming after an
interruption (only the missing work runs), failure handling, the SLURM / shell scripts.

The end-to-end sweep runs train.py and evaluate.py for real on the miniature CUB layout and the
synthetic set (tiny_vgg, 32 px, a few images, gradient sign off, one method).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweeps.commands import sweep_main
from sweeps.experiments import Experiment, check_data_roots, select_experiments
from sweeps.plan import fit_progress, plan_steps, route_overrides
from sweeps.runner import ProgressRecord, read_progress, run_steps
from sweeps.scripts import SlurmResources, allocation_overrides
from tests.dataset_layouts import make_cub

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--model.backbone", "tiny_vgg", "--model.pretrained", "null", "--data.image_size", "32",
    "--data.batch_size", "4", "--data.num_workers", "0", "--data.augment", "none",
    "--trainer.accelerator", "cpu", "--trainer.devices", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--evaluation.methods", "[gradcam]", "--evaluation.gradient_sign", "false",
    "--evaluation.num_figures", "0", "--evaluation.threshold", "null",
    "--evaluation.localization", "false",
]
SYNTHETIC = {
    "seed_everything": 0,
    "trainer": {"max_epochs": 2, "default_root_dir": "ignored/by/the/sweep"},
    "model": {"backbone": "tiny_vgg", "pretrained": None},
    "data": {"class_path": "datamodules.SyntheticDataModule",
             "init_args": {"num_classes": 4, "num_train": 16, "num_test": 6}},
}


# --- selection, data roots, commands (no training) -------------------------------------------

def test_selection_by_dataset_and_backbone_in_the_papers_order() -> None:
    chosen = select_experiments(None, ["stanford_cars", "cub200"], ["alexnet"])
    assert [e.name for e in chosen] == ["cub200_alexnet", "stanford_cars_alexnet"]
    assert [(e.max_epochs, e.max_steps) for e in chosen] == [(200, -1), (200, -1)]
    every = select_experiments(None, None, None)
    assert len(every) == 10 and {e.backbone for e in every} == {"alexnet", "vgg16_bn"}
    assert [e.dataset.key for e in every][::2] == [
        "cub200", "fgvc_aircraft", "food101", "flowers102", "stanford_cars"]
    # overrides change what runs, not what --backbones selects
    over = select_experiments(["food101_vgg16_bn"], None, ["vgg16_bn"],
                              ["--model.backbone", "tiny_vgg", "--trainer.max_epochs", "3"])
    assert (over[0].backbone, over[0].configured_backbone, over[0].max_epochs) == (
        "tiny_vgg", "vgg16_bn", 3)
    assert over[0].tags == ["food101", "tiny_vgg"]
    with pytest.raises(ValueError, match=r"unknown experiment 'cub'.*cub200_alexnet"):
        select_experiments(["cub"], None, None)
    with pytest.raises(ValueError, match="unknown dataset 'birds'"):
        select_experiments(None, ["birds"], None)


def test_missing_data_is_reported_all_at_once_before_any_work(tmp_path: Path) -> None:
    make_cub(tmp_path)
    (tmp_path / "food-101").mkdir()  # there, but empty
    chosen = select_experiments(None, ["cub200", "food101", "flowers102"], ["alexnet"])
    with pytest.raises(FileNotFoundError) as err:
        check_data_roots(chosen, tmp_path)
    text = str(err.value)
    assert "nothing was started" in text and "CUB" not in text.split("\n", 1)[1]
    assert f"Flowers-102 (flowers102_alexnet): no folder {tmp_path / 'flowers-102'}" in text
    assert "Food-101 (food101_alexnet): Food-101 not found or incomplete" in text
    assert "meta/classes.txt" in text  # the datamodule's own check names what it expects
    check_data_roots(chosen[:1], tmp_path)  # the miniature CUB layout passes
    with pytest.raises(FileNotFoundError, match="pass --data_root DIR, the folder that holds "
                                                "CUB_200_2011"):
        check_data_roots(chosen[:1], None)
    check_data_roots(select_experiments(["synthetic"], None, None), None)  # needs no data


def test_commands_pass_overrides_through_and_keep_the_sweeps_paths(tmp_path: Path) -> None:
    (exp,) = select_experiments(["cub200_alexnet"], None, None)
    overrides = ["--trainer.devices", "4", "--trainer.strategy", "ddp",
                 "--evaluation.methods", "[gradcam]", "--config", "configs/logger/wandb.yaml"]
    fit, evaluate = plan_steps([exp], out=tmp_path / "o", data_root=Path("/data"),
                               overrides=overrides, sweep_name="s1", logs=tmp_path / "logs")
    e = tmp_path / "o" / "cub200_alexnet"
    assert fit.argv == [
        str(ROOT / "train.py"), "fit", "--config", str(exp.config), "--trainer.devices", "4",
        "--trainer.strategy", "ddp", "--config", "configs/logger/wandb.yaml",
        "--trainer.default_root_dir", str(e), "--data.root", "/data"]
    assert evaluate.argv == [
        str(ROOT / "evaluate.py"), "--config", str(exp.config), "--trainer.devices", "4",
        "--trainer.strategy", "ddp", "--config", "configs/logger/wandb.yaml",
        "--evaluation.methods", "[gradcam]", "--trainer.default_root_dir", str(e),
        "--data.root", "/data", "--ckpt_path", str(e / "checkpoints" / "last.ckpt"),
        "--evaluation.output_dir", str(e / "evaluate" / "sweep"), "--evaluation.overwrite", "true"]
    assert fit.env == {"WANDB_RUN_GROUP": "s1", "WANDB_JOB_TYPE": "fit",
                       "WANDB_TAGS": "cub200,alexnet"}
    assert evaluate.env["WANDB_JOB_TYPE"] == "evaluate"
    assert fit.log == tmp_path / "logs" / "cub200_alexnet.fit.log"
    for reserved, use in [("--data.root", "--data_root"), ("--trainer.default_root_dir", "--out"),
                          ("--ckpt_path", "resumes")]:
        with pytest.raises(ValueError, match=use):
            route_overrides([reserved, "x"])


def test_sweep_cli_refuses_unknown_options_and_names_the_fix(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        sweep_main(["--data-root", "/data"])  # a typo of --data_root
    assert "unknown option --data-root" in capsys.readouterr().err
    assert sweep_main(["--experiments", "cub200_alexnet", "--data_root", "/nowhere"]) == 2
    assert "no folder /nowhere/CUB_200_2011" in capsys.readouterr().out


# --- the runner with trivial real processes -------------------------------------------------

def _step_experiment(name: str) -> Experiment:
    (e,) = select_experiments(["synthetic"], None, None)
    return Experiment(name, e.config, e.dataset, e.backbone, e.backbone, 1, -1)


def test_runner_logs_each_process_records_progress_and_stops_on_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Evaluate steps whose "evaluate.py" is a one-line script writing results.json: the
    runner's logic (skip, log, env, progress, failure, stop) without training."""
    from rich.console import Console

    from sweeps.plan import Step, results_path

    ok = ("import os, pathlib, sys; print(os.environ['WANDB_JOB_TYPE'], "
          "os.environ['WANDB_RUN_GROUP'], os.environ['WANDB_TAGS']); "
          "p = pathlib.Path(sys.argv[1]); p.parent.mkdir(parents=True); p.write_text('{}')")
    bad = "import sys; print('boom: no such option'); sys.exit(3)"
    steps = []
    for name, stage, code in [("a", "evaluate", ok), ("b", "fit", bad), ("b", "evaluate", ok),
                              ("c", "evaluate", ok)]:
        root = tmp_path / name
        if name != "b":  # b has no checkpoint: its fit runs (and fails)
            (root / "checkpoints").mkdir(parents=True, exist_ok=True)
            (root / "checkpoints" / "last.ckpt").write_text("")  # what evaluate reads
        steps.append(Step(_step_experiment(name), stage, root,
                          ["-c", code, str(results_path(root))], tmp_path / f"{name}.log",
                          {"WANDB_JOB_TYPE": stage, "WANDB_RUN_GROUP": "g",
                           "WANDB_TAGS": f"synthetic,{name}"}))
    progress = ProgressRecord(tmp_path / "progress.jsonl")
    console = Console(width=200)
    outcomes = run_steps(steps, progress=progress, console=console, stop_on_failure=True)
    assert [o.status for o in outcomes] == ["done", "failed", "planned", "planned"]
    assert outcomes[1].detail == "exit status 3"
    assert "evaluate g synthetic,a" in (tmp_path / "a.log").read_text()
    assert "boom: no such option" in (tmp_path / "b.log").read_text()
    out = capsys.readouterr().out
    assert f"[2/4] b fit: FAILED (exit status 3); log {tmp_path / 'b.log'}" in out
    assert "boom: no such option" in out  # the log's tail is shown
    assert not results_path(tmp_path / "c").exists()
    events = [(e["experiment"], e["status"]) for e in read_progress(progress.path)]
    assert events == [("a", "started"), ("a", "done"), ("b", "started"), ("b", "failed")]
    # again, without stopping: a is skipped, b's fit fails again and blocks b's evaluation,
    # c runs
    outcomes = run_steps(steps, progress=progress, console=console)
    assert [o.status for o in outcomes] == ["skipped", "failed", "blocked", "done"]
    # evaluating the checkpoint of a fit that stopped early runs, and says so
    import torch

    d = tmp_path / "d"
    (d / "checkpoints").mkdir(parents=True)
    torch.save({"epoch": 0, "global_step": 5, "loops": {"fit_loop": {"epoch_progress": {
        "current": {"processed": 1}}}}}, d / "checkpoints" / "last.ckpt")
    exp = _step_experiment("d")
    exp = Experiment(exp.name, exp.config, exp.dataset, exp.backbone, exp.backbone, 3, -1)
    step = Step(exp, "evaluate", d, ["-c", ok, str(results_path(d))], tmp_path / "d.log",
                {"WANDB_JOB_TYPE": "evaluate", "WANDB_RUN_GROUP": "g", "WANDB_TAGS": "x"})
    assert [o.status for o in run_steps([step], progress=progress, console=console)] == ["done"]
    assert "NOTE the checkpoint is of an unfinished fit (interrupted at epoch 1/3, step 5)" \
        in " ".join(capsys.readouterr().out.split())
    # a checkpoint newer than the results makes the evaluation stale: it runs again
    os.utime(steps[0].root / "checkpoints" / "last.ckpt",
             (results_path(steps[0].root).stat().st_mtime + 10,) * 2)
    assert steps[0].state() == (False, f"{results_path(steps[0].root)} is older than "
                                       f"{steps[0].root / 'checkpoints' / 'last.ckpt'}: "
                                       "evaluating again")


# --- the real sweep ----------------------------------------------------------------------------

def _events(sweep_dir: Path, since: int = 0) -> list[dict]:
    return read_progress(sweep_dir / "progress.jsonl")[since:]


def _status(events: list[dict]) -> list[tuple[str, str, str]]:
    return [(e["experiment"], e["stage"], e["status"]) for e in events]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three sweeps over the same folders, as a user interrupted and resumed them.

    1. fit only, 1 epoch, CUB only (as if stopped after an epoch);
    2. 2 epochs, fit + evaluate, CUB + synthetic;
    3. CUB's results.json deleted: only that evaluation runs (through ``python sweep.py``).
    Each entry of ``runs``: (exit status, stdout, progress events before, paper_tables.md).
    """
    tmp = tmp_path_factory.mktemp("sweep")
    data, out = tmp / "data", tmp / "out"
    make_cub(data)
    synthetic = tmp / "synthetic_tiny.yaml"
    synthetic.write_text(yaml.safe_dump(SYNTHETIC))
    base = ["--data_root", str(data), "--out", str(out), "--name", "t", *TINY]
    both = [*base, "--experiments", "cub200_alexnet", str(synthetic), "--trainer.max_epochs", "2"]
    sweep_dir = out / "sweeps" / "t"
    result: dict = {"out": out, "sweep_dir": sweep_dir, "data": data, "synthetic": synthetic,
                    "base": both, "runs": []}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.chdir(tmp)
        for argv in ([*base, "--experiments", "cub200_alexnet", "--stages", "fit",
                      "--trainer.max_epochs", "1"], both):
            before = len(_events(sweep_dir))
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                code = sweep_main(argv)
            md = sweep_dir / "paper_tables.md"
            result["runs"].append((code, buf.getvalue(), before,
                                   md.read_text() if md.is_file() else ""))
        (out / "cub200_alexnet" / "evaluate" / "sweep" / "results.json").unlink()
        before = len(_events(sweep_dir))
        proc = subprocess.run([sys.executable, str(ROOT / "sweep.py"), *both],
                              capture_output=True, text=True, timeout=600)
        result["runs"].append((proc.returncode, proc.stdout + proc.stderr, before,
                               (sweep_dir / "paper_tables.md").read_text()))
    return result


@pytest.mark.slow  # the real sweep: train.py / evaluate.py processes
def test_first_sweep_fits_only_what_was_asked(swept: dict) -> None:
    code, stdout, before, _ = swept["runs"][0]
    assert code == 0, stdout[-3000:]
    events = _events(swept["sweep_dir"])[before:swept["runs"][1][2]]
    assert _status(events) == [("cub200_alexnet", "fit", "started"),
                               ("cub200_alexnet", "fit", "done")]
    assert "--ckpt_path" not in events[0]["command"]
    assert "[1/1] cub200_alexnet fit: running" in stdout
    assert fit_progress(swept["out"] / "cub200_alexnet" / "checkpoints" / "last.ckpt") \
        is not None


@pytest.mark.slow  # the real sweep: train.py / evaluate.py processes
def test_second_sweep_resumes_the_interrupted_fit_and_runs_the_rest(swept: dict) -> None:
    code, stdout, before, md = swept["runs"][1]
    out = swept["out"]
    assert code == 0, stdout[-3000:]
    events = _events(swept["sweep_dir"])[before:swept["runs"][2][2]]
    assert _status(events) == [
        ("cub200_alexnet", "fit", "started"), ("cub200_alexnet", "fit", "done"),
        ("cub200_alexnet", "evaluate", "started"), ("cub200_alexnet", "evaluate", "done"),
        ("synthetic_tiny", "fit", "started"), ("synthetic_tiny", "fit", "done"),
        ("synthetic_tiny", "evaluate", "started"), ("synthetic_tiny", "evaluate", "done"),
    ]
    cub_ckpt = out / "cub200_alexnet" / "checkpoints" / "last.ckpt"
    assert events[0]["detail"].startswith("interrupted at epoch 1/2")
    assert events[0]["command"][-2:] == ["--ckpt_path", str(cub_ckpt)]
    assert "--ckpt_path" not in events[4]["command"]  # synthetic: a fresh fit
    assert fit_progress(cub_ckpt).epochs == 2
    log = (swept["sweep_dir"] / "logs" / "cub200_alexnet.fit.log").read_text()
    assert log.count("===== env: WANDB_JOB_TYPE=fit WANDB_RUN_GROUP=t "
                     "WANDB_TAGS=cub200,tiny_vgg") == 2  # both attempts, appended
    for name in ("cub200_alexnet", "synthetic_tiny"):
        results = json.loads((out / name / "evaluate" / "sweep" / "results.json").read_text())
        assert results["eval/count/gradcam"] == 6  # threshold null: every test image
    # the combined tables over both runs, one table per masking
    # tiny runs (32 px, 2 epochs, no pretrained weights): marked as far from the paper's recipe
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "| ours‡ |" in ln]
    assert "‡ far from the paper's recipe" in md and "| ours |" not in md
    assert [r.split("|")[1].strip() for r in rows] == ["CUB", "CUB", "Synthetic", "Synthetic"] * 2
    assert "## tiny_vgg, threshold masking" in md and "## tiny_vgg, equal masking" in md
    assert "[1/4] cub200_alexnet fit: running (interrupted at epoch 1/2" in stdout
    assert "3 steps after this one" in stdout and "paper tables from 2 runs" in stdout


@pytest.mark.slow  # the real sweep: train.py / evaluate.py processes
def test_third_sweep_runs_only_the_missing_evaluation(swept: dict) -> None:
    code, stdout, before, _ = swept["runs"][2]
    assert code == 0, stdout[-3000:]
    events = _events(swept["sweep_dir"])[before:]
    assert _status(events) == [
        ("cub200_alexnet", "fit", "skipped"), ("cub200_alexnet", "evaluate", "started"),
        ("cub200_alexnet", "evaluate", "done"), ("synthetic_tiny", "fit", "skipped"),
        ("synthetic_tiny", "evaluate", "skipped")]
    assert events[0]["detail"].startswith("finished (epoch 2/2")
    assert "[2/4] cub200_alexnet evaluate: running" in stdout


def _script_commands(script: str) -> dict[tuple[str, str], list[str]]:
    """(experiment, stage) -> the command after ``"${LAUNCH[@]}" "$PYTHON"`` in a script."""
    found = {}
    lines = script.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("step ") and line.endswith("\\"):
            head = shlex.split(line.strip()[:-1])
            command = shlex.split(lines[i + 1].strip().removesuffix("|| return 1"))
            assert command[:2] == ["${LAUNCH[@]}", "$PYTHON"]
            found[(head[1], head[2])] = command[2:]
    return found


@pytest.mark.slow  # the real sweep: train.py / evaluate.py processes
def test_slurm_and_shell_scripts_hold_the_sweeps_commands_and_skip_finished_work(
        swept: dict, capsys: pytest.CaptureFixture[str]) -> None:
    sweep_dir = swept["sweep_dir"]
    argv = [*swept["base"], "--slurm", "--slurm_partition", "gpu-a100", "--slurm_time",
            "12:00:00", "--slurm_max_parallel", "3", "--slurm_setup", "module load cuda/12.4",
            "--slurm_extra=--qos=high"]
    cwd = Path.cwd()
    os.chdir(swept["synthetic"].parent)
    try:
        assert sweep_main(argv) == 0
    finally:
        os.chdir(cwd)
    assert f"sbatch {sweep_dir / 'sweep.slurm'}" in capsys.readouterr().out
    slurm = (sweep_dir / "sweep.slurm").read_text()
    shell = (sweep_dir / "sweep.sh").read_text()
    for path in ("sweep.slurm", "sweep.sh"):
        check = subprocess.run(["bash", "-n", str(sweep_dir / path)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stderr
    sbatch = [ln.split(" ", 1)[1] for ln in slurm.splitlines() if ln.startswith("#SBATCH ")]
    assert sbatch == ["--job-name=whynot-t", "--array=0-1%3", "--nodes=1",
                      "--ntasks-per-node=1", "--cpus-per-task=8", "--time=12:00:00",
                      f"--output={sweep_dir.resolve() / 'logs' / 'slurm-%A_%a.out'}",
                      "--gres=gpu:1", "--partition=gpu-a100", "--qos=high"]
    assert "module load cuda/12.4" in slurm and 'LAUNCH=(srun)' in slurm
    assert '"task_$SLURM_ARRAY_TASK_ID"' in slurm and "LAUNCH=()" in shell
    # the commands are the local sweep's, plus the settings matching the allocation
    extra = allocation_overrides(SlurmResources(), TINY)
    assert extra == ["--trainer.num_nodes", "1"]  # devices / accelerator given, 1 GPU: no ddp
    experiments = select_experiments(["cub200_alexnet", str(swept["synthetic"])], None, None,
                                     [*TINY, "--trainer.max_epochs", "2"])
    steps = plan_steps(experiments, out=swept["out"], data_root=swept["data"],
                       overrides=[*TINY, "--trainer.max_epochs", "2", *extra], sweep_name="t",
                       logs=sweep_dir / "logs")
    for script in (slurm, shell):
        assert _script_commands(script) == {(s.experiment.name, s.stage): s.argv for s in steps}
    # run the plain script for real: everything is finished, so every stage is skipped through
    # `python -m sweeps check`, and the report is gathered
    before = len(_events(sweep_dir))
    proc = subprocess.run(["bash", str(sweep_dir / "sweep.sh"), "1"], capture_output=True,
                          text=True,
                          timeout=300, cwd=swept["synthetic"].parent,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    events = _events(sweep_dir)[before:]
    assert _status(events) == [("synthetic_tiny", "fit", "skipped"),
                               ("synthetic_tiny", "evaluate", "skipped")]
    assert {e["runner"] for e in events} == {"shell"}
    assert "[1/1] synthetic_tiny (task 1)" in proc.stdout
    assert "synthetic_tiny fit: skip, finished (epoch 2/2" in proc.stdout
    assert "paper tables from 2 runs" in proc.stdout
    # the SLURM script refuses to run outside an array job
    outside = subprocess.run(["bash", str(sweep_dir / "sweep.slurm")], capture_output=True,
                             text=True, env={k: v for k, v in os.environ.items()
                                             if k != "SLURM_ARRAY_TASK_ID"})
    assert outside.returncode == 2 and "submit this script with sbatch" in outside.stderr


@pytest.mark.slow
def test_ddp_overrides_pass_through_and_give_the_numbers_of_one_process(swept: dict,
                                                                       tmp_path: Path) -> None:
    """The synthetic experiment's checkpoint evaluated again by the sweep with 2 gloo processes
    (--trainer.devices 2 --trainer.strategy ddp): the same numbers as the 1-process run."""
    import shutil

    one = swept["out"] / "synthetic_tiny"
    out = tmp_path / "out"
    shutil.copytree(one / "checkpoints", out / "synthetic_tiny" / "checkpoints")
    i = TINY.index("--trainer.devices")
    tiny = TINY[:i] + TINY[i + 2:]
    argv = ["--out", str(out), "--name", "t", "--experiments", str(swept["synthetic"]), *tiny,
            "--trainer.max_epochs", "2", "--stages", "evaluate", "--trainer.devices", "2",
            "--trainer.strategy", "ddp"]
    proc = subprocess.run([sys.executable, str(ROOT / "sweep.py"), *argv],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (out / "sweeps" / "t" / "logs" / "synthetic_tiny.evaluate.log").read_text()
    assert "--trainer.devices 2 --trainer.strategy ddp" in log
    r1 = json.loads((one / "evaluate" / "sweep" / "results.json").read_text())
    r2 = json.loads((out / "synthetic_tiny" / "evaluate" / "sweep" / "results.json").read_text())
    assert set(r1) == set(r2) and r2["eval/count/gradcam"] == 6
    for key, value in r1.items():
        assert r2[key] == pytest.approx(value, abs=1e-6), key


def test_seeds_give_each_experiment_a_folder_and_seed_per_run(tmp_path: Path) -> None:
    (exp,) = select_experiments(["cub200_alexnet"], None, None)
    steps = plan_steps([exp], out=tmp_path / "o", data_root=Path("/data"), overrides=[],
                       sweep_name="s", logs=tmp_path / "logs", seeds=[0, 2])
    assert [(s.experiment.name, s.stage) for s in steps] == [
        ("cub200_alexnet_seed0", "fit"), ("cub200_alexnet_seed0", "evaluate"),
        ("cub200_alexnet_seed2", "fit"), ("cub200_alexnet_seed2", "evaluate")]
    for step, seed in zip(steps, (0, 0, 2, 2), strict=True):
        assert step.root == tmp_path / "o" / f"cub200_alexnet_seed{seed}"
        i = step.argv.index("--seed_everything")
        assert step.argv[i + 1] == str(seed)
        assert step.log == tmp_path / "logs" / f"cub200_alexnet_seed{seed}.{step.stage}.log"
    with pytest.raises(ValueError, match="--seed_everything and --seeds"):
        plan_steps([exp], out=tmp_path, data_root=None, overrides=["--seed_everything", "3"],
                   sweep_name="s", logs=tmp_path, seeds=[0, 1])
    with pytest.raises(ValueError, match="distinct seeds"):
        plan_steps([exp], out=tmp_path, data_root=None, overrides=[], sweep_name="s",
                   logs=tmp_path, seeds=[1, 1])


@pytest.mark.slow  # three fits and three evaluations through train.py / evaluate.py
def test_sweep_with_seeds_writes_mean_and_sd_over_seeds(tmp_path: Path) -> None:
    """``sweep.py --seeds 0 1 2`` on the synthetic set: a folder per seed, one table row per
    (method, t) with mean ± sd over the three runs and each seed's win / loss / tie counts."""
    synthetic = tmp_path / "synthetic_tiny.yaml"
    synthetic.write_text(yaml.safe_dump(SYNTHETIC))
    out = tmp_path / "out"
    argv = ["--out", str(out), "--name", "s", *TINY, "--experiments", str(synthetic),
            "--trainer.max_epochs", "1", "--seeds", "0", "1", "2"]
    proc = subprocess.run([sys.executable, str(ROOT / "sweep.py"), *argv], capture_output=True,
                          text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    _check_seeded_sweep(out)


def _check_seeded_sweep(out: Path) -> None:
    """The three seeds' results and the threshold-masking paper table over them."""
    results = [json.loads((out / f"synthetic_tiny_seed{k}" / "evaluate" / "sweep" /
                           "results.json").read_text()) for k in range(3)]
    key = "eval/relprob/gradcam/t1/zeros/pos/threshold/weighted"
    values = [r[key] for r in results]
    assert len(set(values)) == 3  # three seeds, three fine-tuned models
    assert all(f"{key.replace('eval/', 'eval/diff_', 1)}/se" in r for r in results)
    md = (out / "sweeps" / "s" / "paper_tables.md").read_text()
    threshold = md.split("threshold masking", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in threshold.splitlines()
            if line.startswith("| Synthetic | GC | t1 |")]
    (row,) = rows
    mean = sum(values) / 3
    sd = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
    col = 6 + 2 * 2 + 1  # keys, then GaussBlur Pos / Neg, Zeros Pos wtd
    assert row[col].strip("*") == f"{mean:.3f} ± {sd:.3f}"
    assert row[-1].count("/") == 2 * 4  # W/L/T and each of the 3 seeds' W/L/T
    assert "per seed: seed 0: " in " ".join(md.split())
