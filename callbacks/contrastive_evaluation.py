"""ContrastiveEvaluation: explain each test batch, feed the faithfulness metrics, report at the end.

Per test batch: one ``explain`` call per method (all targets and contrasts at once), then the
metrics' ``update`` on the device (perturbed images batched and chunked by ``max_batch`` inside the
metrics). At the end of the test epoch the metrics are computed (torchmetrics reduces their "sum"
states across DDP ranks), logged under ``eval/<quantity>/<method>/<rest>`` and, on rank zero,
written to ``results.json``, ``report.md`` and ``figures/*.png`` in the run's folder.
"""

from __future__ import annotations

import inspect
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import nn

from callbacks.exemplars import ExemplarBuffer, exemplar_caption, exemplar_figure_png
from callbacks.precision import InPrecision
from cli.console import ignore_warning
from errors import ConfigError, InputTypeError, RunError
from explainers import explain
from explainers.hooks import find_module
from metrics import GradientSignPerturbation, PartLocalization, PerturbationScore, SampleCount
from metrics.functional import metric_state_dtype
from results.figures import heatmap_grid_png
from results.report import (
    atomic_write_bytes,
    atomic_write_text,
    found_axes,
    paper_table_rows,
    render_report,
    write_results_json,
)

# Changes whenever the perturbation protocol changes, so that results of different protocols are
# never mixed silently (run.json carries it).
WHYNOT_PROTOCOL = 1
# Lightning advises sync_dist=True for every epoch-level value logged under DDP; the eval/ values
# are computed by torchmetrics, already reduced across ranks. Raised by Lightning's logger
# connector after on_test_epoch_end, so the filter must outlive that hook.
_SYNCED_KEYS_ADVICE = r"It is recommended to use `self\.log\('eval/"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def prefix_keys(values: dict[str, torch.Tensor], method: str) -> dict[str, torch.Tensor]:
    """``"<quantity>/<rest>"`` -> ``"eval/<quantity>/<method>/<rest>"`` (``rest`` may be empty)."""
    out = {}
    for key, value in values.items():
        quantity, _, rest = key.partition("/")
        out["/".join(p for p in ("eval", quantity, method, rest) if p)] = value
    return out


class ContrastiveEvaluation(Callback):
    """Run the paper's faithfulness protocol during ``Trainer.test``.

    Args:
        methods: explanation methods (``explainers.METHODS``), one ``explain`` call each per batch.
        layer: module name in ``pl_module.net`` to explain at; None -> ``pl_module.explain_layer``.
        topk: number of top predictions explained (2: t1 and t2, as in the paper).
        contrasts, baselines, modes, maskings, threshold, max_batch: passed to PerturbationScore.
        gradient_sign: also run GradientSignPerturbation (Figure 3) with ``steps`` and ``eps``.
        memory_budget_gib: GiB one gradient-sign chunk's autograd graph may take (None: no
            limit); 8 fits a 24 GB GPU with VGG-16-BN at 224 px and a data batch of 128.
        localization: run PartLocalization when batches carry part masks.
        num_figures: samples shown in the heat-map grids (0: no figures).
        output_dir: where results.json / report.md / run.json / figures go; None -> ``run_dir``
            when evaluate.py set it (``E/evaluate/version_<N>``), else the trainer's log dir.
    """

    def __init__(
        self,
        methods: Sequence[str] = ("gradcam", "linear_approx"),
        layer: str | None = None,
        topk: int = 2,
        contrasts: Sequence[str] = ("original", "weighted"),
        baselines: Sequence[str] = ("blur", "zeros", "mean"),
        modes: Sequence[str] = ("pos", "neg"),
        maskings: Sequence[str] = ("threshold", "equal"),
        threshold: float | None = 0.1,
        max_batch: int = 256,
        gradient_sign: bool = True,
        steps: Sequence[int] = (1, 2, 10),
        eps: float = 3e-3,
        memory_budget_gib: float | None = 8.0,
        localization: bool = True,
        num_figures: int = 8,
        output_dir: str | None = None,
    ) -> None:
        super().__init__()
        if not methods:
            raise ConfigError(
                "ContrastiveEvaluation: `methods` is empty; give at least one method.")
        if topk != 2:
            raise ConfigError(
                f"ContrastiveEvaluation: topk={topk}, but the perturbation protocol compares the "
                "top-2 classes (t1, t2); use topk=2."
            )
        if max_batch < 1:
            raise ConfigError(f"ContrastiveEvaluation: max_batch={max_batch} must be >= 1.")
        if memory_budget_gib is not None and not memory_budget_gib > 0:
            raise ConfigError(
                f"ContrastiveEvaluation: memory_budget_gib={memory_budget_gib} must be > 0 "
                "(GiB for one gradient-sign chunk, e.g. 8 on a 24 GB GPU) or null for no limit."
            )
        self.methods = tuple(methods)
        self.layer = layer
        self.topk = topk
        self.contrasts = tuple(contrasts)
        self.baselines = tuple(baselines)
        self.modes = tuple(modes)
        self.maskings = tuple(maskings)
        self.threshold = threshold
        self.max_batch = max_batch
        self.gradient_sign = gradient_sign
        self.steps = tuple(steps)
        self.eps = eps
        self.memory_budget_gib = memory_budget_gib
        self.localization = localization
        self.num_figures = num_figures
        self.output_dir = output_dir
        self.metrics = nn.ModuleDict()
        self.results: dict[str, float] = {}
        self._figures: list[dict[str, Any]] = []
        self._exemplars: ExemplarBuffer | None = None
        self._part_attributes: torch.Tensor | None = None
        self._loc_used = False
        self._device = torch.device("cpu")
        self._net: nn.Module | None = None
        self._layer = ""
        # Set by evaluate.py: the run folder, the default for output_dir.
        self.run_dir: Path | None = None
        self._output_dir: Path | None = None
        self.written: list[Path] = []

    # ----------------------------------------------------------------------------------- set-up
    def _data_stats(self, trainer: Trainer) -> tuple[tuple[float, ...], tuple[float, ...]]:
        dm = getattr(trainer, "datamodule", None)
        mean = tuple(getattr(dm, "mean", IMAGENET_MEAN))
        std = tuple(getattr(dm, "std", IMAGENET_STD))
        return mean, std

    def _build_metrics(self, trainer: Trainer) -> nn.ModuleDict:
        metrics = nn.ModuleDict({"seen": SampleCount()})
        for i in range(len(self.methods)):
            metrics[f"ps_{i}"] = PerturbationScore(
                contrasts=self.contrasts,
                baselines=self.baselines,
                modes=self.modes,
                maskings=self.maskings,
                threshold=self.threshold,
                max_batch=self.max_batch,
            )
            if self.localization:
                metrics[f"loc_{i}"] = PartLocalization(
                    contrasts=self.contrasts,
                    threshold=self.threshold,
                )
        if self.gradient_sign:
            mean, std = self._data_stats(trainer)
            budget = self.memory_budget_gib
            metrics["gsp"] = GradientSignPerturbation(
                mean, std, steps=self.steps, eps=self.eps, max_batch=self.max_batch,
                memory_budget=None if budget is None else int(budget * 2**30),
            )
        state_dtype = metric_state_dtype(self._device)
        if state_dtype != torch.float64:  # MPS has no float64: float32 sums there
            for metric in metrics.values():
                metric.set_dtype(state_dtype)
        return metrics

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Resolve the output folder on every rank (before any rank-zero branch).

        ``trainer.log_dir`` and the broadcast are collectives under DDP: every rank calls them
        here, so the rank-zero writers at the end call none. All ranks use rank zero's folder.
        """
        ignore_warning(_SYNCED_KEYS_ADVICE, PossibleUserWarning)
        local = self.output_dir or self.run_dir
        if local is None:
            local = trainer.log_dir or trainer.default_root_dir
        self._output_dir = Path(trainer.strategy.broadcast(str(local)))

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse inference mode, then build fresh metrics on the module's device."""
        if trainer.test_loop.inference_mode or torch.is_inference_mode_enabled():
            raise RunError(
                "ContrastiveEvaluation needs gradients during Trainer.test, but the trainer runs "
                "under torch.inference_mode. Create it with Trainer(inference_mode=False) "
                "(evaluate.py does this for you)."
            )
        for attr in ("net", "explain_layer"):
            if not hasattr(pl_module, attr) and (attr == "net" or self.layer is None):
                raise InputTypeError(
                    f"ContrastiveEvaluation: {type(pl_module).__name__} has no `{attr}`; use "
                    "lightning_modules.FineTuneClassifier or give `layer` explicitly."
                )
        layer = self.layer if self.layer is not None else pl_module.explain_layer
        find_module(pl_module.net, layer)  # an unknown name lists the layers as the user names them
        # the plain module (never the DDP wrapper), its forwards in the trainer's precision
        self._net = InPrecision(pl_module.net, trainer.precision_plugin.forward_context)
        self._layer = "net." + layer
        self._device = pl_module.device  # before _build_metrics: it picks the state dtype
        self.metrics = self._build_metrics(trainer).to(self._device)
        self.results = {}
        self._figures = []
        self._exemplars = None
        self._part_attributes = None
        if trainer.is_global_zero and self.num_figures > 0:
            self._exemplars = ExemplarBuffer(self.num_figures, self.threshold,
                                             *self._data_stats(trainer))
        self._loc_used = False

    # -------------------------------------------------------------------------------- per batch
    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Explain the batch with every method and update the metrics (all on the device)."""
        x, labels = batch[0], batch[1]
        part_masks = batch[2] if len(batch) > 2 else None
        net, layer = self._net, self._layer
        reshape = getattr(pl_module, "explain_reshape", None)
        keep = 0
        if trainer.is_global_zero and self.num_figures > 0:
            keep = min(self.num_figures - sum(f["n"] for f in self._figures), x.shape[0])
        fig_maps: dict[str, dict[str, torch.Tensor]] = {}
        all_maps: dict[str, dict[str, torch.Tensor]] = {}
        targets = None
        self.metrics["seen"].update(labels)
        for i, method in enumerate(self.methods):
            res = explain(
                net, x, method=method, layer=layer, topk=self.topk,
                contrasts=self.contrasts, reshape=reshape,
            )
            all_maps[method] = res.maps
            self.metrics[f"ps_{i}"].update(net, x, res.maps, res.targets, res.logits)
            if self.localization and part_masks is not None:
                if self._part_attributes is None:  # one host-to-device copy per run
                    self._part_attributes = trainer.datamodule.part_attributes.to(x.device)
                self.metrics[f"loc_{i}"].update(
                    res.maps, res.targets, res.logits, part_masks, self._part_attributes,
                )
                self._loc_used = True
            if keep > 0:
                fig_maps[method] = {c: m[:keep].detach().cpu() for c, m in res.maps.items()}
                targets = res.targets[:keep].detach().cpu()
                probs = res.probs.gather(1, res.targets)[:keep].detach().cpu()
        if self.gradient_sign:
            with torch.enable_grad():
                self.metrics["gsp"].update(net, x, labels)
        if keep > 0:
            self._figures.append(
                {"n": keep, "images": x[:keep].detach().cpu(), "maps": fig_maps,
                 "targets": targets, "labels": labels[:keep].detach().cpu(), "probs": probs}
            )
        if self._exemplars is not None:
            self._exemplars.update(x, labels, res.targets, res.probs, all_maps)

    # ------------------------------------------------------------------------------- epoch end
    def compute_results(self) -> dict[str, float]:
        """Compute every metric (synchronised across ranks) into the flat ``eval/...`` dict."""
        values: dict[str, torch.Tensor] = {"eval/num_samples": self.metrics["seen"].compute()}
        for i, method in enumerate(self.methods):
            values.update(prefix_keys(self.metrics[f"ps_{i}"].compute(), method))
            if self._loc_used_any():
                values.update(prefix_keys(self.metrics[f"loc_{i}"].compute(), method))
        if self.gradient_sign:
            values.update(prefix_keys(self.metrics["gsp"].compute(), "gradient"))
        return {k: float(v.detach().cpu()) for k, v in sorted(values.items())}

    def _loc_used_any(self) -> bool:
        if not self.localization:
            return False
        # Ranks must agree on whether to compute (compute is a collective under DDP).
        flag = torch.tensor(float(self._loc_used))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = flag.to(self._device)
            torch.distributed.all_reduce(flag)
        return bool(flag > 0)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute (every rank), log to every logger, then W&B tables and files on rank zero."""
        self.results = self.compute_results()  # collectives: every rank, same order
        self.written = []
        pl_module.log_dict(
            {k: torch.tensor(v) for k, v in self.results.items()}, sync_dist=False,
            rank_zero_only=True,
        )
        for m in self.metrics.values():
            m.reset()
        if not trainer.is_global_zero:
            return
        # Rank zero only from here on: no collectives below (the output folder was agreed in
        # setup).
        figures = self._render_figures(trainer)
        self._log_wandb(trainer, figures)
        self._write_outputs(trainer, pl_module, figures)

    def _render_figures(self, trainer: Trainer) -> dict[str, bytes]:
        """``{"<kind>_<method>": png}``: written as ``figures/<kind>_<method>.png``, logged to
        W&B as ``eval/<kind>/<method>``; kinds ``heatmaps`` and ``exemplars``."""
        mean, std = self._data_stats(trainer)
        dm = getattr(trainer, "datamodule", None)
        names = getattr(dm, "class_names", None)
        out: dict[str, bytes] = {}
        cat = {k: torch.cat([f[k] for f in self._figures])
               for k in ("images", "targets", "labels", "probs")} if self._figures else {}
        for method in self.methods if self._figures else ():
            maps = {
                c: torch.cat([f["maps"][method][c] for f in self._figures])
                for c in self._figures[0]["maps"][method]
            }
            out[f"heatmaps_{method}"] = heatmap_grid_png(
                cat["images"], maps, cat["targets"], mean, std, class_names=names,
                title=f"{method}: original (ori) and weighted (wtd) maps of the top-2 classes",
                labels=cat["labels"], probs=cat["probs"],
            )
        out.update(self._render_exemplars(trainer, dm, names))
        return out

    def _render_exemplars(self, trainer: Trainer, dm: Any, names: Any) -> dict[str, bytes]:
        data = self._exemplars.collected() if self._exemplars is not None else None
        if data is None:
            return {}
        parts = getattr(dm, "part_names", None) if self._loc_used else None
        attrs = getattr(dm, "part_attributes", None) if self._loc_used else None
        caption = exemplar_caption(self.num_figures, self.threshold, trainer.world_size)
        return {
            f"exemplars_{method}": exemplar_figure_png(
                data, method, names, caption, parts, attrs,
                title=f"{method}: maps of t1 and t2, and correctly classified exemplars",
            )
            for method in self.methods
        }

    def _log_wandb(self, trainer: Trainer, figures: dict[str, bytes]) -> None:
        from PIL import Image

        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            for masking in found_axes(self.results)["masking"]:
                header, rows = paper_table_rows(self.results, masking)
                logger.log_table(key=f"eval/table/{masking}", columns=header, data=rows)
            for name, png in figures.items():
                kind, _, method = name.partition("_")
                logger.log_image(
                    key=f"eval/{kind}/{method}", images=[Image.open(io.BytesIO(png))]
                )

    def resolve_output_dir(self, trainer: Trainer | None = None) -> Path:
        """The folder results.json, report.md, run.json and figures/ go to (agreed in setup).

        Never a collective, so rank-zero code may call it. Before ``setup``: ``output_dir`` or
        ``run_dir`` if given, else ``trainer.default_root_dir``.
        """
        if self._output_dir is not None:
            return self._output_dir
        local = self.output_dir or self.run_dir
        if local is None and trainer is not None:
            local = trainer.default_root_dir
        if local is None:
            raise RunError("ContrastiveEvaluation: no output folder before Trainer.test.")
        return Path(local)

    def settings(self) -> dict[str, Any]:
        """The callback's arguments and their values (run.json's ``evaluation``)."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: _plain(getattr(self, n)) for n in names if hasattr(self, n)}

    def run_info(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """run.json: what was evaluated, how, by how many processes, finished when."""
        dm = getattr(trainer, "datamodule", None)
        hp = public_hparams(pl_module)
        ckpt = trainer.ckpt_path
        return {
            "whynot_protocol": WHYNOT_PROTOCOL,
            "experiment": Path(trainer.default_root_dir).resolve().name,
            "stage": "evaluate",
            "dataset": getattr(dm, "name", None) if dm is not None else None,
            "datamodule": f"{type(dm).__module__}.{type(dm).__qualname__}" if dm is not None
            else None,
            "backbone": hp.get("backbone"),
            "num_classes": int(hp["num_classes"]) if "num_classes" in hp else None,
            "ckpt_path": str(ckpt) if ckpt else None,
            "precision": str(trainer.precision),
            "world_size": int(trainer.world_size),
            "evaluation": self.settings(),
            "data": _plain(public_hparams(dm)),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _write_outputs(
        self, trainer: Trainer, pl_module: LightningModule, figures: dict[str, bytes]
    ) -> None:
        """Rank zero: results.json, report.md, figures, then run.json (each atomically)."""
        out = self.resolve_output_dir(trainer)
        write_results_json(out / "results.json", self.results)
        dm = getattr(trainer, "datamodule", None)
        info = {
            "model": {"network": type(pl_module.net).__name__, **public_hparams(pl_module)},
            "data": type(dm).__name__ if dm is not None else "—",
            "data hyperparameters": public_hparams(dm),
            "ground-truth parts": getattr(dm, "part_names", "—") if self._loc_used else "—",
            "methods": list(self.methods),
            "evaluation": {k: v for k, v in self.settings().items()
                           if k not in ("methods", "output_dir")},
            "processes": trainer.world_size,
        }
        atomic_write_text(out / "report.md", render_report(self.results, info))
        written = [out / "results.json", out / "report.md"]
        for name, png in figures.items():
            path = out / "figures" / f"{name}.png"
            atomic_write_bytes(path, png)
            written.append(path)
        info_json = json.dumps(self.run_info(trainer, pl_module), indent=1, sort_keys=True)
        atomic_write_text(out / "run.json", info_json + "\n")
        self.written = [*written, out / "run.json"]


def public_hparams(obj: Any) -> dict[str, Any]:
    """``obj.hparams`` without LightningCLI's internal keys (``_class_path``, ``_instantiator``)."""
    return {k: v for k, v in dict(getattr(obj, "hparams", None) or {}).items()
            if not k.startswith("_")}


def _plain(value: Any) -> Any:
    """``value`` as JSON: tuples -> lists, paths and other objects -> str."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)
