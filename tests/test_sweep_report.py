"""sweeps' paper tables over hand-written results.json files with known numbers: the published
numbers' data file, bold in the paper's direction, agreement counts, LaTeX structure, CSV rows,
runs that miss keys / come from another protocol, and the W&B summary run (offline)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from sweeps.paper import COLUMNS, PAPER_NUMBERS, load_paper_numbers
from sweeps.paper_report import write_report

PAIRS = [(b, m) for b in ("blur", "zeros", "mean") for m in ("pos", "neg")]


# --- the data file of published numbers ------------------------------------------------------

def test_paper_numbers_parse_into_the_tables_the_report_needs() -> None:
    paper = load_paper_numbers()
    assert {(s.tag, s.kind, s.backbone, s.masking) for s in paper.sources.values()} == {
        ("APP-T2", "paper", "alexnet", "threshold"),
        ("APP-T3", "paper", "vgg16_bn", "equal"),
        ("RE-BLUR", "reproduction", "vgg16_bn", "equal"),
    }
    rows = {k[:4] for k in paper.cells}
    datasets = ["cub200", "fgvc_aircraft", "food101", "flowers102", "stanford_cars"]
    for tag in ("APP-T2", "APP-T3"):  # 5 datasets x {LA, GC} x {t1, t2}, 13 numbers each
        assert {r for r in rows if r[0] == tag} == {
            (tag, d, m, t) for d in datasets for m in ("linear_approx", "gradcam")
            for t in ("t1", "t2")}
    assert {r for r in rows if r[0] == "RE-BLUR"} == {
        ("RE-BLUR", "cub200", m, t) for m in ("linear_approx", "gradcam", "xgradcam")
        for t in ("t1", "t2")}
    assert all(paper.get(*r, c) is not None for r in rows for c in COLUMNS)
    for tag, d, m, _ in rows:  # the p_t column is a relative probability: t1 + t2 = 1
        pt = paper.get(tag, d, m, "t1", "clean").value + paper.get(tag, d, m, "t2", "clean").value
        assert pt == pytest.approx(1.0, abs=1.5e-3), (tag, d, m)  # App. T2 Food GC: .707+.292
    # spot checks against docs/protocol.md §2.6
    assert paper.get("APP-T2", "cub200", "gradcam", "t2", "blur/pos/weighted").value == 0.784
    assert paper.get("APP-T3", "stanford_cars", "linear_approx", "t1", "mean/neg/original") \
        .value == 0.436
    assert paper.get("RE-BLUR", "cub200", "xgradcam", "t2", "zeros/neg/weighted").value == 0.184
    assert paper.get("APP-T3", "food101", "linear_approx", "t2", "zeros/pos/original").printed \
        == "0.80"
    assert [c.printed for c in paper.cells.values() if c.sic] == ["0.80", "0.73"]
    # Table 1 (VGG-16, threshold) is not available: said so, no numbers
    assert "Table 1" in paper.gap("vgg16_bn", "threshold")["what"]
    assert paper.sources_for("vgg16_bn", "threshold") == []


def _exceptions(tag: str) -> list[tuple[str, str, str, str, str]]:
    """Cells where the published wtd does NOT beat ori in the paper's direction."""
    paper = load_paper_numbers()
    out = []
    for _, d, m, t in sorted({k[:4] for k in paper.cells if k[0] == tag}):
        for b, mode in PAIRS:
            o = paper.get(tag, d, m, t, f"{b}/{mode}/original").value
            w = paper.get(tag, d, m, t, f"{b}/{mode}/weighted").value
            if not (w > o if mode == "pos" else w < o):
                out.append((d, m, t, b, mode))
    return out


def test_paper_numbers_have_exactly_the_exceptions_spec_lists() -> None:
    """docs/protocol.md §2.6: App. T2's only ori-wins are five Pos cells; the reproduction has
    none; App. T3 has one, the doubtful printed 0.80. A mistyped number would change these lists."""
    assert sorted(_exceptions("APP-T2")) == sorted([
        ("food101", "linear_approx", "t1", "zeros", "pos"),
        ("food101", "gradcam", "t1", "zeros", "pos"),
        ("flowers102", "linear_approx", "t1", "blur", "pos"),
        ("flowers102", "linear_approx", "t1", "mean", "pos"),
        ("stanford_cars", "linear_approx", "t1", "blur", "pos"),
    ])
    assert _exceptions("RE-BLUR") == []
    assert _exceptions("APP-T3") == [("food101", "linear_approx", "t2", "zeros", "pos")]


def test_a_broken_paper_file_names_the_file_and_row(tmp_path: Path) -> None:
    raw = json.loads(PAPER_NUMBERS.read_text())
    raw["rows"][3] = raw["rows"][3][:-1]
    bad = tmp_path / "numbers.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"numbers\.json: row 3 .* has 12 values"):
        load_paper_numbers(bad)
    raw = json.loads(PAPER_NUMBERS.read_text())
    raw["rows"][0][7] = "0.7x"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"row 0 column blur/neg/original: '0.7x'"):
        load_paper_numbers(bad)


# --- hand-written runs -----------------------------------------------------------------------

def _results(paper_tag: str, dataset: str, maskings: tuple[str, ...] = ("threshold", "equal"),
             methods: tuple[str, ...] = ("gradcam", "linear_approx"),
             count: int = 50) -> dict[str, float]:
    """A results.json whose relprob numbers are a published table's (for every masking)."""
    paper = load_paper_numbers()
    out: dict[str, float] = {}
    for m in methods:
        out[f"eval/count/{m}"] = count
        for t in ("t1", "t2"):
            out[f"eval/clean_relprob/{m}/{t}"] = paper.get(paper_tag, dataset, m, t, "clean").value
            out[f"eval/prob/{m}/{t}/blur/pos/equal/original"] = 0.5  # other quantities ride along
            for masking in maskings:
                for b, mode in PAIRS:
                    for c in ("original", "weighted"):
                        out[f"eval/relprob/{m}/{t}/{b}/{mode}/{masking}/{c}"] = paper.get(
                            paper_tag, dataset, m, t, f"{b}/{mode}/{c}").value
    out["eval/delta_prob/gradient/weighted/n1"] = 0.01
    return out


def _write_run(folder: Path, results: dict[str, float], run_json: dict | None = None,
               config: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    if run_json is not None:
        (folder / "run.json").write_text(json.dumps(run_json))
    if config is not None:
        (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    return folder


def _run_json(experiment: str, dataset: str, backbone: str, protocol: int,
              finished: str) -> dict:
    return {"whynot_protocol": protocol, "experiment": experiment, "stage": "evaluate",
            "dataset": dataset, "datamodule": "datamodules.X", "backbone": backbone,
            "num_classes": 200, "ckpt_path": None, "precision": "32-true", "world_size": 1,
            "evaluation": {}, "data": {}, "finished": finished}


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """Five runs and an empty folder, each identified a different way."""
    root = tmp_path / "outputs"
    # A: AlexNet CUB via run.json; the paper's numbers except two GC t1 GaussBlur cells where
    # ori wins (Pos: ori higher; Neg: ori lower).
    a = _results("APP-T2", "cub200")
    for masking in ("threshold", "equal"):
        a[f"eval/relprob/gradcam/t1/blur/pos/{masking}/original"] = 0.90
        a[f"eval/relprob/gradcam/t1/blur/pos/{masking}/weighted"] = 0.80
        a[f"eval/relprob/gradcam/t1/blur/neg/{masking}/original"] = 0.20
        a[f"eval/relprob/gradcam/t1/blur/neg/{masking}/weighted"] = 0.30
    paths = {"A": _write_run(root / "cub200_alexnet" / "evaluate" / "version_1", a,
                             _run_json("cub200_alexnet", "CUB-200-2011", "alexnet", 1,
                                       "2026-01-02T00:00:00+00:00"))}
    # E: an older run of the same dataset and backbone: left out, reported
    paths["E"] = _write_run(root / "cub200_alexnet" / "evaluate" / "version_0",
                            _results("APP-T2", "cub200"),
                            _run_json("cub200_alexnet", "CUB-200-2011", "alexnet", 1,
                                      "2026-01-01T00:00:00+00:00"))
    # B: VGG-16-BN CUB without run.json, identified by its config.yaml; one key missing
    b = _results("APP-T3", "cub200")
    del b["eval/relprob/gradcam/t2/mean/neg/threshold/weighted"]
    paths["B"] = _write_run(root / "my_vgg_run" / "evaluate" / "sweep", b, config={
        "model": {"backbone": "vgg16_bn"},
        "data": {"class_path": "datamodules.CUB200DataModule", "init_args": {}}})
    # C: AlexNet FGVC, identified by nothing but its experiment folder's name
    paths["C"] = _write_run(root / "fgvc_aircraft_alexnet" / "evaluate" / "sweep",
                            _results("APP-T2", "fgvc_aircraft"))
    # D: another protocol version: left out, reported
    paths["D"] = _write_run(root / "food101_alexnet" / "evaluate" / "sweep",
                            _results("APP-T2", "food101"),
                            _run_json("food101_alexnet", "Food-101", "alexnet", 0,
                                      "2026-01-03T00:00:00+00:00"))
    paths["empty"] = root / "flowers102_alexnet"
    paths["empty"].mkdir()
    return paths


def _md_table(markdown: str, title_start: str) -> list[list[str]]:
    """The rows of the first markdown table under the '## <title_start>...' heading."""
    section = markdown.split(f"## {title_start}", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _section(markdown: str, title_start: str) -> str:
    return markdown.split(f"## {title_start}", 1)[1].split("\n## ", 1)[0]


def test_report_tables_bold_agreement_and_reported_runs(runs: dict[str, Path],
                                                        tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = write_report([runs["A"].parent.parent, runs["B"], runs["C"].parent.parent,
                           runs["D"], runs["empty"]], out)
    md = (out / "paper_tables.md").read_text()
    assert [t.key for t in report.tables] == [
        "vgg16_bn/threshold", "alexnet/threshold", "vgg16_bn/equal", "alexnet/equal"]

    rows = _md_table(md, "AlexNet, threshold masking")
    # header: data method t source n r_t | GB Pos ori wtd | GB Neg ori wtd | Z ... | M ... | wins
    gc_t1 = next(r for r in rows if r[:4] == ["CUB", "GC", "t1", "ours"])
    assert gc_t1[4:10] == ["50", "0.698", "**0.900**", "0.800", "**0.200**", "0.300"]
    assert gc_t1[-1] == "4/2/0"  # no paired keys in these runs: the numbers decide
    published = rows[rows.index(gc_t1) + 1]  # App. Table 2's row right under ours
    assert published[:6] == ["", "", "", "APP-T2", "—", "0.698"]
    assert published[6:10] == ["0.762", "**0.824**", "0.415", "**0.228**"]
    assert published[-1] == "6/0/0"
    fgvc_la_t2 = next(r for r in rows if r[:4] == ["FGVC", "LA", "t2", "ours"])
    # Neg columns: the lower is bold (GB Neg ori 0.351 vs wtd 0.169)
    assert fgvc_la_t2[8:10] == ["0.351", "**0.169**"]
    assert [r[0] for r in rows if r[3] == "ours"] == ["CUB"] * 4 + ["FGVC"] * 4
    assert [r[1] for r in rows if r[3] == "ours"][:4] == ["LA", "LA", "GC", "GC"]
    section = _section(md, "AlexNet, threshold masking")
    assert ("Weighted vs original (ours): 46 wins, 2 losses, 0 ties of 48 cell pairs. App. "
            "Table 2 "
            "[APP-T2]: weighted better in 48 of the same 48; the same winner as ours in 46 of "
            "48.") in section
    equal = _section(md, "AlexNet, equal masking")
    assert "No published numbers for this backbone and masking." in equal
    assert "46 wins, 2 losses, 0 ties of 48 cell pairs." in equal

    vgg_threshold = _section(md, "VGG-16-BN, threshold masking")
    assert "main-text Table 1" in vgg_threshold and "not available" in vgg_threshold
    assert "APP-T3" not in vgg_threshold
    gc_t2 = next(r for r in _md_table(md, "VGG-16-BN, threshold")
                 if r[:4] == ["CUB", "GC", "t2", "ours"])
    assert gc_t2[-3:] == ["0.445", "—", "5/0/0"]  # the missing key: a dash, not a number
    assert "1 of 54 keys this table needs are missing, e.g. " \
           "eval/relprob/gradcam/t2/mean/neg/threshold/weighted" in vgg_threshold
    assert "23 wins, 0 losses, 0 ties of 23 cell pairs" in vgg_threshold

    vgg_equal = _section(md, "VGG-16-BN, equal masking")
    assert "App. Table 3 [APP-T3]: weighted better in 24 of the same 24; the same winner as " \
           "ours in 24 of 24." in vgg_equal
    assert "reproduction [RE-BLUR]: weighted better in 24 of the same 24" in vgg_equal
    vgg_rows = _md_table(md, "VGG-16-BN, equal")
    # ours, then the paper, then the reproduction, for every (method, t); no XGradCAM rows
    assert [r[3] for r in vgg_rows] == ["ours", "APP-T3", "RE-BLUR"] * 4
    assert vgg_rows[2][6:8] == ["0.695", "**0.789**"]  # RE LA t1 GaussBlur Pos

    left_out = _section(md, "Reported, not in the tables")
    assert f"{runs['D'] / 'results.json'}): whynot_protocol 0, not 1" in left_out
    assert f"{runs['E'] / 'results.json'}): an older run of CUB / alexnet" in left_out
    assert f"`{runs['empty']}`: holds no results.json" in left_out
    runs_section = _section(md, "Runs")
    assert "| my_vgg_run | CUB | vgg16_bn | ? | config.yaml |" in runs_section
    assert "| fgvc_aircraft_alexnet | FGVC | alexnet | ? | experiment |" in runs_section
    assert "| cub200_alexnet | CUB | alexnet | 1 | run.json |" in runs_section
    assert "no run.json: protocol version unknown" in runs_section


def _tex_tables(tex: str) -> list[str]:
    return re.findall(r"\\begin\{table\*\}.*?\\end\{table\*\}", tex, flags=re.S)


def _cells(row: str) -> list[str]:
    return re.split(r"(?<!\\)&", row.removesuffix(r"\\").strip())


def _span(cell: str) -> int:
    m = re.match(r"\s*\\multicolumn\{(\d+)\}", cell)
    return int(m.group(1)) if m else 1


def test_latex_is_structurally_sound_booktabs(runs: dict[str, Path], tmp_path: Path) -> None:
    report = write_report([runs["A"], runs["B"], runs["C"]], tmp_path)
    tex = (tmp_path / "paper_tables.tex").read_text()
    unescaped = re.sub(r"\\[{}]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    depth = 0
    for ch in unescaped:  # never closes more than it opened
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    envs = re.findall(r"\\(begin|end)\{(\w+\*?)\}", tex)
    stack: list[str] = []
    for kind, name in envs:
        if kind == "begin":
            stack.append(name)
        else:
            assert stack.pop() == name
    assert stack == []
    tables = _tex_tables(tex)
    assert len(tables) == len(report.tables) == 4
    for table, model in zip(tables, report.tables, strict=True):
        spec = re.search(r"\\begin\{tabular\}\{([lcr]+)\}", table).group(1)
        ncols = len(spec)
        assert ncols == 18
        lines = [ln.strip() for ln in table.splitlines()]
        rules = [ln for ln in lines if ln in (r"\toprule", r"\midrule", r"\bottomrule")]
        assert rules[0] == r"\toprule" and rules[-1] == r"\bottomrule"
        assert lines.index(r"\toprule") < lines.index(r"\midrule") < lines.index(r"\bottomrule")
        rows = [ln for ln in lines if ln.endswith(r"\\")]
        assert len(rows) == 3 + len(model.rows)  # 3 header rows + one per table row
        for row in rows:
            assert sum(_span(c) for c in _cells(row)) == ncols, row
        for lo, hi in re.findall(r"\\cmidrule\(lr\)\{(\d+)-(\d+)\}", table):
            assert 1 <= int(lo) < int(hi) <= ncols
        assert rf"\label{{tab:whynot-{model.backbone.replace('_', '-')}-{model.masking}}}" \
            in table
    alexnet = tables[1]
    row = next(r for r in alexnet.splitlines() if r.startswith(r"CUB & GC & $t_1$ & ours"))
    cells = [c.strip() for c in _cells(row)]
    assert cells[4:10] == ["50", "0.698", r"\textbf{0.900}", "0.800", r"\textbf{0.200}", "0.300"]
    assert r"\midrule" in alexnet.split("FGVC & LA")[0].split("CUB & GC & $t_2$")[1]


def test_csv_has_one_row_per_key_and_run_with_published_numbers(runs: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    write_report([runs["A"], runs["B"], runs["C"], runs["D"]], tmp_path)
    with open(tmp_path / "paper_tables.csv") as fh:
        rows = list(csv.DictReader(fh))
    sizes = {k: len(json.loads((runs[k] / "results.json").read_text())) for k in "ABCD"}
    assert len(rows) == sum(sizes.values())
    by = {(r["experiment"], r["key"]): r for r in rows}
    a = by[("cub200_alexnet", "eval/relprob/gradcam/t1/blur/pos/threshold/weighted")]
    assert (a["dataset"], a["backbone"], a["protocol"], a["in_tables"]) == ("CUB", "alexnet",
                                                                              "1", "1")
    assert (a["method"], a["t"], a["baseline"], a["mode"], a["masking"], a["contrast"]) == (
        "gradcam", "t1", "blur", "pos", "threshold", "weighted")
    assert float(a["value"]) == 0.80 and float(a["paper"]) == 0.824
    assert (a["paper_source"], a["reproduction"]) == ("APP-T2", "")
    assert by[("cub200_alexnet", "eval/relprob/gradcam/t1/blur/pos/equal/weighted")][
        "paper"] == ""  # no published AlexNet equal-masking numbers
    b = by[("my_vgg_run", "eval/relprob/linear_approx/t1/blur/pos/equal/original")]
    assert (float(b["paper"]), b["paper_source"]) == (0.726, "APP-T3")
    assert (float(b["reproduction"]), b["reproduction_source"]) == (0.695, "RE-BLUR")
    clean = by[("my_vgg_run", "eval/clean_relprob/gradcam/t1")]
    assert (float(clean["paper"]), float(clean["reproduction"])) == (0.710, 0.712)
    d = by[("food101_alexnet", "eval/count/gradcam")]
    assert (d["in_tables"], d["protocol"], d["quantity"], d["method"]) == ("0", "0", "count",
                                                                           "gradcam")
    assert (d["t"], d["baseline"], d["steps"]) == ("", "", "")  # axes the key does not have


def test_report_cli_prints_the_agreement_and_exits_nonzero_without_runs(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sweeps.commands import main

    assert main(["report", str(runs["A"]), str(runs["C"]), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "AlexNet, threshold masking (beside App. Table 2): Weighted vs original (ours): 46 " \
           "wins, 2 losses, 0 ties of 48 cell pairs." in " ".join(out.split())
    assert (tmp_path / "r" / "paper_tables.tex").is_file()
    assert main(["report", str(runs["empty"]), "--out", str(tmp_path / "r2")]) == 1
    assert "holds no results.json" in capsys.readouterr().out


def test_wandb_summary_run_holds_the_tables_offline(runs: dict[str, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.wandb_files import read_closed_wandb_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    report = write_report([runs["A"], runs["C"]], tmp_path, wandb=True, name="paper-test")
    assert report.wandb_run is not None and report.wandb_run.name.startswith("offline-run-")
    logged = read_closed_wandb_run(report.wandb_run)
    assert logged["paper/alexnet/threshold/_type"] == "table-file"
    assert logged["paper/alexnet/threshold/nrows"] == 16  # (CUB + FGVC) x (LA, GC) x (t1, t2) x 2
    assert logged["agreement/alexnet/threshold/wtd_better"] == 46
    assert logged["agreement/alexnet/threshold/pairs"] == 48
    assert logged["agreement/alexnet/threshold/APP-T2/same_winner"] == 46
    (table_file,) = (report.wandb_run / "files" / "media" / "table" / "paper" / "alexnet").glob(
        "threshold_*.table.json")
    table = json.loads(table_file.read_text())
    row = next(r for r in table["data"] if r[:4] == ["CUB", "gradcam", "t1", "ours"])
    named = dict(zip(table["columns"], row, strict=True))
    assert named["GaussBlur Pos ori"] == 0.90 and named["GaussBlur Pos wtd"] == 0.80
    assert named["GaussBlur Neg wtd"] == 0.30 and named["wtd better"] == 4


def _with_intervals(results: dict[str, float], width: float) -> dict[str, float]:
    """Paired keys for every relprob pair: the interval wtd - ori ± ``width``."""
    out = dict(results)
    for key, wtd in results.items():
        if key.startswith("eval/relprob/") and key.endswith("/weighted"):
            d = wtd - results[key.removesuffix("weighted") + "original"]
            diff = key.replace("eval/", "eval/diff_", 1)
            out.update({f"{diff}/mean": d, f"{diff}/se": width / 1.96, f"{diff}/lo": d - width,
                        f"{diff}/hi": d + width, f"{diff}/n": 50.0})
    return out


def test_seeds_share_a_row_with_mean_sd_and_per_seed_counts(tmp_path: Path) -> None:
    """Three seeds of one experiment: one row per (method, t), numbers as mean ± sd over the
    seeds; a pair is won only where every seed's interval excludes 0; each seed's counts."""
    base = _results("APP-T2", "cub200", maskings=("threshold",), methods=("gradcam",))
    widths = {0: 0.001, 1: 0.001, 2: 10.0}  # seed 2's intervals hold 0 everywhere: all ties
    for seed, width in widths.items():
        res = _with_intervals(base, width)
        res["eval/relprob/gradcam/t1/blur/pos/threshold/weighted"] += 0.01 * seed
        name = f"cub200_alexnet_seed{seed}"
        _write_run(tmp_path / name / "evaluate" / "sweep", res,
                   _run_json(name, "CUB-200-2011", "alexnet", 1, "2026-01-02T00:00:00+00:00"))
    report = write_report([tmp_path], tmp_path / "report")
    (table,) = report.tables
    assert [r.seeds for r in table.rows if r.source == "ours"] == [[0, 1, 2]] * 2
    md = (tmp_path / "report" / "paper_tables.md").read_text()
    gc_t1 = next(r for r in _md_table(md, "AlexNet") if r[:4] == ["CUB", "GC", "t1", "ours"])
    wtd = base["eval/relprob/gradcam/t1/blur/pos/threshold/weighted"]
    assert gc_t1[7] == f"{wtd + 0.01:.3f} ± 0.010"  # mean and sd of +0, +0.01, +0.02
    assert gc_t1[6] == \
        f"{base['eval/relprob/gradcam/t1/blur/pos/threshold/original']:.3f} ± 0.000"
    assert not any("**" in c for c in gc_t1)  # seed 2 ties everywhere: no consensus win
    assert gc_t1[-1] == "0/0/6 (6/0/0, 6/0/0, 0/0/6)"
    section = _section(md, "AlexNet")
    assert ("Weighted vs original (ours): 0 wins, 0 losses, 12 ties of 12 cell pairs (every "
            "seed's interval agreeing); per seed: seed 0: 12/0/0, seed 1: 12/0/0, seed 2: 0/0/12."
            ) in " ".join(section.split())
    tex = (tmp_path / "report" / "paper_tables.tex").read_text()
    assert f"{wtd + 0.01:.3f}$\\pm$0.010" in tex
    # without seed 2 every pair is a significant win: bold wtd
    (tmp_path / "cub200_alexnet_seed2" / "evaluate" / "sweep" / "results.json").unlink()
    md = (write_report([tmp_path], tmp_path / "r2"), (tmp_path / "r2" / "paper_tables.md"))[1]
    gc_t1 = next(r for r in _md_table(md.read_text(), "AlexNet")
                 if r[:4] == ["CUB", "GC", "t1", "ours"])
    assert gc_t1[7].startswith("**") and gc_t1[-1] == "6/0/0 (6/0/0, 6/0/0)"
