"""The sweep checks everything its fits need before the first one starts: data folders (one root
for all, or ``--data_roots KEY=DIR`` per data set), pretrained weights, the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.commands import sweep_main
from sweeps.experiments import load_experiment
from sweeps.plan import plan_steps
from sweeps.preflight import parse_data_roots
from tests.conftest import ROOT
from tests.dataset_layouts import make_cub

CUB = str(ROOT / "configs" / "experiments" / "cub200_alexnet.yaml")
AIRCRAFT = str(ROOT / "configs" / "experiments" / "fgvc_aircraft_alexnet.yaml")


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().out.split())  # rich wraps long lines


def test_missing_weights_stop_the_sweep_before_the_first_fit(
        tmp_path: Path, capsys, monkeypatch) -> None:
    make_cub(tmp_path / "data")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert sweep_main(["--experiments", "cub200_alexnet", "--data_root",
                       str(tmp_path / "data"), "--out", str(out)]) == 2
    text = _out(capsys)
    assert "sweep: pretrained weights missing (nothing was started)" in text
    assert (f"cub200_alexnet: alexnet weights IMAGENET1K_V1 are not in the torch hub cache "
            f"({tmp_path / 'cache' / 'hub' / 'checkpoints'}/") in text
    assert "--model.pretrained null" in text and not out.exists()


def test_an_output_folder_under_a_file_stops_the_sweep(tmp_path: Path, capsys) -> None:
    make_cub(tmp_path / "data")
    (tmp_path / "file").write_text("x")
    assert sweep_main(["--experiments", "cub200_alexnet", "--data_root", str(tmp_path / "data"),
                       "--out", str(tmp_path / "file" / "out"), "--model.pretrained", "null"]) == 2
    assert f"--out {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file" in _out(capsys)


def test_one_data_root_per_data_set(tmp_path: Path, capsys) -> None:
    make_cub(tmp_path / "birds")
    cub_dir = tmp_path / "birds" / "CUB_200_2011"
    roots = parse_data_roots([f"cub200={cub_dir}", f"fgvc_aircraft={tmp_path / 'planes'}"])
    assert roots == {"cub200": cub_dir, "fgvc_aircraft": tmp_path / "planes"}
    steps = plan_steps([load_experiment(Path(CUB))], out=tmp_path / "out", data_root=None,
                       overrides=[], sweep_name="s", logs=tmp_path / "logs", data_roots=roots)
    assert all(s.argv[s.argv.index("--data.root") + 1] == str(cub_dir) for s in steps)
    # the aircraft folder does not exist: named with its option, before any fit
    assert sweep_main(["--experiments", "cub200_alexnet", "fgvc_aircraft_alexnet",
                       "--data_roots", f"cub200={cub_dir}",
                       f"fgvc_aircraft={tmp_path / 'planes'}", "--model.pretrained", "null",
                       "--out", str(tmp_path / "out")]) == 2
    text = _out(capsys)
    assert f"--data_roots fgvc_aircraft={tmp_path / 'planes'}: no such folder" in text
    assert "CUB" not in text.split("data missing")[1]
    with pytest.raises(ValueError, match="'birds' is not a data set of the sweep"):
        parse_data_roots(["birds=/x"])
