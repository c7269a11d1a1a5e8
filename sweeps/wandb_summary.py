"""The report's W&B summary run: the combined tables as W&B Tables, offline unless configured."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sweeps.render import CSV_FIELDS, KEYS, pair_columns
from sweeps.tables import PaperTable


def table_columns() -> list[str]:
    """Column names of a paper table on W&B (``GaussBlur Pos wtd``, ...)."""
    return [*KEYS, *(" ".join(p) for p in pair_columns()), "wtd better", "pairs", "wtd losses",
            "ties"]


def table_data(table: PaperTable) -> list[list[object]]:
    """The rows of ``table`` as numbers (None where missing)."""
    data = []
    for row in table.rows:
        values = [c.value for pair in row.pairs for c in pair]
        wins, losses, ties = row.counts()
        data.append([row.dataset, row.method, row.t, row.source, row.count, row.clean.value,
                     *values, wins, wins + losses + ties, losses, ties])
    return data


def log_summary_run(tables: Sequence[PaperTable], csv_rows: Sequence[dict[str, object]], *,
                    out_dir: Path, name: str, project: str = "whynot") -> Path:
    """Log every table (``paper/<backbone>/<masking>``), the per-key results (``results``) and
    the agreement counts (summary ``agreement/...``) to one run; its run folder.

    The run is grouped with the sweep's fit / evaluate runs (``group=name``,
    ``job_type="report"``); offline (``<out_dir>/wandb/offline-run-*``, upload with
    ``wandb sync``) unless the user configured W&B.
    """
    import wandb

    from cli.loggers import wandb_online_configured

    out_dir.mkdir(parents=True, exist_ok=True)
    mode = "online" if wandb_online_configured() else "offline"
    run = wandb.init(project=project, group=name, job_type="report", name=f"{name}/report",
                     dir=str(out_dir), mode=mode, tags=["paper-tables"],
                     config={"tables": [t.key for t in tables],
                             "runs": sorted({str(r.results_path) for t in tables
                                             for r in t.runs})})
    try:
        logged: dict[str, object] = {}
        for table in tables:
            logged[f"paper/{table.key}"] = wandb.Table(columns=table_columns(),
                                                       data=table_data(table))
        if csv_rows:
            logged["results"] = wandb.Table(
                columns=list(CSV_FIELDS),
                data=[[row.get(f) for f in CSV_FIELDS] for row in csv_rows])
        run.log(logged)
        for table in tables:
            wins, total = table.ours_weighted_better()
            run.summary[f"agreement/{table.key}/wtd_better"] = wins
            _, losses, ties = table.ours_counts()
            run.summary[f"agreement/{table.key}/wtd_losses"] = losses
            run.summary[f"agreement/{table.key}/ties"] = ties
            run.summary[f"agreement/{table.key}/pairs"] = total
            for agg in table.agreement():
                base = f"agreement/{table.key}/{agg.source.tag}"
                run.summary[f"{base}/same_winner"] = agg.same_winner
                run.summary[f"{base}/published_wtd_better"] = agg.published_wtd_better
                run.summary[f"{base}/pairs"] = agg.pairs
        run_dir = Path(run.dir).parent
    finally:
        run.finish()
    return run_dir
