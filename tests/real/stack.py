"""The real-package tier's wheels and environments: pinned PyPI wheels, a venv and a conda prefix.

``wheels.json`` (beside this file) pins every wheel the tier uses: name,
version, exact file name, sha256 and size, for CPython 3.11 on manylinux
x86_64 (and, under ``studio_kernel``, the Studio image's kernel for CPython 3.12:
:mod:`tests.real.kernel`). :func:`ensure_wheels` downloads the missing ones once into the cache
directory (:func:`cache_dir`: ``$RECONCILER_REAL_WHEELS``, default
``~/.cache/reconciler-tests/real-wheels``) with ``pip download --isolated
--require-hashes --no-deps --only-binary :all:`` and checks every file's hash
on each call; a warm cache is never sent to the network. That download is the
only network use of the whole test suite; everything after it runs offline
against the cache (``--find-links`` + ``--no-index``).

:data:`IMAGE` is the "managed image": 54 distributions of a data-science
stack (numpy 1.26.4, pandas, scipy, scikit-learn, matplotlib, ipykernel and
friends, packaging 21.3, pluggy 1.0.0, urllib3 1.26.19, PyJWT). The other
pinned wheels are what the scenarios add, or newer releases that the image's
pins exclude. :func:`build_image_venv` makes the image as a venv;
:func:`conda_from_venv` turns a copy of it into a hybrid venv + conda prefix
whose ``conda-meta`` records list each distribution's files (dist-info
included), as a conda-forge image has them. :func:`clone_env` copies an
environment cheaply (the big, never-written package trees are hard links).

Used by ``tests/real/conftest.py`` and ``bench/real.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.envs import history_block, isolated_env, make_venv, pip_install

__all__ = [
    "CONDA_NAMES",
    "IMAGE",
    "PINS",
    "SITE",
    "Fetched",
    "Pin",
    "RealWheelsError",
    "build_image_venv",
    "cache_dir",
    "clone_env",
    "conda_from_venv",
    "ensure_wheels",
    "exact_wheels",
    "installed_versions",
    "linked_trees",
    "platform_supported",
    "venv_like",
]

HERE = Path(__file__).resolve().parent
#: Environment variable naming the wheel cache directory.
CACHE_VARIABLE = "RECONCILER_REAL_WHEELS"
#: Environment variable naming the index the cache is filled from.
INDEX_VARIABLE = "RECONCILER_REAL_INDEX_URL"
DEFAULT_INDEX_URL = "https://pypi.org/simple"
#: ``lib/python3.11/site-packages`` of the tier's environments.
SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


class RealWheelsError(Exception):
    """The wheel cache could not be filled or holds a file with the wrong hash."""


@dataclass(frozen=True, slots=True)
class Pin:
    """One pinned wheel file."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int

    @property
    def requirement(self) -> str:
        """``name==version``."""
        return f"{self.name}=={self.version}"


def _load_pins() -> tuple[Pin, ...]:
    document = json.loads((HERE / "wheels.json").read_text(encoding="utf-8"))
    return tuple(Pin(**entry) for entry in document["wheels"])


#: Every pinned wheel, in ``wheels.json`` order.
PINS: tuple[Pin, ...] = _load_pins()

#: The managed image: what :func:`build_image_venv` installs (exact versions).
IMAGE: tuple[str, ...] = (
    "numpy==1.26.4", "pandas==2.2.2", "python-dateutil==2.9.0.post0", "six==1.16.0",
    "pytz==2024.1", "tzdata==2024.1", "scipy==1.13.1", "scikit-learn==1.5.0", "joblib==1.4.2",
    "threadpoolctl==3.5.0", "matplotlib==3.9.0", "contourpy==1.2.1", "cycler==0.12.1",
    "fonttools==4.53.0", "kiwisolver==1.4.5", "pillow==10.3.0", "pyparsing==3.1.2",
    "packaging==21.3", "pluggy==1.0.0", "urllib3==1.26.19", "requests==2.32.3",
    "charset-normalizer==3.3.2", "idna==3.7", "certifi==2024.6.2", "ipykernel==6.29.4",
    "comm==0.2.2", "debugpy==1.8.1", "ipython==8.25.0", "jupyter-client==8.6.2",
    "jupyter-core==5.7.2", "matplotlib-inline==0.1.7", "nest-asyncio==1.6.0", "psutil==5.9.8",
    "pyzmq==26.0.3", "tornado==6.4.1", "traitlets==5.14.3", "decorator==5.1.1", "jedi==0.19.1",
    "parso==0.8.4", "prompt-toolkit==3.0.47", "wcwidth==0.2.13", "pygments==2.18.0",
    "stack-data==0.6.3", "executing==2.0.1", "asttokens==2.4.1", "pure-eval==0.2.2",
    "typing-extensions==4.12.2", "pexpect==4.9.0", "ptyprocess==0.7.0", "platformdirs==4.2.2",
    "pip==24.0", "PyJWT==2.8.0", "attrs==23.2.0", "pyyaml==6.0.1",
)  # fmt: skip

#: pip name (canonical) -> conda-forge package name, where they differ.
CONDA_NAMES: Mapping[str, str] = {
    "pyjwt": "pyjwt",
    "matplotlib": "matplotlib-base",
    "typing-extensions": "typing_extensions",
    "jupyter-client": "jupyter_client",
    "jupyter-core": "jupyter_core",
    "stack-data": "stack_data",
    "pure-eval": "pure_eval",
}


def platform_supported() -> bool:
    """Whether this interpreter can install the pinned wheels (CPython 3.11, Linux x86_64)."""
    import platform

    return (
        sys.implementation.name == "cpython"
        and sys.version_info[:2] == (3, 11)
        and sys.platform == "linux"
        and platform.machine() == "x86_64"
    )


def cache_dir() -> Path:
    """``$RECONCILER_REAL_WHEELS`` or ``~/.cache/reconciler-tests/real-wheels``."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "reconciler-tests" / "real-wheels"


@dataclass(frozen=True, slots=True)
class Fetched:
    """What :func:`ensure_wheels` did: files downloaded now, files already cached."""

    directory: Path
    fetched: int
    cached: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _good(path: Path, pin: Pin) -> bool:
    try:
        if path.stat().st_size != pin.size:
            return False
    except FileNotFoundError:
        return False
    return _sha256(path) == pin.sha256


def _rounds(pins: Iterable[Pin]) -> list[list[Pin]]:
    """Groups without a repeated name (pip refuses two versions of one name in one run)."""
    rounds: list[list[Pin]] = []
    for pin in pins:
        for group in rounds:
            if all(p.name.lower() != pin.name.lower() for p in group):
                group.append(pin)
                break
        else:
            rounds.append([pin])
    return rounds


def ensure_wheels(
    directory: Path | None = None,
    pins: Sequence[Pin] = PINS,
    index_url: str | None = None,
    *,
    python_version: str | None = None,
) -> Fetched:
    """Make ``directory`` hold every pinned file with its hash; download only what is missing.

    ``python_version``: the pins are for another CPython than this one (``"3.12"``:
    pip downloads for it, manylinux x86_64). A cached file with the wrong size or hash
    is downloaded again. Raises :class:`RealWheelsError` when pip fails or delivers a
    different file.
    """
    directory = cache_dir() if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    missing = [pin for pin in pins if not _good(directory / pin.filename, pin)]
    index = index_url or os.environ.get(INDEX_VARIABLE) or DEFAULT_INDEX_URL
    for group in _rounds(missing):
        _download(directory, group, index, python_version)
    return Fetched(directory, len(missing), len(pins) - len(missing))


def _target_args(python_version: str | None) -> list[str]:
    """pip download's options for wheels of another CPython (``--only-binary`` is given)."""
    if python_version is None:
        return []
    abi = "cp" + python_version.replace(".", "")
    return ["--python-version", python_version, "--implementation", "cp", "--abi", abi,
            "--platform", "manylinux2014_x86_64"]  # fmt: skip


def _download(
    directory: Path, pins: Sequence[Pin], index_url: str, python_version: str | None = None
) -> None:
    with tempfile.TemporaryDirectory(prefix=".download-", dir=directory) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(
            "".join(f"{p.requirement} --hash=sha256:{p.sha256}\n" for p in pins), encoding="utf-8"
        )
        cmd = [
            sys.executable, "-m", "pip", "download", "--isolated", "--no-deps",
            "--only-binary", ":all:", "--require-hashes", "--index-url", index_url,
            "--timeout", "60", "--retries", "3", "--progress-bar", "off", "--quiet",
            "--dest", tmp, "-r", str(requirements), *_target_args(python_version),
        ]  # fmt: skip
        result = subprocess.run(cmd, env=isolated_env(), capture_output=True, text=True)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-12:])
            raise RealWheelsError(
                f"could not download {len(pins)} real wheels from {index_url} into {directory}:"
                f"\n{tail}\nhint: check the network, or set {CACHE_VARIABLE} to a directory "
                f"holding the files of tests/real/wheels.json ({INDEX_VARIABLE} picks the index)"
            )
        for pin in pins:
            got = Path(tmp) / pin.filename
            if not _good(got, pin):
                raise RealWheelsError(
                    f"{index_url} did not deliver {pin.filename} with sha256 {pin.sha256}"
                )
            os.replace(got, directory / pin.filename)


def exact_wheels(source: Path, dest: Path, pins: Sequence[Pin] = PINS) -> Path:
    """``dest``, made afresh, holding hard links to exactly ``pins``' files in ``source``.

    A scenario's ``find_links`` offers the pinned set and nothing else, whatever else the
    cache directory has come to hold (another tier's wheels, a file left by hand).
    """
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for pin in pins:
        try:
            os.link(source / pin.filename, dest / pin.filename)
        except OSError:  # another file system
            shutil.copy2(source / pin.filename, dest / pin.filename)
    return dest


# -- environments ---------------------------------------------------------------------------


def installed_versions(prefix: Path) -> dict[str, str]:
    """Canonical name -> version of every dist-info in ``prefix``'s site-packages."""
    from packaging.utils import canonicalize_name

    out: dict[str, str] = {}
    for info in (Path(prefix) / SITE).glob("*.dist-info"):
        headers = _headers(info / "METADATA")
        out[canonicalize_name(headers["Name"])] = headers["Version"]
    return out


def _headers(path: Path) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        headers.setdefault(key.strip(), value.strip())
    return headers


def build_image_venv(
    dest: Path,
    wheels: Path,
    requirements: Sequence[str] = IMAGE,
    env: Mapping[str, str] | None = None,
) -> Path:
    """A venv at ``dest`` holding exactly ``requirements``, installed offline from ``wheels``."""
    make_venv(dest)
    pip_install(dest, requirements, wheels, env)
    return dest


def _site_entry_sizes(site: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for entry in site.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            total = 0
            for root, _dirs, files in os.walk(entry):
                total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
            sizes[entry.name] = total
    return sizes


_BIG_TREES: dict[Path, frozenset[str]] = {}


def linked_trees(src: Path, link_over: int = 1 << 20) -> frozenset[str]:
    """site-packages entries of ``src`` that :func:`clone_env` hard-links (over ``link_over``)."""
    src = Path(src).resolve()
    if src not in _BIG_TREES:
        sizes = _site_entry_sizes(src / SITE)
        _BIG_TREES[src] = frozenset(n for n, size in sizes.items() if size > link_over)
    return _BIG_TREES[src]


def clone_env(src: Path, dest: Path, *, link_over: int = 1 << 20) -> Path:
    """Copy the environment ``src`` to ``dest``; site-packages trees over ``link_over`` are linked.

    Only the package trees no scenario writes to are big (numpy, scipy, pandas,
    ...): their files become hard links (fast, no disk), everything else is a
    real copy (dist-infos, small packages such as ``jwt/`` that a clash may
    overwrite, ``bin/``, ``pyvenv.cfg``, ``conda-meta/``). ``src`` must not
    change between clones (the sizes are measured once per ``src``).
    """
    src, dest = Path(src).resolve(), Path(dest)
    site = src / SITE
    big = linked_trees(src, link_over)
    dest.mkdir(parents=True)
    top = [str(e) for e in src.iterdir() if e.name != "lib"]
    entries = sorted(e.name for e in site.iterdir())
    small = [str(site / n) for n in entries if n not in big]
    linked = [str(site / n) for n in entries if n in big]
    (dest / SITE).mkdir(parents=True)
    for flags, sources, target in (("-a", top, dest), ("-a", small, dest / SITE),
                                   ("-al", linked, dest / SITE)):  # fmt: skip
        if sources:
            subprocess.run(["cp", flags, *sources, str(target)], check=True)
    return dest


def venv_like(master: Path, dest: Path) -> Path:
    """A new venv at ``dest`` (``python -m venv``) with ``master``'s site-packages (cheap copy).

    Unlike :func:`clone_env`, ``pyvenv.cfg`` and ``bin/`` are the new venv's
    own, exactly as rebuilding the image at ``dest`` would leave them.
    """
    master = Path(master).resolve()
    make_venv(dest)
    site, target = master / SITE, Path(dest) / SITE
    big = linked_trees(master)
    entries = sorted(e.name for e in site.iterdir())
    for flags, names in (("-a", [n for n in entries if n not in big]), ("-al", sorted(big))):
        if names:
            subprocess.run(["cp", flags, *(str(site / n) for n in names), str(target)], check=True)
    return Path(dest)


def _record_rows(info: Path) -> list[list[str]]:
    import csv

    with (info / "RECORD").open(encoding="utf-8", newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def _prefix_path(rel: str) -> str:
    """A RECORD path (relative to site-packages) as a path relative to the prefix."""
    return os.path.normpath(f"{SITE}/{rel}")


def _set_installer_conda(info: Path) -> None:
    """INSTALLER says ``conda`` and RECORD carries its new hash, as conda-forge packages ship."""
    data = b"conda\n"
    (info / "INSTALLER").write_bytes(data)
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    rows = _record_rows(info)
    installer = f"{info.name}/INSTALLER"
    rows = [r for r in rows if r[0] != installer] + [
        [installer, f"sha256={digest}", str(len(data))]
    ]
    text = "".join(",".join(r) + "\n" for r in rows)
    (info / "RECORD").write_text(text, encoding="utf-8")


def _conda_record(info: Path, prefix: Path) -> dict[str, object]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    headers = _headers(info / "METADATA")
    pip_name = canonicalize_name(headers["Name"])
    name = CONDA_NAMES.get(pip_name, pip_name)
    version = headers["Version"]
    build = "pyhd8ed1ab_0"
    paths = []
    for row in _record_rows(info):
        rel = _prefix_path(row[0])
        full = prefix / rel
        if "__pycache__" in rel or not full.is_file():
            continue
        paths.append(
            {"_path": rel, "path_type": "hardlink", "sha256": _sha256(full),
             "size_in_bytes": full.stat().st_size}
        )  # fmt: skip
    depends = ["python >=3.11,<3.12.0a0"]
    for line in (info / "METADATA").read_text(encoding="utf-8").splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.partition(":")[2].strip())
            if req.marker is None:
                dep = canonicalize_name(req.name)
                depends.append(f"{CONDA_NAMES.get(dep, dep)} {req.specifier}".strip())
    filename = f"{name}-{version}-{build}"
    return {
        "name": name, "version": version, "build": build, "build_number": 0,
        "channel": "https://conda.anaconda.org/conda-forge", "subdir": "noarch",
        "noarch": "python", "fn": f"{filename}.conda",
        "url": f"https://conda.anaconda.org/conda-forge/noarch/{filename}.conda",
        "md5": hashlib.md5(filename.encode()).hexdigest(), "depends": depends,
        "files": sorted(p["_path"] for p in paths),
        "paths_data": {"paths_version": 1, "paths": sorted(paths, key=lambda p: p["_path"])},
        "requested_spec": "", "timestamp": 1767225600000, "license": "",
        "link": {"source": f"/opt/conda/pkgs/{filename}", "type": 1},
    }  # fmt: skip


def conda_from_venv(venv: Path, dest: Path) -> Path:
    """A hybrid venv + conda prefix at ``dest``: a clone of ``venv`` plus ``conda-meta`` records.

    Every distribution gets a record (conda-forge name, build ``pyhd8ed1ab_0``)
    whose ``files`` list its files, its ``.dist-info/RECORD`` included, and its
    dist-info's INSTALLER says ``conda``; a ``python`` record and one
    ``conda-meta/history`` block (the image build) complete it.
    """
    prefix = clone_env(venv, dest)
    meta = prefix / "conda-meta"
    meta.mkdir()
    lines = []
    for info in sorted((prefix / SITE).glob("*.dist-info")):
        _set_installer_conda(info)
        record = _conda_record(info, prefix)
        stem = f"{record['name']}-{record['version']}-{record['build']}"
        (meta / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        lines.append(f"+conda-forge/noarch::{stem}")
    python = {
        "name": "python", "version": "3.11.7", "build": "hab00c5b_0_cpython", "build_number": 0,
        "channel": "https://conda.anaconda.org/conda-forge", "subdir": "linux-64",
        "fn": "python-3.11.7-hab00c5b_0_cpython.conda", "depends": [], "files": ["bin/python"],
        "url": "https://conda.anaconda.org/conda-forge/linux-64/python-3.11.7-hab00c5b_0_cpython.conda",
        "md5": "0" * 32, "requested_spec": "python=3.11", "timestamp": 1767225600000,
        "paths_data": {"paths_version": 1, "paths": []},
        "link": {"source": "/opt/conda/pkgs/python-3.11.7-hab00c5b_0_cpython", "type": 1},
    }  # fmt: skip
    (meta / "python-3.11.7-hab00c5b_0_cpython.json").write_text(json.dumps(python, indent=1))
    lines.append("+conda-forge/linux-64::python-3.11.7-hab00c5b_0_cpython")
    (meta / "history").write_text(history_block("image build", lines))
    return prefix
