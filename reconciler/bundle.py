"""``reconciler bundle DIR``: an offline wheelhouse for the Studio bootstrap.

A domain without internet access cannot install reconciler from PyPI at app
start. A bundle is a directory of wheels: this project's own wheel, rebuilt
from the installed distribution's files (so it is exactly what runs here, and
no build backend is needed), and every runtime dependency for each target
interpreter and platform, downloaded by pip itself (``pip download
--only-binary :all: --python-version --platform``, isolated from the machine's
pip configuration). ``reconciler lifecycle --wheel DIR`` installs from it with
``--no-index``.

pip evaluates the environment markers of *transitive* requirements for the
running interpreter, not the target (pypa/pip#11664); this project's own
requirements are evaluated here for the target, so ``py-rattler; python_version
>= '3.10'`` is right for either.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as md
import importlib.util
import re
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from reconciler import __distribution__, __version__
from reconciler.errors import ReconcilerError
from reconciler.values import value

__all__ = [
    "SAGEMAKER",
    "Bundle",
    "Target",
    "build_bundle",
    "expand_platform",
    "repackage",
    "self_wheel",
    "summary",
    "target_requirements",
    "targets_for",
]


@value
class Target:
    """An interpreter and platform to download wheels for; ``None``: the running one's."""

    python_version: str | None = None
    platform: str | None = None

    def describe(self) -> str:
        """``Python 3.12 on manylinux_2_28_x86_64`` or ``this interpreter (Python 3.11)``."""
        if self.python_version is None and self.platform is None:
            return f"this interpreter (Python {sys.version_info[0]}.{sys.version_info[1]})"
        version = self.python_version or f"{sys.version_info[0]}.{sys.version_info[1]}"
        return f"Python {version} on {self.platform or 'this platform'}"


#: SageMaker Distribution's images: CPython 3.12 on x86_64 Linux (glibc >= 2.28).
SAGEMAKER = Target("3.12", "manylinux_2_28_x86_64")

_MACHINE = re.compile(r"_(x86_64|aarch64|i686|ppc64le|s390x|armv7l)$")
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
#: The legacy names of manylinux_2_17, _2_12 and _2_5 (PEP 600).
_LEGACY = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def expand_platform(tag: str) -> list[str]:
    """``tag`` and every platform tag it is compatible with (pip does not expand
    ``manylinux_2_28_x86_64`` to the older glibc versions by itself)."""
    match = _MANYLINUX.match(tag)
    if match is None or match.group(1) != "2":
        return [tag]
    minor, arch = int(match.group(2)), match.group(3)
    tags = []
    for m in range(minor, 4, -1):
        tags.append(f"manylinux_2_{m}_{arch}")
        if m in _LEGACY and arch in ("x86_64", "i686"):
            tags.append(f"{_LEGACY[m]}_{arch}")
    return tags


def targets_for(python_version: str | None, platform: str | None) -> list[Target]:
    """The targets of ``bundle [--python-version X.Y] [--platform TAG]``: SageMaker's and this
    interpreter's by default; else the one named (the other part defaulting to SageMaker's)."""
    if python_version is not None and not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise ReconcilerError(
            f"--python-version {python_version}: expected X.Y, e.g. 3.12",
            hint="the minor version of the interpreter that will run reconciler",
        )
    if python_version is None and platform is None:
        return [SAGEMAKER, Target()]
    return [Target(python_version or SAGEMAKER.python_version, platform or SAGEMAKER.platform)]


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def summary(bundle: Bundle) -> str:
    """What ``reconciler bundle`` prints: what it wrote, and where it goes next."""
    targets = " and ".join(t.describe() for t in bundle.targets)
    return (
        f"Wrote {len(bundle.wheels)} wheels to {bundle.directory}: {bundle.wheel.name} and its "
        f"dependencies for {targets}.\n"
        "Copy the directory to the home volume (e.g. ~/reconciler-wheels, or through S3:\n"
        f"  aws s3 sync {_shown(bundle.directory)} s3://BUCKET/reconciler-wheels), then:\n"
        "  reconciler lifecycle team.yaml --wheel '~/reconciler-wheels' > on-start.sh"
    )


@value
class Bundle:
    """What ``build_bundle`` wrote."""

    directory: Path
    wheel: Path  # this project's
    wheels: tuple[Path, ...]  # everything in the directory
    targets: tuple[Target, ...]


def build_bundle(
    directory: Path,
    targets: Sequence[Target],
    *,
    index_url: str | None = None,
    find_links: Sequence[str] = (),
    no_index: bool = False,
) -> Bundle:
    """Write this project's wheel and its dependencies for ``targets`` into ``directory``."""
    from reconciler.backends.process import redact, run

    if no_index and not find_links:
        raise ReconcilerError(
            "--no-index needs --find-links: there would be nowhere to download from",
            hint="add --find-links DIR (a directory of wheels)",
        )
    if importlib.util.find_spec("pip") is None:
        raise ReconcilerError(
            f"bundle downloads with pip, and {sys.executable} has no pip",
            hint=f"{sys.executable} -m ensurepip, then run `reconciler bundle` again",
        )
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    wheel = self_wheel(directory)
    dist = _own_distribution()
    for target in targets:
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--isolated",
            "--disable-pip-version-check",
        ]
        argv += ["--no-input", "--only-binary", ":all:", "--dest", str(directory)]
        if target.python_version is not None:
            argv += ["--python-version", target.python_version]
        for platform in expand_platform(target.platform) if target.platform else ():
            argv += ["--platform", platform]
        if no_index:
            argv.append("--no-index")
        if index_url:
            argv += ["--index-url", index_url]
        for link in find_links:
            argv += ["--find-links", link]
        argv += target_requirements(dist, target)
        done = run(argv, timeout=600)
        if done.returncode != 0:
            raise ReconcilerError(
                f"pip could not download reconciler's dependencies for {target.describe()}: "
                f"{_pip_reason(redact(done.stderr or done.stdout))}",
                hint="check --index-url / --find-links, or choose another --python-version or "
                "--platform",
            )
    wheels = tuple(sorted(directory.glob("*.whl")))
    return Bundle(directory, wheel, wheels, tuple(targets))


def _pip_reason(output: str) -> str:
    """The line of pip's output that says why (its last ``ERROR:`` line)."""
    errors = [line[len("ERROR: ") :] for line in output.splitlines() if line.startswith("ERROR: ")]
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "no output"


def _own_distribution() -> md.Distribution:
    try:
        return md.distribution(__distribution__)
    except md.PackageNotFoundError as exc:
        raise ReconcilerError(
            f"the {__distribution__} distribution is not installed here, so it cannot be bundled",
            hint=f"install it (pip install {__distribution__}) and run `reconciler bundle` again",
        ) from exc


def target_requirements(dist: md.Distribution, target: Target) -> list[str]:
    """``dist``'s runtime requirements (no extras) whose markers hold for ``target``,
    without their markers (pip would evaluate them for the running interpreter)."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement

    env = {k: str(v) for k, v in default_environment().items()}
    if target.python_version is not None:
        env["python_version"] = target.python_version
        env["python_full_version"] = f"{target.python_version}.0"
    if target.platform is not None and "linux" in target.platform:
        env.update(sys_platform="linux", platform_system="Linux", os_name="posix")
        machine = _MACHINE.search(target.platform)
        if machine is not None:
            env["platform_machine"] = machine.group(1)
    out = []
    for text in dist.requires or ():
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        req.marker = None
        out.append(str(req))
    return out


# -- this project's wheel, from what is installed ---------------------------------------------

_WHEEL = "Wheel-Version: 1.0\nGenerator: reconciler bundle\nRoot-Is-Purelib: true\n"


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def self_wheel(dest: Path) -> Path:
    """This project's wheel, rebuilt from the installed package (a regular or an editable
    install): the files of the ``reconciler`` package, its schemas and its metadata."""
    import reconciler
    from reconciler.resources import schema_path

    dist = _own_distribution()
    package = Path(reconciler.__file__).resolve().parent
    files: dict[str, bytes] = {}
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
            files[f"reconciler/{rel.as_posix()}"] = path.read_bytes()
    schemas = schema_path("manifest.v1.schema.json").parent
    for schema in sorted(schemas.glob("*.json")):
        files.setdefault(f"reconciler/schemas/{schema.name}", schema.read_bytes())
    info = f"{_escape(__distribution__)}-{__version__}.dist-info"
    for name in ("METADATA", "entry_points.txt"):
        text = dist.read_text(name)
        if text is None:
            raise ReconcilerError(
                f"the installed {__distribution__} has no {name}; cannot rebuild its wheel",
                hint=f"reinstall {__distribution__} and run `reconciler bundle` again",
            )
        files[f"{info}/{name}"] = text.encode()
    files[f"{info}/WHEEL"] = (_WHEEL + "Tag: py3-none-any\n").encode()
    path = dest / f"{_escape(__distribution__)}-{__version__}-py3-none-any.whl"
    _write_wheel(path, files, f"{info}/RECORD")
    return path


def _escape(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _write_wheel(path: Path, files: dict[str, bytes], record_path: str) -> None:
    rows = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in sorted(files.items())]
    rows.append(f"{record_path},,")
    tmp = path.with_name(f".{path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, files[name])
        zf.writestr(zipfile.ZipInfo(record_path, date_time=(1980, 1, 1, 0, 0, 0)), "\n".join(rows))
    tmp.replace(path)


# -- any installed distribution, back into a wheel --------------------------------------------


def _tag(dist: md.Distribution) -> str:
    wheel = dist.read_text("WHEEL") or ""
    tags = [t.split("-") for t in re.findall(r"^Tag: (.+)$", wheel, re.M)]
    if not tags:
        return "py3-none-any"
    # Compressed tag set (py2.py3-none-any): each part is the sorted union.
    return "-".join(".".join(sorted({t[i] for t in tags})) for i in range(3))


def repackage(dist: md.Distribution, dest: Path) -> Path:
    """Write ``dist`` (installed, with a RECORD) back into a wheel in ``dest``.

    An installed distribution's RECORD lists its files and its WHEEL file its tags,
    which is all a wheel is (stored, not compressed: it is fast).
    """
    name = _escape(dist.metadata["Name"])
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
            records.append(f"{arcname},sha256={_digest(data)},{len(data)}")
        records.append(f"{record_path},,")
        zf.writestr(record_path, "\n".join(records) + "\n")
    tmp.rename(path)
    return path


def _is_wrapper(path: Path) -> bool:
    """A console-script wrapper an installer wrote (its shebang names this venv's python)."""
    with path.open("rb") as f:
        return f.read(2) == b"#!"
