"""The command line's arguments: every command, option and help text (:mod:`reconciler.cli`
runs them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import __version__

__all__ = ["USAGE_EXIT", "Fill", "Handler", "build_parser", "env_prefix_option"]

#: A usage error exits 1, as any error does (2 means "changes pending").
USAGE_EXIT = 1

Handler = Callable[[argparse.Namespace], int]
#: Adds one command's own arguments to its subparser.
Fill = Callable[[argparse.ArgumentParser], None]

if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    _SubParsers = argparse._SubParsersAction

_LOCKED_HELP = "a missing or stale lock file is an error (exit 1) instead of a fresh resolve"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 (2 means "changes pending" under
    ``--detailed-exitcode``, as in Terraform)."""

    def error(self, message: str) -> Any:  # argparse's signature is NoReturn
        self.print_usage(sys.stderr)
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message}\n")


_ENV_HELP = "only this environment of the manifest (repeatable; default: all)"
_MANIFEST_HELP = "the manifest file (YAML, version: 1)"
_ENV_PREFIX_HELP = "the environment whose prefix is PATH (a kernel's sys.prefix), instead of --env"


def seconds(text: str) -> float:
    """``--lock-timeout``'s and ``--wait``'s value: a number of seconds, 0 or more (not
    nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text!r}")
    return value


def env_prefix_option(parser: argparse.ArgumentParser) -> None:
    """``--env-prefix PATH``: how the notebook shim names the kernel's environment."""
    parser.add_argument("--env-prefix", type=Path, metavar="PATH", help=_ENV_PREFIX_HELP)


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=default,
        metavar="DIR",
        help="state directory (env RECONCILER_STATE_DIR; default ~/.local/state/reconciler)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="more detail (satisfied requirements, resolver messages)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print only errors and the summary line",
    )
    parser.add_argument(
        "--notebook",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="output for a notebook cell: progress without timestamps (%%reconcile)",
    )


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help=_MANIFEST_HELP)


def _plan_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help=_MANIFEST_HELP)
    p.add_argument("--env", action="append", default=[], metavar="NAME", help=_ENV_HELP)
    env_prefix_option(p)
    p.add_argument("--json", action="store_true", help="print plan.v1 JSON")
    p.add_argument("--out", type=Path, metavar="FILE", help="save the plan for `apply --plan`")
    p.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when changes are pending"
    )
    p.add_argument("--locked", action="store_true", help=_LOCKED_HELP)


def _apply_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "manifest", type=Path, nargs="?", help=_MANIFEST_HELP + " (default with --plan: its own)"
    )
    p.add_argument("--env", action="append", default=[], metavar="NAME", help=_ENV_HELP)
    p.add_argument("--plan", type=Path, metavar="FILE", help="execute a plan saved by plan --out")
    p.add_argument("--json", action="store_true", help="print the plan with each result")
    p.add_argument(
        "--partial", action="store_true", help="apply the environments that have no refused change"
    )
    p.add_argument(
        "--lock-timeout",
        type=seconds,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for another apply on the same environment (300)",
    )
    p.add_argument(
        "--background",
        action="store_true",
        help="run the apply detached (its own session); wait up to --wait seconds",
    )
    p.add_argument(
        "--wait",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help="with --background: how long to wait before returning (0)",
    )
    p.add_argument("--detached", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--locked", action="store_true", help=_LOCKED_HELP)


def _lock_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help=_MANIFEST_HELP)
    p.add_argument("--env", action="append", default=[], metavar="NAME", help=_ENV_HELP)
    upgrade = p.add_mutually_exclusive_group()
    upgrade.add_argument("--upgrade", action="store_true", help="resolve everything afresh")
    upgrade.add_argument("--upgrade-package", nargs="+", default=[], metavar="NAME",
                         help="resolve these afresh, keep the other locked versions")  # fmt: skip


def _lifecycle_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help=_MANIFEST_HELP)
    p.add_argument(
        "--budget",
        type=int,
        default=240,
        metavar="SECONDS",
        help="how long the script waits for the apply before it returns (240)",
    )
    p.add_argument(
        "--base64",
        action="store_true",
        help="print what create-studio-lifecycle-config --studio-lifecycle-config-content takes",
    )
    p.add_argument(
        "--manifest-path",
        metavar="PATH",
        help="read the manifest from this path on the home volume instead of embedding it",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--index-url", metavar="URL", help="install reconciler from this index")
    source.add_argument(
        "--wheel",
        metavar="PATH",
        help="install reconciler offline from this wheel or wheelhouse directory",
    )
    p.add_argument(
        "--python",
        default="python3",
        metavar="PYTHON",
        help="interpreter that creates reconciler's own venv (python3)",
    )
    p.add_argument("--locked", action="store_true", help="the script applies with --locked")


def _bundle_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, help="the directory to write the wheels into")
    for flag, meta, text in (
        (
            "--python-version",
            "X.Y",
            "target interpreter (default: 3.12, SageMaker's, and this one)",
        ),
        ("--platform", "TAG", "target platform (default: manylinux_2_28_x86_64 and older)"),
        ("--index-url", "URL", "download from this index (default: PyPI)"),
    ):
        p.add_argument(flag, metavar=meta, help=text)
    p.add_argument("--find-links", action="append", default=[], metavar="PATH_OR_URL",
                   help="also look for wheels here (repeatable)")  # fmt: skip
    p.add_argument("--no-index", action="store_true", help="use only --find-links")


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", type=Path, nargs="?", default=Path(".demo"), help="where (.demo)")


def _status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the status file as JSON")


def _drift_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help=_MANIFEST_HELP)
    p.add_argument("--env", action="append", default=[], metavar="NAME", help=_ENV_HELP)
    env_prefix_option(p)
    p.add_argument("--json", action="store_true", help="print drift.v1 JSON")
    p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when drift is found")


def _baseline_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=("capture", "show"),
        help="capture: record what is installed now as the managed set; show: print it",
    )
    p.add_argument("manifest", type=Path, help=_MANIFEST_HELP)
    p.add_argument("--env", action="append", default=[], metavar="NAME", help=_ENV_HELP)
    p.add_argument("--json", action="store_true", help="print the baselines as JSON")
    p.add_argument(
        "--force",
        action="store_true",
        help="capture: replace an existing baseline (without it, capture says what would change)",
    )


class _Commands(_SubParsers):
    """The subcommands. With ``lazy``, a command's subparser is made, with its arguments,
    when argparse selects it: making all thirteen (each a parser, its help formatters and
    translations) cost more than the parse itself, and a run parses one command. The
    listing in ``reconciler --help`` and the "invalid choice" error need only the names
    and help lines, which every command has from the start: the texts are the same."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[str, Callable[[], argparse.ArgumentParser]] = {}

    def add_later(
        self, name: str, help_text: str, make: Callable[[], argparse.ArgumentParser]
    ) -> None:
        """What ``add_parser(name, help=help_text)`` records, the parser left to ``make``."""
        self._choices_actions.append(self._ChoicesPseudoAction(name, (), help_text))
        self._name_parser_map[name] = None  # type: ignore[assignment]  # made by __call__
        self.pending[name] = make

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        make = self.pending.pop(values[0], None)
        if make is not None:
            self._name_parser_map[values[0]] = make()
        super().__call__(parser, namespace, values, option_string)


def build_parser(handlers: Mapping[str, Handler], *, lazy: bool = False) -> argparse.ArgumentParser:
    """The argument parser; ``handlers`` maps each command to its function in
    :mod:`reconciler.cli` (``edit``: add, remove and adopt). With ``lazy``, only the
    command being parsed gets its arguments (enough for one ``parse_args``)."""
    parser = _Parser(
        prog="reconciler",
        description="Apply a declarative environment manifest without breaking the managed image.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"reconciler {__version__}",
        help="print the version and exit",
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(
        action=_Commands, dest="command", metavar="COMMAND", help="what to do"
    )
    sub.required = True
    assert isinstance(sub, _Commands)

    def command(name: str, help_text: str, fill: Fill) -> None:
        def fill_in(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
            _common(p, suppress=True)
            fill(p)
            p.set_defaults(func=handlers[name if name in handlers else "edit"])
            return p

        if not lazy:
            fill_in(sub.add_parser(name, help=help_text, description=help_text))
            return
        # As add_parser makes it: prog "reconciler NAME", the top parser's class.
        prog = f"{sub._prog_prefix} {name}"
        sub.add_later(
            name, help_text, lambda: fill_in(sub._parser_class(prog=prog, description=help_text))
        )

    command(
        "validate",
        "check a manifest (schema and semantics); reads no environment",
        _validate_arguments,
    )
    command("plan", "show what apply would do, every transitive change included", _plan_arguments)
    command(
        "apply",
        "plan, then make the allowed additive changes (nothing if any is refused)",
        _apply_arguments,
    )
    command(
        "lock", "write the lock file beside the manifest (team.yaml -> team.lock)", _lock_arguments
    )
    command("lifecycle", "print a SageMaker Studio on-start lifecycle script", _lifecycle_arguments)
    command(
        "bundle",
        "write an offline wheelhouse of reconciler for `lifecycle --wheel DIR`",
        _bundle_arguments,
    )
    command(
        "demo",
        "build a local demo image, its repositories and a manifest; plan it",
        _demo_arguments,
    )
    command("status", "the last or running apply: progress, result, log path", _status_arguments)
    command(
        "drift", "report how environments differ from the manifest and the image", _drift_arguments
    )

    from reconciler.edit_commands import register

    register(command)  # add, remove, adopt
    command("baseline", "record or print the managed set of environments", _baseline_arguments)
    return parser
