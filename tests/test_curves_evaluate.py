"""Faithfulness curves through evaluate.py: results.json keys, the report's tables, the figure, the
other numbers unchanged; 2 gloo processes equal 1 (slow); the synthetic ground truth (slow)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import DDP, TINY_DATA, TINY_EVALUATION, WANDB, cli_env, experiment_yaml
from tests.processes import run_cli
from tests.wandb_files import read_closed_wandb_run

ROOT = Path(__file__).resolve().parent.parent
CURVES = ["--evaluation.curves", "true", "--evaluation.curve_steps", "3",
          "--evaluation.curve_baselines", "[zeros,road]",
          "--evaluation.methods", "[gradcam]", "--evaluation.gradient_sign", "false",
          "--evaluation.localization", "false"]


def _main(tmp: Path, ckpt: Path, *extra: str) -> dict[str, float]:
    from cli.evaluate import main

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key, value in cli_env(tmp).items():
            mp.setenv(key, value)
        for key in [k for k in os.environ if k.startswith("WANDB_")]:
            mp.delenv(key)
        mp.chdir(tmp)
        with contextlib.redirect_stdout(out):
            return main(["--config", str(experiment_yaml(tmp)), "--ckpt_path", str(ckpt),
                         *TINY_EVALUATION, *extra])


@pytest.mark.slow  # ~8 s: a whole evaluate.py run plus the curves figure
def test_evaluate_with_curves(tiny_checkpoint: Path, tiny_evaluation: SimpleNamespace,
                              tmp_path: Path) -> None:
    r = _main(tmp_path, tiny_checkpoint, *CURVES)
    run = tmp_path / "tiny_synthetic" / "evaluate" / "version_0"
    assert json.loads((run / "results.json").read_text()) == pytest.approx(r)
    # the masking numbers are those of the run without curves
    for key, value in r.items():
        if key.startswith(("eval/relprob/", "eval/prob/", "eval/count/gradcam")):
            assert value == tiny_evaluation.results[key], key
    n = r["eval/curve_count/gradcam"]
    assert n == TINY_DATA["num_test"]
    for b in ("zeros", "road"):
        for t in ("t1", "t2"):
            base = f"eval/auc/gradcam/{t}/{b}"
            # the AUC of 3 steps (fractions 0, 1/2, 1) from the mean curve's points
            ys = [r[f"eval/curve/gradcam/{t}/{b}/original/deletion/prob/p{i}"] for i in range(3)]
            fr = [r[f"eval/curve_fraction/deletion/p{i}"] for i in range(3)]
            assert fr == [0.0, 0.5, 1.0]
            auc = float(torch.trapezoid(torch.tensor(ys), torch.tensor(fr)))
            assert r[f"{base}/original/deletion/prob"] == pytest.approx(auc, abs=1e-6)
            lerf, dele = (r[f"{base}/weighted/{c}/relprob"] for c in ("deletion_lerf", "deletion"))
            srg = lerf - dele
            assert r[f"{base}/weighted/srg/relprob"] == pytest.approx(srg, abs=1e-6)
            assert 0 <= r[f"{base}/weighted/srg/logit".replace("/auc/", "/auc_wins/")] <= n
            # step 0 is the clean image, whatever the map
            assert r[f"eval/curve/gradcam/{t}/{b}/weighted/deletion/prob/p0"] == pytest.approx(
                r[f"eval/clean_prob/gradcam/{t}"], abs=1e-5)
    report = (run / "report.md").read_text()
    assert "## Faithfulness curves: AUC of prob, road" in report
    assert "enter the faithfulness curves" in report
    assert (run / "figures" / "curves_gradcam.png").stat().st_size > 10_000
    settings = json.loads((run / "run.json").read_text())["evaluation"]
    assert settings["curves"] is True and settings["curve_baselines"] == ["zeros", "road"]


def test_curve_options_fail_before_any_work() -> None:
    from callbacks import ContrastiveEvaluation
    from errors import ConfigError

    with pytest.raises(ConfigError, match="curve_patch"):
        ContrastiveEvaluation(curves=True, curve_patch=0)
    with pytest.raises(ConfigError, match="baseline"):
        ContrastiveEvaluation(curves=True, curve_baselines=("noise",))
    with pytest.raises(ConfigError, match="curves baseline"):
        ContrastiveEvaluation(baselines=("blur", "road"))


@pytest.mark.slow
def test_ddp_curves_equal_one_process(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """2 gloo processes through evaluate.py as the docs print it: the curves of 1 process."""
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _main(tmp_path / "one", tiny_checkpoint, *CURVES)
    cmd = [sys.executable, str(ROOT / "evaluate.py"), "--config",
           str(experiment_yaml(tmp_path / "two")), "--ckpt_path", str(tiny_checkpoint),
           *TINY_EVALUATION, *CURVES, *DDP, *WANDB]
    proc = run_cli(cmd, cwd=tmp_path / "two", env=cli_env(tmp_path / "two"), timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "two" / "tiny_synthetic" / "evaluate").glob("version_*/results.json")
    two = json.loads(path.read_text())
    assert two.keys() == one.keys()
    curve_keys = [k for k in one if "/auc" in k or "/curve" in k]
    assert len(curve_keys) > 100
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
    # W&B: the curves' values, their AUC table and a line plot per method, baseline, score, curve
    (wandb_run,) = (tmp_path / "two" / "tiny_synthetic" / "wandb").glob("offline-run-*")
    logged = read_closed_wandb_run(wandb_run)
    assert logged[curve_keys[0]] == pytest.approx(two[curve_keys[0]], rel=1e-6)
    assert logged["eval/table/prob/road/_type"] == "table-file"
    plots = {k.split("_table")[0] for k in logged if k.startswith("eval/curve_plot/")}
    assert len(plots) == 2 * 3 * 3, sorted(plots)


@pytest.mark.slow
def test_synthetic_ground_truth_map_beats_a_random_map() -> None:
    """On the synthetic set, a map equal to the parts in which t1 and t2 differ deletes p_t1
    faster (lower most-relevant-first deletion AUC) than a random map, and has a higher SRG
    (ROAD baseline; measured: deletion 0.525 vs 0.574, SRG 0.051 vs 0.001)."""

    from datamodules import SyntheticDataModule
    from metrics import FaithfulnessCurves
    from metrics.functional.localization import pair_regions
    from tests.conftest import fit_synthetic64

    model, data = fit_synthetic64(num_test=64)
    dm = SyntheticDataModule(**data, with_ground_truth=True)
    dm.setup("test")
    net = model.net.eval()
    metric = FaithfulnessCurves("gradcam", baselines=("road",), steps=5, threshold=None,
                                road_noise=0.0)
    g = torch.Generator().manual_seed(0)
    for x, _labels, masks in dm.test_dataloader():
        with torch.no_grad():
            logits = net(x)
        targets = logits.topk(2, dim=1).indices
        differ, _ = pair_regions(masks, dm.part_attributes, targets)
        random = torch.rand(differ.shape, generator=g)
        # a binary map ties on 96 % of the pixels; break the ties at random, so that outside the
        # ground truth both maps delete in random order (the index order would make MoRF and
        # LeRF sweep the image in opposite directions)
        truth = differ.float() + 0.01 * torch.rand(differ.shape, generator=g)
        metric.update(net, x, {"original": truth, "weighted": random}, targets, logits)
    r = metric.compute()
    auc = "eval/auc/gradcam/t1/road/{}/{}/prob"
    print({k: float(v) for k, v in r.items() if k.startswith("eval/auc/gradcam/t1/road/")})
    assert r[auc.format("original", "deletion")] < r[auc.format("weighted", "deletion")]
    assert r[auc.format("original", "srg")] > r[auc.format("weighted", "srg")]
