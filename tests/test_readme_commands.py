"""Every `python train.py ...` / `python evaluate.py ...` command of the README runs as printed.

The commands are read from the README's bash blocks; only placeholders are substituted (`/data/...`
-> a miniature copy of the data set, `PATH` -> a checkpoint). Commands for GPUs or several nodes
(`configs/trainer/ddp.yaml`, torchrun, srun) are parsed (`--print_config`); every other one runs
for real, shrunk by appended size options (tiny_vgg, 32 px, one epoch, steps [1]), in README
order except that the fits run first (the later commands read their checkpoints).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.dataset_layouts import make_cub

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SCRIPTS = ("train.py", "evaluate.py")
MULTI_DEVICE = ("configs/trainer/ddp.yaml", "torchrun", "srun")
SHRINK = ["--model.backbone", "tiny_vgg", "--model.pretrained", "null",
          "--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0",
          "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SHRINK_SYNTHETIC = ["--data.num_train", "40", "--data.num_test", "6"]
SHRINK_EVALUATION = ["--evaluation.steps", "[1]", "--evaluation.threshold", "null",
                     "--evaluation.num_figures", "1"]


def readme_commands(text: str) -> list[tuple[list[str], bool]]:
    """``(argv from the script on, multi_device)`` for each train.py / evaluate.py command."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            tokens = shlex.split(line, comments=True)
            scripts = [i for i, t in enumerate(tokens) if t in SCRIPTS]
            if scripts:
                multi = any(m in line for m in MULTI_DEVICE)
                commands.append((tokens[scripts[0]:], multi))
    return commands


def _substitute(argv: list[str], data: Path, ckpt: Path) -> list[str]:
    out = []
    for token in argv:
        if token == "PATH":
            token = str(ckpt)
        elif token == "/data" or token.startswith("/data/"):
            token = str(data) + token[len("/data"):]
        out.append(token)
    return out


def test_readme_has_the_commands_it_promises() -> None:
    commands = readme_commands(README.read_text())
    scripts = {(argv[0], argv[1] if argv[0] == "train.py" else "") for argv, _ in commands}
    assert {("train.py", "fit"), ("train.py", "validate"), ("train.py", "test"),
            ("evaluate.py", "")} <= scripts
    assert any(multi for _, multi in commands) and sum(not m for _, m in commands) >= 6


def test_makefile_demo_runs_the_readme_demo() -> None:
    """`make demo` runs exactly the two commands the README's demo section prints."""
    make = (ROOT / "Makefile").read_text()
    configs = re.search(r"^DEMO_CONFIGS := (.*)$", make, flags=re.M).group(1)
    recipe = re.search(r"^demo:.*\n((?:\t.*\n?)+)", make, flags=re.M).group(1)
    recipe = re.sub(r"\\\n\s*", " ", recipe).replace("$(DEMO_CONFIGS)", configs)
    make_cmds = [shlex.split(x.replace("$(PY)", "python"))[1:] for x in recipe.splitlines() if x]
    demo = README.read_text().split("## The demo", 1)[1].split("\n## ", 1)[0]
    assert make_cmds == [argv for argv, _ in readme_commands(demo)]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from cli.evaluate import main as evaluate_main
    from cli.train import main as train_main

    main = train_main if argv[0] == "train.py" else evaluate_main
    try:
        main(argv[1:])
    except SystemExit as stop:
        out = capsys.readouterr()
        assert stop.code == 0, f"{shlex.join(argv)} exited {stop.code}: {out.err[-2000:]}"
        return out.out
    return capsys.readouterr().out


def test_readme_commands_run_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_NAME", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE",
                "WANDB_TAGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no W&B login: offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the README's relative config paths
    make_cub(tmp_path / "data")
    ckpt = tmp_path / "outputs" / "cub200_vgg16_bn" / "checkpoints" / "last.ckpt"
    commands = [(_substitute(argv, tmp_path / "data", ckpt), multi)
                for argv, multi in readme_commands(README.read_text())]
    fits_first = sorted(commands, key=lambda c: not (c[0][0] == "train.py" and c[0][1] == "fit"))
    for argv, multi in fits_first:
        if multi:  # GPUs / nodes: the command must parse, with its own devices and strategy
            printed = yaml.safe_load(_run([*argv, "--print_config"], capsys))
            assert printed["trainer"]["strategy"] == "ddp", shlex.join(argv)
            continue
        synthetic = "configs/synthetic.yaml" in argv
        shrink = [*SHRINK, *(SHRINK_SYNTHETIC if synthetic else [])]
        if argv[0] == "evaluate.py":
            shrink += SHRINK_EVALUATION
        stage = argv[1] if argv[0] == "train.py" else "evaluate"
        experiment = tmp_path / "outputs" / ("synthetic" if synthetic else "cub200_vgg16_bn")
        before = set((experiment / stage).glob("version_*"))
        out = _run([*argv, *shrink], capsys)
        (run,) = set((experiment / stage).glob("version_*")) - before
        assert f"{argv[0]} {'' if stage == 'evaluate' else stage + ' '}finished" in out
        wrote = {"fit": "metrics.csv", "validate": "metrics.csv", "test": "metrics.csv",
                 "evaluate": "results.json"}[stage]
        assert (run / wrote).is_file() and (run / "config.yaml").is_file(), shlex.join(argv)
        if stage == "fit":
            assert (experiment / "checkpoints" / "last.ckpt").is_file()
