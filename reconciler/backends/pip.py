"""The pip side: previews (dry runs) with ``uv pip`` or the environment's own pip.

Both installers get the same inputs: the requested requirements and a
constraints file pinning every managed and foreign distribution to its
installed version, so the resolver itself cannot move them. What every call is
given (isolation, network bounds, index order, the constraints file) is in
:mod:`reconciler.backends.pip_args`; reading a failure and rolling back a failed
install, in :mod:`reconciler.backends.pip_failures`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from reconciler.backends import speculative

# The network bounds stay importable from here, where they were first defined.
from reconciler.backends.pip_args import HTTP_CONNECT_TIMEOUT as HTTP_CONNECT_TIMEOUT
from reconciler.backends.pip_args import HTTP_READ_TIMEOUT as HTTP_READ_TIMEOUT
from reconciler.backends.pip_args import HTTP_RETRIES as HTTP_RETRIES
from reconciler.backends.pip_args import (
    SYSCONFIG_LOCK,
    check_index_order,
    constraints_file,
    isolation_env,
    pinned_argv,
    repository_args,
    requirement_name,
    temp_text_file,
    uv_in_venv,
)
from reconciler.backends.pip_failures import (
    checked_install,
    locked_failure,
    resolution_refusal,
    rolled_back_on_failure,
)
from reconciler.backends.pip_locked import not_cached, run_locked
from reconciler.backends.process import Completed, run
from reconciler.errors import BackendError
from reconciler.manifest.model import PipSettings
from reconciler.names import canonical_name
from reconciler.values import value

__all__ = [  # (and PipInstaller, to the checker)
    "PipCli",
    "PipPreview",
    "Resolved",
    "UvCli",
    "check_index_order",
    "isolation_env",
    "select_installer",
    "with_requirements",
]

PREVIEW_TIMEOUT = 600.0
INSTALL_TIMEOUT = 3600.0


@value
class Resolved:
    """A distribution the installer would install, with its requirements when known."""

    name: str
    version: str
    requires: tuple[str, ...] | None = None


@value
class PipPreview:
    """The result of a dry run: what would be installed, or the resolver's refusal."""

    ok: bool
    installs: tuple[Resolved, ...] = ()
    message: str = ""
    edges: tuple[tuple[str, str, str], ...] = ()  # (parent, child, requirement) when known


TYPE_CHECKING = False
if TYPE_CHECKING:  # (typing is not imported at run time: a protocol only the checker reads)
    from typing import Protocol

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

        def newest(
            self, python: Path, requirements: Sequence[str], settings: PipSettings
        ) -> dict[str, str]:
            """``name -> version`` of the newest release each requirement allows (no
            dependencies, nothing installed considered); {} when the installer cannot say."""
            ...

        def install(
            self,
            python: Path,
            requirements: Sequence[str],
            constraints: Sequence[str],
            settings: PipSettings,
            *,
            no_deps: bool = False,
        ) -> Completed:
            """Install for real, with the same constraints as the preview. ``no_deps``:
            ``requirements`` are the exact ``name==version`` set a preview resolved, installed
            as they are (no resolution again, nothing else installed)."""
            ...

        def install_locked(
            self,
            python: Path,
            lines: Sequence[str],
            constraints: Sequence[str],
            settings: PipSettings,
        ) -> Completed:
            """Install exactly the locked files: ``name==version --hash=sha256:...`` lines,
            hashes required, no dependency resolution (the lock holds the closure)."""
            ...


# uv explains a failed resolution in sentences: "beta>=2.0 depends on alpha>=2",
# "all versions of gamma depend on beta>=2". A string: compiled by the first failed
# resolution (``re`` keeps it), not at every import.
_DEPENDS_ON = (
    r"(?P<parent>[A-Za-z0-9][A-Za-z0-9._-]*)[^\s,]* depends? on (?P<child>[A-Za-z0-9][^\s,]*)"
)


class UvCli:
    """``uv pip`` against the target environment (``--python ENV/bin/python``)."""

    name = "uv"

    def __init__(self, uv: str | None = None) -> None:
        self._uv = uv

    @property
    def uv(self) -> str:
        """Path of the uv binary shipped with the ``uv`` package."""
        if self._uv is None:
            self._uv = uv_in_venv()
        if self._uv is None:
            from uv import find_uv_bin

            try:
                # find_uv_bin initialises sysconfig, which is not thread-safe: the
                # environments are planned in parallel threads.
                with SYSCONFIG_LOCK:
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
        *,
        reinstall: Sequence[str] = (),
        refresh: Sequence[str] | None = (),
    ) -> PipPreview:
        """``uv pip install --dry-run --output-format json``.

        ``reinstall``: distributions whose installed copy is ignored (``lock`` resolves
        the owned ones afresh); ``refresh``: projects whose cached index pages are
        revalidated (None: all), so that an upgrade sees a release made a minute ago.
        """
        refreshing = ["--refresh"] if refresh is None else [
            a for name in refresh for a in ("--refresh-package", name)
        ]  # fmt: skip
        argv: list[str | Path] = [
            self.uv, "pip", "install", "--dry-run", "--no-build", "--python", python,
            "--output-format", "json", *repository_args(settings, uv=True),
            *(a for name in reinstall for a in ("--reinstall-package", name)), *refreshing,
        ]  # fmt: skip
        # The same dry run started at process start, if there is one (uv's .lock removed).
        proc = speculative.preview(
            python, argv, constraints, requirements, isolation_env(), PREVIEW_TIMEOUT,
            lambda: _run_pinned(argv, "--constraints", constraints, requirements, PREVIEW_TIMEOUT),
        )  # fmt: skip
        if proc.returncode != 0:
            message = resolution_refusal(proc, "uv dry run")
            edges = tuple(
                (
                    canonical_name(m.group("parent")),
                    requirement_name(m.group("child")),
                    m.group("child"),
                )
                for m in re.finditer(_DEPENDS_ON, message)
            )
            return PipPreview(ok=False, message=message, edges=edges)
        try:
            report = json.loads(proc.stdout)
            changes = report["changes"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(
                f"uv dry run printed output reconciler cannot read ({exc})",
                hint="use `installer: pip` in the manifest, or a uv version this release supports",
            ) from exc
        installs = tuple(
            Resolved(canonical_name(c["name"]), str(c["version"]))
            for c in changes
            if c.get("action") in ("installed", "reinstalled")
        )
        return PipPreview(ok=True, installs=installs)

    def _install_argv(self, python: Path, settings: PipSettings) -> list[str | Path]:
        """The install command both :meth:`install` and :meth:`install_locked` extend."""
        return [
            self.uv, "pip", "install", "--no-build", "--python", python,
            *repository_args(settings, uv=True),
        ]  # fmt: skip

    def install(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
        *,
        no_deps: bool = False,
    ) -> Completed:
        """``uv pip install --python ENV/bin/python -c PINS REQS`` (``--no-deps``)."""
        argv = [*self._install_argv(python, settings), *(["--no-deps"] if no_deps else [])]
        with rolled_back_on_failure(python, "uv"):
            proc = _run_pinned(
                argv, "--constraints", constraints, requirements, INSTALL_TIMEOUT, "in-installer"
            )
            return checked_install(proc, "uv", python)

    def install_locked(
        self,
        python: Path,
        lines: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> Completed:
        """``uv pip install --require-hashes --no-deps -r LOCKED``: offline from uv's
        cache first, so that a restore needs no network; the index only for files the
        cache does not hold."""
        argv = self._install_argv(python, settings)
        with rolled_back_on_failure(python, "uv"):
            proc = run_locked([*argv, "--offline"], "--constraints", lines, constraints)
            if not_cached(proc):
                proc = run_locked(argv, "--constraints", lines, constraints)
            return checked_install(locked_failure(proc, python), "uv", python)

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
            *repository_args(settings, uv=True),
        ]
        proc = _run_with_input(argv, "\n".join(requirements) + "\n")
        edges: list[tuple[str, str]] = []
        for line in proc.stdout.splitlines():
            spec, _, comment = line.partition("# via")
            child = requirement_name(spec.strip())
            if not child or not comment:
                continue
            for parent in comment.split(","):
                parent = parent.strip()
                if parent and not parent.startswith("-"):
                    edges.append((canonical_name(parent), child))
        return tuple(edges)

    def newest(
        self, python: Path, requirements: Sequence[str], settings: PipSettings
    ) -> dict[str, str]:
        """``uv pip compile --no-deps --offline``: each requirement's newest release, alone.

        ``--offline``: from what the preview fetched into uv's cache (the planner asks
        after it, or beside it when local directories are the only locations), so an
        index sees no request twice; when it cannot answer, nothing is said."""
        argv: list[str | Path] = [
            self.uv, "pip", "compile", "-", "--python", python, "--no-deps", "--no-header",
            "--no-annotate", "--quiet", "--no-build", "--offline",
            *repository_args(settings, uv=True),
        ]  # fmt: skip
        text = "\n".join(requirements) + "\n"
        from reconciler.backends.local_dirs import local_only

        proc = speculative.question(  # a replay asks it again (reconciler/entry.py)
            python, argv, text, isolation_env(), lambda: _run_with_input(argv, text),
            local=local_only(settings),
        )  # fmt: skip
        if proc.returncode != 0:
            return {}
        pins = (line.split("==", 1) for line in proc.stdout.splitlines() if "==" in line)
        return {canonical_name(n.split("[")[0].strip()): v.strip() for n, v in pins}


def _run_with_input(argv: Sequence[str | Path], text: str) -> Completed:
    with temp_text_file("reconciler-reqs-", text) as name:
        args = [name if a == "-" else a for a in argv]
        return run(args, env=isolation_env(), timeout=PREVIEW_TIMEOUT)


def _run_pinned(
    argv: Sequence[str | Path],
    flag: str,
    constraints: Sequence[str],
    requirements: Sequence[str],
    timeout: float,
    fault_point: str | None = None,
) -> Completed:
    """Run an installer with the pins in a constraints file (``flag``: uv's
    ``--constraints``, pip's ``--constraint``) and the requirements after ``--``."""
    with constraints_file(constraints) as cfile:
        return run(
            pinned_argv(argv, flag, cfile, requirements),
            env=isolation_env(),
            timeout=timeout,
            fault_point=fault_point,
        )


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
        argv: list[str | Path] = [
            python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-",
            "--only-binary", ":all:", *repository_args(settings, uv=False),
        ]  # fmt: skip
        proc = _run_pinned(argv, "--constraint", constraints, requirements, PREVIEW_TIMEOUT)
        if proc.returncode != 0:
            return PipPreview(ok=False, message=resolution_refusal(proc, "pip dry run"))
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
                canonical_name(item["metadata"]["name"]),
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

    def newest(
        self, python: Path, requirements: Sequence[str], settings: PipSettings
    ) -> dict[str, str]:
        """Asked of uv (``uv pip compile --no-deps``, tens of milliseconds), not pip (a
        second or more): one project at a time, from the same repositories, and pip
        with several indexes is refused anyway (:func:`check_index_order`)."""
        return UvCli().newest(python, requirements, settings)

    def _install_argv(self, python: Path, settings: PipSettings) -> list[str | Path]:
        """The install command both :meth:`install` and :meth:`install_locked` extend."""
        return [
            python, "-m", "pip", "install", "--only-binary", ":all:",
            *repository_args(settings, uv=False),
        ]  # fmt: skip

    def install(
        self,
        python: Path,
        requirements: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
        *,
        no_deps: bool = False,
    ) -> Completed:
        """``python -m pip install --only-binary :all: -c PINS REQS`` (``--no-deps``)."""
        argv = [*self._install_argv(python, settings), *(["--no-deps"] if no_deps else [])]
        with rolled_back_on_failure(python, "pip"):
            proc = _run_pinned(
                argv, "--constraint", constraints, requirements, INSTALL_TIMEOUT, "in-installer"
            )
            return checked_install(proc, "pip", python)

    def install_locked(
        self,
        python: Path,
        lines: Sequence[str],
        constraints: Sequence[str],
        settings: PipSettings,
    ) -> Completed:
        """``python -m pip install --require-hashes --no-deps -r LOCKED``."""
        argv = self._install_argv(python, settings)
        with rolled_back_on_failure(python, "pip"):
            proc = run_locked(argv, "--constraint", lines, constraints)
            return checked_install(locked_failure(proc, python), "pip", python)


def with_requirements(
    installs: Sequence[Resolved], settings: PipSettings, cache_dir: Path | None = None
) -> tuple[Resolved, ...]:
    """``installs`` with each one's ``Requires-Dist`` from the repositories' metadata
    where the installer did not report it (uv); unknown ones stay None. A local wheel's
    is kept under ``cache_dir`` (:func:`reconciler.backends.metadata.requirements_of`)."""
    from reconciler.backends.metadata import requirements_of

    missing = [(i.name, i.version) for i in installs if i.requires is None]
    if not missing:
        return tuple(installs)
    found = requirements_of(missing, settings, cache_dir)
    return tuple(
        Resolved(i.name, i.version, found[i.name]) if i.requires is None and i.name in found else i
        for i in installs
    )


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
