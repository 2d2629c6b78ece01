"""The pip side: previews (dry runs) with ``uv pip`` or the environment's own pip.

Both installers get the same inputs: the requested requirements and a
constraints file pinning every managed and foreign distribution to its
installed version, so the resolver itself cannot move them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name

from reconciler.backends.process import Completed, redact, run
from reconciler.errors import BackendError, ReconcilerError
from reconciler.manifest.model import PipSettings

__all__ = [
    "PipCli",
    "PipInstaller",
    "PipPreview",
    "Resolved",
    "UvCli",
    "check_index_order",
    "isolation_env",
    "select_installer",
]

PREVIEW_TIMEOUT = 600.0
INSTALL_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Resolved:
    """A distribution the installer would install, with its requirements when known."""

    name: str
    version: str
    requires: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PipPreview:
    """The result of a dry run: what would be installed, or the resolver's refusal."""

    ok: bool
    installs: tuple[Resolved, ...] = ()
    message: str = ""
    edges: tuple[tuple[str, str, str], ...] = ()  # (parent, child, requirement) when known


class PipInstaller(Protocol):
    """What the planner (and later the executor) needs from a pip-side installer."""

    name: str

    def preview(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> PipPreview:
        """Dry-run installing ``requirements`` into the environment of ``python``."""
        ...

    def explain(
        self, python: Path, requirements: Sequence[str], settings: PipSettings
    ) -> tuple[tuple[str, str], ...]:
        """``(parent, child)`` requirement edges of an unconstrained resolution, for chains."""
        ...

    def install(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> Completed:
        """Install for real, with the same constraints as the preview."""
        ...


#: How long uv and pip wait on the network, unless the environment already says
#: (``UV_HTTP_TIMEOUT``, ``UV_HTTP_CONNECT_TIMEOUT``, ``UV_HTTP_RETRIES``; pip's
#: ``PIP_TIMEOUT``/``PIP_DEFAULT_TIMEOUT``, ``PIP_RETRIES``). The read timeout is
#: per read (a slow but moving download never hits it); a failed request (5xx,
#: reset, timeout) is retried ``HTTP_RETRIES`` times with backoff, so one stalled
#: request gives up after about ``(HTTP_RETRIES + 1) * HTTP_READ_TIMEOUT`` seconds
#: plus a few seconds of backoff, well inside ``PREVIEW_TIMEOUT``/``INSTALL_TIMEOUT``,
#: which bound the whole process.
HTTP_READ_TIMEOUT = 30
HTTP_CONNECT_TIMEOUT = 10
HTTP_RETRIES = 2


def isolation_env() -> dict[str, str]:
    """Environment additions for every pip/uv call. Nothing from a shell profile leaks in.

    The network bounds (:data:`HTTP_READ_TIMEOUT`, :data:`HTTP_CONNECT_TIMEOUT`,
    :data:`HTTP_RETRIES`) apply unless the caller's environment sets its own.
    """
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "UV_NO_PROGRESS": "1"}
    bounds = {
        "UV_HTTP_TIMEOUT": str(HTTP_READ_TIMEOUT),
        "UV_HTTP_CONNECT_TIMEOUT": str(HTTP_CONNECT_TIMEOUT),
        "UV_HTTP_RETRIES": str(HTTP_RETRIES),
        "PIP_RETRIES": str(HTTP_RETRIES),
    }
    for key, value in bounds.items():
        if not os.environ.get(key):
            env[key] = value
    if not (os.environ.get("PIP_TIMEOUT") or os.environ.get("PIP_DEFAULT_TIMEOUT")):
        env["PIP_DEFAULT_TIMEOUT"] = str(HTTP_READ_TIMEOUT)
    return env


@contextmanager
def _constraints_file(constraints: Sequence[str]) -> Iterator[Path | None]:
    if not constraints:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="reconciler-constraints-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(f"{c}\n" for c in constraints))
        yield Path(name)
    finally:
        os.unlink(name)


def check_index_order(installer: str, settings: PipSettings) -> None:
    """Refuse ``installer: pip`` with ``extra_index_urls``: pip merges every index and
    takes the highest version wherever it is (dependency confusion: a public extra
    index can shadow an internal package). uv keeps the order (see :func:`_repository_args`)."""
    if installer == "pip" and settings.extra_index_urls and not settings.no_index:
        raise BackendError(
            "refusing to install with pip from several indexes (extra_index_urls): pip "
            "merges all indexes and installs the highest version it finds on any of them, "
            "so a package on an extra index can replace the one on index_url "
            "(dependency confusion); nothing was changed",
            hint="use `installer: uv` (or auto), which takes each package from the first "
            "index that has it, or drop extra_index_urls",
        )


def _repository_args(settings: PipSettings, *, uv: bool) -> list[str]:
    """Repository options for uv or pip.

    uv takes each package from the first index that has it (``--index-strategy
    first-index``, passed explicitly so a user's uv configuration cannot change it),
    in this order: ``index_url``, then ``extra_index_urls`` as listed, then (without
    ``index_url``) the default index. uv's own ``--extra-index-url`` would put the
    extra indexes before ``--index-url``, so they are passed as ``--index`` (earlier
    wins) and the last one as ``--default-index``. pip merges indexes: it gets no
    extra index (:func:`check_index_order`).
    """
    args: list[str] = []
    extras = list(settings.extra_index_urls)
    if settings.no_index:
        args.append("--no-index")
    elif uv and settings.index_url and extras:
        for url in [settings.index_url, *extras[:-1]]:
            args += ["--index", url]
        args += ["--default-index", extras[-1]]
        extras = []
    elif settings.index_url:
        args += ["--index-url", settings.index_url]
    if uv:
        for url in extras:
            args += ["--index", url]
        args += ["--index-strategy", "first-index"]
    elif extras and not settings.no_index:
        check_index_order("pip", settings)
    for link in settings.find_links:
        args += ["--find-links", link]
    return args


def _failure(proc: Completed) -> str:
    text = (proc.stderr or proc.stdout).strip()
    return redact(text)


_NO_SOLUTION = re.compile(
    r"No solution found|ResolutionImpossible|conflicting dependencies|Cannot install", re.I
)


# uv: "error: ...", "  cause: ..." (older: "Caused by: ..."); pip: "ERROR: ...".
_HEADLINE = re.compile(r"^\s*(?:error|cause|caused by)\s*:\s*(?P<text>\S.*)$", re.I)
_AUTH = re.compile(r"\b(401 Unauthorized|403 Forbidden|401 Error|403 Error)", re.I)
_AUTH_UV_HINT = re.compile(r"lack of valid authentication credentials", re.I)
_DISK_FULL = re.compile(r"No space left on device|os error 28|Errno 28|ENOSPC|Disk quota exceeded")
_NETWORK = re.compile(
    r"Request failed after|timed out|error sending request|Failed to fetch|"
    r"HTTP status (?:server|client) error|error decoding response body|Hash mismatch|"
    r"Connection refused|end of file before message length|ReadTimeout|HTTPError",
    re.I,
)


def _auth_failure(message: str) -> str | None:
    """``401 Unauthorized`` (or 403) when the index refused the credentials, else None."""
    match = _AUTH.search(message)
    if match is not None:
        return match.group(1)
    return "401 Unauthorized" if _AUTH_UV_HINT.search(message) else None


def _summary(message: str) -> str:
    """The installer's error and its causes on one line (the last line alone is often
    a hash or a URL): ``Failed to download `x==1`: Hash mismatch for `x==1```."""
    parts: list[str] = []
    for line in message.splitlines():
        match = _HEADLINE.match(line)
        if match and match.group("text").strip() not in parts:
            parts.append(match.group("text").strip())
    if not parts:
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        parts = lines[-1:]
    text = ": ".join(parts)
    return text if len(text) <= 700 else text[:697] + "..."


def _network_hint(proc: Completed) -> str:
    return (
        f"check that the package index is reachable and serves complete files; each "
        f"request was retried {os.environ.get('UV_HTTP_RETRIES') or HTTP_RETRIES} time(s) "
        f"with a {os.environ.get('UV_HTTP_TIMEOUT') or HTTP_READ_TIMEOUT} s read timeout "
        f"(UV_HTTP_RETRIES, UV_HTTP_TIMEOUT); the command was: {proc.display}"
    )


def _check_resolution_failure(proc: Completed, what: str) -> PipPreview:
    """A resolver 'no solution' is data (a refusal); anything else is a backend error.

    uv reports an index that refused the credentials (401/403) as "no solution" (the
    package was not found): that is an error about the index, not a refusal.
    """
    message = _failure(proc)
    auth = _auth_failure(message)
    if auth is not None:
        raise BackendError(
            f"{what} failed: the package index refused the request ({auth}): {_summary(message)}",
            hint="check the credentials in the index URL of the manifest; the command was: "
            f"{proc.display}",
        )
    if _NO_SOLUTION.search(message):
        return PipPreview(ok=False, message=message)
    hint = f"the command was: {proc.display}"
    if _NETWORK.search(message):
        hint = _network_hint(proc)
    raise BackendError(
        f"{what} failed (exit {proc.returncode}): {_summary(message)}",
        hint=hint,
    )


# uv explains a failed resolution in sentences: "beta>=2.0 depends on alpha>=2",
# "all versions of gamma depend on beta>=2".
_DEPENDS_ON = re.compile(
    r"(?P<parent>[A-Za-z0-9][A-Za-z0-9._-]*)[^\s,]* depends? on (?P<child>[A-Za-z0-9][^\s,]*)"
)


@contextmanager
def _no_lock_left(python: Path) -> Iterator[None]:
    """uv takes a file lock on the environment even for a dry run, creating an empty
    ``.lock`` in it; a preview must leave the environment as it found it."""
    lock = python.parent.parent / ".lock"
    existed = lock.exists()
    try:
        yield
    finally:
        if not existed:
            lock.unlink(missing_ok=True)


_FIND_UV_LOCK = threading.Lock()


class UvCli:
    """``uv pip`` against the target environment (``--python ENV/bin/python``)."""

    name = "uv"

    def __init__(self, uv: str | None = None) -> None:
        self._uv = uv

    @property
    def uv(self) -> str:
        """Path of the uv binary shipped with the ``uv`` package."""
        if self._uv is None:
            from uv import find_uv_bin

            try:
                # find_uv_bin initialises sysconfig, which is not thread-safe: the
                # environments are planned in parallel threads.
                with _FIND_UV_LOCK:
                    self._uv = str(find_uv_bin())
            except Exception as exc:  # uv raises its own UvNotFound
                raise BackendError(
                    f"the uv binary of the installed `uv` package was not found "
                    f"({type(exc).__name__}: {str(exc).strip()})",
                    hint="reinstall reconciler's dependencies, or set `installer: pip` in the "
                    "manifest",
                ) from exc
        return self._uv

    def preview(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> PipPreview:
        """``uv pip install --dry-run --output-format json``."""
        with _constraints_file(constraints) as cfile:
            argv: list[str | Path] = [
                self.uv,
                "pip",
                "install",
                "--dry-run",
                "--no-build",
                "--python",
                python,
                "--output-format",
                "json",
                *_repository_args(settings, uv=True),
            ]
            if cfile is not None:
                argv += ["--constraints", cfile]
            argv += ["--", *requirements]
            with _no_lock_left(python):
                proc = run(argv, env=isolation_env(), timeout=PREVIEW_TIMEOUT)
        if proc.returncode != 0:
            failed = _check_resolution_failure(proc, "uv dry run")
            edges = tuple(
                (
                    canonicalize_name(m.group("parent")),
                    _req_name(m.group("child")),
                    m.group("child"),
                )
                for m in _DEPENDS_ON.finditer(failed.message)
            )
            return PipPreview(ok=False, message=failed.message, edges=edges)
        try:
            report = json.loads(proc.stdout)
            changes = report["changes"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"uv dry run printed output reconciler cannot read ({exc})",
                hint="use `installer: pip` in the manifest, or a uv version this release supports",
            ) from exc
        installs = tuple(
            Resolved(canonicalize_name(c["name"]), str(c["version"]))
            for c in changes
            if c.get("action") in ("installed", "reinstalled")
        )
        return PipPreview(ok=True, installs=installs)

    def install(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> Completed:
        """``uv pip install --python ENV/bin/python -c PINS REQS``."""
        with _constraints_file(constraints) as cfile:
            argv: list[str | Path] = [
                self.uv, "pip", "install", "--no-build", "--python", python,
                *_repository_args(settings, uv=True),
            ]  # fmt: skip
            if cfile is not None:
                argv += ["--constraints", cfile]
            argv += ["--", *requirements]
            with _rolled_back_on_failure(python, "uv"):
                proc = run(
                    argv, env=isolation_env(), timeout=INSTALL_TIMEOUT, fault_point="in-installer"
                )
                return _installed(proc, "uv", python)

    def explain(
        self, python: Path, requirements: Sequence[str], settings: PipSettings
    ) -> tuple[tuple[str, str], ...]:
        """Edges from ``uv pip compile --annotation-style line`` (``x==1  # via a, b``)."""
        argv: list[str | Path] = [
            self.uv,
            "pip",
            "compile",
            "-",
            "--python",
            python,
            "--no-header",
            "--annotation-style",
            "line",
            "--quiet",
            "--no-build",
            *_repository_args(settings, uv=True),
        ]
        proc = _run_with_input(argv, "\n".join(requirements) + "\n")
        edges: list[tuple[str, str]] = []
        for line in proc.stdout.splitlines():
            spec, _, comment = line.partition("# via")
            child = _req_name(spec.strip())
            if not child or not comment:
                continue
            for parent in comment.split(","):
                parent = parent.strip()
                if parent and not parent.startswith("-"):
                    edges.append((canonicalize_name(parent), child))
        return tuple(edges)


def _run_with_input(argv: Sequence[str | Path], text: str) -> Completed:
    fd, name = tempfile.mkstemp(prefix="reconciler-reqs-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        args = [name if a == "-" else a for a in argv]
        return run(args, env=isolation_env(), timeout=PREVIEW_TIMEOUT)
    finally:
        os.unlink(name)


def _req_name(spec: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)
    return canonicalize_name(match.group(0)) if match else ""


class PipCli:
    """The environment's own ``python -m pip`` (``--dry-run --report -``)."""

    name = "pip"

    def preview(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> PipPreview:
        """``pip install --dry-run --report - --only-binary :all:``."""
        with _constraints_file(constraints) as cfile:
            argv: list[str | Path] = [
                python,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--quiet",
                "--report",
                "-",
                "--only-binary",
                ":all:",
                *_repository_args(settings, uv=False),
            ]
            if cfile is not None:
                argv += ["--constraint", cfile]
            argv += ["--", *requirements]
            proc = run(argv, env=isolation_env(), timeout=PREVIEW_TIMEOUT)
        if proc.returncode != 0:
            return _check_resolution_failure(proc, "pip dry run")
        try:
            report = json.loads(proc.stdout)
            items = report["install"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"pip dry run printed a report reconciler cannot read ({exc})",
                hint="pip >= 23.0 is needed in the environment for `installer: pip`",
            ) from exc
        installs = tuple(
            Resolved(
                canonicalize_name(item["metadata"]["name"]),
                str(item["metadata"]["version"]),
                tuple(item["metadata"].get("requires_dist") or ()),
            )
            for item in items
        )
        return PipPreview(ok=True, installs=installs)

    def explain(
        self, python: Path, requirements: Sequence[str], settings: PipSettings
    ) -> tuple[tuple[str, str], ...]:
        """pip's report already carries ``requires_dist``; nothing more to ask."""
        return ()

    def install(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> Completed:
        """``python -m pip install --only-binary :all: -c PINS REQS``."""
        with _constraints_file(constraints) as cfile:
            argv: list[str | Path] = [
                python, "-m", "pip", "install", "--only-binary", ":all:",
                *_repository_args(settings, uv=False),
            ]  # fmt: skip
            if cfile is not None:
                argv += ["--constraint", cfile]
            argv += ["--", *requirements]
            with _rolled_back_on_failure(python, "pip"):
                proc = run(
                    argv, env=isolation_env(), timeout=INSTALL_TIMEOUT, fault_point="in-installer"
                )
                return _installed(proc, "pip", python)


class _Snapshot:
    """The entries of an environment's site-packages and ``bin`` before an install.

    When the installer fails, what it created and left behind (uv leaves a module
    and a ``*.dist-info`` without its payload when the disk fills up) is removed
    again: the environment goes back to how it was. Entries that existed before are
    never touched. The environment lock is held, so nothing else installs meanwhile.
    """

    def __init__(self, python: Path) -> None:
        from reconciler.state.python import find_site_packages

        prefix = python.parent.parent
        site, _ = find_site_packages(prefix)
        self._dirs = [d for d in (site, prefix / "bin") if d is not None]
        self._before = {d: set(_listdir(d)) for d in self._dirs}

    def roll_back(self) -> tuple[list[str], list[str]]:
        """Remove new entries; ``(removed, could not remove)`` as names."""
        removed: list[str] = []
        kept: list[str] = []
        for directory in self._dirs:
            for name in sorted(set(_listdir(directory)) - self._before[directory]):
                path = directory / name
                try:
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    else:
                        path.unlink()
                    removed.append(name)
                except OSError:
                    kept.append(str(path))
        return removed, kept


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


@contextmanager
def _rolled_back_on_failure(python: Path, name: str) -> Iterator[None]:
    """Run an install; if it fails (or is stopped), undo what it left in the environment."""
    snapshot = _Snapshot(python)
    try:
        yield
    except ReconcilerError as exc:
        removed, kept = snapshot.roll_back()
        if removed or kept:
            exc.message += _rollback_note(name, removed, kept)
            exc.args = (exc.message,)
        raise


def _rollback_note(name: str, removed: Sequence[str], kept: Sequence[str]) -> str:
    note = ""
    if removed:
        note += f"; removed what the failed {name} install had left: {', '.join(removed)}"
    if kept:
        note += f"; could not remove {', '.join(kept)}: remove it by hand"
    else:
        note += "; nothing it added is left in the environment"
    return note


def _installed(proc: Completed, name: str, python: Path) -> Completed:
    if proc.returncode == 0:
        return proc
    message = _failure(proc)
    summary = _summary(message) if message else f"exit {proc.returncode}"
    prefix = python.parent.parent
    hint = f"the command was: {proc.display}"
    if _DISK_FULL.search(message):
        text = (
            f"{name} install into {prefix} failed: the disk is full (no space left on "
            f"device): {summary}"
        )
        hint = (
            "free space on the file system of the path named in the error (the "
            "environment, uv's cache or TMPDIR), then run apply again"
        )
    else:
        text = f"{name} install into {prefix} failed: {summary}"
        if _auth_failure(message) is not None:
            hint = "check the credentials in the index URL of the manifest; " + hint
        elif _NETWORK.search(message):
            hint = _network_hint(proc)
    raise BackendError(text, hint=hint)


def select_installer(installer: str, python: Path) -> PipInstaller:
    """``auto`` prefers uv (shipped as a dependency); ``pip`` needs pip in the environment.

    One exception for ``auto``: a venv made with ``--system-site-packages`` whose
    interpreter can run pip gets pip. uv does not see the base interpreter's
    packages, so it would install a second, shadowing copy of any of them that a
    new package requires (which the plan must refuse); pip sees them installed.
    """
    if installer == "pip":
        return PipCli()
    if installer == "auto" and _pip_sees_system_site(python.parent.parent):
        return PipCli()
    return UvCli()


def _pip_sees_system_site(prefix: Path) -> bool:
    """True for a ``--system-site-packages`` venv where ``python -m pip`` imports pip."""
    from reconciler.state.environment import system_site_dirs
    from reconciler.state.python import find_site_packages

    site, version = find_site_packages(prefix)
    system = system_site_dirs(prefix, version)
    if not system:
        return False
    return any((d / "pip" / "__main__.py").is_file() for d in (site, *system) if d is not None)
