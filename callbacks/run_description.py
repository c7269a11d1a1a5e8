"""What an evaluation actually ran, for run.json and report.md: the layer hooked (not the
option's ``None``), the image size, the checkpoint's epoch and step, where the weights started
from, the precision, and the results left undefined with their reasons."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from results.undefined import summary, undefined_reasons


def what_was_run(layer_hooked: str, datamodule: Any, hparams: Mapping[str, Any],
                 checkpoint: Mapping[str, Any] | None, precision: str) -> dict[str, Any]:
    """run.json's description of the run (``layer_hooked`` as the model's ``net`` names it).

    ``pretrained``: the weights the fine-tuning started from (the checkpoint's own record when
    evaluating a checkpoint, whose weights replace the configured ones).
    """
    pretrained = (checkpoint.get("pretrained") if checkpoint is not None
                  else hparams.get("pretrained"))
    return {
        "layer_hooked": layer_hooked,
        "image_size": getattr(datamodule, "image_size", None),
        "checkpoint": dict(checkpoint) if checkpoint is not None else None,
        "pretrained": pretrained,
        "precision": precision,
    }


def run_json_additions(described: Mapping[str, Any], results: Mapping[str, float],
                       threshold: float | None) -> dict[str, Any]:
    """The run.json keys beside the callback's own: the description and ``undefined``."""
    return {**described, "undefined": undefined_reasons(results, threshold)}


def report_additions(described: Mapping[str, Any], results: Mapping[str, float],
                     threshold: float | None) -> dict[str, Any]:
    """report.md's settings lines for the same facts."""
    ckpt = described.get("checkpoint") or {}
    trained = ("—" if not ckpt else
               f"{ckpt.get('path')} (epoch {ckpt.get('epoch')}, step {ckpt.get('global_step')})")
    return {
        "layer hooked": described["layer_hooked"],
        "image size": described["image_size"],
        "checkpoint": trained,
        "pretrained weights (fine-tuning started from)": described["pretrained"] or "none",
        "precision": described["precision"],
        "undefined values": summary(undefined_reasons(results, threshold)),
    }
