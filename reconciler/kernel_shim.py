"""``%reconcile`` for a kernel that cannot import reconciler: a stdlib-only shim.

On SageMaker Studio reconciler lives in its own venv (``~/.reconciler/venv``); an
*image* kernel (a conda environment the platform manages) must not get
reconciler's dependencies on its ``sys.path``. This module imports nothing but
the standard library, so it can run inside any kernel. Its ``%reconcile`` runs
reconciler's own command line as a subprocess (an argument list, never a
shell), pointed at the kernel's environment with ``--env-prefix sys.prefix``,
and streams what it prints into the cell.

The lifecycle script (:mod:`reconciler.lifecycle`) runs ``python -m
reconciler.kernel_shim KERNEL_DIR STARTUP_DIR CLI`` at every app start:
:func:`install` writes ``KERNEL_DIR/reconciler/`` (a stub package: this module
and an ``__init__`` with ``load_ipython_extension``) and an IPython startup file
that *appends* ``KERNEL_DIR`` to ``sys.path``. Appended, the stub is found only
when the kernel's environment has no ``reconciler`` of its own, and it makes
nothing else importable. ``%load_ext reconciler`` then works in both kinds of
kernel: the real package registers the in-process magic (:mod:`reconciler.magic`),
the stub this one.

The import refresh after an ``add`` (new ``.pth`` files, fresh finder caches) is
shared with the in-process magic, so both behave the same. Python 3.9+.
"""

from __future__ import annotations

import importlib
import os
import shlex
import site
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

__all__ = [
    "CLI_VARIABLE",
    "DEFAULT_CLI",
    "DEFAULT_MANIFEST",
    "STARTUP_FILE",
    "USAGE",
    "cli_path",
    "install",
    "load_ipython_extension",
    "manifest_path",
    "no_manifest",
    "reconcile",
    "refresh_imports",
    "site_dirs",
]

#: Where the lifecycle script keeps the manifest on the home volume.
DEFAULT_MANIFEST = "~/.reconciler/manifest.yaml"
#: Where the lifecycle script installs reconciler's command line (its own venv).
DEFAULT_CLI = "~/.reconciler/venv/bin/reconciler"
#: Overrides the command line the shim runs.
CLI_VARIABLE = "RECONCILER_CLI"
#: The IPython startup file :func:`install` writes (startup files run in name order).
STARTUP_FILE = "50-reconciler.py"

USAGE = """\
usage: %reconcile add [--conda] [--no-apply] SPEC...   install and write into the manifest
       %reconcile remove NAME...                       drop from the manifest (uninstalls nothing)
       %reconcile plan | drift | status
acts on this kernel's environment ({prefix}) in {manifest}"""

COMMANDS = ("add", "remove", "plan", "drift", "status")

# What the kernel's interpreter was told that must not reach reconciler's own venv.
_KERNEL_ONLY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH")


def manifest_path() -> Path:
    """``$RECONCILER_MANIFEST``, else ``~/.reconciler/manifest.yaml``."""
    return Path(os.environ.get("RECONCILER_MANIFEST") or DEFAULT_MANIFEST).expanduser()


def cli_path(default: str = DEFAULT_CLI) -> Path:
    """``$RECONCILER_CLI``, else ``default`` (the path the lifecycle script wrote)."""
    return Path(os.environ.get(CLI_VARIABLE) or default).expanduser()


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def no_manifest(manifest: Path) -> str:
    """What the magic says when there is no manifest to act on."""
    return (
        f"reconcile: no manifest at {manifest}\n"
        "  what to do: set RECONCILER_MANIFEST to your manifest's path, or put it at "
        f"{DEFAULT_MANIFEST} (the lifecycle script does)"
    )


def site_dirs() -> dict[str, set[str]]:
    """Each site directory of this interpreter with its ``.pth`` files now."""
    out: dict[str, set[str]] = {}
    user = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    for entry in [*site.getsitepackages(), *user]:
        try:
            out[entry] = {n for n in os.listdir(entry) if n.endswith(".pth")}
        except OSError:
            continue
    return out


def refresh_imports(before: dict[str, set[str]]) -> None:
    """Make what was just installed importable: new ``.pth`` files, fresh finder caches."""
    for directory, names in site_dirs().items():
        if directory not in before and os.path.isdir(directory):
            site.addsitedir(directory)  # a site dir that did not exist when Python started
            continue
        for name in sorted(names - before.get(directory, set())):
            site.addpackage(directory, name, None)
    importlib.invalidate_caches()


def parse_line(line: str, write: Callable[[str], None]) -> list[str] | None:
    """The words of a ``%reconcile`` line, or None when it is not a command (said why)."""
    manifest = manifest_path()
    try:
        words = shlex.split(line)  # only splits: nothing here reaches a shell
    except ValueError as exc:
        write(f"reconcile: {exc}")
        return None
    if not words or words[0] in ("-h", "--help", "help"):
        write(USAGE.format(prefix=sys.prefix, manifest=manifest))
        return [] if words else None
    if words[0] not in COMMANDS:
        usage = USAGE.format(prefix=sys.prefix, manifest=manifest)
        write(f"reconcile: unknown command {words[0]!r}\n{usage}")
        return None
    return words


def _stream(argv: Sequence[str]) -> int:
    """Run ``argv`` and copy its output (stdout and stderr, in order) into the cell."""
    env = {k: v for k, v in os.environ.items() if k not in _KERNEL_ONLY}
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
    )
    assert proc.stdout is not None
    try:
        try:
            _copy(proc.stdout)
        except KeyboardInterrupt:
            # The cell's stop button: Jupyter interrupts the kernel's process group, this
            # command included, which stops as on Ctrl-C (an interrupted apply is safe:
            # its journal). Show what it says while it stops, then stop the cell.
            _copy(proc.stdout)
            proc.wait()
            raise
    finally:
        proc.stdout.close()
    return proc.wait()


def _copy(stream: Any) -> None:
    for line in stream:
        sys.stdout.write(line)
        sys.stdout.flush()


def reconcile(line: str, cli: str = DEFAULT_CLI) -> int:
    """Run one ``%reconcile`` line through reconciler's command line; its exit code."""
    words = parse_line(line, _write)
    if not words:
        return 1 if words is None else 0
    command, rest = words[0], words[1:]
    manifest = manifest_path()
    program = cli_path(cli)
    if not os.access(program, os.X_OK):
        _write(
            f"reconcile: reconciler's command line is not at {program}\n"
            "  what to do: the lifecycle script installs it there at every app start (its log "
            "is under ~/.local/state/reconciler/logs); or set "
            f"{CLI_VARIABLE} to the path of a `reconciler` program"
        )
        return 1
    if command == "status":
        argv = [str(program), "--notebook", "status", *rest]
    elif not manifest.is_file():
        _write(no_manifest(manifest))
        return 1
    else:
        argv = [str(program), "--notebook", command, str(manifest), "--env-prefix", sys.prefix]
        argv += rest
    before = site_dirs() if command == "add" else {}
    code = _stream(argv)
    if command == "add" and code == 0:
        refresh_imports(before)
        if "--no-apply" not in rest:
            _write("reconcile: installed into this kernel; import it now, no restart needed")
    return code


def load_ipython_extension(ipython: Any, cli: str = DEFAULT_CLI) -> None:
    """Register ``%reconcile`` backed by the command line at ``cli`` (or ``$RECONCILER_CLI``)."""

    def magic(line: str) -> None:
        reconcile(line, cli)

    magic.__doc__ = USAGE.format(prefix=sys.prefix, manifest=manifest_path())
    ipython.register_magic_function(magic, magic_kind="line", magic_name="reconcile")


# -- installing the shim (the lifecycle script, at every app start) ------------------------

_STUB = '''\
"""Not the reconciler package: its notebook shim, written by reconciler's lifecycle script.

An IPython startup file appends this directory to sys.path, so a reconciler installed
in the kernel's own environment comes first. `%load_ext reconciler` registers
`%reconcile`, which runs reconciler's command line ({cli}) as a subprocess.
"""

__version__ = {version!r}
__shim__ = True
__all__ = ["CLI", "load_ipython_extension"]

CLI = {cli!r}


def load_ipython_extension(ipython):
    """`%load_ext reconciler`: registers the subprocess-backed `%reconcile`."""
    from reconciler.kernel_shim import load_ipython_extension as load

    load(ipython, CLI)
'''

_STARTUP = """\
# Written by reconciler's lifecycle script at every app start (edits are replaced).
# Lets `%load_ext reconciler` work in every kernel: it APPENDS a directory that holds
# only reconciler's stdlib-only notebook shim, so a reconciler installed in the
# kernel's own environment still wins and nothing else becomes importable.
import sys as _reconciler_sys

if {path!r} not in _reconciler_sys.path:
    _reconciler_sys.path.append({path!r})
del _reconciler_sys
"""


def _put(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it holds it already; whether it wrote."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def install(kernel_dir: Path, startup_dir: Path, cli: Path, version: str) -> list[str]:
    """Write the stub package into ``kernel_dir`` and the startup file; lines for the log.

    Idempotent: a file that already holds the right text is not touched.
    """
    kernel_dir, startup_dir, cli = (
        Path(os.path.abspath(p)) for p in (kernel_dir, startup_dir, cli)
    )
    package = kernel_dir / "reconciler"
    wrote = [
        _put(package / "__init__.py", _STUB.format(cli=str(cli), version=version)),
        _put(package / "kernel_shim.py", Path(__file__).read_text(encoding="utf-8")),
        _put(startup_dir / STARTUP_FILE, _STARTUP.format(path=str(kernel_dir))),
    ]
    extra = sorted(p.name for p in kernel_dir.iterdir() if p.name != "reconciler")
    lines = [
        f"kernel shim: {'wrote' if any(wrote) else 'up to date:'} {package} and "
        f"{startup_dir / STARTUP_FILE} (`%load_ext reconciler` in kernels without reconciler)"
    ]
    if extra:
        lines.append(
            f"kernel shim: WARNING: {kernel_dir} also holds {', '.join(extra)}, which every "
            "kernel can import; remove them"
        )
    return lines


def main(argv: Sequence[str]) -> int:
    """``python -m reconciler.kernel_shim KERNEL_DIR STARTUP_DIR CLI VERSION``."""
    if len(argv) != 4:
        sys.stderr.write(
            "usage: python -m reconciler.kernel_shim KERNEL_DIR STARTUP_DIR CLI VERSION\n"
        )
        return 1
    kernel_dir, startup_dir, cli, version = argv
    try:
        lines = install(Path(kernel_dir), Path(startup_dir), Path(cli), version)
    except OSError as exc:
        sys.stderr.write(f"kernel shim: could not write it: {exc}\n")
        return 1
    for line in lines:
        sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
