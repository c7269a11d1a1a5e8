"""The paper tables as ``results.tables.Table``s, written as markdown (``paper_tables.md``),
LaTeX booktabs (``.tex``) and CSV (one row per key and run) by the renderers every table uses."""

from __future__ import annotations

from collections.abc import Sequence

from results.schema import AXES, KEY_AXES, ResultKey
from results.tables import DASH, Cell, Table, csv_text, latex, markdown, markdown_table
from sweeps.experiments import BACKBONE_TITLES
from sweeps.paper import PaperNumbers
from sweeps.recipe import FAR_MARK, RECIPE_EPOCHS, RECIPE_IMAGE_SIZE, run_settings
from sweeps.runs import Collection, Run, Unreadable
from sweeps.tables import PAIRS, Number, PaperTable, Row

DAGGER = "†"
INTRO = (
    "Relative probability r_t = exp(y_t) / (exp(y_t1) + exp(y_t2)) on the perturbed images, "
    "the mean over the test samples whose second probability exceeds the threshold (n of them; "
    "0.1 in the paper); the r_t column: the same ratio on the clean image (the paper heads it "
    "p_t). Pos: the map's positive region kept, the rest replaced (higher is better); Neg: its "
    "negative region kept (lower is better). **Bold** (ours): the better of ori / wtd in that "
    "direction where the 95 % interval of the per-sample difference wtd - ori excludes 0 "
    "(normal approximation over the n samples); neither bold: a tie. With several seeds a number "
    "is the mean ± standard deviation over the seeds, and a pair is won or lost only where every "
    "seed's interval says so. Published rows (and runs without paired keys) bold the better "
    "number. W/L/T: wtd's wins, losses and ties against ori. Rows `ours` are the runs listed "
    "under Runs; the other rows are published numbers, tagged with their source "
    "(`sweeps/paper_numbers.json`)."
)
KEYS = ["data", "method", "t", "source", "n", "r_t"]
KEYS_TEX = ["Data", "Method", "$t$", "Source", "$n$", "$r_t$"]


def number_cell(number: Number) -> Cell:
    if number.value is None:
        return Cell(DASH)
    text = "nan" if not number.present else (number.printed or f"{number.value:.3f}")
    tex = None
    if number.present and number.sd is not None:  # mean ± sd over seeds
        tex = f"{text}$\\pm${number.sd:.3f}"
        text = f"{text} ± {number.sd:.3f}"
    return Cell(text, number.value, bold=number.bold, mark=DAGGER if number.sic else "",
                tex=tex)


def _count(value: float | None) -> Cell:
    return Cell(DASH) if value is None or value != value else Cell(str(int(value)), value)


def pair_columns() -> list[tuple[str, ...]]:
    """``("GaussBlur", "Pos", "ori")``, ... in the paper's column order."""
    contrast = AXES["contrast"]
    return [(AXES["baseline"].title(b), AXES["mode"].title(mode), contrast.title(c))
            for b, mode in PAIRS for c in ("original", "weighted")]


def _wins(row: Row) -> Cell:
    wins, losses, ties = row.counts()
    if not wins + losses + ties:
        return Cell(DASH)
    text = f"{wins}/{losses}/{ties}"
    if len(row.seeds) > 1:  # each seed's own counts
        text += " (" + ", ".join(f"{w}/{lo}/{t}" for w, lo, t in row.per_seed) + ")"
    return Cell(text, float(wins))


def counts_text(table: PaperTable) -> str:
    """``"Weighted vs original (ours): 40 wins, 2 losses, 6 ties of 48 cell pairs."``, with
    each seed's counts where rows have several seeds."""
    wins, losses, ties = table.ours_counts()
    text = (f"Weighted vs original (ours): {wins} wins, {losses} losses, {ties} ties of "
            f"{wins + losses + ties} cell pairs")
    seeds = table.seed_counts()
    if seeds:
        text += " (every seed's interval agreeing); per seed: " + ", ".join(
            f"seed {s}: {w}/{lo}/{t}" for s, (w, lo, t) in seeds.items())
    return text + "."


def agreement_text(table: PaperTable) -> str:
    """One sentence per table: our wins / losses / ties, and per source its wtd-better count and
    how often its winner is ours."""
    parts = [counts_text(table)]
    for agg in table.agreement():
        tag = f"{agg.source.title} [{agg.source.tag}]"
        parts.append(f"{tag}: weighted better in {agg.published_wtd_better} of the same "
                     f"{agg.pairs}; the same winner as ours in {agg.same_winner} of {agg.pairs}.")
    return " ".join(parts)


def _gap_text(table: PaperTable) -> str | None:
    if table.sources:
        return None
    if table.gap:
        return f"No published numbers beside ours: {table.gap['what']} — {table.gap['why']}."
    return "No published numbers for this backbone and masking."


def as_table(table: PaperTable, wins: bool = True) -> Table:
    """The paper table as a ``Table``: our rows headed by data / method / t, each published row
    under ours with its source; LaTeX caption and label, a rule between data sets. ``wins``: a
    last column with each row's wtd wins / losses / ties (the markdown's, not the paper's)."""
    out = Table(table.title, list(KEYS), [*pair_columns(), *([("wtd W/L/T",)] if wins else [])],
                name="tab:whynot-" + "-".join(
                    "".join(ch if ch.isalnum() else "-" for ch in part)
                    for part in table.key.split("/")),
                keys_tex=list(KEYS_TEX))
    last_dataset = None
    for row in table.rows:
        ours = row.source == "ours"
        if ours and last_dataset is not None and row.dataset != last_dataset:
            out.midrules.add(len(out.rows))
        if ours:
            last_dataset = row.dataset
        head = ([Cell(row.dataset), Cell(AXES["method"].title(row.method)),
                 Cell(row.t, tex=f"$t_{row.t[1:]}$")] if ours else [Cell("")] * 3)
        cells = [number_cell(c) for pair in row.pairs for c in pair]
        out.rows.append([*head, Cell(row.source, mark=FAR_MARK if row.far else ""),
                         _count(row.count), number_cell(row.clean), *cells,
                         *([_wins(row)] if wins else [])])
    caption = [f"{BACKBONE_TITLES.get(table.backbone, table.backbone)}, {table.masking} "
               "masking: relative probability r_t on perturbed images (Pos: higher is better; "
               "Neg: lower is better; bold: the better of ori/wtd where the 95 % interval of "
               "the per-sample difference excludes 0; n: samples). " + counts_text(table)]
    for agg in table.agreement():
        caption.append(f"{agg.source.title} [{agg.source.tag}]: weighted better in "
                       f"{agg.published_wtd_better} of the same {agg.pairs}, the same winner as "
                       f"ours in {agg.same_winner}.")
    gap = _gap_text(table)
    if gap:
        caption.append(gap.replace("—", "-"))
    if any(c.sic for r in table.rows for p in r.pairs for c in p):
        caption.append(f"{DAGGER} printed so in the source (two decimals).")
    out.caption = " ".join(caption)
    return out


def _sic_notes(table: PaperTable) -> list[str]:
    notes = []
    for row in table.rows:
        for ori, wtd in row.pairs:
            for c in (ori, wtd):
                if c.sic:
                    notes.append(f"{DAGGER} {row.source} {row.dataset} "
                                 f"{AXES['method'].title(row.method)} {row.t}: "
                                 f"printed as {c.printed}; {c.sic}.")
    return notes


def _run_lines(collection: Collection) -> list[str]:
    settings = [run_settings(r.meta) for r in collection.runs]
    header = ["experiment", "dataset", "backbone", "protocol", "identified by", "finished",
              "results", *(settings[0] if settings else ())]
    rows = [[r.experiment, r.dataset_label, r.backbone,
             "?" if r.protocol is None else str(r.protocol), r.info_from.split(" ")[0],
             r.finished, f"`{r.results_path}`", *s.values()]
            for r, s in zip(collection.runs, settings, strict=True)]
    return [markdown_table(header, rows)] if rows else ["(none)"]


def left_out_label(item: Run | Unreadable) -> str:
    """How the report names a run (or a path) it left out."""
    return item.label if isinstance(item, Run) else f"`{item.path}`"


def render_markdown(tables: Sequence[PaperTable], collection: Collection) -> str:
    """``paper_tables.md``."""
    out = [f"# The paper's tables from {len(collection.runs)} run"
           f"{'s' * (len(collection.runs) != 1)}", "", INTRO, ""]
    if collection.protocol is not None:
        out += [f"Protocol: whynot_protocol {collection.protocol}.", ""]
    if not tables:
        out += ["No run with perturbation keys (eval/relprob/...): no table.", ""]
    for table in tables:
        out += [f"## {table.title}", ""]
        gap = _gap_text(table)
        if gap:
            out += [gap, ""]
        out += [markdown(as_table(table)), ""]
        out += [agreement_text(table), ""]
        notes = _sic_notes(table)
        if notes:
            out += [*(f"{n}  " for n in notes), ""]
        far = sorted({f"{r.dataset}: {r.far}" for r in table.rows if r.far})
        if far:
            out += [f"{FAR_MARK} far from the paper's recipe (ImageNet-pretrained, "
                    f"{RECIPE_EPOCHS} epochs, {RECIPE_IMAGE_SIZE} px), not a reproduction: "
                    + "; ".join(far) + ".", ""]
        if table.incomplete:
            out += ["Runs with missing keys:", "", *(f"- {x}" for x in table.incomplete), ""]
    used = {s.tag: s for t in tables for s in t.sources}
    if used:
        out += ["## Sources", ""]
        out += [f"- **{s.tag}** ({s.kind}): {s.cite}." + (f" Note: {s.notes}." if s.notes
                                                          else "") for s in used.values()]
        out.append("")
    out += ["## Runs", "", *_run_lines(collection), ""]
    flagged = [(r, p) for r in collection.runs for p in r.problems]
    if flagged:
        out += ["Flags:", "", *(f"- {r.label}: {p}" for r, p in flagged), ""]
    if collection.left_out:
        out += ["## Reported, not in the tables", ""]
        out += [f"- {left_out_label(item)}: {why}" for item, why in collection.left_out]
        out.append("")
    return "\n".join(out)


def render_latex(tables: Sequence[PaperTable]) -> str:
    """``paper_tables.tex``: every table, ready to ``\\input``."""
    head = ["% Written by `python -m sweeps report`; needs \\usepackage{booktabs}.",
            "% Published rows are tagged with their source; see paper_tables.md for the list.", ""]
    return "\n".join(head) + "\n\n".join(latex(as_table(t, wins=False)) for t in tables) + "\n"


# --- CSV ---------------------------------------------------------------------------------------

CSV_FIELDS = ("experiment", "dataset", "backbone", "protocol", "in_tables", "results_path",
              "key", "quantity", *KEY_AXES, "value", "paper", "paper_source", "reproduction",
              "reproduction_source", "seed")


def _published(paper: PaperNumbers, run: Run, key: ResultKey) -> dict[str, object]:
    """The published numbers of the cell ``key`` names (relprob and clean_relprob keys)."""
    if key.quantity == "relprob":
        column = f"{key.baseline}/{key.mode}/{key.contrast}"
    elif key.quantity == "clean_relprob":
        column = "clean"
    else:
        return {}
    out: dict[str, object] = {}
    for source in paper.sources.values():
        if source.backbone != run.backbone or (key.masking is not None
                                               and source.masking != key.masking):
            continue
        if source.kind in out or run.dataset is None:
            continue
        cell = paper.get(source.tag, run.dataset.key, str(key.method), str(key.t), column)
        if cell is not None:
            out[source.kind] = cell.value
            out[f"{source.kind}_source"] = source.tag
    return out


def csv_rows(collection: Collection, paper: PaperNumbers) -> list[dict[str, object]]:
    """One row per key and run (runs left out of the tables too, ``in_tables`` = 0), with the
    key's coordinates on every axis of the schema and the published numbers of its cell."""
    runs = [(r, 1) for r in collection.runs]
    runs += [(r, 0) for r, _ in collection.left_out if isinstance(r, Run)]
    rows = []
    for run, in_tables in runs:
        for text, value in sorted(run.results.items()):
            row: dict[str, object] = {
                "experiment": run.experiment, "dataset": run.dataset_label,
                "backbone": run.backbone, "protocol": run.protocol, "in_tables": in_tables,
                "results_path": str(run.results_path), "key": text, "value": value,
                "seed": run.seed,
            }
            key = ResultKey.try_parse(text)
            if key is not None:
                row.update(quantity=key.quantity, **key.coordinates())
                row.update(_published(paper, run, key))
            rows.append(row)
    return rows


def render_csv(collection: Collection, paper: PaperNumbers) -> str:
    """``paper_tables.csv``."""
    return csv_text(CSV_FIELDS, csv_rows(collection, paper))
