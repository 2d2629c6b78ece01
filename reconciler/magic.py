"""``%load_ext reconciler`` -> ``%reconcile add|remove|plan|drift|status`` in a notebook.

The magic is the command line run inside the kernel (``reconciler.cli.main``,
in-process, so its output appears in the cell), pointed at the kernel's own
environment: the manifest environment whose prefix is ``sys.prefix``. The
manifest is ``$RECONCILER_MANIFEST``, else ``~/.reconciler/manifest.yaml``, where
the lifecycle script keeps it. After an ``add`` the import system is told about
the new files, so the package imports in the same kernel without a restart.
"""

from __future__ import annotations

import importlib
import os
import shlex
import site
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_MANIFEST", "USAGE", "load_ipython_extension", "manifest_path", "reconcile"]

#: Where the lifecycle script keeps the manifest on the home volume.
DEFAULT_MANIFEST = "~/.reconciler/manifest.yaml"

USAGE = """\
usage: %reconcile add [--conda] [--no-apply] SPEC...   install and write into the manifest
       %reconcile remove NAME...                       drop from the manifest (uninstalls nothing)
       %reconcile plan | drift | status
acts on this kernel's environment ({prefix}) in {manifest}"""

_WITH_ENV = ("add", "remove", "plan", "drift")


def manifest_path() -> Path:
    """``$RECONCILER_MANIFEST``, else ``~/.reconciler/manifest.yaml``."""
    return Path(os.environ.get("RECONCILER_MANIFEST") or DEFAULT_MANIFEST).expanduser()


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _kernel_env(manifest: Path, write: Callable[[str], None]) -> str | None:
    """The name of the manifest environment this kernel runs in, or None (said why)."""
    from reconciler.edit import kernel_environment
    from reconciler.errors import ReconcilerError
    from reconciler.manifest import load_manifest

    if not manifest.is_file():
        write(
            f"reconcile: no manifest at {manifest}\n"
            "  what to do: set RECONCILER_MANIFEST to your manifest's path, or put it at "
            f"{DEFAULT_MANIFEST} (the lifecycle script does)"
        )
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


def _site_dirs() -> dict[str, set[str]]:
    """Each site directory on sys.path with its ``.pth`` files now."""
    out: dict[str, set[str]] = {}
    user = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    for entry in [*site.getsitepackages(), *user]:
        try:
            out[entry] = {n for n in os.listdir(entry) if n.endswith(".pth")}
        except OSError:
            continue
    return out


def _refresh_imports(before: dict[str, set[str]]) -> None:
    """Make what was just installed importable: new ``.pth`` files, fresh finder caches."""
    for directory, names in _site_dirs().items():
        if directory not in before and os.path.isdir(directory):
            site.addsitedir(directory)  # a site dir that did not exist when Python started
            continue
        for name in sorted(names - before.get(directory, set())):
            site.addpackage(directory, name, None)
    importlib.invalidate_caches()


def reconcile(line: str) -> int:
    """Run one ``%reconcile`` line; returns the command's exit code."""
    from reconciler.cli import main

    manifest = manifest_path()
    try:
        words = shlex.split(line)  # only splits: nothing here reaches a shell
    except ValueError as exc:
        _write(f"reconcile: {exc}")
        return 1
    if not words or words[0] in ("-h", "--help", "help"):
        _write(USAGE.format(prefix=sys.prefix, manifest=manifest))
        return 0 if words else 1
    command, rest = words[0], words[1:]
    if command == "status":
        argv = ["status", *rest]
    elif command in _WITH_ENV:
        env = _kernel_env(manifest, _write)
        if env is None:
            return 1
        argv = [command, str(manifest), "--env", env, *rest]
    else:
        _write(f"reconcile: unknown command {command!r}\n" + USAGE.format(
            prefix=sys.prefix, manifest=manifest
        ))  # fmt: skip
        return 1
    before = _site_dirs() if command == "add" else {}
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: the usage message is printed already
        code = exc.code if isinstance(exc.code, int) else 1
    sys.stdout.flush()
    sys.stderr.flush()
    if command == "add" and code == 0:
        _refresh_imports(before)
        if "--no-apply" not in rest:
            _write("reconcile: installed into this kernel; import it now, no restart needed")
    return code


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%reconcile`` (called by ``%load_ext reconciler``)."""

    def magic(line: str) -> None:
        reconcile(line)

    magic.__doc__ = USAGE.format(prefix=sys.prefix, manifest=manifest_path())
    ipython.register_magic_function(magic, magic_kind="line", magic_name="reconcile")
