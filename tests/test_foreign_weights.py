"""Models trained elsewhere: evaluate.py on a plain ``torch.save(model.state_dict())`` file."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from lightning_modules import FineTuneClassifier, build_backbone
from tests.conftest import TINY_EVALUATION, cli_env, experiment_yaml


def _evaluate(args: list[str], tmp: Path, mp: pytest.MonkeyPatch) -> tuple[int, object, str]:
    from cli.evaluate import main

    for key, value in cli_env(tmp).items():
        mp.setenv(key, value)
    mp.delenv("WHYNOT_DEBUG", raising=False)
    mp.chdir(tmp)
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            return 0, main(args), err.getvalue()
    except SystemExit as stop:
        return int(stop.code or 0), None, err.getvalue()


def test_head_of_another_class_count_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "seven.pth"
    torch.save(build_backbone("tiny_vgg", 7).state_dict(), weights)
    code, _, err = _evaluate(["--config", str(experiment_yaml(tmp_path)), "--model.pretrained",
                              str(weights), *TINY_EVALUATION], tmp_path, monkeypatch)
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert code == 1 and len(lines) == 1, err
    assert "7-class head" in lines[0] and "10 classes" in lines[0] and str(weights) in lines[0]
    assert not (tmp_path / "tiny_synthetic" / "evaluate" / "version_0" / "results.json").exists()


def test_keys_of_another_architecture_are_refused(tmp_path: Path) -> None:
    weights = tmp_path / "resnet.pth"
    torch.save(build_backbone("tiny_resnet", 10).state_dict(), weights)
    with pytest.raises(ValueError, match=r"does not fit tiny_vgg: \d+ of the model's \d+ weights "
                                         r"are missing .* \d+ of its \d+ are unknown"):
        FineTuneClassifier("tiny_vgg", num_classes=10, pretrained=str(weights))


def test_weights_of_other_shapes_are_refused(tmp_path: Path) -> None:
    state = build_backbone("tiny_vgg", 10).state_dict()
    state["features.0.weight"] = torch.zeros(4, 3, 3, 3)
    torch.save(state, tmp_path / "narrow.pth")
    with pytest.raises(ValueError, match=r"1 weights have other shapes \(e.g. features.0.weight: "
                                         r"\(4, 3, 3, 3\) in the file, \(\d+, 3, 3, 3\) in"):
        build_backbone("tiny_vgg", 10, pretrained=str(tmp_path / "narrow.pth"))


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet50", "timm:resnet18"])
def test_plain_state_dict_evaluates_without_ckpt_path(backbone: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A torchvision / timm model saved by someone else, with the data's 10-class head."""
    if backbone == "resnet50":
        from torchvision.models import resnet50

        net = resnet50(num_classes=10)
    else:
        import timm

        net = timm.create_model("resnet18", num_classes=10)
    torch.nn.init.normal_(net.fc.weight)
    weights = tmp_path / "elsewhere.pth"
    torch.save(net.state_dict(), weights)
    loaded = FineTuneClassifier(backbone, num_classes=10, pretrained=str(weights)).net
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    code, results, err = _evaluate(
        ["--config", str(experiment_yaml(tmp_path)), "--model.backbone", backbone,
         "--model.pretrained", str(weights), *TINY_EVALUATION, "--evaluation.num_figures", "0"],
        tmp_path, monkeypatch)
    assert code == 0, err
    assert isinstance(results, dict) and results["eval/count/gradcam"] == 13
    assert "as initialised" not in err
