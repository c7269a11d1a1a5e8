"""evaluate.py end to end: the run folder, results.json keys, the CSV log, report.md and figures of
one shared run (``tiny_evaluation``); 2 gloo processes giving its numbers, with the W&B preset."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from results.files import read_results_json
from tests.background import Job, completed
from tests.conftest import (
    DDP,
    NUM_TEST,
    ROOT,
    TINY_DATA,
    TINY_EVALUATION,
    WANDB,
    cli_env,
    experiment_yaml,
)
from tests.processes import run_cli
from tests.wandb_files import read_closed_wandb_run

METHODS = ("gradcam", "linear_approx")


def _expected_keys(with_loc: bool, steps: tuple[int, ...] = (1,)) -> set[str]:
    """Every key of the shrunk protocol, spelled out here, independently of results.schema."""
    keys = {f"eval/count/{m}" for m in METHODS} | {"eval/num_samples"}
    for m in METHODS:
        for t in ("t1", "t2"):
            keys |= {f"eval/clean_relprob/{m}/{t}", f"eval/clean_prob/{m}/{t}"}
            for q in ("relprob", "prob", "prob_drop"):
                for b in ("blur", "zeros", "mean"):
                    for mode in ("pos", "neg"):
                        for k in ("threshold", "equal"):
                            for c in ("original", "weighted"):
                                keys.add(f"eval/{q}/{m}/{t}/{b}/{mode}/{k}/{c}")
            if with_loc:
                keys.add(f"eval/count/{m}/{t}")
                for c in ("original", "weighted"):
                    keys |= {f"eval/{q}/{m}/{t}/{c}" for q in (
                        "differ_share", "shared_share", "pointing_differ", "pointing_shared")}
    for q in ("delta_acc", "delta_logit", "delta_prob"):
        for c in ("original", "mean", "max", "weighted"):
            keys |= {f"eval/{q}/gradient/{c}/n{s}" for s in steps}
    keys |= {f"eval/{q}/gradient" for q in ("clean_acc", "clean_logit", "clean_prob", "count")}
    # every compared cell's paired difference <contrast> - original
    stats = ("mean", "se", "lo", "hi", "n")
    for key in list(keys):
        parts = key.split("/")
        if (parts[1] in ("relprob", "prob") and parts[-1] == "weighted") or (
                parts[1].startswith("delta_") and parts[3] != "original") or (
                parts[1] in ("differ_share", "shared_share", "pointing_differ",
                             "pointing_shared") and parts[-1] == "weighted"):
            keys |= {f"eval/diff_{key[5:]}/{s}" for s in stats}
    return keys


def _only_results(tmp: Path) -> tuple[Path, dict[str, float]]:
    """The one results.json under ``tmp``: it must be ``E/evaluate/version_0/results.json``."""
    found = sorted(tmp.rglob("results.json"))
    run = tmp / "tiny_synthetic" / "evaluate" / "version_0"
    assert found == [run / "results.json"], found
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    return run, read_results_json(found[0])  # null (undefined) read back as NaN


# ------------------------------------------------------------------------- one process
def test_evaluate_writes_the_run_folder(tiny_evaluation: SimpleNamespace,
                                        tiny_checkpoint: Path) -> None:
    """No --evaluation.output_dir: everything in E/evaluate/version_0, run.json as specified,
    the tables printed, a success message that names only files that exist."""
    assert "GaussBlur" in tiny_evaluation.stdout  # the paper-layout table is printed
    run, results = _only_results(tiny_evaluation.root)
    assert results == pytest.approx(tiny_evaluation.results)
    assert results["eval/count/gradcam"] == NUM_TEST
    names = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert {"config.yaml", "metrics.csv", "results.json", "report.md", "run.json",
            "figures/heatmaps_gradcam.png", "figures/heatmaps_linear_approx.png"} <= names
    e = tiny_evaluation.root / "tiny_synthetic"
    assert sorted(p.name for p in e.iterdir()) == ["evaluate"]  # no checkpoints/, lightning_logs/
    info = json.loads((run / "run.json").read_text())
    assert info["whynot_protocol"] == 1 and info["stage"] == "evaluate"
    assert info["experiment"] == "tiny_synthetic" and info["dataset"] == "synthetic"
    assert info["datamodule"] == "datamodules.synthetic.SyntheticDataModule"
    assert (info["backbone"], info["num_classes"]) == ("tiny_vgg", 10)
    assert info["ckpt_path"] == str(tiny_checkpoint) and info["world_size"] == 1
    assert info["precision"] == "32-true"
    assert info["evaluation"]["methods"] == list(METHODS)
    assert info["evaluation"]["steps"] == [1] and info["evaluation"]["threshold"] is None
    assert info["data"]["num_test"] == NUM_TEST and info["data"]["with_ground_truth"] is True
    finished = datetime.fromisoformat(info["finished"])
    assert finished.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - finished).total_seconds()) < 3600
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["ckpt_path"] == str(tiny_checkpoint) and saved["evaluation"]["steps"] == [1]
    (line,) = [x for x in tiny_evaluation.stdout.splitlines()
               if x.startswith("evaluate.py finished:")]
    listed = line.split(": ", 1)[1].rsplit(" in ", 1)
    assert Path(listed[1]) == run
    for name in listed[0].split(", "):
        assert (run / name).is_file(), name


def test_results_json_keys_csv_log_report_and_figures(tiny_evaluation: SimpleNamespace) -> None:
    run, on_disk = tiny_evaluation.run, json.loads(
        (tiny_evaluation.run / "results.json").read_text())
    assert set(on_disk) == _expected_keys(with_loc=True)  # the synthetic set has part masks
    assert on_disk["eval/count/gradcam"] == NUM_TEST  # threshold None: every sample counts
    assert on_disk["eval/clean_relprob/gradcam/t1"] + on_disk["eval/clean_relprob/gradcam/t2"] \
        == pytest.approx(1.0)
    assert on_disk["eval/clean_relprob/gradcam/t1"] >= 0.5  # t1 is the top class
    assert on_disk["eval/num_samples"] == NUM_TEST
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    logged = {k: float(v) for row in rows for k, v in row.items() if k.startswith("eval/") and v}
    assert set(logged) == set(on_disk)
    assert logged == pytest.approx(on_disk, rel=1e-6)
    report = (run / "report.md").read_text()
    assert "GaussBlur Pos ori" in report and "localisation" in report
    assert f"**num_test**: {NUM_TEST}" in report  # the data settings are recorded
    assert sorted(os.listdir(run / "figures")) == [
        "exemplars_gradcam.png", "exemplars_linear_approx.png",
        "heatmaps_gradcam.png", "heatmaps_linear_approx.png",
    ]


def test_class_count_mismatch_is_a_clear_error(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.evaluate import main

    with pytest.raises(SystemExit) as stop:
        main(["--config", str(experiment_yaml(tmp_path)), "--ckpt_path", str(tiny_checkpoint),
              "--data.init_args.num_classes", "6"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("evaluate.py: error:")]
    assert "has 10 classes but the model/data have 6" in line
    assert not list(tmp_path.rglob("version_*"))  # the failed try leaves no run folder behind


def test_missing_checkpoint_names_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.evaluate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(experiment_yaml(tmp_path)), "--ckpt_path", "nope.ckpt"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "\nevaluate.py: error: checkpoint 'nope.ckpt' does not exist" in f"\n{err}", err
    assert "Traceback" not in err


def test_unknown_layer_lists_the_networks_own_names(tmp_path: Path) -> None:
    """The callback wraps the network for precision; its error still names layers as users do."""
    import lightning.pytorch as pl

    from callbacks import ContrastiveEvaluation
    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    cb = ContrastiveEvaluation(layer="features.99", output_dir=str(tmp_path / "run"))
    trainer = pl.Trainer(accelerator="cpu", devices=1, inference_mode=False, logger=False,
                         callbacks=[cb], enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown layer 'features\.99'") as err:
        trainer.test(FineTuneClassifier(backbone="tiny_vgg", num_classes=10),
                     datamodule=SyntheticDataModule(**TINY_DATA), verbose=False)
    assert "'features.12'" in str(err.value) and "'net." not in str(err.value)


# ----------------------------------------------------------------------- two processes
def _equal_to_one_process(two: dict[str, float], one: dict[str, float]) -> None:
    assert set(two) == set(one) and two["eval/count/gradcam"] == one["eval/count/gradcam"]
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-6, nan_ok=True), key


def test_ddp_evaluation_equals_one_process(ddp_evaluation: Job,
                                           tiny_evaluation: SimpleNamespace) -> None:
    """2 gloo processes, the docs' multi-GPU command with the W&B preset and no output_dir:
    the ranks agree on one run folder (version_0) and one W&B run; results equal 1 process.

    Lightning starts rank 1 by re-running the command once rank 0 runs."""
    tmp, proc = ddp_evaluation.result()
    completed(proc, "the DDP evaluation")
    assert "sync_dist" not in proc.stderr  # Lightning's advice for already-reduced values
    run, two = _only_results(tmp)
    _equal_to_one_process(two, tiny_evaluation.results)
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2 and info["evaluation"]["gradient_sign"] is True
    assert (run / "config.yaml").is_file() and (run / "report.md").is_file()


def test_wandb_offline_run_holds_the_logged_values(ddp_evaluation: Job) -> None:
    """The W&B preset as shipped, under DDP: one offline run in E/wandb (rank zero's), named
    after the agreed run folder, with every result, every one-run table and every figure."""
    tmp, proc = ddp_evaluation.result()
    completed(proc, "the DDP evaluation")
    _, results = _only_results(tmp)
    (run_dir,) = (tmp / "tiny_synthetic" / "wandb").glob("offline-run-*")
    logged = read_closed_wandb_run(run_dir)
    assert set(results) <= set(logged), sorted(set(results) - set(logged))[:5]
    for key, value in results.items():
        assert logged[key] == pytest.approx(value, rel=1e-6), key
    assert logged["_run/display_name"] == "tiny_synthetic/evaluate/version_0"
    assert logged["_run/run_group"] == "tiny_synthetic" and logged["_run/job_type"] == "evaluate"
    for table in ("equal", "threshold", "gradient_sign", "localisation", "pointing"):
        assert logged[f"eval/table/{table}/_type"] == "table-file", table
        # (LA, GC) x (t1, t2); gradient sign: its 4 contrasts
        assert logged[f"eval/table/{table}/nrows"] == 4, table
    for kind in ("heatmaps", "exemplars"):
        assert logged[f"eval/{kind}/gradcam/_type"] == "images/separated"
    assert list((run_dir / "files" / "media" / "table").rglob("*.table.json"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _evaluate_cli(tmp: Path, ckpt: Path, *extra: str, data: dict | None = None,
                  launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = [sys.executable, *launcher, str(ROOT / "evaluate.py"), "--config",
            str(experiment_yaml(tmp, data)), "--ckpt_path", str(ckpt), *TINY_EVALUATION, *extra]
    return run_cli(args, cwd=tmp, env=cli_env(tmp), timeout=400)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no_gradient_sign", "torchrun"])
def test_ddp_variants_equal_one_process(
    tiny_checkpoint: Path, tiny_evaluation: SimpleNamespace, tmp_path: Path, case: str
) -> None:
    """Without gradient sign, and started by torchrun (both ranks at once) instead of Lightning:
    one run folder, the numbers of one process."""
    extra = ["--evaluation.gradient_sign", "false"] if case == "no_gradient_sign" else []
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(_free_port())) if case == "torchrun" else ()
    proc = _evaluate_cli(tmp_path, tiny_checkpoint, *DDP, *WANDB, *extra, launcher=launcher)
    completed(proc, case)
    assert "sync_dist" not in proc.stderr
    run, two = _only_results(tmp_path)
    one = tiny_evaluation.results
    if case == "no_gradient_sign":
        assert not any("/gradient" in k for k in two)
        one = {k: v for k, v in one.items() if "/gradient" not in k}
    _equal_to_one_process(two, one)
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2
    assert info["evaluation"]["gradient_sign"] is (case != "no_gradient_sign")


@pytest.mark.slow
def test_ddp_split_smaller_than_the_world(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A 1-image test split on 2 ranks: rank 1 has nothing and contributes nothing."""
    from cli.evaluate import main

    data = {**TINY_DATA, "num_test": 1}
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
    completed(_evaluate_cli(tmp_path / "two", tiny_checkpoint, *DDP, data=data), "DDP, 1 image")
    _, two = _only_results(tmp_path / "two")
    one = main(["--config", str(experiment_yaml(tmp_path / "one", data)),
                "--ckpt_path", str(tiny_checkpoint), *TINY_EVALUATION])
    assert one["eval/count/gradcam"] == 1
    _equal_to_one_process(two, one)


@pytest.mark.slow
def test_synthetic_weighted_beats_original(tmp_path: Path) -> None:
    """Fine-tuned tiny_vgg on the synthetic set: the paper's directions (pos up, neg down)."""
    import lightning.pytorch as pl

    from callbacks import ContrastiveEvaluation
    from datamodules import SyntheticDataModule
    from tests.conftest import fit_synthetic64

    model, data = fit_synthetic64(num_test=200)
    cb = ContrastiveEvaluation(methods=("gradcam",), gradient_sign=False, num_figures=0,
                               output_dir=str(tmp_path / "run"))
    pl.Trainer(accelerator="cpu", inference_mode=False, logger=False, callbacks=[cb],
               enable_progress_bar=False, enable_model_summary=False).test(
        model, datamodule=SyntheticDataModule(**data, with_ground_truth=True), verbose=False)
    r = cb.results
    print(json.dumps({k: v for k, v in r.items() if "/t2/" in k or "share" in k}, indent=1))
    for b in ("blur", "zeros", "mean"):
        pos = f"eval/relprob/gradcam/t2/{b}/pos/threshold"
        neg = f"eval/relprob/gradcam/t2/{b}/neg/threshold"
        assert r[f"{pos}/weighted"] > r[f"{pos}/original"], b
        assert r[f"{neg}/weighted"] < r[f"{neg}/original"], b
    differ_up = r["eval/differ_share/gradcam/t1/weighted"] > r[
        "eval/differ_share/gradcam/t1/original"]
    shared_down = r["eval/shared_share/gradcam/t1/weighted"] < r[
        "eval/shared_share/gradcam/t1/original"]
    assert differ_up or shared_down
