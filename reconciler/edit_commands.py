"""The ``add``, ``remove`` and ``adopt`` subcommands: their arguments and their text.

:mod:`reconciler.cli` registers them with :func:`register` and prints what
:func:`run` returns; an ``add``'s apply reports its progress through the same
console reporter as ``apply``. The work is :mod:`reconciler.edit`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse  # the notebook's plain plan (env_by_prefix) is read without it

    from reconciler.manifest.model import Environment, Manifest
    from reconciler.state.store import StateStore

__all__ = ["env_by_prefix", "register", "run"]

_MANIFEST = "the manifest file (YAML, version: 1); it is rewritten in place"
_ENV = "the environment (default: the only one, or the one whose prefix is sys.prefix)"


def _lock_timeout(parser: argparse.ArgumentParser, what: str) -> None:
    from reconciler.cli_parser import seconds

    parser.add_argument(
        "--lock-timeout",
        type=seconds,
        default=300.0,
        metavar="SECONDS",
        help=f"how long to wait for {what} (300)",
    )


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from reconciler.cli_parser import env_prefix_option

    p.add_argument("manifest", type=Path, help=_MANIFEST)
    p.add_argument("specs", nargs="+", metavar="SPEC", help="polars, 'polars>=1.31', ...")
    p.add_argument("--env", metavar="NAME", help=_ENV)
    env_prefix_option(p)
    p.add_argument("--conda", action="store_true", help="add to the conda list (default: pip)")
    p.add_argument(
        "--no-apply", action="store_true", help="write the specs after a plan; install nothing"
    )
    _lock_timeout(p, "another apply on the environment, or another edit of the manifest")
    p.set_defaults(edit="add")


def _remove_arguments(p: argparse.ArgumentParser) -> None:
    from reconciler.cli_parser import env_prefix_option

    p.add_argument("manifest", type=Path, help=_MANIFEST)
    p.add_argument("names", nargs="+", metavar="NAME", help="package names to drop")
    p.add_argument("--env", metavar="NAME", help=_ENV)
    env_prefix_option(p)
    _lock_timeout(p, "another add, remove or adopt of the manifest")
    p.set_defaults(edit="remove")


def _adopt_arguments(p: argparse.ArgumentParser) -> None:
    from reconciler.cli_parser import env_prefix_option

    p.add_argument("manifest", type=Path, help=_MANIFEST)
    p.add_argument("--env", metavar="NAME", help=_ENV)
    env_prefix_option(p)
    p.add_argument(
        "--dry-run", action="store_true", help="print the change as a diff; write nothing"
    )
    _lock_timeout(p, "another add, remove or adopt of the manifest")
    p.set_defaults(edit="adopt")


def register(
    command: Callable[[str, str, Callable[[argparse.ArgumentParser], None]], None],
) -> None:
    """Add the three subcommands; ``command(name, help, fill)`` makes a subparser whose
    arguments ``fill`` adds (the ``edit`` handler runs them)."""
    command(
        "add", "install packages into an environment and write them into the manifest",
        _add_arguments,
    )  # fmt: skip
    command("remove", "drop packages from the manifest (nothing is uninstalled)", _remove_arguments)
    command(
        "adopt", "write the packages installed by hand (foreign) into the manifest",
        _adopt_arguments,
    )  # fmt: skip


def env_by_prefix(args: argparse.Namespace, manifest: Manifest) -> None:
    """``--env-prefix PATH`` -> ``--env NAME``: the environment whose prefix is PATH."""
    import os

    from reconciler.edit import kernel_environment
    from reconciler.errors import ReconcilerError

    prefix = os.path.abspath(args.env_prefix)
    if args.env:
        raise ReconcilerError(
            "--env and --env-prefix both name the environment", hint="give one of them"
        )
    env = kernel_environment(manifest, prefix)
    if env is None:
        names = ", ".join(e.name for e in manifest.environments)
        raise ReconcilerError(
            f"{prefix} is the prefix of no environment in {args.manifest} (environments: {names})",
            hint=f"add an environment with `prefix: {prefix}` to the manifest, "
            "or run the notebook on a kernel of one of these environments",
        )
    args.env = [env.name] if isinstance(args.env, list) else env.name


def run(args: argparse.Namespace, store: StateStore, manifest: Manifest) -> tuple[int, str]:
    """Run ``args.edit`` on ``manifest``; returns (exit code, text to print)."""
    from reconciler.edit import adopt, choose_environment, remove
    from reconciler.render.edits import adopt_text, remove_text

    env = choose_environment(manifest, args.env)
    if args.edit == "remove":
        return 0, remove_text(remove(manifest, store, args.names, env), args.manifest)
    if args.edit == "adopt":
        result = adopt(manifest, store, env, dry_run=args.dry_run)
        return 0, adopt_text(result, args.manifest, dry_run=args.dry_run)
    return _add(args, store, manifest, env)


def _add(
    args: argparse.Namespace, store: StateStore, manifest: Manifest, env: Environment
) -> tuple[int, str]:
    from reconciler.apply.status import StatusReporter, status_path
    from reconciler.edit import add, parse_specs
    from reconciler.errors import ReconcilerError
    from reconciler.render.edits import add_text
    from reconciler.render.progress import ConsoleReporter, new_log_path
    from reconciler.render.text import plan_text

    specs = parse_specs(args.specs, "conda" if args.conda else "pip")
    log_path = new_log_path(store.root)
    reporter = console = None
    if not args.no_apply:
        console = ConsoleReporter(
            sys.stdout,
            quiet=args.quiet,
            stamps=not args.notebook,
            # What will change, before the progress of changing it.
            plan_text=lambda plan: plan_text(plan, verbose=args.verbose) if plan.pending else "",
        )
        reporter = StatusReporter(status_path(store.root), console, log=str(log_path))
    from reconciler.apply.stopped import Before, stopped_text

    before = Before.take(manifest.path, env.prefix, store.env_dir(env.prefix))
    try:
        result = add(
            manifest,
            store,
            specs,
            env,
            no_apply=args.no_apply,
            reporter=reporter,
            log=log_path,
            lock_timeout=args.lock_timeout,
        )
    except ReconcilerError as exc:
        if reporter is not None:
            reporter.finish("failed", {}, error=str(exc))
        raise
    except KeyboardInterrupt:
        # Ctrl-C or a notebook's stop button: say what it left (cli.py prints it); if
        # that cannot be read, the interrupt still ends the command as one.
        try:
            said = stopped_text(before)
        except Exception:
            said = ""
        raise KeyboardInterrupt(said) from None
    if reporter is not None and result.applied is not None:
        reporter.finish(
            "failed" if result.failed else "finished",
            {r.name: (r.status, r.message) for r in result.applied.results},
        )
    text = add_text(result, args.manifest, specs[0].side, no_apply=args.no_apply, log=log_path)
    if result.plan.pending and not args.quiet and not (console and console.shown_plan):
        text = plan_text(result.plan, verbose=args.verbose) + "\n" + text
    return (3 if result.refused else 1 if result.failed else 0), text
