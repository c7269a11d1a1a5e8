"""Pure writers over a flat results dict: the paper's tables (markdown / rich) and report.md.

Keys follow ``eval/<quantity>/<method>/<t1|t2>/<baseline>/<mode>/<masking>/<contrast>``
(perturbation), ``eval/clean_relprob/<method>/<t>``, ``eval/count/<method>``,
``eval/<quantity>/gradient/<contrast>/n<k>`` (gradient sign) and
``eval/<differ|shared>_share/<method>/<t>/<contrast>`` (localisation).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
    """Write ``data`` so that readers never see a half-written file (same-folder temp + replace)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def rich_paper_tables(results: Mapping[str, float]) -> list[Table]:
    """One rich Table per masking in the paper's layout (for the console)."""
    tables = []
    for masking in found_axes(results)["masking"]:
        header, rows = paper_table_rows(results, masking)
        table = Table(title=f"relative probability r_t on perturbed images ({masking} masking)")
        for name in header:
            table.add_column(name, justify="right")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
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
    rows = []
    for contrast in contrasts:
        row = [contrast]
        for col in cols:
            quantity, steps = col.split("/")
            row.append(_fmt(results.get(f"eval/{quantity}/gradient/{contrast}/{steps}")))
        rows.append(row)
    return ["contrast", *cols], rows


def localization_rows(results: Mapping[str, float]) -> tuple[list[str], list[list[str]]]:
    """Rows = method x t, columns = differ/shared share for each contrast."""
    keys: dict[tuple[str, str], dict[str, float]] = {}
    contrasts: list[str] = []
    for parts in _parts(results):
        if len(parts) == 4 and parts[0] in ("differ_share", "shared_share"):
            _, method, t, contrast = parts
            keys.setdefault((method, t), {})
            keys[(method, t)][f"{parts[0]}/{contrast}"] = results["eval/" + "/".join(parts)]
            if contrast not in contrasts:
                contrasts.append(contrast)
    cols = [f"{share}/{c}" for share in ("differ_share", "shared_share") for c in contrasts]
    header = ["method", "t", *[c.replace("_share/", " ") for c in cols]]
    rows = [
        [METHOD_TITLES.get(m, m), t, *[_fmt(vals.get(c)) for c in cols]]
        for (m, t), vals in keys.items()
    ]
    return header, rows


def render_report(
    results: Mapping[str, float], info: Mapping[str, Any] | None = None
) -> str:
    """report.md: paper tables per masking, gradient-sign and localisation tables, counts, info."""
    out = ["# Contrastive evaluation report", ""]
    for name, value in (info or {}).items():
        out.append(f"- **{name}**: `{value}`")
    counts = {k: v for k, v in results.items() if "/count" in k or k.startswith("eval/count")}
    for key, value in sorted(counts.items()):
        out.append(f"- **{key}**: {int(value)}")
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
        out += ["## Gradient-sign perturbation (Figure 3)", "", markdown_table(header, rows), ""]
        clean = [k for k in sorted(results) if k.startswith("eval/clean_") and "gradient" in k]
        out += [f"- {k}: {results[k]:.4f}" for k in clean]
        out.append("")
    header, rows = localization_rows(results)
    if rows:
        out += ["## Part localisation (share of positive map mass)", ""]
        out += [markdown_table(header, rows), ""]
    return "\n".join(out)
