"""The evaluation in every precision Lightning offers, against float32, and the metric-state dtype.

Measured on the CPU (tiny_vgg, 32 px, 16 synthetic test images, gradcam + linear_approx, gradient
sign n = 1, 2, models fitted for one epoch on 200 and on 64 images), the largest absolute
difference of any results.json value to 32-true: bf16-mixed 0.030 / 0.009, bf16-true 0.006 /
0.019, 16-true 0.0006 / 0.0008, real fp16 autocast 0.0007 / 0.0002 (16-mixed is bf16-mixed on a
CPU); `clean_acc`, `delta_acc` and `count` agreed exactly. The large ones are masked `prob`
values: a map value near 0 changes sign in bf16 (8 significant bits), one image's mask changes,
and the mean over 16 images moves by 1/16 of that image's jump.
TOLERANCE is what the README states; pointing-game values (shares of samples whose map maximum
falls in a part) may move by two samples' worth, 2 / count, where two map cells nearly tie.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 0.05
DATA = {"image_size": 32, "batch_size": 8, "num_workers": 0, "num_classes": 10,
        "num_train": 64, "num_test": 16, "seed": 0}
EVAL = {"methods": ("gradcam", "linear_approx"), "threshold": None, "steps": (1,),
        "num_figures": 2}


@pytest.fixture(scope="module")
def fitted() -> dict[str, torch.Tensor]:
    import lightning.pytorch as pl

    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    pl.seed_everything(0)
    model = FineTuneClassifier(backbone="tiny_vgg", num_classes=10, lr=0.05)
    pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False).fit(
        model, datamodule=SyntheticDataModule(**DATA))
    return {k: v.clone() for k, v in model.state_dict().items()}


def _evaluate(state: dict[str, torch.Tensor], out: Path, **trainer: object) -> dict[str, float]:
    import lightning.pytorch as pl

    from callbacks import ContrastiveEvaluation
    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    model = FineTuneClassifier(backbone="tiny_vgg", num_classes=10)
    model.load_state_dict(state)
    cb = ContrastiveEvaluation(**EVAL, output_dir=str(out))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's 16-mixed-on-CPU notice is asserted below
        pl.Trainer(accelerator="cpu", inference_mode=False, logger=False, callbacks=[cb],
                   enable_progress_bar=False, enable_model_summary=False, **trainer).test(
            model, datamodule=SyntheticDataModule(**DATA, with_ground_truth=True), verbose=False)
    assert (out / "figures" / "heatmaps_gradcam.png").is_file()  # bf16 images reach numpy
    return cb.results


def _tolerance(key: str, ref: dict[str, float]) -> float:
    """TOLERANCE, or for the pointing game (a share of samples) two samples' worth: a map's
    maximum is one cell, and where two cells nearly tie half precision may pick the other."""
    parts = key.split("/")
    if parts[1].startswith("pointing_"):
        return max(TOLERANCE, 2 / ref[f"eval/count/{parts[2]}/{parts[3]}"])
    if parts[1].startswith("diff_pointing_"):  # two flips, each moving one d by up to 2
        return max(TOLERANCE, 4 / ref[f"eval/count/{parts[2]}/{parts[3]}"])
    return TOLERANCE


def _interval_of_flips(key: str) -> bool:
    """A paired pointing interval (se, lo, hi): a flip of one sample's maximum moves a standard
    error of a few 0/1 differences by more than any fixed tolerance, so these are checked for
    consistency with their own mean instead."""
    parts = key.split("/")
    return parts[1].startswith("diff_pointing_") and parts[-1] in ("se", "lo", "hi")


def _assert_close(got: dict[str, float], ref: dict[str, float], name: str) -> float:
    assert set(got) == set(ref), name
    worst = max(abs(got[k] - ref[k]) for k in ref if not _interval_of_flips(k))
    for k in ref:
        if _interval_of_flips(k):
            cell, stat = k.rsplit("/", 1)
            mean, half = got[f"{cell}/mean"], 1.96 * got[f"{cell}/se"]
            if stat != "se":
                expect = mean - half if stat == "lo" else mean + half
                assert got[k] == pytest.approx(expect, abs=1e-5, nan_ok=True), (name, k)
            continue
        assert got[k] == pytest.approx(ref[k], abs=_tolerance(k, ref)), (name, k)
        if k.split("/")[1] in ("count", "clean_acc"):
            assert got[k] == ref[k], (name, k)
    return worst


@pytest.fixture(scope="module")
def reference(fitted: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, float]:
    return _evaluate(fitted, tmp_path_factory.mktemp("fp32"), precision="32-true")


def _trainer_args(name: str) -> dict[str, object]:
    from lightning.pytorch.plugins.precision import MixedPrecision

    if name == "fp16 autocast":  # Lightning turns 16-mixed into bf16-mixed on a CPU
        return {"plugins": [MixedPrecision("16-mixed", "cpu")]}
    return {"precision": name}


@pytest.mark.slow  # 7 s; every precision runs through the callback and evaluate.py below
def test_bf16_mixed_through_evaluate_py(tiny_evaluation: SimpleNamespace, tiny_checkpoint: Path,
                                       tmp_path: Path) -> None:
    """``evaluate.py ... --trainer.precision bf16-mixed`` on the session's tiny run: every value
    within the tolerance of the float32 run, counts exact, and the precision reached the model's
    forwards (the numbers moved)."""
    from cli.evaluate import main
    from tests.conftest import TINY_EVALUATION, experiment_yaml

    with warnings.catch_warnings(record=True) as caught:
        got = main(["--config", str(experiment_yaml(tmp_path)), "--ckpt_path",
                    str(tiny_checkpoint), *TINY_EVALUATION, "--trainer.precision", "bf16-mixed",
                    "--evaluation.methods", "[gradcam]"])  # LA too: the slow test
    # the output folder's lock file is not "an earlier run's logs" to the CSV logger
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]
    ref = {k: v for k, v in tiny_evaluation.results.items() if "/linear_approx" not in k}
    worst = _assert_close(got, ref, "bf16-mixed")
    assert worst > 1e-5
    assert (tmp_path / "tiny_synthetic" / "evaluate" / "version_0" / "figures"
            / "heatmaps_gradcam.png").is_file()  # bf16 images reach numpy


@pytest.mark.slow  # every precision on a model fitted for an epoch (the numbers in the docstring)
@pytest.mark.parametrize("name", ["bf16-mixed", "bf16-true", "16-true", "fp16 autocast"])
def test_precision_through_the_callback(fitted: dict[str, torch.Tensor],
                                        reference: dict[str, float], name: str,
                                        tmp_path: Path) -> None:
    got = _evaluate(fitted, tmp_path, **_trainer_args(name))
    worst = _assert_close(got, reference, name)
    assert worst > 1e-5, name  # the precision reached the explain and perturbed forwards
    print(name, worst)


def test_metric_state_dtype_falls_back_to_float32_on_mps() -> None:
    from callbacks import ContrastiveEvaluation
    from metrics.functional import metric_state_dtype

    assert metric_state_dtype("cpu") == torch.float64
    assert metric_state_dtype(torch.device("cuda", 1)) == torch.float64
    assert metric_state_dtype("mps") == torch.float32
    cb = ContrastiveEvaluation(methods=("gradcam",), localization=False)
    for device, dtype in (("cpu", torch.float64), ("mps", torch.float32)):
        step = cb.evaluation_step("features.12", (0.5,) * 3, (0.25,) * 3)
        step.set_state_dtype(torch.device(device))
        metrics = [m for m in step.modules() if hasattr(m, "metric_state")]
        assert len(metrics) == 3  # samples seen, perturbation, gradient sign
        assert {s.dtype for m in metrics for s in m.metric_state.values()} == {dtype}


def test_float32_states_give_the_float64_numbers(tiny_vgg: torch.nn.Module,
                                                 images: torch.Tensor) -> None:
    """What an MPS run accumulates: the same updates into float32 sums."""
    from explainers import explain
    from metrics import GradientSignPerturbation, PerturbationScore

    res = explain(tiny_vgg, images, method="gradcam", layer="features.12", topk=2)
    labels = res.targets[:, 1]
    out = []
    for dtype in (torch.float64, torch.float32):
        ps = PerturbationScore("gradcam", threshold=None).set_dtype(dtype)
        ps.update(tiny_vgg, images, res.maps, res.targets, res.logits)
        gs = GradientSignPerturbation((0.5,) * 3, (0.25,) * 3, steps=(1, 2)).set_dtype(dtype)
        gs.update(tiny_vgg, images, labels)
        assert ps.relprob_sum.dtype == dtype and gs.delta_sum.dtype == dtype
        out.append({**ps.compute(), **gs.compute()})
    for k, v in out[0].items():
        torch.testing.assert_close(out[1][k], v, atol=1e-6, rtol=0)


def _checkpoint(tmp: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp / "model.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"backbone": "tiny_vgg",
                                                          "num_classes": 10},
                "pytorch-lightning_version": "2.6.6"}, path)
    return path


@pytest.mark.slow
def test_every_precision_through_evaluate_py(fitted: dict[str, torch.Tensor],
                                             tmp_path: Path) -> None:
    """evaluate.py as the README prints it, only --trainer.precision changed."""
    cfg = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False,
                    "enable_model_summary": False, "default_root_dir": str(tmp_path)},
        "model": {"backbone": "tiny_vgg"},
        "data": {"class_path": "datamodules.SyntheticDataModule", "init_args": DATA},
    }
    config = tmp_path / "experiment.yaml"
    config.write_text(json.dumps(cfg))
    ckpt = _checkpoint(tmp_path, fitted)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    results = {}
    for precision in ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true"):
        out = tmp_path / precision
        run = subprocess.run(
            [sys.executable, str(ROOT / "evaluate.py"), "--config", str(config),
             "--ckpt_path", str(ckpt), "--evaluation.output_dir", str(out),
             "--evaluation.threshold", "null", "--evaluation.steps", "[1]",
             "--evaluation.num_figures", "2", "--trainer.precision", precision],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )
        assert run.returncode == 0, (precision, run.stderr[-3000:])
        results[precision] = json.loads((out / "results.json").read_text())
        if precision == "16-mixed":  # Lightning says what it does instead on a CPU
            assert "Using `precision='bf16-mixed'` instead" in run.stderr + run.stdout
    ref = results.pop("32-true")
    for precision, got in results.items():
        print(precision, _assert_close(got, ref, precision))
    # on a CPU Lightning runs 16-mixed as bf16-mixed: the same numbers
    assert results["16-mixed"] == results["bf16-mixed"]
