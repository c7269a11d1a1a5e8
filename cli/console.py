"""What train.py and evaluate.py print: whynot's errors as one message, no library chatter.

``quiet_libraries()`` silences, by message and category, the lines that do not concern the user
(Lightning's advertising tips, a deprecation inside Lightning, the tensorboardX note); warnings a
user can act on stay. ``run_main`` shows whynot's own errors (``errors.WhynotError``: missing
data, a bad option, a class mismatch, a missing checkpoint ...) as their message alone, exit code
1; anything else keeps its traceback. ``WHYNOT_DEBUG=1`` shows the traceback of every error.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import TypeVar

from errors import WhynotError

T = TypeVar("T")

DEBUG_ENV = "WHYNOT_DEBUG"

# (message regex, category): each one a line that Lightning or torch print on every run and that
# asks nothing of the user.
LIBRARY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # torch 2.14 deprecates a class Lightning's own _pytree helper still builds.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # logger=True without tensorboard; the CLIs always configure their loggers, this is a guard.
    (r"Starting from v1\.9\.0, `tensorboardX` has been removed", UserWarning),
)
LIBRARY_INFO_PREFIXES = ("💡 Tip:",)  # Lightning advertising litlogger / litmodels
RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _DropInfo(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.prefixes)


def ignore_warning(message: str, category: type[Warning]) -> None:
    """Ignore warnings of ``category`` whose text matches the regex ``message`` (and no other)."""
    warnings.filterwarnings("ignore", message=message, category=category)


def quiet_libraries() -> None:
    """Install the narrow filters above (idempotent)."""
    for message, category in LIBRARY_WARNINGS:
        ignore_warning(message, category)
    logger = logging.getLogger(RANK_ZERO_LOGGER)
    if not any(isinstance(f, _DropInfo) for f in logger.filters):
        logger.addFilter(_DropInfo(LIBRARY_INFO_PREFIXES))


def error_message(prog: str, err: BaseException) -> str:
    """``<prog>: error: <message>`` plus how to see the traceback."""
    text = str(err) or type(err).__name__
    if isinstance(err, KeyError):  # str(KeyError) wraps the message in quotes
        text = str(err.args[0]) if err.args else text
    return (f"{prog}: error: {text}\n"
            f"({DEBUG_ENV}=1 shows the traceback.)")


def run_main(prog: str, fn: Callable[[], T]) -> T:
    """Run ``fn``; whynot's own errors end the process with their message and exit code 1."""
    try:
        return fn()
    except Exception as err:
        own = whynot_cause(err)
        if os.environ.get(DEBUG_ENV, "") not in ("", "0") or own is None:
            raise
        sys.stdout.flush()
        print(error_message(prog, own), file=sys.stderr)
        raise SystemExit(1) from None


def whynot_cause(err: BaseException) -> WhynotError | None:
    """``err`` or the WhynotError it wraps: jsonargparse re-raises an error of a class's
    ``__init__`` in subclass mode (``--data.*``) as its own ValueError listing every Union
    subtype, with ours as the cause."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, WhynotError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
