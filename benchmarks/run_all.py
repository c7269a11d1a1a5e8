"""Run every benchmark and print their ratios in one table.

Usage: ``python -m benchmarks.run_all [--quick]`` (``make bench``). Each benchmark module exposes
``run(quick: bool) -> dict[str, float]`` and measures its own baseline in the same run, so the
ratios are comparable across machines; absolute seconds are not.
"""

from __future__ import annotations

import argparse
import importlib

from rich.console import Console
from rich.table import Table

# (module, headline key, goal, what the ratio means)
BENCHMARKS: tuple[tuple[str, str, float, str], ...] = (
    ("benchmarks.explain_speed", "speedup", 5.0, "engine vs per-target/per-contrast loop"),
    ("benchmarks.evaluate_speed", "efficiency", 0.85, "replayed forwards / masking protocol"),
    ("benchmarks.whole_evaluation", "efficiency", 0.85,
     "floors (no-grad forwards + a forward/backward per gradient-sign point) / whole evaluation"),
)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run the benchmarks; returns ``{module: result dict}``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke versions")
    args = parser.parse_args(argv)
    console = Console()
    results: dict[str, dict[str, float]] = {}
    table = Table(title="whynot benchmarks" + (" (quick)" if args.quick else ""))
    for col in ("benchmark", "ratio", "value", "goal", "met"):
        table.add_column(col)
    details = []
    for module_name, key, goal, meaning in BENCHMARKS:
        console.print(f"[bold]running {module_name}[/bold] ...")
        result = importlib.import_module(module_name).run(quick=args.quick)
        results[module_name] = result
        value = float(result[key])
        name = module_name.split(".")[-1]
        table.add_row(name, f"{key}: {meaning}", f"{value:.3f}", f">= {goal}",
                      "yes" if value >= goal else "NO")
        # every measured number, one per line: a details column would be squeezed unreadable
        details.append(f"{name}: " + ", ".join(f"{k}={v:.4g}" for k, v in result.items()
                                               if k != key))
    console.print(table)
    for line in details:
        console.print(line, soft_wrap=True)
    return results


if __name__ == "__main__":
    main()
