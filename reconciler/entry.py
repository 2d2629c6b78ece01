"""The console entry point: answers ``--version`` and a repeated no-op ``apply`` cheaply.

Every app start runs ``reconciler apply MANIFEST``. When nothing changed since
the manifest was last met, :mod:`reconciler.fastpath` proves it from directory
listings and file stamps, without importing the planner (YAML, packaging,
argparse...). Everything else goes to :func:`reconciler.cli.main`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

from reconciler import __version__

__all__ = ["main"]


class _Apply:
    """A plain ``apply MANIFEST`` invocation (the only shape the fast path answers)."""

    def __init__(self, state_dir: str, manifest: str, envs: list[str], quiet: bool) -> None:
        self.state_dir = state_dir
        self.manifest = manifest
        self.envs = envs
        self.quiet = quiet


def _plain_apply(args: Sequence[str]) -> _Apply | None:
    """Recognise ``[--state-dir D] [-q] apply MANIFEST [--env N]... [--lock-timeout S]``."""
    state_dir = os.environ.get("RECONCILER_STATE_DIR") or os.path.expanduser(
        "~/.local/state/reconciler"
    )
    manifest: str | None = None
    envs: list[str] = []
    quiet = command = False
    it = iter(args)
    for arg in it:
        if arg == "--state-dir":
            state_dir = os.path.expanduser(next(it, ""))
        elif arg.startswith("--state-dir="):
            state_dir = os.path.expanduser(arg.split("=", 1)[1])
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg == "apply" and not command:
            command = True
        elif arg == "--env" and command:
            envs.append(next(it, ""))
        elif arg == "--lock-timeout" and command:
            next(it, "")
        elif command and manifest is None and not arg.startswith("-"):
            manifest = arg
        else:
            return None  # anything else (--json, --plan, --partial, ...) takes the full path
    if not command or not manifest or not state_dir or "" in envs:
        return None
    return _Apply(state_dir, manifest, envs, quiet)


def _selection(call: _Apply) -> list[str]:
    # Where kernelspecs are looked up is part of what the no-op decision depends on.
    context = [
        f"{k}={os.environ.get(k, '')}" for k in ("HOME", "JUPYTER_DATA_DIR", "XDG_DATA_HOME")
    ]
    return [*(f"env={e}" for e in call.envs), *context]


def _remember(call: _Apply) -> None:
    """After a successful apply: remember the stamp of everything the plan depended on."""
    from pathlib import Path

    from reconciler import fastpath
    from reconciler.lockfile.model import lock_path
    from reconciler.manifest import load_manifest
    from reconciler.state.environment import system_site_dirs
    from reconciler.state.kernels import kernels_dir
    from reconciler.state.python import find_site_packages
    from reconciler.state.store import StateStore

    manifest = load_manifest(call.manifest, check_prefixes=False)
    store = StateStore(Path(call.state_dir))
    prefixes, sites, files, state_files = [], [], [], []
    for env in manifest.environments:
        if call.envs and env.name not in call.envs:
            continue
        prefixes.append(str(env.prefix))
        site, version = find_site_packages(env.prefix)
        sites += [str(s) for s in (site, *system_site_dirs(env.prefix, version)) if s]
        if env.kernel is not None:
            files.append(str(kernels_dir() / env.kernel.name / "kernel.json"))
        directory = store.env_dir(env.prefix)
        state_files += [str(directory / f) for f in ("baseline.json", "owned.json", "journal.json")]
    state_files.append(str(lock_path(Path(call.manifest))))  # a new lock changes the plan
    inputs = fastpath.Inputs(prefixes, sites, files, state_files)
    fastpath.remember(
        call.state_dir, __version__, Path(call.manifest).read_bytes(), _selection(call), inputs,
        len(prefixes),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run reconciler; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        sys.stdout.write(f"reconciler {__version__}\n")
        return 0
    call = _plain_apply(args)
    if call is not None:
        from reconciler import fastpath

        count = fastpath.matches(call.state_dir, __version__, call.manifest, _selection(call))
        if count is not None:
            sys.stdout.write(f"Nothing to do: {count} environment(s) match the manifest.\n")
            return 0
    from reconciler.cli import main as full

    code = full(args)
    if call is not None and code == 0:
        # Derived data: never let remembering turn a success into a failure.
        with contextlib.suppress(Exception):
            _remember(call)
    return code
