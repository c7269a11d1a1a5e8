"""ContrastiveEvaluation: explain each test batch, feed the faithfulness metrics, report at the end.

Per test batch the callback runs its ``EvaluationStep`` (``callbacks/evaluation_step.py``: one
``explain`` call per method, then the metrics' updates on the device) and keeps what the figures
need. At the end of the test epoch the metrics are computed (torchmetrics reduces their "sum"
states across DDP ranks), logged under their result keys (``results.schema``) and, on rank zero,
written to ``results.json``, ``report.md``, ``run.json`` and ``figures/*.png`` in the run's folder.
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from callbacks.evaluation_step import EvaluationStep
from callbacks.exemplars import ExemplarBuffer
from callbacks.precision import InPrecision
from callbacks.run_description import report_additions, run_json_additions, what_was_run
from datamodules.transforms import IMAGENET_MEAN, IMAGENET_STD
from errors import ConfigError, InputTypeError, RunError
from explainers.hooks import Reshape, find_module
from explainers.logit_contrasts import FINER_ALPHA, FINER_GAMMA, FINER_TOP, with_options
from metrics.curves import FaithfulnessCurves
from metrics.parameter_randomisation import cascade_layers
from results.curve_figures import curve_figures_png, log_curve_plots
from results.figures import exemplar_caption, exemplar_figure_png, heatmap_grid_png
from results.files import (
    RESULTS_FILE,
    RUN_FILE,
    atomic_write_bytes,
    atomic_write_text,
    write_results_json,
    write_run_json,
)
from results.report import render_report
from results.run_tables import run_tables
from results.sanity_figures import mprt_curves_png, random_logit_grid_png
from results.schema import (
    BASELINES,
    MASKINGS,
    MODES,
    PAPER_CONTRASTS,
    PROTOCOL_VERSION,
    check_values,
    media_key,
)


class ContrastiveEvaluation(Callback):
    """Run the paper's faithfulness protocol during ``Trainer.test``.

    Args:
        methods: explanation methods (``explainers.METHODS``), one ``explain`` call each per batch.
        layer: module name in ``pl_module.net`` to explain at; None -> ``pl_module.explain_layer``.
        topk: number of top predictions explained (2: t1 and t2, as in the paper).
        contrasts, baselines, modes, maskings, threshold, max_batch: passed to PerturbationScore
            (allowed values: ``results.schema.AXES``).
        gradient_sign: also run GradientSignPerturbation (Figure 3) with ``steps`` and ``eps``.
        memory_budget_gib: GiB one gradient-sign chunk's autograd graph may take (None: no
            limit); 8 fits a 24 GB GPU with VGG-16-BN at 224 px and a data batch of 128.
        localization: run PartLocalization when batches carry part masks.
        num_figures: samples shown in the heat-map grids (0: no figures).
        curves: also run the faithfulness curves (docs/curves.md; off by default: about
            ``2 * 2 * len(contrasts) * curve_steps * len(curve_baselines)`` forwards per image
            and method). ``curve_steps`` fractions (both ends), ``curve_patch``: square side
            the map is averaged over (1: pixels), ``curve_baselines`` from blur, zeros, mean and
            road, ``road_noise``: the std of ROAD's imputation noise.
        output_dir: where results.json / report.md / run.json / figures go; None -> ``run_dir``
            when evaluate.py set it (``E/evaluate/version_<N>``), else the trainer's log dir.
        overwrite: evaluate.py replaces an earlier run's results in ``output_dir`` instead of
            refusing the folder (``cli/output_claim.py``).
        finer_gamma, finer_top, finer_alpha: the Finer-CAM contrasts' options (used when
            ``contrasts`` holds ``finer`` / ``finer_weighted``): ``finer = y_t - gamma * mean``
            of the ``top`` nearest logits; ``finer_weighted``'s comparison strength ``alpha``.
        random_logit: run the random-logit check (``metrics.random_logit``): the map of t1 vs
            the map of a random class s per sample, s seeded by the sample's dataset index and
            ``random_logit_seed``; s is one more target in each explain's backward (off by
            default: it adds half of the explain backward's rows).
        mprt: run the parameter-randomisation test (``metrics.parameter_randomisation``) on the
            test samples with a dataset index below ``mprt_samples``, cascading over every
            parameterised layer of the network (head first), re-initialised from ``mprt_seed``;
            one explain per method, sample and layer step (off by default).
    """

    def __init__(
        self,
        methods: Sequence[str] = ("gradcam", "linear_approx"),
        layer: str | None = None,
        topk: int = 2,
        contrasts: Sequence[str] = ("original", "weighted"),
        baselines: Sequence[str] = BASELINES,
        modes: Sequence[str] = MODES,
        maskings: Sequence[str] = MASKINGS,
        threshold: float | None = 0.1,
        max_batch: int = 256,
        gradient_sign: bool = True,
        steps: Sequence[int] = (1, 2, 10),
        eps: float = 3e-3,
        memory_budget_gib: float | None = 8.0,
        localization: bool = True,
        num_figures: int = 8,
        output_dir: str | None = None,
        overwrite: bool = False,
        finer_gamma: float = FINER_GAMMA,
        finer_top: int = FINER_TOP,
        finer_alpha: float = FINER_ALPHA,
        random_logit: bool = False,
        random_logit_seed: int = 0,
        mprt: bool = False,
        mprt_samples: int = 8,
        mprt_seed: int = 0,
        curves: bool = False,
        curve_steps: int = 20,
        curve_patch: int = 1,
        curve_baselines: Sequence[str] = ("blur",),
        road_noise: float = 0.01,
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
        self.contrasts = check_values("contrast", contrasts)
        self.baselines = check_values("baseline", baselines)
        self.modes = check_values("mode", modes)
        self.maskings = check_values("masking", maskings)
        self.threshold = threshold
        self.max_batch = max_batch
        self.gradient_sign = gradient_sign
        self.steps = tuple(steps)
        self.eps = eps
        self.memory_budget_gib = memory_budget_gib
        self.localization = localization
        self.num_figures = num_figures
        self.output_dir = output_dir
        self.overwrite = overwrite
        # Set by evaluate.py: what its --ckpt_path holds (run.json's "checkpoint").
        self.checkpoint_info: dict[str, Any] | None = None
        self.finer_gamma, self.finer_top, self.finer_alpha = finer_gamma, finer_top, finer_alpha
        with_options(self.contrasts, self.contrast_options())  # bad options fail here
        self.random_logit, self.random_logit_seed = random_logit, random_logit_seed
        self._batch_indices: list[list[int]] | None = None
        if mprt and mprt_samples < 1:
            raise ConfigError(f"ContrastiveEvaluation: mprt_samples={mprt_samples} must be >= 1.")
        self.mprt, self.mprt_samples, self.mprt_seed = mprt, mprt_samples, mprt_seed
        self._mprt_layers: tuple[str, ...] = ()
        if "road" in self.baselines:
            raise ConfigError("ContrastiveEvaluation: baseline 'road' is a curves baseline; give "
                              "it in curve_baselines (the masking uses blur, zeros, mean)")
        self.curves = curves
        self.curve_steps, self.curve_patch, self.road_noise = curve_steps, curve_patch, road_noise
        self.curve_baselines = check_values("baseline", curve_baselines)
        if curves:  # bad curve options fail before any work
            FaithfulnessCurves(self.methods[0], contrasts=self.contrasts,
                               **self._curve_options())
        self.step: EvaluationStep | None = None
        self.results: dict[str, float] = {}
        self._figures: list[dict[str, Any]] = []
        self._exemplars: ExemplarBuffer | None = None
        self._part_attributes: torch.Tensor | None = None
        self._net: InPrecision | None = None
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

    def contrast_options(self) -> dict[str, float]:
        """The function contrasts' options (``explainers.logit_contrasts.OPTIONS``)."""
        return {"gamma": self.finer_gamma, "top": self.finer_top, "alpha": self.finer_alpha}

    def evaluation_step(self, layer: str | None, mean: Sequence[float], std: Sequence[float],
                        reshape: str | Reshape | None = None) -> EvaluationStep:
        """The per-batch step with this callback's settings (the benchmarks build theirs here).

        ``layer``: the module explained, as the network passed to the step names it.
        """
        budget = self.memory_budget_gib
        return EvaluationStep(
            methods=self.methods, layer=layer, topk=self.topk, contrasts=self.contrasts,
            baselines=self.baselines, modes=self.modes, maskings=self.maskings,
            threshold=self.threshold, max_batch=self.max_batch, gradient_sign=self.gradient_sign,
            steps=self.steps, eps=self.eps,
            memory_budget=None if budget is None else int(budget * 2**30),
            localization=self.localization, mean=mean, std=std, reshape=reshape,
            contrast_options=self.contrast_options(), random_logit=self.random_logit,
            random_logit_seed=self.random_logit_seed,
            mprt_samples=self.mprt_samples if self.mprt else 0, mprt_layers=self._mprt_layers,
            mprt_seed=self.mprt_seed,
            curves=self._curve_options() if self.curves else None,
        )

    def _curve_options(self) -> dict[str, Any]:
        return {"steps": self.curve_steps, "patch": self.curve_patch,
                "baselines": self.curve_baselines, "road_noise": self.road_noise}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Resolve the output folder on every rank (before any rank-zero branch).

        ``trainer.log_dir`` and the broadcast are collectives under DDP: every rank calls them
        here, so the rank-zero writers at the end call none. All ranks use rank zero's folder.
        """
        local = self.output_dir or self.run_dir
        if local is None:
            local = trainer.log_dir or trainer.default_root_dir
        self._output_dir = Path(trainer.strategy.broadcast(str(local)))

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse inference mode, then build a fresh step (metrics) on the module's device."""
        if trainer.test_loop.inference_mode or torch.is_inference_mode_enabled():
            raise RunError(
                "ContrastiveEvaluation needs gradients during Trainer.test, but the trainer runs "
                "under torch.inference_mode. Create it with Trainer(inference_mode=False) "
                "(evaluate.py does this for you)."
            )
        for attr in ("net", "explain_layer"):
            if (attr == "net" or self.layer is None) and not hasattr(pl_module, attr):
                raise InputTypeError(
                    f"ContrastiveEvaluation: {type(pl_module).__name__} has no `{attr}`; use "
                    "lightning_modules.FineTuneClassifier or give `layer` explicitly."
                )
        layer = self.layer if self.layer is not None else pl_module.explain_layer
        find_module(pl_module.net, layer)  # an unknown name lists the layers as the user names them
        # the plain module (never the DDP wrapper), its forwards in the trainer's precision
        self._net = InPrecision(pl_module.net, trainer.precision_plugin.forward_context)
        self._layer = "net." + layer
        self._mprt_layers = tuple(cascade_layers(self._net)) if self.mprt else ()
        step = self.evaluation_step(self._layer, *self._data_stats(trainer),
                                    reshape=getattr(pl_module, "explain_reshape", None))
        self.step = step.set_state_dtype(pl_module.device).to(pl_module.device)
        self.results = {}
        self._figures = []
        self._exemplars = None
        self._part_attributes = None
        self._batch_indices = None
        if trainer.is_global_zero and self.num_figures > 0:
            self._exemplars = ExemplarBuffer(self.num_figures, self.threshold,
                                             *self._data_stats(trainer))

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
        """Run the evaluation step on the batch; keep the first samples for the figures."""
        assert self.step is not None and self._net is not None, "on_test_start builds the step"
        x, labels = batch[0], batch[1]
        part_masks = batch[2] if len(batch) > 2 else None
        if part_masks is not None and self.localization and self._part_attributes is None:
            # one host-to-device copy per run
            self._part_attributes = trainer.datamodule.part_attributes.to(x.device)
        indices = self._indices(trainer, batch_idx, dataloader_idx, x.shape[0]) if (
            self.random_logit or self.mprt or self.curves) else None
        explained = self.step.update(self._net, x, labels, part_masks, self._part_attributes,
                                     indices=indices)
        keep = 0
        if trainer.is_global_zero and self.num_figures > 0:
            keep = min(self.num_figures - sum(f["n"] for f in self._figures), x.shape[0])
        if keep > 0:
            last = explained[self.methods[-1]]
            self._figures.append({
                "n": keep, "images": x[:keep].detach().cpu(),
                "maps": {m: {c: v[:keep].detach().cpu() for c, v in res.maps.items()}
                         for m, res in explained.items()},
                "targets": last.targets[:keep].detach().cpu(),
                "labels": labels[:keep].detach().cpu(),
                "probs": last.probs.gather(1, last.targets)[:keep].detach().cpu(),
                "random": {m: ({c: v[:keep].detach().cpu() for c, v in maps.items()},
                               s[:keep].detach().cpu())
                           for m, (maps, s) in self.step.last_random.items()},
            })
        if self._exemplars is not None:
            last = explained[self.methods[-1]]
            self._exemplars.update(x, labels, last.targets, last.probs,
                                   {m: res.maps for m, res in explained.items()})

    def _indices(self, trainer: Trainer, batch_idx: int, dataloader_idx: int,
                 size: int) -> list[int]:
        """The batch's global dataset indices: the test loader's batch sampler replayed (it is
        sequential, or the distributed sampler's share of this rank, unshuffled), else this
        rank's running count interleaved across ranks as the distributed sampler deals them."""
        if self._batch_indices is None:
            loaders = trainer.test_dataloaders
            loader = loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders
            sampler = getattr(loader, "batch_sampler", None)
            self._batch_indices = [list(b) for b in sampler] if sampler is not None else []
            self._seen_host = 0
        start = self._seen_host
        self._seen_host += size
        if batch_idx < len(self._batch_indices) and len(self._batch_indices[batch_idx]) == size:
            return [int(i) for i in self._batch_indices[batch_idx]]
        rank, world = trainer.global_rank, trainer.world_size
        return [rank + world * i for i in range(start, start + size)]

    # ------------------------------------------------------------------------------- epoch end
    def compute_results(self) -> dict[str, float]:
        """Compute every metric (synchronised across ranks) into the flat ``eval/...`` dict."""
        assert self.step is not None, "on_test_start builds the step"
        return self.step.compute()

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute (every rank), log to every logger, then W&B tables and files on rank zero."""
        assert self.step is not None, "on_test_start builds the step"
        if self.mprt:
            self.step.finish(self._net)
        self.results = self.compute_results()  # collectives: every rank, same order
        self.written = []
        # Straight to the loggers (each logs on rank zero only): the values are final, already
        # reduced across ranks, and Lightning's self.log machinery costs ~3 ms per key (about 1 s
        # for the ~350 keys of the default protocol) for accumulation they do not need.
        for logger in trainer.loggers:
            logger.log_metrics(self.results, step=trainer.global_step)
        parts_used = self.step.parts_computed
        self.step.reset()
        if not trainer.is_global_zero:
            return
        # Rank zero only from here on: no collectives below (the output folder was agreed in
        # setup).
        figures = self._render_figures(trainer, parts_used)
        self._log_wandb(trainer, figures)
        self._write_outputs(trainer, pl_module, figures, parts_used)

    def _render_figures(self, trainer: Trainer, parts_used: bool) -> dict[str, bytes]:
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
        out.update(self._render_exemplars(trainer, dm, names, parts_used))
        out.update(curve_figures_png(self.results))  # none without curves
        out.update(self._render_sanity(cat, mean, std, names))
        return out

    def _render_sanity(self, cat: dict[str, torch.Tensor], mean: Sequence[float],
                       std: Sequence[float], names: Any) -> dict[str, bytes]:
        """``randomlogit_<method>`` (maps of t1 and of the random class s) and ``mprt_<method>``
        (the parameter-randomisation curves), when those checks ran."""
        out: dict[str, bytes] = {}
        for method in self.methods:
            if self.random_logit and self._figures and self._figures[0]["random"]:
                shown = [c for c in PAPER_CONTRASTS if c in self.contrasts] or list(
                    self.contrasts)
                maps_t = {c: torch.cat([f["maps"][method][c][:, 0] for f in self._figures])
                          for c in shown}
                maps_s = {c: torch.cat([f["random"][method][0][c] for f in self._figures])
                          for c in shown}
                s = torch.cat([f["random"][method][1] for f in self._figures])
                out[f"randomlogit_{method}"] = random_logit_grid_png(
                    cat["images"], maps_t, maps_s, cat["targets"][:, 0], s, mean, std, names,
                    title=f"{method}: random-logit check, maps of t1 and of a random class s")
            png = mprt_curves_png(self.results, method) if self.mprt else None
            if png is not None:
                out[f"mprt_{method}"] = png
        return out

    def _render_exemplars(self, trainer: Trainer, dm: Any, names: Any,
                          parts_used: bool) -> dict[str, bytes]:
        data = self._exemplars.collected() if self._exemplars is not None else None
        if data is None:
            return {}
        parts = getattr(dm, "part_names", None) if parts_used else None
        attrs = getattr(dm, "part_attributes", None) if parts_used else None
        caption = exemplar_caption(self.num_figures, self.threshold, trainer.world_size)
        return {
            f"exemplars_{method}": exemplar_figure_png(
                data, method, names, caption, parts, attrs,
                title=f"{method}: maps of t1 and t2, and correctly classified exemplars",
            )
            for method in self.methods
        }

    def _log_wandb(self, trainer: Trainer, figures: dict[str, bytes]) -> None:
        """Every one-run table as ``eval/table/<name>`` and every figure, on each W&B logger."""
        from PIL import Image

        for logger in trainer.loggers:
            if not isinstance(logger, WandbLogger):
                continue
            for table in run_tables(self.results):
                logger.log_table(key=media_key("table", table.name), columns=table.header,
                                 data=table.values())
            if self.curves:
                log_curve_plots(logger.experiment, self.results)
            for name, png in figures.items():
                kind, _, method = name.partition("_")
                logger.log_image(
                    key=media_key(kind, method), images=[Image.open(io.BytesIO(png))]
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
            "whynot_protocol": PROTOCOL_VERSION,
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
            **run_json_additions(self.described(trainer, pl_module), self.results,
                                 self.threshold),
        }

    def described(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        """What was run: the layer hooked, image size, checkpoint, pretrained, precision."""
        return what_was_run(self._layer.removeprefix("net."), getattr(trainer, "datamodule", None),
                            public_hparams(pl_module), self.checkpoint_info,
                            str(trainer.precision))

    def _write_outputs(self, trainer: Trainer, pl_module: LightningModule,
                       figures: dict[str, bytes], parts_used: bool) -> None:
        """Rank zero: results.json, report.md, figures, then run.json (each atomically)."""
        out = self.resolve_output_dir(trainer)
        write_results_json(out / RESULTS_FILE, self.results)
        dm = getattr(trainer, "datamodule", None)
        info = {
            "model": {"network": type(pl_module.net).__name__, **public_hparams(pl_module)},
            "data": type(dm).__name__ if dm is not None else "—",
            "data hyperparameters": public_hparams(dm),
            "ground-truth parts": getattr(dm, "part_names", "—") if parts_used else "—",
            "methods": list(self.methods),
            "evaluation": {k: v for k, v in self.settings().items()
                           if k not in ("methods", "output_dir")},
            "processes": trainer.world_size,
            **report_additions(self.described(trainer, pl_module), self.results, self.threshold),
        }
        atomic_write_text(out / "report.md", render_report(self.results, info))
        written = [out / RESULTS_FILE, out / "report.md"]
        for name, png in figures.items():
            path = out / "figures" / f"{name}.png"
            atomic_write_bytes(path, png)
            written.append(path)
        write_run_json(out / RUN_FILE, self.run_info(trainer, pl_module))
        self.written = [*written, out / RUN_FILE]


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
