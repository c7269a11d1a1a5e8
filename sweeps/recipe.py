"""What each run of the paper tables ran, and how far that is from the paper's recipe.

run.json records the layer hooked, the image size, the checkpoint's epoch and step, where the
fine-tuning started from and the precision. The paper fine-tunes ImageNet-pretrained backbones
for 200 epochs at 224 px (docs/protocol.md §4); a run that differs (a 1-epoch demo, 64 px, no
pretrained weights) is listed with its settings and marked beside the published numbers, so that
nobody reads it as a reproduction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECIPE_IMAGE_SIZE = 224
RECIPE_EPOCHS = 200
FAR_MARK = "‡"


def run_settings(meta: Mapping[str, Any]) -> dict[str, str]:
    """The settings columns of the report's run list ("?" where run.json does not say)."""
    ckpt = meta.get("checkpoint") if isinstance(meta.get("checkpoint"), Mapping) else {}
    trained = (f"epoch {ckpt.get('epoch')}, step {ckpt.get('global_step')}" if ckpt
               else "?" if "checkpoint" not in meta else "none")
    pretrained = meta.get("pretrained", "?") if "layer_hooked" in meta else "?"
    return {
        "layer": str(meta.get("layer_hooked") or "?"),
        "image": str(meta.get("image_size") or "?"),
        "checkpoint": trained,
        "pretrained": "none" if pretrained is None else str(pretrained),
        "precision": str(meta.get("precision") or "?"),
    }


def recipe_gaps(meta: Mapping[str, Any]) -> list[str]:
    """How a run differs from the paper's recipe (empty: as far as run.json says, it does not)."""
    if "layer_hooked" not in meta:
        return []  # run.json of an older whynot: it does not say
    gaps = []
    size = meta.get("image_size")
    if isinstance(size, int) and size != RECIPE_IMAGE_SIZE:
        gaps.append(f"{size} px, not {RECIPE_IMAGE_SIZE}")
    ckpt = meta.get("checkpoint")
    if not isinstance(ckpt, Mapping):
        gaps.append("no checkpoint: the model as initialised")
    elif isinstance(ckpt.get("epoch"), int) and ckpt["epoch"] + 1 < RECIPE_EPOCHS:
        gaps.append(f"checkpoint of epoch {ckpt['epoch']}, not trained to the recipe's "
                    f"{RECIPE_EPOCHS} epochs")
    if meta.get("pretrained") is None:
        gaps.append("fine-tuned from no pretrained weights")
    return gaps
