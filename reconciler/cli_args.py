"""The arguments of a plain ``plan`` or ``apply`` call, read without argparse.

Every app start runs ``reconciler apply MANIFEST`` and every pull request ``reconciler
plan MANIFEST``: for those shapes (the ones :mod:`reconciler.entry` recognises, and the
notebook's ``%reconcile``), importing argparse (with gettext, locale and shutil) and
building the command's parser cost more than the rest of reading the command line.
:func:`plain_arguments` gives the attributes argparse would give
(:mod:`reconciler.cli_parser`; a test compares both for every shape it accepts), or
None for anything else, which argparse then parses: help, errors, abbreviations,
values that look like options and every other command keep argparse's behaviour.
"""

from __future__ import annotations

import sys
from pathlib import Path

# typing is not imported at run time here (cli.py imports what it needs).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

__all__ = ["Arguments", "parse_arguments", "plain_arguments"]

#: The options every command has (reconciler.cli_parser._common), by attribute.
_COMMON = {
    "-q": "quiet",
    "--quiet": "quiet",
    "-v": "verbose",
    "--verbose": "verbose",
    "--notebook": "notebook",
}
#: Each command's own flags read here, by attribute.
_FLAGS = {
    "plan": {"--json": "json", "--detailed-exitcode": "detailed_exitcode"},
    # The lifecycle script's `apply --background --wait S`, and the apply it starts.
    "apply": {"--background": "background", "--detached": "detached"},
}
#: Each command's own options with a value read here.
_VALUES = {"plan": ("--env", "--env-prefix"), "apply": ("--env", "--lock-timeout", "--wait")}


def _defaults(command: str) -> dict[str, Any]:
    """What the command's subparser sets when an option is not given (cli_parser)."""
    if command == "plan":
        return {
            "manifest": None,
            "env": [],
            "env_prefix": None,
            "json": False,
            "out": None,
            "detailed_exitcode": False,
            "locked": False,
        }
    return {
        "manifest": None,
        "env": [],
        "plan": None,
        "json": False,
        "partial": False,
        "lock_timeout": 300.0,
        "background": False,
        "wait": 0.0,
        "detached": False,
        "locked": False,
    }


class Arguments:
    """What an ``argparse.Namespace`` holds: one attribute per option (``vars()`` of
    both compare equal for the same command line)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Arguments({self.__dict__!r})"


def parse_arguments(
    argv: Sequence[str] | None,
    handlers: Mapping[str, Callable[..., int]],
    parser: Callable[[], Any],
) -> Any:
    """The command line's values: :func:`plain_arguments`, else what argparse gives
    (``parser()``: cli.py's lazy parser) for anything else."""
    plain = plain_arguments(sys.argv[1:] if argv is None else argv, handlers)
    return plain if plain is not None else parser().parse_args(argv)


def plain_arguments(
    argv: Sequence[str], handlers: Mapping[str, Callable[..., int]]
) -> Arguments | None:
    """``[--state-dir D] [-q|-v|--notebook]... plan|apply MANIFEST`` and the options
    listed above (``--opt VALUE`` or ``--opt=VALUE``; common options before or after
    the command), or None. ``handlers`` maps ``plan`` and ``apply`` to their functions
    (argparse's ``func``)."""
    top: dict[str, Any] = {"state_dir": None, "verbose": False, "quiet": False, "notebook": False}
    command = ""
    own: dict[str, Any] = {}
    given: dict[str, Any] = {}  # common options after the command (argparse: they win)
    it = iter(argv)
    for arg in it:
        if arg in _COMMON:
            (given if command else top)[_COMMON[arg]] = True
            continue
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name == "--state-dir" or (command and name in _VALUES[command]):
            value = inline if eq else next(it, None)
            if not value or value.startswith("-"):
                return None  # argparse says what is missing (or reads it its own way)
            if name == "--state-dir":
                (given if command else top)["state_dir"] = Path(value)
            elif name == "--env":
                own["env"] = [*own["env"], value]
            elif name == "--env-prefix":
                own["env_prefix"] = Path(value)
            else:  # --lock-timeout, --wait: cli_parser.seconds
                try:
                    number = float(value)
                except ValueError:
                    return None  # argparse says it is not a number of seconds
                if not (0 <= number < float("inf")):
                    return None  # nor this
                own[name[2:].replace("-", "_")] = number
            continue
        if eq:
            return None
        if not command:
            if arg not in _VALUES:
                return None
            command = arg
            own = _defaults(command)
        elif arg in _FLAGS[command]:
            own[_FLAGS[command][arg]] = True
        elif arg and not arg.startswith("-") and own["manifest"] is None:
            own["manifest"] = Path(arg)
        else:
            return None
    if not command or own["manifest"] is None:
        return None
    return Arguments({**top, **given, "command": command, **own, "func": handlers[command]})
