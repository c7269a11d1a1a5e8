"""The LightningCLI behind evaluate.py: experiment YAMLs + the evaluation callback's arguments."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from rich.console import Console

from callbacks.contrastive_evaluation import ContrastiveEvaluation
from callbacks.report import rich_paper_tables

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "evaluation" / "default.yaml"


class EvaluationCLI(LightningCLI):
    """``--config <experiment>.yaml --ckpt_path PATH [--evaluation.* ...] [--trainer.* ...]``.

    Reuses the experiment YAMLs of train.py (top-level seed_everything/trainer/model/data), adds
    the ``evaluation`` group (ContrastiveEvaluation, defaults from configs/evaluation/default.yaml)
    and ``ckpt_path``, and forces ``trainer.inference_mode=False`` (the explainers need gradients).
    """

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        from lightning_modules import FineTuneClassifier

        parser_kwargs = kwargs.pop("parser_kwargs", {})
        parser_kwargs.setdefault("default_config_files", [str(DEFAULT_CONFIG)])
        super().__init__(
            FineTuneClassifier,
            LightningDataModule,
            subclass_mode_data=True,
            run=False,
            args=args,
            parser_kwargs=parser_kwargs,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"inference_mode": False},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """The evaluation callback's arguments, ``ckpt_path`` and the class-count link."""
        parser.add_lightning_class_args(ContrastiveEvaluation, "evaluation")
        parser.add_argument(
            "--ckpt_path", type=str | None, default=None,
            help="checkpoint of the fine-tuned model to evaluate (from train.py)",
        )
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")

    def before_instantiate_classes(self) -> None:
        """Force gradients on and ask the data for part masks when localisation is on."""
        config = self.config
        if config.trainer.get("inference_mode") is True:
            warnings.warn(
                "evaluate.py: trainer.inference_mode=True ignored; the explainers need "
                "gradients, so evaluation runs with inference_mode=False.",
                stacklevel=2,
            )
        config.trainer.inference_mode = False
        if config.evaluation.localization and config.data is not None:
            data_cls = _resolve_class(config.data.class_path)
            params = inspect.signature(data_cls.__init__).parameters
            # keep an explicit choice ("parts", "box" on CUB); only switch ground truth on
            if "with_ground_truth" in params and not config.data.init_args.get("with_ground_truth"):
                config.data.init_args.with_ground_truth = True


def _resolve_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def evaluation_callback(cli: LightningCLI) -> ContrastiveEvaluation:
    """The ContrastiveEvaluation instance among the trainer's callbacks."""
    for cb in cli.trainer.callbacks:
        if isinstance(cb, ContrastiveEvaluation):
            return cb
    raise RuntimeError("evaluate.py: no ContrastiveEvaluation callback on the trainer.")


def main(args: list[str] | None = None) -> dict[str, float]:
    """Parse, run ``Trainer.test`` with the callback, print the paper-layout tables (rank zero)."""
    cli = EvaluationCLI(args=args)
    ckpt_path = cli.config.get("ckpt_path")
    if ckpt_path is None:
        warnings.warn(
            "evaluate.py: no --ckpt_path given; evaluating the model as initialised.", stacklevel=2
        )
    elif not Path(ckpt_path).is_file():
        raise FileNotFoundError(
            f"evaluate.py: checkpoint {ckpt_path!r} does not exist; pass the .ckpt written by "
            "train.py (e.g. outputs/<run>/checkpoints/last.ckpt) as --ckpt_path."
        )
    # verbose=False: Lightning's own table would list every eval key; ours is the paper's layout.
    cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, verbose=False)
    results = evaluation_callback(cli).results
    if cli.trainer.is_global_zero:
        console = Console()
        if not console.is_terminal:  # logs and pipes: keep the 15 columns unwrapped
            console.width = max(console.width, 200)
        for table in rich_paper_tables(results):
            console.print(table)
        out = evaluation_callback(cli).resolve_output_dir(cli.trainer)
        console.print(f"results.json, report.md and figures/ written to {out}")
    return results
