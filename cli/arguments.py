"""The command line before jsonargparse reads it: what a user types that the parser would refuse
with a message about types rather than about what they did.

- a single value for a list option (``--evaluation.methods gradcam``) is a one-element list;
- a ``--config`` file with a YAML syntax error is named with its line (the parser says only
  ``"<unicode string>", line 6``);
- an option placed before ``--config`` that the parser cannot read yet (``--data.root`` before
  the config that chooses the data module) gets the advice to move it.
"""

from __future__ import annotations

import collections.abc
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from errors import ConfigError

CONFIG = "--config"
_LIST_ORIGINS = (list, tuple, collections.abc.Sequence)
_NOT_OPTIONS = frozenset({CONFIG, "--print_config", "--help", "-h"})


def list_options(cls: type, prefix: str) -> set[str]:
    """``--<prefix>.<name>`` for every list- or tuple-typed argument of ``cls.__init__``."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # an annotation this Python cannot resolve: no shorthand
        return set()
    return {f"--{prefix}.{name}" for name, hint in hints.items()
            if typing.get_origin(hint) in _LIST_ORIGINS}


def _as_list(value: str) -> str:
    """``gradcam`` -> ``[gradcam]``; a list, ``null`` or an empty value is left as given."""
    text = value.strip()
    if not text or text.startswith("[") or text.lower() in ("null", "none"):
        return value
    return f"[{text}]"


def lists_from_single_values(argv: Sequence[str], options: Iterable[str]) -> list[str]:
    """``argv`` with each single value of a list option written as a one-element list."""
    options = set(options)
    out = list(argv)
    for i, token in enumerate(out):
        name, eq, value = token.partition("=")
        if name not in options:
            continue
        if eq:
            out[i] = f"{name}={_as_list(value)}"
        elif i + 1 < len(out) and not out[i + 1].startswith("--"):
            out[i + 1] = _as_list(out[i + 1])
    return out


def config_files(argv: Sequence[str]) -> list[str]:
    """The files given to ``--config`` (either form), in order."""
    files = []
    for i, token in enumerate(argv):
        if token == CONFIG and i + 1 < len(argv):
            files.append(argv[i + 1])
        elif token.startswith(CONFIG + "="):
            files.append(token.split("=", 1)[1])
    return files


def check_yaml_files(argv: Sequence[str]) -> None:
    """A ConfigError naming the file, line and column of the first YAML syntax error."""
    for name in config_files(argv):
        path = Path(name)
        if not path.is_file():
            continue  # the parser names a missing file itself
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"--config {name}:{where}: YAML syntax error: {problem}; fix "
                              "the file (a value with ': ' in it needs quotes).") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"--config {name}: cannot read the file ({err}).") from None


def options_before_config(argv: Sequence[str]) -> list[str]:
    """The ``--x.y`` options given before the first ``--config`` (none without a --config)."""
    tokens = list(argv)
    first = next((i for i, t in enumerate(tokens)
                  if t == CONFIG or t.startswith(CONFIG + "=")), None)
    if first is None:
        return []
    return [t.split("=", 1)[0] for t in tokens[:first]
            if t.startswith("--") and t.split("=", 1)[0] not in _NOT_OPTIONS]


def move_after_config_message(argv: Sequence[str], message: str) -> str | None:
    """The one-line message for a parse error caused by an option before ``--config`` (None when
    the error is about something else)."""
    early = options_before_config(argv)
    groups = {o[2:].split(".", 1)[0] for o in early}
    if not any(f'"{g}' in message or f"'{g}" in message or f"key {g}" in message
               for g in groups):
        return None
    names, them = " ".join(early), "it" if len(early) == 1 else "them"
    return (f"{names} came before --config, and options are read in the order given, before "
            f"the config has chosen the classes they belong to: move {them} after --config.")
