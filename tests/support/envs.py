"""Real environments for tests: the builders of :mod:`reconciler.demo.envs` (venvs, conda
prefixes, hybrids), plus what only tests need: hand-run conda installs and tree hashes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import stat
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconciler.demo.envs import (
    IMAGE_BUILD_TIME,
    env_python,
    history_block,
    history_line,
    install_records,
    isolated_env,
    isolating_variables,
    leaky_variables,
    make_conda_prefix,
    make_venv,
    pip_install,
    solve_local,
    uv_bin,
)

__all__ = [
    "IMAGE_BUILD_TIME",
    "base_interpreter",
    "conda_install_more",
    "env_python",
    "history_block",
    "history_line",
    "installed_records",
    "isolated_env",
    "isolating_variables",
    "leaky_variables",
    "make_conda_prefix",
    "make_venv",
    "pip_install",
    "tree_hash",
    "uv_bin",
]


def base_interpreter(dest: Path) -> Path:
    """A base installation of the test interpreter's Python at ``dest``, as an image's
    ``/opt/conda/bin/python`` is one (a ``--system-site-packages`` venv made from the
    test interpreter, itself usually a venv, would see the base's site-packages
    instead): the binary copied (CPython finds its prefix at ``dest``), the standard
    library and ``libpython`` linked. Its ``lib/pythonX.Y/site-packages`` is left to the
    caller to make. Returns ``dest/bin/pythonX.Y``."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (dest / "bin").mkdir(parents=True)
    exe = dest / "bin" / f"python{version}"
    shutil.copy2(Path(sys.base_prefix) / "bin" / f"python{version}", exe)
    lib = dest / "lib" / f"python{version}"
    lib.mkdir(parents=True)
    stdlib = Path(sysconfig.get_path("stdlib"))
    for entry in os.listdir(stdlib):
        if entry != "site-packages":
            (lib / entry).symlink_to(stdlib / entry)
    for shared in (Path(sys.base_prefix) / "lib").glob("libpython*"):
        (dest / "lib" / shared.name).symlink_to(shared)  # an rpath of $ORIGIN/../lib
    return exe


def installed_records(prefix: Path) -> list[Any]:
    """The ``rattler.PrefixRecord`` of every ``conda-meta/*.json`` in ``prefix``."""
    import rattler

    meta = Path(prefix) / "conda-meta"
    return [rattler.PrefixRecord.from_path(p) for p in sorted(meta.glob("*.json"))]


def conda_install_more(
    prefix: Path, channel_dir: Path, specs: Sequence[str], *, pin_installed: bool = True
) -> list[str]:
    """Add ``specs`` to an existing prefix, as a hand-run ``conda install`` would.

    Installed records are pinned (``pin_installed=False``: only preferred, so
    they may move), the result is installed together with every installed
    record the solve did not touch, and a history block stamped with the
    current time is appended. Returns the history lines (``+``/``-``) of the change.
    """
    prefix = Path(prefix)
    installed = installed_records(prefix)
    key = "pinned_packages" if pin_installed else "locked_packages"
    solved = solve_local(channel_dir, specs, **{key: installed})
    solved_names = {r.name.normalized for r in solved}
    keep = [r for r in installed if r.name.normalized not in solved_names]
    install_records(solved + keep, prefix, installed_packages=installed)

    before = {(r.name.normalized, str(r.version), r.build): r for r in installed}
    after = {(r.name.normalized, str(r.version), r.build): r for r in solved + keep}
    changes = [history_line(after[k]) for k in after.keys() - before.keys()]
    changes += [history_line(before[k], "-") for k in before.keys() - after.keys()]
    history = prefix / "conda-meta" / "history"
    previous = history.read_text() if history.is_file() else ""
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    block = history_block(f"conda install {' '.join(specs)}", changes, specs, when)
    history.write_text(previous + block)
    return sorted(changes)


# -- comparing environments ---------------------------------------------------------------


def tree_hash(*paths: Path) -> str:
    """sha256 over relative path, mode, size and content of every file below ``paths``.

    Symlinks are hashed by their target (not followed); directories by name,
    so an added empty directory changes the hash too. ``__pycache__``
    directories are included: callers wanting byte-identical trees get them.
    """
    digest = hashlib.sha256()
    for root in paths:
        root = Path(root)
        digest.update(f"root\0{len(paths)}\0".encode())
        entries = [root] if not root.is_dir() or root.is_symlink() else sorted(root.rglob("*"))
        for entry in entries:
            rel = entry.relative_to(root).as_posix() if entry != root else "."
            info = entry.lstat()
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                digest.update(f"L\0{rel}\0{os.readlink(entry)}\0".encode())
            elif stat.S_ISDIR(info.st_mode):
                digest.update(f"D\0{rel}\0{mode:o}\0".encode())
            else:
                digest.update(f"F\0{rel}\0{mode:o}\0{info.st_size}\0".encode())
                with entry.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
    return digest.hexdigest()
