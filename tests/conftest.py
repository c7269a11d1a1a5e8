"""Fixtures shared by every test: tiny nets and images, and, once per session, a tiny fitted
checkpoint, its evaluation through evaluate.py (in process) and the background command-line runs
(``tests/background.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lightning_modules.tiny_nets import TinyResNet, TinyVGG
from tests.background import JOBS, Job, completed
from tests.processes import run_cli

NUM_CLASSES = 10
ROOT = Path(__file__).resolve().parent.parent
# The synthetic experiment, shrunk: tiny_vgg, 32 px, 40 train and 13 test images (odd, so that
# 2 ranks cannot split them evenly).
NUM_TEST = 13
TINY_DATA = {"image_size": 32, "batch_size": 4, "num_workers": 0, "num_classes": 10,
             "num_train": 40, "num_test": NUM_TEST, "seed": 0}
# evaluate.py's protocol, shrunk: every sample, one gradient-sign step, one figure row.
TINY_EVALUATION = ["--evaluation.threshold", "null", "--evaluation.steps", "[1]",
                   "--evaluation.num_figures", "1", "--evaluation.max_batch", "64"]
DDP = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
WANDB = ["--config", str(ROOT / "configs" / "logger" / "wandb.yaml")]
# The tests' own processes: one thread each, like a test machine's share of its cores.
torch.set_num_threads(1)


def strict_json(path: Path) -> object:
    """``path`` parsed as strict JSON: NaN / Infinity (which ``json`` accepts and JavaScript's
    ``JSON.parse`` refuses) raise a ValueError naming the file."""
    def refuse(token: str) -> object:
        raise ValueError(f"{path}: {token} is not JSON (undefined values must be null)")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


@pytest.fixture(scope="session", autouse=True)
def _every_result_file_is_strict_json(tmp_path_factory: pytest.TempPathFactory):
    """At the end of the session, every results.json / run.json a test wrote parses strictly."""
    yield
    base = tmp_path_factory.getbasetemp()
    for name in ("results.json", "run.json"):
        for path in base.rglob(name):
            strict_json(path)


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same RNG state, whatever ran before it."""
    torch.manual_seed(0)


def _randomise_bn(model: torch.nn.Module) -> None:
    # Fresh BatchNorm layers are the identity in eval mode; random running statistics make the
    # tiny nets behave like trained ones (non-trivial BN in the backward pass).
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))


@pytest.fixture
def tiny_vgg() -> TinyVGG:
    """VGG-like net (``features`` / ``classifier``, in-place ReLUs), eval mode, 10 classes."""
    torch.manual_seed(0)
    model = TinyVGG(num_classes=NUM_CLASSES, width=8)
    _randomise_bn(model)
    return model.eval()


@pytest.fixture
def tiny_resnet() -> TinyResNet:
    """ResNet-like net (``layer1..3`` of BasicBlocks, ``fc``), eval mode, 10 classes."""
    torch.manual_seed(0)
    model = TinyResNet(num_classes=NUM_CLASSES, width=8)
    _randomise_bn(model)
    return model.eval()


@pytest.fixture
def images() -> torch.Tensor:
    """A batch of 4 normalised-looking images ``[4, 3, 32, 32]``."""
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def images64() -> torch.Tensor:
    """A batch of 3 images ``[3, 3, 64, 64]``."""
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A temporary output folder (created)."""
    path = tmp_path / "outputs"
    path.mkdir()
    return path


# ------------------------------------------------------------------ the shared tiny experiment
def experiment_yaml(tmp: Path, data: dict | None = None) -> Path:
    """The shrunk synthetic experiment as a config file in ``tmp``, writing to
    ``tmp/tiny_synthetic`` (its experiment folder E)."""
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "default_root_dir": str(tmp / "tiny_synthetic")},
        "model": {"backbone": "tiny_vgg"},
        "data": {"class_path": "datamodules.SyntheticDataModule",
                 "init_args": data or TINY_DATA},
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "experiment.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def cli_env(home: Path) -> dict[str, str]:
    """A command line's environment: the checkout importable, one thread, W&B offline (no
    ``WANDB_*`` settings, a ``HOME`` without a login), no ``WHYNOT_DEBUG``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WANDB_") and k != "WHYNOT_DEBUG"}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HOME": str(home)}


def fit_checkpoint(path: Path, num_classes: int = 10, **data: object) -> Path:
    """A tiny_vgg fitted for 3 steps on the shrunk synthetic set, saved at ``path``."""
    import lightning.pytorch as pl

    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    pl.seed_everything(0)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=3, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
    )
    trainer.fit(FineTuneClassifier(backbone="tiny_vgg", num_classes=num_classes),
                datamodule=SyntheticDataModule(**{**TINY_DATA, **data}))
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return path


def fit_synthetic64(num_test: int) -> tuple[torch.nn.Module, dict[str, object]]:
    """tiny_vgg fine-tuned 6 epochs (seed 0) on 2,000 synthetic 64 px images, where the paper's
    directions show (the slow synthetic-ground-truth tests): (the LightningModule, the data
    module's arguments with ``num_test`` test images)."""
    import lightning.pytorch as pl

    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    pl.seed_everything(0)
    data = {**TINY_DATA, "image_size": 64, "batch_size": 64, "num_train": 2000,
            "num_test": num_test}
    model = FineTuneClassifier(backbone="tiny_vgg", num_classes=10, lr=0.05)
    pl.Trainer(accelerator="cpu", max_epochs=6, logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False).fit(
        model, datamodule=SyntheticDataModule(**data))
    return model, data


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny_vgg checkpoint for the session (10 classes, 3 steps)."""
    return fit_checkpoint(tmp_path_factory.mktemp("checkpoint") / "model.ckpt")


@pytest.fixture(scope="session")
def tiny_evaluation(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> SimpleNamespace:
    """``python evaluate.py --config <tiny experiment> --ckpt_path CKPT <shrunk protocol>``, in
    this process: the run every test of evaluate.py's outputs reads and every multi-process run
    is compared with (the W&B logger is checked on the DDP run, ``ddp_evaluation``).

    ``root``: the working folder; ``run``: ``E/evaluate/version_0``; ``results``; ``stdout``.
    """
    from cli.evaluate import main

    tmp = tmp_path_factory.mktemp("one_process")
    args = ["--config", str(experiment_yaml(tmp)), "--ckpt_path", str(tiny_checkpoint),
            *TINY_EVALUATION]
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in cli_env(tmp).items():
            mp.setenv(key, value)
        for key in [k for k in os.environ if k.startswith("WANDB_") or k == "WHYNOT_DEBUG"]:
            mp.delenv(key)
        mp.setenv("WANDB_SILENT", "true")
        mp.chdir(tmp)
        with contextlib.redirect_stdout(out):
            results = main(args)
    return SimpleNamespace(root=tmp, run=tmp / "tiny_synthetic" / "evaluate" / "version_0",
                           results=results, stdout=out.getvalue(), args=args)


# ------------------------------------------------------------------------ background jobs
@pytest.fixture(scope="session")
def ddp_evaluation(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Job:
    """evaluate.py with 2 gloo processes, as the docs print the multi-GPU command, on the tiny
    checkpoint with the W&B logger and no output_dir: (working folder, process)."""
    tmp = tmp_path_factory.mktemp("ddp_evaluation")

    def run() -> tuple[Path, object]:
        cmd = [sys.executable, str(ROOT / "evaluate.py"), "--config", str(experiment_yaml(tmp)),
               *WANDB, "--ckpt_path", str(tiny_checkpoint), *TINY_EVALUATION, *DDP]
        return tmp, run_cli(cmd, cwd=tmp, env=cli_env(tmp), timeout=400)

    return Job(run)


# train.py fit with 2 processes: the synthetic config, 48 train images (43 after val), batch 4
# per rank, light augmentation: 6 steps per epoch on each rank.
TINY_FIT = ["--config", "configs/synthetic.yaml", "--data.image_size", "32", "--data.batch_size",
            "4", "--data.num_train", "48", "--data.num_test", "8", "--model.lr", "0.01",
            "--data.augment", "light", "--trainer.max_epochs", "2",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _ddp_fit_and_resume(tmp: Path) -> dict[str, object]:
    """A 2-epoch fit with 2 gloo processes that also keeps its epoch-0 checkpoint, then the
    docs' resume command (``--ckpt_path last``) from a copy of that checkpoint to 2 epochs."""
    first, resumed = tmp / "uninterrupted", tmp / "resumed"
    env = {**cli_env(tmp), "TORCH_FORCE_WEIGHTS_ONLY_LOAD": "1"}
    # every epoch's checkpoint, saved when train.py saves last.ckpt; mode only makes its state
    # key differ from that callback's (no monitor: it changes nothing else)
    keep_epoch_0 = ["--trainer.callbacks+=ModelCheckpoint",
                    f"--trainer.callbacks.dirpath={first / 'epochs'}",
                    "--trainer.callbacks.filename={epoch}",
                    "--trainer.callbacks.save_top_k=-1", "--trainer.callbacks.mode=max"]
    fit = [sys.executable, "train.py", "fit", *TINY_FIT, *DDP]
    one = completed(run_cli([*fit, *keep_epoch_0, "--trainer.default_root_dir", str(first)],
                            cwd=ROOT, env=env, timeout=400), "the uninterrupted DDP fit")
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copy(first / "epochs" / "epoch=0.ckpt", resumed / "checkpoints" / "last.ckpt")
    # Resuming reads last.ckpt with weights-only loading forced: a train.py checkpoint needs no
    # pickled objects on Lightning's own resume path.
    two = completed(run_cli([*fit, "--ckpt_path", "last", "--trainer.default_root_dir",
                             str(resumed)], cwd=ROOT, env=env, timeout=400),
                    "the resumed DDP fit")
    return {"uninterrupted": first, "resumed": resumed, "processes": [one, two]}


def _whole_fast_suite(config: pytest.Config) -> bool:
    """``make test``: every test file, no ``-k``, the fast set (or everything)."""
    paths = {str(Path(a).resolve()) for a in config.args}
    return (paths <= {str(ROOT / "tests"), str(ROOT)} and not config.option.keyword
            and config.option.markexpr in ("", "not slow"))


def pytest_configure(config: pytest.Config) -> None:
    """For the whole suite, start the longest background job (the DDP fit, which needs no
    fixture) now: it uses the second core while this process imports and collects."""
    if _whole_fast_suite(config):
        tmp = Path(tempfile.mkdtemp(prefix="whynot-ddp-fit-"))
        config.stash[_EARLY_DDP_FIT] = (tmp, Job(lambda: _ddp_fit_and_resume(tmp)))


def pytest_unconfigure(config: pytest.Config) -> None:
    early = config.stash.get(_EARLY_DDP_FIT, None)
    if early is not None:
        early[1].result_or_none()
        shutil.rmtree(early[0], ignore_errors=True)


_EARLY_DDP_FIT = pytest.StashKey[tuple[Path, Job]]()


@pytest.fixture(scope="session")
def ddp_fit_and_resume(request: pytest.FixtureRequest,
                       tmp_path_factory: pytest.TempPathFactory) -> Job:
    """:func:`_ddp_fit_and_resume` as a background job (started at configure time for the whole
    suite): ``{"uninterrupted": E, "resumed": E, "processes": [...]}``."""
    early = request.config.stash.get(_EARLY_DDP_FIT, None)
    if early is not None:
        return early[1]
    tmp = tmp_path_factory.mktemp("ddp_fit")
    return Job(lambda: _ddp_fit_and_resume(tmp))


@pytest.fixture(scope="session")
def exit_code_runs(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Job:
    """The exit-code contracts, each as a shell runs it: a whynot error (a checkpoint of
    another backbone: 1) and a command without arguments (2). ``{name: (folder, process)}``."""
    tmp = tmp_path_factory.mktemp("exit_codes")

    def run() -> dict[str, tuple[Path, object]]:
        error, usage = tmp / "error", tmp / "usage"
        usage.mkdir()
        bad = [sys.executable, str(ROOT / "evaluate.py"), "--config", str(experiment_yaml(error)),
               "--ckpt_path", str(tiny_checkpoint), "--model.backbone", "tiny_resnet"]
        return {
            "error": (error, run_cli(bad, cwd=error, env=cli_env(error), timeout=400)),
            "usage": (usage, run_cli([sys.executable, str(ROOT / "evaluate.py")], cwd=usage,
                                     env=cli_env(usage), timeout=400)),
        }

    return Job(run)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that wait for a background job run last: the jobs run meanwhile."""
    items.sort(key=lambda item: bool(set(getattr(item, "fixturenames", ())) & set(JOBS)))


@pytest.fixture(scope="session", autouse=True)
def _start_background_jobs(request: pytest.FixtureRequest) -> None:
    """Start every job some collected test needs, before the first test runs."""
    needed = {name for item in request.session.items
              for name in getattr(item, "fixturenames", ()) if name in JOBS}
    for name in JOBS:
        if name in needed:
            request.getfixturevalue(name)
