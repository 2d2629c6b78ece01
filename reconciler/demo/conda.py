"""Hand-made conda packages and a local ``file://`` channel (demo, tests, benchmarks).

:func:`build_conda_package` writes a deterministic ``.tar.bz2`` conda package
(``info/index.json``, ``info/paths.json``, ``info/files`` and the payload) into
``<channel>/noarch/``; :func:`index_channel` writes its ``repodata.json`` with
rattler.

:func:`build_channel` builds the standard channel. The demo and the tests depend
on exactly this set (see :data:`STANDARD_PACKAGES`); every build string is
``"0"``, build_number 0, subdir ``noarch``:

=============  ========  =======  ===================  ====================================
package        version   noarch   depends              payload
=============  ========  =======  ===================  ====================================
python         3.X.0     generic  (none)               none: a FAKE python record, X = the
                                                       running interpreter's minor version
libfoo         1.0, 2.0  generic  (none)               ``share/libfoo/VERSION``
pyfoo          1.0       python   python, libfoo >=1   pip dist ``pyfoo`` 1.0
pyfoo          2.0       python   python, libfoo >=2   pip dist ``pyfoo`` 2.0
pytorchy       1.0, 2.0  python   python               pip dist ``torchy`` 1.0 / 2.0
condaonly      1.0, 1.1  generic  (none)               ``share/condaonly/VERSION``
needs-libfoo2  1.0       generic  libfoo >=2           ``share/needs-libfoo2/VERSION``
=============  ========  =======  ===================  ====================================

The fake ``python`` record ships no files: installed next to a venv it makes
noarch python packages link into the venv's ``lib/python3.X/site-packages``,
giving a real hybrid conda + venv prefix (see :func:`reconciler.demo.envs.make_conda_prefix`).

Noarch python payload lives under ``site-packages/`` in the archive, as in real
packages; rattler relocates it. After installation the prefix's
``conda-meta/pyfoo-1.0-0.json`` ``files`` lists
``lib/python3.X/site-packages/pyfoo-1.0.dist-info/RECORD``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from reconciler.demo.wheels import WHEEL, dist_files, record_text
from reconciler.values import value

__all__ = [
    "PYTHON_VERSION",
    "STANDARD_PACKAGES",
    "PackageSpec",
    "build_channel",
    "build_conda_package",
    "index_channel",
    "package_filename",
    "rattler_available",
]

#: Fixed build timestamp (2026-01-01T00:00:00Z, milliseconds) for reproducible packages.
TIMESTAMP_MS = 1767225600000
#: Version of the fake ``python`` record: the running interpreter's ``3.X.0``.
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}.0"

_PythonDist = tuple[str, str, Sequence[str]]


def package_filename(name: str, version: str, build: str = "0") -> str:
    """Archive name of a conda package: ``name-version-build.tar.bz2``."""
    return f"{name}-{version}-{build}.tar.bz2"


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    """A deterministic bzip2 tarball of ``members`` (sorted, mtime 0, root-owned)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for path in sorted(members):
            data = members[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _python_payload(dist: _PythonDist) -> dict[str, bytes]:
    """``site-packages/`` files of a pip distribution shipped inside a conda package."""
    dist_name, dist_version, requires = dist
    files, info = dist_files(dist_name, dist_version, requires)
    files[f"{info}/INSTALLER"] = b"conda\n"
    files[f"{info}/WHEEL"] = WHEEL
    record_path = f"{info}/RECORD"
    files[record_path] = record_text(files, record_path).encode()
    return {f"site-packages/{path}": data for path, data in files.items()}


def build_conda_package(
    channel_dir: Path,
    name: str,
    version: str,
    build: str = "0",
    *,
    depends: Sequence[str] = (),
    noarch: str = "generic",
    python_dist: _PythonDist | None = None,
    files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``channel_dir/noarch/name-version-build.tar.bz2`` and return its path.

    ``files`` maps archive paths to content, verbatim (noarch python payload
    must start with ``site-packages/``). ``python_dist=(dist_name, version,
    requires)`` adds a pip distribution (module, ``.dist-info`` with METADATA,
    INSTALLER ``conda``, WHEEL and RECORD) under ``site-packages/``; it needs
    ``noarch="python"``, and noarch python packages must depend on ``python``.
    """
    if python_dist is not None and noarch != "python":
        raise ValueError(f"{name}: python_dist needs noarch='python'")
    if noarch == "python" and not any(d.split()[0] == "python" for d in depends):
        raise ValueError(f"{name}: a noarch python package must depend on python")
    payload = dict(files or {})
    if python_dist is not None:
        payload.update(_python_payload(python_dist))

    build_number = int(build.rsplit("_", 1)[-1]) if build.rsplit("_", 1)[-1].isdigit() else 0
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": build_number,
        "depends": list(depends),
        "noarch": noarch,
        "subdir": "noarch",
        "timestamp": TIMESTAMP_MS,
    }
    paths = {
        "paths_version": 1,
        "paths": [
            {
                "_path": path,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(data).hexdigest(),
                "size_in_bytes": len(data),
            }
            for path, data in sorted(payload.items())
        ],
    }
    members = dict(payload)
    members["info/index.json"] = json.dumps(index, indent=2, sort_keys=True).encode()
    members["info/paths.json"] = json.dumps(paths, indent=2, sort_keys=True).encode()
    members["info/files"] = "".join(f"{path}\n" for path in sorted(payload)).encode()

    target = Path(channel_dir) / "noarch" / package_filename(name, version, build)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = _tar_bytes(members)
    if not target.is_file() or target.read_bytes() != data:
        target.write_bytes(data)
    return target


def rattler_available() -> bool:
    """Whether py-rattler is importable (it needs Python >= 3.10)."""
    return importlib.util.find_spec("rattler") is not None


def index_channel(channel_dir: Path) -> Path:
    """(Re)write ``repodata.json`` of every subdir of ``channel_dir`` with rattler."""
    from rattler.index import index_fs  # py-rattler needs Python >= 3.10

    channel_dir = Path(channel_dir)
    (channel_dir / "noarch").mkdir(parents=True, exist_ok=True)
    from reconciler.backends.conda import _settle_at_exit

    _settle_at_exit()  # an async py-rattler operation: the interpreter waits for it at exit
    # index_fs is a coroutine in py-rattler 0.28.
    asyncio.run(index_fs(channel_dir, write_zst=False, write_shards=False, force=True))
    return channel_dir


@value
class PackageSpec:
    """Arguments of :func:`build_conda_package` for one standard package."""

    name: str
    version: str
    depends: tuple[str, ...] = ()
    noarch: str = "generic"
    python_dist: _PythonDist | None = None
    with_version_file: bool = False

    def build(self, channel_dir: Path) -> Path:
        """Write this package into ``channel_dir``."""
        files = {f"share/{self.name}/VERSION": f"{self.version}\n".encode()}
        return build_conda_package(
            channel_dir,
            self.name,
            self.version,
            depends=self.depends,
            noarch=self.noarch,
            python_dist=self.python_dist,
            files=files if self.with_version_file else None,
        )


#: Every package of the standard channel (see the module docstring).
STANDARD_PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec("python", PYTHON_VERSION),
    *(PackageSpec("libfoo", v, with_version_file=True) for v in ("1.0", "2.0")),
    *(
        PackageSpec("pyfoo", v, ("python", f"libfoo >={v[0]}"), "python", ("pyfoo", v, ()))
        for v in ("1.0", "2.0")
    ),
    *(PackageSpec("pytorchy", v, ("python",), "python", ("torchy", v, ())) for v in ("1.0", "2.0")),
    *(PackageSpec("condaonly", v, with_version_file=True) for v in ("1.0", "1.1")),
    PackageSpec("needs-libfoo2", "1.0", ("libfoo >=2",), with_version_file=True),
)


def build_channel(dest: Path) -> Path:
    """Build and index the standard channel in ``dest``; idempotent. Returns ``dest``."""
    dest = Path(dest)
    for spec in STANDARD_PACKAGES:
        spec.build(dest)
    return index_channel(dest)
