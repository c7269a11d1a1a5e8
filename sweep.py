"""Fit then evaluate a set of experiments (resumable), then gather the paper's tables.

``python sweep.py --data_root /data [--experiments ...] [--trainer.devices 4 ...]``;
``--slurm`` writes a SLURM array script instead; ``python -m sweeps report RUN_DIRS...``.
"""

import sys

from sweeps.commands import sweep_main

if __name__ == "__main__":
    sys.exit(sweep_main())
