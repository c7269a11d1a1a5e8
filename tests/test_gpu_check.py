"""benchmarks/gpu_check.sh --cpu-smoke: every step of the GPU check, tiny, on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_check_cpu_smoke(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    run = subprocess.run([str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--out",
                          str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "gpu_check: all steps passed" in run.stdout
    table = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in table[1:]] == [
        "| 32-true", "| 32-true + curves", "| bf16-mixed", "| bf16-true"]
    curves = json.loads((out / "bench_32-true_curves.json").read_text())["timing"]
    assert curves["n_curve_images"] == 2 * 2 * 145 and curves["efficiency_curves"] > 0
    for precision in ("32-true", "bf16-mixed", "bf16-true"):
        timing = json.loads((out / f"bench_{precision}.json").read_text())["timing"]
        assert timing["n_gs_points"] == 2 * 41 and timing["efficiency"] > 0
    results = json.loads((out / "cub_eval" / "results.json").read_text())
    assert results["eval/count/gradcam"] == 16  # 2 capped test batches of 8, threshold null
    cli = json.loads((out / "cli.json").read_text())
    assert cli["eval_images"] == 16 and cli["fit_s"] > 0
