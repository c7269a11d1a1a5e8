"""Gather runs into the paper's tables and write them (md, tex, csv; optionally W&B)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from results.files import atomic_write_text
from sweeps.curve_tables import curve_tables_latex, curve_tables_markdown
from sweeps.paper import load_paper_numbers
from sweeps.render import (
    agreement_text,
    csv_rows,
    left_out_label,
    render_csv,
    render_latex,
    render_markdown,
)
from sweeps.runs import Collection, collect
from sweeps.sanity import sanity_markdown
from sweeps.tables import PaperTable, build_tables

FILES = {"markdown": "paper_tables.md", "latex": "paper_tables.tex", "csv": "paper_tables.csv"}


@dataclass
class Report:
    """What a report found and wrote."""

    tables: list[PaperTable]
    collection: Collection
    files: dict[str, Path] = field(default_factory=dict)
    wandb_run: Path | None = None


def write_report(paths: Sequence[Path], out: Path, *, protocol: int | None = None,
                 wandb: bool = False, name: str = "report",
                 project: str = "whynot") -> Report:
    """Collect ``paths`` (run folders or results.json files), write the tables into ``out``."""
    paper = load_paper_numbers()
    collection = collect(paths, protocol)
    tables = build_tables(collection.runs, paper)
    report = Report(tables, collection)
    texts = {"markdown": render_markdown(tables, collection) + sanity_markdown(collection.runs),
             "latex": render_latex(tables), "csv": render_csv(collection, paper)}
    # the faithfulness curves' AUC tables, beside the threshold tables (runs with curves only)
    texts["markdown"] += curve_tables_markdown(collection.runs)
    texts["latex"] += curve_tables_latex(collection.runs)
    for kind, text in texts.items():
        path = out / FILES[kind]
        atomic_write_text(path, text)
        report.files[kind] = path
    if wandb:
        from sweeps.wandb_summary import log_summary_run

        report.wandb_run = log_summary_run(tables, csv_rows(collection, paper), out_dir=out,
                                           name=name, project=project)
    return report


def print_report(report: Report, console: Console) -> None:
    """The console summary: per table its agreement line, what was left out, the files."""
    runs = report.collection.runs
    console.print(f"[bold]paper tables[/] from {len(runs)} run{'s' * (len(runs) != 1)}")
    for table in report.tables:
        console.print(f"- {table.title}: {agreement_text(table)}", soft_wrap=True)
        for line in table.incomplete:
            console.print(f"  [yellow]missing keys[/] {line}", soft_wrap=True)
    for item, why in report.collection.left_out:
        console.print(f"[yellow]not in the tables[/]: {left_out_label(item)}: {why}",
                      soft_wrap=True)
    for run in runs:
        for problem in run.problems:
            console.print(f"[yellow]flag[/]: {run.label}: {problem}", soft_wrap=True)
    written = ", ".join(str(p) for p in report.files.values())
    console.print(f"written: {written}", soft_wrap=True)
    if report.wandb_run is not None:
        console.print(f"W&B summary run: {report.wandb_run}", soft_wrap=True)
