"""timm backbones: the default layer per family, its reshape, Proposition 2, the CLIs.

The reshape tests need no timm (fast); everything that builds a timm model is slow (importing
timm alone takes ~2.5 s on the test machine).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from explainers import explain
from explainers.hooks import TokensToGrid, channels_last_to_first, reshape_pair
from tests.conftest import TINY_EVALUATION, cli_env

# (timm model, data image size, default layer, prefix tokens or "nhwc" or None, map grid)
ARCHS = [
    ("resnet18", 64, "layer4", None, (2, 2)),
    ("convnext_atto", 64, "stages.3", None, (2, 2)),
    ("efficientnet_b0", 64, "blocks.6", None, (2, 2)),
    ("regnetx_002", 64, "s4", None, (2, 2)),
    ("mobilenetv3_small_050", 64, "blocks.5", None, (2, 2)),
    ("vit_tiny_patch16_224", 48, "blocks.11.norm1", 1, (3, 3)),
    ("deit_tiny_distilled_patch16_224", 48, "blocks.11.norm1", 2, (3, 3)),
    ("vit_small_patch14_reg4_dinov2", 56, "blocks.11.norm1", 5, (4, 4)),
    ("eva02_tiny_patch14_224", 56, "blocks.11.norm1", 1, (4, 4)),
    ("swin_tiny_patch4_window7_224", 64, "layers.3", "nhwc", (2, 2)),
]


def test_tokens_to_grid_drops_prefix_and_keeps_row_major_non_square() -> None:
    b, p, (h, w), d = 2, 5, (3, 4), 6
    tokens = torch.randn(b, p + h * w, d)
    grid = TokensToGrid(p, (h, w))(tokens)
    assert grid.shape == (b, d, h, w)
    for r in range(h):
        for c in range(w):
            assert torch.equal(grid[:, :, r, c], tokens[:, p + r * w + c, :])
    with pytest.raises(ValueError, match=r"grid \(3, 3\)"):
        TokensToGrid(1, (3, 3))(tokens)
    # gradient rows [R, B, N, D] are reshaped row by row
    act, grads = reshape_pair(TokensToGrid(p, (h, w)), tokens, torch.stack([tokens, 2 * tokens]))
    assert torch.equal(grads[1], 2 * act) and grads.shape == (2, b, d, h, w)


def test_channels_last_to_first() -> None:
    x = torch.randn(2, 3, 5, 7)
    assert torch.equal(channels_last_to_first(x)[:, :, 1, 2], x[:, 1, 2, :])


class Margin(nn.Module):
    """Adds ``margin`` to logit 0 (p_0 rounds to 1.0 in float32)."""

    def __init__(self, net: nn.Module, margin: float) -> None:
        super().__init__()
        self.net, self.margin = net, margin

    def forward(self, x: Tensor) -> Tensor:
        y = self.net(x)
        return y + self.margin * (torch.arange(y.shape[1]) == 0)


def _by_hand(act: Tensor, prefix: int | str | None, grid: tuple[int, int]) -> Tensor:
    """The layer's output ``[B, ...]`` as ``[B, C, h, w]``, written out independently."""
    if prefix == "nhwc":
        return act.permute(0, 3, 1, 2)
    if prefix is None:
        return act
    return act[:, prefix:, :].reshape(act.shape[0], *grid, -1).permute(0, 3, 1, 2)


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "size", "layer", "prefix", "grid"), ARCHS,
                         ids=[a[0] for a in ARCHS])
def test_default_layer_shape_proposition_2_and_p_t_one(arch: str, size: int, layer: str,
                                                       prefix: int | str | None,
                                                       grid: tuple[int, int]) -> None:
    from lightning_modules import FineTuneClassifier

    torch.manual_seed(0)
    model = FineTuneClassifier(f"timm:{arch}", num_classes=5, image_size=size)
    assert model.explain_layer == layer
    net = model.net.eval().double()
    x = torch.randn(3, 3, size, size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    res = explain(net, x, method="gradcam", layer=layer, topk=2,
                  contrasts=("original", "weighted"), reshape=model.explain_reshape)
    assert res.maps["weighted"].shape == (3, 2, *grid)
    assert all(m.abs().amax() > 0 for m in res.maps.values())  # the layer reaches the logits
    # Proposition 2: p_t (1 - p_t) * weighted == Grad-CAM of the gradient of p_t, computed
    # here with a plain hook (no clone) and the reshape written out by hand.
    stored: list[Tensor] = []
    handle = net.get_submodule(layer).register_forward_hook(lambda _m, _i, o: stored.append(o))
    try:
        probs = net(x).softmax(dim=1)
    finally:
        handle.remove()
    p = probs.gather(1, res.targets)
    for j in range(2):
        (g,) = torch.autograd.grad(p[:, j].sum(), stored[0], retain_graph=True)
        a, g = _by_hand(stored[0], prefix, grid), _by_hand(g, prefix, grid)
        expected = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1).detach()
        scale = (p[:, j] * (1 - p[:, j]))[:, None, None]
        torch.testing.assert_close(scale * res.maps["weighted"][:, j], expected,
                                   rtol=1e-6, atol=1e-10 * float(expected.abs().max()))
    # p_t == 1.0 in float32: the weighted maps stay finite
    sure = Margin(model.net.float(), 80.0)
    res32 = explain(sure, x.float(), method="gradcam", layer="net." + layer, topk=2,
                    reshape=model.explain_reshape)
    assert torch.equal(res32.probs[:, 0], torch.ones(3))
    assert all(torch.isfinite(m).all() for m in res32.maps.values())


@pytest.mark.slow
def test_non_square_input_grid() -> None:
    from timm.models.vision_transformer import VisionTransformer

    from lightning_modules.timm_backbones import explain_rule

    net = VisionTransformer(img_size=(28, 56), patch_size=14, embed_dim=48, depth=2, num_heads=2,
                            reg_tokens=4, no_embed_class=True, num_classes=4).eval()
    layer, reshape = explain_rule(net)
    x = torch.randn(2, 3, 28, 56)
    res = explain(net, x, method="gradcam", layer=layer, topk=1, reshape=reshape)
    assert layer == "blocks.1.norm1" and res.maps["original"].shape == (2, 1, 2, 4)
    assert res.maps["original"].abs().amax() > 0


@pytest.mark.slow
def test_unknown_architecture_lists_modules() -> None:
    from lightning_modules.timm_backbones import explain_rule

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    with pytest.raises(ValueError, match=r"no default explanation layer.*one of: 0, 1"):
        explain_rule(net)
    with pytest.raises(ValueError, match="unknown timm model 'resnet_nope'"):
        from lightning_modules import build_backbone

        build_backbone("timm:resnet_nope", 3)


def _run(main: object, args: list[str], tmp: Path, mp: pytest.MonkeyPatch) -> object:
    for key, value in cli_env(tmp).items():
        mp.setenv(key, value)
    mp.chdir(tmp)
    with contextlib.redirect_stdout(io.StringIO()):
        return main(args)  # type: ignore[operator]


def timm_experiment(tmp: Path, arch: str, size: int) -> Path:
    """The shrunk synthetic experiment with a timm backbone (4 classes, 12 + 5 images)."""
    cfg = {"seed_everything": 0,
           "trainer": {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                       "enable_model_summary": False, "logger": False,
                       "default_root_dir": str(tmp / "E")},
           "model": {"backbone": f"timm:{arch}", "pretrained": None},
           "data": {"class_path": "datamodules.SyntheticDataModule",
                    "init_args": {"image_size": size, "batch_size": 4, "num_workers": 0,
                                  "num_classes": 4, "num_train": 12, "num_test": 5,
                                  "seed": 0}}}
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "timm.yaml").write_text(json.dumps(cfg))
    return tmp / "timm.yaml"


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "size"), [(a[0], a[1]) for a in ARCHS], ids=[a[0] for a in ARCHS])
def test_fit_and_evaluate_through_the_clis(arch: str, size: int, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.evaluate import main as evaluate
    from cli.train import main as train

    cfg = str(timm_experiment(tmp_path, arch, size))
    _run(train, ["fit", "--config", cfg, "--trainer.max_steps", "2",
                 "--trainer.limit_val_batches", "1"], tmp_path, monkeypatch)
    ckpt = tmp_path / "E" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    results = _run(evaluate, ["--config", cfg, "--ckpt_path", str(ckpt), *TINY_EVALUATION,
                              "--evaluation.num_figures", "0"], tmp_path, monkeypatch)
    assert isinstance(results, dict) and results
    # Localisation shares (and their paired differences) are NaN where no map of 5 random-init
    # images has positive mass (0/0); everything else must be a number.
    local = {"differ_share", "shared_share", "pointing_differ", "pointing_shared"}
    nan = [k for k, v in results.items()
           if v != v and k.split("/")[1].removeprefix("diff_") not in local]
    assert not nan, nan
    assert results["eval/count/gradcam"] == 5


PRESETS = sorted((Path(__file__).resolve().parent.parent / "configs" / "model" / "timm")
                 .glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_presets_build_with_the_layer_they_name(preset: Path, tmp_path: Path) -> None:
    """Each timm preset parses; built (random weights, 32 px) its default layer is the one its
    comment names."""
    import yaml

    from cli.train import TrainCLI

    text = preset.read_text()
    cfg = yaml.safe_load(text)["model"]
    assert cfg["backbone"] == f"timm:{preset.stem}" and cfg["pretrained"] == "default"
    cli = TrainCLI(args=["--config", str(preset), "--model.pretrained", "null",
                         "--data", "datamodules.SyntheticDataModule", "--data.image_size", "32",
                         "--data.num_train", "8", "--data.num_test", "4",
                         "--trainer.accelerator", "cpu",
                         "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert f"Default explain layer: {cli.model.explain_layer} (" in text
    assert cli.model.hparams.image_size == 32 and cli.model.hparams.num_classes == 10


@pytest.mark.slow
def test_timm_tag_offline_error_names_repo_and_cache(tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1 and an empty Hugging Face cache: one line naming the weights, the
    Hugging Face URL and the cache folder."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    code = ("from lightning_modules import build_backbone\n"
            "build_backbone('timm:resnet18', 3, pretrained='a1_in1k')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                          text=True, timeout=300)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("errors.MissingFileError: "), proc.stderr
    assert "'resnet18.a1_in1k'" in last and "https://huggingface.co/timm/resnet18.a1_in1k" in last
    assert str(tmp_path / "hf" / "hub" / "models--timm--resnet18.a1_in1k") in last
