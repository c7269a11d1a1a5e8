"""Bad inputs a new user makes, each a one-line error before any work is done (exit 1 for a
whynot error, 2 for a malformed command line), and the good-but-surprising ones that must run:
a single value for a list option, a threshold that selects no sample, a checkpoint evaluated
without the configured pretrained weights in the cache.

In this process, like ``test_cli_errors.py`` (``main`` raises the same ``SystemExit`` a shell
sees); one slow test runs a truncated checkpoint as a shell runs it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY_EVALUATION, cli_env, experiment_yaml, strict_json
from tests.dataset_layouts import make_cub
from tests.processes import run_cli
from tests.test_cli_errors import TINY, _error_line, _run

CUB_ALEXNET = str(ROOT / "configs" / "experiments" / "cub200_alexnet.yaml")


def _bad_checkpoint(kind: str, good: Path, tmp: Path) -> Path:
    """A checkpoint gone wrong in one of the ways users meet."""
    import torch

    if kind == "truncated":
        data = good.read_bytes()
        (tmp / "cut.ckpt").write_bytes(data[: len(data) // 2])
        return tmp / "cut.ckpt"
    if kind == "empty":
        (tmp / "empty.ckpt").write_bytes(b"")
        return tmp / "empty.ckpt"
    if kind == "state_dict":
        sd = torch.load(good, map_location="cpu", weights_only=True)["state_dict"]
        torch.save(sd, tmp / "weights.pth")
        return tmp / "weights.pth"
    folder = tmp / "checkpoints"
    folder.mkdir()
    (folder / "last.ckpt").write_bytes(good.read_bytes())
    return folder


CHECKPOINT_ROWS = {
    "truncated": ["cannot be read as a checkpoint", "truncated", "failed finding central"],
    "empty": ["is empty (0 bytes)"],
    "state_dict": ["holds plain weights (a state dict)", "--model.pretrained", "no --ckpt_path"],
    "folder": ["is a folder, not a checkpoint file", "last.ckpt"],
}


@pytest.mark.parametrize("kind", [
    "truncated", "state_dict",
    *(pytest.param(k, marks=pytest.mark.slow) for k in ("empty", "folder"))])
def test_a_bad_checkpoint_is_one_line_before_any_work(
        kind: str, tiny_checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    ckpt = _bad_checkpoint(kind, tiny_checkpoint, tmp_path)
    code, out, err = _run("evaluate.py", ["--config", str(experiment_yaml(tmp_path)),
                                          "--ckpt_path", str(ckpt)], capsys, monkeypatch)
    assert code == 1
    line = _error_line(err, "evaluate.py")
    assert f"--ckpt_path {ckpt}" in line
    for must in CHECKPOINT_ROWS[kind]:
        assert must in line, (must, line)
    if kind == "state_dict":
        assert f"--model.pretrained {ckpt}" in line
    assert out == "" and not list(tmp_path.rglob("version_*"))  # before the run folder


@pytest.mark.slow
def test_train_test_refuses_a_truncated_checkpoint(tiny_checkpoint: Path, tmp_path: Path,
                                                   capsys, monkeypatch) -> None:
    ckpt = _bad_checkpoint("truncated", tiny_checkpoint, tmp_path)
    code, _, err = _run("train.py", ["test", "--config", str(experiment_yaml(tmp_path)),
                                     "--ckpt_path", str(ckpt)], capsys, monkeypatch)
    assert code == 1
    assert "cannot be read as a checkpoint" in _error_line(err, "train.py")


@pytest.mark.slow
@pytest.mark.parametrize(("option", "value"), [("batch_size", "0"), ("image_size", "0"),
                                               ("batch_size", "-4")])
def test_a_size_below_one_is_one_line(option: str, value: str, tmp_path: Path, capsys,
                                      monkeypatch) -> None:
    code, _, err = _run("evaluate.py", ["--config", str(experiment_yaml(tmp_path)),
                                        f"--data.{option}", value], capsys, monkeypatch)
    assert code == 1
    line = _error_line(err, "evaluate.py")
    assert f"--data.{option} {value}: use an integer >=" in line
    assert not list(tmp_path.rglob("version_*"))


def test_an_output_dir_under_a_file_fails_before_the_first_batch(
        tiny_checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "a_file").write_text("x")
    out = tmp_path / "a_file" / "results"
    code, stdout, err = _run("evaluate.py", [
        "--config", str(experiment_yaml(tmp_path)), "--ckpt_path", str(tiny_checkpoint),
        "--evaluation.output_dir", str(out)], capsys, monkeypatch)
    assert code == 1
    line = _error_line(err, "evaluate.py")
    assert f"--evaluation.output_dir {out}: {tmp_path / 'a_file'} is a file, not a folder" in line
    assert stdout == "" and not list(tmp_path.rglob("version_*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_unwritable_output_dir_fails_before_the_first_batch(
        tiny_checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = _run("evaluate.py", [
            "--config", str(experiment_yaml(tmp_path)), "--ckpt_path", str(tiny_checkpoint),
            "--evaluation.output_dir", str(locked / "run")], capsys, monkeypatch)
    finally:
        locked.chmod(0o755)
    assert code == 1
    line = _error_line(err, "evaluate.py")
    assert f"--evaluation.output_dir {locked / 'run'}: the folder {locked} holding it is not " \
           "writable" in line
    assert not list(tmp_path.rglob("version_*"))


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path: Path, capsys,
                                                     monkeypatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epochs: 1\nmodel:\n  backbone: tiny_vgg: x\n")
    code, _, err = _run("evaluate.py", ["--config", str(bad)], capsys, monkeypatch)
    assert code == 1
    line = _error_line(err, "evaluate.py")
    assert f"--config {bad}: line 4, column 21: YAML syntax error: mapping values are not " \
           "allowed here" in line


def test_an_option_before_config_says_to_move_it(tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = _run("evaluate.py", ["--data.root", str(tmp_path), "--config", CUB_ALEXNET],
                        capsys, monkeypatch)
    assert code == 2
    first = err.splitlines()[0]
    assert first == ("evaluate.py: error: --data.root came before --config, and options are "
                     "read in the order given, before the config has chosen the classes they "
                     "belong to: move it after --config.")
    assert len(err.splitlines()) == 2 and "Union subtypes" not in err


@pytest.mark.slow
def test_a_checkpoint_needs_no_pretrained_weights_and_a_threshold_that_selects_nothing_says_so(
        tiny_checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """cub200_alexnet.yaml names ImageNet weights that are not in this (empty) cache: with
    --ckpt_path they are never read. ``--evaluation.methods gradcam`` is a one-element list.
    No sample passes ``--evaluation.threshold 0.9`` (p_t2 <= 0.5 always): exit 0, one warning
    naming the option, ``null`` with its reason in the files."""
    make_cub(tmp_path / "data", num_classes=10, per_class=2)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    tiny = [a for a in TINY if a not in ("--model.pretrained", "null")]
    out = tmp_path / "out"
    code, _, err = _run("evaluate.py", [
        "--config", CUB_ALEXNET, "--data.root", str(tmp_path / "data" / "CUB_200_2011"), *tiny,
        "--trainer.default_root_dir", str(tmp_path / "E"), "--ckpt_path", str(tiny_checkpoint),
        *TINY_EVALUATION, "--evaluation.methods", "gradcam", "--evaluation.threshold", "0.9",
        "--evaluation.gradient_sign", "false", "--evaluation.num_figures", "0",
        "--evaluation.output_dir", str(out)], capsys, monkeypatch)
    assert code == 0, err[-3000:]
    notice = [x for x in err.splitlines() if x.startswith("evaluate.py: warning:")]
    assert notice == ["evaluate.py: warning: no test sample passed --evaluation.threshold 0.9 "
                      "(a sample needs p_t2 > 0.9), so the perturbation and localisation tables "
                      "are empty (null in results.json); lower it, or pass "
                      "--evaluation.threshold null to take every sample."]
    results = strict_json(out / "results.json")
    run = strict_json(out / "run.json")
    assert run["evaluation"]["methods"] == ["gradcam"]
    assert {k.split("/")[2] for k in results if k.startswith("eval/relprob/")} == {"gradcam"}
    assert results["eval/count/gradcam"] == 0 and results["eval/num_samples"] == 10
    nulls = sorted(k for k, v in results.items() if v is None)
    assert nulls and sorted(run["undefined"]) == nulls
    assert set(run["undefined"].values()) == {
        "no sample selected (none passed --evaluation.threshold 0.9)"}
    # what was run: the layer hooked, the size, the checkpoint and that no weights were read
    assert run["layer_hooked"] == "features.12" and run["image_size"] == 32
    assert run["checkpoint"] == {"path": str(tiny_checkpoint), "epoch": 1, "global_step": 3,
                                 "backbone": "tiny_vgg", "pretrained": None}
    report = (out / "report.md").read_text()
    assert "- **layer hooked**: features.12" in report
    assert f"- **undefined values**: {len(nulls)} values are null in results.json" in report
    assert not (tmp_path / "empty_cache").exists()


def test_the_tiny_evaluation_records_what_was_run(tiny_evaluation) -> None:
    run = strict_json(tiny_evaluation.run / "run.json")
    strict_json(tiny_evaluation.run / "results.json")
    assert run["layer_hooked"] == "features.12" and run["evaluation"]["layer"] is None
    assert run["image_size"] == 32 and run["precision"] == "32-true"
    assert run["checkpoint"]["epoch"] == 1 and run["checkpoint"]["global_step"] == 3
    assert run["undefined"] == {} and not (tiny_evaluation.run / ".whynot.lock").exists()
    assert "- **undefined values**: none" in (tiny_evaluation.run / "report.md").read_text()


# --------------------------------------------------------------------- as a shell runs it
@pytest.mark.slow
def test_a_truncated_checkpoint_exits_1_in_a_shell(tiny_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "shell"
    folder.mkdir()
    ckpt = _bad_checkpoint("truncated", tiny_checkpoint, tmp_path)
    proc = run_cli([sys.executable, str(ROOT / "evaluate.py"), "--config",
                    str(experiment_yaml(folder)), "--ckpt_path", str(ckpt)],
                   cwd=folder, env=cli_env(folder), timeout=400)
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = _error_line(proc.stderr, "evaluate.py")
    assert "cannot be read as a checkpoint" in line and proc.stdout == ""
    assert not list(folder.rglob("version_*"))


def test_strict_json_refuses_nan(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"a": float("nan")}))
    with pytest.raises(ValueError, match="NaN"):
        strict_json(tmp_path / "r.json")


def test_a_single_value_of_a_list_option_is_a_one_element_list() -> None:
    from callbacks.contrastive_evaluation import ContrastiveEvaluation
    from cli.arguments import list_options, lists_from_single_values

    options = list_options(ContrastiveEvaluation, "evaluation")
    assert options == {f"--evaluation.{n}" for n in ("methods", "contrasts", "baselines",
                                                       "modes", "maskings", "steps",
                                                       "curve_baselines")}
    argv = ["--evaluation.methods", "gradcam", "--evaluation.steps=1", "--evaluation.modes",
            "[pos, neg]", "--evaluation.maskings", "null", "--evaluation.layer", "features.3"]
    assert lists_from_single_values(argv, options) == [
        "--evaluation.methods", "[gradcam]", "--evaluation.steps=[1]", "--evaluation.modes",
        "[pos, neg]", "--evaluation.maskings", "null", "--evaluation.layer", "features.3"]
