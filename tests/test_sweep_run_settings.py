"""The paper tables say what each run ran: its settings under Runs, a mark beside our rows when
the run is far from the paper's recipe, and the recorded reason of every undefined value."""

from __future__ import annotations

import json
from pathlib import Path

from sweeps.paper_report import write_report
from tests.conftest import strict_json
from tests.test_sweep_report import _md_table, _results, _run_json, _section, _write_run


def _demo_run(root: Path) -> Path:
    """A 64 px, 1-epoch run from no pretrained weights, with one undefined (null) value."""
    results: dict[str, float | None] = dict(_results("APP-T2", "cub200"))
    results["eval/differ_share/gradcam/t1/original"] = None
    meta = {**_run_json("cub200_alexnet", "CUB-200-2011", "alexnet", 1,
                        "2026-01-02T00:00:00+00:00"),
            "layer_hooked": "features.11", "image_size": 64, "pretrained": None,
            "checkpoint": {"path": "last.ckpt", "epoch": 0, "global_step": 7,
                           "backbone": "alexnet", "pretrained": None},
            "undefined": {"eval/differ_share/gradcam/t1/original":
                          "no selected sample's map has positive mass inside the image"}}
    return _write_run(root / "cub200_alexnet" / "evaluate" / "version_0", results, meta)


def test_a_run_far_from_the_recipe_is_marked_with_its_settings(tmp_path: Path) -> None:
    run = _demo_run(tmp_path / "outputs")
    (run / "results.json").write_text(json.dumps(strict_json(run / "results.json")))
    write_report([run], tmp_path / "report")
    md = (tmp_path / "report" / "paper_tables.md").read_text()
    rows = _md_table(md, "AlexNet, threshold masking")
    assert [r[3] for r in rows if r[:3] == ["CUB", "GC", "t1"]] == ["ours‡"]
    note = ("‡ far from the paper's recipe (ImageNet-pretrained, 200 epochs, 224 px), not a "
            "reproduction: CUB: 64 px, not 224; checkpoint of epoch 0, not trained to the "
            "recipe's 200 epochs; fine-tuned from no pretrained weights.")
    assert note in md
    runs = _section(md, "Runs")
    assert "| layer | image | checkpoint | pretrained | precision |" in runs
    assert "| features.11 | 64 | epoch 0, step 7 | none | 32-true |" in runs
    assert ("1 undefined values (null), e.g. eval/differ_share/gradcam/t1/original (no selected "
            "sample's map has positive mass inside the image: 1)") in runs
    assert "no sample selected?" not in md
    csv_text = (tmp_path / "report" / "paper_tables.csv").read_text()
    assert "nan" not in csv_text.lower()
