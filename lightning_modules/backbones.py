"""Backbone registry: torchvision classifiers, timm models (``timm:<name>``, see
``lightning_modules.timm_backbones``) and the tiny test nets, built with a new head.

``pretrained`` is a local file (a state dict, a Lightning checkpoint with ``"state_dict"``, or a
``.safetensors`` file), a torchvision weights name (``"IMAGENET1K_V1"``, ``"DEFAULT"``), an
``http(s)://`` URL, or for timm models one of timm's pretrained tags. Names and URLs are cached
where torchvision caches (``torch.hub.get_dir()/checkpoints/<file name of the URL>``), timm's
tags where Hugging Face caches; a missing file is downloaded once (``lightning_modules.weights``).
Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so a
weights file cannot run code.

Default explanation layers follow one rule: the activation the official code in effect explains.
Its forward hook keeps the hooked tensor itself (no clone), so when the next module overwrites
that tensor in place (``ReLU(inplace=True)``), the stored activation, and the tensor the gradient
is taken with respect to, is the in-place module's output. whynot clones inside its hook, so it
names that module: AlexNet ``features.11`` (the ReLU after the last conv ``features.10``), VGG-16
``features.29`` (the ReLU after ``features.28``). Where nothing overwrites the hooked output the
layer is the hooked module itself: VGG-16-BN ``features.40`` (BatchNorm follows, out of place),
ResNet-50 ``layer4`` (its blocks end in their own ReLU; the average pool follows),
ViT-B/16 ``encoder.layers.encoder_layer_11.ln_1``, the last block's tokens as its attention reads
them (the block's output would give all-zero maps: only the class token is classified, and no
patch token reaches it after the last attention), tiny_vgg ``features.12`` (BatchNorm follows),
tiny_resnet ``layer3`` (like ResNet-50).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models

from errors import ConfigError, InputTypeError, MissingFileError
from explainers.hooks import Reshape
from lightning_modules import timm_backbones
from lightning_modules import weights as downloads
from lightning_modules.tiny_nets import TinyResNet, TinyVGG


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where its head and explanation layer are.

    Attributes:
        builder: ``builder(num_classes) -> nn.Module`` with random weights and the original head.
        head: dotted attribute path of the final ``nn.Linear``.
        explain_layer: module name hooked by the explainers by default (see the module docstring
            for the rule).
        explain_reshape: ``"tokens"`` for ViTs (``[B, 1 + h*w, D]`` activations), else ``None``.
        weights_enum: torchvision weights enum for ``pretrained`` names, ``None`` for tiny nets.
    """

    builder: Callable[[], nn.Module]
    head: str
    explain_layer: str
    explain_reshape: str | None = None
    weights_enum: type | None = None


BACKBONES: dict[str, BackboneSpec] = {
    "vgg16_bn": BackboneSpec(lambda: models.vgg16_bn(weights=None), "classifier.6", "features.40",
                             weights_enum=models.VGG16_BN_Weights),
    "vgg16": BackboneSpec(lambda: models.vgg16(weights=None), "classifier.6", "features.29",
                          weights_enum=models.VGG16_Weights),
    "alexnet": BackboneSpec(lambda: models.alexnet(weights=None), "classifier.6", "features.11",
                            weights_enum=models.AlexNet_Weights),
    "resnet50": BackboneSpec(lambda: models.resnet50(weights=None), "fc", "layer4",
                             weights_enum=models.ResNet50_Weights),
    "vit_b_16": BackboneSpec(lambda: models.vit_b_16(weights=None), "heads.head",
                             "encoder.layers.encoder_layer_11.ln_1", explain_reshape="tokens",
                             weights_enum=models.ViT_B_16_Weights),
    "tiny_vgg": BackboneSpec(TinyVGG, "classifier.3", "features.12"),
    "tiny_resnet": BackboneSpec(TinyResNet, "fc", "layer3"),
}


def get_spec(name: str) -> BackboneSpec:
    """The registry entry of ``name``; unknown names raise ``ValueError`` listing the known."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known backbones: {sorted(BACKBONES)}, "
                          "or timm:<any timm model> (e.g. timm:convnext_atto)")
    return BACKBONES[name]


@dataclass(frozen=True)
class ExplainDefaults:
    """Where a built backbone is explained by default and where its head is.

    ``reshape``: None, ``"tokens"`` or a callable turning the layer's output into ``[B, C, h, w]``.
    """

    layer: str
    reshape: str | Reshape | None
    head: str


def explain_defaults(name: str, net: nn.Module) -> ExplainDefaults:
    """Default explanation layer, its reshape and the head of backbone ``name`` built as ``net``."""
    if timm_backbones.is_timm(name):
        layer, reshape = timm_backbones.explain_rule(net)
        return ExplainDefaults(layer, reshape, timm_backbones.head_name(net))
    spec = get_spec(name)
    return ExplainDefaults(spec.explain_layer, spec.explain_reshape, spec.head)


def head_name(name: str, net: nn.Module) -> str:
    """Dotted name of the classifier head of backbone ``name`` built as ``net``."""
    return _head_names(name, net)[0]


def _head_names(name: str, net: nn.Module) -> tuple[str, ...]:
    if timm_backbones.is_timm(name):
        head = getattr(net, "pretrained_cfg", {}).get("classifier", "head")
        return tuple(head) if isinstance(head, (tuple, list)) else (head,)
    return (get_spec(name).head,)


def _replace_head(net: nn.Module, path: str, num_classes: int) -> None:
    parent_path, _, attr = path.rpartition(".")
    parent = net.get_submodule(parent_path) if parent_path else net
    old = getattr(parent, attr)
    if not isinstance(old, nn.Linear):
        raise InputTypeError(f"head {path!r} is {type(old).__name__}, expected nn.Linear")
    setattr(parent, attr, nn.Linear(old.in_features, num_classes))


def hub_weights_path(name: str, weights: str) -> tuple[Path, str]:
    """Local path and source URL of torchvision weights ``weights`` for backbone ``name``.

    The path is ``torch.hub.get_dir()/checkpoints/<basename of the URL>``, where torchvision's
    own ``load_state_dict_from_url`` would cache the file.
    """
    spec = get_spec(name)
    if spec.weights_enum is None:
        raise ConfigError(f"backbone {name!r} has no torchvision weights; pass a local file path "
                          "as pretrained")
    try:
        entry = spec.weights_enum.DEFAULT if weights == "DEFAULT" else spec.weights_enum[weights]
    except KeyError:
        known = ["DEFAULT", *(w.name for w in spec.weights_enum)]
        raise ConfigError(f"unknown weights {weights!r} for {name}; known: {known}, or a local "
                          "file path") from None
    url = entry.url
    return downloads.url_cache_path(url), url


def _torch_load_weights(path: Path) -> object:
    """``torch.load(path, weights_only=True)``; a file that needs pickled objects is refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        try:  # every class the file would import, not only the first one torch stumbled on
            needed = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        except Exception:  # only a detail of the error message: never hide the refusal
            needed = _unpickler_reason(err)
        raise ConfigError(
            f"refusing to load {path}: it holds pickled Python objects ({needed}), not only "
            "tensors, and unpickling them could run arbitrary code, so whynot reads weights with "
            "torch.load(weights_only=True). If you trust those classes, convert the file once: "
            "with torch.serialization.safe_globals([<those classes>]): obj = torch.load(path), "
            "then torch.save(obj.state_dict(), 'weights.pth') for a saved nn.Module or "
            "torch.save(obj['state_dict'], 'weights.pth') for a checkpoint dict, and pass "
            "weights.pth as pretrained.") from None


def _unpickler_reason(err: Exception) -> str:
    """The line of torch's weights-only error that names the refused object."""
    for line in str(err).splitlines():
        if "WeightsUnpickler error:" in line:
            reason = line.split("WeightsUnpickler error:", 1)[1].split(" Please use", 1)[0]
            return reason.strip().rstrip(".")
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # Hugging Face's format; comes with timm

        return load_file(path)
    obj = _torch_load_weights(path)
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
        # Lightning checkpoints of FineTuneClassifier prefix the backbone with "net.".
        if all(k.startswith("net.") for k in obj):
            obj = {k[len("net."):]: v for k, v in obj.items()}
    if not isinstance(obj, dict):
        raise ConfigError(f"pretrained file {path} holds {type(obj).__name__}, expected a state "
                          "dict or a checkpoint with 'state_dict'")
    return obj


def resolve_pretrained(name: str, pretrained: str) -> Path:
    """The local file ``pretrained`` names, downloaded into the cache first where needed.

    A file path is used as is; a URL is cached as ``torch.hub.get_dir()/checkpoints/<file>``; a
    torchvision weights name resolves to its URL (``hub_weights_path``).
    """
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    if downloads.is_url(pretrained):
        return downloads.fetch(pretrained, downloads.url_cache_path(pretrained), repr(pretrained))
    looks_like_name = os.sep not in pretrained and not pretrained.endswith(
        (".pth", ".pt", ".ckpt", ".bin", ".safetensors"))
    if looks_like_name and not timm_backbones.is_timm(name):
        dest, url = hub_weights_path(name, pretrained)
        return downloads.fetch(url, dest, f"{pretrained!r} for {name}")
    raise MissingFileError(f"pretrained weights file {path} does not exist; pass a state dict or "
                           "checkpoint file, a URL, or a torchvision weights name such as "
                           "'IMAGENET1K_V1' (timm models: one of timm's pretrained tags)")


def load_pretrained(net: nn.Module, name: str, pretrained: str) -> dict[str, tuple[int, ...]]:
    """Load ``pretrained`` (file path, URL or torchvision weights name) into ``net`` in place.

    Head weights whose shape differs from ``net``'s (another class count) are skipped and
    returned with the file's shapes (the head then keeps its fresh initialisation); every other
    key must match.
    """
    path = resolve_pretrained(name, pretrained)  # a no-op for a file resolved already
    state = _read_state_dict(path)
    own = net.state_dict()
    heads = tuple(h + "." for h in _head_names(name, net))
    skipped = [k for k in state if k.startswith(heads) and k in own
               and state[k].shape != own[k].shape]
    shapes = {k: tuple(state.pop(k).shape) for k in skipped}
    wrong = [k for k in state if k in own and state[k].shape != own[k].shape]
    if wrong:  # load_state_dict would raise a multi-line RuntimeError
        k = wrong[0]
        raise ConfigError(
            f"pretrained file {path} does not fit {name}: {len(wrong)} weights have other shapes "
            f"(e.g. {k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the "
            "model); it was saved from another variant or input size of the architecture")
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in skipped]
    if missing or unexpected:
        raise ConfigError(
            f"pretrained file {path} does not fit {name}: {len(missing)} of the model's "
            f"{len(own)} weights are missing from it (e.g. {missing[:3]}), {len(unexpected)} of "
            f"its {len(state)} are unknown to the model (e.g. {unexpected[:3]}); was it saved "
            "from another architecture?")
    return shapes


def require_trained_head(net: nn.Module, pretrained: str, num_classes: int) -> None:
    """Refuse to evaluate weights whose head was not loaded (another class count).

    ``build_backbone`` keeps a fresh head where the file's has another class count: right for
    fine-tuning, meaningless for evaluating a model trained elsewhere.
    """
    skipped = getattr(net, "pretrained_head_skipped", {})
    if not skipped:
        return
    key, shape = next(iter(skipped.items()))
    raise ConfigError(
        f"pretrained weights {pretrained} have a {shape[0]}-class head ({key}) but the data has "
        f"{num_classes} classes, so there is no trained head to evaluate: pass weights trained "
        f"on this data (a {num_classes}-class head), or fine-tune from them with train.py first.")


def build_backbone(name: str, num_classes: int, pretrained: str | None = None,
                   image_size: int | None = None) -> nn.Module:
    """Build backbone ``name`` with a ``num_classes``-way head; load ``pretrained`` if given.

    The returned module maps ``[B, 3, H, W]`` to logits ``[B, num_classes]``. ``image_size``: the
    data's side, given to timm models built for a fixed input size (ViT, Swin).
    Head weights of ``pretrained`` with another class count are skipped; their names are in the
    returned module's ``pretrained_head_skipped`` attribute (name -> the file's shape; empty when
    the head was loaded).
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if timm_backbones.is_timm(name):
        timm_backbones.model_name(name)  # an unknown model fails before any download
        tag = pretrained is not None and timm_backbones.is_tag(pretrained)
        path = None if pretrained is None or tag else resolve_pretrained(name, pretrained)
        net = timm_backbones.build_timm(name, num_classes, pretrained if tag else None,
                                        image_size)
        net.pretrained_head_skipped = ({} if path is None
                                       else load_pretrained(net, name, str(path)))
        return net
    spec = get_spec(name)
    # resolved (downloaded) before the network is built: a bad name fails at once
    path = None if pretrained is None else resolve_pretrained(name, pretrained)
    net = spec.builder()
    _replace_head(net, spec.head, num_classes)
    net.pretrained_head_skipped = ({} if path is None
                                   else load_pretrained(net, name, str(path)))
    return net
