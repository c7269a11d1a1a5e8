"""The sweep's checks before its first fit: the weights each fit needs and the output folder
(the data folders: ``experiments.check_data_roots``), and ``--data_roots KEY=DIR`` for data sets
kept in folders of their own. Every problem at once, in one error, and nothing started."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cli.output_claim import check_creatable
from errors import ConfigError, MissingFileError
from lightning_modules.backbones import hub_weights_path
from sweeps.experiments import DATASETS, Experiment, resolve_config


def parse_data_roots(values: Sequence[str] | None) -> dict[str, Path]:
    """``["cub200=/a", "fgvc_aircraft=/b"]`` -> ``{"cub200": Path("/a"), ...}``."""
    keys = [d.key for d in DATASETS]
    out: dict[str, Path] = {}
    for value in values or ():
        key, eq, folder = value.partition("=")
        if not eq or not folder:
            raise ConfigError(f"--data_roots {value!r}: write DATASET=DIR, e.g. cub200=/data/CUB")
        if key not in keys:
            raise ConfigError(f"--data_roots {value!r}: {key!r} is not a data set of the sweep "
                              f"({', '.join(keys)})")
        out[key] = Path(folder)
    return out


def _weights_problem(e: Experiment, overrides: Sequence[str]) -> str | None:
    """Why the fit of ``e`` could not read its pretrained weights (None: it can)."""
    model = resolve_config(e.config, overrides).get("model") or {}
    pretrained = model.get("pretrained")
    if pretrained is None:
        return None
    text = str(pretrained)
    path = Path(text).expanduser()
    if path.is_file():
        return None
    if "/" in text or text.endswith((".pth", ".pt", ".ckpt")):
        return f"- {e.name}: model.pretrained file {path} does not exist"
    try:
        cached, url = hub_weights_path(e.backbone, text)
    except ConfigError as err:
        return f"- {e.name}: {err}"
    if cached.is_file():
        return None
    return (f"- {e.name}: {e.backbone} weights {text} are not in the torch hub cache ({cached}); "
            f"nothing is downloaded: fetch {url} there (or set TORCH_HOME)")


def check_weights(experiments: Sequence[Experiment], overrides: Sequence[str],
                  stages: Sequence[str]) -> None:
    """Fail before any work when a fit's pretrained weights are neither a file nor cached.

    An evaluation needs none: its checkpoint replaces every weight.
    """
    if "fit" not in stages:
        return
    problems = [p for e in experiments if (p := _weights_problem(e, overrides)) is not None]
    if problems:
        raise MissingFileError("sweep: pretrained weights missing (nothing was started):\n"
                               + "\n".join(problems)
                               + "\nOr fine-tune from scratch with --model.pretrained null.")


def check_output(out: Path) -> None:
    """The outputs root is (or can be made) a folder this user writes."""
    check_creatable(out, "--out")

