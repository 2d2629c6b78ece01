"""Offline wheelhouses from what the test interpreter has installed.

Tests may not reach PyPI, yet the Studio bootstrap and the kernel tests need
real wheels of reconciler's dependencies and of ipykernel. An installed
distribution's RECORD lists its files and its WHEEL file its tags, which is
all a wheel is: :func:`reconciler.bundle.repackage` (which ``reconciler bundle``
shares) zips them back up. :func:`build_reconciler_wheel` builds the checkout
with its real build backend (hatchling, no isolation).
"""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from reconciler.bundle import repackage

REPO = Path(__file__).resolve().parents[2]


def closure(roots: Iterable[str], extras: Iterable[str] = ()) -> list[md.Distribution]:
    """The installed distributions ``roots`` need, transitively (markers evaluated here)."""
    env = {k: str(v) for k, v in default_environment().items()}
    seen: dict[str, md.Distribution] = {}
    stack = [(r, frozenset(extras)) for r in roots]
    while stack:
        name, wanted = stack.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        dist = md.distribution(name)
        seen[key] = dist
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is not None and not any(
                req.marker.evaluate({**env, "extra": e}) for e in ("", *wanted)
            ):
                continue
            stack.append((req.name, frozenset(req.extras)))
    return list(seen.values())


def wheelhouse_for(roots: Iterable[str], dest: Path, extras: Iterable[str] = ()) -> Path:
    """A directory of wheels for ``roots`` and everything they need."""
    dest.mkdir(parents=True, exist_ok=True)
    for dist in closure(roots, extras):
        if canonicalize_name(dist.metadata["Name"]) == "env-reconciler":
            continue  # the checkout is built, not repackaged (it may be an editable install)
        repackage(dist, dest)
    return dest


def requirements_of(wheel: Path) -> list[str]:
    """The Requires-Dist names of a built wheel (markers evaluated here, no extras)."""
    env = {k: str(v) for k, v in default_environment().items()}
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    names = []
    for line in re.findall(r"^Requires-Dist: (.+)$", text, re.M):
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
            names.append(req.name)
    return names


def reconciler_wheelhouse(dest: Path) -> Path:
    """The checkout's wheel and wheels of all it needs: an offline install source."""
    wheel = build_reconciler_wheel(dest)
    return wheelhouse_for(requirements_of(wheel), dest)


def build_reconciler_wheel(dest: Path) -> Path:
    """Build the checkout's wheel with hatchling, offline."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(dest), str(REPO)],
        check=True,
    )  # fmt: skip
    return next(dest.glob("env_reconciler-*.whl"))
