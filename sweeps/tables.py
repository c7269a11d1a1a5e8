"""The paper's tables over many runs: one per backbone and masking, ours beside the published.

Layout of the paper's appendix tables (docs/protocol.md §2.6): rows dataset x method x {t1, t2};
columns r_t (clean), then GaussBlur / Zeros / ChMean x Pos / Neg x ori / wtd. Below each of our
rows, the published rows for the same cell (App. Table 2, App. Table 3, the reproduction) where
``paper_numbers.json`` has them. In Pos columns higher is better, in Neg columns lower.

Our winner of a cell pair is decided by the 95 % interval of the per-sample paired difference
wtd - ori (``diff_relprob`` keys): a win or a loss where it excludes 0, a tie otherwise. Runs of
the same experiment with several seeds share one row: each number is the mean over the seeds
(with their standard deviation), a pair is won or lost only where every seed's interval says so,
and each seed's own win / loss / tie counts are kept. Published rows and runs written before the
paired keys existed compare the numbers themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from results.schema import (
    AXES,
    BASELINES,
    MODES,
    PAPER_CONTRASTS,
    RANKS,
    ResultKey,
    axis_values,
    paired_verdict,
    parse_results,
)
from sweeps.experiments import BACKBONE_TITLES, DATASETS
from sweeps.paper import PaperNumbers, Source
from sweeps.recipe import recipe_gaps
from sweeps.runs import Run

PAIRS: tuple[tuple[str, str], ...] = tuple((b, m) for b in BASELINES for m in MODES)
MASKING_ORDER = (("vgg16_bn", "threshold"), ("alexnet", "threshold"), ("vgg16_bn", "equal"),
                 ("alexnet", "equal"))  # the paper's Table 1, App. Table 2, App. Table 3


@dataclass(frozen=True)
class Number:
    """One number: ours or published (``printed`` keeps the published text)."""

    value: float | None
    printed: str = ""
    sic: str = ""
    bold: bool = False
    sd: float | None = None  # standard deviation over seeds (ours, with several seeds)

    @property
    def present(self) -> bool:
        """A number (not missing, not NaN)."""
        return self.value is not None and not math.isnan(self.value)


@dataclass
class Row:
    """One row: dataset x method x t from one source (``"ours"`` or a published tag)."""

    dataset: str
    method: str
    t: str
    source: str  # "ours" or a Source tag
    count: float | None  # our samples with p_t2 > threshold; None for published rows
    clean: Number
    pairs: list[tuple[Number, Number]]  # (ori, wtd) per PAIRS
    # ours: per pair, wtd's verdict from the paired intervals (None: compare the numbers)
    verdicts: list[str | None] = field(default_factory=list)
    seeds: list[int | None] = field(default_factory=list)  # ours: the runs' seeds
    per_seed: list[tuple[int, int, int]] = field(default_factory=list)  # (wins, losses, ties)
    far: str = ""  # our run's departures from the paper's recipe ("": none recorded)

    def outcomes(self) -> list[str]:
        """wtd's verdict (win / loss / tie) of each pair with both numbers."""
        out = []
        for i, ((ori, wtd), (_, mode)) in enumerate(zip(self.pairs, PAIRS, strict=True)):
            if ori.present and wtd.present:
                given = self.verdicts[i] if i < len(self.verdicts) else None
                out.append(given or by_value(ori, wtd, mode))
        return out

    def counts(self) -> tuple[int, int, int]:
        """(wins, losses, ties) of wtd against ori over the pairs with both numbers."""
        found = self.outcomes()
        return found.count("win"), found.count("loss"), found.count("tie")

    def weighted_better(self) -> tuple[int, int]:
        """(pairs where wtd wins, pairs with both numbers)."""
        found = self.outcomes()
        return found.count("win"), len(found)


def better(a: Number, b: Number, mode: str) -> bool:
    """``a`` strictly better than ``b``: higher in Pos columns, lower in Neg columns."""
    assert a.value is not None and b.value is not None
    return a.value > b.value if mode == "pos" else a.value < b.value


def by_value(ori: Number, wtd: Number, mode: str) -> str:
    """wtd's verdict from the numbers alone (published rows, runs without paired keys)."""
    return "win" if better(wtd, ori, mode) else "loss" if better(ori, wtd, mode) else "tie"


def bolded(ori: Number, wtd: Number, mode: str, verdict: str | None = None
            ) -> tuple[Number, Number]:
    """Bold the winner: ``verdict`` (from the intervals) where given, else the better number."""
    if not (ori.present and wtd.present):
        return ori, wtd
    verdict = verdict or by_value(ori, wtd, mode)
    return (replace(ori, bold=verdict == "loss"), replace(wtd, bold=verdict == "win"))


@dataclass
class SourceAgreement:
    """How our winners compare with one published source over the cells both have."""

    source: Source
    pairs: int = 0  # pairs with our two numbers and the source's two
    published_wtd_better: int = 0
    same_winner: int = 0


@dataclass
class PaperTable:
    """One table: a backbone and a masking."""

    backbone: str
    masking: str
    rows: list[Row]
    sources: list[Source]
    gap: dict[str, str] | None  # the data file's note when the published table is missing
    runs: list[Run]
    incomplete: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """``<backbone>/<masking>`` (W&B table name, CSV, LaTeX label)."""
        return f"{self.backbone}/{self.masking}"

    @property
    def title(self) -> str:
        """e.g. ``AlexNet, threshold masking (beside App. Table 2)``."""
        name = BACKBONE_TITLES.get(self.backbone, self.backbone)
        beside = ", ".join(s.title for s in self.sources)
        return f"{name}, {self.masking} masking" + (f" (beside {beside})" if beside else "")

    def ours_weighted_better(self) -> tuple[int, int]:
        """Over our rows: (pairs where wtd wins in the paper's direction, pairs)."""
        counts = [r.weighted_better() for r in self.rows if r.source == "ours"]
        return sum(c[0] for c in counts), sum(c[1] for c in counts)

    def ours_counts(self) -> tuple[int, int, int]:
        """Over our rows: wtd's (wins, losses, ties) against ori."""
        counts = [r.counts() for r in self.rows if r.source == "ours"]
        return (sum(c[0] for c in counts), sum(c[1] for c in counts),
                sum(c[2] for c in counts))

    def seed_counts(self) -> dict[int | None, tuple[int, int, int]]:
        """Over our rows, per seed: wtd's (wins, losses, ties) by that seed's intervals alone
        (empty unless some row has several seeds)."""
        out: dict[int | None, list[int]] = {}
        for row in (r for r in self.rows if r.source == "ours" and len(r.seeds) > 1):
            for seed, counts in zip(row.seeds, row.per_seed, strict=True):
                total = out.setdefault(seed, [0, 0, 0])
                for j in range(3):
                    total[j] += counts[j]
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}

    def agreement(self) -> list[SourceAgreement]:
        """Per published source, over the cell pairs where ours and it both have numbers."""
        out = []
        ours = {(r.dataset, r.method, r.t): r for r in self.rows if r.source == "ours"}
        for source in self.sources:
            agg = SourceAgreement(source)
            for row in (r for r in self.rows if r.source == source.tag):
                mine = ours[(row.dataset, row.method, row.t)]
                for i, ((o, w), (po, pw), (_, mode)) in enumerate(
                        zip(mine.pairs, row.pairs, PAIRS, strict=True)):
                    if not (o.present and w.present and po.present and pw.present):
                        continue
                    agg.pairs += 1
                    published = better(pw, po, mode)
                    agg.published_wtd_better += published
                    # the same winner: both wtd, or both not-wtd (ori better or, ours, a tie)
                    verdict = (mine.verdicts[i] if i < len(mine.verdicts) and mine.verdicts[i]
                               else by_value(o, w, mode))
                    agg.same_winner += (verdict == "win") == published
            out.append(agg)
        return out


def _found(runs: Sequence[Run], axis: str) -> list[str]:
    """The values of ``axis`` among the runs' perturbation (relprob) keys, in the axis's order
    (methods in the paper's row order: LA, GC, XGC)."""
    keys = [k for run in runs for k in parse_results(run.results)]
    return axis_values(keys, axis, quantity="relprob")


def expected_keys(methods: Sequence[str], masking: str) -> list[str]:
    """The results.json keys one run needs for its rows of a table."""
    keys: list[ResultKey] = []
    for m in methods:
        keys.append(ResultKey("count", m))
        for t in RANKS:
            keys.append(ResultKey("clean_relprob", m, t))
            keys += [ResultKey("relprob", m, t, b, mode, masking, c)
                     for b, mode in PAIRS for c in PAPER_CONTRASTS]
    return [str(k) for k in keys]


def mean_sd(values: list[float | None]) -> Number:
    """The mean over seeds and, for several, their sample standard deviation (n - 1)."""
    if not values or any(v is None for v in values):
        return Number(None)
    vals = [float(v) for v in values if v is not None]
    mean = math.fsum(vals) / len(vals)
    if len(vals) < 2:
        return Number(mean)
    return Number(mean, sd=math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (len(vals) - 1)))


def consensus(verdicts: list[str | None]) -> str | None:
    """A win or loss where every seed's interval says so, else a tie; None where a seed has no
    interval (its numbers are compared instead)."""
    if not verdicts or any(v is None for v in verdicts):
        return None
    return verdicts[0] if len(set(verdicts)) == 1 and verdicts[0] != "tie" else "tie"


def _our_row(runs: Sequence[Run], method: str, t: str, masking: str) -> Row:
    """Our row of ``method`` / ``t`` over the runs of one experiment (one per seed)."""
    pairs, verdicts = [], []
    per_seed = [[0, 0, 0] for _ in runs]
    for b, mode in PAIRS:
        keys = [ResultKey("relprob", method, t, b, mode, masking, c) for c in PAPER_CONTRASTS]
        ori, wtd = (mean_sd([r.results.get(str(k)) for r in runs]) for k in keys)
        seeds = [paired_verdict(r.results, keys[1]) for r in runs]
        for counts, v in zip(per_seed, seeds, strict=True):
            if v is not None:
                counts[("win", "loss", "tie").index(v)] += 1
        verdict = consensus(seeds)
        verdicts.append(verdict)
        pairs.append(bolded(ori, wtd, mode, verdict))
    count = mean_sd([r.results.get(str(ResultKey("count", method))) for r in runs]).value
    return Row(runs[0].dataset_label, method, t, "ours", count,
               mean_sd([r.results.get(str(ResultKey("clean_relprob", method, t)))
                         for r in runs]),
               pairs, verdicts, [r.seed for r in runs],
               [(c[0], c[1], c[2]) for c in per_seed],
               "; ".join(dict.fromkeys(g for r in runs for g in recipe_gaps(r.meta))))


def _published_row(paper: PaperNumbers, source: Source, dataset_key: str, label: str,
                   method: str, t: str) -> Row | None:
    def cell(column: str) -> Number:
        c = paper.get(source.tag, dataset_key, method, t, column)
        return Number(None) if c is None else Number(c.value, c.printed, c.sic)

    clean = cell("clean")
    if not clean.present:
        return None
    ori, wtd = PAPER_CONTRASTS
    pairs = [bolded(cell(f"{b}/{mode}/{ori}"), cell(f"{b}/{mode}/{wtd}"), mode)
             for b, mode in PAIRS]
    return Row(label, method, t, source.tag, None, clean, pairs)


def by_experiment(runs: Sequence[Run]) -> list[list[Run]]:
    """The runs grouped by data set (the seeds of one experiment together, by seed), in order."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.dataset_label, []).append(run)
    return [sorted(g, key=lambda r: (r.seed is None, r.seed or 0)) for g in groups.values()]


def build_tables(runs: Sequence[Run], paper: PaperNumbers) -> list[PaperTable]:
    """The tables for every (backbone, masking) the runs have, in the paper's order."""
    by_backbone: dict[str, list[Run]] = {}
    for run in runs:
        by_backbone.setdefault(run.backbone, []).append(run)
    order = {d.short: i for i, d in enumerate(DATASETS)}
    tables: list[PaperTable] = []
    for backbone, group in by_backbone.items():
        group.sort(key=lambda r: (order.get(r.dataset_label, len(order)), r.dataset_label))
        maskings = _found(group, "masking")
        methods = _found(group, "method")
        for masking in maskings:
            sources = paper.sources_for(backbone, masking)
            table = PaperTable(backbone, masking, [], sources, paper.gap(backbone, masking),
                               group)
            expected = expected_keys(methods, masking)
            for run in group:
                missing = [k for k in expected if k not in run.results]
                if missing:
                    table.incomplete.append(
                        f"{run.label}: {len(missing)} of {len(expected)} keys this table needs "
                        f"are missing, e.g. {missing[0]}; its cells show —")
            for seeds in by_experiment(group):
                run = seeds[0]
                for method in methods:
                    for t in RANKS:
                        table.rows.append(_our_row(seeds, method, t, masking))
                        for source in sources:
                            key = run.dataset.key if run.dataset else ""
                            row = _published_row(paper, source, key, run.dataset_label, method,
                                                 t)
                            if row is not None:
                                table.rows.append(row)
            tables.append(table)
    rank = {k: i for i, k in enumerate(MASKING_ORDER)}
    masking = {m: i for i, m in enumerate(AXES["masking"].order(tb.masking for tb in tables))}
    tables.sort(key=lambda tb: (rank.get((tb.backbone, tb.masking), len(rank)), tb.backbone,
                                masking[tb.masking]))
    return tables
