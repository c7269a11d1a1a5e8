"""Pure writers over a flat results dict: the paper's tables (markdown / rich) and report.md.

Keys follow ``eval/<quantity>/<method>/<t1|t2>/<baseline>/<mode>/<masking>/<contrast>``
(perturbation), ``eval/clean_relprob/<method>/<t>``, ``eval/count/<method>``,
``eval/<quantity>/gradient/<contrast>/n<k>`` (gradient sign),
``eval/<differ|shared>_share/<method>/<t>/<contrast>`` (localisation),
``eval/pointing_<differ|shared>/<method>/<t>/<contrast>`` (pointing game) and
``eval/num_samples`` (test images seen).

Console tables fit a terminal width (``console_tables(results, width=120)``): a table too wide is
split into several that repeat the key columns (method, t, p_t) and keep each group of columns
(a baseline, a gradient-sign quantity) whole.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

BASELINE_TITLES: dict[str, str] = {"blur": "GaussBlur", "zeros": "Zeros", "mean": "ChMean"}
METHOD_TITLES: dict[str, str] = {
    "gradcam": "GC",
    "linear_approx": "LA",
    "xgradcam": "XGC",
    "gradcam++": "GC++",
    "gradient": "Grad",
}
CONTRAST_TITLES: dict[str, str] = {
    "original": "ori", "weighted": "wtd", "mean": "mean", "max": "max"
}


CANONICAL_ORDER: dict[str, tuple[str, ...]] = {
    "t": ("t1", "t2"),
    "baseline": ("blur", "zeros", "mean"),
    "mode": ("pos", "neg"),
    "masking": ("threshold", "equal"),
    "contrast": ("original", "weighted", "mean", "max"),
}


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` so that readers never see a half-written file (same-folder temp + replace).

    The temp file is created with mode 0666, which the kernel reduces by the umask, so the result
    has the mode a plain ``open()`` gives (``mkstemp`` would leave it 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_results_json(path: str | os.PathLike[str], results: Mapping[str, float]) -> None:
    """Write the flat results dict (sorted keys) atomically as JSON."""
    atomic_write_text(path, json.dumps(dict(sorted(results.items())), indent=2) + "\n")


def _parts(results: Mapping[str, float], prefix: str = "eval/") -> list[list[str]]:
    return [k[len(prefix):].split("/") for k in results if k.startswith(prefix)]


def found_axes(results: Mapping[str, float]) -> dict[str, list[str]]:
    """Methods, targets, baselines, modes, maskings and contrasts present in perturbation keys."""
    axes: dict[str, list[str]] = {
        name: [] for name in ("method", "t", "baseline", "mode", "masking", "contrast")
    }
    for parts in _parts(results):
        if parts[0] == "relprob" and len(parts) == 7:
            for name, value in zip(axes, parts[1:], strict=True):
                if value not in axes[name]:
                    axes[name].append(value)
    # results.json is sorted alphabetically; tables follow the paper's order (SPEC §2.6).
    for name, order in CANONICAL_ORDER.items():
        rank = {v: i for i, v in enumerate(order)}
        axes[name].sort(key=lambda v, rank=rank: (rank.get(v, len(rank)), v))
    return axes


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def paper_table_rows(
    results: Mapping[str, float], masking: str, quantity: str = "relprob"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one paper-layout table (SPEC §2.6) for one masking.

    Rows = method x {t1, t2}; columns: method | t | p_t | per baseline: Pos ori, wtd | Neg ori, wtd.
    """
    axes = found_axes(results)
    contrasts = [c for c in ("original", "weighted") if c in axes["contrast"]] or axes["contrast"]
    header = ["method", "t", "p_t"]
    cols: list[tuple[str, str, str]] = []
    for baseline in axes["baseline"]:
        for mode in axes["mode"]:
            for contrast in contrasts:
                title = BASELINE_TITLES.get(baseline, baseline)
                sign = {"pos": "Pos", "neg": "Neg"}.get(mode, mode)
                header.append(f"{title} {sign} {CONTRAST_TITLES.get(contrast, contrast)}")
                cols.append((baseline, mode, contrast))
    rows: list[list[str]] = []
    for method in axes["method"]:
        for t in axes["t"]:
            row = [METHOD_TITLES.get(method, method), t]
            row.append(_fmt(results.get(f"eval/clean_relprob/{method}/{t}")))
            for baseline, mode, contrast in cols:
                key = f"eval/{quantity}/{method}/{t}/{baseline}/{mode}/{masking}/{contrast}"
                row.append(_fmt(results.get(key)))
            rows.append(row)
    return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


CONSOLE_WIDTH = 120


def _rich_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(title=title)
    for name in header:
        # "GaussBlur Pos ori" -> two lines: the group on top keeps the column narrow
        table.add_column(name.replace(" ", "\n", 1) if " " in name else name, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def table_width(table: Table) -> int:
    """The width a table takes when nothing is squeezed (characters)."""
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum


def fitted_tables(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    keys: int,
    group: int,
    width: int = CONSOLE_WIDTH,
) -> list[Table]:
    """Rich tables of at most ``width`` characters: the first ``keys`` columns in each, then as
    many whole groups of ``group`` value columns as fit (a group wider than ``width`` alone still
    gets a table of its own). Titles say which part of how many a table is."""
    values = list(range(keys, len(header)))
    groups = [values[i:i + group] for i in range(0, len(values), group)] or [[]]

    def build(cols: list[int], name: str) -> Table:
        idx = [*range(keys), *cols]
        return _rich_table(name, [header[i] for i in idx], [[r[i] for i in idx] for r in rows])

    chunks: list[list[int]] = []
    for g in groups:
        if chunks and table_width(build(chunks[-1] + g, title)) <= width:
            chunks[-1] += g
        else:
            chunks.append(list(g))
    if len(chunks) == 1:
        return [build(chunks[0], title)]
    return [build(c, f"{title} ({i + 1}/{len(chunks)})") for i, c in enumerate(chunks)]


def rich_paper_tables(results: Mapping[str, float], width: int = CONSOLE_WIDTH) -> list[Table]:
    """The paper-layout tables (one per masking, split by baseline to fit ``width``)."""
    tables = []
    for masking in found_axes(results)["masking"]:
        header, rows = paper_table_rows(results, masking)
        title = f"r_t on perturbed images, {masking} masking"
        per_baseline = max(1, (len(header) - 3) // max(1, len(found_axes(results)["baseline"])))
        tables += fitted_tables(title, header, rows, keys=3, group=per_baseline, width=width)
    return tables


def console_tables(results: Mapping[str, float], width: int = CONSOLE_WIDTH) -> list[Table]:
    """Every table of a run for the console, each at most ``width`` characters wide: the paper
    tables, gradient-sign perturbation, part localisation and the pointing game."""
    tables = rich_paper_tables(results, width)
    header, rows = gradient_sign_rows(results)
    if rows:
        steps = len({h.split("/")[1] for h in header[1:]})
        tables += fitted_tables("gradient sign (Fig. 3): perturbed - clean",
                                [h.replace("/", " ") for h in header], rows, keys=1,
                                group=steps, width=width)
    for title, (header, rows) in (
        ("part localisation: share of positive mass", localization_rows(results)),
        ("pointing game: map maximum in", pointing_rows(results)),
    ):
        if rows:
            tables += fitted_tables(title, header, rows, keys=2, group=2, width=width)
    return tables


def gradient_sign_rows(results: Mapping[str, float]) -> tuple[list[str], list[list[str]]]:
    """Figure 3's quantities: rows = contrast, columns = delta_<q>/n<k> for every quantity and k."""
    cols: list[str] = []
    contrasts: list[str] = []
    for parts in _parts(results):
        if len(parts) == 4 and parts[1] == "gradient" and parts[0].startswith("delta_"):
            col = f"{parts[0]}/{parts[3]}"
            if col not in cols:
                cols.append(col)
            if parts[2] not in contrasts:
                contrasts.append(parts[2])
    # results.json comes back key-sorted ("n10" before "n2"): order by quantity, then step count
    cols.sort(key=lambda c: (c.split("/")[0], int(c.split("/")[1].lstrip("n"))))
    rank = {v: i for i, v in enumerate(CANONICAL_ORDER["contrast"])}
    contrasts.sort(key=lambda v: (rank.get(v, len(rank)), v))
    rows = []
    for contrast in contrasts:
        row = [contrast]
        for col in cols:
            quantity, steps = col.split("/")
            row.append(_fmt(results.get(f"eval/{quantity}/gradient/{contrast}/{steps}")))
        rows.append(row)
    return ["contrast", *cols], rows


def localization_rows(
    results: Mapping[str, float],
    quantities: tuple[str, str] = ("differ_share", "shared_share"),
) -> tuple[list[str], list[list[str]]]:
    """Rows = method x t, columns = differ / shared for each contrast ("differ ori", ...)."""
    keys: dict[tuple[str, str], dict[str, float]] = {}
    contrasts: list[str] = []
    for parts in _parts(results):
        if len(parts) == 4 and parts[0] in quantities:
            _, method, t, contrast = parts
            keys.setdefault((method, t), {})
            keys[(method, t)][f"{parts[0]}/{contrast}"] = results["eval/" + "/".join(parts)]
            if contrast not in contrasts:
                contrasts.append(contrast)
    rank = {v: i for i, v in enumerate(CANONICAL_ORDER["contrast"])}
    contrasts.sort(key=lambda v: (rank.get(v, len(rank)), v))
    cols = [(q, c) for q in quantities for c in contrasts]
    side = {q: ("differ" if "differ" in q else "shared") for q in quantities}
    header = ["method", "t", *[f"{side[q]} {CONTRAST_TITLES.get(c, c)}" for q, c in cols]]
    rows = [
        [METHOD_TITLES.get(m, m), t, *[_fmt(vals.get(f"{q}/{c}")) for q, c in cols]]
        for (m, t), vals in sorted(keys.items())
    ]
    return header, rows


def pointing_rows(results: Mapping[str, float]) -> tuple[list[str], list[list[str]]]:
    """The pointing game in the layout of ``localization_rows``."""
    return localization_rows(results, ("pointing_differ", "pointing_shared"))


_UNKNOWN = object()


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_value_text(v) for v in value) or "[]"
    return str(value)


def settings_lines(info: Mapping[str, Any], indent: int = 0) -> list[str]:
    """Markdown bullets of the run's settings; nested mappings become sub-bullets and keys that
    start with ``_`` (framework internals such as ``_instantiator``, ``_class_path``) are left
    out."""
    out = []
    pad = "  " * indent
    for key, value in info.items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, Mapping):
            inner = settings_lines(value, indent + 1)
            out.append(f"{pad}- **{key}**:" + ("" if inner else " —"))
            out += inner
        else:
            out.append(f"{pad}- **{key}**: {_value_text(value)}")
    return out


def count_sentences(results: Mapping[str, float], threshold: Any = _UNKNOWN) -> list[str]:
    """How many test images each table counts, as sentences ("129 of 500 test images have
    p_t2 > 0.1 ..."). ``threshold``: the p_t2 threshold (None: every sample counts)."""
    total = results.get("eval/num_samples")
    of = f" of {int(total)}" if total is not None else ""
    if threshold is _UNKNOWN:
        cond = "pass the p_t2 threshold"
    elif threshold is None:
        cond = "are counted (no p_t2 threshold)"
    else:
        cond = f"have p_t2 > {threshold:g}"
    out = []
    if total is not None:
        out.append(f"{int(total)} test images were evaluated.")
    methods = found_axes(results)["method"]
    counts = {m: results.get(f"eval/count/{m}") for m in methods}
    counts = {m: int(v) for m, v in counts.items() if v is not None}
    if counts:
        if len(set(counts.values())) == 1:
            n = next(iter(counts.values()))
            out.append(f"{n}{of} test images {cond} and enter the perturbation tables.")
        else:
            each = ", ".join(f"{METHOD_TITLES.get(m, m)} {n}" for m, n in counts.items())
            out.append(f"The perturbation tables count ({cond}) {each}{of} test images.")
    loc = [int(v) for k, v in sorted(results.items())
           if k.startswith("eval/count/") and k.endswith("/t1")]
    if loc:
        out.append(f"{loc[0]}{of} test images {cond} and enter the part localisation and "
                   "pointing-game tables (a map without positive mass is left out of its cell).")
    grad = results.get("eval/count/gradient")
    if grad is not None:
        out.append(f"The gradient-sign perturbation uses {int(grad)}{of} test images (all of "
                   "them: it needs no threshold).")
    return out


def shared_is_structurally_empty(results: Mapping[str, float]) -> bool:
    """Whether every "shared" number is 0: the ground truth has no part two classes share."""
    shared = [v for k, v in results.items()
              if k.startswith(("eval/shared_share/", "eval/pointing_shared/"))]
    return bool(shared) and all(v == 0.0 for v in shared)


LOCALISATION_TEXT = (
    "Share of each map's positive mass (upsampled to the image) inside the parts in which t1 "
    "and t2 differ (differ) and inside the parts they have in common (shared); the rest lies "
    "outside the annotated parts. A class-contrastive map should raise differ and lower shared."
)
POINTING_TEXT = (
    "Share of samples whose map maximum lies in a part in which t1 and t2 differ (differ) or in "
    "a part they share (shared); the rest point outside the annotated parts."
)
EMPTY_SHARED_TEXT = (
    "shared is 0 in every row by construction: in this ground truth every annotated part differs "
    "between any two classes, so there is nothing shared to measure. This is the case with "
    "CUB's one-part bird box (with_ground_truth='box', or True without the part files); use "
    "with_ground_truth='parts' with the part and attribute files for part-level ground truth."
)


def render_report(
    results: Mapping[str, float], info: Mapping[str, Any] | None = None
) -> str:
    """report.md: counts as sentences, the paper tables per masking, gradient-sign, localisation
    and pointing-game tables, then the settings (``info``: nested mappings; ``_``-keys dropped;
    ``info["evaluation"]["threshold"]`` is the p_t2 threshold of the count sentences)."""
    info = info or {}
    evaluation = info.get("evaluation")
    threshold = evaluation.get("threshold", _UNKNOWN) if isinstance(evaluation, Mapping) \
        else _UNKNOWN
    out = ["# Contrastive evaluation report", ""]
    out += count_sentences(results, threshold)
    out.append("")
    for masking in found_axes(results)["masking"]:
        out += [f"## Relative probability r_t, {masking} masking", ""]
        out += [
            "p_t: clean relative probability; Pos: higher is better; Neg: lower is better.",
            "",
        ]
        out += [markdown_table(*paper_table_rows(results, masking)), ""]
    header, rows = gradient_sign_rows(results)
    if rows:
        out += ["## Gradient-sign perturbation (Figure 3)", "",
                "Perturbed minus clean, per contrast of the gradient and number of steps.", "",
                markdown_table(header, rows), ""]
        clean = [k for k in sorted(results) if k.startswith("eval/clean_") and "gradient" in k]
        out += [f"- {k}: {results[k]:.4f}" for k in clean]
        out.append("")
    empty_shared = shared_is_structurally_empty(results)
    for title, text, (header, rows) in (
        ("Part localisation (share of positive map mass)", LOCALISATION_TEXT,
         localization_rows(results)),
        ("Pointing game (share of samples)", POINTING_TEXT, pointing_rows(results)),
    ):
        if rows:
            out += [f"## {title}", "", text, "", markdown_table(header, rows), ""]
            if empty_shared:
                out += [f"Note: {EMPTY_SHARED_TEXT}", ""]
    if info:
        out += ["## Settings", "", *settings_lines(info), ""]
    return "\n".join(out)
