"""The layout: each folder imports only what lies below it, entry points hold no logic, and names
that moved keep working for configs written before the move."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"explainers", "datamodules", "lightning_modules", "metrics", "callbacks", "results",
               "cli", "sweeps", "benchmarks", "errors", "tests"}
# What each folder may import from the project (DESIGN: arrows point downwards only).
MAY_IMPORT = {
    "explainers": {"errors"},
    "datamodules": {"errors"},
    "lightning_modules": {"errors", "explainers"},
    "results": {"errors", "explainers"},
    "metrics": {"errors", "explainers", "results"},
    "callbacks": {"errors", "explainers", "datamodules", "lightning_modules", "metrics",
                  "results"},
    "cli": {"errors", "explainers", "datamodules", "lightning_modules", "metrics", "callbacks",
            "results"},
    "sweeps": FIRST_PARTY - {"sweeps", "benchmarks", "tests"},
}
NO_LIGHTNING = {"explainers", "metrics", "results"}


def _imports(folder: str) -> dict[str, set[str]]:
    """``{module file: top-level names it imports}`` for every module of ``folder``."""
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        out[str(path.relative_to(ROOT))] = names
    return out


@pytest.mark.parametrize("folder", sorted(MAY_IMPORT))
def test_imports_point_downwards(folder: str) -> None:
    for module, names in _imports(folder).items():
        upward = (names & FIRST_PARTY) - MAY_IMPORT[folder] - {folder}
        assert not upward, f"{module} imports {sorted(upward)}"
        if folder in NO_LIGHTNING:
            assert not names & {"lightning", "pytorch_lightning"}, module


@pytest.mark.parametrize("script", ["train.py", "evaluate.py", "sweep.py"])
def test_entry_points_are_thin(script: str) -> None:
    """An import of the CLI's ``main`` and the call under ``__main__``; nothing else."""
    tree = ast.parse((ROOT / script).read_text())
    kinds = [type(node).__name__ for node in tree.body if not (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert kinds in (["ImportFrom", "If"], ["Import", "ImportFrom", "If"]), kinds


def test_each_folder_holds_what_its_name_says() -> None:
    """LightningModules and backbones in lightning_modules/, callbacks in callbacks/, the CLI in
    cli/: no LightningCLI or Callback subclass outside its room."""
    def classes(folder: str) -> dict[str, list[str]]:
        found = {}
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef):
                    found[node.name] = [ast.unparse(b) for b in node.bases]
        return found

    for folder in ("explainers", "datamodules", "lightning_modules", "metrics", "results",
                   "sweeps"):
        for name, bases in classes(folder).items():
            assert not {"LightningCLI", "WhynotCLI", "Callback"} & set(bases), (folder, name)
    callbacks = classes("callbacks")
    assert callbacks["ContrastiveEvaluation"] == ["Callback"]
    assert callbacks["ReseedEachEpoch"] == ["Callback"]
    assert "LightningCLI" in classes("cli")["WhynotCLI"]


def test_configs_naming_moved_modules_still_load() -> None:
    """``class_path: lightning_modules.loggers.OfflineWandbLogger`` (a config from before the
    move) resolves to the class in cli/, with a FutureWarning that names the new path."""
    import importlib
    import sys

    import cli  # noqa: F401  (installs the finder, as every CLI run does)
    from cli.loggers import OfflineWandbLogger

    sys.modules.pop("lightning_modules.loggers", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("lightning_modules.loggers")
    assert old.OfflineWandbLogger is OfflineWandbLogger
    (warning,) = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert "cli.loggers" in str(warning.message)


def test_a_config_with_the_old_logger_class_path_parses(tmp_path: Path) -> None:
    import sys

    from cli.loggers import OfflineWandbLogger
    from cli.train import TrainCLI

    old = (ROOT / "configs" / "logger" / "wandb.yaml").read_text().replace(
        "cli.loggers.OfflineWandbLogger", "lightning_modules.loggers.OfflineWandbLogger")
    assert "lightning_modules.loggers" in old
    (tmp_path / "old.yaml").write_text(old)
    sys.modules.pop("lightning_modules.loggers", None)  # as in a fresh process
    with pytest.warns(FutureWarning, match="moved to cli.loggers"):
        cli = TrainCLI(args=["--config", str(ROOT / "configs" / "synthetic.yaml"),
                             "--config", str(tmp_path / "old.yaml"),
                             "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert any(isinstance(lg, OfflineWandbLogger) for lg in cli.trainer.loggers)


def _defaults(cls: type) -> dict[str, object]:
    """The keyword defaults of ``cls.__init__`` and of the bases it passes ``**kwargs`` to."""
    import inspect

    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            for name, p in inspect.signature(vars(klass)["__init__"]).parameters.items():
                if p.default is not inspect.Parameter.empty:
                    out[name] = p.default
    return out


def test_presets_only_override_the_signatures_defaults() -> None:
    """Defaults live in the signatures; a YAML that repeats one would silently disagree the day
    the signature changes."""
    import importlib

    import yaml
    from lightning.pytorch import Trainer

    from lightning_modules import FineTuneClassifier

    repeated = []
    for path in sorted((ROOT / "configs").rglob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        sections = [("model", cfg.get("model") or {}, FineTuneClassifier),
                    ("trainer", cfg.get("trainer") or {}, Trainer)]
        data = cfg.get("data") or {}
        if "class_path" in data:
            module, _, name = data["class_path"].rpartition(".")
            sections.append(("data", data.get("init_args") or {},
                             getattr(importlib.import_module(module), name)))
        for section, values, cls in sections:
            defaults = _defaults(cls)
            repeated += [f"{path.relative_to(ROOT)}: {section}.{k}: {v!r}"
                         for k, v in values.items() if k in defaults and defaults[k] == v
                         and (section, k) != ("model", "backbone")]  # a preset's identity
    assert repeated == []


def test_every_module_imports() -> None:
    """An import error anywhere in the project fails the fast suite (not only the test that
    happens to import the module, which may be slow or skipped)."""
    import importlib

    folders = ("explainers", "datamodules", "lightning_modules", "metrics", "callbacks",
               "results", "cli", "sweeps", "benchmarks")
    names = [".".join(p.relative_to(ROOT).with_suffix("").parts) for folder in folders
             for p in sorted((ROOT / folder).rglob("*.py"))]
    names = [n.removesuffix(".__init__") for n in names]
    names += ["errors", "train", "evaluate", "sweep"]
    for name in names:
        importlib.import_module(name)
    assert len(names) > 60
