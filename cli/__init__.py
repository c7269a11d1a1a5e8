"""The command-line application: train.py's and evaluate.py's LightningCLIs, run folders, loggers,
the console (one-line errors) and the empty-split check. Entry points: ``cli.train.main``,
``cli.evaluate.main``."""

from cli.moved import install as _install_moved_modules

_install_moved_modules()  # configs written before the move still name lightning_modules.loggers
