"""On the synthetic set, the pointing game separates original and weighted maps as the share does.

Slow: fine-tunes tiny_vgg with the demo's recipe (configs/synthetic.yaml: SGD lr 0.01, 15 epochs,
2,000 / 500 images at 64 px), then evaluates GradCAM and Linear Approximation with part
localisation. Run alone with ``pytest tests/test_localisation_synthetic.py -m slow -s``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_pointing_game_moves_with_the_share(tmp_path: Path) -> None:
    import lightning.pytorch as pl

    from callbacks import ContrastiveEvaluation
    from datamodules import SyntheticDataModule
    from lightning_modules import FineTuneClassifier

    pl.seed_everything(0)
    data = {"image_size": 64, "batch_size": 64, "num_workers": 0, "num_classes": 10,
            "num_train": 2000, "num_test": 500}
    model = FineTuneClassifier(backbone="tiny_vgg", num_classes=10, pretrained=None, lr=0.01)
    pl.Trainer(accelerator="cpu", max_epochs=15, logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False).fit(
        model, datamodule=SyntheticDataModule(**data))
    methods = ("gradcam", "linear_approx")
    # the perturbation protocol is not under test here: its cheapest setting
    cb = ContrastiveEvaluation(methods=methods, baselines=("zeros",), modes=("pos",),
                               maskings=("threshold",), gradient_sign=False, num_figures=0,
                               output_dir=str(tmp_path / "run"))
    pl.Trainer(accelerator="cpu", inference_mode=False, logger=False, callbacks=[cb],
               enable_progress_bar=False, enable_model_summary=False).test(
        model, datamodule=SyntheticDataModule(**data, with_ground_truth=True), verbose=False)
    r = cb.results
    print(json.dumps({k: round(v, 3) for k, v in r.items()
                      if "share" in k or "pointing" in k or "count" in k}, indent=1))
    assert r["eval/count/gradcam/t1"] >= 50  # enough samples with p_t2 > 0.1 to compare
    for m in methods:
        def delta(q: str, t: str, m: str = m) -> float:
            return r[f"eval/{q}/{m}/{t}/weighted"] - r[f"eval/{q}/{m}/{t}/original"]

        # The weighted map points at the part the top-2 share less often, for both targets,
        # and at the part that tells them apart at least as often for t1 ...
        assert delta("pointing_shared", "t1") < 0 and delta("pointing_shared", "t2") < 0, m
        assert delta("pointing_differ", "t1") >= 0, m
        # ... the direction the mass share shows where it moves clearly (differ for t1,
        # shared for t2).
        assert delta("differ_share", "t1") > 0 and delta("shared_share", "t2") < 0, m
