"""The console of the demo's two commands (shrunk) speaks to the user: none of the library chatter
that used to appear on every run, no colour codes in a pipe, the warnings a user can act on kept,
and evaluation creates no checkpoint folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = {"image_size": 32, "batch_size": 4, "num_workers": 0, "num_classes": 10,
        "num_train": 40, "num_test": 6}
# Every one of these appeared on every run before; none is the user's business.
ABSENT = (
    "💡 Tip",                                    # Lightning advertising litlogger / litmodels
    "tensorboardX",                              # logger=True without tensorboard
    "callbacks used to create the checkpoint",   # evaluate attaches no training callbacks
    "dirpath has changed",                       # ... so no ModelCheckpoint either
    "LeafSpec",                                  # a torch deprecation inside Lightning
    "anonymous setting",                         # W&B, from Lightning's default argument
    "sync_dist",                                 # Lightning's advice for reduced eval/ values
    "\x1b[",                                     # colour codes in a pipe (W&B's exit hook)
)


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "WHYNOT_"))}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp))  # HOME: no W&B login, so offline
    return subprocess.run([sys.executable, *args], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow  # two real processes (~1 min): make test-all
def test_demo_console_has_no_library_chatter(tmp_path: Path) -> None:
    config = tmp_path / "synthetic_tiny.yaml"
    config.write_text(json.dumps({
        "seed_everything": 0,
        "trainer": {"max_epochs": 1, "accelerator": "cpu", "devices": 1,
                    "default_root_dir": "outputs/synthetic"},
        "model": {"backbone": "tiny_vgg"},
        "data": {"class_path": "datamodules.SyntheticDataModule", "init_args": DATA}}))
    configs = ["--config", str(config), "--config", str(ROOT / "configs/logger/wandb.yaml")]
    fit = _run(tmp_path, str(ROOT / "train.py"), "fit", *configs)
    assert fit.returncode == 0, fit.stderr[-3000:]
    evaluate = _run(tmp_path, str(ROOT / "evaluate.py"), *configs, "--ckpt_path",
                    "outputs/synthetic/checkpoints/last.ckpt", "--evaluation.steps", "[1]")
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    for proc in (fit, evaluate):
        console = proc.stdout + proc.stderr
        for text in ABSENT:
            assert text not in console, (text, console[-3000:])
    # Kept: an actionable Lightning warning (10 train batches < log_every_n_steps 50) ...
    assert "smaller than the logging interval" in fit.stderr
    # ... W&B's own notice of where the offline run is, and our closing lines.
    assert "W&B syncing is set to `offline`" in fit.stderr
    assert "train.py fit finished." in fit.stdout and "wandb sync " in fit.stdout
    assert "evaluate.py finished: results.json" in evaluate.stdout
    e = tmp_path / "outputs" / "synthetic"
    assert sorted(p.name for p in e.iterdir()) == ["checkpoints", "evaluate", "fit", "wandb"]
    assert not list((e / "evaluate").rglob("*.ckpt"))
    assert len(list((e / "wandb").glob("offline-run-*"))) == 2
