"""LightningModules: the fine-tuning classifier and its backbones."""

from lightning_modules.backbones import BACKBONES, BackboneSpec, build_backbone, hub_weights_path
from lightning_modules.classifier import FineTuneClassifier

__all__ = ["BACKBONES", "BackboneSpec", "FineTuneClassifier", "build_backbone",
           "hub_weights_path"]
