"""Offline wheelhouses from what the test interpreter has installed.

Tests may not reach PyPI, yet the Studio bootstrap and the kernel tests need
real wheels of reconciler's dependencies and of ipykernel. An installed
distribution's RECORD lists its files and its WHEEL file its tags, which is
all a wheel is: :func:`repackage` zips them back up (stored, not compressed:
it is fast and the wheels are thrown away). :func:`build_reconciler_wheel`
builds the checkout with its real build backend (hatchling, no isolation).
"""

from __future__ import annotations

import base64
import hashlib
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


def _tag(dist: md.Distribution) -> str:
    wheel = dist.read_text("WHEEL") or ""
    tags = [t.split("-") for t in re.findall(r"^Tag: (.+)$", wheel, re.M)]
    if not tags:
        return "py3-none-any"
    # Compressed tag set (py2.py3-none-any): each part is the sorted union.
    return "-".join(".".join(sorted({t[i] for t in tags})) for i in range(3))


def repackage(dist: md.Distribution, dest: Path) -> Path:
    """Write ``dist`` (installed) back into a wheel in ``dest``."""
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    path = dest / f"{name}-{dist.version}-{_tag(dist)}.whl"
    if path.exists():
        return path
    base = Path(str(dist.locate_file("")))
    records: list[str] = []
    record_path = ""
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for file in dist.files or ():
            rel = str(file)
            if rel.endswith("RECORD") and ".dist-info/" in rel:
                record_path = rel
                continue
            if "__pycache__" in rel or rel.endswith((".pyc", "INSTALLER")):
                continue
            full = base / rel
            if not full.is_file():
                continue
            arcname = rel
            if rel.startswith(".."):
                # Installed outside site-packages: scripts and binaries in bin/ go back
                # to the wheel's .data/scripts (uv's binary lives there); the rest is
                # console-script wrappers the installer regenerates, or data we skip.
                if Path(rel).parent.name != "bin" or _is_wrapper(full):
                    continue
                arcname = f"{name}-{dist.version}.data/scripts/{Path(rel).name}"
            data = full.read_bytes()
            zf.writestr(zipfile.ZipInfo.from_file(full, arcname), data)  # keeps the x bit
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{arcname},sha256={digest.decode()},{len(data)}")
        records.append(f"{record_path},,")
        zf.writestr(record_path, "\n".join(records) + "\n")
    tmp.rename(path)
    return path


def _is_wrapper(path: Path) -> bool:
    """A console-script wrapper an installer wrote (its shebang names this venv's python)."""
    with path.open("rb") as f:
        return f.read(2) == b"#!"


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
