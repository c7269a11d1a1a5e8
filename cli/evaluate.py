"""The LightningCLI behind evaluate.py: experiment YAMLs + the evaluation callback's arguments."""

from __future__ import annotations

import inspect
import warnings
from contextlib import nullcontext
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningArgumentParser
from rich.console import Console

from callbacks.contrastive_evaluation import ContrastiveEvaluation
from cli.arguments import list_options
from cli.base import DEFAULT_ROOT, WhynotCLI
from cli.console import ignore_warning, run_main
from cli.loggers import resolve_class, wandb_run_notes
from cli.output_claim import OutputClaim, check_creatable
from cli.run_dir import existing
from cli.split_check import RequireNonEmptySplit
from cli.usage import EVALUATE_HELP, require_arguments
from errors import RunError
from lightning_modules.backbones import require_trained_head
from lightning_modules.checkpoints import CheckpointInfo, inspect_checkpoint
from results.run_tables import console_tables
from results.schema import GRADIENT_SIGN
from results.tables import CONSOLE_WIDTH

# Evaluation deliberately attaches none of the training callbacks whose state the checkpoint holds.
_TRAINING_CALLBACKS_ADVICE = r"Be aware that when using `ckpt_path`, callbacks used to create"
GRADIENT_COUNT = f"eval/count/{GRADIENT_SIGN}"


class EvaluationCLI(WhynotCLI):
    """``--config <experiment>.yaml --ckpt_path PATH [--evaluation.* ...] [--trainer.* ...]``.

    Reuses the experiment YAMLs of train.py (top-level seed_everything/trainer/model/data), adds
    the ``evaluation`` group (ContrastiveEvaluation; its signature holds the defaults)
    and ``ckpt_path``, forces ``trainer.inference_mode=False`` (the explainers need gradients) and
    attaches no training callbacks (no checkpointing, no reseeding).
    """

    prog = "evaluate.py"
    help_text = EVALUATE_HELP

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        from lightning_modules import FineTuneClassifier

        ignore_warning(_TRAINING_CALLBACKS_ADVICE, UserWarning)
        parser_kwargs = dict(kwargs.pop("parser_kwargs", None) or {})
        super().__init__(
            FineTuneClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            run=False,
            args=args,
            parser_kwargs=parser_kwargs,
            trainer_defaults={"inference_mode": False, "enable_checkpointing": False,
                              "default_root_dir": DEFAULT_ROOT},
            **kwargs,
        )

    @property
    def stage(self) -> str:
        """Evaluation runs are ``E/evaluate/version_<N>``."""
        return "evaluate"

    def list_options(self) -> set[str]:
        """The evaluation's and the model's list options take a single value too."""
        from lightning_modules import FineTuneClassifier

        return (list_options(ContrastiveEvaluation, "evaluation")
                | list_options(FineTuneClassifier, "model"))

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """The evaluation callback's arguments, ``ckpt_path`` and the class-count link."""
        parser.add_lightning_class_args(ContrastiveEvaluation, "evaluation")
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None,
            help="checkpoint of the fine-tuned model to evaluate (from train.py)",
        )
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.image_size", "model.image_size", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Run folder and loggers; gradients on, no checkpointing, part masks for localisation."""
        super().before_instantiate_classes()
        config = self.config
        self.checkpoint: CheckpointInfo | None = None
        if config.get("ckpt_path") is not None:
            self.checkpoint = inspect_checkpoint(config.ckpt_path)
            # the checkpoint replaces every weight: the configured pretrained ones are never read
            # (nor needed in the cache)
            config.model.pretrained = None
        if config.evaluation.output_dir is not None:
            check_creatable(config.evaluation.output_dir, "--evaluation.output_dir")
        if config.trainer.get("inference_mode") is True:
            warnings.warn(
                "evaluate.py: trainer.inference_mode=True ignored; the explainers need "
                "gradients, so evaluation runs with inference_mode=False.",
                stacklevel=2,
            )
        config.trainer.inference_mode = False
        config.trainer.enable_checkpointing = False  # evaluation writes no checkpoints
        if config.evaluation.localization and config.data is not None:
            data_cls = resolve_class(config.data.class_path)
            # only data with part masks, and keep an explicit choice ("parts", "box" on CUB)
            if (data_cls is not None and getattr(data_cls, "has_ground_truth", False)
                    and "with_ground_truth" in inspect.signature(data_cls.__init__).parameters
                    and not config.data.init_args.get("with_ground_truth")):
                config.data.init_args.with_ground_truth = True

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """The trainer with the evaluation callback and the empty-split check, nothing else."""
        extra = kwargs.pop("callbacks", [])
        return super().instantiate_trainer(
            callbacks=[*self.configured_callbacks(), *extra, RequireNonEmptySplit(self.prog)],
            **kwargs)

    def after_instantiate_classes(self) -> None:
        """Tell the evaluation callback its run folder (the default for ``output_dir``) and the
        checkpoint it evaluates."""
        self.evaluation.run_dir = self.run.path
        self.evaluation.checkpoint_info = (self.checkpoint.as_json() if self.checkpoint
                                           else None)

    @property
    def evaluation(self) -> ContrastiveEvaluation:
        """The ContrastiveEvaluation instance among the trainer's callbacks."""
        for cb in self.trainer.callbacks:
            if isinstance(cb, ContrastiveEvaluation):
                return cb
        raise RunError("no ContrastiveEvaluation callback on the trainer.")

    def evaluate(self) -> dict[str, float]:
        """``Trainer.test`` with the callback; print the tables and what was written (rank 0)."""
        ckpt_path = self.config.get("ckpt_path")
        pretrained = getattr(self.model, "hparams", {}).get("pretrained")
        if ckpt_path is None and pretrained is not None:
            require_trained_head(self.model.net, pretrained, self.model.hparams.num_classes)
            self.say(f"no --ckpt_path given; evaluating the weights of {pretrained}.")
        elif ckpt_path is None:
            self.say("no --ckpt_path given; evaluating the model as initialised.", warning=True)
        with self.removing_unused_run_dir(), self._claim_output_dir():
            # verbose=False: Lightning's table would list every eval key; ours is the paper's.
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=ckpt_path,
                              verbose=False)
            results = self.evaluation.results
            if not results:  # every rank holds the same (reduced) results
                raise RunError(
                    "the test loop ran no batch, so nothing was measured and no results were "
                    "written (limit_test_batches=0?).")
            if self.is_rank_zero():
                self._print(results)
                self._notice_empty_selection(results)
        return results

    def _claim_output_dir(self) -> Any:
        """Rank zero claims the output folder (``cli.output_claim``) before the first batch; the
        other ranks, started by rank zero, only check it."""
        out = self.evaluation.resolve_output_dir(self.trainer)
        option = ("--evaluation.output_dir" if self.evaluation.output_dir is not None
                  else "--trainer.default_root_dir")
        if not self.is_rank_zero():
            check_creatable(out, option)
            return nullcontext()
        # The claim's lock file makes the folder non-empty before the CSV logger writes to it;
        # an earlier run's files were refused or cleared by the claim, so the warning is ours.
        ignore_warning(r"Experiment logs directory .* exists and is not empty", UserWarning)
        return OutputClaim(out, option, overwrite=bool(getattr(self.evaluation, "overwrite",
                                                                False)))

    def _notice_empty_selection(self, results: dict[str, float]) -> None:
        """One line when the sample selection left the perturbation tables empty."""
        counts = [v for k, v in results.items()
                  if k.startswith("eval/count/") and k.count("/") == 2 and k != GRADIENT_COUNT]
        threshold = self.evaluation.threshold
        if counts and not any(counts) and threshold is not None:
            self.say(f"no test sample passed --evaluation.threshold {threshold} (a sample needs "
                     f"p_t2 > {threshold}), so the perturbation and localisation tables are "
                     "empty (null in results.json); lower it, or pass --evaluation.threshold "
                     "null to take every sample.", warning=True)

    def _print(self, results: dict[str, float]) -> None:
        console = Console()
        if not console.is_terminal:  # logs and pipes: rich would guess 80 columns
            console.width = CONSOLE_WIDTH
        for table in console_tables(results, width=max(console.width, 60)):
            console.print(table)
        out = self.evaluation.resolve_output_dir()
        written = existing(self.evaluation.written)
        if not written or written[0].name != "results.json":
            raise RunError(f"{out / 'results.json'} was not written.")
        names = ", ".join(str(p.relative_to(out)) for p in written)
        lines = [f"evaluate.py finished: {names} in {out}"]
        run_files = [p.name for p in existing([self.run.path / "config.yaml",
                                               self.run.path / "metrics.csv"])]
        if run_files and self.run.path.resolve() != out.resolve():
            lines.append(f"run folder: {self.run.path} ({', '.join(run_files)})")
        lines += wandb_run_notes(self.trainer.loggers)
        print("\n".join(lines), flush=True)


def main(args: list[str] | None = None) -> dict[str, float]:
    """Parse, run ``Trainer.test`` with the callback, print the paper-layout tables (rank zero)."""
    require_arguments(EVALUATE_HELP, args)
    return run_main(EvaluationCLI.prog, lambda: EvaluationCLI(args=args).evaluate())
