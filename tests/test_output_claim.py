"""One run per output folder (``cli/output_claim.py``): the claim's rules on a folder, and two
evaluate.py processes started at once into one ``--evaluation.output_dir`` (slow)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cli.output_claim import LOCK_FILE, OutputClaim
from errors import ConfigError, RunError
from tests.conftest import ROOT, TINY_EVALUATION, cli_env, experiment_yaml, strict_json
from tests.processes import run_cli

OPTION = "--evaluation.output_dir"


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_claim_creates_the_folder_and_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    with OutputClaim(folder, OPTION, overwrite=False):
        lock = json.loads((folder / LOCK_FILE).read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
    assert not folder.exists()  # created by the claim, empty at the end: removed
    folder.mkdir(parents=True)
    with OutputClaim(folder, OPTION, overwrite=False):
        (folder / "results.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == ["results.json"]


def test_a_live_runs_lock_is_refused_with_its_pid_and_host(tmp_path: Path) -> None:
    with OutputClaim(tmp_path, OPTION, overwrite=False):
        with pytest.raises(RunError) as err:
            OutputClaim(tmp_path, OPTION, overwrite=True).acquire()
        assert f"{OPTION} {tmp_path} is in use by another run (pid {os.getpid()} on host " \
               f"{socket.gethostname()}, started" in str(err.value)
        assert f"delete {tmp_path / LOCK_FILE}" in str(err.value)
        assert (tmp_path / LOCK_FILE).exists()  # the refused claim left the holder's lock
    assert not (tmp_path / LOCK_FILE).exists()


def test_a_dead_processs_lock_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(),
                                                  "host": socket.gethostname()}))
    with OutputClaim(tmp_path, OPTION, overwrite=False):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_an_earlier_runs_results_are_refused_or_replaced(tmp_path: Path) -> None:
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "heatmaps_linear_approx.png").write_bytes(b"png")
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("the user's own file")
    with pytest.raises(ConfigError, match=r"already holds an earlier run's results "
                                          r"\(results.json, figures\); pass "
                                          r"--evaluation.overwrite true to replace them"):
        OutputClaim(tmp_path, OPTION, overwrite=False).acquire()
    assert not (tmp_path / LOCK_FILE).exists()
    with OutputClaim(tmp_path, OPTION, overwrite=True):
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE, "notes.txt"]


@pytest.mark.slow
def test_two_evaluations_into_one_folder_never_mix(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Two evaluate.py started together, one output_dir, different methods: one writes the
    folder; the other is refused (in use, or an earlier run's results) with exit 1; the
    folder's results.json, run.json, report.md and figures are all of the one that ran."""
    out = tmp_path / "shared"
    config = experiment_yaml(tmp_path)
    procs: dict[str, subprocess.CompletedProcess] = {}

    def run(method: str) -> None:
        cmd = [sys.executable, str(ROOT / "evaluate.py"), "--config", str(config),
               "--ckpt_path", str(tiny_checkpoint), *TINY_EVALUATION,
               "--evaluation.methods", method, "--evaluation.output_dir", str(out)]
        procs[method] = run_cli(cmd, cwd=tmp_path, env=cli_env(tmp_path), timeout=400)

    threads = [threading.Thread(target=run, args=(m,)) for m in ("gradcam", "linear_approx")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = [m for m, p in procs.items() if p.returncode == 0]
    assert len(ok) == 1, {m: p.stderr[-2000:] for m, p in procs.items()}
    (other,) = set(procs) - set(ok)
    refused = procs[other]
    assert refused.returncode == 1
    errors = [x for x in refused.stderr.splitlines() if x.startswith("evaluate.py: error:")]
    assert len(errors) == 1 and ("is in use by another run (pid" in errors[0]
                                 or "already holds an earlier run's results" in errors[0])
    results = strict_json(out / "results.json")
    run_info = strict_json(out / "run.json")
    assert run_info["evaluation"]["methods"] == ok
    assert {k.split("/")[2] for k in results if k.startswith("eval/relprob/")} == set(ok)
    assert sorted(p.name for p in (out / "figures").iterdir()) == \
        sorted(f"{kind}_{ok[0]}.png" for kind in ("heatmaps", "exemplars"))
    assert f"`{other}`" not in (out / "report.md").read_text()
    assert not (out / LOCK_FILE).exists()
