"""One table model and its renderings: console (rich, fitted to a width), markdown, LaTeX, CSV.

The one-run tables (``results.run_tables``) and the paper tables over many runs
(``sweeps.render``) both build a :class:`Table` and print it with the functions here, so every
table of whynot looks and escapes the same way.

A table has key columns (left; repeated in every part when the console splits a wide table) and
value columns, each headed by a path of titles from the outermost group to the column itself
(``("GaussBlur", "Pos", "ori")``). Groups are runs of columns that share the first title: the
console keeps a group whole, LaTeX spans it with ``\\multicolumn``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

CONSOLE_WIDTH = 120
DASH = "—"


@dataclass(frozen=True)
class Cell:
    """One cell: its text, the number behind it (None for text and missing values), bold, a
    footnote mark, and its LaTeX text where that differs from ``text`` (already TeX)."""

    text: str
    value: float | None = None
    bold: bool = False
    mark: str = ""
    tex: str | None = None

    @property
    def present(self) -> bool:
        """A number (not missing, not NaN)."""
        return self.value is not None and not math.isnan(self.value)


def number(value: float | None, digits: int = 3, **kwargs: object) -> Cell:
    """A numeric cell: ``0.123``, ``—`` for a missing value, ``nan`` for NaN."""
    if value is None:
        return Cell(DASH, None, **kwargs)  # type: ignore[arg-type]
    text = "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return Cell(text, float(value), **kwargs)  # type: ignore[arg-type]


def text(value: object, tex: str | None = None) -> Cell:
    """A text cell (``tex``: its LaTeX form, if not the escaped text)."""
    return Cell(str(value), tex=tex)


@dataclass
class Table:
    """A table: title, key columns, value columns (header paths) and rows of cells."""

    title: str
    keys: list[str]
    columns: list[tuple[str, ...]]
    rows: list[list[Cell]] = field(default_factory=list)
    name: str = ""  # machine name: W&B key, LaTeX label
    heading: str = ""  # a document's section title for it (the title when empty)
    caption: str = ""  # LaTeX caption (plain text)
    midrules: set[int] = field(default_factory=set)  # LaTeX: a rule before these rows
    keys_tex: list[str] | None = None  # LaTeX headers of the key columns (already TeX)
    note: str = ""  # a line under the table: what bold means, win / loss / tie counts, n

    @property
    def header(self) -> list[str]:
        """Flat column names: the keys, then each value column's path joined by spaces."""
        return [*self.keys, *(" ".join(p) for p in self.columns)]

    def groups(self) -> list[list[int]]:
        """Value columns (indices into the full row) grouped by their first title."""
        out: list[list[int]] = []
        first = None
        for i, path in enumerate(self.columns):
            if out and path[0] == first and len(path) > 1:
                out[-1].append(len(self.keys) + i)
            else:
                out.append([len(self.keys) + i])
            first = path[0]
        return out

    def texts(self) -> list[list[str]]:
        """Each row's cell texts, bold as ``**x**``, marks appended (markdown's cells)."""
        return [[_md(c) for c in row] for row in self.rows]

    def values(self) -> list[list[object]]:
        """Each row with numbers where a cell has one, else its text (W&B tables)."""
        return [[c.value if c.value is not None else (None if c.text == DASH else c.text)
                 for c in row] for row in self.rows]


def _md(cell: Cell) -> str:
    body = f"**{cell.text}**" if cell.bold else cell.text
    return body + cell.mark


# --------------------------------------------------------------------------------- markdown
def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table of plain strings."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(table: Table) -> str:
    """The table in GitHub markdown (bold as ``**x**``)."""
    return markdown_table(table.header, table.texts())


# ------------------------------------------------------------------------------------ LaTeX
_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\textasciicircum{}", "—": "--", "†": r"$^\dagger$"}


def tex_escape(value: str) -> str:
    """Text safe inside a LaTeX table cell or caption."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in value)


def _tex(cell: Cell) -> str:
    body = cell.tex if cell.tex is not None else tex_escape(cell.text)
    body = rf"\textbf{{{body}}}" if cell.bold else body
    return body + tex_escape(cell.mark)


def _alignment(table: Table) -> str:
    """``l`` for text columns, ``r`` for number columns (every cell a number or missing)."""
    out = []
    for i in range(len(table.header)):
        cells = [row[i] for row in table.rows if row[i].text]
        numeric = cells and all(c.value is not None or c.text == DASH for c in cells)
        out.append("r" if numeric or i >= len(table.keys) else "l")
    return "".join(out)


def latex(table: Table, label: str | None = None) -> str:
    """One ``table*`` with booktabs rules (``\\usepackage{booktabs}``): a header row per level of
    the column paths, groups spanned by ``\\multicolumn`` with ``\\cmidrule`` under them."""
    nkeys = len(table.keys)
    depth = max((len(p) for p in table.columns), default=1)
    head: list[str] = []
    for level in range(depth - 1):
        cells, rules = [""] * nkeys, []
        i = 0
        while i < len(table.columns):
            path = table.columns[i]
            j = i
            while (j + 1 < len(table.columns) and len(table.columns[j + 1]) > level + 1
                   and len(path) > level + 1
                   and table.columns[j + 1][:level + 1] == path[:level + 1]):
                j += 1
            span = j - i + 1
            title = tex_escape(path[level]) if len(path) > level + 1 else ""
            cells.append(rf"\multicolumn{{{span}}}{{c}}{{{title}}}" if span > 1 else title)
            if title:
                lo = nkeys + i + 1
                rules.append(rf"\cmidrule(lr){{{lo}-{lo + span - 1}}}")
            i = j + 1
        head += [" & ".join(cells) + r" \\", "".join(rules)]
    keys = table.keys_tex or [tex_escape(k) for k in table.keys]
    names = keys + [tex_escape(p[-1]) for p in table.columns]
    head.append(" & ".join(names) + r" \\")
    body: list[str] = []
    for i, row in enumerate(table.rows):
        if i in table.midrules:
            body.append(r"\midrule")
        body.append(" & ".join(_tex(c) for c in row) + r" \\")
    lines = [r"\begin{table*}[t]", r"\centering", r"\scriptsize", r"\setlength{\tabcolsep}{3pt}"]
    caption = " ".join(c for c in (table.caption, table.note) if c)
    if caption:
        lines.append(rf"\caption{{{tex_escape(caption)}}}")
    name = label or table.name
    if name:
        lines.append(rf"\label{{{name}}}")
    lines += [rf"\begin{{tabular}}{{{_alignment(table)}}}", r"\toprule",
              *(h for h in head if h), r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
              r"\end{table*}"]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- CSV
def csv_text(fieldnames: Sequence[str], rows: Sequence[dict[str, object]]) -> str:
    """CSV with a header line; missing fields and undefined numbers (NaN, +-inf) are empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if isinstance(v, float) and not math.isfinite(v) else v
                      for k, v in row.items()} for row in rows)
    return buf.getvalue()


def table_csv(table: Table) -> str:
    """The table as CSV: flat header, numbers unrounded, missing values empty."""
    rows = [dict(zip(table.header, ["" if v is None else v for v in r], strict=True))
            for r in table.values()]
    return csv_text(table.header, rows)


# ---------------------------------------------------------------------------------- console
def _rich(title: str, header: Sequence[str], rows: Sequence[Sequence[str]],
          caption: str = ""):  # -> rich Table
    from rich.table import Table as RichTable

    out = RichTable(title=title, caption=caption or None)
    for name in header:
        # "GaussBlur Pos ori" -> two lines: the group on top keeps the column narrow
        out.add_column(name.replace(" ", "\n", 1) if " " in name else name, justify="right")
    for row in rows:
        out.add_row(*row)
    return out


def table_width(table: object) -> int:
    """The width a rich table takes when nothing is squeezed (characters)."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum


def rich_tables(table: Table, width: int = CONSOLE_WIDTH) -> list[object]:
    """Rich tables of at most ``width`` characters: the key columns in each, then as many whole
    column groups as fit (a group wider than ``width`` alone still gets a table of its own).
    Titles say which part of how many a table is."""
    from rich.markup import escape

    header = table.header
    rows = [[(f"[bold]{escape(c.text)}[/bold]" if c.bold else escape(c.text)) + escape(c.mark)
             for c in row] for row in table.rows]
    keys = list(range(len(table.keys)))

    def build(cols: list[int], name: str, note: str = table.note) -> object:
        idx = [*keys, *cols]
        return _rich(name, [header[i] for i in idx], [[r[i] for i in idx] for r in rows], note)

    chunks: list[list[int]] = []
    for group in table.groups() or [[]]:
        if chunks and table_width(build(chunks[-1] + group, table.title)) <= width:
            chunks[-1] += group
        else:
            chunks.append(list(group))
    if len(chunks) == 1:
        return [build(chunks[0], table.title)]
    # the note once, under the last part
    return [build(c, f"{table.title} ({i + 1}/{len(chunks)})",
                  table.note if i == len(chunks) - 1 else "") for i, c in enumerate(chunks)]
