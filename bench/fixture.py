"""The benchmark's fixture: three environments, a wheelhouse, declared packages, scale prefixes.

Everything here is cached under ``bench/.cache`` and rebuilt when its inputs change
(the explicit list, this file, :mod:`bench.image`, :mod:`tests.support.wheels`, the
interpreter and the sizes):

* ``sagemaker-distribution-4.4.1-cpu/``: the hybrid venv+conda image
  (:func:`bench.image.ensure_image`, 913 conda records, 620 dist-infos, Python 3.12);
* ``fixture/venv-a``, ``fixture/venv-b``: plain venvs of 200 synthetic distributions
  each (:func:`bench.image.build_venv_image`, seeds 0 and 1);
* ``fixture/wheelhouse``: one wheel per declared installed package at its installed
  version (30 per environment, 90 in all) plus the 5 :data:`NEW_PACKAGES`, which no
  environment has (``addon-a`` requires ``addon-b``, ``addon-c`` requires ``addon-d``);
* ``fixture/selection.json``: the ~30 packages declared per environment, each as a
  pip requirement (and, for 3 of the image's, a conda MatchSpec) satisfied by what is
  installed: bare names, ``>=installed``, ``==installed`` and ``>=installed,<next major``;
* ``scale/env-NN``: synthetic venvs of 1,000 dist-infos each (METADATA only, 0-3
  ``Requires-Dist`` on earlier ones), with 20 declared satisfied packages each, built
  incrementally (``--quick`` uses the first 10, the full run 50).

The environments the benchmark touches are per-run hard-linked copies
(:func:`link_copy`): installers only add and delete files, never rewrite one in
place, so the cached originals stay as built (:func:`snapshot` checks it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from bench import image as image_mod

REPO = Path(__file__).resolve().parents[1]
CACHE = image_mod.DEFAULT_CACHE_DIR
#: Bump to rebuild the fixture even if no input file changed.
FIXTURE_VERSION = "1"
VENV_PACKAGES = 200
DECLARED_PER_ENV = 30
IMAGE_CONDA_DECLARED = 3
SCALE_DISTS = 1000
SCALE_DECLARED = 20
#: (name, requires) of the wheels no environment has installed.
NEW_PACKAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("addon-a", ("addon-b>=1",)),
    ("addon-b", ()),
    ("addon-c", ("addon-d>=1",)),
    ("addon-d", ()),
    ("addon-e", ()),
)
#: Distributions a SageMaker user typically names; those present in the image come first.
_POPULAR = (
    "numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "boto3", "sagemaker-core",
    "requests", "pyarrow", "jupyterlab", "ipywidgets", "transformers", "xgboost", "seaborn",
    "sqlalchemy", "pydantic", "fastapi", "jinja2", "pyyaml", "tqdm", "rich", "httpx",
    "accelerate", "datasets", "langchain", "langchain-aws", "scikit-image",
)  # fmt: skip
#: Conda packages declared on the image's conda side (each ships a distribution).
_CONDA_DECLARED = ("pytorch", "pandas", "botocore")


def env_out_file() -> Path:
    """The SageMaker Distribution 4.4.1 explicit list beside the repository."""
    for candidate in (REPO.parent / "shared", Path("/work/shared")):
        path = candidate / "data" / "sagemaker-distribution-4.4.1-cpu.env.out"
        if path.is_file():
            return path
    raise FileNotFoundError("shared/data/sagemaker-distribution-4.4.1-cpu.env.out not found")


@dataclass(frozen=True)
class Declared:
    """One declared package: the manifest's entry and the equivalent pip requirement."""

    manager: str  # "pip" | "conda"
    spec: str  # the manifest entry (PEP 508 or MatchSpec)
    pip_requirement: str  # the same package for uv/pip requirements files


@dataclass(frozen=True)
class Fixture:
    """Cached, read-only originals (copy them before installing anything)."""

    image: Path
    venvs: tuple[Path, ...]
    wheelhouse: Path
    declared: dict[str, list[Declared]]  # env name -> declared installed packages

    @property
    def environments(self) -> dict[str, Path]:
        """Env name -> original prefix (image first)."""
        return {"image": self.image, **{p.name: p for p in self.venvs}}


# -- reading environments ----------------------------------------------------------------


def site_packages(prefix: Path) -> Path:
    """The only ``lib/python*/site-packages`` of a generated prefix."""
    found = sorted(prefix.glob("lib/python*/site-packages"))
    if len(found) != 1:
        raise RuntimeError(f"{prefix}: expected one site-packages, found {found}")
    return found[0]


def read_dists(prefix: Path) -> dict[str, tuple[str, str, list[str]]]:
    """Canonical name -> (Name, Version, Requires-Dist) from every METADATA header."""
    out = {}
    for info in sorted(site_packages(prefix).glob("*.dist-info")):
        name = version = None
        requires = []
        for line in (info / "METADATA").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(": ")
            if key == "Name":
                name = value.strip()
            elif key == "Version":
                version = value.strip()
            elif key == "Requires-Dist":
                requires.append(value.strip())
        if name and version:
            out[str(canonicalize_name(name))] = (name, version, requires)
    return out


def _spec(name: str, version: str, style: int) -> str:
    """A requirement satisfied by ``version``; pre-releases are pinned exactly."""
    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"{name}=={version}"
    if parsed.is_prerelease:
        style = 2
    if style == 0:
        return name
    if style == 1:
        return f"{name}>={version}"
    if style == 2:
        return f"{name}=={version}"
    return f"{name}>={version},<{parsed.major + 1}"


def _select_image(prefix: Path) -> list[Declared]:
    dists = read_dists(prefix)
    conda_files = {p.name.rsplit("-", 2)[0]: p for p in (prefix / "conda-meta").glob("*.json")}
    declared: list[Declared] = []
    used: set[str] = set()
    for conda_name in _CONDA_DECLARED[:IMAGE_CONDA_DECLARED]:
        record = json.loads(conda_files[conda_name].read_text())
        shipped = [f for f in record["files"] if f.endswith(".dist-info/RECORD")]
        info = prefix / shipped[0].rsplit("/", 1)[0]
        dist = next(k for k, (n, v, _) in dists.items() if info.name.startswith(f"{n}-") or
                    info.name.startswith(f"{image_mod._escape(n)}-"))  # fmt: skip
        name, version, _ = dists[dist]
        declared.append(
            Declared("conda", f"{conda_name} >={record['version']}", f"{name}>={version}")
        )
        used.add(dist)
    pool = [n for n in _POPULAR if n in dists and n not in used]
    rest = sorted(set(dists) - used - set(pool) - {"pip", "setuptools", "wheel"})
    rng = random.Random(f"image-{FIXTURE_VERSION}")
    pool += rng.sample(rest, len(rest))
    for style, dist in enumerate(pool[: DECLARED_PER_ENV - len(declared)]):
        name, version, _ = dists[dist]
        spec = _spec(name, version, style % 4)
        declared.append(Declared("pip", spec, spec))
    return declared


def _select_venv(prefix: Path, seed: int) -> list[Declared]:
    dists = read_dists(prefix)
    rng = random.Random(f"venv-{seed}-{FIXTURE_VERSION}")
    chosen = rng.sample(sorted(dists), DECLARED_PER_ENV)
    out = []
    for style, dist in enumerate(chosen):
        name, version, _ = dists[dist]
        spec = _spec(name, version, style % 4)
        out.append(Declared("pip", spec, spec))
    return out


# -- caching -----------------------------------------------------------------------------


def _stamp(*parts: object, files: Iterable[Path] = ()) -> str:
    digest = hashlib.sha256()
    for part in (FIXTURE_VERSION, sys.version, *parts):
        digest.update(repr(part).encode() + b"\0")
    for path in files:
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _generator_files() -> list[Path]:
    return [
        Path(__file__),
        Path(image_mod.__file__),
        REPO / "tests" / "support" / "wheels.py",
    ]


def ensure_fixture(cache: Path = CACHE, log: object = print) -> Fixture:
    """The image, the two venvs, the wheelhouse and the declared packages (cached)."""
    env_out = env_out_file()
    image = image_mod.ensure_image(env_out, cache)
    root = cache / "fixture"
    stamp = _stamp(VENV_PACKAGES, DECLARED_PER_ENV, files=[*_generator_files(), env_out])
    stamp_file = root / "stamp"
    selection = root / "selection.json"
    venvs = (root / "venv-a", root / "venv-b")
    wheelhouse = root / "wheelhouse"
    if not (stamp_file.is_file() and stamp_file.read_text().strip() == stamp):
        log("building the fixture (venvs, wheelhouse) ...")  # type: ignore[operator]
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        for seed, venv in enumerate(venvs):
            image_mod.build_venv_image(venv, VENV_PACKAGES, seed=seed)
        declared = {"image": _select_image(image)}
        for seed, venv in enumerate(venvs):
            declared[venv.name] = _select_venv(venv, seed)
        _build_wheelhouse(wheelhouse, {"image": image, **{v.name: v for v in venvs}}, declared)
        selection.write_text(
            json.dumps(
                {env: [d.__dict__ for d in items] for env, items in declared.items()}, indent=1
            )
        )
        stamp_file.write_text(stamp + "\n")
    raw = json.loads(selection.read_text())
    declared = {env: [Declared(**d) for d in items] for env, items in raw.items()}
    return Fixture(image, venvs, wheelhouse, declared)


def _build_wheelhouse(
    dest: Path, prefixes: dict[str, Path], declared: dict[str, list[Declared]]
) -> None:
    from packaging.requirements import Requirement

    from tests.support.wheels import build_wheel

    for env, items in declared.items():
        dists = read_dists(prefixes[env])
        for item in items:
            name, version, _ = dists[str(canonicalize_name(Requirement(item.pip_requirement).name))]
            build_wheel(dest, name, version)  # no Requires-Dist: installed already satisfy
    for name, requires in NEW_PACKAGES:
        build_wheel(dest, name, "1.0", requires)


# -- scale prefixes ----------------------------------------------------------------------


def _scale_env(dest: Path, index: int) -> list[str]:
    """A venv-shaped prefix with :data:`SCALE_DISTS` METADATA-only dist-infos; returns
    :data:`SCALE_DECLARED` requirements they satisfy."""
    rng = random.Random(f"scale-{index}-{FIXTURE_VERSION}")
    pyver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    site = dest / "lib" / f"python{pyver}" / "site-packages"
    site.mkdir(parents=True)
    base = getattr(sys, "_base_executable", sys.executable)
    (dest / "bin").mkdir()
    (dest / "bin" / "python").symlink_to(base)
    (dest / "pyvenv.cfg").write_text(
        f"home = {Path(base).parent}\ninclude-system-site-packages = false\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n"
    )
    made: list[tuple[str, str]] = []
    for j in range(SCALE_DISTS):
        name = f"scale-pkg-{j:04d}" if j % 3 else f"Scale_Pkg.{j:04d}"
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
        requires = [f"{n}>={v}" for n, v in rng.sample(made, min(len(made), rng.randint(0, 3)))]
        info = site / f"{image_mod._escape(name)}-{version}.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        made.append((name, version))
    chosen = rng.sample(made, SCALE_DECLARED)
    return [_spec(n, v, k % 4) for k, (n, v) in enumerate(chosen)]


def ensure_scale(count: int, cache: Path = CACHE, log: object = print) -> dict[str, list[str]]:
    """Prefix -> declared requirements of the first ``count`` scale environments (cached)."""
    root = cache / "scale"
    stamp = _stamp(SCALE_DISTS, SCALE_DECLARED, files=[Path(__file__), Path(image_mod.__file__)])
    stamp_file = root / "stamp"
    if not (stamp_file.is_file() and stamp_file.read_text().strip() == stamp):
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        stamp_file.write_text(stamp + "\n")
    out: dict[str, list[str]] = {}
    missing = [i for i in range(count) if not (root / f"env-{i:02d}.json").is_file()]
    if missing:
        log(  # type: ignore[operator]
            f"building {len(missing)} scale environment(s) of {SCALE_DISTS} dist-infos ..."
        )
    for i in range(count):
        dest = root / f"env-{i:02d}"
        marker = root / f"env-{i:02d}.json"
        if not marker.is_file():
            shutil.rmtree(dest, ignore_errors=True)
            requirements = _scale_env(dest, i)  # the marker is written once it is complete
            marker.write_text(json.dumps(requirements))
        out[str(dest)] = json.loads(marker.read_text())
    return out


# -- per-run copies ----------------------------------------------------------------------


def link_copy(src: Path, dest: Path) -> Path:
    """``cp -al``: directories recreated, files hard-linked, symlinks kept."""
    shutil.copytree(src, dest, symlinks=True, copy_function=os.link)
    return dest


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime_ns) of every regular file below ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            out[os.path.relpath(os.path.join(dirpath, f), root)] = (st.st_size, st.st_mtime_ns)
    return out


def invalidate(path: Path) -> None:
    """Forget a cached fixture (after something changed an original)."""
    for stamp in (path.parent / "stamp", path.parent / f"{path.name}.stamp"):
        stamp.unlink(missing_ok=True)
