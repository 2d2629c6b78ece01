"""``%load_ext reconciler`` -> ``%reconcile add|remove|plan|drift|status`` in a notebook.

The magic is the command line run inside the kernel (``reconciler.cli.main``,
in-process, so its output appears in the cell), pointed at the kernel's own
environment: the manifest environment whose prefix is ``sys.prefix``. The
manifest is ``$RECONCILER_MANIFEST``, else ``~/.reconciler/manifest.yaml``, where
the lifecycle script keeps it. After an ``add`` the import system is told about
the new files, so the package imports in the same kernel without a restart.

This is the magic of a kernel that can import reconciler. A kernel that cannot
(a Studio image kernel) gets the subprocess-backed one of
:mod:`reconciler.kernel_shim`, which shares the import refresh and the usage text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.kernel_shim import (
    DEFAULT_MANIFEST,
    USAGE,
    manifest_path,
    no_manifest,
    parse_line,
    refresh_imports,
    site_dirs,
)

__all__ = ["DEFAULT_MANIFEST", "USAGE", "load_ipython_extension", "manifest_path", "reconcile"]


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _kernel_env(manifest: Path, write: Callable[[str], None]) -> str | None:
    """The name of the manifest environment this kernel runs in, or None (said why)."""
    from reconciler.edit import kernel_environment
    from reconciler.errors import ReconcilerError
    from reconciler.manifest import load_manifest

    if not manifest.is_file():
        write(no_manifest(manifest))
        return None
    try:
        loaded = load_manifest(manifest)
    except ReconcilerError as exc:
        write(f"reconcile: {exc}")
        return None
    env = kernel_environment(loaded)
    if env is None:
        names = ", ".join(e.name for e in loaded.environments)
        write(
            f"reconcile: this kernel's environment ({sys.prefix}) is not in {manifest} "
            f"(environments: {names})\n"
            f"  what to do: add an environment with `prefix: {sys.prefix}` to the manifest, "
            "or run the notebook on a kernel of one of these environments"
        )
        return None
    return env.name


def reconcile(line: str) -> int:
    """Run one ``%reconcile`` line; returns the command's exit code."""
    from reconciler.cli import main

    words = parse_line(line, _write)
    if not words:
        return 1 if words is None else 0
    command, rest = words[0], words[1:]
    manifest = manifest_path()
    if command == "status":
        argv = ["--notebook", "status", *rest]
    else:
        env = _kernel_env(manifest, _write)
        if env is None:
            return 1
        argv = ["--notebook", command, str(manifest), "--env", env, *rest]
    before = site_dirs() if command == "add" else {}
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: the usage message is printed already
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    if command == "add" and code == 0:
        refresh_imports(before)
        if "--no-apply" not in rest:
            _write("reconcile: installed into this kernel; import it now, no restart needed")
    return code


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%reconcile`` (called by ``%load_ext reconciler``)."""

    def magic(line: str) -> None:
        reconcile(line)

    magic.__doc__ = USAGE.format(prefix=sys.prefix, manifest=manifest_path())
    ipython.register_magic_function(magic, magic_kind="line", magic_name="reconcile")
