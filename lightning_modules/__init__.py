"""LightningModules: the fine-tuning classifier and its backbones."""
