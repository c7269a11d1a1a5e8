"""The tables in three forms: markdown (``paper_tables.md``), LaTeX booktabs (``.tex``), CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence

from results.report import BASELINE_TITLES, METHOD_TITLES, markdown_table
from sweeps.experiments import BACKBONE_TITLES
from sweeps.paper import PaperNumbers
from sweeps.runs import Collection, Run, Unreadable
from sweeps.tables import PAIRS, Cell, PaperTable, Row

MODE_TITLES = {"pos": "Pos", "neg": "Neg"}
DAGGER = "†"
INTRO = (
    "Relative probability r_t = exp(y_t) / (exp(y_t1) + exp(y_t2)) on the perturbed images, "
    "the mean over the test samples whose second probability exceeds the threshold (n of them; "
    "0.1 in the paper); p_t: the same ratio on the clean image. Pos: the map's positive region "
    "kept, the rest replaced (higher is better); Neg: its negative region kept (lower is "
    "better). **Bold**: the better of ori / wtd in that direction, compared on the unrounded "
    "values. Rows `ours` are the runs listed under Runs; the other rows are published numbers, "
    "tagged with their source (`sweeps/paper_numbers.json`)."
)


def _number(cell: Cell) -> str:
    if cell.value is None:
        return "—"
    if math.isnan(cell.value):
        return "nan"
    text = cell.printed or f"{cell.value:.3f}"
    return text + (DAGGER if cell.sic else "")


def _count(value: float | None) -> str:
    return "—" if value is None or math.isnan(value) else str(int(value))


def _wins(row: Row) -> str:
    wins, total = row.weighted_better()
    return f"{wins}/{total}" if total else "—"


def pair_headers() -> list[str]:
    """``GaussBlur Pos ori``, ``wtd``, ... in the paper's column order."""
    out = []
    for b, mode in PAIRS:
        out += [f"{BASELINE_TITLES[b]} {MODE_TITLES[mode]} ori", "wtd"]
    return out


def agreement_text(table: PaperTable) -> str:
    """One sentence per table: our wtd-better count, and per source its count and ours vs it."""
    wins, total = table.ours_weighted_better()
    parts = [f"Weighted better than original in {wins} of {total} cell pairs (ours)."]
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


def _markdown_rows(table: PaperTable) -> list[list[str]]:
    rows = []
    for row in table.rows:
        ours = row.source == "ours"
        head = ([row.dataset, METHOD_TITLES.get(row.method, row.method), row.t] if ours
                else ["", "", ""])
        cells = []
        for ori, wtd in row.pairs:
            cells += [f"**{_number(c)}**" if c.bold else _number(c) for c in (ori, wtd)]
        rows.append([*head, row.source, _count(row.count), _number(row.clean), *cells,
                     _wins(row)])
    return rows


def _sic_notes(table: PaperTable, paper: PaperNumbers) -> list[str]:
    notes = []
    for row in table.rows:
        for ori, wtd in row.pairs:
            for c in (ori, wtd):
                if c.sic:
                    notes.append(f"{DAGGER} {row.source} {row.dataset} "
                                 f"{METHOD_TITLES.get(row.method, row.method)} {row.t}: "
                                 f"printed as {c.printed}; {c.sic}.")
    return notes


def _run_lines(collection: Collection) -> list[str]:
    header = ["experiment", "dataset", "backbone", "protocol", "identified by", "finished",
              "results"]
    rows = [[r.experiment, r.dataset_label, r.backbone,
             "?" if r.protocol is None else str(r.protocol), r.info_from.split(" ")[0],
             r.finished, f"`{r.results_path}`"] for r in collection.runs]
    return [markdown_table(header, rows)] if rows else ["(none)"]


def left_out_label(item: Run | Unreadable) -> str:
    return item.label if isinstance(item, Run) else f"`{item.path}`"


def render_markdown(tables: Sequence[PaperTable], collection: Collection,
                    paper: PaperNumbers) -> str:
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
        header = ["data", "method", "t", "source", "n", "p_t", *pair_headers(), "wtd better"]
        out += [markdown_table(header, _markdown_rows(table)), ""]
        out += [agreement_text(table), ""]
        notes = _sic_notes(table, paper)
        if notes:
            out += [*(f"{n}  " for n in notes), ""]
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


# --- LaTeX -----------------------------------------------------------------------------------

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell or caption."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in text)


def _tex_number(cell: Cell) -> str:
    if cell.value is None:
        return "--"
    if math.isnan(cell.value):
        return "nan"
    text = cell.printed or f"{cell.value:.3f}"
    text = rf"\textbf{{{text}}}" if cell.bold else text
    return text + (r"$^\dagger$" if cell.sic else "")


N_LEAD = 6  # data, method, t, source, n, p_t


def render_latex_table(table: PaperTable) -> str:
    """One ``table*`` with booktabs rules (needs ``\\usepackage{booktabs}``)."""
    ncols = N_LEAD + 2 * len(PAIRS)
    first = N_LEAD + 1
    group_row = [""] * N_LEAD
    rules_1, rules_2, mode_row = [], [], [""] * N_LEAD
    for i, b in enumerate(dict.fromkeys(b for b, _ in PAIRS)):
        lo = first + 4 * i
        group_row.append(rf"\multicolumn{{4}}{{c}}{{{BASELINE_TITLES[b]}}}")
        rules_1.append(rf"\cmidrule(lr){{{lo}-{lo + 3}}}")
        for j, mode in enumerate(("pos", "neg")):
            mode_row.append(rf"\multicolumn{{2}}{{c}}{{{MODE_TITLES[mode]}.}}")
            rules_2.append(rf"\cmidrule(lr){{{lo + 2 * j}-{lo + 2 * j + 1}}}")
    names = ["Data", "Method", "$t$", "Source", "$n$", "$p_t$"] + ["ori.", "wtd."] * len(PAIRS)
    body: list[str] = []
    last_dataset = None
    for row in table.rows:
        ours = row.source == "ours"
        if ours and last_dataset is not None and row.dataset != last_dataset:
            body.append(r"\midrule")
        if ours:
            last_dataset = row.dataset
        head = ([tex_escape(row.dataset), tex_escape(METHOD_TITLES.get(row.method, row.method)),
                 f"$t_{row.t[1:]}$"] if ours else ["", "", ""])
        cells = [_tex_number(c) for pair in row.pairs for c in pair]
        body.append(" & ".join([*head, tex_escape(row.source), _count(row.count).replace("—",
                                "--"), _tex_number(row.clean), *cells]) + r" \\")
    wins, total = table.ours_weighted_better()
    caption = [f"{tex_escape(BACKBONE_TITLES.get(table.backbone, table.backbone))}, "
               f"{tex_escape(table.masking)} masking: relative probability $r_t$ on perturbed "
               "images (Pos.: higher is better; Neg.: lower is better; bold: the better of "
               f"ori./wtd.). Weighted better than original in {wins} of {total} cell pairs."]
    for agg in table.agreement():
        caption.append(f"{tex_escape(agg.source.title)} [{tex_escape(agg.source.tag)}]: "
                       f"weighted better in {agg.published_wtd_better} of the same {agg.pairs}, "
                       f"the same winner as ours in {agg.same_winner}.")
    gap = _gap_text(table)
    if gap:
        caption.append(tex_escape(gap.replace("—", "-")))
    if any(c.sic for r in table.rows for p in r.pairs for c in p):
        caption.append(r"$^\dagger$ printed so in the source (two decimals).")
    label = "tab:whynot-" + "-".join(
        "".join(ch if ch.isalnum() else "-" for ch in part) for part in table.key.split("/"))
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        r"\scriptsize",
        r"\setlength{\tabcolsep}{3pt}",
        rf"\caption{{{' '.join(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{'l' * 4}{'r' * (ncols - 4)}}}",
        r"\toprule",
        " & ".join(group_row) + r" \\",
        "".join(rules_1),
        " & ".join(mode_row) + r" \\",
        "".join(rules_2),
        " & ".join(names) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table*}",
    ]
    return "\n".join(lines)


def render_latex(tables: Sequence[PaperTable]) -> str:
    """``paper_tables.tex``: every table, ready to ``\\input``."""
    head = ["% Written by `python -m sweeps report`; needs \\usepackage{booktabs}.",
            "% Published rows are tagged with their source; see paper_tables.md for the list.", ""]
    return "\n".join(head) + "\n\n".join(render_latex_table(t) for t in tables) + "\n"


# --- CSV ---------------------------------------------------------------------------------------

CSV_FIELDS = ("experiment", "dataset", "backbone", "protocol", "in_tables", "results_path",
              "key", "quantity", "method", "t", "baseline", "mode", "masking", "contrast",
              "value", "paper", "paper_source", "reproduction", "reproduction_source")


def _published(paper: PaperNumbers, run: Run, method: str, t: str, masking: str | None,
               column: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for source in paper.sources.values():
        if source.backbone != run.backbone or (masking is not None
                                               and source.masking != masking):
            continue
        if source.kind in out or run.dataset is None:
            continue
        cell = paper.get(source.tag, run.dataset.key, method, t, column)
        if cell is not None:
            out[source.kind] = cell.value
            out[f"{source.kind}_source"] = source.tag
    return out


def csv_rows(collection: Collection, paper: PaperNumbers) -> list[dict[str, object]]:
    """One row per key and run (runs left out of the tables too, ``in_tables`` = 0)."""
    runs = [(r, 1) for r in collection.runs]
    runs += [(r, 0) for r, _ in collection.left_out if isinstance(r, Run)]
    rows = []
    for run, in_tables in runs:
        for key, value in sorted(run.results.items()):
            parts = key.split("/")
            row: dict[str, object] = {
                "experiment": run.experiment, "dataset": run.dataset_label,
                "backbone": run.backbone, "protocol": run.protocol, "in_tables": in_tables,
                "results_path": str(run.results_path),
                "key": key, "quantity": parts[1] if len(parts) > 1 else "", "value": value,
            }
            if len(parts) == 8 and parts[0] == "eval":
                _, q, m, t, b, mode, masking, c = parts
                row.update(method=m, t=t, baseline=b, mode=mode, masking=masking, contrast=c)
                if q == "relprob":
                    row.update(_published(paper, run, m, t, masking, f"{b}/{mode}/{c}"))
            elif len(parts) == 4 and parts[1] == "clean_relprob":
                row.update(method=parts[2], t=parts[3])
                row.update(_published(paper, run, parts[2], parts[3], None, "clean"))
            rows.append(row)
    return rows


def render_csv(collection: Collection, paper: PaperNumbers) -> str:
    """``paper_tables.csv``."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(collection, paper))
    return buf.getvalue()
