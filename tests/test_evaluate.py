"""End-to-end evaluation: results.json keys, CSV and W&B offline logs, DDP exactness, the CLI.

These tests need the other packages (explainers, metrics, datamodules, lightning_modules); they
skip with a message while those are not there yet.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.processes import run_cli

ROOT = Path(__file__).resolve().parent.parent


def _need(module: str, *names: str) -> None:
    mod = pytest.importorskip(module)
    missing = [n for n in names if not hasattr(mod, n)]
    if missing:
        pytest.skip(f"{module} does not export {missing} yet")


@pytest.fixture
def deps() -> None:
    _need("explainers", "explain")
    _need("metrics", "PerturbationScore", "GradientSignPerturbation", "PartLocalization")
    _need("datamodules", "SyntheticDataModule")
    _need("lightning_modules", "FineTuneClassifier")


NUM_TEST = 13  # odd, so 2 ranks cannot split it evenly
DATA = {
    "image_size": 32, "batch_size": 4, "num_workers": 0, "num_classes": 10,
    "num_train": 40, "num_test": NUM_TEST, "seed": 0,
}
EVAL = {
    "methods": ("gradcam", "linear_approx"), "threshold": None, "steps": (1, 2),
    "num_figures": 3, "max_batch": 64,
}


def _expected_keys(with_loc: bool) -> set[str]:
    keys = {f"eval/count/{m}" for m in EVAL["methods"]} | {"eval/num_samples"}
    for m in EVAL["methods"]:
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
            keys |= {f"eval/{q}/gradient/{c}/n{s}" for s in EVAL["steps"]}
    keys |= {f"eval/{q}/gradient" for q in ("clean_acc", "clean_logit", "clean_prob", "count")}
    return keys


def _test_run(tmp: Path, logger: object, with_ground_truth: bool = False) -> tuple[dict, object]:
    import lightning.pytorch as pl

    from callbacks import ContrastiveEvaluation
    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    pl.seed_everything(0)
    dm = SyntheticDataModule(**DATA, with_ground_truth=with_ground_truth)
    model = FineTuneClassifier(backbone="tiny_vgg", num_classes=10)
    cb = ContrastiveEvaluation(**EVAL, output_dir=str(tmp / "run"))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, inference_mode=False, logger=logger, callbacks=[cb],
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp),
    )
    trainer.test(model, datamodule=dm, verbose=False)
    return cb.results, trainer


def test_results_json_keys_csv_log_report_and_figures(deps: None, tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(str(tmp_path), name="csv")
    results, _ = _test_run(tmp_path, logger, with_ground_truth=True)
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk == pytest.approx(results)
    assert set(on_disk) == _expected_keys(with_loc=True)
    assert on_disk["eval/count/gradcam"] == NUM_TEST  # threshold None: every sample counts
    assert on_disk["eval/clean_relprob/gradcam/t1"] + on_disk["eval/clean_relprob/gradcam/t2"] \
        == pytest.approx(1.0)
    assert on_disk["eval/clean_relprob/gradcam/t1"] >= 0.5  # t1 is the top class
    with open(Path(logger.log_dir) / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    logged = {k: float(v) for row in rows for k, v in row.items() if k.startswith("eval/") and v}
    assert set(logged) == set(results)
    assert logged == pytest.approx(results, rel=1e-6)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "GaussBlur Pos ori" in report and "localisation" in report
    assert on_disk["eval/num_samples"] == NUM_TEST
    assert "**num_test**: 13" in report  # the data settings (datamodule hparams) are recorded
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["world_size"] == 1 and info["data"]["num_test"] == NUM_TEST
    assert info["evaluation"]["threshold"] is None and info["ckpt_path"] is None
    assert sorted(os.listdir(tmp_path / "run" / "figures")) == [
        "exemplars_gradcam.png", "exemplars_linear_approx.png",
        "heatmaps_gradcam.png", "heatmaps_linear_approx.png",
    ]


def _read_wandb_history(path: Path) -> tuple[dict[str, object], bool]:
    """Last value of every logged key (history, then summary) in an offline ``.wandb`` file, and
    whether the file already holds the run's closing ``exit`` record.

    The file is a 7-byte header, then 32 KiB blocks of records ``crc32 | length (u16 LE) | kind``
    (1 full, 2 first, 3 middle, 4 last); each joined record is a ``wandb_internal_pb2.Record``.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    pos, block, buf, values, closed = 7, 32768, b"", {}, False
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):  # a chunk still being written: read again later
            break
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf)
            buf = b""
            kind_name = record.WhichOneof("record_type")
            closed |= kind_name == "exit"
            if kind_name == "run":  # the run's identity: name, group, job type
                run = record.run
                values.update({"_run/display_name": run.display_name,
                               "_run/run_group": run.run_group, "_run/job_type": run.job_type})
            items = {"history": record.history.item, "summary": record.summary.update}
            for item in items.get(kind_name, ()):
                values[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return values, closed


def _read_closed_wandb_run(run_dir: Path, timeout_s: float = 60.0) -> dict[str, object]:
    """``_read_wandb_history`` of the run in ``run_dir`` once its ``exit`` record is on disk.

    CI once read a file without the final metrics right after ``finish()``; the likely cause is
    W&B's service process flushing its last block after ``finish()`` returns (not reproduced
    here), so poll until the closing record is there rather than trust the timing.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        (run_file,) = run_dir.glob("run-*.wandb")
        values, closed = _read_wandb_history(run_file)
        if closed:
            return values
        if time.monotonic() > deadline:
            pytest.fail(f"{run_file} has no exit record {timeout_s:.0f} s after finish()")
        time.sleep(0.2)


def test_wandb_offline_run_holds_the_logged_values(
    deps: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="whynot-test")
    results, _ = _test_run(tmp_path, logger)
    run_dir = Path(logger.experiment.dir).parent
    logger.experiment.finish()
    logged = _read_closed_wandb_run(run_dir)
    assert set(results) <= set(logged), sorted(set(results) - set(logged))[:5]
    for key, value in results.items():
        assert logged[key] == pytest.approx(value, rel=1e-6), key
    assert logged["eval/table/equal/_type"] == "table-file"
    assert logged["eval/table/equal/nrows"] == 4  # 2 methods x (t1, t2)
    assert "eval/heatmaps/gradcam/_type" in logged and "eval/exemplars/gradcam/_type" in logged
    assert list((run_dir / "files" / "media" / "table").rglob("*.table.json"))


# ------------------------------------------------------------------ evaluate.py as printed
# The README's command, `python evaluate.py --config configs/synthetic.yaml --ckpt_path CKPT`, on a
# shrunken copy of the synthetic experiment (tiny_vgg, 32 px, 13 test images, steps [1]); the DDP
# runs change only devices / accelerator / strategy.
SHRINK = ["--evaluation.threshold", "null", "--evaluation.steps", "[1]",
          "--evaluation.num_figures", "1", "--evaluation.max_batch", "64"]
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]


def _experiment_yaml(tmp: Path, data: dict | None = None) -> Path:
    """The synthetic experiment, shrunk, writing to ``tmp/tiny_synthetic`` (E)."""
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "default_root_dir": str(tmp / "tiny_synthetic")},
        "model": {"backbone": "tiny_vgg"},
        "data": {"class_path": "datamodules.SyntheticDataModule", "init_args": data or DATA},
    }
    path = tmp / "experiment.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def _checkpoint(tmp: Path) -> Path:
    import lightning.pytorch as pl

    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    pl.seed_everything(0)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=3, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
    )
    trainer.fit(FineTuneClassifier(backbone="tiny_vgg", num_classes=10),
                datamodule=SyntheticDataModule(**DATA))
    path = tmp / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny_vgg checkpoint (3 steps on the shrunken synthetic set) for the whole module."""
    _need("lightning_modules", "FineTuneClassifier")
    return _checkpoint(tmp_path_factory.mktemp("checkpoint"))


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    # No ~/.netrc W&B login: W&B stays offline.
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HOME": str(tmp)}


def _evaluate_cli(tmp: Path, ckpt: Path, *extra: str, data: dict | None = None,
                  env: dict[str, str] | None = None, launcher: tuple[str, ...] = ()
                  ) -> subprocess.CompletedProcess:
    """``python [launcher] evaluate.py --config <experiment> --ckpt_path CKPT <shrink> <extra>``
    in ``tmp``."""
    args = [sys.executable, *launcher, str(ROOT / "evaluate.py"), "--config",
            str(_experiment_yaml(tmp, data)), "--ckpt_path", str(ckpt), *SHRINK, *extra]
    return run_cli(args, cwd=tmp, env={**_env(tmp), **(env or {})}, timeout=300)


def _only_results(tmp: Path) -> tuple[Path, dict[str, float]]:
    """The one results.json under ``tmp``: it must be ``E/evaluate/version_0/results.json``."""
    found = sorted(tmp.rglob("results.json"))
    run = tmp / "tiny_synthetic" / "evaluate" / "version_0"
    assert found == [run / "results.json"], found
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0"]
    return run, json.loads(found[0].read_text())


@pytest.fixture(scope="module")
def one_process(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[
        Path, subprocess.CompletedProcess]:
    """The 1-process run every DDP run is compared with: its folder and the process."""
    tmp = tmp_path_factory.mktemp("one_process")
    return tmp, _evaluate_cli(tmp, checkpoint)


def test_evaluate_writes_the_run_folder(
    deps: None, checkpoint: Path, one_process: tuple[Path, subprocess.CompletedProcess]
) -> None:
    """No --evaluation.output_dir: everything in E/evaluate/version_0, run.json as specified."""
    tmp, proc = one_process
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GaussBlur" in proc.stdout  # the paper-layout table is printed
    run, results = _only_results(tmp)
    assert results["eval/count/gradcam"] == NUM_TEST
    names = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert {"config.yaml", "metrics.csv", "results.json", "report.md", "run.json",
            "figures/heatmaps_gradcam.png", "figures/heatmaps_linear_approx.png"} <= names
    e = tmp / "tiny_synthetic"
    assert sorted(p.name for p in e.iterdir()) == ["evaluate"]  # no checkpoints/, lightning_logs/
    info = json.loads((run / "run.json").read_text())
    assert info["whynot_protocol"] == 1 and info["stage"] == "evaluate"
    assert info["experiment"] == "tiny_synthetic" and info["dataset"] == "synthetic"
    assert info["datamodule"] == "datamodules.synthetic.SyntheticDataModule"
    assert (info["backbone"], info["num_classes"]) == ("tiny_vgg", 10)
    assert info["ckpt_path"] == str(checkpoint) and info["world_size"] == 1
    assert info["precision"] == "32-true"
    assert info["evaluation"]["methods"] == ["gradcam", "linear_approx"]
    assert info["evaluation"]["steps"] == [1] and info["evaluation"]["threshold"] is None
    assert info["data"]["num_test"] == NUM_TEST and info["data"]["with_ground_truth"] is True
    finished = datetime.fromisoformat(info["finished"])
    assert finished.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - finished).total_seconds()) < 3600
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["ckpt_path"] == str(checkpoint) and saved["evaluation"]["steps"] == [1]
    # The success message names the files, all of which exist.
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("evaluate.py finished:")]
    listed = line.split(": ", 1)[1].rsplit(" in ", 1)
    assert Path(listed[1]) == run
    for name in listed[0].split(", "):
        assert (run / name).is_file(), name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("case", ["plain", "wandb", "no_gradient_sign", "torchrun"])
def test_ddp_two_processes_equal_one(
    deps: None, checkpoint: Path, one_process: tuple[Path, subprocess.CompletedProcess],
    tmp_path: Path, case: str
) -> None:
    """2 gloo processes, the README's command (no output_dir): one results.json, = 1 process.

    Lightning starts rank 1 by re-running the command once rank 0 runs; torchrun starts both at
    once. Either way the ranks agree on one run folder, version_0.
    """
    extra = {"no_gradient_sign": ["--evaluation.gradient_sign", "false"],
             "wandb": ["--config", str(ROOT / "configs" / "logger" / "wandb.yaml")]}.get(case, [])
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(_free_port())) if case == "torchrun" else ()
    proc = _evaluate_cli(tmp_path, checkpoint, *DDP, *extra, launcher=launcher)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sync_dist" not in proc.stderr  # Lightning's advice for already-reduced values
    run, two = _only_results(tmp_path)
    _, one = _only_results(one_process[0])
    if case == "no_gradient_sign":
        assert not any("/gradient" in k for k in two)
        one = {k: v for k, v in one.items() if "/gradient" not in k}
    assert set(two) == set(one) and two["eval/count/gradcam"] == NUM_TEST
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
    info = json.loads((run / "run.json").read_text())
    assert info["world_size"] == 2
    assert info["evaluation"]["gradient_sign"] is (case != "no_gradient_sign")
    assert (run / "config.yaml").is_file() and (run / "report.md").is_file()
    if case == "wandb":
        (wandb_run,) = (tmp_path / "tiny_synthetic" / "wandb").glob("offline-run-*")
        logged = _read_closed_wandb_run(wandb_run)
        assert logged["_run/display_name"] == "tiny_synthetic/evaluate/version_0"
        assert logged["_run/run_group"] == "tiny_synthetic"
        assert logged["_run/job_type"] == "evaluate"
        assert logged["eval/count/gradcam"] == NUM_TEST


def test_ddp_split_smaller_than_the_world(deps: None, checkpoint: Path, tmp_path: Path) -> None:
    """A 1-image test split on 2 ranks: rank 1 has nothing and contributes nothing."""
    data = {**DATA, "num_test": 1}
    for sub in ("one", "two"):
        (tmp_path / sub).mkdir()
    proc = _evaluate_cli(tmp_path / "two", checkpoint, *DDP, data=data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, two = _only_results(tmp_path / "two")
    from cli.evaluate import main

    one = main(["--config", str(_experiment_yaml(tmp_path / "one", data)),
                "--ckpt_path", str(checkpoint), *SHRINK])
    assert one["eval/count/gradcam"] == 1 and set(two) == set(one)
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key


def test_class_count_mismatch_is_a_clear_error(
    deps: None, checkpoint: Path, tmp_path: Path
) -> None:
    res = _evaluate_cli(tmp_path, checkpoint, "--data.init_args.num_classes", "6")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("evaluate.py: error:")]
    assert "has 10 classes but the model/data have 6" in line
    # The failed try leaves no run folder behind.
    assert not list(tmp_path.rglob("version_*"))


def test_missing_checkpoint_names_the_path(
    deps: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli.evaluate import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(_experiment_yaml(tmp_path)), "--ckpt_path", "nope.ckpt"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "\nevaluate.py: error: checkpoint 'nope.ckpt' does not exist" in f"\n{err}", err
    assert "Traceback" not in err


@pytest.mark.slow
def test_synthetic_weighted_beats_original(deps: None, tmp_path: Path) -> None:
    """Fine-tuned tiny_vgg on the synthetic set: the paper's directions (pos up, neg down)."""
    import lightning.pytorch as pl

    from callbacks import ContrastiveEvaluation
    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    pl.seed_everything(0)
    data = {**DATA, "image_size": 64, "batch_size": 64, "num_train": 2000, "num_test": 200}
    model = FineTuneClassifier(backbone="tiny_vgg", num_classes=10, lr=0.05)
    pl.Trainer(accelerator="cpu", max_epochs=6, logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False).fit(
        model, datamodule=SyntheticDataModule(**data))
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


def test_unknown_layer_lists_the_networks_own_names(deps: None, tmp_path: Path) -> None:
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
                     datamodule=SyntheticDataModule(**DATA), verbose=False)
    assert "'features.12'" in str(err.value) and "'net." not in str(err.value)
