"""whynot's own errors: the messages meant for the user, as one exception family.

The CLIs print a :class:`WhynotError` as one line (``<prog>: error: <message>``, exit code 1)
and keep the traceback of anything else, which is a bug to report (``WHYNOT_DEBUG=1`` shows
every traceback). Each subclass also derives from the built-in exception a caller would catch
(``except ValueError`` keeps working), so the family can be raised from any layer, the
torch-only ``explainers`` included.
"""

from __future__ import annotations


class WhynotError(Exception):
    """A message for the user that names the value, the file and the fix."""


class ConfigError(WhynotError, ValueError):
    """A bad option, argument or file content (an unknown method, a class count that differs)."""


class InputTypeError(WhynotError, TypeError):
    """An argument of the wrong kind (float targets, a module without ``net``)."""


class MissingFileError(WhynotError, FileNotFoundError):
    """A file or folder the run needs is not there (data, checkpoint, weights)."""


class RunError(WhynotError, RuntimeError):
    """The run cannot go on, or went on and measured nothing."""
