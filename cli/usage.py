"""What train.py and evaluate.py say about themselves, and their entry points.

A bare ``python train.py`` / ``python evaluate.py`` answers with its help text at once: nothing
here imports torch or Lightning (about 13 s on a 2-core machine), which the command only needs
once it has arguments to run (``cli.train``, ``cli.evaluate``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from cli.console import DEBUG_ENV

TRAIN_HELP = f"""\
Fine-tune an image classifier (fit), then measure it on the validation or test split (validate,
test). Everything a run writes goes under trainer.default_root_dir, E (the configs use
outputs/<experiment>): E/checkpoints/{{last,best-*}}.ckpt and E/<fit|validate|test>/version_N/
(config.yaml, metrics.csv, hparams.yaml); with W&B also E/wandb/.

examples:
  python train.py fit --config configs/synthetic.yaml        # CPU demo: tiny_vgg, synthetic set
  python train.py fit --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011
  python train.py test --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011 --ckpt_path last
  python train.py fit --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011 --config configs/trainer/ddp.yaml --trainer.devices 4

--config FILE reads a YAML (repeat it to compose presets: configs/{{data,model,trainer,logger}}/);
any key is set with --section.key VALUE. `python train.py fit --help` lists every option.
{DEBUG_ENV}=1 shows the traceback behind an error message.
"""

_STAGE_TAIL = " Examples and the output layout: `python train.py --help`."
STAGE_HELP = {
    "fit": "Fine-tune: E/checkpoints/last.ckpt every epoch, best-*.ckpt by val/acc, logs in "
           "E/fit/version_N; --ckpt_path last resumes." + _STAGE_TAIL,
    "validate": "Loss and accuracy on the validation split (E/validate/version_N); "
                "--ckpt_path last|best|PATH." + _STAGE_TAIL,
    "test": "Loss and accuracy on the test split (E/test/version_N); "
            "--ckpt_path last|best|PATH." + _STAGE_TAIL,
    "predict": "Logits of the test split (no outputs are written)." + _STAGE_TAIL,
}

EVALUATE_HELP = f"""\
Evaluate a fine-tuned checkpoint with the faithfulness protocol of "Why Not Other Classes?":
explain every test image with each method (original and weighted contrast), perturb it
(masking/blurring, gradient sign) and measure r_t; part localisation where the data has parts.
Prints the paper's tables and writes results.json, report.md, run.json, figures/, config.yaml and
metrics.csv to E/evaluate/version_N (E = trainer.default_root_dir, outputs/<experiment> in the
configs; --evaluation.output_dir D moves the results), with W&B also to E/wandb/.

examples:
  python evaluate.py --config configs/synthetic.yaml \\
      --ckpt_path outputs/synthetic/checkpoints/last.ckpt
  python evaluate.py --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011 --ckpt_path outputs/cub200_vgg16_bn/checkpoints/last.ckpt
  python evaluate.py --config configs/experiments/cub200_vgg16_bn.yaml \\
      --data.root /data/CUB_200_2011 --ckpt_path PATH \\
      --config configs/trainer/ddp.yaml --trainer.devices 4 --evaluation.methods '[gradcam]'

--config FILE reads an experiment YAML (the one train.py used; repeat it to add presets such as
configs/logger/wandb.yaml); --evaluation.* sets the protocol. `python evaluate.py --help` lists
every option with its default; --print_config shows the settings a command would run with.
{DEBUG_ENV}=1 shows the traceback behind an error message.
"""


def require_arguments(help_text: str, args: Sequence[str] | None) -> list[str]:
    """The command's arguments (``sys.argv[1:]`` when ``None``); none: the help on stderr, exit 2
    (the shell's code for a command used wrongly)."""
    argv = list(sys.argv[1:] if args is None else args)
    if not argv:
        sys.stderr.write(help_text)
        raise SystemExit(2)
    return argv


def train(args: Sequence[str] | None = None) -> Any:
    """train.py: the help for no arguments, else ``cli.train.main``."""
    require_arguments(TRAIN_HELP, args)
    from cli.train import main

    return main(None if args is None else list(args))


def evaluate(args: Sequence[str] | None = None) -> Any:
    """evaluate.py: the help for no arguments, else ``cli.evaluate.main``."""
    require_arguments(EVALUATE_HELP, args)
    from cli.evaluate import main

    return main(None if args is None else list(args))
