"""Sweeps: fit + evaluate many experiments (resumable, locally or as SLURM scripts) and gather
their results into the paper's tables (markdown, LaTeX, CSV, W&B) beside the published numbers.

``sweep.py`` is the entry point (``sweeps.commands.sweep_main``); ``python -m sweeps report
RUN_DIRS...`` the report alone (``sweeps.paper_report.write_report``). Nothing heavy is imported
here: ``python -m sweeps check`` runs once per step in the generated scripts.
"""
