"""The sweep report's sanity tables: per run (data set and backbone) the random-logit check and
the parameter-randomisation summary, rendered with the one-run tables of ``results.schema``."""

from __future__ import annotations

from collections.abc import Sequence

from results.run_tables import spec_tables, table_spec
from results.tables import markdown
from sweeps.runs import Run

SANITY_TABLES = ("random_logit", "mprt")


def sanity_markdown(runs: Sequence[Run]) -> str:
    """``## Sanity checks`` with, for every run that ran them, its random-logit table and its
    MPRT tables; empty when no run did."""
    parts = []
    for run in sorted(runs, key=lambda r: (r.dataset_label, r.backbone, r.experiment)):
        tables = [t for name in SANITY_TABLES for t in spec_tables(table_spec(name), run.results)]
        if tables:
            parts.append(f"### {run.dataset_label}, {run.backbone} ({run.experiment})\n")
            parts.extend(f"**{t.title}**\n\n{markdown(t)}\n" for t in tables)
    if not parts:
        return ""
    return ("\n## Sanity checks\n\nRandom-logit check (map of t1 vs a random class; lower = "
            "class-sensitive) and parameter randomisation (trained vs randomised map per "
            "cascade step; lower = depends on the weights).\n\n" + "\n".join(parts))
