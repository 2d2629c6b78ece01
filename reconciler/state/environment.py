"""The installed state of one environment: conda records and Python distributions, joined.

A conda package and the Python distribution it ships are one package: the join
is the dist-info directory listed in the conda record's ``files``. Reading state
never spawns a process.

A venv made with ``--system-site-packages`` (``include-system-site-packages =
true`` in ``pyvenv.cfg``) imports the base interpreter's distributions too: they
are read as present (``Distribution.system_site``), behind the venv's own copies,
as ``site.py`` orders them. Nothing reconciler does may change them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from reconciler.digest import sha256
from reconciler.state.cache import ReadCache
from reconciler.state.conda import (
    CondaRecord,
    RecordDetails,
    read_conda_records,
    read_pinned,
)
from reconciler.state.python import Distribution, find_site_packages, read_distributions
from reconciler.values import field, replace, value

__all__ = [
    "InstalledState",
    "Package",
    "image_identity",
    "migrated_identity",
    "read_state",
    "system_site_dirs",
]


@value
class Package:
    """One installed package as the user thinks of it.

    ``manager`` is "conda" when a conda record exists (its Python distribution,
    if any, is ``dist``), else "pip". ``name`` is the conda name for conda
    packages and the canonical distribution name for pip ones.
    """

    name: str
    manager: str
    version: str
    build: str = ""
    dist: Distribution | None = None

    @property
    def key(self) -> str:
        """``manager:name``, unique within an environment."""
        return f"{self.manager}:{self.name}"


@value(slots=False)  # its cached_property keeps the joined packages in __dict__
class InstalledState:
    """Everything the planner reads about one prefix."""

    prefix: Path
    exists: bool
    kind: str  # "conda" | "venv"
    python_version: str | None
    site_packages: Path | None
    conda: Mapping[str, CondaRecord] = field(default_factory=dict)
    details: Mapping[str, RecordDetails] = field(default_factory=dict)
    dists: Mapping[str, Distribution] = field(default_factory=dict)
    user_site: Mapping[str, Distribution] = field(default_factory=dict)
    dist_owner: Mapping[str, str] = field(default_factory=dict)  # dist name -> conda name
    pinned: tuple[str, ...] = ()
    frozen: bool = False
    is_venv: bool = False

    @cached_property
    def fingerprint(self) -> str:
        """A digest of what was installed, for a saved plan's freshness check (computed
        when asked: an apply's state re-read after the install is never asked)."""
        return _fingerprint(self.conda, self.dists, self.pinned, self.frozen)

    @property
    def is_conda(self) -> bool:
        """True when the prefix has ``conda-meta/``."""
        return self.kind == "conda"

    @cached_property
    def _packages(self) -> dict[str, Package]:
        return self._join()

    def packages(self) -> dict[str, Package]:
        """All installed packages by key (``conda:numpy``, ``pip:polars``); do not mutate."""
        return self._packages

    def _join(self) -> dict[str, Package]:
        out: dict[str, Package] = {}
        shipped: dict[str, Distribution] = {}
        for dist_name, conda_name in self.dist_owner.items():
            if dist_name in self.dists:
                shipped[conda_name] = self.dists[dist_name]
        for record in self.conda.values():
            pkg = Package(
                record.name, "conda", record.version, record.build, shipped.get(record.name)
            )
            out[pkg.key] = pkg
        owner = self.dist_owner
        for name, dist in self.dists.items():
            if name not in owner:  # keyed by dist.name
                out["pip:" + name] = Package(name, "pip", dist.version, "", dist)
        return out

    def package_for_dist(self, dist_name: str) -> str:
        """The package key owning Python distribution ``dist_name``."""
        owner = self.dist_owner.get(dist_name)
        return f"conda:{owner}" if owner else f"pip:{dist_name}"

    def package_for_change(self, manager: str, name: str) -> str:
        """The package key a planned change of ``manager`` (conda or pip) ``name`` acts on."""
        return f"conda:{name}" if manager == "conda" else self.package_for_dist(name)


def _dist_name_from_dir(directory: str) -> str:
    """``Foo_Bar-1.0.dist-info`` -> ``foo-bar`` (only to join with already-read METADATA)."""
    stem = directory.rsplit(".", 1)[0]
    name = stem.split("-", 1)[0]
    return name.replace("_", "-").replace(".", "-").lower()


def _user_site(python_version: str | None) -> Path | None:
    if not python_version:
        return None
    return Path(os.path.expanduser(f"~/.local/lib/python{python_version}/site-packages"))


def _pyvenv_cfg(prefix: Path) -> dict[str, str]:
    """``pyvenv.cfg`` as lower-case keys and stripped values; empty when there is none."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _includes_system_site(prefix: Path) -> bool:
    """A venv with ``include-system-site-packages = true`` also sees the user site (site.py)."""
    return _pyvenv_cfg(prefix).get("include-system-site-packages", "").lower() == "true"


def system_site_dirs(prefix: Path, python_version: str | None) -> tuple[Path, ...]:
    """The base interpreter's site-packages that a ``--system-site-packages`` venv imports.

    The base prefix is found as CPython's ``getpath`` finds it for a venv: the first
    directory from ``home`` (``pyvenv.cfg``) upwards holding ``lib/pythonX.Y/os.py``.
    Its site directories follow ``site.getsitepackages()`` order (Debian's
    ``dist-packages`` included). Empty for anything but such a venv.
    """
    cfg = _pyvenv_cfg(prefix)
    home = cfg.get("home")
    included = cfg.get("include-system-site-packages", "").lower() == "true"
    if not home or not python_version or not included:
        return ()
    lib = f"python{python_version}"
    start = Path(home)
    base = next((d for d in (start, *start.parents) if (d / "lib" / lib / "os.py").is_file()), None)
    if base is None:
        return ()
    candidates = (
        base / "lib" / lib / "site-packages",
        base / "lib64" / lib / "site-packages",  # platlib on some distributions
        base / "local" / "lib" / lib / "dist-packages",  # Debian
        base / "lib" / "python3" / "dist-packages",  # Debian
        base / "lib" / lib / "dist-packages",  # Debian
    )
    own = find_site_packages(prefix)[0]
    seen: set[Path] = {own.resolve()} if own is not None else set()
    out: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and candidate.resolve() not in seen:
            seen.add(candidate.resolve())
            out.append(candidate)
    return tuple(out)


def image_identity(prefix: Path) -> str | None:
    """What identifies the image under ``prefix``; see README "Baselines and image upgrades".

    The first transaction block of ``conda-meta/history`` (the image build): hand
    changes append blocks, a new image rewrites the first one. For a venv,
    ``pyvenv.cfg``'s content and modification time in whole seconds: creating a
    venv (again) writes the file, even with identical bytes, while an image layer
    keeps contents and mtimes across container restarts (inode numbers and ctimes
    it does not keep; sub-second mtimes not every layer format keeps).
    """
    try:
        with (prefix / "conda-meta" / "history").open("rb") as f:
            head = f.read(1 << 20)
    except OSError:
        head = b""
    if head.strip():
        first: list[bytes] = []
        for line in head.splitlines():
            if line.startswith(b"==> ") and first:
                break  # the second transaction starts: the first block is complete
            if line.strip():
                first.append(line.rstrip())
        return "history:" + sha256(b"\n".join(first)).hexdigest()[:32]
    try:
        with (prefix / "pyvenv.cfg").open("rb") as f:
            cfg = f.read()
            mtime = int(os.fstat(f.fileno()).st_mtime)
    except OSError:
        return None
    return "venv:" + sha256(cfg + b"\0" + str(mtime).encode()).hexdigest()[:32]


def migrated_identity(recorded: object, prefix: Path) -> str | None:
    """The current identity when ``recorded`` is an older form of it, else None.

    Baselines before the venv rule above recorded ``pyvenv:`` + a hash of the
    content only. When that still matches, the image is taken as unchanged and the
    caller records the current identity in its place (once), so that a later
    rebuild is seen.
    """
    if not isinstance(recorded, str) or not recorded.startswith("pyvenv:"):
        return None  # a hand-edited baseline may hold anything here
    try:
        cfg = (prefix / "pyvenv.cfg").read_bytes()
    except OSError:
        return None
    if recorded != "pyvenv:" + sha256(cfg).hexdigest()[:32]:
        return None
    return image_identity(prefix)


def _fingerprint(
    conda: Mapping[str, CondaRecord],
    dists: Mapping[str, Distribution],
    pinned: tuple[str, ...],
    frozen: bool,
) -> str:
    # One string hashed at once: the same digest as hashing each line in turn.
    lines = [f"{filename}\0" for filename in sorted(r.filename for r in conda.values())]
    lines.append("\1")
    for name in sorted(dists):
        dist = dists[name]
        where = "@system" if dist.system_site else ""
        lines.append(f"{dist.name}=={dist.version}:{dist.directory}{where}\0")
    lines.append("\1" + "\n".join(pinned) + ("\1frozen" if frozen else ""))
    return sha256("".join(lines).encode()).hexdigest()


def read_state(
    prefix: Path, cache: ReadCache | None = None, *, conda_again: bool = False
) -> InstalledState:
    """Read ``prefix``. A missing prefix gives an empty state with ``exists=False``.
    ``conda_again``: after a pip install, the records ``cache`` read before are taken
    while ``conda-meta`` lists what it listed then (``read_conda_records(again=)``)."""
    if not prefix.is_dir():
        return InstalledState(
            prefix=prefix,
            exists=False,
            kind="venv",
            python_version=None,
            site_packages=None,
        )
    cache = cache if cache is not None else ReadCache()
    conda, details = read_conda_records(prefix, cache, again=conda_again)
    is_conda = (prefix / "conda-meta").is_dir()
    site, python_version = find_site_packages(prefix)
    dists = read_distributions(site, cache)
    dist_owner: dict[str, str] = {}
    if details:
        by_dir = {d.directory: d.name for d in dists.values()}
        for conda_name, shipped in details.shipped():
            for directory in shipped:
                dist_name = by_dir.get(directory) or _dist_name_from_dir(directory)
                if dist_name in dists:
                    dist_owner[dist_name] = conda_name
    is_venv = (prefix / "pyvenv.cfg").is_file()
    for system_dir in system_site_dirs(prefix, python_version) if is_venv else ():
        for name, dist in read_distributions(system_dir, cache).items():
            if name not in dists:  # the venv's own copy comes first on sys.path
                dists[name] = replace(dist, system_site=True)
    user_site: dict[str, Distribution] = {}
    if not is_venv or _includes_system_site(prefix):
        user_site = read_distributions(_user_site(python_version))
    pinned = read_pinned(prefix)
    frozen = (prefix / "conda-meta" / "frozen").exists()
    return InstalledState(
        prefix=prefix,
        exists=True,
        kind="conda" if is_conda else "venv",
        python_version=python_version,
        site_packages=site,
        conda=conda,
        details=details,
        dists=dists,
        user_site=user_site,
        dist_owner=dist_owner,
        pinned=pinned,
        frozen=frozen,
        is_venv=is_venv,
    )
