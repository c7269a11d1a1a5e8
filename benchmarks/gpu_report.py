"""The one table of ``benchmarks/gpu_check.sh``: per precision, images/s of every part, the
efficiencies, peak GPU memory and the projected wall time of the CUB test split.

``python -m benchmarks.gpu_report DIR [--share S]``: reads ``DIR/bench_<precision>.json``
(written by ``benchmarks.whole_evaluation --json``) and ``DIR/cli.json`` (the fit / evaluate.py
timings gpu_check.sh wrote), prints the table and returns 1 when a part is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.whole_evaluation import CUB_TEST_IMAGES, GOAL, project_cub_hours
from callbacks.evaluation_step import PARTS


def rows(directory: Path, share: float) -> list[list[str]]:
    """One row per benchmarked precision (in the order of their files' names)."""
    out = []
    # bench_<precision>.json, then bench_32-true_curves.json after its precision
    for path in sorted(directory.glob("bench_*.json"), key=lambda p: p.stem.split("_")[1:]):
        data = json.loads(path.read_text())
        r = data.get("timing")
        if r is None:
            continue
        n = r["n_images"]
        ips = [n / r[f"{p}_s"] if r[f"{p}_s"] > 0 else float("inf") for p in PARTS]
        mem = data.get("memory_projection", {}).get("peak_gib")
        curves = "efficiency_curves" in r
        out.append([
            data["precision"] + (" + curves" if curves else ""), f"{int(r['batch'])}",
            *(f"{v:.1f}" for v in ips), f"{r['images_per_s']:.2f}",
            f"{r['efficiency_masking']:.2f}", f"{r['efficiency_gradient_sign']:.2f}",
            f"{r['efficiency_curves']:.2f}" if curves else "-",
            f"{r['efficiency']:.2f}" + ("" if r["efficiency"] >= GOAL else " (<0.85)"),
            f"{r['peak_memory_gib']:.1f}" + (f" ({mem:.1f})" if mem is not None else ""),
            f"{project_cub_hours(r, share):.2f} / {project_cub_hours(r, 1.0):.2f}",
        ])
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table; 1 when no benchmark result or no CLI timing is there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--share", type=float, default=0.25,
                        help="share of CUB test images with p_t2 > 0.1 (projection)")
    args = parser.parse_args(argv)
    header = ["precision", "batch", *(f"{p} img/s" for p in PARTS), "whole img/s",
              "eff masking", "eff grad-sign", "eff curves", "eff whole", "peak GiB (projected)",
              f"CUB test h (share {args.share:g} / 1)"]
    table = rows(args.directory, args.share)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in table:
        print("| " + " | ".join(row) + " |")
    print(f"CUB test split: {CUB_TEST_IMAGES} images; the masking protocol runs on the share "
          f"with p_t2 > 0.1 (assumed {args.share:g}: the synthetic demo's 129/500 is 0.26; "
          "1 = every image, an upper bound); explain, localisation and gradient sign on all.")
    cli = args.directory / "cli.json"
    if cli.is_file():
        c = json.loads(cli.read_text())
        peak = c["peak_gpu_mib"]
        peak = "n/a (no GPU)" if peak == "-" else f"{peak} MiB (nvidia-smi)"
        print(f"train.py fit ({c['fit_steps']} steps, batch {c['batch']}, {c['size']} px, "
              f"{c['classes']} classes): {c['fit_s']:.1f} s; evaluate.py ({c['eval_images']} "
              f"test images, threshold null): {c['eval_s']:.1f} s wall incl. start-up, "
              f"peak GPU memory used {peak}")
    return 0 if table and cli.is_file() else 1


if __name__ == "__main__":
    sys.exit(main())
