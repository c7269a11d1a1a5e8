"""The result schema: every key whynot writes formats and parses through one type; the key format
lives in one module; every quantity has a place in the tables or a reason not to."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from results.schema import (
    AXES,
    QUANTITIES,
    TABLES,
    UNTABULATED,
    ResultKey,
    axis_values,
    check_values,
    parse_results,
)

ROOT = Path(__file__).resolve().parent.parent

# Keys as whynot 0.1 wrote them (results.json of the demo): they must keep parsing to the same
# coordinates, so old results.json files load.
WRITTEN_BEFORE = {
    "eval/num_samples": ResultKey("num_samples"),
    "eval/relprob/gradcam/t2/blur/neg/equal/weighted":
        ResultKey("relprob", "gradcam", "t2", "blur", "neg", "equal", "weighted"),
    "eval/prob_drop/linear_approx/t1/mean/pos/threshold/original":
        ResultKey("prob_drop", "linear_approx", "t1", "mean", "pos", "threshold", "original"),
    "eval/clean_relprob/gradcam/t1": ResultKey("clean_relprob", "gradcam", "t1"),
    "eval/clean_prob/gradcam/t2": ResultKey("clean_prob", "gradcam", "t2"),
    "eval/count/gradcam": ResultKey("count", "gradcam"),
    "eval/count/gradcam/t1": ResultKey("count", "gradcam", "t1"),
    "eval/delta_prob/gradient/max/n10": ResultKey("delta_prob", "gradient", contrast="max",
                                                  steps=10),
    "eval/clean_prob/gradient": ResultKey("clean_prob", "gradient"),
    "eval/count/gradient": ResultKey("count", "gradient"),
    "eval/pointing_shared/xgradcam/t2/original":
        ResultKey("pointing_shared", "xgradcam", "t2", contrast="original"),
}


@pytest.mark.parametrize("text", sorted(WRITTEN_BEFORE))
def test_keys_round_trip(text: str) -> None:
    key = ResultKey.parse(text)
    assert key == WRITTEN_BEFORE[text]
    assert str(key) == text
    assert ResultKey.parse(str(key)) == key


@pytest.mark.parametrize(("text", "why"), [
    ("relprob/gradcam/t1/blur/pos/equal/original", "start with 'eval/'"),
    ("eval/relprob/gradcam/t1", "no quantity 'relprob' with 2 coordinates"),
    ("eval/relprob/gradcam/t3/blur/pos/equal/original", r"t 't3': choose from \('t1', 't2'\)"),
    ("eval/relprob/gradcam/t1/noise/pos/equal/original", "baseline 'noise'"),
    ("eval/delta_acc/gradient/original/10", "steps '10' is not n<k>"),
    ("eval/nonsense", "no quantity 'nonsense'"),
])
def test_bad_keys_say_why(text: str, why: str) -> None:
    assert ResultKey.try_parse(text) is None
    with pytest.raises(ValueError, match=why):
        ResultKey.parse(text)


def test_building_a_key_checks_its_axes() -> None:
    with pytest.raises(ValueError, match="takes"):
        ResultKey("relprob", "gradcam", "t1")  # missing coordinates
    with pytest.raises(ValueError, match="method 'grad/cam'"):
        ResultKey("count", "grad/cam")
    with pytest.raises(ValueError, match="steps 0"):
        ResultKey("delta_acc", "gradient", contrast="max", steps=0)
    key = ResultKey("relprob", "gradcam", "t1", "blur", "pos", "equal", "original")
    assert str(key.with_(contrast="weighted")).endswith("/weighted")
    assert key.coordinates() == {"method": "gradcam", "t": "t1", "baseline": "blur",
                                 "mode": "pos", "masking": "equal", "contrast": "original"}


def test_axis_values_follow_the_schemas_order() -> None:
    keys = list(parse_results({
        "eval/delta_acc/gradient/weighted/n10": 0.0, "eval/delta_acc/gradient/original/n2": 0.0,
        "eval/count/xgradcam": 1.0, "eval/count/gradcam": 1.0, "eval/count/linear_approx": 1.0,
        "trainer/global_step": 3.0,  # not a result key: left out
    }))
    assert len(keys) == 5
    assert axis_values(keys, "steps") == ["n2", "n10"]
    assert axis_values(keys, "contrast") == ["original", "weighted"]
    assert axis_values(keys, "method", quantity="count") == ["linear_approx", "gradcam",
                                                             "xgradcam"]  # the paper's order
    assert check_values("masking", ["equal"]) == ("equal",)
    with pytest.raises(ValueError, match="distinct"):
        check_values("mode", ["pos", "pos"])


def test_every_quantity_is_tabulated_or_says_why_not() -> None:
    tabulated = {q for t in TABLES for q in t.quantities}
    assert {q.name for q in QUANTITIES} == tabulated | set(UNTABULATED)
    assert not tabulated & set(UNTABULATED)
    for axis in AXES.values():
        assert axis.description


def test_the_key_format_lives_in_one_module() -> None:
    """No module but results/schema.py spells a key out: no f-string or join builds 'eval/...'
    with a method in it (tests, which check the format independently, and docs aside)."""
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    pattern = re.compile(r"""f["']eval/\{|["']eval/["']\s*,|"/"\.join\(\(?["']eval""")
    offenders = []
    for name in files:
        if name.startswith("tests/") or name == "results/schema.py":
            continue
        text = (ROOT / name).read_text()
        offenders += [f"{name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert offenders == []
