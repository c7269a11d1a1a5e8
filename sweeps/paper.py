"""The published numbers (``paper_numbers.json``): loaded, checked, indexed by table cell."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from errors import ConfigError
from results.schema import BASELINES, MODES, PAPER_CONTRASTS

PAPER_NUMBERS = Path(__file__).resolve().parent / "paper_numbers.json"
# The tables' column order (docs/protocol.md §2.6): clean r_t (the paper's p_t), then per
# baseline Pos ori/wtd, Neg ori/wtd.
COLUMNS = ("clean", *(f"{b}/{m}/{c}" for b in BASELINES for m in MODES for c in PAPER_CONTRASTS))
SOURCE_KINDS = ("paper", "reproduction")


@dataclass(frozen=True)
class Source:
    """One published table: its tag, what it is, and which of our tables it sits beside."""

    tag: str
    kind: str  # "paper" | "reproduction"
    backbone: str
    masking: str
    title: str
    cite: str
    notes: str = ""


@dataclass(frozen=True)
class PublishedCell:
    """One published number with its provenance."""

    value: float
    printed: str
    source: str
    sic: str = ""  # why the printed value is doubtful, "" when it is not


@dataclass(frozen=True)
class PaperNumbers:
    """``cells[(source, dataset, method, t, column)]`` plus the sources and the known gaps."""

    sources: dict[str, Source]
    cells: dict[tuple[str, str, str, str, str], PublishedCell]
    not_available: list[dict[str, str]] = field(default_factory=list)

    def sources_for(self, backbone: str, masking: str) -> list[Source]:
        """The published tables beside (backbone, masking), the paper's own first."""
        found = [s for s in self.sources.values()
                 if s.backbone == backbone and s.masking == masking]
        return sorted(found, key=lambda s: (SOURCE_KINDS.index(s.kind), s.tag))

    def gap(self, backbone: str, masking: str) -> dict[str, str] | None:
        """The data file's note on a published table that is known to exist but is missing."""
        for entry in self.not_available:
            if entry["backbone"] == backbone and entry["masking"] == masking:
                return entry
        return None

    def get(self, source: str, dataset: str, method: str, t: str,
            column: str) -> PublishedCell | None:
        """The published cell, or None where the source has no such row."""
        return self.cells.get((source, dataset, method, t, column))


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{path}: {what}. Fix the file (each row: source, dataset, method, t and "
                      f"{len(COLUMNS)} printed values in the order of 'columns').")


@cache
def load_paper_numbers(path: Path = PAPER_NUMBERS) -> PaperNumbers:
    """Parse and check the data file; every problem is a ValueError naming the file and row."""
    raw = json.loads(Path(path).read_text())
    if tuple(raw.get("columns", ())) != COLUMNS:
        raise _fail(path, f"'columns' must be {list(COLUMNS)}")
    sources: dict[str, Source] = {}
    for tag, s in raw["sources"].items():
        if s.get("kind") not in SOURCE_KINDS:
            raise _fail(path, f"source {tag} has kind {s.get('kind')!r}, not one of "
                              f"{SOURCE_KINDS}")
        sources[tag] = Source(tag=tag, kind=s["kind"], backbone=s["backbone"],
                              masking=s["masking"], title=s["title"], cite=s["cite"],
                              notes=s.get("notes", ""))
    sic = {(e["source"], e["dataset"], e["method"], e["t"], e["column"]): e
           for e in raw.get("sic", [])}
    cells: dict[tuple[str, str, str, str, str], PublishedCell] = {}
    for i, row in enumerate(raw["rows"]):
        if len(row) != 4 + len(COLUMNS):
            raise _fail(path, f"row {i} {row[:4]} has {len(row) - 4} values")
        tag, dataset, method, t, *printed = row
        if tag not in sources:
            raise _fail(path, f"row {i} names source {tag!r}, not one of {sorted(sources)}")
        if t not in ("t1", "t2"):
            raise _fail(path, f"row {i} has t={t!r}")
        for column, text in zip(COLUMNS, printed, strict=True):
            key = (tag, dataset, method, t, column)
            if key in cells:
                raise _fail(path, f"row {i} repeats {key}")
            try:
                value = float(text)
            except ValueError:
                raise _fail(path, f"row {i} column {column}: {text!r} is not a number") from None
            if not 0.0 <= value <= 1.0:
                raise _fail(path, f"row {i} column {column}: {value} is not a probability")
            note = sic.pop(key, {}).get("note", "")
            cells[key] = PublishedCell(value=value, printed=text, source=tag, sic=note)
    if sic:
        raise _fail(path, f"'sic' names cells that no row has: {sorted(sic)}")
    return PaperNumbers(sources=sources, cells=cells, not_available=raw.get("not_available", []))
