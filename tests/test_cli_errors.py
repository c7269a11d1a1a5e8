"""train.py / evaluate.py as a user meets them: help, exit codes, one-message errors, no false
success. The exit-code contracts (1: a whynot error, 2: a malformed command line) run as a shell
runs them, in subprocesses; every other case calls the CLI's ``main`` in this process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.background import Job
from tests.conftest import ROOT, experiment_yaml
from tests.dataset_layouts import make_cub

TINY = ["--model.backbone", "tiny_vgg", "--model.pretrained", "null", "--data.image_size", "32",
        "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
DEBUG_HINT = "(WHYNOT_DEBUG=1 shows the traceback.)"


def _main(script: str) -> Callable[[list[str]], object]:
    if script == "train.py":
        from cli.train import main
    else:
        from cli.evaluate import main
    return main


def _run(script: str, args: list[str], capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``<script> args`` in this process."""
    monkeypatch.delenv("WHYNOT_DEBUG", raising=False)
    try:
        _main(script)(args)
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _error_line(err: str, prog: str) -> str:
    """The one ``<prog>: error: ...`` line; no traceback, nothing after but the debug hint."""
    assert "Traceback" not in err, err[-3000:]
    lines = [x for x in err.splitlines() if x.startswith(f"{prog}: error:")]
    assert len(lines) == 1, err[-3000:]
    assert err.rstrip().endswith(DEBUG_HINT)
    return lines[0]


# ---------------------------------------------------------------- exit codes, as a shell sees
def test_a_whynot_error_exits_1_with_one_line(exit_code_runs: Job) -> None:
    """A checkpoint of another backbone: both names and the fix, exit 1, no run folder left."""
    folder, proc = exit_code_runs.result()["error"]
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = _error_line(proc.stderr, "evaluate.py")
    assert "holds a 'tiny_vgg' model, but the configured backbone is 'tiny_resnet'" in line
    assert "--model.backbone tiny_vgg" in line and "size mismatch" not in proc.stderr
    assert not list(folder.rglob("version_*"))  # the failed try left no run folder


def test_a_command_without_arguments_exits_2_with_its_help(exit_code_runs: Job) -> None:
    """A bare ``python evaluate.py``: what it does and examples on stderr, exit 2, at once (the
    help needs no torch)."""
    folder, proc = exit_code_runs.result()["usage"]
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("Evaluate a fine-tuned checkpoint with the faithfulness protocol")
    assert "examples:" in lines and "arguments are required" not in proc.stderr
    examples = proc.stderr.split("examples:")[1]
    for must in ("--config configs/synthetic.yaml", "configs/experiments/cub200_vgg16_bn.yaml",
                 "--trainer.devices 4", "--config FILE"):
        assert must in examples, must
    assert len(lines) < 30 and proc.stdout == "" and not list(folder.iterdir())


# ----------------------------------------------------------------------- in this process
def test_train_help_opens_with_what_it_does(capsys, monkeypatch) -> None:
    code, out, _ = _run("train.py", ["--help"], capsys, monkeypatch)
    assert code == 0
    assert out.startswith("Fine-tune an image classifier (fit)")
    head = out.split("usage:")[0]
    for must in ("python train.py fit --config configs/synthetic.yaml",
                 "--data.root /data/CUB_200_2011", "--config configs/trainer/ddp.yaml",
                 "--config FILE", "WHYNOT_DEBUG=1"):
        assert must in head, must
    code, _, err = _run("train.py", [], capsys, monkeypatch)
    assert code == 2 and err.startswith("Fine-tune an image classifier")


def test_bad_options_are_one_message(tmp_path: Path, capsys, monkeypatch) -> None:
    config = str(experiment_yaml(tmp_path))
    code, _, err = _run("train.py", ["fit", "--config", config, "--model.optimizer", "adam"],
                        capsys, monkeypatch)
    assert code == 1
    assert _error_line(err, "train.py") == \
        "train.py: error: optimizer='adam' is not one of ('sgd', 'adamw')"
    # a malformed value: the parser's message alone, exit 2 (as the shell sees it:
    # test_a_command_without_arguments_exits_2_with_its_help)
    code, _, err = _run("train.py", ["fit", "--config", config, "--trainer.max_epochs", "abc"],
                        capsys, monkeypatch)
    assert code == 2
    assert "usage:" not in err and "Given value: abc" in err
    assert err.startswith("train.py fit: error:") and len(err.splitlines()) < 15
    assert not list(tmp_path.rglob("version_*"))


def test_missing_data_names_the_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = _run("train.py", [
        "fit", "--config", str(ROOT / "configs" / "experiments" / "fgvc_aircraft_alexnet.yaml"),
        "--data.root", str(tmp_path / "nowhere"), *TINY,
        "--trainer.default_root_dir", str(tmp_path / "out")], capsys, monkeypatch)
    assert code == 1
    line = _error_line(err, "train.py")
    assert f"FGVC-Aircraft not found or incomplete in {tmp_path / 'nowhere'}" in line


def test_test_stage_without_a_checkpoint_says_where_it_looked(tmp_path: Path, capsys,
                                                              monkeypatch) -> None:
    code, _, err = _run("train.py", ["test", "--config", str(experiment_yaml(tmp_path)),
                                     "--ckpt_path", "last"], capsys, monkeypatch)
    assert code == 1
    line = _error_line(err, "train.py")
    folder = tmp_path / "tiny_synthetic" / "checkpoints"
    assert f"--ckpt_path last: there is no last*.ckpt in {folder}" in line
    assert "train.py fit" in line


@pytest.mark.parametrize("script", ["evaluate.py", "train.py"])
def test_empty_test_split_fails_and_writes_nothing(
    tiny_checkpoint: Path, tmp_path: Path, script: str, capsys, monkeypatch
) -> None:
    """A CUB folder whose split file marks no image as test: an error, not a success."""
    make_cub(tmp_path / "data")
    split = tmp_path / "data" / "CUB_200_2011" / "train_test_split.txt"
    split.write_text("".join(f"{line.split()[0]} 1\n" for line in split.read_text().splitlines()))
    args = ["--config", str(ROOT / "configs" / "experiments" / "cub200_alexnet.yaml"),
            "--data.root", str(tmp_path / "data" / "CUB_200_2011"), *TINY,
            "--trainer.default_root_dir", str(tmp_path / "out"),
            "--ckpt_path", str(tiny_checkpoint)]
    code, out, err = _run(script, [*(["test"] if script == "train.py" else []), *args],
                          capsys, monkeypatch)
    assert code == 1
    line = _error_line(err, script)
    action = "evaluate" if script == "evaluate.py" else "test"
    assert f"the test split of CUB-200-2011 is empty, nothing to {action}" in line
    assert "lists no test images" in line
    assert "finished" not in out and not list(tmp_path.rglob("results.json"))
    assert not list(tmp_path.rglob("version_*"))
