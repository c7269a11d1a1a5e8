"""timm backbones (``timm:<name>``): any timm classifier, its default explanation layer by rule.

timm is imported here only, and only when a ``timm:`` backbone is built.

Default explanation layer, one rule per family, read off the built model (never a table of names):

- CNNs (ResNet, ConvNeXt, EfficientNet, RegNet, MobileNet, ...): the last stage's output, the last
  entry of timm's ``feature_info`` (``layer4``, ``stages.3``, ``blocks.6``, ``s4``): a
  ``[B, C, h, w]`` map. EfficientNet's ``conv_head``/``bn2`` follow it (they are not a stage).
- Vision transformers (ViT, DeiT, BEiT, EVA, DINOv2 with or without registers): the tokens of the
  last block as its attention reads them, ``blocks.<n-1>.norm1``. Not the block's output: a
  model that classifies its class token reads no patch token after the last attention, so the
  gradient there is exactly zero and every map with it (measured: all-zero maps at
  ``blocks.11``). The ``[B, P + h*w, D]`` tokens lose
  the ``P = model.num_prefix_tokens`` class / distillation / register tokens and the rest become
  ``[B, D, h, w]`` with ``(h, w) = model.patch_embed.grid_size``, the model's own grid: any patch
  size, input size or aspect ratio (models built with a fixed input size get the data's
  ``image_size``).
- Channels-last models (``model.output_fmt == "NHWC"``: Swin): the last stage (``layers.3``),
  ``[B, h, w, C]`` permuted to ``[B, C, h, w]``.

A model without ``feature_info`` has no rule: the error lists its module names, and
``ContrastiveEvaluation(layer=...)`` picks one by hand.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from errors import ConfigError, MissingFileError
from explainers.hooks import Reshape, channels_last_to_first, tokens_to_grid_of
from lightning_modules import weights

PREFIX = "timm:"
# pretrained values that mean "timm's default tag of this model"
DEFAULT_TAGS = ("default", "true", "timm")


def is_timm(name: str) -> bool:
    """Whether backbone ``name`` is a ``timm:<model>`` name."""
    return name.startswith(PREFIX)


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError("timm backbones need timm: pip install 'timm>=1.0'") from None
    return timm


def model_name(name: str) -> str:
    """``timm:resnet18`` -> ``resnet18``; unknown models raise listing close matches."""
    timm = _timm()
    arch = name[len(PREFIX):]
    base = arch.split(".", 1)[0]
    if not timm.is_model(base):
        close = timm.list_models(f"*{base.split('_')[0]}*")[:12]
        raise ConfigError(f"unknown timm model {arch!r}; similar timm models: {close} "
                          "(timm.list_models() lists all)")
    return arch


def _create_kwargs(arch: str, num_classes: int, image_size: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    cfg = _timm().models.get_pretrained_cfg(arch)
    if image_size is not None and cfg is not None and getattr(cfg, "fixed_input_size", False):
        kwargs["img_size"] = image_size  # position embeddings / windows are sized by it
    return kwargs


def _looks_like_file(text: str) -> bool:
    return os.sep in text or text.endswith((".pth", ".pt", ".ckpt", ".bin", ".safetensors"))


def is_tag(pretrained: str) -> bool:
    """Whether ``pretrained`` names timm weights (a tag), not a file or URL."""
    return not (weights.is_url(pretrained) or Path(pretrained).expanduser().is_file()
                or _looks_like_file(pretrained))


def build_timm(name: str, num_classes: int, pretrained: str | None = None,
               image_size: int | None = None) -> nn.Module:
    """timm model ``name`` (``timm:<model>``) with a ``num_classes``-way head.

    ``pretrained``: None (random), a timm tag (``"default"``, ``"augreg_in21k_ft_in1k"``: Hugging
    Face's cache, downloaded once), or a local file / URL (loaded like every backbone's).
    ``image_size``: the data's square side, passed to models with a fixed input size (ViT, Swin).
    """
    timm = _timm()
    arch = model_name(name)
    kwargs = _create_kwargs(arch, num_classes, image_size)
    tag = pretrained if pretrained is not None and is_tag(pretrained) else None
    if tag is None:
        return timm.create_model(arch, pretrained=False, **kwargs)
    full = arch if tag.lower() in DEFAULT_TAGS else f"{arch.split('.', 1)[0]}.{tag}"
    cfg = timm.models.get_pretrained_cfg(full)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        known = timm.list_pretrained(arch.split(".", 1)[0] + "*")
        raise ConfigError(f"timm model {arch!r} has no pretrained weights {tag!r}; its tags: "
                          f"{[k.split('.', 1)[1] for k in known if '.' in k]}, or pass a local "
                          "file or URL as pretrained")
    return _create_pretrained(timm, full, cfg, kwargs)


def _hf_cache_dir(repo: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo.replace("/", "--"))


def _create_pretrained(timm: Any, full: str, cfg: Any, kwargs: dict[str, Any]) -> nn.Module:
    """``timm.create_model(full, pretrained=True)``, downloading on one process at a time."""
    repo = cfg.hf_hub_id
    url = f"https://huggingface.co/{repo}" if repo else cfg.url
    where = _hf_cache_dir(repo) if repo else weights.hub_checkpoints_dir()

    def create() -> nn.Module:
        try:
            return timm.create_model(full, pretrained=True, **kwargs)
        except OSError as err:  # huggingface_hub's LocalEntryNotFoundError, network errors
            raise MissingFileError(
                f"pretrained weights {full!r} are not in the cache ({where}) and cannot be "
                f"downloaded ({type(err).__name__}): fetch them from {url} on a machine with "
                "network (the same timm version fills that cache), or download the weights file "
                "by hand and pass its path as pretrained") from None

    return weights.once(where.parent / (where.name + ".whynot"), create)


def explain_rule(net: nn.Module) -> tuple[str, Reshape | None]:
    """Default ``(layer, reshape)`` of a timm model, following the module docstring's rules."""
    info = getattr(net, "feature_info", None)
    modules = dict(net.named_modules())
    last = info[-1].get("module") if info else None
    if last not in modules:
        listed = ", ".join(n for n in modules if n and n.count(".") < 2)
        raise ConfigError(
            f"no default explanation layer for timm's {type(net).__name__} (it has no "
            f"feature_info naming its last stage); pass the layer by hand, one of: {listed}")
    if hasattr(net, "num_prefix_tokens") and hasattr(net, "patch_embed"):
        grid = getattr(net.patch_embed, "grid_size", None)
        if f"{last}.norm1" in modules:  # the tokens as the last attention reads them
            last = f"{last}.norm1"
        return last, tokens_to_grid_of(int(net.num_prefix_tokens),
                                       tuple(grid) if grid is not None else None)
    if getattr(net, "output_fmt", "NCHW") == "NHWC":
        return last, channels_last_to_first
    return last, None


def head_name(net: nn.Module) -> str:
    """Dotted name of the classifier ``nn.Linear`` (timm's ``pretrained_cfg['classifier']``)."""
    head = getattr(net, "pretrained_cfg", {}).get("classifier", "head")
    return head[0] if isinstance(head, (tuple, list)) else head


__all__ = ["PREFIX", "build_timm", "explain_rule", "head_name", "is_tag", "is_timm",
           "model_name"]
