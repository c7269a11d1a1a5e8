"""ContrastiveEvaluation: explain each test batch, feed the faithfulness metrics, report at the end.

Per test batch: one ``explain`` call per method (all targets and contrasts at once), then the
metrics' ``update`` on the device (perturbed images batched and chunked by ``max_batch`` inside the
metrics). At the end of the test epoch the metrics are computed (torchmetrics reduces their "sum"
states across DDP ranks), logged under ``eval/<quantity>/<method>/<rest>`` and, on rank zero,
written to ``results.json``, ``report.md`` and ``figures/*.png`` in the run's folder.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from torch import nn

from callbacks.figures import heatmap_grid_png
from callbacks.precision import InPrecision
from callbacks.report import (
    atomic_write_bytes,
    atomic_write_text,
    found_axes,
    paper_table_rows,
    render_report,
    write_results_json,
)
from explainers import explain
from metrics import GradientSignPerturbation, PartLocalization, PerturbationScore
from metrics.functional import metric_state_dtype

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
        output_dir: where results.json / report.md / figures go; None -> the trainer's log dir.
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
            raise ValueError("ContrastiveEvaluation: `methods` is empty; give at least one method.")
        if topk != 2:
            raise ValueError(
                f"ContrastiveEvaluation: topk={topk}, but the perturbation protocol compares the "
                "top-2 classes (t1, t2); use topk=2."
            )
        if max_batch < 1:
            raise ValueError(f"ContrastiveEvaluation: max_batch={max_batch} must be >= 1.")
        if memory_budget_gib is not None and not memory_budget_gib > 0:
            raise ValueError(
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
        self._loc_used = False
        self._device = torch.device("cpu")

    # ----------------------------------------------------------------------------------- set-up
    def _data_stats(self, trainer: Trainer) -> tuple[tuple[float, ...], tuple[float, ...]]:
        dm = getattr(trainer, "datamodule", None)
        mean = tuple(getattr(dm, "mean", IMAGENET_MEAN))
        std = tuple(getattr(dm, "std", IMAGENET_STD))
        return mean, std

    def _build_metrics(self, trainer: Trainer) -> nn.ModuleDict:
        metrics = nn.ModuleDict()
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

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse inference mode, then build fresh metrics on the module's device."""
        if trainer.test_loop.inference_mode or torch.is_inference_mode_enabled():
            raise RuntimeError(
                "ContrastiveEvaluation needs gradients during Trainer.test, but the trainer runs "
                "under torch.inference_mode. Create it with Trainer(inference_mode=False) "
                "(evaluate.py does this for you)."
            )
        for attr in ("net", "explain_layer"):
            if not hasattr(pl_module, attr) and (attr == "net" or self.layer is None):
                raise TypeError(
                    f"ContrastiveEvaluation: {type(pl_module).__name__} has no `{attr}`; use "
                    "lightning_modules.FineTuneClassifier or give `layer` explicitly."
                )
        self._device = pl_module.device  # before _build_metrics: it picks the state dtype
        self.metrics = self._build_metrics(trainer).to(self._device)
        self.results = {}
        self._figures = []
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
        # the plain module (never the DDP wrapper), its forwards in the trainer's precision
        net = InPrecision(pl_module.net, trainer.precision_plugin.forward_context)
        layer = "net." + (self.layer if self.layer is not None else pl_module.explain_layer)
        reshape = getattr(pl_module, "explain_reshape", None)
        keep = 0
        if trainer.is_global_zero and self.num_figures > 0:
            keep = min(self.num_figures - sum(f["n"] for f in self._figures), x.shape[0])
        fig_maps: dict[str, dict[str, torch.Tensor]] = {}
        targets = None
        for i, method in enumerate(self.methods):
            res = explain(
                net, x, method=method, layer=layer, topk=self.topk,
                contrasts=self.contrasts, reshape=reshape,
            )
            self.metrics[f"ps_{i}"].update(net, x, res.maps, res.targets, res.logits)
            if self.localization and part_masks is not None:
                dm = trainer.datamodule
                self.metrics[f"loc_{i}"].update(
                    res.maps, res.targets, res.logits, part_masks,
                    dm.part_attributes.to(x.device),
                )
                self._loc_used = True
            if keep > 0:
                fig_maps[method] = {c: m[:keep].detach().cpu() for c, m in res.maps.items()}
                targets = res.targets[:keep].detach().cpu()
        if self.gradient_sign:
            with torch.enable_grad():
                self.metrics["gsp"].update(net, x, labels)
        if keep > 0:
            self._figures.append(
                {"n": keep, "images": x[:keep].detach().cpu(), "maps": fig_maps,
                 "targets": targets}
            )

    # ------------------------------------------------------------------------------- epoch end
    def compute_results(self) -> dict[str, float]:
        """Compute every metric (synchronised across ranks) into the flat ``eval/...`` dict."""
        values: dict[str, torch.Tensor] = {}
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
        """Compute, log to every logger, log W&B tables/images, write the report (rank zero)."""
        self.results = self.compute_results()
        with warnings.catch_warnings():
            # The values are already reduced across ranks: Lightning's sync_dist advice is moot.
            warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
            pl_module.log_dict(
                {k: torch.tensor(v) for k, v in self.results.items()}, sync_dist=False,
                rank_zero_only=True,
            )
        for m in self.metrics.values():
            m.reset()
        if not trainer.is_global_zero:
            return
        figures = self._render_figures(trainer)
        self._log_wandb(trainer, figures)
        self._write_outputs(trainer, pl_module, figures)

    def _render_figures(self, trainer: Trainer) -> dict[str, bytes]:
        if not self._figures:
            return {}
        mean, std = self._data_stats(trainer)
        names = getattr(getattr(trainer, "datamodule", None), "class_names", None)
        images = torch.cat([f["images"] for f in self._figures])
        targets = torch.cat([f["targets"] for f in self._figures])
        out = {}
        for method in self.methods:
            maps = {
                c: torch.cat([f["maps"][method][c] for f in self._figures])
                for c in self._figures[0]["maps"][method]
            }
            out[method] = heatmap_grid_png(
                images, maps, targets, mean, std, class_names=names, title=method
            )
        return out

    def _log_wandb(self, trainer: Trainer, figures: dict[str, bytes]) -> None:
        from PIL import Image

        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            for masking in found_axes(self.results)["masking"]:
                header, rows = paper_table_rows(self.results, masking)
                logger.log_table(key=f"eval/table/{masking}", columns=header, data=rows)
            for method, png in figures.items():
                logger.log_image(
                    key=f"eval/heatmaps/{method}", images=[Image.open(io.BytesIO(png))]
                )

    def resolve_output_dir(self, trainer: Trainer) -> Path:
        """``output_dir`` if given, else the trainer's log dir, else its default root dir."""
        if self.output_dir is not None:
            return Path(self.output_dir)
        return Path(trainer.log_dir or trainer.default_root_dir)

    def _write_outputs(
        self, trainer: Trainer, pl_module: LightningModule, figures: dict[str, bytes]
    ) -> None:
        out = self.resolve_output_dir(trainer)
        write_results_json(out / "results.json", self.results)
        hp = dict(getattr(pl_module, "hparams", {}))
        dm = getattr(trainer, "datamodule", None)
        info = {
            "model": f"{type(pl_module.net).__name__} {hp}",
            "data": type(dm).__name__ if dm is not None else "—",
            "data hyperparameters": dict(getattr(dm, "hparams", {})) if dm is not None else {},
            "methods": list(self.methods),
            "evaluation": {
                "topk": self.topk, "threshold": self.threshold, "max_batch": self.max_batch,
                "contrasts": list(self.contrasts), "baselines": list(self.baselines),
                "modes": list(self.modes), "maskings": list(self.maskings),
                "gradient_sign": self.gradient_sign, "steps": list(self.steps), "eps": self.eps,
            },
            "processes": trainer.world_size,
        }
        atomic_write_text(out / "report.md", render_report(self.results, info))
        for method, png in figures.items():
            atomic_write_bytes(out / "figures" / f"heatmaps_{method}.png", png)
