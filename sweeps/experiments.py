"""Experiments of a sweep: the YAMLs, the datasets they read, their folders under ``--data_root``.

An experiment is one ``configs/experiments/<dataset>_<backbone>.yaml`` (or any YAML given by
path); its name is the file's stem, its outputs go to ``<out>/<name>`` (the run-output contract's
``E``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from errors import ConfigError, MissingFileError

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS_DIR = REPO / "configs" / "experiments"
SYNTHETIC_CONFIG = REPO / "configs" / "synthetic.yaml"


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as the sweep and the tables know it."""

    key: str  # the experiment-name prefix: "cub200", ...
    class_name: str  # the datamodule class
    folder: str | None  # its usual folder under --data_root (None: built in)
    short: str  # the paper's row label: "CUB", ...

    @property
    def name(self) -> str:
        """The datamodule's own ``name`` (what run.json records), e.g. "CUB-200-2011"."""
        return _datamodule_class(self.class_name).name


# The paper's order (App. Tables 2-3): CUB, FGVC, Food, Flower, Cars; then the synthetic set.
DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo("cub200", "CUB200DataModule", "CUB_200_2011", "CUB"),
    DatasetInfo("fgvc_aircraft", "FGVCAircraftDataModule", "fgvc-aircraft-2013b", "FGVC"),
    DatasetInfo("food101", "Food101DataModule", "food-101", "Food"),
    DatasetInfo("flowers102", "Flowers102DataModule", "flowers-102", "Flower"),
    DatasetInfo("stanford_cars", "StanfordCarsDataModule", "stanford_cars", "Cars"),
    DatasetInfo("synthetic", "SyntheticDataModule", None, "Synthetic"),
)
BACKBONE_TITLES = {"alexnet": "AlexNet", "vgg16_bn": "VGG-16-BN", "vgg16": "VGG-16",
                   "resnet50": "ResNet-50", "vit_b_16": "ViT-B/16"}


def _datamodule_class(class_name: str) -> type:
    import datamodules

    return getattr(datamodules, class_name)


def dataset_by(*, key: str | None = None, class_path: str | None = None,
               name: str | None = None) -> DatasetInfo | None:
    """The registry entry for an experiment prefix, a datamodule class path or its ``name``."""
    for info in DATASETS:
        if key is not None and info.key == key:
            return info
        if class_path is not None and class_path.rpartition(".")[2] == info.class_name:
            return info
        if name is not None and name == info.name:
            return info
    return None


def dataset_of_experiment_name(experiment: str) -> DatasetInfo | None:
    """``cub200_alexnet`` -> the cub200 entry (longest matching prefix)."""
    hits = [d for d in DATASETS if experiment == d.key or experiment.startswith(d.key + "_")]
    return max(hits, key=lambda d: len(d.key)) if hits else None


# --- config resolution ---------------------------------------------------------------------

def split_overrides(args: Sequence[str]) -> list[list[str]]:
    """Group overrides by option: ``["--a", "1", "--b=2", "--c", "x", "y"]`` ->
    ``[["--a", "1"], ["--b=2"], ["--c", "x", "y"]]``.

    Raises ValueError for a leading value that belongs to no option.
    """
    groups: list[list[str]] = []
    for arg in args:
        if arg.startswith("--"):
            groups.append([arg])
        elif groups:
            groups[-1].append(arg)
        else:
            raise ConfigError(f"sweep: {arg!r} follows no --option; overrides are "
                              "'--section.key value' pairs (e.g. --trainer.devices 4)")
    return groups


def option_name(group: Sequence[str]) -> str:
    """``["--trainer.devices", "4"]`` or ``["--trainer.devices=4"]`` -> ``"trainer.devices"``."""
    return group[0][2:].split("=", 1)[0]


def option_values(group: Sequence[str]) -> list[str]:
    """The values of one option group (``--k=v`` or ``--k v ...``)."""
    head = group[0][2:]
    return [head.split("=", 1)[1], *group[1:]] if "=" in head else list(group[1:])


def _set_dotted(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    node = cfg
    *parents, last = dotted.split(".")
    for part in parents:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[last] = value


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config(config: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The experiment YAML with the override groups applied as LightningCLI would.

    Only what the sweep reads (trainer limits, model.backbone, data.class_path) needs to be
    right: ``--config`` files merge in order, ``--a.b v`` sets a value (``--data.x`` also sets
    ``data.init_args.x``).
    """
    cfg = yaml.safe_load(Path(config).read_text()) or {}
    for group in split_overrides(overrides):
        name, values = option_name(group), option_values(group)
        if name == "config":
            for path in values:
                cfg = _merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
        elif len(values) == 1:
            value = yaml.safe_load(values[0])
            _set_dotted(cfg, name, value)
            section, _, rest = name.partition(".")
            if section == "data" and rest and not rest.startswith(("init_args", "class_path")):
                _set_dotted(cfg, f"data.init_args.{rest}", value)
    return cfg


@dataclass(frozen=True)
class Experiment:
    """One experiment of a sweep, resolved with the sweep's overrides."""

    name: str
    config: Path
    dataset: DatasetInfo
    backbone: str  # with the overrides (what runs)
    configured_backbone: str  # the YAML's own (what --backbones selects)
    max_epochs: int | None  # None: no epoch limit (then max_steps decides)
    max_steps: int  # -1: no step limit

    @property
    def tags(self) -> list[str]:
        """W&B tags: dataset key and backbone."""
        return [self.dataset.key, self.backbone]


def _limits(trainer: dict[str, Any]) -> tuple[int | None, int]:
    max_steps = trainer.get("max_steps")
    max_steps = -1 if max_steps is None else int(max_steps)
    max_epochs = trainer.get("max_epochs")
    if max_epochs is None:  # Lightning: 1000 epochs when neither limit is set
        return (1000 if max_steps == -1 else None), max_steps
    return (None if int(max_epochs) == -1 else int(max_epochs)), max_steps


def load_experiment(config: Path, overrides: Sequence[str] = ()) -> Experiment:
    """Resolve one experiment YAML; a YAML without a known datamodule is a clear error."""
    cfg = resolve_config(config, overrides)
    class_path = (cfg.get("data") or {}).get("class_path", "")
    dataset = dataset_by(class_path=class_path)
    if dataset is None:
        known = ", ".join(d.class_name for d in DATASETS)
        raise ConfigError(f"{config}: data.class_path {class_path!r} is not a datamodule the "
                          f"sweep knows ({known}); add it to sweeps.experiments.DATASETS")
    backbone = (cfg.get("model") or {}).get("backbone")
    if not backbone:
        raise ConfigError(f"{config}: no model.backbone")
    max_epochs, max_steps = _limits(cfg.get("trainer") or {})
    own = (yaml.safe_load(Path(config).read_text()) or {}).get("model") or {}
    return Experiment(name=Path(config).stem, config=Path(config), dataset=dataset,
                      backbone=str(backbone),
                      configured_backbone=str(own.get("backbone") or backbone),
                      max_epochs=max_epochs, max_steps=max_steps)


def available_experiments() -> dict[str, Path]:
    """Name -> YAML of the shipped experiments (``configs/experiments/*`` and ``synthetic``)."""
    found = {p.stem: p for p in sorted(EXPERIMENTS_DIR.glob("*.yaml"))}
    found["synthetic"] = SYNTHETIC_CONFIG
    return found


def select_experiments(names: Sequence[str] | None, datasets: Sequence[str] | None,
                       backbones: Sequence[str] | None,
                       overrides: Sequence[str] = ()) -> list[Experiment]:
    """The chosen experiments, in the paper's dataset order, then backbone.

    ``names``: experiment names or YAML paths (default: every ``configs/experiments`` YAML);
    ``datasets`` / ``backbones`` filter them.
    """
    available = available_experiments()
    if names:
        paths = []
        for name in names:
            if name in available:
                paths.append(available[name])
            elif name.endswith((".yaml", ".yml")) and Path(name).is_file():
                paths.append(Path(name))
            else:
                raise ConfigError(f"sweep: unknown experiment {name!r}; choose from "
                                  f"{', '.join(available)} or give a YAML file that exists")
    else:
        paths = sorted(EXPERIMENTS_DIR.glob("*.yaml"))
    experiments = [load_experiment(p, overrides) for p in paths]
    keys = {d.key for d in DATASETS}
    for chosen in datasets or ():
        if chosen not in keys:
            raise ConfigError(f"sweep: unknown dataset {chosen!r}; choose from {sorted(keys)}")
    if datasets:
        experiments = [e for e in experiments if e.dataset.key in datasets]
    if backbones:
        experiments = [e for e in experiments if e.configured_backbone in backbones]
    names_seen: dict[str, Path] = {}
    for e in experiments:
        if e.name in names_seen and names_seen[e.name] != e.config:
            raise ConfigError(f"sweep: two experiments named {e.name!r} ({names_seen[e.name]}, "
                              f"{e.config}) would share one output folder; rename one")
        names_seen[e.name] = e.config
    experiments = list({e.name: e for e in experiments}.values())
    order = {d.key: i for i, d in enumerate(DATASETS)}
    return sorted(experiments, key=lambda e: (order[e.dataset.key], e.backbone, e.name))


# --- data roots ------------------------------------------------------------------------------

def _datamodule_kwargs(cls: type, config: Path, root: Path) -> dict[str, Any]:
    init_args = dict(((yaml.safe_load(config.read_text()) or {}).get("data") or {})
                     .get("init_args") or {})
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in init_args.items() if k in params}
    kwargs["root"] = str(root)
    return kwargs


def _read_problem(e: Experiment, folder: Path, root: Path, label: str, missing: str
                  ) -> str | None:
    """Why ``e``'s data set cannot be read: ``missing`` when ``folder`` is not there, else its
    datamodule's own metadata check (``setup()`` with ``--data.root root``) under ``label``;
    None when it reads."""
    if not folder.is_dir():
        return f"- {missing}"
    cls = _datamodule_class(e.dataset.class_name)
    try:
        cls(**_datamodule_kwargs(cls, e.config, root)).setup()
    except Exception as err:  # whatever the datamodule raises on its metadata
        return f"- {label}: {err}"
    return None


def _check_own_roots(experiments: Sequence[Experiment], roots: Mapping[str, Path]) -> None:
    """``--data_roots KEY=DIR``: each DIR exists and its datamodule reads its metadata there."""
    problems: list[str] = []
    for key in dict.fromkeys(e.dataset.key for e in experiments):
        e = next(x for x in experiments if x.dataset.key == key)
        folder = roots[key]
        given = f"--data_roots {key}={folder}"
        problem = _read_problem(e, folder, folder, f"{e.dataset.name} ({given})",
                                f"{e.dataset.name}: {given}: no such folder")
        if problem:
            problems.append(problem)
    if problems:
        raise MissingFileError("sweep: data missing (nothing was started):\n"
                               + "\n".join(problems))


def check_data_roots(experiments: Sequence[Experiment], data_root: Path | None,
                     data_roots: Mapping[str, Path] | None = None) -> None:
    """Fail before any work when a dataset folder is missing or incomplete under ``data_root``.

    Looks for each dataset's usual folder, then lets its datamodule read its metadata
    (``setup()``: class list and splits, no images; its own checks name the files it expects
    and where to get them). All problems in one error. ``data_roots``: a folder of its own for
    some data sets (``--data_roots cub200=/a``), used as that data set's ``--data.root``.
    """
    own_roots = dict(data_roots or {})
    needing = [e for e in experiments if e.dataset.folder is not None
               and e.dataset.key not in own_roots]
    _check_own_roots([e for e in experiments if e.dataset.key in own_roots], own_roots)
    if not needing:
        return
    if data_root is None:
        names = ", ".join(e.name for e in needing)
        folders = ", ".join(sorted({str(e.dataset.folder) for e in needing}))
        raise MissingFileError(f"sweep: {names} read data from disk; pass --data_root DIR, "
                               f"the folder that holds {folders}")
    problems: list[str] = []
    checked: set[str] = set()
    for e in needing:
        if e.dataset.key in checked:
            continue
        checked.add(e.dataset.key)
        folder = data_root / str(e.dataset.folder)
        users = ", ".join(x.name for x in needing if x.dataset.key == e.dataset.key)
        label = f"{e.dataset.name} ({users})"
        problem = _read_problem(e, folder, data_root, label, f"{label}: no folder {folder}")
        if problem:
            problems.append(problem)
    if problems:
        raise MissingFileError(
            f"sweep: data missing under --data_root {data_root} (nothing was started):\n"
            + "\n".join(problems)
            + "\nPut each dataset in its usual folder under --data_root (see the README's "
            "'Data sets' table) or choose other experiments (--experiments / --datasets)."
        )
