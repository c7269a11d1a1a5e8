"""The faithfulness curves of one run, read back from its flat results dict: the mean curves as
series, one figure per method (a row per baseline and score, a column per curve; original vs
weighted, t1 solid and t2 dashed) and the W&B line plots of the same series."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from matplotlib.figure import Figure

from results.figures import TITLE_SIZE, to_png
from results.schema import AXES, ResultKey, media_key, parse_results

PANEL_INCH = (3.0, 2.2)
COLOURS = {"original": "tab:blue", "weighted": "tab:orange"}


@dataclass
class Series:
    """One mean curve: fractions perturbed ``x`` and mean scores ``y``, step by step."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)


def curve_series(results: Mapping[str, float]) -> dict[tuple[str, ...], Series]:
    """``{(method, baseline, score, curve, t, contrast): Series}`` of every mean curve."""
    parsed = parse_results(results)
    out: dict[tuple[str, ...], Series] = defaultdict(Series)
    points = sorted((k for k in parsed if k.quantity == "curve"),
                    key=lambda k: int(str(k.point)[1:]))
    for k in points:
        frac = results.get(str(ResultKey("curve_fraction", curve=k.curve, point=k.point)))
        s = out[(k.method, k.baseline, k.score, k.curve, k.t, k.contrast)]
        s.x.append(float("nan") if frac is None else float(frac))
        s.y.append(parsed[k])
    return dict(out)


def _order(series: Mapping[tuple[str, ...], Series], i: int, axis: str) -> list[str]:
    return AXES[axis].order(k[i] for k in series)


def curve_figures_png(results: Mapping[str, float]) -> dict[str, bytes]:
    """``{"curves_<method>": png}`` for every method with curves (empty without them)."""
    series = curve_series(results)
    out = {}
    for method in _order(series, 0, "method"):
        mine = {k[1:]: v for k, v in series.items() if k[0] == method}
        rows = [(b, s) for b in _order(mine, 0, "baseline") for s in _order(mine, 1, "score")]
        cols = _order(mine, 2, "curve")
        # fixed margins: a constrained layout costs seconds per figure on a loaded CPU
        fig = Figure(figsize=(PANEL_INCH[0] * len(cols), PANEL_INCH[1] * len(rows) + 0.5))
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.5 / fig.get_figheight(),
                            top=1 - 0.45 / fig.get_figheight(), wspace=0.25, hspace=0.55)
        axes = fig.subplots(len(rows), len(cols), squeeze=False)
        for (ri, (b, s)), (ci, c) in ((r, c) for r in enumerate(rows) for c in enumerate(cols)):
            ax = axes[ri][ci]
            for (bb, ss, cc, t, contrast), line in mine.items():
                if (bb, ss, cc) != (b, s, c):
                    continue
                ax.plot(line.x, line.y, color=COLOURS.get(contrast, "tab:grey"),
                        linestyle="-" if t == "t1" else "--",
                        label=f"{AXES['contrast'].title(contrast)} {t}")
            ax.set_title(f"{AXES['curve'].title(c)}, {AXES['score'].title(s)}, "
                         f"{AXES['baseline'].title(b)}", fontsize=TITLE_SIZE)
            ax.set_xlabel("fraction perturbed", fontsize=TITLE_SIZE)
            ax.tick_params(labelsize=TITLE_SIZE - 1)
            if ri == 0 and ci == 0:
                ax.legend(fontsize=TITLE_SIZE - 1)
        fig.suptitle(f"{AXES['method'].title(method)}: mean curves, original (ori) vs weighted "
                     "(wtd)", fontsize=TITLE_SIZE + 1)
        out[f"curves_{method}"] = to_png(fig)
    return out


def log_curve_plots(experiment: object, results: Mapping[str, float]) -> None:
    """W&B line plots of the mean curves on a run (``wandb.plot.line_series``): one plot per
    method, baseline, score and curve, lines ori/wtd x t1/t2, key ``eval/curve_plot/<...>``."""
    import wandb

    series = curve_series(results)
    groups: dict[tuple[str, ...], dict[str, Series]] = defaultdict(dict)
    for (m, b, s, c, t, contrast), line in series.items():
        groups[(m, b, s, c)][f"{AXES['contrast'].title(contrast)} {t}"] = line
    plots = {}
    for (m, b, s, c), lines in groups.items():
        names = sorted(lines)
        plots[media_key("curve_plot", f"{m}/{b}/{s}/{c}")] = wandb.plot.line_series(
            xs=[lines[n].x for n in names], ys=[lines[n].y for n in names], keys=names,
            title=f"{m} {c} {s} ({b})", xname="fraction perturbed")
    if plots:
        experiment.log(plots)  # type: ignore[attr-defined]

