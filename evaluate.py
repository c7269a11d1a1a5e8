"""Evaluate a fine-tuned checkpoint with the paper's faithfulness protocol.

``python evaluate.py --config configs/experiments/X.yaml --ckpt_path PATH [--trainer.devices N]``
"""

from cli.usage import evaluate as main

if __name__ == "__main__":
    main()
