"""Realistic, synthetic environments for benchmarks.

:func:`build_image` turns a conda explicit list (``@EXPLICIT``, one
``.../<subdir>/<name>-<version>-<build>.conda#<md5>`` URL per line, e.g.
``/work/shared/data/sagemaker-distribution-4.4.1-cpu.env.out``) into a hybrid
prefix shaped like a SageMaker Distribution image:

* a venv made with a Python matching the list's ``python`` package (major.minor),
  so ``<dest>/bin/python`` really runs and sees the site-packages;
* ``conda-meta/<name>-<version>-<build>.json`` for every line, as conda writes it
  (``depends``, ``files``, ``paths_data``, ``requested_spec``, ``link``, ...).
  ``depends`` only name packages of the list, at ``>=`` their listed version, so
  the conda closure is satisfied; ``files`` has 5-3000 paths (heavier for big
  libraries), deterministic pseudo-random;
* for every Python package a real ``<Dist>-<version>.dist-info`` (METADATA,
  RECORD, INSTALLER ``conda``, WHEEL) in ``lib/pythonX.Y/site-packages``, listed in the
  record's ``files`` as ``lib/pythonX.Y/site-packages/<Dist>-<version>.dist-info/RECORD``.
  ``Requires-Dist`` edges (0-5, to earlier Python packages at ``>=`` their
  installed version, mirrored in the conda ``depends``) keep the pip closure
  satisfied;
* ``conda-meta/history`` with one block listing every package.

Python-package heuristic: the build string contains ``py`` (``pyhd8ed1ab_0``,
``py312h...``, ``cpu_py312_...``, ``py_1006``), or the package is noarch and its
name starts with ``py``/``python-``; ``python``, ``cpython``, ``python_abi`` and
friends are not distributions. Conda names map to pip names through
:data:`PIP_NAMES`; :data:`METAPACKAGES` ship no dist-info. When two packages
map to one pip name only the first (mapped names first, then ``py`` builds,
then list order) ships it. Versions that are not valid PEP 440 get no dist-info.

Output is deterministic (same input and interpreter, same bytes, apart from the
venv's own files). :func:`ensure_image` caches a build under a stamp (hash of the
input, this generator and the interpreter). :func:`build_venv_image` makes a plain
venv with ~200 synthetic distributions.

CLI: ``python -m bench.image DATAFILE DEST`` prints the number of records and
dist-infos, the size and the time taken.
"""

from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

#: Conventional cache for :func:`ensure_image` (git-ignored).
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".cache"
#: Bump to invalidate every cached image even if this file's text did not change.
GENERATOR_VERSION = "1"
#: Fixed history timestamp and link source of generated images.
BUILD_TIME = "2026-01-01 00:00:00"
PKGS_DIR = "/opt/conda/pkgs"
TIMESTAMP_MS = 1767225600000

#: Conda package name -> pip distribution name where they differ.
PIP_NAMES = {
    "antlr-python-runtime": "antlr4-python3-runtime",
    "brotli-python": "Brotli",
    "cython-blis": "blis",
    "docker-py": "docker",
    "fastapi-core": "fastapi",
    "google-cloud-bigquery-core": "google-cloud-bigquery",
    "jinja2": "Jinja2",
    "markupsafe": "MarkupSafe",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "nbconvert-core": "nbconvert",
    "py-xgboost": "xgboost",
    "pyarrow-core": "pyarrow",
    "pygments": "Pygments",
    "pyjwt": "PyJWT",
    "pyside6": "PySide6",
    "python-build": "build",
    "python-duckdb": "duckdb",
    "python-fastjsonschema": "fastjsonschema",
    "python-flatbuffers": "flatbuffers",
    "python-graphviz": "graphviz",
    "python-gssapi": "gssapi",
    "python-installer": "installer",
    "python-lsp-server-base": "python-lsp-server",
    "python-tzdata": "tzdata",
    "python-xxhash": "xxhash",
    "pytables": "tables",
    "pytorch": "torch",
    "pywavelets": "PyWavelets",
    "pyyaml": "PyYAML",
    "ray-core": "ray",
    "seaborn-base": "seaborn",
    "sentencepiece-python": "sentencepiece",
    "sqlalchemy": "SQLAlchemy",
    "tensorflow-base": "tensorflow",
}
#: Python-looking conda packages that only pull in others (no dist-info of their own).
METAPACKAGES = frozenset(
    {
        "google-api-core-grpc", "jupyter-scheduler", "matplotlib", "py-xgboost-cpu", "pyarrow",
        "python-lsp-server", "pywin32", "pywin32-on-windows", "ray-default", "ray-tune",
        "tensorflow", "xgboost",
    }
)  # fmt: skip
#: Conda packages that are never pip distributions.
NOT_DISTRIBUTIONS = frozenset(
    {"python", "cpython", "python_abi", "python-gil", "python-freethreading", "pip-mutex"}
)
#: Name fragments of packages given 800-3000 files.
HEAVY = (
    "torch", "tensorflow", "qt6", "llvm", "clang", "arrow", "scipy", "numpy", "pandas",
    "sympy", "plotly", "bokeh", "panel", "jupyterlab", "mkl", "icu", "nodejs", "botocore",
    "transformers", "sagemaker", "ray-core", "spacy", "pyside6", "scikit", "statsmodels",
    "matplotlib", "boost", "grpc", "gtk3", "pandoc", "code-editor", "keras",
)  # fmt: skip
#: WHEEL file of every generated dist-info (uv treats a dist-info without one as broken).
WHEEL = b"Wheel-Version: 1.0\nGenerator: bench.image\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
_SUBDIRS = ("core", "utils", "io", "api", "_internal", "tests", "plugins", "data", "ext", "compat")


# -- the explicit list --------------------------------------------------------------------


@dataclass(frozen=True)
class CondaPackage:
    """One line of a conda explicit list."""

    name: str
    version: str
    build: str
    subdir: str
    channel: str
    url: str
    md5: str
    fn: str

    @property
    def dist(self) -> str:
        """``name-version-build``, the conda-meta record's file stem."""
        return f"{self.name}-{self.version}-{self.build}"

    @property
    def build_number(self) -> int:
        """The build string's numeric suffix (``h4922eb0_0`` -> 0), else 0."""
        tail = self.build.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 0


def parse_explicit(text: str) -> list[CondaPackage]:
    """Packages of a conda explicit list, in file order (dependencies first)."""
    packages = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "@")):
            continue
        url, _, md5 = line.partition("#")
        if md5 and not re.fullmatch(r"[0-9a-f]{32}", md5):
            raise ValueError(f"bad md5 in explicit list line: {line}")
        channel, subdir, fn = url.rsplit("/", 2)
        stem = re.sub(r"\.(conda|tar\.bz2)$", "", fn)
        name, version, build = stem.rsplit("-", 2)
        packages.append(CondaPackage(name, version, build, subdir, channel, url, md5, fn))
    return packages


# -- deterministic helpers ----------------------------------------------------------------


def _rng(*key: object) -> random.Random:
    """A random generator seeded from ``key`` (stable across runs and processes)."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _fake_sha256(path: str) -> str:
    return hashlib.sha256(b"bench:" + path.encode()).hexdigest()


def _record_hash(hex_digest: str) -> str:
    raw = base64.urlsafe_b64encode(bytes.fromhex(hex_digest)).rstrip(b"=")
    return "sha256=" + raw.decode("ascii")


def _escape(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


def _import_name(pip_name: str) -> str:
    return str(canonicalize_name(pip_name)).replace("-", "_")


def _file_count(rng: random.Random, name: str) -> int:
    """5-3000 paths: heavy libraries 800-3000, most packages small."""
    if name in {"python", "cpython"} or any(fragment in name for fragment in HEAVY):
        return rng.randint(800, 3000)
    return rng.randint(5, 60) if rng.random() < 0.7 else rng.randint(60, 600)


# -- python distributions -----------------------------------------------------------------


@dataclass
class PythonDist:
    """The pip distribution a conda package ships."""

    package: CondaPackage
    name: str
    version: str
    requires: list[PythonDist] = field(default_factory=list)

    @property
    def dist_info(self) -> str:
        return f"{_escape(self.name)}-{self.version}.dist-info"


def is_python_package(package: CondaPackage) -> bool:
    """The module docstring's heuristic: ``py`` in the build, or noarch ``py*`` names."""
    if package.name in NOT_DISTRIBUTIONS:
        return False
    noarch_py = package.subdir == "noarch" and package.name.startswith(("py", "python-"))
    return "py" in package.build or noarch_py


def python_dists(packages: Sequence[CondaPackage]) -> dict[str, PythonDist]:
    """Conda name -> shipped pip distribution, with Requires-Dist edges to earlier ones."""
    candidates = []
    for index, package in enumerate(packages):
        if not is_python_package(package) or package.name in METAPACKAGES:
            continue
        try:
            version = str(Version(package.version))
        except InvalidVersion:
            continue
        rank = (package.name not in PIP_NAMES, "py" not in package.build, index)
        candidates.append((rank, package, PIP_NAMES.get(package.name, package.name), version))

    claimed: dict[str, CondaPackage] = {}
    for _, package, pip_name, _ in sorted(candidates, key=lambda c: c[0]):
        claimed.setdefault(str(canonicalize_name(pip_name)), package)

    dists: dict[str, PythonDist] = {}
    for _, package, pip_name, version in sorted(candidates, key=lambda c: c[0][2]):
        if claimed[str(canonicalize_name(pip_name))] is not package:
            continue
        dist = PythonDist(package, pip_name, version)
        earlier = list(dists.values())
        rng = _rng("requires", package.dist)
        count = min(len(earlier), rng.choice((0, 0, 1, 1, 2, 2, 3, 4, 5)))
        dist.requires = sorted(rng.sample(earlier, count), key=lambda d: d.name.lower())
        dists[package.name] = dist
    return dists


def _metadata(dist: PythonDist) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {dist.name}",
        f"Version: {dist.version}",
        f"Summary: {dist.name} (synthetic benchmark metadata)",
        "Requires-Python: >=3.9",
    ]
    lines += [f"Requires-Dist: {req.name}>={req.version}" for req in dist.requires]
    if _rng("extra", dist.package.dist).random() < 0.3:
        lines += ["Provides-Extra: test", 'Requires-Dist: pytest>=7; extra == "test"']
    return "\n".join(lines) + "\n"


# -- conda-meta records -------------------------------------------------------------------


@dataclass
class _Payload:
    """Listed paths with their (sha256, size), and the real files (content) among them."""

    entries: dict[str, tuple[str, int]] = field(default_factory=dict)
    real: dict[str, bytes] = field(default_factory=dict)

    def add(self, path: str, data: bytes | None = None) -> None:
        """List ``path``; with ``data`` it is also written to disk."""
        if data is None:
            digest = hashlib.sha256(b"bench:" + path.encode()).hexdigest()
            self.entries[path] = (digest, 200 + int(digest[:6], 16) % 60000)
        else:
            self.entries[path] = (hashlib.sha256(data).hexdigest(), len(data))
            self.real[path] = data


def _python_payload(dist: PythonDist, site: str, pyver: str) -> _Payload:
    """Module paths, their ``.pyc``, and the real dist-info files of a Python package."""
    rng = _rng("files", dist.package.dist)
    root = _import_name(dist.name)
    modules = set()
    for i in range(max(1, _file_count(rng, dist.package.name) // 2)):
        sub = "" if i < 3 else rng.choice(_SUBDIRS) + "/"
        modules.add(f"{root}/{sub}{'__init__' if i == 0 else f'mod{i:04d}'}.py")
    tag = "cpython-" + pyver.replace(".", "")
    pycs = [re.sub(r"([^/]+)\.py$", rf"__pycache__/\1.{tag}.pyc", m) for m in modules]

    payload = _Payload()
    for rel in sorted([*modules, *pycs]):
        payload.add(f"{site}/{rel}")
    info = dist.dist_info
    payload.add(f"{site}/{info}/METADATA", _metadata(dist).encode())
    payload.add(f"{site}/{info}/INSTALLER", b"conda\n")
    payload.add(f"{site}/{info}/WHEEL", WHEEL)
    rows = [
        f"{path[len(site) + 1 :]},{_record_hash(digest)},{size}"
        for path, (digest, size) in payload.entries.items()
    ]
    rows.append(f"{info}/RECORD,,")
    payload.add(f"{site}/{info}/RECORD", ("\n".join(sorted(rows)) + "\n").encode())
    if rng.random() < 0.2:
        payload.add(f"bin/{canonicalize_name(dist.name)}")
    return payload


def _generic_payload(package: CondaPackage, site: str) -> _Payload:
    """Plausible paths of a non-Python package: libraries, headers, data, tools.

    ``python``/``cpython`` get their interpreter and a standard library instead.
    """
    rng = _rng("files", package.dist)
    name = package.name
    count = _file_count(rng, name)
    paths = set()
    if name in {"python", "cpython"}:
        stdlib = site.rsplit("/", 1)[0]  # lib/pythonX.Y
        paths.update(["bin/python3", f"bin/{stdlib.split('/')[1]}"])
        paths.update(f"{stdlib}/{rng.choice(_SUBDIRS)}/std_{i:04d}.py" for i in range(count))
        count = 0
    for i in range(count):
        kind = rng.random()
        if kind < 0.35:
            paths.add(f"lib/lib{name.removeprefix('lib')}_{i}.so")
        elif kind < 0.6:
            paths.add(f"include/{name}/header_{i:04d}.h")
        elif kind < 0.95:
            paths.add(f"share/{name}/{rng.choice(_SUBDIRS)}/data_{i:04d}")
        else:
            paths.add(f"bin/{name}-tool{i}")
    payload = _Payload()
    for path in sorted(paths):
        payload.add(path)
    return payload


def full_record(record: dict[str, object], payload: _Payload) -> dict[str, object]:
    """``record`` with ``files`` and ``paths_data`` (what :func:`_dumps_record` writes)."""
    paths = [
        {"_path": p, "path_type": "hardlink", "sha256": h, "size_in_bytes": n}
        for p, (h, n) in sorted(payload.entries.items())
    ]
    return {
        **record,
        "files": sorted(payload.entries),
        "paths_data": {"paths": paths, "paths_version": 1},
    }


def _dumps_record(record: dict[str, object], payload: _Payload) -> str:
    """``json.dumps(record, indent=2, sort_keys=True)`` as conda writes it, with ``files``
    and ``paths_data`` from ``payload`` formatted directly (the pure-Python indenting
    encoder is 10x slower on 300,000 paths)."""
    paths = sorted(payload.entries)
    text = json.dumps({**record, "files": 0, "paths_data": 1}, indent=2, sort_keys=True)
    files = "[\n" + ",\n".join(f"    {json.dumps(p)}" for p in paths) + "\n  ]"
    entries = ",\n".join(
        f'      {{\n        "_path": {json.dumps(p)},\n        "path_type": "hardlink",\n'
        f'        "sha256": "{payload.entries[p][0]}",\n'
        f'        "size_in_bytes": {payload.entries[p][1]}\n      }}'
        for p in paths
    )
    paths_data = f'{{\n    "paths": [\n{entries}\n    ],\n    "paths_version": 1\n  }}'
    if not paths:
        files, paths_data = "[]", '{\n    "paths": [],\n    "paths_version": 1\n  }'
    text = text.replace('\n  "files": 0,', f'\n  "files": {files},', 1)
    return text.replace('\n  "paths_data": 1,', f'\n  "paths_data": {paths_data},', 1)


def _depends(
    package: CondaPackage,
    index: int,
    packages: Sequence[CondaPackage],
    dists: dict[str, PythonDist],
    python_pins: list[str],
) -> list[str]:
    """Conda dependencies: python pins, the dist's Requires-Dist, a few earlier libraries."""
    rng = _rng("depends", package.dist)
    dist = dists.get(package.name)
    is_python = is_python_package(package) or package.name == "cpython"
    deps = []
    if is_python:
        deps += [pin for pin in python_pins if package.subdir != "noarch" or "abi" not in pin]
    if dist is not None:
        deps += [f"{req.package.name} >={req.package.version}" for req in dist.requires]
    libraries = [p for p in packages[:index] if not is_python_package(p) and p.name != "python"]
    if libraries and (package.subdir != "noarch" or not is_python):
        count = min(len(libraries), rng.choice((0, 1, 1, 2, 3, 4)))
        deps += [f"{p.name} >={p.version}" for p in rng.sample(libraries, count)]
    return sorted(set(deps))


def _python_pins(packages: Sequence[CondaPackage]) -> list[str]:
    """``python >=3.12,<3.13.0a0`` and ``python_abi 3.12.* *_cp312`` for the list's python."""
    names = {p.name for p in packages}
    python = next((p for p in packages if p.name == "python"), None)
    if python is None:
        return []
    major, minor = (int(x) for x in python.version.split(".")[:2])
    pins = [f"python >={major}.{minor},<{major}.{minor + 1}.0a0"]
    if "python_abi" in names:
        pins.append(f"python_abi {major}.{minor}.* *_cp{major}{minor}")
    return pins


def _record(
    package: CondaPackage, depends: list[str], payload: _Payload, requested: bool
) -> dict[str, object]:
    """A conda-meta record with the fields conda writes, except ``files`` and ``paths_data``."""
    size = sum(size for _, size in payload.entries.values()) // 3 + 1000
    noarch = None
    if package.subdir == "noarch":
        noarch = "python" if is_python_package(package) else "generic"
    record: dict[str, object] = {
        "build": package.build,
        "build_number": package.build_number,
        "channel": f"{package.channel}/{package.subdir}",
        "constrains": [],
        "depends": depends,
        "extracted_package_dir": f"{PKGS_DIR}/{package.dist}",
        "features": "",
        "fn": package.fn,
        "license": "BSD-3-Clause",
        "link": {"source": f"{PKGS_DIR}/{package.dist}", "type": 1},
        "name": package.name,
        "package_tarball_full_path": f"{PKGS_DIR}/{package.fn}",
        "requested_spec": f"conda-forge::{package.name}" if requested else "None",
        "sha256": _fake_sha256(package.url),
        "size": size,
        "subdir": package.subdir,
        "timestamp": TIMESTAMP_MS,
        "track_features": "",
        "url": package.url,
        "version": package.version,
    }
    if noarch is not None:
        record["noarch"] = noarch
    if package.md5:
        record["md5"] = package.md5
    return record


def _history(packages: Sequence[CondaPackage], env_out: Path, leaves: Iterable[str]) -> str:
    lines = [
        f"==> {BUILD_TIME} <==",
        f"# cmd: micromamba install -y --name base --file {env_out.name}",
        *(f"+{p.channel}/{p.subdir}::{p.dist}" for p in packages),
        f"# update specs: {sorted(leaves)!r}",
    ]
    return "\n".join(lines) + "\n"


# -- interpreters and venvs ---------------------------------------------------------------


def _python_version(executable: str) -> str | None:
    """``X.Y`` of an interpreter, or None if it does not run."""
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def find_python(version: str) -> str | None:
    """An interpreter for ``X.Y`` on this machine (PATH, pyenv, /usr), or None."""
    exe = f"python{version}"
    candidates = [shutil.which(exe)]
    for pattern in (
        f"~/.pyenv/versions/{version}.*/bin/{exe}",
        f"/root/.pyenv/versions/{version}.*/bin/{exe}",
    ):
        candidates += sorted(glob.glob(os.path.expanduser(pattern)), reverse=True)
    candidates += [f"/usr/local/bin/{exe}", f"/usr/bin/{exe}"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and _python_version(candidate) == version:
            return candidate
    return None


def _choose_python(packages: Sequence[CondaPackage], python: str | None) -> tuple[str, str]:
    """(interpreter, X.Y) for the image: ``python``, else one matching the list's python."""
    if python is not None:
        version = _python_version(python)
        if version is None:
            raise RuntimeError(f"{python} does not run")
        return python, version
    wanted = next(
        (".".join(p.version.split(".")[:2]) for p in packages if p.name == "python"), None
    )
    found = find_python(wanted) if wanted else None
    if found is not None and wanted is not None:
        return found, wanted
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    warnings.warn(
        f"no python{wanted} found; using {sys.executable} and lib/python{version}/site-packages",
        stacklevel=3,
    )
    return sys.executable, version


def _make_venv(python: str, dest: Path) -> None:
    subprocess.run(
        [python, "-m", "venv", "--without-pip", str(dest)], check=True, capture_output=True
    )


def _prepare_dest(dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest} exists and is not empty")


# -- public API ---------------------------------------------------------------------------


def build_image(env_out: Path, dest: Path, *, python: str | None = None) -> Path:
    """Generate the image environment of explicit list ``env_out`` at ``dest`` (new or empty).

    ``python`` is the interpreter for the venv; by default one matching the
    list's ``python`` package is searched (see :func:`find_python`).
    """
    env_out, dest = Path(env_out), Path(dest)
    _prepare_dest(dest)
    packages = parse_explicit(env_out.read_text())
    interpreter, pyver = _choose_python(packages, python)
    _make_venv(interpreter, dest)
    site = f"lib/python{pyver}/site-packages"

    dists = python_dists(packages)
    pins = _python_pins(packages)
    depends = [_depends(p, i, packages, dists, pins) for i, p in enumerate(packages)]
    needed = {d.split()[0] for deps in depends for d in deps}
    leaves = {p.name for p in packages if p.name not in needed}

    meta = dest / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    for package, deps in zip(packages, depends):
        dist = dists.get(package.name)
        if dist is not None:
            payload = _python_payload(dist, site, pyver)
        else:
            payload = _generic_payload(package, site)
        for rel, data in payload.real.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        record = _record(package, deps, payload, package.name in leaves)
        text = _dumps_record(record, payload)
        (meta / f"{package.dist}.json").write_text(text + "\n")
    (meta / "history").write_text(_history(packages, env_out, leaves))
    return dest


def _stamp(env_out: Path, python: str | None) -> str:
    digest = hashlib.sha256()
    for part in (GENERATOR_VERSION, python or "", sys.version):
        digest.update(part.encode() + b"\0")
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(env_out).read_bytes())
    return digest.hexdigest()


def ensure_image(env_out: Path, cache_dir: Path, *, python: str | None = None) -> Path:
    """The image of ``env_out`` under ``cache_dir``, rebuilt only if input or generator changed."""
    cache_dir = Path(cache_dir)
    dest = cache_dir / Path(env_out).name.replace(".env.out", "")
    stamp_file = cache_dir / f"{dest.name}.stamp"
    stamp = _stamp(env_out, python)
    if dest.is_dir() and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return dest
    stamp_file.unlink(missing_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    build_image(env_out, dest, python=python)
    stamp_file.write_text(stamp + "\n")
    return dest


_SYLLABLES = ("ka", "lo", "mi", "nu", "pe", "ra", "so", "ti", "vu", "ze", "bar", "dex", "fin")


def build_venv_image(dest: Path, n_packages: int = 200, *, seed: int = 0) -> Path:
    """A plain venv (``sys.executable``) with ``n_packages`` synthetic, consistent distributions.

    Each has a module, METADATA with 0-5 ``Requires-Dist`` on earlier ones
    (``>=`` their installed version, some with extras-only requirements), RECORD
    with real hashes, and INSTALLER ``pip`` or ``uv``. Names mix case and
    separators (``Bench_Kalo.Mi``) to exercise normalisation.
    """
    dest = Path(dest)
    _prepare_dest(dest)
    _make_venv(sys.executable, dest)
    site = dest / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    rng = random.Random(seed)
    made: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(made) < n_packages:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        name = rng.choice(("bench-{}", "bench_{}", "Bench.{}", "bench-{}-{}")).format(
            word, len(made)
        )
        if str(canonicalize_name(name)) in seen:
            continue
        seen.add(str(canonicalize_name(name)))
        version = f"{rng.randint(0, 30)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        version += rng.choice(("", "", "", "", "rc1", ".post1", ".dev0"))
        requires = [f"{n}>={v}" for n, v in rng.sample(made, min(len(made), rng.randint(0, 5)))]
        if rng.random() < 0.2:
            requires.append('not-installed-extra-dep>=1; extra == "dev"')
        _write_dist(site, name, version, requires, rng.choice(("pip", "pip", "uv")))
        made.append((name, version))
    return dest


def _write_dist(site: Path, name: str, version: str, requires: list[str], installer: str) -> None:
    info = f"{_escape(name)}-{version}.dist-info"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {r}" for r in requires]
    if any("extra ==" in r for r in requires):
        lines.insert(3, "Provides-Extra: dev")
    files = {
        f"{_import_name(name)}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{info}/METADATA": ("\n".join(lines) + "\n").encode(),
        f"{info}/INSTALLER": f"{installer}\n".encode(),
        f"{info}/WHEEL": WHEEL,
    }
    rows = [f"{p},{_record_hash(hashlib.sha256(d).hexdigest())},{len(d)}" for p, d in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*rows, f"{info}/RECORD,,"]) + "\n").encode()
    for rel, data in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(data)


def image_stats(dest: Path) -> dict[str, int]:
    """Counts and size of a generated environment (records, dist-infos, listed files, bytes)."""
    dest = Path(dest)
    records = list((dest / "conda-meta").glob("*.json"))
    dist_infos = list(dest.glob("lib/python*/site-packages/*.dist-info"))
    size = sum(p.lstat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
    return {"records": len(records), "dist_infos": len(dist_infos), "bytes": size}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.image DATAFILE DEST [--python EXE] [--force]``."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.image", description=__doc__.split("\n")[0]
    )
    parser.add_argument("datafile", type=Path, help="conda explicit list (*.env.out)")
    parser.add_argument("dest", type=Path, help="directory to create")
    parser.add_argument("--python", help="interpreter for the venv (default: matching the list)")
    parser.add_argument("--force", action="store_true", help="replace DEST if it exists")
    args = parser.parse_args(argv)
    if args.force:
        shutil.rmtree(args.dest, ignore_errors=True)
    start = time.perf_counter()
    build_image(args.datafile, args.dest, python=args.python)
    elapsed = time.perf_counter() - start
    stats = image_stats(args.dest)
    print(
        f"{stats['records']} records, {stats['dist_infos']} dist-infos, "
        f"{stats['bytes'] / 1e6:.1f} MB in {args.dest}, generated in {elapsed:.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
