"""Hand-made, installable pure-Python wheels (no setuptools, no network), for the demo,
the tests and the benchmarks.

:func:`build_wheel` writes one ``py3-none-any`` wheel with :mod:`zipfile`: a
module ``<import_name>/__init__.py`` holding ``__version__``, and a
``<Dist>-<version>.dist-info`` with ``METADATA`` (Metadata-Version 2.1),
``WHEEL`` and a ``RECORD`` with real sha256 hashes and sizes. Output is
byte-for-byte deterministic.

:func:`build_wheelhouse` builds the standard wheelhouse. The demo, the tests
and the benchmarks depend on exactly this set (see :data:`STANDARD_WHEELS`):

==============  ========  ==========================================================
distribution    versions  Requires-Dist
==============  ========  ==========================================================
alpha           1.0, 2.0  (none)
beta            1.0       ``alpha>=1``
beta            2.0       ``alpha>=2``
gamma           1.0       ``beta>=2``  (gamma -> beta 2 -> alpha 2: transitive chain)
delta           1.0, 1.1  (none)
epsilon-pkg     1.0       (none); METADATA ``Name: Epsilon-Pkg``,
                          directory ``Epsilon_Pkg-1.0.dist-info``, module
                          ``epsilon_pkg``
torchy          1.0, 2.0  (none); the pip distribution shipped by conda ``pytorchy``
needs-torchy    1.0       ``torchy>=2``
pyfoo           1.0, 2.0  (none); also shipped by conda package ``pyfoo``
==============  ========  ==========================================================

``ipykernel`` is deliberately NOT in the wheelhouse.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from reconciler.names import canonical_name

__all__ = [
    "STANDARD_WHEELS",
    "WHEEL",
    "build_wheel",
    "build_wheelhouse",
    "dist_files",
    "dist_info_dir",
    "escape_dist_name",
    "import_name",
    "metadata_text",
    "record_hash",
    "record_text",
    "wheel_filename",
]

#: (name, version, requires, dist_name) of every wheel in the standard wheelhouse.
STANDARD_WHEELS: tuple[tuple[str, str, tuple[str, ...], str | None], ...] = (
    ("alpha", "1.0", (), None),
    ("alpha", "2.0", (), None),
    ("beta", "1.0", ("alpha>=1",), None),
    ("beta", "2.0", ("alpha>=2",), None),
    ("gamma", "1.0", ("beta>=2",), None),
    ("delta", "1.0", (), None),
    ("delta", "1.1", (), None),
    ("epsilon-pkg", "1.0", (), "Epsilon-Pkg"),
    ("torchy", "1.0", (), None),
    ("torchy", "2.0", (), None),
    ("needs-torchy", "1.0", ("torchy>=2",), None),
    ("pyfoo", "1.0", (), None),
    ("pyfoo", "2.0", (), None),
)

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
#: The WHEEL file of every hand-made distribution (uv treats a dist-info without one as broken).
WHEEL = (
    b"Wheel-Version: 1.0\nGenerator: reconciler.demo\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
)


def escape_dist_name(name: str) -> str:
    """Escape a distribution name for file names, keeping its case (``Epsilon_Pkg``)."""
    return re.sub(r"[-_.]+", "_", name)


def import_name(name: str) -> str:
    """Module name a hand-made distribution provides: its normalised name with underscores."""
    return canonical_name(name).replace("-", "_")


def dist_info_dir(dist_name: str, version: str) -> str:
    """Directory name of a distribution's ``.dist-info`` (``Epsilon_Pkg-1.0.dist-info``)."""
    return f"{escape_dist_name(dist_name)}-{version}.dist-info"


def record_hash(data: bytes) -> str:
    """``sha256=<urlsafe base64, unpadded>`` as written in RECORD files."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def metadata_text(dist_name: str, version: str, requires: Sequence[str] = ()) -> str:
    """Core metadata (Metadata-Version 2.1) for a distribution."""
    lines = ["Metadata-Version: 2.1", f"Name: {dist_name}", f"Version: {version}"]
    # An extra used in a marker must be declared, or pip ignores ``name[extra]``.
    extras = sorted({e for r in requires for e in re.findall(r"extra\s*==\s*['\"]([^'\"]+)", r)})
    lines += [f"Provides-Extra: {extra}" for extra in extras]
    lines += [f"Requires-Dist: {req}" for req in requires]
    return "\n".join(lines) + "\n"


def record_text(files: dict[str, bytes], record_path: str) -> str:
    """RECORD content for ``files`` (paths relative to the install root) plus RECORD itself."""
    rows = [f"{path},{record_hash(data)},{len(data)}" for path, data in sorted(files.items())]
    rows.append(f"{record_path},,")
    return "\n".join(rows) + "\n"


def dist_files(
    name: str,
    version: str,
    requires: Sequence[str] = (),
    *,
    dist_name: str | None = None,
    module: str | None = None,
) -> tuple[dict[str, bytes], str]:
    """Module and dist-info files (without RECORD) of a distribution, and its dist-info dir.

    ``module`` names the top-level package (default: :func:`import_name` of ``name``)."""
    dist = dist_name or name
    info = dist_info_dir(dist, version)
    files = {
        f"{module or import_name(name)}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{info}/METADATA": metadata_text(dist, version, requires).encode(),
    }
    return files, info


def wheel_filename(name: str, version: str) -> str:
    """Wheel file name per the binary distribution spec: ``epsilon_pkg-1.0-py3-none-any.whl``."""
    return f"{import_name(name)}-{version}-py3-none-any.whl"


def build_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    requires: Sequence[str] = (),
    *,
    dist_name: str | None = None,
    module: str | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> Path:
    """Write a pure-Python wheel for ``name`` ``version`` into ``dest_dir`` and return its path.

    ``dist_name`` is the ``Name:`` written to METADATA and the (case-preserving)
    stem of the dist-info directory; it defaults to ``name``. ``module`` names its
    top-level package (two distributions may ship one: ``jwt`` and ``PyJWT``);
    ``extra`` adds files by wheel path (``pkg/data.txt``,
    ``<dist>-<v>.data/scripts/tool``), listed in RECORD.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    files, info = dist_files(name, version, requires, dist_name=dist_name, module=module)
    files.update(extra or {})
    files[f"{info}/WHEEL"] = WHEEL
    record_path = f"{info}/RECORD"
    files[record_path] = record_text(files, record_path).encode()

    target = dest_dir / wheel_filename(name, version)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        # RECORD last, as the spec recommends; everything else sorted.
        for path in sorted(files, key=lambda p: (p == record_path, p)):
            entry = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, files[path])
    os.replace(tmp, target)
    return target


def build_wheelhouse(dest: Path) -> Path:
    """Build the standard wheelhouse (:data:`STANDARD_WHEELS`) in ``dest``; idempotent."""
    dest = Path(dest)
    for name, version, requires, dist_name in STANDARD_WHEELS:
        build_wheel(dest, name, version, requires, dist_name=dist_name)
    return dest
