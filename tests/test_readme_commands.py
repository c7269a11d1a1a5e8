"""The documentation works as printed: README.md and every page of docs/.

Every `python train.py ...` / `python evaluate.py ...` command in a ```bash block of README.md or
of a `docs/*.md` page runs as printed; only placeholders are substituted (`/data/...` -> a
miniature copy of the data set, `/data/birds` -> a miniature image folder, `PATH` -> a
checkpoint, `my_model.pth` -> a state dict of the shrunk model for the birds, which the command
then evaluates instead of `--model.pretrained null`). Commands for GPUs or several nodes
(`configs/trainer/ddp.yaml`, torchrun, srun) are parsed (`--print_config`); every other one runs
for real, shrunk by appended size options (tiny_vgg, 32 px, one epoch, steps [1]), in document
order (README first, then the pages by name) except that the fits run first (the later commands
read their checkpoints); a command printed on several pages runs once.

Beside them: `make demo` runs the README's demo commands, the README's Python example runs,
README.md stays a front page (at most 12 KB), and every relative link resolves (files exist,
`#anchors` match a heading of the linked page).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.dataset_layouts import make_cub, make_image_folder

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 12_000
SCRIPTS = ("train.py", "evaluate.py")
MULTI_DEVICE = ("configs/trainer/ddp.yaml", "torchrun", "srun")
SHRINK = ["--model.backbone", "tiny_vgg", "--model.pretrained", "null",
          "--data.image_size", "32", "--data.batch_size", "4", "--data.num_workers", "0",
          "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
SHRINK_SYNTHETIC = ["--data.num_train", "40", "--data.num_test", "6"]
FOREIGN_WEIGHTS = "my_model.pth"  # a state dict saved by other code (own-model-and-data.md)
SHRINK_EVALUATION = ["--evaluation.steps", "[1]", "--evaluation.threshold", "null",
                     "--evaluation.num_figures", "0"]  # figures: tests/test_evaluate.py

FENCE = re.compile(r"^```.*?^```[ \t]*$", flags=re.S | re.M)
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", flags=re.M)


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


def documented_commands() -> list[tuple[list[str], bool, str]]:
    """``(argv, multi_device, page)`` for every command of README.md and docs/*.md, in order."""
    return [(argv, multi, doc.relative_to(ROOT).as_posix())
            for doc in DOCS for argv, multi in readme_commands(doc.read_text())]


def _substitute(argv: list[str], data: Path, ckpt: Path) -> list[str]:
    out = []
    for token in argv:
        if token == "PATH":
            token = str(ckpt)
        elif token == "/data" or token.startswith("/data/"):
            token = str(data) + token[len("/data"):]
        out.append(token)
    return out


def test_docs_have_the_commands_they_promise() -> None:
    commands = documented_commands()
    scripts = {(argv[0], argv[1] if argv[0] == "train.py" else "") for argv, _, _ in commands}
    assert {("train.py", "fit"), ("train.py", "validate"), ("train.py", "test"),
            ("evaluate.py", "")} <= scripts
    assert any(multi for _, multi, _ in commands) and sum(not m for _, m, _ in commands) >= 6


def test_makefile_demo_runs_the_readme_demo() -> None:
    """`make demo` runs exactly the two commands the README's demo section prints."""
    make = (ROOT / "Makefile").read_text()
    configs = re.search(r"^DEMO_CONFIGS := (.*)$", make, flags=re.M).group(1)
    recipe = re.search(r"^demo:.*\n((?:\t.*\n?)+)", make, flags=re.M).group(1)
    recipe = re.sub(r"\\\n\s*", " ", recipe).replace("$(DEMO_CONFIGS)", configs)
    make_cmds = [shlex.split(x.replace("$(PY)", "python"))[1:] for x in recipe.splitlines() if x]
    demo = README.read_text().split("## The demo", 1)[1].split("\n## ", 1)[0]
    assert make_cmds == [argv for argv, _ in readme_commands(demo)]


def test_readme_is_a_front_page() -> None:
    """README.md stays short: at most 12 KB (`wc -c`); the rest lives in docs/."""
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/*.md"


def test_readme_python_example_runs() -> None:
    """The README's Python example runs from the repository root and its shape comments hold."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no ```python example"
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    res = namespace["res"]
    assert tuple(res.targets.shape) == (2, 2)
    for contrast in ("original", "weighted", "mean", "max"):
        assert tuple(res.maps[contrast].shape) == (2, 2, 14, 14), contrast


def github_anchor(heading: str) -> str:
    """The `#anchor` GitHub gives a heading: inline markup and punctuation dropped, lower case,
    spaces to hyphens (`## §2.3 Pos and Neg features` -> `23-pos-and-neg-features`)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def heading_anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    anchors = set()
    for _, heading in HEADING.findall(FENCE.sub("", path.read_text())):
        anchor = github_anchor(heading)
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        else:
            seen[anchor] = 0
        anchors.add(anchor)
    return anchors


def relative_links(path: Path) -> list[str]:
    """Link targets of a markdown file outside code, without web and mail addresses."""
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t, flags=re.I)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(doc: Path) -> None:
    """Every relative link names an existing file; every `#anchor` into a .md file, a heading."""
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        linked = (doc.parent / file_part).resolve() if file_part else doc
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_docs_link_every_page_from_the_readme() -> None:
    """A reader finds every docs page from the README."""
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README)}
    pages = set(DOCS[1:])
    assert pages <= linked, f"not linked from README.md: {sorted(p.name for p in pages - linked)}"


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


def test_documented_commands_run_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_NAME", "WANDB_RUN_GROUP", "WANDB_JOB_TYPE",
                "WANDB_TAGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no W&B login: offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(ROOT / "configs")  # the docs' relative config paths
    make_cub(tmp_path / "data")
    birds = make_image_folder(tmp_path / "data" / "birds", per_class=2)  # `/data/birds`: 3 birds
    import torch

    from lightning_modules.backbones import build_backbone

    foreign = tmp_path / "foreign_weights.pth"  # `my_model.pth`: tiny_vgg, trained elsewhere
    torch.save(build_backbone("tiny_vgg", len(birds["class_names"])).state_dict(), foreign)
    ckpt = tmp_path / "outputs" / "cub200_vgg16_bn" / "checkpoints" / "last.ckpt"
    commands: dict[tuple[str, ...], tuple[bool, str]] = {}  # first page that prints it
    for argv, multi, page in documented_commands():
        commands.setdefault(tuple(_substitute(argv, tmp_path / "data", ckpt)), (multi, page))
    fits_first = sorted(commands.items(), key=lambda c: c[0][:2] != ("train.py", "fit"))
    for command, (multi, page) in fits_first:
        argv = list(command)
        where = f"{page}: {shlex.join(argv)}"
        if multi:  # GPUs / nodes: the command must parse, with its own devices and strategy
            printed = yaml.safe_load(_run([*argv, "--print_config"], capsys))
            assert printed["trainer"]["strategy"] == "ddp", where
            continue
        synthetic = "configs/synthetic.yaml" in argv
        shrink = [*SHRINK, *(SHRINK_SYNTHETIC if synthetic else [])]
        if argv[0] == "evaluate.py" and FOREIGN_WEIGHTS in argv:  # evaluate these weights
            argv[argv.index(FOREIGN_WEIGHTS)] = str(foreign)
            i = shrink.index("--model.pretrained")
            del shrink[i:i + 2]
        if argv[0] == "evaluate.py":
            shrink += SHRINK_EVALUATION
        stage = argv[1] if argv[0] == "train.py" else "evaluate"
        experiment = tmp_path / "outputs" / ("synthetic" if synthetic else "cub200_vgg16_bn")
        if "--trainer.default_root_dir" in argv:  # a command that names its experiment folder
            experiment = tmp_path / argv[argv.index("--trainer.default_root_dir") + 1]
        before = set((experiment / stage).glob("version_*"))
        out = _run([*argv, *shrink], capsys)
        (run,) = set((experiment / stage).glob("version_*")) - before
        assert f"{argv[0]} {'' if stage == 'evaluate' else stage + ' '}finished" in out, where
        wrote = {"fit": "metrics.csv", "validate": "metrics.csv", "test": "metrics.csv",
                 "evaluate": "results.json"}[stage]
        assert (run / wrote).is_file() and (run / "config.yaml").is_file(), where
        if stage == "fit":
            assert (experiment / "checkpoints" / "last.ckpt").is_file(), where
