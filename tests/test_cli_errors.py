"""train.py / evaluate.py as a user meets them: help, exit codes, one-message errors, no false
success. Every case runs the script in a subprocess, as a shell would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dataset_layouts import make_cub
from tests.test_evaluate import DATA, _checkpoint

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--model.backbone", "tiny_vgg", "--model.pretrained", "null", "--data.image_size", "32",
        "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _run(tmp: Path, script: str, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "WHYNOT_DEBUG"}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=tmp,
                          env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
                          capture_output=True, text=True, timeout=300)


def _error_line(proc: subprocess.CompletedProcess, prog: str) -> str:
    """The one ``<prog>: error: ...`` line; no traceback, nothing after but the debug hint."""
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith(f"{prog}: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert proc.stderr.rstrip().endswith("(WHYNOT_DEBUG=1 shows the traceback.)")
    return lines[0]


def _synthetic_yaml(tmp: Path) -> Path:
    cfg = {"seed_everything": 0,
           "trainer": {"default_root_dir": str(tmp / "outputs" / "tiny"), "max_epochs": 1},
           "model": {"backbone": "tiny_vgg"},
           "data": {"class_path": "datamodules.SyntheticDataModule", "init_args": DATA}}
    path = tmp / "synthetic_tiny.yaml"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny_vgg checkpoint, 10 classes."""
    return _checkpoint(tmp_path_factory.mktemp("checkpoint"))


def test_evaluate_without_arguments_explains_itself(tmp_path: Path) -> None:
    proc = _run(tmp_path, "evaluate.py")
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("Evaluate a fine-tuned checkpoint with the faithfulness protocol")
    assert "examples:" in lines and "arguments are required" not in proc.stderr
    examples = proc.stderr.split("examples:")[1]
    for must in ("--config configs/synthetic.yaml", "configs/experiments/cub200_vgg16_bn.yaml",
                 "--trainer.devices 4", "--config FILE"):
        assert must in examples, must
    assert len(lines) < 30


def test_train_help_opens_with_what_it_does(tmp_path: Path) -> None:
    proc = _run(tmp_path, "train.py", "--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("Fine-tune an image classifier (fit)")
    head = proc.stdout.split("usage:")[0]
    for must in ("python train.py fit --config configs/synthetic.yaml",
                 "--data.root /data/CUB_200_2011", "--config configs/trainer/ddp.yaml",
                 "--config FILE", "WHYNOT_DEBUG=1"):
        assert must in head, must
    bare = _run(tmp_path, "train.py")
    assert bare.returncode == 2 and bare.stderr.startswith("Fine-tune an image classifier")


def test_bad_options_are_one_message(tmp_path: Path) -> None:
    config = str(_synthetic_yaml(tmp_path))
    proc = _run(tmp_path, "train.py", "fit", "--config", config, "--model.optimizer", "adam")
    assert proc.returncode == 1
    assert _error_line(proc, "train.py") == \
        "train.py: error: optimizer='adam' is not one of ('sgd', 'adamw')"
    parse = _run(tmp_path, "train.py", "fit", "--config", config, "--trainer.max_epochs", "abc")
    assert parse.returncode == 2
    assert "usage:" not in parse.stderr and "Given value: abc" in parse.stderr
    assert parse.stderr.startswith("train.py fit: error:")
    assert len(parse.stderr.splitlines()) < 15
    assert not list(tmp_path.rglob("version_*"))


def test_missing_data_names_the_folder(tmp_path: Path) -> None:
    proc = _run(tmp_path, "train.py", "fit", "--config",
                str(ROOT / "configs" / "experiments" / "fgvc_aircraft_alexnet.yaml"),
                "--data.root", str(tmp_path / "nowhere"), *TINY)
    assert proc.returncode == 1
    line = _error_line(proc, "train.py")
    assert f"FGVC-Aircraft not found or incomplete in {tmp_path / 'nowhere'}" in line


def test_checkpoint_of_another_backbone_names_both(checkpoint: Path, tmp_path: Path) -> None:
    proc = _run(tmp_path, "evaluate.py", "--config", str(_synthetic_yaml(tmp_path)),
                "--ckpt_path", str(checkpoint), "--model.backbone", "tiny_resnet")
    assert proc.returncode == 1
    line = _error_line(proc, "evaluate.py")
    assert "holds a 'tiny_vgg' model, but the configured backbone is 'tiny_resnet'" in line
    assert "--model.backbone tiny_vgg" in line and "size mismatch" not in proc.stderr
    assert not list(tmp_path.rglob("version_*"))  # the failed try left no run folder


def test_test_stage_without_a_checkpoint_says_where_it_looked(tmp_path: Path) -> None:
    proc = _run(tmp_path, "train.py", "test", "--config", str(_synthetic_yaml(tmp_path)),
                "--ckpt_path", "last")
    assert proc.returncode == 1
    line = _error_line(proc, "train.py")
    assert f"--ckpt_path last: there is no last*.ckpt in {tmp_path / 'outputs/tiny/checkpoints'}" \
        in line and "train.py fit" in line


@pytest.mark.parametrize("script", ["evaluate.py", "train.py"])
def test_empty_test_split_fails_and_writes_nothing(
    checkpoint: Path, tmp_path: Path, script: str
) -> None:
    """A CUB folder whose split file marks no image as test: an error, not a success."""
    make_cub(tmp_path / "data")
    split = tmp_path / "data" / "CUB_200_2011" / "train_test_split.txt"
    split.write_text("".join(f"{line.split()[0]} 1\n" for line in split.read_text().splitlines()))
    args = ["--config", str(ROOT / "configs" / "experiments" / "cub200_alexnet.yaml"),
            "--data.root", str(tmp_path / "data" / "CUB_200_2011"), *TINY,
            "--trainer.default_root_dir", str(tmp_path / "out"), "--ckpt_path", str(checkpoint)]
    proc = _run(tmp_path, script, *(["test"] if script == "train.py" else []), *args)
    assert proc.returncode == 1
    line = _error_line(proc, script)
    action = "evaluate" if script == "evaluate.py" else "test"
    assert f"the test split of CUB-200-2011 is empty, nothing to {action}" in line
    assert "lists no test images" in line
    assert "finished" not in proc.stdout and not list(tmp_path.rglob("results.json"))
    assert not list(tmp_path.rglob("version_*"))
